// noiommu on the real kernel: the built kernel booted without an IOMMU and
// with vfio.enable_unsafe_noiommu_mode=1 (node scripts/test.js vm-noiommu).
// edu DMAs to the physical addresses of locked buffers and the bytes come
// back; each rule's refusal stands next to the kernel's own answer to the
// same input (the raw addon, below the rules).

import assert from 'node:assert/strict';
import { spawnSync } from 'node:child_process';
import { readFileSync } from 'node:fs';
import path from 'node:path';
import { Container, DmaBuffer, type DmaLock, Group, type NoIommu, NOIOMMU_WARNING_CODE } from '../../lib';
import { native } from '../../lib/native';
import { Edu, EDU_MAX_DMA } from '../../examples/edu/edu';
import { captureWarnings } from '../fixtures/warnings';
import { errorOf } from '../vm/raw';
import { isEdu, lockedKb, testEnv, type TestEnv } from '../vm/env';

const PAGE = 4096;
/** QEMU's edu has dma_mask = 28 bits by default: it clamps every RAM address to it. */
const EDU_DMA_LIMIT = 1n << 28n;
/** How much memory the search for a page below edu's limit may lock, at most. */
const SEARCH_CHUNK = 64 * 1024 * 1024;
const SEARCH_CHUNKS = 8;
/** TAINT_USER: the kernel sets it when it makes a noiommu group. */
const TAINT_USER = 1 << 6;

/** A child node process on this project, as root but without the given capability (setpriv drops it for good). */
function withoutCapability(cap: string, script: string): { status: number | null; stdout: string; stderr: string } {
  const lib = path.join(__dirname, '..', '..', 'lib');
  const r = spawnSync('setpriv', [`--inh-caps=-${cap}`, `--bounding-set=-${cap}`, '--', process.execPath, '-e', `const vfio = require(${JSON.stringify(lib)});\n${script}`], {
    encoding: 'utf8',
    env: process.env,
  });
  if (r.error) throw new Error(`setpriv (util-linux) did not run: ${r.error.message}; install util-linux`);
  return { status: r.status, stdout: r.stdout, stderr: r.stderr };
}

