// Lifetimes on the real kernel: a dropped object graph is collected and every
// fd, mmap and pin comes back; a refused or failed close leaves the kernel
// and the books as they were; the IOMMU context goes with the last group.

import assert from 'node:assert/strict';
import { readFileSync } from 'node:fs';
import { Container, DmaBuffer, Group } from '../../lib';
import { native } from '../../lib/native';
import { collectUntil, leakWarnings, settle } from '../fixtures/gc';
import { containerOptions, fdCount, lockedKb, onIommufdCompat, testEnv, type TestEnv } from './env';
import { errorOf } from './raw';

/** BAR mmaps show in /proc/self/maps as the vfio device's anon inode. */
const barMaps = (): number => readFileSync('/proc/self/maps', 'utf8').split('\n').filter((l) => l.includes('vfio-device')).length;

describe('lifetimes on the real kernel', () => {
  let env: TestEnv;
  before(() => {
    env = testEnv();
  });

  it('a container dropped with a group, a device, a BAR mmap, enabled MSI and a mapping is collected: fds, mmaps and pins come back', async function () {
    this.timeout(120_000); // full GCs under TCG
    await settle();
    const fds = fdCount();
    const maps = barMaps();
    const locked = lockedKb();
    const warnings = leakWarnings();
    try {
      (() => {
        const container = Container.open(containerOptions());
        const group = container.openGroup(env.group);
        const iommu = container.setIommu();
        const device = group.openDevice(env.bdf);
        device.bar(0).mmap();
        device.msi.enable();
        // The buffer is dropped too: the mapping pins it until the context goes.
        iommu.map(DmaBuffer.allocate(64 * 1024), { iova: 0x100000n });
      })();
      assert.ok(fdCount() >= fds + 4, 'container, group, device and eventfd fds are open');
      assert.ok(lockedKb() >= locked + 64, 'the mapping is pinned');
      assert.equal(barMaps(), maps + 1, 'the BAR is mapped');
      await collectUntil(() => fdCount() === fds && barMaps() === maps && lockedKb() === locked);
      assert.equal(fdCount(), fds, 'every fd closed');
      assert.equal(barMaps(), maps, 'the BAR mmap is gone');
      assert.equal(lockedKb(), locked, 'the pin went with the IOMMU context');
      Group.open(env.group).close(); // not EBUSY: the kernel let go of the group
      assert.ok(warnings.list.some((w) => new RegExp(`^group ${env.group} was garbage-collected`).test(w)), warnings.list.join('\n'));
    } finally {
      warnings.stop();
    }
  });

  it('after the last group leaves, the old Iommu is closed, and the new one maps the same IOVA the kernel now has free', () => {
    using buffer = DmaBuffer.allocate(4096);
    using container = Container.open(containerOptions());
    const group = container.openGroup(env.group);
    const old = container.setIommu();
    old.map(buffer, { iova: 0x100000n });
    group.detach();
    assert.equal(old.closed, true);
    assert.equal(errorOf(() => old.map(buffer, { iova: 0x100000n }))?.code, 'ERR_VFIO_CLOSED');
    const flags = native().constants.VFIO_DMA_MAP_FLAG_READ | native().constants.VFIO_DMA_MAP_FLAG_WRITE;
    if (onIommufdCompat()) {
      // An iommufd keeps its compat IOAS when the last group leaves: a raw MAP_DMA still lands there.
      // The library is stricter (the old Iommu stays closed) and SET_IOMMU is allowed again below.
      assert.equal(errorOf(() => container.handle().mapDma(buffer.handle(), 0, 4096, 0x100000n, flags)), null);
      assert.equal(container.handle().unmapDma(0x100000n, 4096n, 0), 4096n);
    } else {
      // The kernel agrees there is no IOMMU: a raw MAP_DMA on the container fd is refused.
      assert.ok(errorOf(() => container.handle().mapDma(buffer.handle(), 0, 4096, 0x100000n, flags)), 'no IOMMU context in the kernel');
    }
    group.attach(container);
    const fresh = container.setIommu();
    const m = fresh.map(buffer, { iova: 0x100000n });
    assert.deepEqual(fresh.mappings, [m]);
    m.unmap();
  });

  it('closing the group under an async map in flight is refused with nothing changed; the map lands and closes cleanly', async () => {
    const fds = fdCount();
    const locked = lockedKb();
    const buffer = DmaBuffer.allocate(2 << 20);
    const container = Container.open(containerOptions());
    const group = container.openGroup(env.group);
    const iommu = container.setIommu();
    const device = group.openDevice(env.bdf);
    const pending = iommu.mapAsync(buffer, { iova: 0x200000n });
    assert.equal(errorOf(() => group.close())?.code, 'ERR_VFIO_BUSY');
    assert.equal(group.closed, false);
    assert.equal(device.closed, false);
    assert.equal(device.bar(0).read32(0), 0x010000ed, 'the device is still open and readable');
    const m = await pending;
    assert.ok(lockedKb() >= locked + 2048, 'pinned in a live context');
    container.close();
    assert.ok(m.closed && group.closed && device.closed);
    buffer.close();
    assert.equal(lockedKb(), locked);
    assert.equal(fdCount(), fds);
  });

  it('irq.wait() resolves with a real interrupt; parked when the device closes it rejects with ERR_VFIO_CLOSED, not a timeout', async () => {
    using container = Container.open(containerOptions());
    const group = container.openGroup(env.group);
    container.setIommu();
    const device = group.openDevice(env.bdf);
    const msi = device.msi;
    msi.enable();
    const first = msi.wait(0, 5000);
    msi.trigger(); // VFIO_IRQ_SET_ACTION_TRIGGER: the kernel signals the eventfd
    assert.ok((await first) >= 1);
    const parked = msi.wait(0, 5000);
    device.close();
    const e = await parked.then(() => null, (x: Error & { code?: string }) => x);
    assert.equal(e?.code, 'ERR_VFIO_CLOSED');
    const after = await msi.wait(0, 100).then(() => null, (x: Error & { code?: string }) => x);
    assert.equal(after?.code, 'ERR_VFIO_CLOSED');
  });
});
