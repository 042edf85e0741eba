// vfio/testing as a user meets it: install and give back the backend,
// inject the Nth failure of a call, check the spec like every public boundary.

import assert from 'node:assert/strict';
import { Container, DmaBuffer } from '../../lib';
import { native } from '../../lib/native';
import { MockKernel } from '../../lib/testing';
import { throwsCode } from './fake/setup';

describe('vfio/testing', () => {
  it('install() makes the mock the backend, dispose gives the previous one back', () => {
    const k = new MockKernel();
    {
      using _installed = k.install();
      assert.equal(native(), k);
      Container.open().close();
      assert.equal(k.calls[0], 'open');
    }
    assert.notEqual(native(), k);
  });

  it('fails exactly the Nth call of the named ioctl, counted from the injection, with the errno asked for', () => {
    using k = new MockKernel().install();
    const c = Container.open();
    c.openGroup(3);
    const iommu = c.setIommu();
    using buf = DmaBuffer.allocate(4 * 4096);
    k.faults.inject({ syscall: 'VFIO_IOMMU_MAP_DMA', nth: 3, code: 'ENOSPC' });
    iommu.map(buf, { iova: 0x10000n, offset: 0, size: 4096 });
    iommu.map(buf, { iova: 0x20000n, offset: 4096, size: 4096 });
    const e = throwsCode(() => iommu.map(buf, { iova: 0x30000n, offset: 8192, size: 4096 }), 'ENOSPC');
    assert.equal((e as unknown as { errno: number }).errno, -28);
    iommu.map(buf, { iova: 0x30000n, offset: 8192, size: 4096 });
    assert.deepEqual(k.faults.fired(), [{ syscall: 'ioctl(VFIO_IOMMU_MAP_DMA)', nth: 3, code: 'ENOSPC', errno: 28 }]);
    assert.equal(k.containers[0].mappings.length, 3);
    c.close();
  });

  it('fails plain syscalls by name too (mmap of a DMA buffer)', () => {
    using k = new MockKernel().install();
    k.faults.inject({ syscall: 'mmap', code: 'ENOMEM' });
    throwsCode(() => DmaBuffer.allocate(4096), 'ENOMEM');
    DmaBuffer.allocate(4096).close();
  });

  it('checks a fault spec as every public boundary does', () => {
    const k = new MockKernel();
    throwsCode(() => k.faults.inject(null as never), 'ERR_INVALID_ARG_TYPE');
    throwsCode(() => k.faults.inject({ syscall: 'VFIO_IOMMU_MAP_DMA', code: 'ENOPE' as never }), 'ERR_INVALID_ARG_VALUE');
    throwsCode(() => k.faults.inject({ syscall: 'rm -rf', code: 'EIO' }), 'ERR_INVALID_ARG_VALUE');
    throwsCode(() => k.faults.inject({ syscall: 'VFIO_IOMMU_MAP_DMA', code: 'EIO', nth: 0 }), 'ERR_OUT_OF_RANGE');
    throwsCode(() => k.faults.inject({ syscall: 'VFIO_IOMMU_MAP_DMA', code: 'toString' as never }), 'ERR_INVALID_ARG_VALUE');
    const hostile = { syscall: 'VFIO_IOMMU_MAP_DMA', get code(): never { throw new Error('ran'); } };
    throwsCode(() => k.faults.inject(hostile), 'ERR_INVALID_ARG_TYPE');
  });

  it('refuses to plug a device model at a BDF no group lists', () => {
    const k = new MockKernel();
    assert.throws(() => k.plug('0000:09:00.0', { vendorId: 1, deviceId: 2, bar0Size: 4096, attach() {}, read: () => 0, write() {} }), /no group lists 0000:09:00.0/);
  });
});
