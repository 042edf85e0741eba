// The edu demo: a real userspace PCI driver in TypeScript, end to end.
//   node dist/examples/edu/demo.js [--iommufd | --group] [bdf]   (default: $VFIO_TEST_BDF)
// The device must be bound to vfio-pci (`vfio bind <bdf>`). It takes the
// interface the kernel offers: the device's cdev bound to an iommufd (Linux
// 6.6+ with CONFIG_IOMMUFD and CONFIG_VFIO_DEVICE_CDEV), else its group in a
// container; a flag forces one. The same code runs on x86 (type1 IOMMU) and
// on POWER (sPAPR TCE IOMMU): a container takes the best IOMMU it offers.

import { Container, Device, DmaBuffer, hex, IommuFd, SpaprTceIommu, sysfs, type Iommu } from '../../lib';
import { Edu, EDU_MAX_DMA } from './edu';

/** Does the kernel offer this device by its cdev, and an iommufd to bind it to? */
function cdevOffered(bdf: string): boolean {
  return sysfs.detectInterfaces().iommufd.available && sysfs.deviceInterfaces(bdf).openWith.includes('cdev');
}

async function main(): Promise<void> {
  const args = process.argv.slice(2);
  const forced = args.find((a) => a === '--iommufd' || a === '--group');
  const bdf = args.find((a) => !a.startsWith('--')) ?? process.env.VFIO_TEST_BDF;
  if (!bdf) throw new Error('usage: demo [--iommufd | --group] <bdf> (or set VFIO_TEST_BDF); the device must be bound to vfio-pci');
  const viaCdev = forced ? forced === '--iommufd' : cdevOffered(bdf);

  // Buffers first: `using` disposes in reverse, so the container or iommufd
  // (and its mappings) goes before the memory the device could DMA into.
  using src = DmaBuffer.allocate(4096);
  using dst = DmaBuffer.allocate(4096);
  using owner = viaCdev ? IommuFd.open() : Container.open();
  let iommu: Iommu;
  let device: Device;
  if (owner instanceof IommuFd) {
    const ioas = owner.allocIoas();
    device = owner.openDevice(bdf, { ioas });
    iommu = ioas;
    const ranges = ioas.iovaRanges().ranges.map((r) => `${hex(r.start)}-${hex(r.end)}`);
    console.log(`interface: device cdev ${device.cdev} bound to ${owner.path}, IOAS ${ioas.id}, page ${hex(ioas.pageSize)}, IOVA ranges ${ranges.join(', ')}`);
  } else {
    const group = owner.openGroup(sysfs.iommuGroupOf(bdf));
    iommu = owner.setIommu();
    console.log(`interface: group ${group.id} in container ${owner.path}, API ${owner.apiVersion}, ${iommu.kind} IOMMU, page ${hex(iommu.pageSize)}`);
    device = group.openDevice(bdf);
  }

  // sPAPR v2 maps only memory registered with it first.
  if (iommu instanceof SpaprTceIommu && iommu.kind === 'spapr-v2') {
    iommu.register(src);
    iommu.register(dst);
  }

  // QEMU's edu has big-endian registers on a POWER machine.
  const edu = new Edu(device, { bigEndian: process.arch === 'ppc64' });
  console.log(`ident:     ${hex(edu.ident())}`);
  console.log(`liveness:  ${edu.isAlive() ? 'ok' : 'FAILED'}`);
  console.log(`factorial: 10! = ${await edu.factorial(10)}`);

  const n = EDU_MAX_DMA;
  const pattern = src.bytes(0, n);
  for (let i = 0; i < n; i++) pattern[i] = (i * 7 + 3) & 0xff;
  const a = iommu.map(src, { iova: 0x100000n, writable: false });
  const b = iommu.map(dst, { iova: 0x200000n, readable: false });
  await edu.toDevice(a.iova, n);
  await edu.toRam(b.iova, n);
  const got = dst.bytes(0, n);
  const bad = got.findIndex((v, i) => v !== pattern[i]);
  console.log(`DMA:       ${n} bytes RAM -> device -> RAM through the IOMMU: ${bad < 0 ? 'all bytes match' : `MISMATCH at byte ${bad}`}`);
  console.log(`MSI:       ${edu.irq.total(0)} interrupt(s) taken in JS`);
  a.unmap();
  b.unmap();
  if (bad >= 0 || !edu.isAlive()) process.exitCode = 1;
}

main().catch((e: unknown) => {
  console.error(e);
  process.exitCode = 1;
});
