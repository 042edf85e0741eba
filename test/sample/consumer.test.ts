// A user's project, as a user has it: created here, depending on the packed
// package (npm pack), with its own mocha suites. Its unit tests run on the
// host against vfio/testing's mock kernel; its VFIO tests run inside
// `vfio guest` against an nvme and an edu bound to vfio-pci, on the real
// kernel. Boots the test guest once: hold /tmp/vfio-guest.lock.
//
// The project runs the addon the package ships (prebuilds/linux-x64, built
// by scripts/prebuild.js before this suite), never this checkout's build;
// the guest kernel cache (.cache) is shared, not fetched again.

import assert from 'node:assert/strict';
import { spawnSync } from 'node:child_process';
import * as fs from 'node:fs';
import * as os from 'node:os';
import path from 'node:path';

const ROOT = path.resolve(__dirname, '..', '..', '..');

const UNIT_TEST = `
const assert = require('node:assert/strict');
const { Container, DmaBuffer } = require('vfio');
const { EduModel, MockKernel } = require('vfio/testing');
const { roundTrip } = require('../../driver');

describe('my edu driver, on the mock kernel', () => {
  it('round-trips bytes by DMA through the (mock) IOMMU', async () => {
    const kernel = new MockKernel([{ id: 3, devices: ['0000:00:03.0'] }]).install();
    try {
      kernel.plug('0000:00:03.0', new EduModel());
      const container = Container.open();
      const group = container.openGroup(3);
      const iommu = container.setIommu();
      const got = await roundTrip(group.openDevice('0000:00:03.0'), iommu, DmaBuffer);
      assert.equal(got, 'all bytes match');
      container.close();
    } finally {
      kernel[Symbol.dispose]();
    }
  });
});
`;

const GUEST_TEST = `
const assert = require('node:assert/strict');
const { Container, DmaBuffer, sysfs } = require('vfio');
const { roundTrip } = require('../../driver');

function open(bdf) {
  const container = Container.open();
  const group = container.openGroup(sysfs.iommuGroupOf(bdf));
  return { container, iommu: container.setIommu(), device: group.openDevice(bdf) };
}

describe('my drivers, on the real kernel in vfio guest', () => {
  it('edu: round-trips bytes by DMA through the IOMMU', async () => {
    const { container, iommu, device } = open(process.env.VFIO_GUEST_DEVICE_EDU0);
    assert.equal(await roundTrip(device, iommu, DmaBuffer), 'all bytes match');
    container.close();
  });

  it('nvme: a real NVMe controller answers in BAR0 (CAP, VS) and config space', () => {
    const { container, device } = open(process.env.VFIO_GUEST_DEVICE_NVME0);
    const bar = device.bar(0).mmap();
    const vs = bar.read32(0x08);
    console.log('      nvme ' + process.env.VFIO_GUEST_DEVICE_NVME0 + ': VS 0x' + vs.toString(16) + ', CAP 0x' + bar.read64(0).toString(16));
    assert.ok(vs >= 0x10000, 'an NVMe version >= 1.0');
    assert.equal(device.config.read16(0), 0x1b36);
    container.close();
  });
});
`;

const DRIVER = `
// The project's own tiny edu driver: program a DMA to the device and back, wait for the MSIs.
exports.roundTrip = async function roundTrip(device, iommu, DmaBuffer) {
  const src = DmaBuffer.allocate(4096);
  const dst = DmaBuffer.allocate(4096);
  const bar = device.bar(0).mmap();
  device.setBusMaster(true);
  device.msi.enable();
  const n = 1024;
  const bytes = src.bytes(0, n);
  for (let i = 0; i < n; i++) bytes[i] = (i * 13 + 7) & 0xff;
  const a = iommu.map(src, { iova: 0x100000n });
  const b = iommu.map(dst, { iova: 0x200000n });
  const dma = async (from, to, cmd) => {
    bar.write32(0x80, from); bar.write32(0x88, to); bar.write32(0x90, n);
    const done = device.msi.wait(0, 10000);
    bar.write32(0x98, cmd);
    await done;
    bar.write32(0x64, bar.read32(0x24));
  };
  await dma(0x100000, 0x40000, 1 | 4);
  await dma(0x40000, 0x200000, 1 | 2 | 4);
  const ok = dst.bytes(0, n).every((v, i) => v === bytes[i]);
  a.unmap(); b.unmap();
  src.close(); dst.close();
  return ok ? 'all bytes match' : 'MISMATCH';
};
`;

