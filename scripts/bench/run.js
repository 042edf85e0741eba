#!/usr/bin/env node
// npm run bench: the package against a C reference, side by side.
//
//   npm run bench                 everything (~10 min on 2 cores): host, one guest boot, then a
//                                 2-vCPU boot for the event-loop lag cases
//   npm run bench -- --quick      a smoke run: fewer rounds, smaller sizes (not written to results/)
//   npm run bench -- host         only the host cases (or: guest)
//   npm run bench -- --rounds N   rounds per case (default 7; the event-loop lag cases: --big-rounds, 5)
//
// Builds the C reference (scripts/bench/ref.c) and the calibration addon
// (calib.c) with the system compiler into .cache/bench/, makes sure the
// addon and dist/ are built, installs the npm `ioctl` package under
// scripts/bench (optional: without it that row is left out), runs the host
// cases here and the VFIO cases in one boot of the test guest, then writes
// scripts/bench/results/latest.json and latest.md and prints the table.
// Missed targets are reported, not failed: a benchmark is not a test.
'use strict';

const { spawnSync } = require('node:child_process');
const fs = require('node:fs');
const os = require('node:os');
const path = require('node:path');
const { buildRef, buildCalib } = require('./lib/ref');

const root = path.resolve(__dirname, '..', '..');
const benchDir = __dirname;
const cacheDir = path.join(root, '.cache', 'bench');
const argv = process.argv.slice(2);
const quick = argv.includes('--quick');
const only = argv.find((a) => a === 'host' || a === 'guest');
const passOn = [];
for (const f of ['--rounds', '--big-rounds']) {
  const i = argv.indexOf(f);
  if (i >= 0) passOn.push(f, argv[i + 1]);
}
if (quick) passOn.push('--quick');

function sh(cmd, args, opts = {}) {
  const r = spawnSync(cmd, args, { stdio: 'inherit', cwd: root, ...opts });
  return r.status ?? 128;
}

function build() {
  const ref = buildRef();
  const calib = buildCalib();
  if (!calib.binary) console.error(`bench: no calibration addon: ${calib.reason}`);
  if (!fs.existsSync(path.join(root, 'build', 'Release', 'vfio.node'))) {
    if (sh('npm', ['run', 'install']) !== 0) throw new Error('npm run install (the addon) failed');
  }
  if (sh(process.execPath, [require.resolve('typescript/bin/tsc', { paths: [root] }), '-p', '.']) !== 0) {
    throw new Error('tsc -p . failed');
  }
  return { compiler: ref.compiler, calibration: calib.binary ? 'built' : calib.reason };
}

/** The npm `ioctl` package, for comparison only; a failure (offline) just drops its rows. */
function ensureIoctlPackage() {
  if (fs.existsSync(path.join(benchDir, 'node_modules', 'ioctl', 'build', 'Release', 'ioctl.node'))) return 'installed';
  console.error('bench: installing the npm ioctl package under scripts/bench (comparison only)');
  const status = sh('npm', ['install', '--no-audit', '--no-fund', '--no-package-lock'], { cwd: benchDir });
  if (status === 0 && fs.existsSync(path.join(benchDir, 'node_modules', 'ioctl'))) return 'installed now';
  console.error('bench: the npm ioctl package could not be installed (offline?): its rows are left out');
  return 'not installable';
}

function hostCases() {
  const out = path.join(cacheDir, 'host.json');
  fs.rmSync(out, { force: true });
  console.error('\n=== host cases ===');
  if (sh(process.execPath, [path.join(benchDir, 'host.js'), '--out', out, ...passOn]) !== 0) throw new Error('host cases failed');
  return JSON.parse(fs.readFileSync(out, 'utf8'));
}

