#!/usr/bin/env node
// npm run demo: boot the test guest with one edu device and run the
// TypeScript edu driver (examples/edu/demo.ts) against it.
//   npm run demo               in the guest
//   npm run demo -- <bdf>      on this host, against your edu bound to vfio-pci
'use strict';

const { spawnSync } = require('node:child_process');
const fs = require('node:fs');
const path = require('node:path');

const root = path.resolve(__dirname, '..');
const demo = path.join('dist', 'examples', 'edu', 'demo.js');
const sh = (cmd, args) => spawnSync(cmd, args, { stdio: 'inherit', cwd: root }).status ?? 1;

if (!fs.existsSync(path.join(root, 'build', 'Release', 'vfio.node')) && sh('npm', ['run', 'install']) !== 0) process.exit(1);
if (sh(process.execPath, [require.resolve('typescript/bin/tsc'), '-p', '.']) !== 0) process.exit(1);

const bdf = process.argv[2];
process.exitCode = bdf
  ? sh(process.execPath, [demo, bdf])
  : sh(path.join(root, 'scripts', 'guest', 'run'), ['--topology', 'single', '--', process.execPath, demo]);
