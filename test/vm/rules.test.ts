// Each rule refuses before the ioctl, and the kernel's own answer to the
// same input (through the raw addon) shows what the rule spares the caller.

import assert from 'node:assert/strict';
import { readFileSync, writeFileSync } from 'node:fs';
import { Container, DmaBuffer, Group, type Iommu } from '../../lib';
import { native } from '../../lib/native';
import { containerOptions, msiWindow, onIommufdCompat, testEnv, type TestEnv } from './env';
import { errorOf, rawType1 } from './raw';

describe('rules on the real kernel', () => {
  let env: TestEnv;
  let buffer: DmaBuffer;
  const flags = () => native().constants.VFIO_DMA_MAP_FLAG_READ | native().constants.VFIO_DMA_MAP_FLAG_WRITE;

  before(() => {
    env = testEnv();
    buffer = DmaBuffer.allocate(64 * 1024);
  });
  after(() => buffer?.close());

  function withIommu(fn: (iommu: Iommu, container: Container) => void): void {
    using container = Container.open(containerOptions());
    container.openGroup(env.group);
    fn(container.setIommu('type1v2'), container);
  }

  it('misaligned IOVA: ERR_VFIO_MISALIGNED here, EINVAL from the kernel', () => {
    withIommu((iommu) => {
      assert.throws(() => iommu.map(buffer, { iova: 0x100800n, size: 4096 }), { code: 'ERR_VFIO_MISALIGNED' });
      assert.equal(iommu.mappings.length, 0);
    });
    const raw = rawType1(env.group, env.bdf);
    try {
      assert.equal(errorOf(() => raw.container.mapDma(buffer.handle(), 0, 4096, 0x100800n, flags()))?.code, 'EINVAL');
    } finally {
      raw.close();
    }
  });

  it('overlapping map: ERR_VFIO_OVERLAP here, EEXIST from the kernel', () => {
    withIommu((iommu) => {
      iommu.map(buffer, { iova: 0x100000n, size: 0x4000 });
      assert.throws(() => iommu.map(buffer, { iova: 0x102000n, offset: 0x4000, size: 0x4000 }), { code: 'ERR_VFIO_OVERLAP' });
    });
    const raw = rawType1(env.group);
    try {
      raw.container.mapDma(buffer.handle(), 0, 0x4000, 0x100000n, flags());
      assert.equal(errorOf(() => raw.container.mapDma(buffer.handle(), 0x4000, 0x4000, 0x102000n, flags()))?.code, 'EEXIST');
    } finally {
      raw.close();
    }
  });

  it('IOVA in the reserved MSI window: ERR_VFIO_IOVA_OUT_OF_RANGE here, refused by the kernel too', () => {
    // The window the kernel lists for this group, not x86's 0xfee00000.
    const msi = msiWindow(env.group).start;
    withIommu((iommu, container) => {
      // The compat container narrows its ranges when a device joins (opens); legacy type1 at attach already.
      container.groups[0].openDevice(env.bdf);
      assert.throws(() => iommu.map(buffer, { iova: msi, size: 4096 }), { code: 'ERR_VFIO_IOVA_OUT_OF_RANGE' });
    });
    const raw = rawType1(env.group, env.bdf);
    try {
      const e = errorOf(() => raw.container.mapDma(buffer.handle(), 0, 4096, msi, flags()));
      assert.ok(e && typeof e.errno === 'number' && e.errno < 0, `kernel answer: ${e?.code}`);
    } finally {
      raw.close();
    }
  });

  it('DMA entry limit: ERR_VFIO_DMA_LIMIT here, ENOSPC from the kernel', () => {
    if (onIommufdCompat()) {
      // iommufd has no per-container entry limit: the compat container reports U32_MAX available.
      withIommu((iommu) => {
        assert.equal((iommu as unknown as { maxMappings: number | null }).maxMappings, 0xffffffff);
        for (let i = 0; i < 3; i++) iommu.map(buffer, { iova: 0x100000n * BigInt(i + 1), offset: i * 4096, size: 4096 });
        assert.equal(iommu.mappings.length, 3);
      });
      return;
    }
    const param = '/sys/module/vfio_iommu_type1/parameters/dma_entry_limit';
    const saved = readFileSync(param, 'utf8').trim();
    writeFileSync(param, '2');
    try {
      withIommu((iommu) => {
        iommu.map(buffer, { iova: 0x100000n, size: 4096 });
        iommu.map(buffer, { iova: 0x200000n, offset: 4096, size: 4096 });
        assert.throws(() => iommu.map(buffer, { iova: 0x300000n, offset: 8192, size: 4096 }), { code: 'ERR_VFIO_DMA_LIMIT' });
      });
      const raw = rawType1(env.group);
      try {
        raw.container.mapDma(buffer.handle(), 0, 4096, 0x100000n, flags());
        raw.container.mapDma(buffer.handle(), 4096, 4096, 0x200000n, flags());
        assert.equal(errorOf(() => raw.container.mapDma(buffer.handle(), 8192, 4096, 0x300000n, flags()))?.code, 'ENOSPC');
      } finally {
        raw.close();
      }
    } finally {
      writeFileSync(param, saved);
    }
  });

  it('device before IOMMU: ERR_VFIO_IOMMU_NOT_SET here; the kernel refuses GET_DEVICE_FD too', () => {
    {
      using container = Container.open(containerOptions());
      const group = container.openGroup(env.group);
      assert.throws(() => group.openDevice(env.bdf), { code: 'ERR_VFIO_IOMMU_NOT_SET' });
    }
    const n = native();
    const container = n.openContainer(containerOptions().path);
    const group = n.openGroup(`/dev/vfio/${env.group}`);
    try {
      group.setContainer(container);
      const e = errorOf(() => group.getDeviceFd(env.bdf).close());
      if (onIommufdCompat()) {
        // The compat container hands the device out before SET_IOMMU (its IOAS exists from SET_CONTAINER); the rule stays.
        assert.equal(e, null, `the compat container answered ${e?.code}`);
      } else {
        assert.ok(e && e.errno! < 0, 'the kernel refuses a device fd before the IOMMU is set');
      }
      group.unsetContainer();
    } finally {
      group.close();
      container.close();
    }
  });

  it('device before attach: ERR_VFIO_GROUP_NOT_ATTACHED', () => {
    using group = Group.open(env.group);
    assert.throws(() => group.openDevice(env.bdf), { code: 'ERR_VFIO_GROUP_NOT_ATTACHED', message: /container\.openGroup/ });
  });

  it('unmap reports exactly what the kernel unmapped; cutting a mapping is refused', () => {
    withIommu((iommu) => {
      iommu.map(buffer, { iova: 0x100000n, size: 0x2000 });
      iommu.map(buffer, { iova: 0x104000n, offset: 0x2000, size: 0x2000 });
      assert.throws(() => iommu.unmap({ iova: 0x101000n, size: 0x1000n }), { code: 'ERR_VFIO_NO_MAPPING' });
      assert.equal(iommu.unmap({ iova: 0x100000n, size: 0x8000n }).length, 2);
      assert.equal(iommu.mappings.length, 0);
    });
  });

  it('unmaps everything in one call', () => {
    withIommu((iommu) => {
      for (let i = 0; i < 8; i++) iommu.map(buffer, { iova: BigInt(0x100000 + i * 0x10000), offset: i * 4096, size: 4096 });
      iommu.unmapAll();
      assert.equal(iommu.mappings.length, 0);
      // The kernel agrees: the same IOVAs map again.
      iommu.map(buffer, { iova: 0x100000n, size: 4096 });
    });
  });

  it('a mapped buffer cannot be freed', () => {
    withIommu((iommu) => {
      const m = iommu.map(buffer, { iova: 0x100000n, size: 4096 });
      assert.throws(() => buffer.close(), { code: 'ERR_VFIO_BUFFER_IN_USE' });
      assert.equal(buffer.closed, false);
      m.unmap();
    });
  });
});
