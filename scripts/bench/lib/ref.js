// The C reference (scripts/bench/ref.c): built with the system compiler into
// .cache/bench/ (git-ignored), run once per batch, one JSON line back.
'use strict';

const { spawnSync } = require('node:child_process');
const fs = require('node:fs');
const path = require('node:path');

const root = path.resolve(__dirname, '..', '..', '..');
const source = path.join(root, 'scripts', 'bench', 'ref.c');
const binary = path.join(root, '.cache', 'bench', 'ref');
const calibSource = path.join(root, 'scripts', 'bench', 'calib.c');
const calibBinary = path.join(root, '.cache', 'bench', 'calib.node');

function stale(output, input) {
  return !fs.existsSync(output) || fs.statSync(output).mtimeMs < fs.statSync(input).mtimeMs;
}

/** cc -O2 when the binary is missing or older than its source; returns the compiler's banner. */
function buildRef({ force = false } = {}) {
  const cc = process.env.CC || 'cc';
  if (force || stale(binary, source)) {
    fs.mkdirSync(path.dirname(binary), { recursive: true });
    const r = spawnSync(cc, ['-O2', '-Wall', '-Wextra', '-pthread', '-o', binary, source], { stdio: 'inherit' });
    if (r.status !== 0) throw new Error(`${cc} -O2 ${path.relative(root, source)} failed (status ${r.status})`);
  }
  const v = spawnSync(cc, ['--version'], { encoding: 'utf8' });
  return { binary, compiler: `${(v.stdout || cc).split('\n')[0]} -O2` };
}

/** Node's own headers (node_api.h): next to the running node, or node-gyp's cache. */
function nodeHeaders() {
  const candidates = [
    path.join(path.dirname(process.execPath), '..', 'include', 'node'),
    path.join(process.env.HOME || '/root', '.cache', 'node-gyp', process.versions.node, 'include', 'node'),
  ];
  return candidates.find((d) => fs.existsSync(path.join(d, 'node_api.h'))) ?? null;
}

/** The calibration addon (calib.c); null (with the reason) when Node's headers are missing. */
function buildCalib({ force = false } = {}) {
  const headers = nodeHeaders();
  if (!headers) return { binary: null, reason: "no node_api.h found (Node's headers)" };
  if (force || stale(calibBinary, calibSource)) {
    const cc = process.env.CC || 'cc';
    const args = ['-O2', '-Wall', '-shared', '-fPIC', '-DNODE_GYP_MODULE_NAME=calib', '-I', headers, '-o', calibBinary, calibSource];
    const r = spawnSync(cc, args, { stdio: 'inherit' });
    if (r.status !== 0) return { binary: null, reason: `${cc} ${args.join(' ')} failed` };
  }
  return { binary: calibBinary };
}

/** The calibration addon if it was built, else null. */
function loadCalib() {
  try {
    return require(calibBinary);
  } catch {
    return null;
  }
}

/**
 * Runs `ref CASE key=value...`; `fds` are handed on as the child's fd 3, 4...
 * Returns the parsed JSON line.
 */
function runRef(name, params = {}, { fds = [] } = {}) {
  const args = [name, ...Object.entries(params).map(([k, v]) => `${k}=${v}`)];
  const r = spawnSync(binary, args, {
    stdio: ['ignore', 'pipe', 'pipe', ...fds],
    encoding: 'utf8',
    maxBuffer: 64 * 1024 * 1024,
  });
  if (r.error) throw r.error;
  if (r.stderr) process.stderr.write(r.stderr);
  if (r.status !== 0) throw new Error(`ref ${args.join(' ')} failed (status ${r.status}, signal ${r.signal}): ${r.stderr.trim()}`);
  return JSON.parse(r.stdout.trim().split('\n').pop());
}

module.exports = { buildRef, buildCalib, loadCalib, runRef, binary };
