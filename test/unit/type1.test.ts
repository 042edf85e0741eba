// Type1 rules: alignment, ranges, overlap, limits, exact unmaps, and
// bookkeeping that always equals the kernel's.

import assert from 'node:assert/strict';
import fc from 'fast-check';
import { Container, DmaBuffer, type Type1Iommu } from '../../lib';
import { rejectsCode, throwsCode, useFakeKernel } from './fake/setup';

describe('type1 IOMMU rules', () => {
  const fake = useFakeKernel();
  let container: Container;
  let iommu: Type1Iommu;
  let buffer: DmaBuffer;

  beforeEach(() => {
    container = Container.open();
    container.openGroup(3);
    iommu = container.setIommu('type1v2') as Type1Iommu;
    buffer = DmaBuffer.allocate(64 * 1024);
    fake.k.calls.length = 0;
  });
  afterEach(() => {
    container.close();
    buffer.close();
  });

  const mapCalls = () => fake.k.calls.filter((c) => c === 'ioctl(VFIO_IOMMU_MAP_DMA)').length;

  it('takes its page size from iova_pgsizes, not a constant', () => {
    assert.equal(iommu.pageSize, 0x1000n);
    container.close();
    fake.k.type1.pgsizes = 0x10000n | 0x200000n;
    container = Container.open();
    container.openGroup(3);
    iommu = container.setIommu() as Type1Iommu;
    assert.equal(iommu.pageSize, 0x10000n);
    throwsCode(() => iommu.map(buffer, { iova: 0x1000n, size: 0x10000 }), 'ERR_VFIO_MISALIGNED', /page size 0x10000/);
  });

  for (const [what, opts] of [
    ['iova', { iova: 0x1800n, size: 4096 }],
    ['offset', { iova: 0x1000n, offset: 512, size: 4096 }],
    ['size', { iova: 0x1000n, size: 100 }],
  ] as const) {
    it(`refuses a misaligned ${what} before the ioctl`, () => {
      throwsCode(() => iommu.map(buffer, opts), 'ERR_VFIO_MISALIGNED', new RegExp(`${what} 0x[0-9a-f]+ is not a multiple of the IOMMU page size 0x1000`));
      assert.equal(mapCalls(), 0);
    });
  }

  it('refuses size 0', () => {
    throwsCode(() => iommu.map(buffer, { iova: 0n, size: 0 }), 'ERR_VFIO_BAD_RANGE');
    assert.equal(mapCalls(), 0);
  });

  it('refuses a range that wraps around 2^64', () => {
    throwsCode(() => iommu.map(buffer, { iova: (1n << 64n) - 0x1000n, size: 0x2000 }), 'ERR_VFIO_BAD_RANGE', /wraps/);
    assert.equal(mapCalls(), 0);
  });

  it('refuses an IOVA outside 64 bits or of the wrong type', () => {
    throwsCode(() => iommu.map(buffer, { iova: 1n << 64n }), 'ERR_OUT_OF_RANGE');
    throwsCode(() => iommu.map(buffer, { iova: -4096 }), 'ERR_OUT_OF_RANGE');
    throwsCode(() => iommu.map(buffer, { iova: '4096' as unknown as number }), 'ERR_INVALID_ARG_TYPE');
    assert.equal(mapCalls(), 0);
  });

  it('refuses a range past the end of the buffer', () => {
    throwsCode(() => iommu.map(buffer, { iova: 0n, offset: 0x8000, size: 0x10000 }), 'ERR_VFIO_BUFFER_RANGE');
    assert.equal(mapCalls(), 0);
  });

  it('refuses IOVAs outside the reported IOVA ranges (the MSI hole)', () => {
    throwsCode(() => iommu.map(buffer, { iova: 0xfee00000n, size: 4096 }), 'ERR_VFIO_IOVA_OUT_OF_RANGE', /0x0-0xfedfffff, 0xfef00000-0x7fffffffff/);
    throwsCode(() => iommu.map(buffer, { iova: 0xfedff000n, size: 0x2000 }), 'ERR_VFIO_IOVA_OUT_OF_RANGE');
    throwsCode(() => iommu.map(buffer, { iova: 1n << 39n, size: 4096 }), 'ERR_VFIO_IOVA_OUT_OF_RANGE');
    assert.equal(mapCalls(), 0);
  });

  it('refuses an overlap with a live mapping, naming it', () => {
    iommu.map(buffer, { iova: 0x10000n, size: 0x4000 });
    throwsCode(() => iommu.map(buffer, { iova: 0x13000n, size: 0x2000 }), 'ERR_VFIO_OVERLAP', /overlaps the live DMA mapping at iova 0x10000/);
    assert.equal(mapCalls(), 1);
  });

  it('reports the DMA entry limit before the kernel says ENOSPC', () => {
    container.close();
    fake.k.type1.dmaAvail = 2;
    container = Container.open();
    container.openGroup(3);
    iommu = container.setIommu() as Type1Iommu;
    assert.equal(iommu.maxMappings, 2);
    iommu.map(buffer, { iova: 0x0n, size: 4096 });
    iommu.map(buffer, { iova: 0x1000n, offset: 4096, size: 4096 });
    fake.k.calls.length = 0;
    throwsCode(() => iommu.map(buffer, { iova: 0x2000n, offset: 8192, size: 4096 }), 'ERR_VFIO_DMA_LIMIT', /2 mappings are live and the kernel allows 2.*dma_entry_limit/);
    assert.equal(mapCalls(), 0);
  });

  it('explains ENOMEM with the RLIMIT_MEMLOCK value and the fix', () => {
    fake.k.memlock = [32768n, 32768n];
    const e = throwsCode(() => iommu.map(buffer, { iova: 0n }), 'ENOMEM', /RLIMIT_MEMLOCK, which is 32768 bytes \(32 KiB\).*ulimit -l.*CAP_IPC_LOCK/);
    assert.equal((e as unknown as { syscall: string }).syscall, 'ioctl(VFIO_IOMMU_MAP_DMA)');
    assert.equal((e as unknown as { errno: number }).errno, -12);
    assert.equal(iommu.mappings.length, 0, 'a failed map leaves no bookkeeping');
    assert.equal(buffer.users.length, 0);
  });

  it('unmaps by mapping object', () => {
    const m = iommu.map(buffer, { iova: 0x10000n, size: 0x4000 });
    m.unmap();
    assert.equal(iommu.mappings.length, 0);
    assert.equal(fake.k.containers[0].mappings.length, 0);
    throwsCode(() => iommu.unmap(m), 'ERR_VFIO_NO_MAPPING');
  });

  it('unmaps an exact range of whole mappings', () => {
    iommu.map(buffer, { iova: 0x10000n, size: 0x2000 });
    iommu.map(buffer, { iova: 0x14000n, offset: 0x2000, size: 0x2000 });
    const gone = iommu.unmap({ iova: 0x10000n, size: 0x6000n });
    assert.equal(gone.length, 2);
    assert.equal(fake.k.containers[0].mappings.length, 0);
  });

  it('refuses an unmap range that cuts a mapping, or covers nothing', () => {
    iommu.map(buffer, { iova: 0x10000n, size: 0x4000 });
    throwsCode(() => iommu.unmap({ iova: 0x11000n, size: 0x1000n }), 'ERR_VFIO_NO_MAPPING', /cuts through/);
    throwsCode(() => iommu.unmap({ iova: 0x20000n, size: 0x1000n }), 'ERR_VFIO_NO_MAPPING', /nothing is mapped/);
    assert.equal(fake.k.calls.filter((c) => c === 'ioctl(VFIO_IOMMU_UNMAP_DMA)').length, 0);
  });

  it('uses the unmap-all flag where the kernel has it', () => {
    iommu.map(buffer, { iova: 0x10000n, size: 0x2000 });
    iommu.map(buffer, { iova: 0x20000n, offset: 0x2000, size: 0x2000 });
    fake.k.calls.length = 0;
    iommu.unmapAll();
    assert.deepEqual(fake.k.calls, ['ioctl(VFIO_IOMMU_UNMAP_DMA)']);
    assert.equal(iommu.mappings.length, 0);
  });

  it('finds the lowest free aligned IOVA when none is given', () => {
    const a = iommu.map(buffer, { size: 0x2000 });
    const b = iommu.map(buffer, { offset: 0x2000, size: 0x1000 });
    assert.equal(a.iova, 0n);
    assert.equal(b.iova, 0x2000n);
  });

  it('maps asynchronously and reserves the range while in flight', async () => {
    const p = iommu.mapAsync(buffer, { iova: 0x10000n, size: 0x4000 });
    throwsCode(() => iommu.map(buffer, { iova: 0x10000n, size: 0x1000 }), 'ERR_VFIO_OVERLAP');
    throwsCode(() => container.close(), 'ERR_VFIO_BUSY', /await them first/);
    const m = await p;
    assert.equal(m.iova, 0x10000n);
    assert.equal(fake.k.containers[0].mappings.length, 1);
    await m.unmapAsync();
    assert.equal(fake.k.containers[0].mappings.length, 0);
  });

  it('releases the reservation when an async map fails', async () => {
    fake.k.failNext.set('ioctl(VFIO_IOMMU_MAP_DMA)', 'EFAULT');
    await rejectsCode(iommu.mapAsync(buffer, { iova: 0x10000n }), 'EFAULT');
    assert.equal(iommu.mappings.length, 0);
    assert.equal(iommu.pendingOperations, 0);
    iommu.map(buffer, { iova: 0x10000n });
  });

  it('keeps the bookkeeping equal to the kernel\'s over any sequence of maps and unmaps', () => {
    const op = fc.oneof(
      fc.record({ kind: fc.constant('map' as const), page: fc.integer({ min: 0, max: 31 }), pages: fc.integer({ min: 1, max: 4 }) }),
      fc.record({ kind: fc.constant('unmap' as const), pick: fc.nat() }),
    );
    fc.assert(
      fc.property(fc.array(op, { maxLength: 40 }), (ops) => {
        iommu.unmapAll();
        for (const o of ops) {
          try {
            if (o.kind === 'map') iommu.map(buffer, { iova: BigInt(o.page) * 0x1000n, offset: 0, size: o.pages * 0x1000 });
            else if (iommu.mappings.length) iommu.mappings[o.pick % iommu.mappings.length].unmap();
          } catch (e) {
            if ((e as { code?: string }).code !== 'ERR_VFIO_OVERLAP') throw e;
          }
          const ours = iommu.mappings.map((m) => `${m.iova}+${m.size}`).sort();
          const kernel = fake.k.containers.at(-1)!.mappings.map((m) => `${m.iova}+${m.size}`).sort();
          assert.deepEqual(ours, kernel);
        }
      }),
      { numRuns: 200 },
    );
  });
});
