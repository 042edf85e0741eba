#!/usr/bin/env node
// npm test: the fast unit tests (fake kernel), the host tests (real /dev/kvm,
// real memory), then the real-kernel suite inside the QEMU test guest, in one
// boot, and the sPAPR suite inside the ppc64 test guest, in one boot. Ends
// with one line "N passed, N failed" over every suite, and exits non-zero if
// anything failed, was skipped, or nothing ran.
//
//   npm test                    all four
//   npm test -- unit host       only those suites (unit, host, vm, vm-ppc64)
//   VFIO_TEST_BDF=0000:01:00.0 npm test -- vm
//                               the real-kernel suite on this host, against
//                               your device bound to vfio-pci (no guest)
'use strict';

const { spawnSync } = require('node:child_process');
const fs = require('node:fs');
const os = require('node:os');
const path = require('node:path');

const root = path.resolve(__dirname, '..');
const mocha = path.join(root, 'node_modules', 'mocha', 'bin', 'mocha.js');
const config = path.join('test', '.mocharc.json');
const wanted = process.argv.slice(2);
const run = (name) => wanted.length === 0 || wanted.includes(name);
const statsDir = fs.mkdtempSync(path.join(os.tmpdir(), 'vfio-test-'));
const results = [];

function sh(cmd, args, opts = {}) {
  const r = spawnSync(cmd, args, { stdio: 'inherit', cwd: root, ...opts });
  return r.status ?? 128 + (r.signal ? os.constants.signals[r.signal] : 0);
}

function readStats(file, suite, status) {
  const lines = fs.existsSync(file) ? fs.readFileSync(file, 'utf8').trim().split('\n').filter(Boolean) : [];
  if (lines.length === 0) {
    console.error(`\n${suite}: no mocha result (exit status ${status}); counted as one failure`);
    return { suite, passes: 0, failures: 1, pending: 0 };
  }
  const s = lines.map((l) => JSON.parse(l)).reduce((a, b) => ({ passes: a.passes + b.passes, failures: a.failures + b.failures, pending: a.pending + b.pending }));
  if (status !== 0 && s.failures === 0) {
    console.error(`\n${suite}: exited with status ${status} after its tests; counted as one failure`);
    s.failures = 1;
  }
  return { suite, ...s };
}

function mochaSuite(suite, dir, env = {}) {
  const stats = path.join(statsDir, `${suite}.jsonl`);
  console.log(`\n=== ${suite} tests (${dir}) ===`);
  const status = sh(process.execPath, [mocha, '--config', config, dir], {
    env: { ...process.env, VFIO_TEST_STATS: stats, VFIO_TEST_SUITE: suite, ...env },
  });
  results.push(readStats(stats, suite, status));
}

function guestSuite() {
  const out = fs.mkdtempSync(path.join(os.tmpdir(), 'vfio-guest-out-'));
  fs.chmodSync(out, 0o777);
  console.log('\n=== real-kernel tests in the x86_64 test guest (dist/test/vm) ===');
  const inner = `VFIO_TEST_STATS="$VFIO_GUEST_OUT/stats.jsonl" VFIO_TEST_SUITE=guest-x86_64 exec "${process.execPath}" "${mocha}" --config ${config} 'dist/test/vm/**/*.test.js'`;
  // VFIO_RECORD_KERNEL_ANSWERS=1: test/vm/kernel-answers.test.ts records the
  // kernel's answers in the out folder instead of comparing; they become the fixture.
  const record = process.env.VFIO_RECORD_KERNEL_ANSWERS === '1' ? ['--env', 'VFIO_RECORD_KERNEL_ANSWERS=1'] : [];
  const status = sh(path.join(root, 'scripts', 'guest', 'run'), ['--kvm', ...record, '--out', out, '--', 'sh', '-c', inner]);
  if (status === 125) console.error('\nthe test guest could not run: see the messages above (scripts/guest/setup says what to install)');
  if (status === 124) console.error('\nthe test guest timed out: its console is printed above');
  results.push(readStats(path.join(out, 'stats.jsonl'), 'guest-x86_64', status));
  const answers = path.join(out, 'kernel-answers.json');
  if (record.length > 0 && fs.existsSync(answers)) {
    fs.copyFileSync(answers, path.join(root, 'test', 'fixtures', 'kernel-answers.json'));
    console.log('\nkernel answers recorded in test/fixtures/kernel-answers.json');
  }
}

// The sPAPR suite in the ppc64 guest: Debian's ppc64el node there runs the
// host-compiled TypeScript and the cross-compiled addon (VFIO_NATIVE_ADDON,
// set by the guest). A guest that cannot start counts as a failure.
function ppc64Suite() {
  const out = fs.mkdtempSync(path.join(os.tmpdir(), 'vfio-ppc64-out-'));
  fs.chmodSync(out, 0o777);
  console.log('\n=== sPAPR real-kernel tests in the ppc64 test guest (dist/test/vm-spapr) ===');
  const inner = `VFIO_TEST_STATS="$VFIO_GUEST_OUT/stats.jsonl" VFIO_TEST_SUITE=guest-ppc64 exec node "${mocha}" --config ${config} 'dist/test/vm-spapr/**/*.test.js'`;
  const status = sh(path.join(root, 'scripts', 'guest-ppc64', 'run'), ['--hugepages', '4', '--out', out, '--', 'sh', '-c', inner]);
  if (status === 125) console.error('\nthe ppc64 test guest could not run: see the messages above (scripts/guest-ppc64/setup says what to install)');
  if (status === 124) console.error('\nthe ppc64 test guest timed out: its console is printed above');
  results.push(readStats(path.join(out, 'stats.jsonl'), 'guest-ppc64', status));
}

function build() {
  if (!fs.existsSync(path.join(root, 'build', 'Release', 'vfio.node'))) {
    // Through npm, so its nodedir setting (Node's own headers) applies.
    if (sh('npm', ['run', 'install']) !== 0) process.exit(1);
  }
  if (sh(process.execPath, [require.resolve('typescript/bin/tsc'), '-p', '.']) !== 0) process.exit(1);
}

build();
if (run('unit')) mochaSuite('unit', 'dist/test/unit/**/*.test.js');
if (run('host')) mochaSuite('host', 'dist/test/host/**/*.test.js');
if (run('vm')) {
  if (process.env.VFIO_TEST_BDF && process.env.VFIO_GUEST !== '1') mochaSuite('vm-hardware', 'dist/test/vm/**/*.test.js');
  else guestSuite();
}
if (run('vm-ppc64')) {
  if (process.env.VFIO_TEST_BDF && process.env.VFIO_GUEST !== '1' && process.arch === 'ppc64') mochaSuite('vm-spapr-hardware', 'dist/test/vm-spapr/**/*.test.js');
  else ppc64Suite();
}

const total = results.reduce((a, r) => ({ passes: a.passes + r.passes, failures: a.failures + r.failures, pending: a.pending + r.pending }), { passes: 0, failures: 0, pending: 0 });
console.log('\n=== summary ===');
for (const r of results) console.log(`${r.suite.padEnd(14)} ${r.passes} passed, ${r.failures} failed${r.pending ? `, ${r.pending} skipped (a skip is a failure here)` : ''}`);
fs.writeFileSync(path.join(root, '.test-summary.json'), JSON.stringify({ ...total, suites: results }));
console.log(`${total.passes} passed, ${total.failures + total.pending} failed`);
process.exitCode = total.failures + total.pending > 0 || total.passes === 0 ? 1 : 0;
