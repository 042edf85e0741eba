#!/usr/bin/env node
// npm test: the fast unit tests (fake kernel), the host tests (real memory,
// real /dev/kvm when the host has one), then the real-kernel suite inside the
// QEMU test guest (and the KVM tests, when the host has no /dev/kvm), in one
// boot, the sPAPR suite inside the ppc64 test guest and the type1 suite
// inside the arm64 (SMMUv3) test guest, one boot each, and the iommufd/cdev
// and noiommu suites in the x86_64 guest booting the kernel we build
// (scripts/guest-kernel/build, built on first use, then cached). Ends
// with one line "N passed, N failed" over every suite, and exits non-zero if
// anything failed, was skipped, or nothing ran.
//
//   npm test                    all of them
//   npm test -- unit host       only those suites (unit, host, vm, docs, package, sample, vm-ppc64, vm-arm64,
//                               vm-iommufd, vm-noiommu)
//   VFIO_VM_FILES='dist/test/vm/dma.test.js' npm test -- vm
//                               only these guest test files (globs, space-separated;
//                               vm, vm-arm64, vm-iommufd and vm-noiommu)
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

// POSIX single quoting for the guest's sh -c.
const shq = (s) => `'${s.replace(/'/g, `'\\''`)}'`;

// The guests run the project from a path under /tmp with a space and a comma
// in it (a relative link to this checkout), as a CI clone may live: a guest
// that loses a project living there fails every guest test instead of
// passing only for checkouts elsewhere.
let linked;
function guestRoot() {
  if (!linked) {
    const dir = fs.mkdtempSync(path.join(os.tmpdir(), 'vfio-root-'));
    linked = path.join(dir, 'a project, here');
    fs.symlinkSync(path.relative(dir, root), linked);
    process.on('exit', () => fs.rmSync(dir, { recursive: true, force: true }));
    console.log(`\nthe guests see the project at ${linked} (a link to ${root})`);
  }
  return linked;
}

function guestMocha(node, suite, files) {
  const at = guestRoot();
  const env = `VFIO_TEST_STATS="$VFIO_GUEST_OUT/stats.jsonl" VFIO_TEST_SUITE=${suite} VFIO_TEST_PROJECT=${shq(at)}`;
  const globs = [].concat(files).map(shq).join(' ');
  return `${env} exec ${shq(node)} ${shq(path.join(at, path.relative(root, mocha)))} --config ${config} ${globs}`;
}

const NVME_SERIAL = 'vfio-nvme-0042';

// VFIO_VM_FILES, when set, replaces a guest suite's own files.
function vmFiles(own) {
  const only = process.env.VFIO_VM_FILES?.split(/\s+/).filter(Boolean);
  return only?.length ? only : own;
}

// One boot of the x86_64 guest through `vfio guest` (the entry point users
// have; the project is its working directory), running mocha on the files.
function x86Suite(suite, title, files, guestArgs) {
  const out = fs.mkdtempSync(path.join(os.tmpdir(), 'vfio-guest-out-'));
  fs.chmodSync(out, 0o777);
  console.log(`\n=== ${title} (${files.join(' ')}) ===`);
  const inner = guestMocha(process.execPath, suite, files);
  const cli = path.join(root, 'dist', 'lib', 'cli', 'main.js');
  const status = sh(process.execPath, [cli, 'guest', ...guestArgs, '--out', out, '--cwd', guestRoot(), '--', 'sh', '-c', inner]);
  if (status === 125) console.error('\nthe test guest could not run: see the messages above (scripts/guest/setup says what to install)');
  if (status === 124) console.error('\nthe test guest timed out: its console is printed above');
  results.push(readStats(path.join(out, 'stats.jsonl'), suite, status));
  return out;
}

// An NVMe controller alone below a root port of its own, with a serial the tests check Identify against.
const nvmeArgs = ['--device', `nvme,name=nvme,size=16M,serial=${NVME_SERIAL}`, '--env', `VFIO_TEST_NVME_SERIAL=${NVME_SERIAL}`];

function guestSuite(extra) {
  // VFIO_RECORD_KERNEL_ANSWERS=1: test/vm/kernel-answers.test.ts records the
  // kernel's answers in the out folder instead of comparing; they become the fixture.
  const record = process.env.VFIO_RECORD_KERNEL_ANSWERS === '1' ? ['--env', 'VFIO_RECORD_KERNEL_ANSWERS=1'] : [];
  const out = x86Suite('guest-x86_64', 'real-kernel tests in the x86_64 test guest', vmFiles(['dist/test/vm/**/*.test.js', ...extra]), [
    '--topology', 'standard', '--kvm', ...nvmeArgs, ...record,
  ]);
  const answers = path.join(out, 'kernel-answers.json');
  if (record.length > 0 && fs.existsSync(answers)) {
    fs.copyFileSync(answers, path.join(root, 'test', 'fixtures', 'kernel-answers.json'));
    console.log('\nkernel answers recorded in test/fixtures/kernel-answers.json');
  }
}

// A suite in a cross guest (scripts/guest-<arch>/run): Debian's node of that
// architecture there runs the host-compiled TypeScript and the
// cross-compiled addon (VFIO_NATIVE_ADDON, set by the guest). A guest that
// cannot start counts as a failure.
function crossSuite(arch, title, files) {
  const out = fs.mkdtempSync(path.join(os.tmpdir(), `vfio-${arch}-out-`));
  fs.chmodSync(out, 0o777);
  console.log(`\n=== ${title} in the ${arch} test guest (${files.join(' ')}) ===`);
  const inner = guestMocha('node', `guest-${arch}`, files);
  const status = sh(path.join(guestRoot(), 'scripts', `guest-${arch}`, 'run'), ['--hugepages', '4', '--out', out, '--', 'sh', '-c', inner]);
  if (status === 125) console.error(`\nthe ${arch} test guest could not run: see the messages above (scripts/guest-${arch}/setup says what to install)`);
  if (status === 124) console.error(`\nthe ${arch} test guest timed out: its console is printed above`);
  results.push(readStats(path.join(out, 'stats.jsonl'), `guest-${arch}`, status));
}

// The type1 suite on arm64 (SMMUv3): every test/vm file but those
// test/vm-arm64/files.ts names with the reason (checked there, in the guest),
// plus the SMMUv3 tests. Read after build(): the list is compiled TypeScript.
function arm64Files() {
  const only = vmFiles(undefined);
  if (only) return only;
  const { ARM64_EXCLUDED } = require(path.join(root, 'dist', 'test', 'vm-arm64', 'files.js'));
  const vm = fs.readdirSync(path.join(root, 'dist', 'test', 'vm')).filter((f) => f.endsWith('.test.js') && !(f in ARM64_EXCLUDED));
  return [...vm.map((f) => `dist/test/vm/${f}`), 'dist/test/vm-arm64/**/*.test.js'];
}

function build() {
  if (!fs.existsSync(path.join(root, 'build', 'Release', 'vfio.node'))) {
    // Through npm, so its nodedir setting (Node's own headers) applies.
    // --build-from-source: this checkout's sources, never a prebuild that loads.
    if (sh('npm', ['run', 'install'], { env: { ...process.env, npm_config_build_from_source: 'true' } }) !== 0) process.exit(1);
  }
  // A fresh dist/: a test file removed or moved must not run from a stale copy.
  fs.rmSync(path.join(root, 'dist'), { recursive: true, force: true });
  if (sh(process.execPath, [require.resolve('typescript/bin/tsc'), '-p', '.']) !== 0) process.exit(1);
}

// The KVM tests need a real /dev/kvm: the host's when it has one, else the
// x86_64 guest's (nested KVM). They always run somewhere: never skipped.
const hostKvm = fs.existsSync('/dev/kvm');
const kvmTests = 'dist/test/kvm/**/*.test.js';

build();
if (run('unit')) mochaSuite('unit', '{dist/test/unit,dist/examples}/**/*.test.js');
if (run('host')) {
  if (!hostKvm) console.log(`\nthis host has no /dev/kvm: the KVM tests (${kvmTests}) run in the x86_64 guest with the vm suite`);
  mochaSuite('host', hostKvm ? `{dist/test/host,dist/test/kvm}/**/*.test.js` : 'dist/test/host/**/*.test.js');
}
if (run('vm')) {
  if (process.env.VFIO_TEST_BDF && process.env.VFIO_GUEST !== '1') mochaSuite('vm-hardware', 'dist/test/vm/**/*.test.js');
  else guestSuite(hostKvm ? [] : [kvmTests]);
}
// The packed package (package, sample) carries the prebuilds: built (or
// found up to date) once, by the one script that builds them.
let prebuilt;
function prebuilds(suite) {
  prebuilt ??= (console.log('\n=== prebuilt addons (scripts/prebuild.js) ==='), sh(process.execPath, [path.join(root, 'scripts', 'prebuild.js')]) === 0);
  if (!prebuilt) results.push({ suite, passes: 0, failures: 1, pending: 0 });
  return prebuilt;
}
// The API reference (TypeDoc, typedoc.json): an undocumented export or a broken link is a failure.
if (run('docs')) {
  console.log('\n=== API reference (npm run docs: TypeDoc, warnings are errors) ===');
  const ok = sh(process.execPath, [path.join(root, 'node_modules', 'typedoc', 'bin', 'typedoc')]) === 0;
  results.push({ suite: 'docs', passes: ok ? 1 : 0, failures: ok ? 0 : 1, pending: 0 });
}
if (run('package') && prebuilds('package')) mochaSuite('package', 'dist/test/package/**/*.test.js');
if (run('sample') && prebuilds('sample')) mochaSuite('sample', 'dist/test/sample/**/*.test.js');
if (run('vm-ppc64')) {
  if (process.env.VFIO_TEST_BDF && process.env.VFIO_GUEST !== '1' && process.arch === 'ppc64') mochaSuite('vm-spapr-hardware', 'dist/test/vm-spapr/**/*.test.js');
  else crossSuite('ppc64', 'sPAPR real-kernel tests', ['dist/test/vm-spapr/**/*.test.js']);
}
if (run('vm-arm64')) crossSuite('arm64', 'type1 real-kernel tests (SMMUv3)', arm64Files());
// The kernel we build (Debian's have no iommufd, cdev or noiommu): with the
// emulated IOMMU and the vm suite's devices, then without any IOMMU. With the
// IOMMU, the container suite runs again on the kernel's VFIO-compatible
// container on /dev/iommu (VFIO_TEST_CONTAINER, test/vm/env.ts).
const compatFiles = ['core', 'dma', 'rules', 'lifetime'].map((f) => `dist/test/vm/${f}.test.js`);
if (run('vm-iommufd')) {
  x86Suite('guest-iommufd', 'iommufd, device cdev and compat-container tests in the x86_64 guest, built kernel', vmFiles(['dist/test/vm-iommufd/**/*.test.js', ...compatFiles]), [
    '--kernel', 'built', '--topology', 'standard', '--kvm', ...nvmeArgs, '--env', 'VFIO_TEST_CONTAINER=/dev/iommu',
  ]);
}
if (run('vm-noiommu')) {
  x86Suite('guest-noiommu', 'noiommu tests in the x86_64 guest without an IOMMU, built kernel', vmFiles(['dist/test/vm-noiommu/**/*.test.js']), [
    '--kernel', 'built', '--no-iommu', '--topology', 'single',
  ]);
}

const total = results.reduce((a, r) => ({ passes: a.passes + r.passes, failures: a.failures + r.failures, pending: a.pending + r.pending }), { passes: 0, failures: 0, pending: 0 });
console.log('\n=== summary ===');
for (const r of results) console.log(`${r.suite.padEnd(14)} ${r.passes} passed, ${r.failures} failed${r.pending ? `, ${r.pending} skipped (a skip is a failure here)` : ''}`);
fs.writeFileSync(path.join(root, '.test-summary.json'), JSON.stringify({ ...total, suites: results }));
console.log(`${total.passes} passed, ${total.failures + total.pending} failed`);
process.exitCode = total.failures + total.pending > 0 || total.passes === 0 ? 1 : 0;
