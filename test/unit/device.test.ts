// Regions and interrupts: bounds, widths and values checked before the
// syscall; interrupts arrive as events on the JS thread.

import assert from 'node:assert/strict';
import { Container, type Device } from '../../lib';
import type { MockDevice } from '../../lib/testing';
import { throwsCode, useFakeKernel } from './fake/setup';

describe('device regions and interrupts', () => {
  const fake = useFakeKernel();
  let container: Container;
  let device: Device;
  let raw: MockDevice;

  beforeEach(() => {
    container = Container.open();
    const group = container.openGroup(3);
    container.setIommu();
    device = group.openDevice('0000:00:03.0');
    raw = fake.k.devices.at(-1)!;
    fake.k.calls.length = 0;
  });
  afterEach(() => container.close());

  it('reads and writes BAR registers at exact widths', () => {
    const bar = device.bar(0);
    assert.equal(bar.read32(0), 0x010000ed);
    bar.write32(4, 0x12345678);
    assert.equal(raw.bar0.readUInt32LE(4), 0x12345678);
    bar.write64(0x80, 0x1122334455667788n);
    assert.equal(bar.read64(0x80), 0x1122334455667788n);
    assert.equal(bar.read8(0), 0xed);
    assert.equal(bar.read16(2), 0x0100);
  });

  it('refuses accesses outside the region or misaligned, before pread', () => {
    const bar = device.bar(0);
    throwsCode(() => bar.read32(1 << 20), 'ERR_VFIO_REGION_RANGE', /outside its 0x100000 bytes/);
    throwsCode(() => bar.read32(2), 'ERR_VFIO_REGION_RANGE', /not 4-byte aligned/);
    throwsCode(() => bar.read64(-8), 'ERR_OUT_OF_RANGE', /"offset"/);
    assert.equal(fake.k.calls.filter((c) => c === 'pread').length, 0);
  });

  it('refuses values that do not fit the width', () => {
    const bar = device.bar(0);
    throwsCode(() => bar.write8(0, 256), 'ERR_OUT_OF_RANGE');
    throwsCode(() => bar.write32(0, -1), 'ERR_OUT_OF_RANGE');
    throwsCode(() => bar.write64(0, 1 as unknown as bigint), 'ERR_INVALID_ARG_TYPE');
    assert.equal(fake.k.calls.filter((c) => c === 'pwrite').length, 0);
  });

  it('refuses regions the device does not have and unreadable ones', () => {
    throwsCode(() => device.region(9), 'ERR_VFIO_REGION_RANGE', /regions 0\.\.8/);
    throwsCode(() => device.bar(6), 'ERR_OUT_OF_RANGE', /"n"/);
    throwsCode(() => device.bar(1).read32(0), 'ERR_VFIO_REGION_ACCESS', /not readable/);
    throwsCode(() => device.config.mmap(), 'ERR_VFIO_REGION_ACCESS', /cannot be mmapped/);
  });

  it('maps a BAR and accesses it through exact-width accessors', () => {
    const map = device.bar(0).mmap();
    assert.equal(map.size, 1 << 20);
    assert.equal(map.read32(0), 0x010000ed);
    map.write32(8, 10);
    assert.equal(raw.bar0.readUInt32LE(8), 10);
    throwsCode(() => map.read32(1 << 20), 'ERR_VFIO_REGION_RANGE');
    throwsCode(() => map.read16(1), 'ERR_VFIO_REGION_RANGE');
    throwsCode(() => device.bar(0).mmap({ offset: 100, size: 4096 }), 'ERR_VFIO_REGION_RANGE', /multiples of the page size/);
    throwsCode(() => device.bar(0).mmap({ offset: 0, size: 2 << 20 }), 'ERR_VFIO_REGION_RANGE', /not inside a mappable area/);
  });

  it('a writable mmap goes through views of the mapping, all widths, into the same memory', () => {
    const map = device.bar(0).mmap();
    map.write8(0x10, 0xab);
    map.write16(0x12, 0xcdef);
    map.write32(0x14, 0x01234567);
    map.write64(0x18, 0x8899aabbccddeeffn);
    assert.equal(raw.bar0.readUInt8(0x10), 0xab);
    assert.equal(raw.bar0.readUInt16LE(0x12), 0xcdef);
    assert.equal(raw.bar0.readUInt32LE(0x14), 0x01234567);
    assert.equal(raw.bar0.readBigUInt64LE(0x18), 0x8899aabbccddeeffn);
    assert.deepEqual([map.read8(0x10), map.read16(0x12), map.read32(0x14), map.read64(0x18)], [0xab, 0xcdef, 0x01234567, 0x8899aabbccddeeffn]);
    map.close();
    throwsCode(() => map.read32(0), 'ERR_VFIO_CLOSED');
  });

  it('a runtime without external ArrayBuffers keeps the native accessors for a writable mmap', () => {
    const mmap = raw.mmap.bind(raw);
    raw.mmap = (offset, size, prot) => {
      const handle = mmap(offset, size, prot);
      // What Node-API answers under Electron's V8 sandbox.
      handle.arrayBuffer = () => {
        throw new Error('External buffers are not allowed');
      };
      return handle;
    };
    const map = device.bar(0).mmap();
    map.write32(8, 10);
    assert.equal(raw.bar0.readUInt32LE(8), 10);
    assert.equal(map.read32(0), 0x010000ed);
  });

  it('sets bus mastering in the PCI command register', () => {
    device.setBusMaster(true);
    assert.equal(raw.config.readUInt16LE(4) & 4, 4);
    device.setBusMaster(false);
    assert.equal(raw.config.readUInt16LE(4) & 4, 0);
  });

  it('delivers interrupts as events with their counts', async () => {
    const msi = device.msi;
    msi.enable();
    const seen: [number, number][] = [];
    msi.on('interrupt', (v, n) => seen.push([v, n]));
    raw.raise(1);
    raw.raise(1);
    const n = await msi.wait(0, 1000);
    assert.equal(n, 2, 'two signals before the loop ran coalesce into one event of count 2');
    assert.deepEqual(seen, [[0, 2]]);
    assert.equal(msi.total(0), 2);
  });

  it('fires a vector from software with trigger()', async () => {
    const msi = device.msi;
    msi.enable();
    const p = msi.wait(0, 1000);
    msi.trigger();
    assert.equal(await p, 1);
  });

  it('times out a wait with ERR_VFIO_TIMEOUT', async () => {
    device.msi.enable();
    await assert.rejects(device.msi.wait(0, 20), { code: 'ERR_VFIO_TIMEOUT' });
  });

  it('refuses more vectors than the index has, and mask on a non-maskable index', () => {
    throwsCode(() => device.msi.enable(2), 'ERR_VFIO_IRQ_RANGE', /has 1 vector/);
    device.msi.enable();
    throwsCode(() => device.msi.enable(), 'ERR_VFIO_ORDER', /already enabled/);
    throwsCode(() => device.msi.mask(), 'ERR_VFIO_UNSUPPORTED', /not maskable/);
    throwsCode(() => device.irq(7), 'ERR_VFIO_IRQ_RANGE');
  });

  it('disables interrupts and closes eventfds when the device closes', () => {
    device.msi.enable();
    const efd = fake.k.eventfds[0];
    device.close();
    assert.equal(efd.fd, -1);
    assert.equal(raw.irqs.size, 0);
  });

  it('refuses to reset a device with no reset method (edu), before the ioctl', () => {
    assert.equal(device.info.resettable, false);
    throwsCode(() => device.reset(), 'ERR_VFIO_UNSUPPORTED', /no reset method/);
    assert.equal(fake.k.calls.filter((c) => c === 'ioctl(VFIO_DEVICE_RESET)').length, 0);
  });

  it('resets a device that has a reset method', () => {
    container.close();
    fake.k.resettable = true;
    container = Container.open();
    const group = container.openGroup(3);
    container.setIommu();
    const resettable = group.openDevice('0000:00:03.0');
    resettable.reset();
    assert.equal(fake.k.devices.at(-1)!.resets, 1);
  });
});
