// The object graph against the real kernel: what it reports, read back.

import assert from 'node:assert/strict';
import { readdirSync, readFileSync } from 'node:fs';
import { Container, Group, type Type1Iommu } from '../../lib';
import { native } from '../../lib/native';
import { containerOptions, msiWindow, onIommufdCompat, testEnv, type TestEnv } from './env';

describe('container, group and device on the real kernel', () => {
  let env: TestEnv;
  before(() => {
    env = testEnv();
  });

  it('speaks VFIO API version 0 and offers type1v2', () => {
    using container = Container.open(containerOptions());
    assert.equal(container.apiVersion, native().constants.VFIO_API_VERSION);
    assert.ok(container.supportedIommus().includes('type1v2'));
  });

  it('reports the group viable and not yet attached, then attached', () => {
    using group = Group.open(env.group);
    assert.deepEqual(group.status(), { viable: true, containerSet: false });
    using container = Container.open(containerOptions());
    group.attach(container);
    assert.deepEqual(group.status(), { viable: true, containerSet: true });
    group.detach();
    assert.deepEqual(group.status(), { viable: true, containerSet: false });
  });

  it("reads the IOMMU info: page sizes and IOVA ranges with the group's MSI window cut out", () => {
    using container = Container.open(containerOptions());
    const group = container.openGroup(env.group);
    const iommu = container.setIommu('type1v2') as Type1Iommu;
    if (onIommufdCompat()) {
      // On /dev/iommu the group's device joins the IOAS when it opens: until then every IOVA is allowed.
      assert.deepEqual(iommu.info().iovaRanges, [{ start: 0n, end: 0xffffffffffffffffn }]);
      group.openDevice(env.bdf);
      assert.deepEqual(iommu.windows(), iommu.info().iovaRanges, 'the books took the narrowed ranges when the device opened');
    }
    const info = iommu.info();
    // The smallest page size the IOMMU offers is the library's map granule.
    assert.equal(iommu.pageSize, info.pageSizes & -info.pageSizes);
    const ranges = JSON.stringify(info.iovaRanges, (_k, v) => (typeof v === 'bigint' ? `0x${v.toString(16)}` : v));
    assert.ok(info.iovaRanges.length >= 2, `ranges: ${ranges}`);
    // Where the interrupt window lies is the kernel's answer (x86: 0xfee00000, SMMUv3: 0x8000000).
    const msi = msiWindow(env.group);
    assert.ok(!info.iovaRanges.some((r) => r.start <= msi.end && r.end >= msi.start), `ranges ${ranges} overlap the MSI window`);
    assert.ok(info.iovaRanges.some((r) => r.end + 1n === msi.start) && info.iovaRanges.some((r) => r.start === msi.end + 1n), `ranges ${ranges} do not end at the MSI window`);
    // iommufd has no DMA entry limit: the compat container reports U32_MAX.
    if (onIommufdCompat()) assert.equal(info.dmaAvail, 0xffffffff);
    else assert.ok(typeof info.dmaAvail === 'number' && info.dmaAvail > 0);
  });

  it('opens the device and reads its regions and interrupts', () => {
    using container = Container.open(containerOptions());
    const group = container.openGroup(env.group);
    container.setIommu();
    const device = group.openDevice(env.bdf);
    assert.equal(device.info.pci, true);
    assert.equal(device.info.numRegions, native().constants.VFIO_PCI_NUM_REGIONS);
    const cfg = device.config;
    const vendor = cfg.read16(0);
    const id = cfg.read16(2);
    const sysVendor = Number(readFileSync(`/sys/bus/pci/devices/${env.bdf}/vendor`, 'utf8'));
    assert.equal(vendor, sysVendor);
    assert.ok(id > 0);
    assert.ok(device.msi.count >= 1);
  });

  it('reads a BAR the same through pread and through mmap', () => {
    using container = Container.open(containerOptions());
    const group = container.openGroup(env.group);
    container.setIommu();
    const device = group.openDevice(env.bdf);
    const bar = device.bar(0);
    assert.ok(bar.mappable && bar.size > 0n);
    const map = bar.mmap();
    assert.equal(map.read32(0), bar.read32(0));
  });

  it('closes every fd it opened', () => {
    const before = readdirSync('/proc/self/fd').length;
    {
      using container = Container.open(containerOptions());
      const group = container.openGroup(env.group);
      container.setIommu();
      const device = group.openDevice(env.bdf);
      device.bar(0).mmap();
      device.msi.enable();
    }
    assert.equal(readdirSync('/proc/self/fd').length, before);
  });
});
