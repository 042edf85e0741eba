// sPAPR TCE rules: every map inside one window and aligned to its page
// size, v2 maps only registered memory, no silent replacement of a mapped
// IOVA, a cleared default window before the first map, windows created and
// removed within what the IOMMU offers. The fake kernel has the real one's
// defects (a straddling v2 map oopses, a misaligned IOVA "succeeds", a
// second map replaces the first, unregister succeeds while mapped), so each
// test shows the rule stopped the call before it got there.

import assert from 'node:assert/strict';
import fc from 'fast-check';
import { Container, DmaBuffer, SpaprTceIommu } from '../../lib';
import type { MockContainer } from '../../lib/testing';
import { rejectsCode, throwsCode, useFakeKernel } from './fake/setup';

const GiB = 1n << 30n;

describe('sPAPR TCE IOMMU rules', () => {
  const fake = useFakeKernel();
  let container: Container;
  let buffer: DmaBuffer;

  beforeEach(() => {
    fake.k.iommuFamily = 'spapr';
    container = Container.open();
    container.openGroup(3);
    buffer = DmaBuffer.allocate(64 * 1024);
  });
  afterEach(() => {
    container.close();
    buffer.close();
  });

  const kernel = () => fake.k.containers.at(-1) as MockContainer;
  const calls = (name: string) => fake.k.calls.filter((c) => c === `ioctl(${name})`).length;
  const setUp = (type: 'spapr' | 'spapr-v2') => {
    const iommu = container.setIommu(type) as SpaprTceIommu;
    fake.k.calls.length = 0;
    return iommu;
  };
  /** v2 with `buffer` registered. */
  const v2 = () => {
    const iommu = setUp('spapr-v2');
    iommu.register(buffer);
    fake.k.calls.length = 0;
    return iommu;
  };
  const kernelMappings = () => kernel().mappings.map((m) => [m.iova, m.size]).sort((a, b) => (a[0] < b[0] ? -1 : 1));
  const ourMappings = (iommu: SpaprTceIommu) => iommu.mappings.map((m) => [m.iova, m.size]);

  describe('setup', () => {
    it('picks spapr-v2 when the kernel offers both sPAPR models', () => {
      assert.equal(container.setIommu().kind, 'spapr-v2');
    });

    it('sets spapr (v1) when asked for it', () => {
      container.setIommu('spapr');
      assert.equal(kernel().iommu, fake.k.constants.VFIO_SPAPR_TCE_IOMMU);
    });

    it('reports GET_INFO as the kernel gives it, and the default window with 4 KiB TCE pages', () => {
      const iommu = container.setIommu('spapr-v2') as SpaprTceIommu;
      assert.deepEqual(iommu.info, {
        flags: 1,
        dma32WindowStart: 0n,
        dma32WindowSize: 0x40000000n,
        ddw: { pgsizes: 0x1211000n, maxDynamicWindowsSupported: 2, levels: 1 },
      });
      assert.deepEqual(
        iommu.dmaWindows.map((w) => [w.start, w.size, w.pageSize, w.isDefault]),
        [[0n, 0x40000000n, 0x1000n, true]],
      );
    });

    it('v1: enables the TCE table, then clears the default window whole', () => {
      fake.k.spapr.leftovers = [{ iova: 0x1000n, size: 0x1000n }];
      container.setIommu('spapr');
      const order = fake.k.calls.filter((c) => /ENABLE|UNMAP|MAP_DMA/.test(c));
      assert.deepEqual(order, ['ioctl(VFIO_IOMMU_ENABLE)', 'ioctl(VFIO_IOMMU_UNMAP_DMA)']);
      assert.deepEqual(kernel().mappings, [], "the previous owner's TCE is gone");
    });

    it('v2: clears the default window at the first registration, before any map is possible', () => {
      fake.k.spapr.leftovers = [{ iova: 0x1000n, size: 0x1000n }];
      const iommu = container.setIommu('spapr-v2') as SpaprTceIommu;
      assert.equal(calls('VFIO_IOMMU_UNMAP_DMA'), 0, 'the kernel answers EPERM before a registration');
      iommu.register(buffer);
      assert.deepEqual(fake.k.calls.slice(-2), ['ioctl(VFIO_IOMMU_SPAPR_REGISTER_MEMORY)', 'ioctl(VFIO_IOMMU_UNMAP_DMA)']);
      assert.deepEqual(kernel().mappings, []);
    });

    it('v2: clears only once', () => {
      const iommu = v2();
      const other = DmaBuffer.allocate(4096);
      iommu.register(other);
      assert.equal(calls('VFIO_IOMMU_UNMAP_DMA'), 0);
      container.close();
      other.close();
    });

    it('refuses an EEH operation the kernel does not offer, before the ioctl', () => {
      const iommu = setUp('spapr-v2');
      assert.equal(iommu.eehSupported, false);
      throwsCode(() => iommu.eehPeOp(fake.k.constants.VFIO_EEH), 'ERR_VFIO_IOMMU_UNSUPPORTED', /VFIO_EEH/);
      assert.equal(calls('VFIO_EEH_PE_OP'), 0);
    });

    it('refuses a dma32PageSize that is not a power of two', () => {
      throwsCode(() => container.setIommu('spapr-v2', { dma32PageSize: 3000 }), 'ERR_INVALID_ARG_VALUE');
    });
  });

  describe('maps', () => {
    const mapCalls = () => calls('VFIO_IOMMU_MAP_DMA');

    it('maps inside the default window, books equal to the kernel', () => {
      const iommu = v2();
      iommu.map(buffer, { iova: 0x100000n, size: 0x2000 });
      assert.deepEqual(kernelMappings(), ourMappings(iommu));
    });

    it('refuses a map straddling the end of a window before the ioctl (it oopsed the v2 kernel)', () => {
      const iommu = v2();
      throwsCode(() => iommu.map(buffer, { iova: 0x3ffff000n, size: 0x2000 }), 'ERR_VFIO_IOVA_OUT_OF_RANGE', /straddles the edge of the default DMA window 0x0-0x3fffffff/);
      assert.equal(mapCalls(), 0);
      assert.deepEqual(fake.k.oopses, []);
    });

    it('refuses a straddling mapAsync the same way', async () => {
      const iommu = v2();
      await rejectsCode(iommu.mapAsync(buffer, { iova: 0x3ffff000n, size: 0x2000 }), 'ERR_VFIO_IOVA_OUT_OF_RANGE');
      assert.equal(mapCalls(), 0);
    });

    it('refuses a map outside every window', () => {
      const iommu = v2();
      throwsCode(() => iommu.map(buffer, { iova: GiB, size: 0x1000 }), 'ERR_VFIO_IOVA_OUT_OF_RANGE', /outside every DMA window .*0x0-0x3fffffff/);
      assert.equal(mapCalls(), 0);
    });

    it('refuses a misaligned IOVA before the ioctl (the kernel returned +1)', () => {
      const iommu = v2();
      throwsCode(() => iommu.map(buffer, { iova: 0x100100n, size: 0x1000 }), 'ERR_VFIO_MISALIGNED', /iova 0x100100/);
      assert.equal(mapCalls(), 0);
    });

    it("refuses a map not aligned to its window's page size", () => {
      const iommu = v2();
      const huge = DmaBuffer.allocate(2 << 20, { hugePageSize: 2 << 20 });
      iommu.register(huge);
      const w = iommu.createWindow({ pageSize: 0x10000, size: GiB });
      fake.k.calls.length = 0;
      throwsCode(() => iommu.map(huge, { iova: w.start + 0x1000n, size: 0x10000 }), 'ERR_VFIO_MISALIGNED', /page size of the DMA window .* round it to 0x10000/);
      throwsCode(() => iommu.map(huge, { iova: w.start, size: 0x1000 }), 'ERR_VFIO_MISALIGNED', /size 0x1000/);
      assert.equal(mapCalls(), 0);
      container.close();
      huge.close();
    });

    it('explains a 64 KiB-page window given 4 KiB-page memory instead of a bare EINVAL', () => {
      const iommu = v2();
      iommu.removeWindow(iommu.dmaWindows[0]);
      const w = iommu.createWindow({ pageSize: 0x10000, size: GiB });
      fake.k.calls.length = 0;
      throwsCode(() => iommu.map(buffer, { iova: w.start, size: 0x10000 }), 'ERR_VFIO_PAGE_SIZE_MISMATCH', /backed by 0x1000-byte pages.*huge pages/);
      assert.equal(mapCalls(), 0);
    });

    it('maps huge-page memory through a 64 KiB-page window', () => {
      const iommu = v2();
      const huge = DmaBuffer.allocate(2 << 20, { hugePageSize: 2 << 20 });
      iommu.register(huge);
      iommu.removeWindow(iommu.dmaWindows[0]);
      const w = iommu.createWindow({ pageSize: 0x10000, size: GiB });
      const m = iommu.map(huge, { iova: w.start, size: 0x20000 });
      assert.deepEqual(kernelMappings(), [[m.iova, m.size]]);
      container.close();
      huge.close();
    });

    it('v2: refuses to map unregistered memory, naming the fix', () => {
      const iommu = setUp('spapr-v2');
      throwsCode(() => iommu.map(buffer, { iova: 0x100000n }), 'ERR_VFIO_NOT_REGISTERED', /call iommu\.register\(buffer\) first/);
      assert.equal(mapCalls(), 0);
    });

    it('v2: refuses a map reaching past its registration', () => {
      const iommu = setUp('spapr-v2');
      iommu.register(buffer, { size: 0x4000 });
      throwsCode(() => iommu.map(buffer, { iova: 0x100000n, size: 0x8000 }), 'ERR_VFIO_NOT_REGISTERED');
      assert.equal(mapCalls(), 0);
    });

    it('v1: maps any memory once enabled', () => {
      const iommu = setUp('spapr');
      iommu.map(buffer, { iova: 0x100000n });
      assert.deepEqual(kernelMappings(), ourMappings(iommu));
    });

    it('refuses mapping the same IOVA twice (the kernel would silently replace it)', () => {
      const iommu = v2();
      const first = iommu.map(buffer, { iova: 0x100000n, size: 0x1000 });
      throwsCode(() => iommu.map(buffer, { iova: 0x100000n, offset: 0x1000, size: 0x1000 }), 'ERR_VFIO_OVERLAP', /overlaps the live DMA mapping at iova 0x100000/);
      assert.equal(mapCalls(), 1);
      assert.equal(kernel().mappings[0].offset, first.offset, 'the first TCE is still there');
    });

    it('unmaps whole mappings; the kernel echoes the size', () => {
      const iommu = v2();
      const m = iommu.map(buffer, { iova: 0x100000n, size: 0x2000 });
      assert.deepEqual(iommu.unmap(m), [m]);
      assert.deepEqual(kernelMappings(), []);
    });

    it('finds a free IOVA in the default window when none is given', () => {
      const iommu = v2();
      const a = iommu.map(buffer, { size: 0x1000 });
      const b = iommu.map(buffer, { offset: 0x1000, size: 0x1000 });
      assert.deepEqual([a.iova, b.iova], [0n, 0x1000n]);
    });

    it('keeps its books equal to the kernel over any sequence of maps and unmaps', () => {
      container.close();
      fc.assert(
        fc.property(
          fc.array(fc.record({ page: fc.integer({ min: 0x3fff0, max: 0x3ffff }), pages: fc.integer({ min: 1, max: 4 }), unmap: fc.boolean() }), { maxLength: 25 }),
          (ops) => {
            const c = Container.open();
            c.openGroup(3);
            const b = DmaBuffer.allocate(4 * 4096);
            try {
              const iommu = c.setIommu('spapr-v2') as SpaprTceIommu;
              iommu.register(b);
              for (const op of ops) {
                const live = iommu.mappings;
                if (op.unmap && live.length > 0) live[op.page % live.length].unmap();
                else {
                  try {
                    iommu.map(b, { iova: BigInt(op.page) * 0x1000n, size: op.pages * 0x1000 });
                  } catch (e) {
                    assert.match((e as { code: string }).code, /^ERR_VFIO_/, 'refused by a rule, never by the kernel');
                  }
                }
                const k = fake.k.containers.at(-1) as MockContainer;
                assert.deepEqual(
                  k.mappings.map((m) => [m.iova, m.size]).sort((x, y) => (x[0] < y[0] ? -1 : 1)),
                  iommu.mappings.map((m) => [m.iova, m.size]),
                );
              }
              assert.deepEqual(fake.k.oopses, []);
            } finally {
              c.close();
              b.close();
            }
          },
        ),
        { numRuns: 60 },
      );
    });
  });

  describe('registrations', () => {
    it('v2: refuses to unregister while mapped (the kernel would return 0)', () => {
      const iommu = setUp('spapr-v2');
      const reg = iommu.register(buffer);
      const m = iommu.map(buffer, { iova: 0x100000n, offset: 0x2000, size: 0x1000 });
      throwsCode(() => iommu.unregister(reg), 'ERR_VFIO_BUFFER_IN_USE', /still used by the DMA mapping at iova 0x100000.*unmap it first/);
      assert.equal(calls('VFIO_IOMMU_SPAPR_UNREGISTER_MEMORY'), 0);
      m.unmap();
      iommu.unregister(reg);
      assert.deepEqual(kernel().registrations, []);
    });

    it('v2: refuses to register an overlapping range again', () => {
      const iommu = v2();
      throwsCode(() => iommu.register(buffer, { offset: 0x1000, size: 0x1000 }), 'ERR_VFIO_OVERLAP', /registered already/);
      assert.equal(calls('VFIO_IOMMU_SPAPR_REGISTER_MEMORY'), 0);
    });

    it('v2: refuses a registration not aligned to the buffer pages', () => {
      const iommu = setUp('spapr-v2');
      throwsCode(() => iommu.register(buffer, { offset: 0x800, size: 0x1000 }), 'ERR_VFIO_MISALIGNED');
      assert.equal(calls('VFIO_IOMMU_SPAPR_REGISTER_MEMORY'), 0);
    });

    it('v1: refuses to register, saying v1 needs none', () => {
      const iommu = setUp('spapr');
      throwsCode(() => iommu.register(buffer), 'ERR_VFIO_IOMMU_UNSUPPORTED', /v1 maps any memory without registering/);
      assert.equal(calls('VFIO_IOMMU_SPAPR_REGISTER_MEMORY'), 0);
    });

    it('a registered buffer cannot be freed', () => {
      v2();
      throwsCode(() => buffer.close(), 'ERR_VFIO_BUFFER_IN_USE', /sPAPR registration/);
    });

    it('closing the container unmaps, then unregisters', () => {
      const iommu = v2();
      iommu.map(buffer, { iova: 0x100000n });
      container.close();
      assert.deepEqual(
        fake.k.calls.filter((c) => /UNMAP_DMA|UNREGISTER/.test(c)),
        ['ioctl(VFIO_IOMMU_UNMAP_DMA)', 'ioctl(VFIO_IOMMU_SPAPR_UNREGISTER_MEMORY)'],
      );
      assert.deepEqual(buffer.users, []);
    });
  });

  describe('windows', () => {
    const createCalls = () => calls('VFIO_IOMMU_SPAPR_TCE_CREATE');

    it('creates a 4 KiB-page window where the kernel says, and maps through it', () => {
      const iommu = v2();
      const w = iommu.createWindow({ pageSize: 0x1000, size: GiB });
      assert.deepEqual([w.start, w.size, w.pageSize, w.isDefault], [1n << 59n, GiB, 0x1000n, false]);
      const m = iommu.map(buffer, { iova: w.start + 0x10000n, size: 0x1000 });
      assert.deepEqual(kernelMappings(), [[m.iova, m.size]]);
    });

    it('v1: refuses to create a window', () => {
      const iommu = setUp('spapr');
      throwsCode(() => iommu.createWindow({ pageSize: 0x1000, size: GiB }), 'ERR_VFIO_IOMMU_UNSUPPORTED', /v1 has only the default window/);
      assert.equal(createCalls(), 0);
    });

    it('refuses a page size the IOMMU does not offer', () => {
      const iommu = v2();
      throwsCode(() => iommu.createWindow({ pageSize: 0x2000, size: GiB }), 'ERR_VFIO_WINDOW_LIMIT', /0x1000, 0x10000, 0x200000, 0x1000000/);
      assert.equal(createCalls(), 0);
    });

    it('refuses a window size that is not a power of two', () => {
      const iommu = v2();
      throwsCode(() => iommu.createWindow({ pageSize: 0x1000, size: 0x3000 }), 'ERR_VFIO_BAD_RANGE');
      assert.equal(createCalls(), 0);
    });

    for (const [levels, code] of [[0, 'ERR_OUT_OF_RANGE'], [2, 'ERR_VFIO_WINDOW_LIMIT']] as const) {
      it(`refuses ${levels} TCE table levels when the IOMMU reports 1`, () => {
        const iommu = v2();
        throwsCode(() => iommu.createWindow({ pageSize: 0x1000, size: GiB, levels }), code, levels ? /1\.\.1 levels/ : /"options\.levels"/);
        assert.equal(createCalls(), 0);
      });
    }

    it('refuses more windows than the IOMMU allows, the default one counted', () => {
      const iommu = v2();
      iommu.createWindow({ pageSize: 0x1000, size: GiB });
      throwsCode(() => iommu.createWindow({ pageSize: 0x1000, size: GiB }), 'ERR_VFIO_WINDOW_LIMIT', /2 windows are live/);
      assert.equal(createCalls(), 1);
    });

    it('refuses to remove a window that still holds a mapping (the kernel would drop it)', () => {
      const iommu = v2();
      const w = iommu.createWindow({ pageSize: 0x1000, size: GiB });
      iommu.map(buffer, { iova: w.start });
      throwsCode(() => iommu.removeWindow(w), 'ERR_VFIO_BUFFER_IN_USE', /still holds the DMA mapping/);
      assert.equal(calls('VFIO_IOMMU_SPAPR_TCE_REMOVE'), 0);
    });

    it('removes the default window; the next window starts at 0; maps outside refused', () => {
      const iommu = v2();
      iommu.removeWindow(iommu.dmaWindows[0]);
      const w = iommu.createWindow({ pageSize: 0x1000, size: 1n << 28n });
      assert.equal(w.start, 0n);
      throwsCode(() => iommu.map(buffer, { iova: 0x10000000n, size: 0x1000 }), 'ERR_VFIO_IOVA_OUT_OF_RANGE');
      assert.equal(calls('VFIO_IOMMU_MAP_DMA'), 0);
    });

    it('refuses to remove a window that is not live', () => {
      const iommu = v2();
      const w = iommu.createWindow({ pageSize: 0x1000, size: GiB });
      iommu.removeWindow(w);
      throwsCode(() => iommu.removeWindow(w), 'ERR_VFIO_NO_MAPPING', /not a live window/);
      assert.equal(calls('VFIO_IOMMU_SPAPR_TCE_REMOVE'), 1);
    });
  });
});
