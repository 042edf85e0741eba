#!/usr/bin/env node
// npm run bench: the library against a C reference, side by side.
//
//   npm run bench                  the HOST suite (~1 min), then the GUEST suite (one boot of the test guest)
//   npm run bench -- host          one suite (or: guest)
//   npm run bench -- --readme      and then rewrite README.md's table (between its bench markers)
//   npm run bench -- --readme-only the table from the last results, nothing run
//   --rounds N (default 5)  --quick (a smoke run: results in out/quick.json, never the README)
//   --max-load L (default 1.0): the guest boots only once the 1-minute load is at most L (waits up to --wait-min, 60)
//
// Results: scripts/bench/out/results.json (git-ignored); a suite run
// replaces its own part and keeps the other's. A benchmark is not a test:
// a missed target is reported, never failed.
'use strict';

const { spawnSync } = require('node:child_process');
const fs = require('node:fs');
const os = require('node:os');
const path = require('node:path');
const { root, out, refBinary, fmt } = require('./common');

const argv = process.argv.slice(2);
const flag = (name, fallback) => (argv.includes(name) ? argv[argv.indexOf(name) + 1] : fallback);
const quick = argv.includes('--quick');
const only = argv.find((a) => a === 'host' || a === 'guest');
const passOn = [...(argv.includes('--rounds') ? ['--rounds', flag('--rounds')] : []), ...(quick ? ['--quick'] : [])];
const resultsFile = path.join(out, quick ? 'quick.json' : 'results.json');
const LOCK = '/tmp/vfio-guest.lock';

const load = () => fs.readFileSync('/proc/loadavg', 'utf8').split(' ').slice(0, 3).map(Number);
const sleep = (ms) => Atomics.wait(new Int32Array(new SharedArrayBuffer(4)), 0, 0, ms);

function sh(cmd, args, opts = {}) {
  const r = spawnSync(cmd, args, { stdio: 'inherit', cwd: root, ...opts });
  if (r.error) throw r.error;
  return r.status ?? 128;
}

function build() {
  if (!fs.existsSync(path.join(root, 'build', 'Release', 'vfio.node'))) throw new Error('no build/Release/vfio.node: build the addon first (npm run build)');
  fs.mkdirSync(out, { recursive: true });
  const source = path.join(__dirname, 'ref.c');
  if (!fs.existsSync(refBinary) || fs.statSync(refBinary).mtimeMs < fs.statSync(source).mtimeMs) {
    if (sh(process.env.CC || 'cc', ['-O2', '-Wall', '-Wextra', '-pthread', '-o', refBinary, source]) !== 0) throw new Error('cc ref.c failed');
  }
  if (sh(process.execPath, [require.resolve('typescript/bin/tsc', { paths: [root] }), '-p', '.']) !== 0) throw new Error('tsc -p . failed');
}

function host() {
  const file = path.join(out, 'host.json');
  const before = load();
  if (sh(process.execPath, [path.join(__dirname, 'host.js'), '--out', file, ...passOn]) !== 0) throw new Error('the host suite failed');
  return { ...JSON.parse(fs.readFileSync(file, 'utf8')), load: { before, after: load() } };
}

/** Others share the 2 cores and the guest lock: boot only when the load is low and the lock is free. */
function guest() {
  const maxLoad = Number(flag('--max-load', 1));
  const deadline = Date.now() + Number(flag('--wait-min', 60)) * 60e3;
  const dir = fs.mkdtempSync(path.join(os.tmpdir(), 'vfio-bench-'));
  // The nvme case drives QEMU's nvme (a fresh 16 MiB namespace) below a root port of its own.
  const run = [path.join(root, 'scripts', 'guest', 'run'), '--topology', 'single', '--device', 'nvme,name=nvme,size=16M', '--timeout', '1500', '--out', dir, '--'];
  const cmd = [process.execPath, path.join(__dirname, 'guest.js'), ...passOn];
  for (;;) {
    const before = load();
    if (before[0] > maxLoad) {
      if (Date.now() > deadline) throw new Error(`the load stayed above ${maxLoad} (now ${before.join(' ')}): no guest run; try later or pass --max-load`);
      console.error(`bench: load ${before[0]} > ${maxLoad}: waiting for the machine to calm down`);
      sleep(30e3);
      continue;
    }
    const status = sh('flock', ['-n', '-E', '75', LOCK, ...run, ...cmd]);
    if (status === 75) {
      console.error(`bench: ${LOCK} is held (another guest is running): waiting`);
      sleep(30e3);
      continue;
    }
    const file = path.join(dir, 'bench-guest.json');
    if (status !== 0 || !fs.existsSync(file)) throw new Error(`the guest suite failed (scripts/guest/run exit status ${status})`);
    const result = JSON.parse(fs.readFileSync(file, 'utf8'));
    fs.rmSync(dir, { recursive: true, force: true });
    return { ...result, load: { before, after: load() } };
  }
}