describe('a user\'s project on the packed package', () => {
  let dir: string;
  let project: string;
  before(function () {
    this.timeout(180_000);
    dir = fs.mkdtempSync(path.join(os.tmpdir(), 'vfio-sample-'));
    project = path.join(dir, 'my-driver');
    const pack = spawnSync('npm', ['pack', '--ignore-scripts', '--json', '--pack-destination', dir], { cwd: ROOT, encoding: 'utf8' });
    assert.equal(pack.status, 0, pack.stderr);
    const tarball = path.join(dir, (JSON.parse(pack.stdout) as { filename: string }[])[0]!.filename);
    // Installed as a user installs it, mocha included: the guest sees the
    // project folder only (not this checkout, which may live under /tmp).
    fs.mkdirSync(project, { recursive: true });
    const mocha = (JSON.parse(fs.readFileSync(path.join(ROOT, 'package.json'), 'utf8')) as { devDependencies: Record<string, string> }).devDependencies.mocha;
    fs.writeFileSync(
      path.join(project, 'package.json'),
      JSON.stringify({ name: 'my-driver', private: true, dependencies: { vfio: `file:../${path.basename(tarball)}` }, devDependencies: { mocha } }, null, 2),
    );
    const install = spawnSync('npm', ['install', '--prefer-offline', '--no-audit', '--no-fund'], { cwd: project, encoding: 'utf8' });
    assert.equal(install.status, 0, `${install.stdout}${install.stderr}`);
    const pkg = path.join(project, 'node_modules', 'vfio');
    assert.ok(fs.existsSync(path.join(pkg, 'prebuilds', `linux-${process.arch}`, 'vfio.node')), 'the tarball carries this platform\'s prebuild');
    assert.ok(!fs.existsSync(path.join(pkg, 'build')), 'and nothing was built');
    // The guest's kernel and initramfs are the checkout's (fetched once), not the tarball's.
    fs.symlinkSync(path.join(ROOT, '.cache'), path.join(pkg, '.cache'));
    fs.writeFileSync(path.join(project, 'driver.js'), DRIVER);
    fs.mkdirSync(path.join(project, 'test', 'unit'), { recursive: true });
    fs.mkdirSync(path.join(project, 'test', 'vfio'), { recursive: true });
    fs.writeFileSync(path.join(project, 'test', 'unit', 'edu.test.js'), UNIT_TEST);
    fs.writeFileSync(path.join(project, 'test', 'vfio', 'devices.test.js'), GUEST_TEST);
  });
  after(() => fs.rmSync(dir, { recursive: true, force: true }));

  it('loads the prebuilt addon from the installed package', () => {
    const r = spawnSync(process.execPath, ['-e', "require('vfio').DmaBuffer.allocate(4096).close(); console.log(Object.keys(require.cache).filter((k) => k.endsWith('.node')).join())"], { cwd: project, encoding: 'utf8' });
    assert.equal(r.status, 0, r.stderr);
    assert.equal(r.stdout.trim(), path.join(project, 'node_modules', 'vfio', 'prebuilds', `linux-${process.arch}`, 'vfio.node'));
  });

  it('its unit tests pass on vfio/testing, on the host', () => {
    const r = spawnSync(process.execPath, [path.join(project, 'node_modules', 'mocha', 'bin', 'mocha.js'), 'test/unit'], { cwd: project, encoding: 'utf8' });
    console.log(r.stdout.replace(/^/gm, '      | '));
    assert.equal(r.status, 0, r.stderr);
    assert.match(r.stdout, /1 passing/);
  });

  it('its VFIO suite passes inside `vfio guest` against an nvme and an edu, with the command\'s exit status', function () {
    this.timeout(600_000);
    const cli = path.join(project, 'node_modules', 'vfio', 'dist', 'lib', 'cli', 'main.js');
    const r = spawnSync(process.execPath, [cli, 'guest', '--device', 'nvme', '--device', 'edu', '--', process.execPath, path.join(project, 'node_modules', 'mocha', 'bin', 'mocha.js'), 'test/vfio'], {
      cwd: project,
      encoding: 'utf8',
    });
    console.log(`      $ vfio guest --device nvme --device edu -- mocha test/vfio   (exit ${r.status})`);
    console.log(r.stdout.replace(/^/gm, '      | '));
    assert.equal(r.status, 0, r.stderr);
    assert.match(r.stdout, /2 passing/);
    const failing = spawnSync(process.execPath, [cli, 'guest', '--', 'sh', '-c', 'exit 3'], { cwd: project, encoding: 'utf8' });
    assert.equal(failing.status, 3, 'the exit status is the command\'s');
  });
});