function guestCases(smp = 1, extra = []) {
  const dir = fs.mkdtempSync(path.join(os.tmpdir(), 'vfio-bench-'));
  fs.chmodSync(dir, 0o777);
  console.error(`\n=== guest cases (one boot of scripts/guest/run, ${smp} vCPU${smp > 1 ? 's' : ''}) ===`);
  const args = ['--topology', 'single', '--smp', String(smp), '--timeout', '1500', '--out', dir, '--', process.execPath, path.join(benchDir, 'guest.js'), ...passOn, ...extra];
  const status = sh(path.join(root, 'scripts', 'guest', 'run'), args);
  const file = path.join(dir, 'bench-guest.json');
  if (status !== 0 || !fs.existsSync(file)) {
    throw new Error(`the guest cases failed (scripts/guest/run exit status ${status}${status === 124 ? ': timeout' : status === 125 ? ': the guest could not run' : ''})`);
  }
  const result = JSON.parse(fs.readFileSync(file, 'utf8'));
  fs.rmSync(dir, { recursive: true, force: true });
  return result;
}

function main() {
  const started = Date.now();
  const builds = build();
  builds.ioctlPackage = ensureIoctlPackage();
  const host = only === 'guest' ? null : hostCases();
  const guest = only === 'host' ? null : guestCases();
  // With one vCPU the pool thread that pins and the JS thread share a CPU;
  // a second boot with two shows what the loop does when they need not.
  const guest2 = only === 'host' ? null : guestCases(2, ['--only', 'guest.lag.']);
  const { textTable, markdownTable, verdictSummary } = require('./lib/report');
  const command = `npm run bench${argv.length ? ` -- ${argv.join(' ')}` : ''}`;
  const result = {
    schema: 1,
    command,
    date: new Date().toISOString(),
    elapsedS: Math.round((Date.now() - started) / 1000),
    quick,
    builds,
    host: host && host.env,
    guest: guest && { ...guest.env, hugePages: guest.hugePages, elapsedS: guest.elapsedS },
    cases: [...(host?.cases ?? []), ...(guest?.cases ?? []), ...(guest2?.cases ?? [])],
  };
  const resultsDir = quick ? cacheDir : path.join(benchDir, 'results');
  fs.mkdirSync(resultsDir, { recursive: true });
  const jsonFile = path.join(resultsDir, quick ? 'quick.json' : 'latest.json');
  fs.writeFileSync(jsonFile, JSON.stringify(result, null, 1) + '\n');
  fs.writeFileSync(path.join(resultsDir, quick ? 'quick.md' : 'latest.md'), markdown(result, markdownTable, verdictSummary));

  console.log(`\n=== results (${command}, ${result.elapsedS} s) ===`);
  console.log(describeEnv(result));
  console.log('');
  console.log(textTable(result));
  console.log('\ntargets:');
  console.log(verdictSummary(result));
  console.log(`\nwritten: ${path.relative(root, jsonFile)} (+ .md)`);
}

function describeEnv(r) {
  const lines = [];
  if (r.host) lines.push(`host: Linux ${r.host.kernel}, ${r.host.cpus} × ${r.host.cpu}, Node ${r.host.node}`);
  if (r.guest) {
    const hp = r.guest.hugePages;
    const pages = hp?.used ? `${hp.reserved} huge pages of 2 MiB for the 1 GiB huge case` : `no huge pages (${hp?.reserved ?? 0} of ${hp?.requested} reserved): 4 KiB pages only`;
    lines.push(`guest: Linux ${r.guest.kernel} under QEMU TCG (1 vCPU, ${r.guest.memMiB} MiB, emulated VT-d, edu), ${pages}`);
  }
  lines.push(`C reference: ${r.builds.compiler}; npm ioctl package: ${r.builds.ioctlPackage}`);
  return lines.join('\n');
}

function markdown(r, markdownTable, verdictSummary) {
  return [
    `# Benchmark results`,
    '',
    `\`${r.command}\`, ${r.date.slice(0, 10)}, ${r.elapsedS} s.`,
    '',
    describeEnv(r)
      .split('\n')
      .map((l) => `- ${l}`)
      .join('\n'),
    '',
    'Medians over interleaved rounds (C batch, JS batch, alternating order), min–max across rounds.',
    '',
    markdownTable(r),
    '',
    '```',
    verdictSummary(r),
    '```',
    '',
  ].join('\n');
}

try {
  main();
} catch (e) {
  console.error(`bench: ${e.message}`);
  process.exit(1);
}
