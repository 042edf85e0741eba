// Unit tests of the edu driver against vfio/testing's mock kernel, as a
// user's driver would have them: no guest, no /dev/vfio. The same driver
// runs against the real kernel in the test guest (npm run demo).

import assert from 'node:assert/strict';
import { Container, DmaBuffer } from '../../lib';
import { EduModel, MockKernel } from '../../lib/testing';
import { Edu, EDU_MAX_DMA } from './edu';

const BDF = '0000:00:03.0';

describe('the edu driver (on vfio/testing)', () => {
  let kernel: MockKernel;
  let model: EduModel;

  beforeEach(() => {
    kernel = new MockKernel([{ id: 3, devices: [BDF] }]).install();
    model = new EduModel();
    kernel.plug(BDF, model);
  });
  afterEach(() => kernel[Symbol.dispose]());

  function open() {
    const container = Container.open();
    const group = container.openGroup(3);
    const iommu = container.setIommu();
    return { container, iommu, edu: new Edu(group.openDevice(BDF)) };
  }

  it('reads the ident, checks liveness and computes a factorial through the registers', async () => {
    const { container, edu } = open();
    assert.equal(edu.ident(), 0x010000ed);
    assert.ok(edu.isAlive());
    assert.equal(await edu.factorial(10), 3628800);
    container.close();
  });

  it('moves bytes RAM -> device -> RAM by DMA through the IOMMU, each completion an MSI', async () => {
    const { container, iommu, edu } = open();
    using src = DmaBuffer.allocate(4096);
    using dst = DmaBuffer.allocate(4096);
    const pattern = src.bytes(0, EDU_MAX_DMA);
    for (let i = 0; i < pattern.length; i++) pattern[i] = (i * 7 + 3) & 0xff;
    const a = iommu.map(src, { iova: 0x100000n, writable: false });
    const b = iommu.map(dst, { iova: 0x200000n, readable: false });
    await edu.toDevice(a.iova, EDU_MAX_DMA);
    await edu.toRam(b.iova, EDU_MAX_DMA);
    assert.deepEqual(dst.bytes(0, EDU_MAX_DMA), pattern);
    assert.equal(edu.irq.total(0), 2);
    assert.equal(model.dmaCount, 2);
    container.close();
  });

  it('a DMA to an IOVA the driver unmapped is dropped by the IOMMU, and RAM is untouched', async () => {
    const { container, iommu, edu } = open();
    using buf = DmaBuffer.allocate(4096);
    const m = iommu.map(buf, { iova: 0x100000n });
    m.unmap();
    await edu.toRam(0x100000n, 16);
    assert.deepEqual(kernel.iommuFaults, [{ bdf: BDF, iova: 0x100000n, length: 16, write: true }]);
    assert.ok(buf.bytes(0, 16).every((v) => v === 0));
    container.close();
  });

  it('delivers an interrupt the test raises through the device', async () => {
    const { container, edu } = open();
    assert.equal(await edu.raiseInterrupt(0x42), 1);
    assert.equal(model.irqStatus, 0, 'the driver acknowledged it');
    container.close();
  });

  it('a kernel that refuses the DMA mapping (ENOMEM, injected) leaves nothing mapped', () => {
    const { container, iommu } = open();
    using buf = DmaBuffer.allocate(4096);
    kernel.faults.inject({ syscall: 'VFIO_IOMMU_MAP_DMA', code: 'ENOMEM' });
    assert.throws(() => iommu.map(buf, { iova: 0x100000n }), { code: 'ENOMEM', syscall: 'ioctl(VFIO_IOMMU_MAP_DMA)' });
    assert.deepEqual(iommu.mappings, []);
    assert.deepEqual(kernel.containers[0].mappings, []);
    assert.deepEqual(kernel.faults.fired().map((f) => f.syscall), ['ioctl(VFIO_IOMMU_MAP_DMA)']);
    container.close();
  });
});