describe('noiommu on the real kernel (edu, no IOMMU)', () => {
  let env: TestEnv;
  const C = () => native().constants;

  before(() => {
    env = testEnv();
    if (!isEdu(env.bdf)) throw new Error(`${env.bdf} is not QEMU's edu: these tests drive edu registers`);
  });

  /** A container with edu's noiommu group and the noiommu model, and the edu driver on it. */
  function openNoIommu(): { container: Container; noIommu: NoIommu; edu: Edu } {
    const container = Container.open();
    captureWarnings(() => container.openGroup(env.group, { unsafeNoIommu: true }));
    const noIommu = container.setIommu('noiommu');
    const edu = new Edu(container.groups[0].openDevice(env.bdf));
    return { container, noIommu, edu };
  }

  describe('opening the group', () => {
    it('the regular open is refused naming the option (the kernel has no /dev/vfio/N for it)', () => {
      const e = errorOf(() => Group.open(env.group));
      assert.equal(e?.code, 'ERR_VFIO_NOIOMMU_OPT_IN', e?.message);
      assert.match(e!.message, new RegExp(`noiommu-${env.group}.*unsafeNoIommu: true`));
      // What the kernel itself says to the regular path:
      assert.equal(errorOf(() => native().openGroup(`/dev/vfio/${env.group}`))?.code, 'ENOENT');
    });

    it('the opt-in opens /dev/vfio/noiommu-N and emits the VFIO_NOIOMMU warning', () => {
      const { result: group, warnings } = captureWarnings(() => Group.open(env.group, { unsafeNoIommu: true }));
      try {
        assert.equal(group.path, `/dev/vfio/noiommu-${env.group}`);
        assert.equal(warnings.length, 1);
        assert.equal(warnings[0].code, NOIOMMU_WARNING_CODE);
        assert.match(warnings[0].message, /can DMA anywhere in physical memory/);
        assert.equal(group.status().viable, true);
      } finally {
        group.close();
      }
    });

    it('the kernel tainted itself (TAINT_USER) when it made the noiommu group', () => {
      const tainted = Number(readFileSync('/proc/sys/kernel/tainted', 'utf8'));
      assert.equal(tainted & TAINT_USER, TAINT_USER, `tainted = ${tainted}`);
    });

    it('without CAP_SYS_RAWIO the kernel refuses the open: EPERM, and the message names the capability', () => {
      const r = withoutCapability(
        'sys_rawio',
        `try { vfio.Group.open(${env.group}, { unsafeNoIommu: true }); console.log('opened'); } catch (e) { console.log(e.code, '|', e.message); }`,
      );
      assert.equal(r.status, 0, r.stderr);
      assert.match(r.stdout, /^EPERM \|.*CAP_SYS_RAWIO/);
    });
  });

  describe('the container and the kernel', () => {
    it('offers only the noiommu model to a noiommu group: type1 is refused first, the kernel says ENODEV', () => {
      const container = Container.open();
      try {
        captureWarnings(() => container.openGroup(env.group, { unsafeNoIommu: true }));
        assert.equal(container.checkExtension(C().VFIO_TYPE1v2_IOMMU), 0);
        assert.equal(container.checkExtension(C().VFIO_NOIOMMU_IOMMU), 1);
        assert.equal(errorOf(() => container.setIommu('type1v2'))?.code, 'ERR_VFIO_IOMMU_MISMATCH');
        assert.equal(errorOf(() => container.setIommu())?.code, 'ERR_VFIO_IOMMU_MISMATCH');
        const kernel = errorOf(() => container.handle().setIommu(C().VFIO_TYPE1v2_IOMMU));
        assert.equal(kernel?.code, 'ENODEV');
        assert.equal(kernel?.syscall, 'ioctl(VFIO_SET_IOMMU)');
        container.setIommu('noiommu');
      } finally {
        container.close();
      }
    });

    it('has no MAP_DMA (ENOTTY) and no GET_INFO (ENOTTY) once the noiommu model is set', () => {
      const { container } = openNoIommu();
      const buffer = DmaBuffer.allocate(PAGE);
      try {
        const map = errorOf(() => container.handle().mapDma(buffer.handle(), 0, PAGE, 0x100000n, 3));
        assert.equal(map?.code, 'ENOTTY');
        assert.equal(map?.syscall, 'ioctl(VFIO_IOMMU_MAP_DMA)');
        assert.equal(errorOf(() => container.handle().type1GetInfo())?.code, 'ENOTTY');
        assert.equal(errorOf(() => container.requireIommu())?.code, 'ERR_VFIO_IOMMU_MISMATCH');
      } finally {
        container.close();
        buffer.close();
      }
    });
  });

  describe('edu DMA by bus address', () => {
    let world: ReturnType<typeof openNoIommu>;
    const buffers: DmaBuffer[] = [];
    let low: { lock: DmaLock; offset: number };
    let high: { lock: DmaLock; offset: number };
    /** Two pages next to each other in physical memory, both below edu's limit: the first's offset. */
    let pair: { lock: DmaLock; offset: number };

    // Lock memory until a page below edu's 256 MiB limit turns up (and one
    // above it, for the clamp); the rest is unlocked and freed again.
    before(() => {
      world = openNoIommu();
      let lowAt: typeof low | undefined;
      let highAt: typeof high | undefined;
      let pairAt: typeof pair | undefined;
      const seen: bigint[] = [];
      for (let i = 0; i < SEARCH_CHUNKS && !(lowAt && highAt && pairAt); i++) {
        const b = DmaBuffer.allocate(SEARCH_CHUNK);
        buffers.push(b);
        const lock = world.noIommu.lock(b);
        const pages = lock.pages;
        seen.push(...pages);
        const l = pages.findIndex((a) => a + BigInt(PAGE) <= EDU_DMA_LIMIT);
        const h = pages.findIndex((a) => a >= EDU_DMA_LIMIT);
        const p = pages.findIndex((a, j) => j + 1 < pages.length && pages[j + 1] === a + BigInt(PAGE) && a + BigInt(2 * PAGE) <= EDU_DMA_LIMIT);
        if (!lowAt && l >= 0) lowAt = { lock, offset: l * PAGE };
        if (!highAt && h >= 0) highAt = { lock, offset: h * PAGE };
        if (!pairAt && p >= 0) pairAt = { lock, offset: p * PAGE };
      }
      const range = `locked ${seen.length} pages, bus addresses 0x${seen.reduce((a, b) => (b < a ? b : a)).toString(16)}-0x${seen.reduce((a, b) => (b > a ? b : a)).toString(16)}`;
      if (!lowAt) throw new Error(`no page below edu's 28-bit DMA limit (256 MiB) turned up: ${range}; boot the guest with less memory`);
      if (!highAt) throw new Error(`no page above edu's 28-bit DMA limit turned up: ${range}`);
      if (!pairAt) throw new Error(`no two physically adjacent pages below edu's limit turned up: ${range}`);
      low = lowAt;
      high = highAt;
      pair = pairAt;
      console.log(`      (${range}; low page at 0x${low.lock.busAddress(low.offset).toString(16)}, high at 0x${high.lock.busAddress(high.offset).toString(16)})`);
    });
    after(() => {
      world?.container.close();
      buffers.forEach((b) => b.close());
    });

    it('RAM → device → RAM at a locked page’s bus address: the bytes come back through edu', async () => {
      const n = EDU_MAX_DMA;
      const src = low.lock.buffer.bytes(low.offset, n);
      for (let i = 0; i < n; i++) src[i] = (i * 7 + 3) & 0xff;
      const expected = Buffer.from(src);
      await world.edu.toDevice(low.lock.busRange(low.offset, n), n);
      src.fill(0);
      await world.edu.toRam(low.lock.busRange(low.offset, n), n);
      assert.deepEqual(Buffer.from(low.lock.buffer.bytes(low.offset, n)), expected);
    });

    it('across a page boundary where the two pages are adjacent in physical memory (busRange allows it)', async () => {
      const n = EDU_MAX_DMA;
      const at = pair.offset + PAGE / 2;
      const bytes = pair.lock.buffer.bytes(at, n);
      for (let i = 0; i < n; i++) bytes[i] = (i * 13 + 1) & 0xff;
      const expected = Buffer.from(bytes);
      const bus = pair.lock.busRange(at, n);
      assert.equal(pair.lock.segments(at, n).length, 1);
      await world.edu.toDevice(bus, n);
      bytes.fill(0);
      await world.edu.toRam(bus, n);
      assert.deepEqual(Buffer.from(pair.lock.buffer.bytes(at, n)), expected);
    });

    it('into the middle of the page: busAddress(offset) is the page’s address plus the offset in it', async () => {
      const n = 1000;
      const at = low.offset + 2048;
      const src = low.lock.buffer.bytes(low.offset, n);
      for (let i = 0; i < n; i++) src[i] = 0xff - (i & 0xff);
      await world.edu.toDevice(low.lock.busAddress(low.offset), n);
      await world.edu.toRam(low.lock.busAddress(at), n);
      assert.deepEqual(Buffer.from(low.lock.buffer.bytes(at, n)), Buffer.from(src));
    });

    it("a page above edu's 28-bit dma_mask: edu reads the clamped address instead, so our bytes never arrive", async () => {
      const n = 256;
      const pattern = Buffer.from(Array.from({ length: n }, (_, i) => (i * 31 + 0x42) & 0xff));
      high.lock.buffer.bytes(high.offset, n).set(pattern);
      // Only a read from there (RAM → device): a write would land in whatever memory the clamped address is.
      await world.edu.toDevice(high.lock.busAddress(high.offset), n);
      const back = low.lock.buffer.bytes(low.offset, n);
      back.fill(0);
      await world.edu.toRam(low.lock.busAddress(low.offset), n);
      assert.notDeepEqual(Buffer.from(back), pattern);
    });

    it('a locked buffer cannot be freed while a device may DMA to it', () => {
      assert.equal(errorOf(() => low.lock.buffer.close())?.code, 'ERR_VFIO_BUFFER_IN_USE');
    });
  });

  describe("the kernel's VFIO-compatible container on /dev/iommu", () => {
    it('takes the noiommu group and model too, and edu DMAs by bus address through it', async () => {
      const container = Container.open({ path: '/dev/iommu' });
      const buffers: DmaBuffer[] = [];
      try {
        const group = captureWarnings(() => container.openGroup(env.group, { unsafeNoIommu: true })).result;
        assert.equal(container.checkExtension(C().VFIO_NOIOMMU_IOMMU), 1);
        assert.equal(errorOf(() => container.setIommu('type1v2'))?.code, 'ERR_VFIO_IOMMU_MISMATCH');
        const noIommu = container.setIommu('noiommu');
        const edu = new Edu(group.openDevice(env.bdf));
        // A page below edu's limit: lock memory until one turns up.
        let found: { lock: DmaLock; offset: number } | undefined;
        for (let i = 0; i < SEARCH_CHUNKS && !found; i++) {
          const b = DmaBuffer.allocate(SEARCH_CHUNK);
          buffers.push(b);
          const lock = noIommu.lock(b);
          const at = lock.pages.findIndex((a) => a + BigInt(PAGE) <= EDU_DMA_LIMIT);
          if (at >= 0) found = { lock, offset: at * PAGE };
        }
        if (!found) throw new Error(`no page below edu's DMA limit in ${SEARCH_CHUNKS} locked chunks`);
        const bus = found.lock.busRange(found.offset, 64);
        const bytes = found.lock.buffer.bytes(found.offset, 64);
        bytes.set(Buffer.alloc(64, 0xa5));
        await edu.toDevice(bus, 64);
        bytes.fill(0);
        await edu.toRam(bus, 64);
        assert.deepEqual(Buffer.from(bytes), Buffer.alloc(64, 0xa5));
      } finally {
        container.close();
        buffers.forEach((b) => b.close());
      }
    });
  });

  describe('locks on the real kernel', () => {
    it('lock() pins the pages (VmLck), and the container close unlocks them', () => {
      const { container, noIommu } = openNoIommu();
      const buffer = DmaBuffer.allocate(64 * PAGE);
      const before = lockedKb();
      const lock = noIommu.lock(buffer);
      assert.equal(lockedKb() - before, (64 * PAGE) / 1024);
      assert.equal(lock.pages.length, 64);
      assert.ok(lock.pages.every((a) => a !== 0n && a % BigInt(PAGE) === 0n));
      container.close();
      assert.equal(lockedKb(), before);
      assert.equal(errorOf(() => lock.busAddress(0))?.code, 'ERR_VFIO_CLOSED');
      buffer.close();
    });

    it('without CAP_SYS_ADMIN pagemap hides the frames and lock() refuses: ERR_VFIO_NO_BUS_ADDRESS, nothing locked', () => {
      const r = withoutCapability(
        'sys_admin',
        `process.emitWarning = () => {};
        const c = vfio.Container.open();
        c.openGroup(${env.group}, { unsafeNoIommu: true });
        const no = c.setIommu('noiommu');
        const b = vfio.DmaBuffer.allocate(4096);
        const kb = () => Number(/VmLck:\\s+(\\d+)/.exec(require('fs').readFileSync('/proc/self/status', 'utf8'))[1]);
        try { no.lock(b); console.log('locked'); } catch (e) { console.log(e.code, kb(), b.users.length, '|', e.message); }
        c.close(); b.close();`,
      );
      assert.equal(r.status, 0, r.stderr);
      assert.match(r.stdout, /^ERR_VFIO_NO_BUS_ADDRESS 0 0 \|.*CAP_SYS_ADMIN/);
    });
  });
});
