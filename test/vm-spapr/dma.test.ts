// edu DMA through sPAPR TCE windows on the real kernel: the default 32-bit
// window (v1 and v2) and a dynamic window created with 4 KiB pages. Bytes
// that came back are checked, and after an unmap the device's writes must
// no longer reach the memory.

import assert from 'node:assert/strict';
import { EDU_MAX_DMA } from '../../examples/edu/edu';
import { GiB, openSpapr, roundTrip, unreachable, type Spapr } from './setup';

describe('edu DMA through sPAPR TCE windows (real kernel)', () => {
  let s: Spapr | undefined;
  afterEach(() => {
    s?.close();
    s = undefined;
  });

  for (const kind of ['spapr', 'spapr-v2'] as const) {
    describe(kind, () => {
      const setUp = () => {
        s = openSpapr(kind);
        const src = s.buffer();
        const dst = s.buffer();
        if (kind === 'spapr-v2') {
          s.iommu.register(src);
          s.iommu.register(dst);
        }
        return { s, src, dst };
      };

      it('the edu driver talks to the device (ident, liveness, factorial)', async () => {
        const { s } = setUp();
        const edu = s.edu();
        assert.equal(edu.ident(), 0x010000ed);
        assert.ok(edu.isAlive());
        assert.equal(await edu.factorial(10), 3628800);
      });

      it('copies RAM → device → RAM through the default 32-bit window, every byte', async () => {
        const { s, src, dst } = setUp();
        const a = s.iommu.map(src, { iova: 0x100000n, writable: false });
        const b = s.iommu.map(dst, { iova: 0x200000n, readable: false });
        await roundTrip(s.edu(), { iova: a.iova, bytes: src.bytes() }, { iova: b.iova, bytes: dst.bytes() }, EDU_MAX_DMA);
      });

      it('maps at 4 KiB steps: the default window has 4 KiB TCE pages', async () => {
        const { s, src, dst } = setUp();
        // Two neighbouring 4 KiB TCEs to different memory: each DMA lands
        // in its own buffer only if a TCE covers 4 KiB.
        const a = s.iommu.map(src, { iova: 0x3fffe000n, size: 0x1000 });
        const b = s.iommu.map(dst, { iova: 0x3ffff000n, size: 0x1000 });
        await roundTrip(s.edu(), { iova: a.iova, bytes: src.bytes(0, 0x1000) }, { iova: b.iova, bytes: dst.bytes(0, 0x1000) });
      });

      it('after unmap, device writes no longer reach the memory', async () => {
        const { s, src, dst } = setUp();
        const a = s.iommu.map(src, { iova: 0x100000n });
        const b = s.iommu.map(dst, { iova: 0x200000n });
        await roundTrip(s.edu(), { iova: a.iova, bytes: src.bytes() }, { iova: b.iova, bytes: dst.bytes() });
        b.unmap();
        await unreachable(s.edu(), 0x200000n, dst.bytes());
        // The device still works through the mapping that is left.
        await s.edu().toRam(a.iova, 16);
      });

      it('async map and unmap DMA the same way', async () => {
        const { s, src, dst } = setUp();
        const a = await s.iommu.mapAsync(src, { iova: 0x300000n });
        const b = await s.iommu.mapAsync(dst, { iova: 0x400000n });
        await roundTrip(s.edu(), { iova: a.iova, bytes: src.bytes() }, { iova: b.iova, bytes: dst.bytes() });
        await b.unmapAsync();
        await unreachable(s.edu(), 0x400000n, dst.bytes());
      });
    });
  }

  describe('spapr-v2 dynamic window', () => {
    const setUp = () => {
      s = openSpapr('spapr-v2');
      const src = s.buffer();
      const dst = s.buffer();
      s.iommu.register(src);
      s.iommu.register(dst);
      return { s, src, dst };
    };

    it('creates a 4 KiB-page window where the kernel puts it (2^59) and DMAs through it, every byte', async () => {
      const { s, src, dst } = setUp();
      // 256 MiB: removing or closing walks every TCE (~0.15 s here under TCG).
      const w = s.iommu.createWindow({ pageSize: 0x1000, size: GiB / 4n });
      console.log(`      created: ${w.description}`);
      assert.equal(w.start, 1n << 59n);
      const a = s.iommu.map(src, { iova: w.start });
      const b = s.iommu.map(dst, { iova: w.start + 0x100000n });
      await roundTrip(s.edu(), { iova: a.iova, bytes: src.bytes() }, { iova: b.iova, bytes: dst.bytes() }, EDU_MAX_DMA);
      b.unmap();
      await unreachable(s.edu(), w.start + 0x100000n, dst.bytes());
      a.unmap();
      s.iommu.removeWindow(w);
      assert.deepEqual(s.iommu.dmaWindows.map((x) => x.start), [0n]);
    });

    it('maps 2 MiB huge-page memory through a 64 KiB-page window and DMAs through it', async () => {
      s = openSpapr('spapr-v2');
      // The guest reserves 2 MiB pages (scripts/test.js: run --hugepages).
      const huge = s.buffer(2 << 20, { hugePageSize: 2 << 20 });
      s.iommu.register(huge);
      const w = s.iommu.createWindow({ pageSize: 0x10000, size: GiB / 4n });
      const a = s.iommu.map(huge, { iova: w.start, size: 0x10000 });
      const b = s.iommu.map(huge, { iova: w.start + 0x100000n, offset: 0x10000, size: 0x10000 });
      await roundTrip(s.edu(), { iova: a.iova, bytes: huge.bytes(0, 0x10000) }, { iova: b.iova, bytes: huge.bytes(0x10000, 0x10000) }, EDU_MAX_DMA);
    });

    it('removes the default window and creates one at 0 in its place; DMA works through it', async () => {
      const { s, src, dst } = setUp();
      s.iommu.removeWindow(s.iommu.dmaWindows[0]);
      const w = s.iommu.createWindow({ pageSize: 0x1000, size: GiB / 4n });
      assert.equal(w.start, 0n);
      const a = s.iommu.map(src, { iova: 0x10000n });
      const b = s.iommu.map(dst, { iova: 0x20000n });
      await roundTrip(s.edu(), { iova: a.iova, bytes: src.bytes() }, { iova: b.iova, bytes: dst.bytes() });
    });
  });
});
