// The edu demo: a real userspace PCI driver in TypeScript, end to end.
//   node dist/examples/edu/demo.js [bdf]      (default: $VFIO_TEST_BDF)
// The device must be bound to vfio-pci (`vfio bind <bdf>`). The same code
// runs on x86 (type1 IOMMU) and on POWER (sPAPR TCE IOMMU): it takes the
// best IOMMU the container offers.

import { Container, DmaBuffer, hex, SpaprTceIommu, sysfs } from '../../lib';
import { Edu, EDU_MAX_DMA } from './edu';

async function main(): Promise<void> {
  const bdf = process.argv[2] ?? process.env.VFIO_TEST_BDF;
  if (!bdf) throw new Error('usage: demo <bdf> (or set VFIO_TEST_BDF); the device must be bound to vfio-pci');
  const groupId = sysfs.iommuGroupOf(bdf);

  // Buffers first: `using` disposes in reverse, so the container (and its
  // mappings) goes before the memory the device could DMA into.
  using src = DmaBuffer.allocate(4096);
  using dst = DmaBuffer.allocate(4096);
  using container = Container.open();
  const group = container.openGroup(groupId);
  const iommu = container.setIommu();
  console.log(`container: API ${container.apiVersion}, ${iommu.kind} IOMMU, page ${hex(iommu.pageSize)}, group ${group.id}`);

  // sPAPR v2 maps only memory registered with it first.
  if (iommu instanceof SpaprTceIommu && iommu.kind === 'spapr-v2') {
    iommu.register(src);
    iommu.register(dst);
  }

  // QEMU's edu has big-endian registers on a POWER machine.
  const edu = new Edu(group.openDevice(bdf), { bigEndian: process.arch === 'ppc64' });
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
