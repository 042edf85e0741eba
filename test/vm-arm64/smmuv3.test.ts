// What the SMMUv3 kernel reports, and the library following it: the MSI
// window sits where this IOMMU puts it (QEMU virt: 0x8000000, inside the
// first 256 MiB, where x86 has 0xfee00000), and maps around it work.

import assert from 'node:assert/strict';
import { readdirSync } from 'node:fs';
import { Container, DmaBuffer, type Type1Iommu } from '../../lib';
import { Edu, EDU_MAX_DMA } from '../../examples/edu/edu';
import { isEdu, msiWindow, testEnv, type TestEnv } from '../vm/env';

const hex = (v: bigint) => `0x${v.toString(16)}`;

describe('the SMMUv3 kernel of the arm64 guest', () => {
  let env: TestEnv;
  before(() => {
    env = testEnv();
  });

  it('puts the device behind an SMMUv3 with a reserved MSI window of its own', () => {
    assert.ok(readdirSync('/sys/class/iommu').some((n) => n.startsWith('smmu3.')), 'no smmu3.* in /sys/class/iommu');
    const msi = msiWindow(env.group);
    console.log(`      kernel: group ${env.group} msi window ${hex(msi.start)}-${hex(msi.end)}`);
    assert.notEqual(msi.start, 0xfee00000n);
  });

  it('cuts exactly that window out of the IOVA ranges; the map granule is its smallest page size', () => {
    using container = Container.open();
    container.openGroup(env.group);
    const iommu = container.setIommu('type1v2') as Type1Iommu;
    const info = iommu.info();
    const msi = msiWindow(env.group);
    console.log(`      kernel: page sizes ${hex(info.pageSizes)}, ranges ${info.iovaRanges.map((r) => `${hex(r.start)}-${hex(r.end)}`).join(' ')}, dma avail ${info.dmaAvail}`);
    assert.equal(iommu.pageSize, info.pageSizes & -info.pageSizes);
    assert.equal(info.iovaRanges[0].start, 0n);
    assert.equal(info.iovaRanges[0].end, msi.start - 1n);
    assert.equal(info.iovaRanges[1].start, msi.end + 1n);
  });

  it('refuses a map into the window before the ioctl; DMA on either side of it returns every byte', async () => {
    if (!isEdu(env.bdf)) throw new Error(`${env.bdf} is not QEMU's edu (1234:11e8): this test drives edu registers`);
    const msi = msiWindow(env.group);
    // Buffers first: disposed after the container, which unmaps them.
    using src = DmaBuffer.allocate(64 * 1024);
    using dst = DmaBuffer.allocate(64 * 1024);
    using container = Container.open();
    const group = container.openGroup(env.group);
    const iommu = container.setIommu('type1v2');
    const page = iommu.pageSize;
    assert.throws(() => iommu.map(src, { iova: msi.end + 1n - page, size: Number(page) }), { code: 'ERR_VFIO_IOVA_OUT_OF_RANGE' });
    assert.equal(iommu.mappings.length, 0);
    const edu = new Edu(group.openDevice(env.bdf));
    const pattern = src.bytes(0, EDU_MAX_DMA);
    for (let i = 0; i < pattern.length; i++) pattern[i] = (i * 11 + 5) & 0xff;
    // The last page below the window and the first above it: both under edu's 256 MiB DMA mask.
    const below = iommu.map(src, { iova: msi.start - page, size: Number(page) });
    const above = iommu.map(dst, { iova: msi.end + 1n, size: Number(page) });
    await edu.toDevice(below.iova, EDU_MAX_DMA);
    await edu.toRam(above.iova, EDU_MAX_DMA);
    assert.deepEqual(Buffer.from(dst.bytes(0, EDU_MAX_DMA)), Buffer.from(pattern));
  });
});
