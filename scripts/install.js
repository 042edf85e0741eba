#!/usr/bin/env node
// npm's install step. A user whose platform has a prebuild (linux-x64,
// linux-arm64, linux-ppc64le with glibc >= 2.28) gets it loaded here and
// nothing is compiled; anywhere else the addon is built from source with
// node-gyp (make, g++ and python3 needed). A checkout (no dist/ yet) and
// `npm install --build-from-source` always build.
'use strict';

const { spawnSync } = require('node:child_process');
const fs = require('node:fs');
const path = require('node:path');

const root = path.resolve(__dirname, '..');
const loader = path.join(root, 'dist', 'lib', 'addon.js');

function loads() {
  if (!fs.existsSync(loader)) return 'a checkout: the addon is built from its sources';
  // npm install --build-from-source (the convention of prebuild-install, node-pre-gyp).
  if (process.env.npm_config_build_from_source === 'true') return '--build-from-source';
  try {
    require(loader).loadAddon();
    return null;
  } catch (e) {
    return e.message;
  }
}

const why = loads();
if (why === null) {
  console.log(`vfio: the native addon loads (${process.platform}-${process.arch}); nothing to build`);
  process.exit(0);
}
console.log(`vfio: ${why}\nvfio: building the native addon from source with node-gyp (needs make, g++, python3)`);
// npm hands its own node-gyp to install scripts; outside npm, the one on PATH.
const gyp = process.env.npm_config_node_gyp;
const r = gyp ? spawnSync(process.execPath, [gyp, 'rebuild'], { cwd: root, stdio: 'inherit' }) : spawnSync('node-gyp', ['rebuild'], { cwd: root, stdio: 'inherit' });
if (r.status !== 0) {
  console.error('vfio: the source build failed: install make, g++ and python3 (Debian: apt-get install make g++ python3), then npm rebuild vfio');
  process.exit(r.status || 1);
}
