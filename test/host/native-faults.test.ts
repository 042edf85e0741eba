// The addon's opt-in fault injection on any Linux: an ioctl on /dev/null is
// ENOTTY from the kernel; an armed fault answers first, on the Nth call only,
// on the JS thread and on the libuv pool alike.

import assert from 'node:assert/strict';
import { native } from '../../lib/native';
import { addonFaults } from '../../lib/testing';

describe('addon fault injection', () => {
  const faults = addonFaults();
  afterEach(() => faults.clear());

  it('fails exactly the Nth ioctl of the named request with the chosen errno, then lets the kernel answer again', () => {
    const c = native().openContainer('/dev/null');
    try {
      faults.inject({ syscall: 'VFIO_GET_API_VERSION', nth: 2, code: 'EIO' });
      const codes = [1, 2, 3].map(() => {
        try {
          c.getApiVersion();
          return 'ok';
        } catch (e) {
          return `${(e as { code: string }).code} ${(e as { syscall: string }).syscall}`;
        }
      });
      assert.deepEqual(codes, ['ENOTTY ioctl(VFIO_GET_API_VERSION)', 'EIO ioctl(VFIO_GET_API_VERSION)', 'ENOTTY ioctl(VFIO_GET_API_VERSION)']);
      assert.deepEqual(faults.fired(), [{ syscall: 'ioctl(VFIO_GET_API_VERSION)', nth: 2, errno: 5, code: 'EIO' }]);
    } finally {
      c.close();
    }
  });

  it('fails an ioctl issued on the thread pool (an async unmap)', async () => {
    const c = native().openContainer('/dev/null');
    try {
      faults.inject({ syscall: 'VFIO_IOMMU_UNMAP_DMA', code: 'ENOMEM' });
      await assert.rejects(c.unmapDmaAsync(0x1000n, 0x1000n, 0), { code: 'ENOMEM', syscall: 'ioctl(VFIO_IOMMU_UNMAP_DMA)' });
      await assert.rejects(c.unmapDmaAsync(0x1000n, 0x1000n, 0), { code: 'ENOTTY' });
    } finally {
      c.close();
    }
  });

  it('does not count other requests, and fails only ioctls', () => {
    const c = native().openContainer('/dev/null');
    try {
      faults.inject({ syscall: 'VFIO_SET_IOMMU', code: 'EIO' });
      assert.throws(() => c.getApiVersion(), { code: 'ENOTTY' });
      assert.throws(() => c.setIommu(3), { code: 'EIO' });
      assert.throws(() => faults.inject({ syscall: 'mmap', code: 'EIO' }), { code: 'ERR_INVALID_ARG_VALUE' });
    } finally {
      c.close();
    }
  });
});
