// MSI-X rules against the mock kernel: the vector count and the table's
// place come from the kernel (IRQ_INFO, config space), mmaps of the table's
// pages need the kernel's MSIX_MAPPABLE word, and single vectors of a live
// index are unwired and rewired without touching the others.

import assert from 'node:assert/strict';
import { Container, Kvm, type Device } from '../../lib';
import type { DeviceBus, DeviceModel, MockDevice } from '../../lib/testing';
import type { AccessWidth } from '../../lib/native';
import { EDU, throwsCode, useFakeKernel } from './fake/setup';

/** A device shaped like QEMU 7.2's nvme: 16 KiB BAR0, MSI-X table at 0x2000, PBA at 0x3000. */
class MsixModel implements DeviceModel {
  readonly vendorId = 0x1b36;
  readonly deviceId = 0x0010;
  readonly bar0Size = 0x4000;
  readonly msix = { vectors: 8, tableOffset: 0x2000, pbaOffset: 0x3000 };
  attach(_bus: DeviceBus): void {}
  read(_offset: number, width: AccessWidth): number | bigint {
    return width === 8 ? 0n : 0;
  }
  write(): void {}
}

describe('MSI-X (mock kernel)', () => {
  const fake = useFakeKernel();
  let container: Container;
  let device: Device;
  let raw: MockDevice;
  const open = (): void => {
    fake.k.plug(EDU, new MsixModel());
    container = Container.open();
    const group = container.openGroup(3);
    container.setIommu();
    device = group.openDevice(EDU);
    raw = fake.k.devices.at(-1)!;
  };
  afterEach(() => container?.close());

  it('reads the vector count from the kernel and the table from config space', () => {
    open();
    assert.equal(device.msix.count, 8);
    assert.deepEqual(device.msixCapability, {
      capOffset: 0x40,
      vectors: 8,
      table: { bar: 0, offset: 0x2000, size: 128 },
      pba: { bar: 0, offset: 0x3000, size: 8 },
    });
  });

  it('maps the table pages when the kernel says MSIX_MAPPABLE (as 6.1 did for nvme)', () => {
    open();
    const bar = device.bar(0);
    assert.equal(bar.msixMappable, true);
    assert.deepEqual(bar.mmapAreas, [{ offset: 0n, size: 0x4000n }]);
    const m = bar.mmap();
    assert.equal(m.size, 0x4000);
  });

  it('refuses to map the table pages without MSIX_MAPPABLE, before any mmap, and maps the sparse areas', () => {
    fake.k.msixMappable = false;
    open();
    const bar = device.bar(0);
    assert.equal(bar.msixMappable, false);
    assert.deepEqual(bar.sparseAreas, [
      { offset: 0n, size: 0x2000n },
      { offset: 0x3000n, size: 0x1000n },
    ]);
    fake.k.calls.length = 0;
    throwsCode(() => bar.mmap({ offset: 0, size: 0x4000 }), 'ERR_VFIO_MSIX_TABLE', /MSI-X table's pages 0x2000\+0x1000/);
    throwsCode(() => bar.mmap({ offset: 0x2000, size: 0x1000 }), 'ERR_VFIO_MSIX_TABLE');
    assert.equal(fake.k.calls.filter((c) => c === 'mmap').length, 0, 'no mmap was issued');
    assert.equal(bar.mmap().size, 0x2000, 'the default is the first area: registers and doorbells');
    assert.equal(bar.mmap({ offset: 0x3000 }).size, 0x1000, 'the PBA page is a sparse area of its own');
  });

  it('refuses the table pages even when the kernel offers no sparse areas and no MSIX_MAPPABLE', () => {
    fake.k.msixMappable = false;
    open();
    // What a kernel could say with neither capability: the whole BAR "mappable".
    const bar = device.bar(0);
    Object.defineProperty(bar, 'sparseAreas', { value: null });
    throwsCode(() => bar.mmap({ offset: 0x2000, size: 0x1000 }), 'ERR_VFIO_MSIX_TABLE');
  });

  it('enables N vectors, each with its own eventfd and listener', async () => {
    open();
    const irq = device.msix;
    irq.enable(4);
    assert.equal(raw.irqs.get(2)?.length, 4);
    const seen: number[] = [];
    irq.on('interrupt', (v) => seen.push(v));
    raw.raise(2, 3);
    raw.raise(2, 1);
    assert.equal(await irq.wait(1, 1000), 1);
    await new Promise((r) => setImmediate(r));
    assert.deepEqual(seen.sort(), [1, 3]);
    assert.deepEqual([0, 1, 2, 3].map((v) => irq.total(v)), [0, 1, 0, 1]);
  });

  it('unwires one vector of a live index and rewires it, the others untouched', async () => {
    open();
    const irq = device.msix;
    irq.enable(4);
    const before = raw.irqs.get(2)!.slice();
    const waiting = irq.wait(2);
    irq.disableVector(2);
    await assert.rejects(waiting, { code: 'ERR_VFIO_ORDER' });
    assert.equal(irq.vectorEnabled(2), false);
    assert.equal(irq.enabled, 4);
    assert.equal(raw.irqs.get(2)![2], null, 'the kernel got fd -1 for vector 2');
    assert.deepEqual([0, 1, 3].map((v) => raw.irqs.get(2)![v]), [0, 1, 3].map((v) => before[v]), 'the others keep their eventfds');
    await assert.rejects(irq.wait(2), { code: 'ERR_VFIO_IRQ_RANGE' });
    raw.raise(2, 1);
    assert.equal(await irq.wait(1, 1000), 1);
    irq.enableVector(2);
    assert.equal(irq.vectorEnabled(2), true);
    raw.raise(2, 2);
    assert.equal(await irq.wait(2, 1000), 1);
  });

  it('refuses to grow a live index or touch a vector of a disabled one, with nothing sent', () => {
    open();
    const irq = device.msix;
    throwsCode(() => irq.disableVector(0), 'ERR_VFIO_ORDER', /enable\(n\) it first/);
    irq.enable(2);
    fake.k.calls.length = 0;
    throwsCode(() => irq.enableVector(2), 'ERR_VFIO_IRQ_RANGE', /cannot grow a live index/);
    throwsCode(() => irq.disableVector(5), 'ERR_VFIO_IRQ_RANGE');
    assert.deepEqual(fake.k.calls, []);
    assert.equal(irq.vectorEnabled(1), true);
  });

  it('keeps the vector wired when the kernel refuses to unwire it', () => {
    open();
    const irq = device.msix;
    irq.enable(2);
    fake.k.failNext.set('ioctl(VFIO_DEVICE_SET_IRQS)', 'EINVAL');
    throwsCode(() => irq.disableVector(1), 'EINVAL');
    assert.equal(irq.vectorEnabled(1), true);
    assert.notEqual(raw.irqs.get(2)![1], null);
  });

  it('refuses to unwire a vector a VM holds through an irqfd (remove the irqfd first)', () => {
    open();
    const kvm = Kvm.open();
    const vm = kvm.createVm();
    vm.createIrqchip();
    const irq = device.msix;
    irq.enable(2);
    const f = vm.irqfd(irq, { gsi: 24, vector: 1 });
    throwsCode(() => irq.disableVector(1), 'ERR_VFIO_ORDER', /wired to a VM/);
    assert.equal(irq.vectorEnabled(1), true);
    irq.disableVector(0);
    f.close();
    irq.disableVector(1);
    assert.equal(irq.vectorEnabled(1), false);
    vm.close();
    kvm.close();
  });

  it('closes an unwired index cleanly with the device', () => {
    open();
    const irq = device.msix;
    irq.enable(3);
    irq.disableVector(0);
    container.close();
    assert.equal(device.closed, true);
  });
});
