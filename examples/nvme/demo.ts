// The NVMe demo: a userspace NVMe driver in TypeScript, end to end.
//   node dist/examples/nvme/demo.js [bdf]     (default: $VFIO_GUEST_DEVICE_NVME)
// The controller must be bound to vfio-pci (`vfio bind <bdf>`). Its data is
// overwritten at LBAs 0..15.

import { Container, DmaBuffer, hex, sysfs } from '../../lib';
import { NvmeController } from './controller';

async function main(): Promise<void> {
  const bdf = process.argv[2] ?? process.env.VFIO_GUEST_DEVICE_NVME;
  if (!bdf) throw new Error('usage: demo <bdf> (or set VFIO_GUEST_DEVICE_NVME); the controller must be bound to vfio-pci');

  using out = DmaBuffer.allocate(5 * 4096);
  using back = DmaBuffer.allocate(5 * 4096);
  using container = Container.open();
  const group = container.openGroup(sysfs.iommuGroupOf(bdf));
  const iommu = container.setIommu();
  const device = group.openDevice(bdf);
  const bar = device.bar(0);
  const msix = device.msixCapability;
  console.log(`device:     ${bdf}, group ${group.id}, ${iommu.kind} IOMMU`);
  console.log(`BAR0:       ${hex(bar.size)} bytes; MSI-X table at ${hex(msix?.table.offset ?? 0)} (${msix?.vectors} vectors); kernel says table mappable: ${bar.msixMappable}`);

  const nvme = await NvmeController.start(device, iommu, { ioQueues: 2 });
  const id = nvme.identity;
  console.log(`controller: VS ${hex(nvme.version)}, CC ${hex(nvme.registers().cc)}, CSTS ${hex(nvme.registers().csts)}`);
  console.log(`identify:   serial "${id.serial}", model "${id.model}", firmware "${id.firmware}", MDTS ${id.maxTransferBytes} bytes`);
  console.log(`namespace:  ${nvme.namespace.blocks} blocks of ${nvme.namespace.blockSize} bytes`);

  // 5 pages: PRP1 and a PRP list of 4 entries.
  const pattern = out.bytes();
  for (let i = 0; i < pattern.length; i++) pattern[i] = (i * 31 + 7) & 0xff;
  const src = iommu.map(out, { iova: 0x100000n, writable: false });
  const dst = iommu.map(back, { iova: 0x200000n, readable: false });
  const blocks = out.size / nvme.namespace.blockSize;
  await nvme.write(8, blocks, src, 0, 1);
  await nvme.read(8, blocks, dst, 0, 2);
  const bad = back.bytes().findIndex((v, i) => v !== pattern[i]);
  console.log(`I/O:        wrote ${out.size} bytes at LBA 8 on queue 1, read them back on queue 2 (PRP list): ${bad < 0 ? 'all bytes match' : `MISMATCH at byte ${bad}`}`);
  console.log(`MSI-X:      interrupts per vector (admin, I/O 1, I/O 2): ${[0, 1, 2].map((v) => nvme.interruptsTaken[v] ?? 0).join(', ')}`);
  await nvme.close();
  console.log(`closed:     CC ${hex(nvme.device.bar(0).read32(0x14))}, CSTS ${hex(nvme.device.bar(0).read32(0x1c))}`);
  if (bad >= 0) process.exitCode = 1;
}

main().catch((e: unknown) => {
  console.error(e);
  process.exitCode = 1;
});
