// MSI-X on the real kernel, with QEMU's nvme (65 vectors, its table inside
// BAR0): the vector count and the table's place as the kernel and config
// space give them, what 6.1 says about mmapping the table, several vectors
// each on its own eventfd, and one vector unwired and rewired on a live
// index. Software triggers (SET_IRQS DATA_NONE) go through the kernel's own
// per-vector trigger path; the nvme test takes real device interrupts.

import assert from 'node:assert/strict';
import { Container, type Device } from '../../lib';
import { requireNvme, testEnv } from './env';

const MSIX_ENTRY = 16;
const MSIX_VECTOR_CTRL_MASKED = 0x1;

describe('MSI-X on the real kernel (QEMU nvme)', () => {
  let container: Container;
  let device: Device;
  beforeEach(() => {
    const nvme = requireNvme(testEnv());
    container = Container.open();
    const group = container.openGroup(nvme.group);
    container.setIommu();
    device = group.openDevice(nvme.bdf);
  });
  afterEach(() => container.close());

  it('reads the vector count from the kernel and the table from config space: the same 65', () => {
    const cap = device.msixCapability;
    assert.equal(device.msix.count, 65, 'VFIO_DEVICE_GET_IRQ_INFO(MSIX).count');
    assert.ok(cap);
    assert.equal(cap.vectors, 65);
    assert.deepEqual(cap.table, { bar: 0, offset: 0x2000, size: 65 * MSIX_ENTRY });
    assert.deepEqual(cap.pba, { bar: 0, offset: 0x3000, size: 16 });
    assert.equal(device.msi.count, 0, 'QEMU nvme has no MSI capability');
  });

  it('6.1 reports BAR0 MSIX_MAPPABLE (no sparse areas): all of BAR0, table included, maps', () => {
    const bar = device.bar(0);
    assert.equal(bar.msixMappable, true);
    assert.equal(bar.sparseAreas, null);
    assert.deepEqual(bar.mmapAreas, [{ offset: 0n, size: 0x4000n }]);
    const m = bar.mmap();
    assert.equal(m.size, 0x4000);
    // The table as vfio-pci programmed it: enabled vectors unmasked, with an
    // x86 MSI address (0xfeeXXXXX, remappable format under intremap=on).
    device.msix.enable(3);
    for (let v = 0; v < 3; v++) {
      const at = 0x2000 + v * MSIX_ENTRY;
      assert.equal(m.read32(at) >>> 20, 0xfee, `vector ${v} message address 0x${m.read32(at).toString(16)}`);
      assert.equal(m.read32(at + 12) & MSIX_VECTOR_CTRL_MASKED, 0, `vector ${v} unmasked`);
    }
  });

  it('enables several vectors, each with its own eventfd and listener', async () => {
    const irq = device.msix;
    irq.enable(4);
    const seen: number[] = [];
    irq.on('interrupt', (v) => seen.push(v));
    const arrived = Promise.all([irq.wait(3, 5000), irq.wait(1, 5000)]);
    irq.trigger(3);
    irq.trigger(1);
    assert.deepEqual(await arrived, [1, 1]);
    assert.deepEqual(seen.sort(), [1, 3]);
    assert.deepEqual([0, 1, 2, 3].map((v) => irq.total(v)), [0, 1, 0, 1]);
  });

  it('unwires one vector of a live index and rewires it; the others keep firing', async () => {
    const irq = device.msix;
    irq.enable(4);
    irq.disableVector(2);
    assert.equal(irq.vectorEnabled(2), false);
    assert.equal(irq.enabled, 4);
    irq.trigger(2); // the kernel has no eventfd for it: nothing may arrive
    const one = irq.wait(1, 5000);
    irq.trigger(1);
    assert.equal(await one, 1);
    await assert.rejects(irq.wait(2), { code: 'ERR_VFIO_IRQ_RANGE' });
    assert.equal(irq.total(2), 0);
    irq.enableVector(2);
    const two = irq.wait(2, 5000);
    irq.trigger(2);
    assert.equal(await two, 1);
    assert.deepEqual([0, 1, 2, 3].map((v) => irq.total(v)), [0, 1, 1, 0]);
  });

  it('refuses to grow a live index (vfio_msi_set_block cannot) with the index unchanged', async () => {
    const irq = device.msix;
    irq.enable(2);
    assert.throws(() => irq.enableVector(2), { code: 'ERR_VFIO_IRQ_RANGE' });
    assert.equal(irq.enabled, 2);
    const v1 = irq.wait(1, 5000);
    irq.trigger(1);
    assert.equal(await v1, 1);
  });
});