// --- the table ----------------------------------------------------------------

const ratio = (a, b) => (a && b ? a.median / b.median : NaN);
const times = (x) => (Number.isFinite(x) ? `${x.toFixed(2)}×` : '–');

function verdict(row, rows) {
  const t = row.target ?? {};
  const lib = row.lib.median;
  const judge = (value, limit) => (value <= limit ? 'met' : `**missed** (+${Math.round((value / limit - 1) * 100)}%)`);
  if (t.ratio) return [`≤ ${t.ratio}×`, judge(ratio(row.lib, row.c), t.ratio)];
  if (t.ns) return [`≤ ${fmt(t.ns)}`, judge(lib, t.ns)];
  if (t.vs) {
    const x = lib / rows.find((r) => r.id === t.vs).lib.median;
    return t.max ? [`≤ ${t.max}× the 1-live row`, `${times(x)}: ${x <= t.max ? 'met' : '**missed**'}`] : ['–', `${times(x)} the 1-live row`];
  }
  if (t.overhead) return ['–', `+${fmt(lib - row.c.median)} per access`];
  return ['–', ''];
}

function table(suite) {
  const lines = [
    '| case | C, Node\'s thread count | C, 1 thread | lib (min–max) | lib / C | lib / C 1-thread | target | status |',
    '| --- | --- | --- | --- | --- | --- | --- | --- |',
  ];
  for (const row of suite.rows) {
    const [target, status] = verdict(row, suite.rows);
    const lib = `${fmt(row.lib.median)} (${fmt(row.lib.min)}–${fmt(row.lib.max)})`;
    lines.push(`| ${row.title} | ${row.c ? fmt(row.c.median) : '–'} | ${row.c1 ? fmt(row.c1.median) : '–'} | ${lib} | ${times(ratio(row.lib, row.c))} | ${times(ratio(row.lib, row.c1))} | ${target} | ${status} |`);
  }
  return lines.join('\n');
}

function describe(suite) {
  const where = suite.where === 'guest' ? 'guest (QEMU TCG, 1 vCPU, edu; runs under flock)' : 'host';
  const l = suite.load;
  return `**${where}**, ${suite.date.slice(0, 16).replace('T', ' ')} UTC: Linux ${suite.kernel}, ${suite.cpus} × ${suite.cpu}, Node ${suite.node}, ${suite.rounds} rounds (medians); C's threads as Node's: ${suite.rows[0]?.threads}; host load (1/5/15 min) before ${l.before.join(' ')}, after ${l.after.join(' ')}.`;
}

function render(results) {
  return ['host', 'guest']
    .filter((w) => results[w])
    .map((w) => `${describe(results[w])}\n\n${table(results[w])}`)
    .join('\n\n');
}

function rewriteReadme(results) {
  const file = path.join(root, 'README.md');
  const text = fs.readFileSync(file, 'utf8');
  const begin = '<!-- bench:begin -->';
  const end = '<!-- bench:end -->';
  const i = text.indexOf(begin);
  const j = text.indexOf(end);
  if (i < 0 || j < i) throw new Error(`README.md has no ${begin} … ${end} markers`);
  fs.writeFileSync(file, `${text.slice(0, i + begin.length)}\n${render(results)}\n${text.slice(j)}`);
  console.log('bench: README.md table rewritten');
}

function main() {
  const previous = fs.existsSync(resultsFile) ? JSON.parse(fs.readFileSync(resultsFile, 'utf8')) : {};
  if (argv.includes('--readme-only')) return rewriteReadme(previous);
  build();
  const results = { ...previous };
  if (only !== 'guest') results.host = host();
  if (only !== 'host') results.guest = guest();
  fs.writeFileSync(resultsFile, JSON.stringify(results, null, 1) + '\n');
  console.log(`\n${render(results)}\n\nwritten: ${path.relative(root, resultsFile)}`);
  if (argv.includes('--readme')) {
    if (quick) throw new Error('--quick results never go into the README');
    rewriteReadme(results);
  }
}

try {
  main();
} catch (e) {
  console.error(`bench: ${e.message}`);
  process.exit(1);
}
