// What the sPAPR TCE IOMMU reports on the real kernel, through the library
// and as the raw ioctl gives it.

import assert from 'node:assert/strict';
import { Container, DmaBuffer } from '../../lib';
import { native } from '../../lib/native';
import { testEnv } from '../vm/env';
import { errorOf } from '../vm/raw';
import { GiB, openSpapr, type Spapr } from './setup';

const show = (what: string, v: unknown) =>
  console.log(`      ${what}: ${JSON.stringify(v, (_k, x) => (typeof x === 'bigint' ? `0x${x.toString(16)}` : x))}`);

describe('sPAPR TCE IOMMU info (real kernel)', () => {
  let s: Spapr | undefined;
  afterEach(() => {
    s?.close();
    s = undefined;
  });

  it('the kernel offers spapr-v2 and spapr, not type1, and setIommu() picks spapr-v2', () => {
    using container = Container.open();
    container.openGroup(testEnv().group);
    assert.deepEqual(container.supportedIommus(), ['spapr-v2', 'spapr']);
    assert.equal(container.setIommu().kind, 'spapr-v2');
  });

  it('v2 GET_INFO: the 32-bit window and the DDW abilities, as the kernel gives them', () => {
    s = openSpapr('spapr-v2');
    const raw = s.container.handle().spaprGetInfo();
    show('v2 GET_INFO', raw);
    assert.deepEqual(s.iommu.info, raw);
    assert.equal(raw.flags & native().constants.VFIO_IOMMU_SPAPR_INFO_DDW, native().constants.VFIO_IOMMU_SPAPR_INFO_DDW);
    // QEMU's pseries: a 1 GiB window at 0; 4K, 64K, 2M, 16M pages; two windows; one level.
    assert.deepEqual(raw, {
      flags: 1,
      dma32WindowStart: 0n,
      dma32WindowSize: GiB,
      ddw: { pgsizes: 0x1211000n, maxDynamicWindowsSupported: 2, levels: 1 },
    });
  });

  it('v1 GET_INFO: the same window, no DDW', () => {
    s = openSpapr('spapr');
    const raw = s.container.handle().spaprGetInfo();
    show('v1 GET_INFO', raw);
    assert.deepEqual(s.iommu.info, raw);
    assert.deepEqual(raw, { flags: 0, dma32WindowStart: 0n, dma32WindowSize: GiB, ddw: null });
  });

  it('v1 was enabled at setup (a second ENABLE is EBUSY); v2 has no ENABLE (ENOTTY)', () => {
    s = openSpapr('spapr');
    assert.equal(errorOf(() => s!.container.handle().enable())?.code, 'EBUSY');
    s.close();
    s = openSpapr('spapr-v2');
    assert.equal(errorOf(() => s!.container.handle().enable())?.code, 'ENOTTY');
  });

  it('the default window has one window of 4 KiB TCE pages in our books', () => {
    s = openSpapr('spapr-v2');
    assert.deepEqual(
      s.iommu.dmaWindows.map((w) => [w.start, w.size, w.pageSize]),
      [[0n, GiB, 0x1000n]],
    );
  });

  it('DMA buffers have the kernel page size: 4 KiB on Debian ppc64el 6.12 (CONFIG_PPC_4K_PAGES)', () => {
    using b = DmaBuffer.allocate(1);
    show('page size', { kernel: native().pageSize, buffer: b.pageSize });
    assert.equal(b.pageSize, native().pageSize);
    assert.equal(b.pageSize, 4096);
  });

  it('EEH: the library reports what VFIO_CHECK_EXTENSION(VFIO_EEH) says', () => {
    s = openSpapr('spapr-v2');
    const raw = s.container.handle().checkExtension(native().constants.VFIO_EEH);
    show('VFIO_EEH', raw);
    assert.equal(s.iommu.eehSupported, raw > 0);
  });
});
