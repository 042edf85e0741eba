// Unit tests of the NVMe driver against vfio/testing's mock kernel and its
// NvmeModel: no guest, no /dev/vfio. The same driver runs against QEMU's nvme
// on the real kernel in test/vm/nvme.test.ts and `npm run demo -- nvme`.

import assert from 'node:assert/strict';
import { Container, DmaBuffer } from '../../lib';
import { MockKernel, NvmeModel } from '../../lib/testing';
import { NvmeController } from './controller';

const BDF = '0000:00:03.0';

describe('the NVMe driver (on vfio/testing)', () => {
  let kernel: MockKernel;
  let model: NvmeModel;

  beforeEach(() => {
    kernel = new MockKernel([{ id: 3, devices: [BDF] }]).install();
    model = new NvmeModel({ serial: 'unit-0001' });
    kernel.plug(BDF, model);
  });
  afterEach(() => kernel[Symbol.dispose]());

  function open() {
    const container = Container.open();
    const group = container.openGroup(3);
    const iommu = container.setIommu();
    return { container, iommu, device: group.openDevice(BDF) };
  }

  for (const interrupts of [true, false]) {
    it(`identifies the controller and moves 5 pages each way with a PRP list (${interrupts ? 'MSI-X' : 'polled'})`, async () => {
      const { container, iommu, device } = open();
      using out = DmaBuffer.allocate(5 * 4096);
      using back = DmaBuffer.allocate(5 * 4096);
      const nvme = await NvmeController.start(device, iommu, { ioQueues: 2, interrupts });
      assert.equal(nvme.identity.serial, 'unit-0001');
      assert.equal(nvme.namespace.blockSize, 512);
      out.bytes().forEach((_, i, a) => (a[i] = (i * 7) & 0xff));
      const src = iommu.map(out, { iova: 0x100000n, writable: false });
      const dst = iommu.map(back, { iova: 0x200000n, readable: false });
      await nvme.write(16, 40, src, 0, 1);
      await nvme.read(16, 40, dst, 0, 2);
      assert.deepEqual(Buffer.from(back.bytes()), Buffer.from(out.bytes()));
      assert.deepEqual(Buffer.from(model.disk.subarray(16 * 512, 16 * 512 + out.size)), Buffer.from(out.bytes()), 'the bytes reached the disk');
      if (interrupts) assert.deepEqual([1, 2].map((v) => nvme.interruptsTaken[v]), [1, 1], 'one completion interrupt on each I/O queue’s vector');
      else assert.equal(device.msix.enabled, 0);
      await nvme.close();
      container.close();
    });
  }

  it('fails a command whose data the IOMMU does not map, with the controller’s status', async () => {
    const { container, iommu, device } = open();
    using buf = DmaBuffer.allocate(4096);
    const nvme = await NvmeController.start(device, iommu);
    const m = iommu.map(buf, { iova: 0x100000n });
    m.unmap();
    await assert.rejects(nvme.read(0, 8, m), { code: 'ERR_NVME_STATUS', sc: 0x04 });
    assert.equal(kernel.iommuFaults.length, 1);
    await nvme.close();
    container.close();
  });
});
