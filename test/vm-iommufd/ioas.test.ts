// iommufd IO address spaces on the built kernel: edu DMA through an IOAS
// (bytes that came back), a DMA to an unmapped IOVA dropped, the kernel's
// own IOVA placement, and each rule's refusal next to the kernel's answer
// to the same input (the raw addon, below the rules).

import assert from 'node:assert/strict';
import { Device, DmaBuffer, IommuFd, type Ioas } from '../../lib';
import { Edu, EDU_MAX_DMA } from '../../examples/edu/edu';
import { isEdu, msiWindow, requireRootPort, testEnv, type TestEnv } from '../vm/env';
import { errorOf } from '../vm/raw';
import { mapFlags as flags, rawIoas } from './raw';

describe('iommufd IOAS on the real kernel', () => {
  let env: TestEnv;
  let iommufd: IommuFd;
  let ioas: Ioas;
  let device: Device;
  let edu: Edu;
  const buffers: DmaBuffer[] = [];
  const buffer = (size = 4096) => {
    const b = DmaBuffer.allocate(size);
    buffers.push(b);
    return b;
  };

  before(() => {
    env = testEnv();
    if (!isEdu(env.bdf)) throw new Error(`${env.bdf} is not QEMU's edu: these tests drive edu registers`);
    iommufd = IommuFd.open();
    ioas = iommufd.allocIoas();
    device = iommufd.openDevice(env.bdf, { ioas });
    edu = new Edu(device);
  });
  after(() => {
    iommufd?.close();
    buffers.forEach((b) => b.close());
  });

  it('reports IOVA ranges that exclude the interrupt window once edu is attached, alignment one page', () => {
    const { alignment, ranges } = ioas.iovaRanges();
    assert.equal(alignment, 4096n);
    const msi = msiWindow(env.group);
    assert.ok(ranges.length >= 2, `ranges: ${JSON.stringify(ranges, (_k, v) => (typeof v === 'bigint' ? `0x${v.toString(16)}` : v))}`);
    assert.ok(ranges.every((r) => r.end < msi.start || r.start > msi.end), 'no range covers the MSI window');
    assert.ok(ranges.some((r) => r.end === msi.start - 1n));
    // A fresh IOAS with nothing attached allows everything.
    const fresh = iommufd.allocIoas();
    try {
      assert.deepEqual(fresh.iovaRanges().ranges, [{ start: 0n, end: 0xffffffffffffffffn }]);
    } finally {
      fresh.destroy();
    }
  });

  it('copies a pattern RAM → edu → RAM through the IOAS, every byte', async () => {
    const src = buffer();
    const dst = buffer();
    const pattern = src.bytes(0, EDU_MAX_DMA);
    for (let i = 0; i < pattern.length; i++) pattern[i] = (i * 7 + 3) & 0xff;
    dst.bytes().fill(0);
    const a = ioas.map(src, { iova: 0x100000n });
    const b = ioas.map(dst, { iova: 0x200000n });
    await edu.toDevice(a.iova, EDU_MAX_DMA);
    await edu.toRam(b.iova, EDU_MAX_DMA);
    assert.deepEqual(Buffer.from(dst.bytes(0, EDU_MAX_DMA)), Buffer.from(pattern));
    assert.equal(dst.bytes()[EDU_MAX_DMA], 0, 'nothing past the count was written');
    a.unmap();
    b.unmap();
    assert.equal(ioas.mappings.length, 0);
  });

  it('lets the kernel place a mapping given no IOVA, and DMA reaches it there', async () => {
    const src = buffer();
    const dst = buffer();
    src.bytes().fill(0x5a);
    const a = ioas.map(src);
    const b = await ioas.mapAsync(dst);
    assert.ok(a.iova >= 0n && b.iova >= 0n && a.iova !== b.iova);
    assert.equal(a.iova % 4096n, 0n);
    assert.deepEqual(ioas.mappings, [a, b].sort((x, y) => (x.iova < y.iova ? -1 : 1)));
    // edu reaches only 28 bits of IOVA by default.
    if (a.iova < 1n << 28n && b.iova < 1n << 28n) {
      await edu.toDevice(a.iova, 512);
      await edu.toRam(b.iova, 512);
      assert.ok(dst.bytes(0, 512).every((v) => v === 0x5a));
    } else {
      assert.fail(`the kernel placed the mappings at ${a.iova.toString(16)} and ${b.iova.toString(16)}, beyond edu's 28-bit DMA mask`);
    }
    a.unmap();
    await b.unmapAsync();
  });

  it('a DMA to an IOVA that was unmapped does not reach memory', async () => {
    const src = buffer();
    const dst = buffer();
    src.bytes().fill(0x77);
    dst.bytes().fill(0x11);
    const a = ioas.map(src, { iova: 0x500000n });
    const b = ioas.map(dst, { iova: 0x600000n });
    await edu.toDevice(a.iova, 2048);
    b.unmap();
    await edu.toRam(0x600000n, 2048).catch(() => undefined);
    assert.ok(dst.bytes(0, 2048).every((v) => v === 0x11), 'the buffer kept its bytes: the IOMMU dropped the DMA');
    a.unmap();
  });

  it('misaligned IOVA: ERR_VFIO_MISALIGNED here, EINVAL from the kernel', () => {
    const b = buffer(0x4000);
    assert.throws(() => ioas.map(b, { iova: 0x100800n, size: 4096 }), { code: 'ERR_VFIO_MISALIGNED' });
    assert.equal(ioas.mappings.length, 0);
    const raw = rawIoas(requireRootPort(env).bdf);
    try {
      assert.equal(errorOf(() => raw.fd.ioasMap(raw.id, b.handle(), 0, 4096, 0x100800n, flags()))?.code, 'EINVAL');
    } finally {
      raw.close();
    }
  });

  it('overlapping map: ERR_VFIO_OVERLAP here, EEXIST from the kernel', () => {
    const b = buffer(0x8000);
    const m = ioas.map(b, { iova: 0x100000n, size: 0x4000 });
    assert.throws(() => ioas.map(b, { iova: 0x102000n, offset: 0x4000, size: 0x4000 }), { code: 'ERR_VFIO_OVERLAP' });
    assert.deepEqual(ioas.mappings, [m]);
    m.unmap();
    const raw = rawIoas();
    try {
      raw.fd.ioasMap(raw.id, b.handle(), 0, 0x4000, 0x100000n, flags());
      assert.equal(errorOf(() => raw.fd.ioasMap(raw.id, b.handle(), 0x4000, 0x4000, 0x102000n, flags()))?.code, 'EEXIST');
    } finally {
      raw.close();
    }
  });

  it('an IOVA in the interrupt window: ERR_VFIO_IOVA_OUT_OF_RANGE here, EINVAL from the kernel', () => {
    const b = buffer();
    const msi = msiWindow(env.group);
    assert.throws(() => ioas.map(b, { iova: msi.start }), { code: 'ERR_VFIO_IOVA_OUT_OF_RANGE' });
    assert.equal(ioas.mappings.length, 0);
    const raw = rawIoas(requireRootPort(env).bdf);
    try {
      const answer = errorOf(() => raw.fd.ioasMap(raw.id, b.handle(), 0, 4096, msi.start, flags()));
      assert.equal(answer?.code, 'EINVAL', `the kernel answered ${answer?.code}`);
    } finally {
      raw.close();
    }
  });

  it('partial unmap: ERR_VFIO_NO_MAPPING here; the kernel answers the same cut with an error and keeps the mapping', () => {
    const b = buffer(0x4000);
    const m = ioas.map(b, { iova: 0x300000n });
    assert.throws(() => ioas.unmap({ iova: 0x301000n, size: 0x1000 }), { code: 'ERR_VFIO_NO_MAPPING' });
    assert.deepEqual(ioas.mappings, [m]);
    const raw = rawIoas();
    try {
      raw.fd.ioasMap(raw.id, b.handle(), 0, 0x4000, 0x300000n, flags());
      assert.equal(errorOf(() => raw.fd.ioasUnmap(raw.id, 0x301000n, 0x1000n))?.code, 'ENOENT', 'the kernel refused to cut the area');
      assert.equal(raw.fd.ioasUnmap(raw.id, 0x300000n, 0x4000n), 0x4000n, 'the whole area was still there');
    } finally {
      raw.close();
    }
    m.unmap();
  });

  it('a mapped buffer cannot close (ERR_VFIO_BUFFER_IN_USE) until unmapped', () => {
    const b = DmaBuffer.allocate(4096);
    const m = ioas.map(b, { iova: 0x700000n });
    assert.throws(() => b.close(), { code: 'ERR_VFIO_BUFFER_IN_USE' });
    m.unmap();
    b.close();
  });

  it('a BAR mmap cannot be mapped into an IOAS (ERR_VFIO_UNSUPPORTED), before any ioctl', () => {
    const bar = device.bar(0).mmap();
    assert.throws(() => ioas.map(bar, { iova: 0x800000n, size: 4096 }), { code: 'ERR_VFIO_UNSUPPORTED' });
    assert.equal(ioas.mappings.length, 0);
  });

  it('allowIovas keeps a range usable; an IOVA outside an allowed range is placed inside it', () => {
    const other = iommufd.allocIoas();
    try {
      other.allowIovas([{ start: 0x4000_0000n, end: 0x4fff_ffffn }]);
      const b = buffer();
      const m = other.map(b);
      assert.ok(m.iova >= 0x4000_0000n && m.iova <= 0x4fff_f000n, `placed at ${m.iova.toString(16)}`);
      m.unmap();
      assert.throws(() => other.allowIovas([{ start: 10n, end: 1n }]), { code: 'ERR_INVALID_ARG_VALUE' });
    } finally {
      other.destroy();
    }
  });

  it('destroying an IOAS with a device attached is refused, changing nothing; the kernel answers EBUSY', () => {
    const b = buffer();
    const m = ioas.map(b, { iova: 0x900000n });
    assert.throws(() => ioas.destroy(), { code: 'ERR_VFIO_BUSY' });
    assert.equal(ioas.closed, false);
    assert.deepEqual(ioas.mappings, [m]);
    m.unmap();
    const raw = rawIoas(requireRootPort(env).bdf);
    try {
      assert.equal(errorOf(() => raw.fd.destroy(raw.id))?.code, 'EBUSY');
    } finally {
      raw.close();
    }
  });

  it('unmapAll takes everything out in one ioctl', () => {
    const b = buffer(0x10000);
    for (let i = 0; i < 4; i++) ioas.map(b, { iova: 0xa00000n + BigInt(i) * 0x10000n, offset: i * 0x4000, size: 0x4000 });
    assert.equal(ioas.mappings.length, 4);
    ioas.unmapAll();
    assert.equal(ioas.mappings.length, 0);
  });
});
