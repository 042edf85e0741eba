// noiommu: opt-in and loud, never reached by accident; the noiommu model maps
// nothing; a buffer's bus addresses exist only while it is locked; the
// container's teardown unlocks. On the mock kernel (its noiommu group, the
// NOIOMMU driver, a fake pagemap and physical DMA); test/vm-noiommu runs the
// same against the real one.

import assert from 'node:assert/strict';
import { mkdirSync, mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import path from 'node:path';
import { Container, DmaBuffer, DmaLock, Group, NOIOMMU_WARNING_CODE, NoIommu } from '../../lib';
import { EduModel } from '../../lib/testing';
import { captureWarnings as warnings } from '../fixtures/warnings';
import { EDU, throwsCode, useFakeKernel } from './fake/setup';

const NOIOMMU_DEV = '0000:00:05.0';

/** A /dev with the nodes the mock kernel has: /dev/vfio/3 and /dev/vfio/noiommu-5. */
function devRoot(): string {
  const dir = mkdtempSync(path.join(tmpdir(), 'vfio-noiommu-'));
  mkdirSync(path.join(dir, 'vfio'));
  writeFileSync(path.join(dir, 'vfio', '3'), '');
  writeFileSync(path.join(dir, 'vfio', 'noiommu-5'), '');
  return dir;
}

describe('noiommu', () => {
  const fake = useFakeKernel([
    { id: 3, devices: [EDU] },
    { id: 5, devices: [NOIOMMU_DEV], noiommu: true },
  ]);
  let dev: string;
  before(() => {
    dev = devRoot();
  });
  after(() => rmSync(dev, { recursive: true, force: true }));

  /** A container with the noiommu group 5, the noiommu model set, its device open. */
  function openNoIommu() {
    const container = Container.open();
    const { result: group } = warnings(() => container.openGroup(5, { unsafeNoIommu: true }));
    const noIommu = container.setIommu('noiommu');
    const device = group.openDevice(NOIOMMU_DEV);
    return { container, group, noIommu, device };
  }

  describe('opening a group', () => {
    it('a noiommu group without the opt-in is refused, naming the option; nothing stays open', () => {
      const e = throwsCode(() => Group.open(5, { devRoot: dev }), 'ERR_VFIO_NOIOMMU_OPT_IN', /unsafeNoIommu: true/);
      assert.match(e.message, /DMA anywhere in memory/);
      assert.equal(fake.k.groups.get(5)!.open, false);
      const c = Container.open();
      throwsCode(() => c.openGroup(5, { devRoot: dev }), 'ERR_VFIO_NOIOMMU_OPT_IN');
      assert.equal(c.groups.length, 0);
      c.close();
    });

    it('the opt-in on a group that has an IOMMU is refused too', () => {
      throwsCode(() => Group.open(3, { devRoot: dev, unsafeNoIommu: true }), 'ERR_VFIO_NOT_NOIOMMU', /has an IOMMU.*without \{ unsafeNoIommu: true \}/);
      assert.equal(fake.k.groups.get(3)!.open, false);
    });

    it('a group that is neither is the kernel ENOENT with its hint', () => {
      throwsCode(() => Group.open(9, { devRoot: dev }), 'ENOENT', /bind a device of group 9/);
      throwsCode(() => Group.open(9, { devRoot: dev, unsafeNoIommu: true }), 'ENOENT');
    });

    it('the opt-in opens /dev/vfio/noiommu-N and emits a VFIO_NOIOMMU process warning saying the device can DMA anywhere', () => {
      const { result: group, warnings: w } = warnings(() => Group.open(5, { unsafeNoIommu: true }));
      assert.equal(group.path, '/dev/vfio/noiommu-5');
      assert.equal(group.noIommu, true);
      assert.equal(group.description, 'noiommu group 5');
      assert.equal(w.length, 1);
      assert.equal(w[0].code, NOIOMMU_WARNING_CODE);
      assert.equal(NOIOMMU_WARNING_CODE, 'VFIO_NOIOMMU');
      assert.match(w[0].message, /noiommu-5.*can DMA anywhere in physical memory/);
      group.close();
    });

    it('a regular open emits no warning and is no noiommu group', () => {
      const { result: group, warnings: w } = warnings(() => Group.open(3));
      assert.equal(group.noIommu, false);
      assert.equal(w.length, 0);
      group.close();
    });

    it('without CAP_SYS_RAWIO the kernel says EPERM and the hint names the capability', () => {
      fake.k.capSysRawio = false;
      const { warnings: w } = warnings(() => throwsCode(() => Group.open(5, { unsafeNoIommu: true }), 'EPERM', /CAP_SYS_RAWIO/));
      assert.equal(w.length, 0, 'no warning for an open that failed');
    });
  });

  describe('the container', () => {
    it('noiommu and IOMMU groups never share a container: refused before SET_CONTAINER, either way round', () => {
      const c = Container.open();
      c.openGroup(3);
      const { result: g5 } = warnings(() => Group.open(5, { unsafeNoIommu: true }));
      fake.k.calls.length = 0;
      throwsCode(() => g5.attach(c), 'ERR_VFIO_IOMMU_MISMATCH', /use a container per kind/);
      assert.deepEqual(fake.k.calls.filter((x) => /SET_CONTAINER/.test(x)), []);
      g5.close();
      c.close();

      const d = Container.open();
      warnings(() => d.openGroup(5, { unsafeNoIommu: true }));
      const g3 = Group.open(3);
      throwsCode(() => g3.attach(d), 'ERR_VFIO_IOMMU_MISMATCH');
      g3.close();
      d.close();
    });

    it('the kernel would say EPERM to the mix (what the rule saves the caller from)', () => {
      const c = Container.open();
      c.openGroup(3);
      const { result: g5 } = warnings(() => Group.open(5, { unsafeNoIommu: true }));
      throwsCode(() => g5.handle().setContainer(c.handle()), 'EPERM');
      g5.close();
      c.close();
    });

    it('type1 (or no model named) on noiommu groups is refused before SET_IOMMU, naming setIommu("noiommu")', () => {
      const c = Container.open();
      warnings(() => c.openGroup(5, { unsafeNoIommu: true }));
      fake.k.calls.length = 0;
      throwsCode(() => c.setIommu('type1v2'), 'ERR_VFIO_IOMMU_MISMATCH', /noiommu group 5 has no IOMMU behind its device.*setIommu\('noiommu'\)/);
      throwsCode(() => c.setIommu(), 'ERR_VFIO_IOMMU_MISMATCH');
      assert.deepEqual(fake.k.calls, []);
      // The kernel's own answer: no driver a noiommu container may use offers type1.
      throwsCode(() => c.handle().setIommu(fake.k.constants.VFIO_TYPE1v2_IOMMU), 'ENODEV');
      assert.equal(c.checkExtension(fake.k.constants.VFIO_TYPE1v2_IOMMU), 0);
      assert.equal(c.checkExtension(fake.k.constants.VFIO_NOIOMMU_IOMMU), 1);
      c.close();
    });

    it('noiommu on groups with an IOMMU is refused before SET_IOMMU', () => {
      const c = Container.open();
      c.openGroup(3);
      fake.k.calls.length = 0;
      throwsCode(() => c.setIommu('noiommu'), 'ERR_VFIO_IOMMU_MISMATCH', /only for noiommu groups/);
      assert.deepEqual(fake.k.calls, []);
      c.close();
    });

    it('a kernel without noiommu mode: IOMMU_UNSUPPORTED naming the module parameter', () => {
      const c = Container.open();
      warnings(() => c.openGroup(5, { unsafeNoIommu: true }));
      fake.k.unsafeNoiommuMode = false;
      throwsCode(() => c.setIommu('noiommu'), 'ERR_VFIO_IOMMU_UNSUPPORTED', /enable_unsafe_noiommu_mode=1/);
      assert.equal(c.noIommu, null);
      c.close();
    });

    it('setIommu("noiommu") sets the model: no Iommu, requireIommu refuses, devices open', () => {
      const { container, noIommu, device } = openNoIommu();
      assert.ok(noIommu instanceof NoIommu);
      assert.equal(container.noIommu, noIommu);
      assert.equal(container.iommu, null);
      assert.equal(fake.k.containers[0].iommu, fake.k.constants.VFIO_NOIOMMU_IOMMU);
      throwsCode(() => container.requireIommu(), 'ERR_VFIO_IOMMU_MISMATCH', /noIommu\.lock/);
      throwsCode(() => container.setIommu('noiommu'), 'ERR_VFIO_IOMMU_ALREADY_SET');
      assert.equal(device.closed, false);
      // The kernel's answer to MAP_DMA on it: the noiommu driver knows no such ioctl.
      const b = DmaBuffer.allocate(4096);
      throwsCode(() => container.handle().mapDma(b.handle(), 0, 4096, 0n, 3), 'ENOTTY');
      container.close();
      b.close();
    });
  });

  describe('DMA locks', () => {
    it('lock() mlocks the buffer and gives each page its bus address (PFN × page size) from pagemap', () => {
      const { container, noIommu } = openNoIommu();
      const buffer = DmaBuffer.allocate(3 * 4096);
      const lock = noIommu.lock(buffer);
      const mock = fake.k.buffers.at(-1)!;
      assert.equal(mock.locked, true);
      assert.deepEqual(lock.pages, mock.pfns.map((p) => p * 4096n));
      assert.equal(lock.pageSize, 4096);
      assert.equal(lock.busAddress(), mock.pfns[0] * 4096n);
      assert.equal(lock.busAddress(4096 + 12), mock.pfns[1] * 4096n + 12n);
      assert.notEqual(lock.pages[1], lock.pages[0] + 4096n, 'pages are not assumed contiguous');
      assert.deepEqual(noIommu.locks, [lock]);
      assert.deepEqual(buffer.users, [lock]);
      container.close();
      buffer.close();
    });

    it('busRange() gives one DMA its address only where the bytes are physically contiguous; segments() lists the pieces', () => {
      const { container, noIommu } = openNoIommu();
      const apart = noIommu.lock(DmaBuffer.allocate(3 * 4096));
      const mock = fake.k.buffers.at(-1)!;
      assert.equal(apart.busRange(100, 3996), mock.pfns[0] * 4096n + 100n, 'inside one page');
      throwsCode(() => apart.busRange(4000, 200), 'ERR_VFIO_NOT_CONTIGUOUS', /offset 0x1000 is at 0x[0-9a-f]+, not right after.*lock\.segments/);
      assert.deepEqual(apart.segments(4000, 200), [
        { offset: 4000, busAddress: mock.pfns[0] * 4096n + 4000n, length: 96 },
        { offset: 4096, busAddress: mock.pfns[1] * 4096n, length: 104 },
      ]);
      assert.equal(apart.segments().length, 3);
      throwsCode(() => apart.busRange(8192, 8192), 'ERR_VFIO_BUFFER_RANGE');
      throwsCode(() => apart.busRange(0, 0), 'ERR_OUT_OF_RANGE');
      fake.k.pfnStride = 1n;
      const together = noIommu.lock(DmaBuffer.allocate(3 * 4096));
      const m2 = fake.k.buffers.at(-1)!;
      assert.equal(together.busRange(4000, 200), m2.pfns[0] * 4096n + 4000n, 'adjacent pages: one range');
      assert.deepEqual(together.segments(), [{ offset: 0, busAddress: m2.pfns[0] * 4096n, length: 3 * 4096 }]);
      const [b1, b2] = [apart.buffer, together.buffer];
      container.close();
      throwsCode(() => together.segments(), 'ERR_VFIO_CLOSED');
      b1.close();
      b2.close();
    });

    it('a locked buffer cannot be freed; once unlocked it can, and its bus addresses are gone', () => {
      const { container, noIommu } = openNoIommu();
      const buffer = DmaBuffer.allocate(4096);
      const lock = noIommu.lock(buffer);
      throwsCode(() => buffer.close(), 'ERR_VFIO_BUFFER_IN_USE', /noiommu lock.*unlock it/);
      assert.equal(buffer.closed, false);
      lock.unlock();
      assert.equal(fake.k.buffers.at(-1)!.locked, false);
      throwsCode(() => lock.busAddress(0), 'ERR_VFIO_CLOSED', /unlocked.*lock the buffer again/);
      throwsCode(() => lock.pages, 'ERR_VFIO_CLOSED');
      lock.unlock(); // idempotent
      buffer.close();
      container.close();
    });

    it('no frame numbers in pagemap (no CAP_SYS_ADMIN): refused with why, never handed out, the buffer left unlocked', () => {
      const { container, noIommu } = openNoIommu();
      const buffer = DmaBuffer.allocate(4096);
      fake.k.capSysAdmin = false;
      throwsCode(() => noIommu.lock(buffer), 'ERR_VFIO_NO_BUS_ADDRESS', /CAP_SYS_ADMIN/);
      assert.equal(fake.k.buffers.at(-1)!.locked, false);
      assert.deepEqual(buffer.users, []);
      assert.deepEqual(noIommu.locks, []);
      buffer.close();
      container.close();
    });

    it('a buffer is locked once: a second lock is refused (munlock does not count)', () => {
      const { container, noIommu } = openNoIommu();
      const buffer = DmaBuffer.allocate(4096);
      noIommu.lock(buffer);
      fake.k.calls.length = 0;
      throwsCode(() => noIommu.lock(buffer), 'ERR_VFIO_ALREADY_LOCKED');
      assert.deepEqual(fake.k.calls, []);
      container.close();
      buffer.close();
    });

    it('a closed buffer, or a lock of a closed model, is ERR_VFIO_CLOSED', () => {
      const { container, noIommu } = openNoIommu();
      const buffer = DmaBuffer.allocate(4096);
      buffer.close();
      throwsCode(() => noIommu.lock(buffer), 'ERR_VFIO_CLOSED');
      container.close();
      assert.equal(noIommu.closed, true);
      const b2 = DmaBuffer.allocate(4096);
      throwsCode(() => noIommu.lock(b2), 'ERR_VFIO_CLOSED', /container is closed/);
      b2.close();
    });

    it("the container's close unlocks in teardown's order: device, then munlock, then the group leaves", () => {
      const { container, noIommu, device } = openNoIommu();
      const buffer = DmaBuffer.allocate(4096);
      const lock = noIommu.lock(buffer);
      device.msi.enable();
      fake.k.calls.length = 0;
      container.close();
      const order = fake.k.calls.filter((c) => /SET_IRQS|munlock|UNSET_CONTAINER/.test(c));
      assert.deepEqual(order, ['ioctl(VFIO_DEVICE_SET_IRQS)', 'munlock', 'ioctl(VFIO_GROUP_UNSET_CONTAINER)']);
      assert.ok(lock.closed && device.closed);
      assert.equal(fake.k.buffers.at(-1)!.locked, false);
      buffer.close();
    });

    it('the last group leaving takes the model and its locks; a new setIommu("noiommu") is needed', () => {
      const { container, group, noIommu } = openNoIommu();
      const buffer = DmaBuffer.allocate(4096);
      const lock = noIommu.lock(buffer);
      group.detach();
      assert.ok(lock.closed);
      assert.equal(container.noIommu, null);
      throwsCode(() => noIommu.lock(buffer), 'ERR_VFIO_CLOSED', /last group left/);
      group.attach(container);
      const again = container.setIommu('noiommu');
      assert.notEqual(again, noIommu);
      container.close();
      buffer.close();
    });

    it('a munlock the kernel refuses stops the close there, with the lock and the container still open', () => {
      const { container, noIommu } = openNoIommu();
      const buffer = DmaBuffer.allocate(4096);
      const lock = noIommu.lock(buffer);
      fake.k.failNext.set('munlock', 'ENOMEM');
      throwsCode(() => container.close(), 'ENOMEM', /still open: call close\(\) again/);
      assert.equal(lock.closed, false);
      assert.equal(container.closed, false);
      container.close();
      assert.ok(lock.closed && container.closed);
      buffer.close();
    });
  });

  describe('edu DMA by bus address (the mock machine)', () => {
    function eduRoundTrip(lockedAt: bigint | null) {
      const edu = new EduModel();
      fake.k.plug(NOIOMMU_DEV, edu);
      if (lockedAt !== null) fake.k.nextPfn = lockedAt / 4096n;
      const { container, noIommu, device } = openNoIommu();
      const buffer = DmaBuffer.allocate(8192);
      const lock = noIommu.lock(buffer);
      device.setBusMaster(true);
      const bar = device.bar(0);
      const bytes = buffer.bytes();
      for (let i = 0; i < 256; i++) bytes[i] = i ^ 0x5a;
      const dma = (src: bigint, dst: bigint, cmd: number) => {
        bar.write64(0x80, src);
        bar.write64(0x88, dst);
        bar.write64(0x90, 256n);
        bar.write64(0x98, BigInt(cmd));
      };
      dma(lock.busAddress(0), 0x40000n, 1); // RAM → device
      dma(0x40000n, lock.busAddress(4096), 3); // device → RAM
      const back = Buffer.from(buffer.bytes(4096, 256));
      return { edu, container, buffer, back, expected: Buffer.from(bytes.subarray(0, 256)) };
    }

    it('RAM → device → RAM at the locked pages’ bus addresses brings the bytes back', () => {
      const { edu, container, buffer, back, expected } = eduRoundTrip(null);
      assert.deepEqual(back, expected);
      assert.equal(edu.dmaCount, 2);
      assert.deepEqual(fake.k.strayDma, []);
      container.close();
      buffer.close();
    });

    it("pages above edu's 28-bit dma_mask: edu clamps the address and the DMA lands in other memory", () => {
      const { edu, container, buffer, back } = eduRoundTrip(0x20000000n);
      assert.match(edu.errors.join('\n'), /clamping DMA 0x20000000 to 0x0/);
      assert.equal(back.every((b) => b === 0), true, 'nothing reached the buffer');
      assert.ok(fake.k.strayDma.length > 0, 'the DMA went to a physical address that is no buffer of ours');
      container.close();
      buffer.close();
    });
  });

  it('DmaLock and NoIommu are exported for instanceof checks', () => {
    const { container, noIommu } = openNoIommu();
    const b = DmaBuffer.allocate(4096);
    assert.ok(noIommu.lock(b) instanceof DmaLock);
    container.close();
    b.close();
  });
});
