// A real userspace driver (examples/edu) doing real DMA through the
// emulated IOMMU: bytes that came back, interrupts that arrived.

import assert from 'node:assert/strict';
import { Container, DmaBuffer, type Iommu } from '../../lib';
import { Edu, EDU_MAX_DMA } from '../../examples/edu/edu';
import { containerOptions, isEdu, testEnv } from './env';

describe('edu DMA and interrupts through VFIO', () => {
  let container: Container;
  let iommu: Iommu;
  let edu: Edu;
  const buffers: DmaBuffer[] = [];

  before(function () {
    const env = testEnv();
    if (!isEdu(env.bdf)) throw new Error(`${env.bdf} is not QEMU's edu (1234:11e8): these tests drive edu registers`);
    container = Container.open(containerOptions());
    const group = container.openGroup(env.group);
    iommu = container.setIommu();
    edu = new Edu(group.openDevice(env.bdf));
  });
  after(() => {
    container?.close();
    buffers.forEach((b) => b.close());
  });
  const buffer = (size = 4096) => {
    const b = DmaBuffer.allocate(size);
    buffers.push(b);
    return b;
  };

  it('reads the ident register and sees the device alive', () => {
    assert.equal(edu.ident(), 0x010000ed);
    assert.ok(edu.isAlive());
  });

  it('computes a factorial on the device', async () => {
    assert.equal(await edu.factorial(10), 3628800);
  });

  it('copies a pattern RAM → device → RAM through the IOMMU, every byte', async () => {
    const src = buffer();
    const dst = buffer();
    const n = EDU_MAX_DMA;
    const pattern = src.bytes(0, n);
    for (let i = 0; i < n; i++) pattern[i] = (i * 13 + 1) & 0xff;
    dst.bytes().fill(0);
    const a = iommu.map(src, { iova: 0x100000n });
    const b = iommu.map(dst, { iova: 0x200000n });
    await edu.toDevice(a.iova, n);
    await edu.toRam(b.iova, n);
    assert.deepEqual(Buffer.from(dst.bytes(0, n)), Buffer.from(pattern));
    assert.equal(dst.bytes()[n], 0, 'nothing past the count was written');
    a.unmap();
    b.unmap();
  });

  it('DMAs through an async mapping the same way', async () => {
    const src = buffer();
    const dst = buffer();
    src.bytes().fill(0x3c);
    const a = await iommu.mapAsync(src, { iova: 0x300000n });
    const b = await iommu.mapAsync(dst, { iova: 0x400000n });
    await edu.toDevice(a.iova, 1024);
    await edu.toRam(b.iova, 1024);
    assert.ok(dst.bytes(0, 1024).every((v) => v === 0x3c));
    await a.unmapAsync();
    await b.unmapAsync();
  });

  it('DMA to an unmapped IOVA does not reach memory', async () => {
    const src = buffer();
    const dst = buffer();
    src.bytes().fill(0x77);
    dst.bytes().fill(0x11);
    const a = iommu.map(src, { iova: 0x500000n });
    const b = iommu.map(dst, { iova: 0x600000n });
    await edu.toDevice(a.iova, 2048);
    b.unmap();
    // The device still tries; the IOMMU must drop the write.
    await edu.toRam(0x600000n, 2048);
    assert.ok(dst.bytes().every((v) => v === 0x11), 'the unmapped buffer is untouched');
    a.unmap();
  });

  it('counts interrupts raised by the device', async () => {
    const before = edu.irq.total(0);
    for (let i = 0; i < 3; i++) assert.equal(await edu.raiseInterrupt(0x1), 1);
    assert.equal(edu.irq.total(0) - before, 3);
  });

  it('delivers a software-triggered MSI to the eventfd', async () => {
    const p = edu.irq.wait(0, 5000);
    edu.irq.trigger();
    assert.equal(await p, 1);
  });
});
