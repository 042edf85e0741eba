// The VM-manager demo: edu passed through to a tiny KVM guest, its MSI and
// its INTx (with resample) delivered into the guest by the kernel alone.
//   node dist/examples/vmm/demo.js [bdf]      (default: $VFIO_TEST_BDF)
// Needs /dev/kvm and an edu bound to vfio-pci; `npm run demo -- vmm` boots
// the test guest (nested KVM) and runs it there.

import { sysfs } from '../../lib';
import { DONE_PORT, EDU_GPA, RAM_SIZE, runIntxPassthrough, runMsiPassthrough, type PassthroughResult } from './passthrough';

function exits(r: PassthroughResult): string {
  const e = r.exit.exits;
  return `${e.io} io, ${e.mmio} MMIO, ${e.hlt} hlt, ${e.intr} signal, ${e.other} other`;
}

async function main(): Promise<void> {
  const bdf = process.argv[2] ?? process.env.VFIO_TEST_BDF;
  if (!bdf) throw new Error('usage: demo <bdf> (or set VFIO_TEST_BDF); the device must be bound to vfio-pci');
  const group = sysfs.iommuGroupOf(bdf);
  console.log(`VM:        ${RAM_SIZE / 1024} KiB RAM (one memfd: KVM slot + IOMMU map at IOVA = GPA), edu BAR 0 page at GPA 0x${EDU_GPA.toString(16)}`);

  const msi = await runMsiPassthrough({ group, bdf });
  console.log(`MSI run:   vCPU exit '${msi.exit.reason}' on port 0x${(msi.exit.port ?? 0).toString(16)} (done port 0x${DONE_PORT.toString(16)}); exits: ${exits(msi)}`);
  console.log(`           edu liveness read by guest code: 0x${(msi.liveness ?? 0).toString(16)}`);
  console.log(`           DMA: 64 bytes guest RAM -> edu -> guest RAM: ${msi.dmaMatches ? 'all match' : 'MISMATCH'}`);
  console.log(`           MSI via irqfd: ${msi.interrupts} taken by the guest (status 0x${msi.statuses[0].toString(16)}), ${msi.jsEvents} seen by JS`);

  const intx = await runIntxPassthrough({ group, bdf });
  console.log(`INTx run:  vCPU exit '${intx.exit.reason}' on port 0x${(intx.exit.port ?? 0).toString(16)}; exits: ${exits(intx)}`);
  console.log(`           INTx via resample irqfd: ${intx.interrupts} taken by the guest (statuses ${intx.statuses.map((s) => `0x${s.toString(16)}`).join(', ')}), ${intx.jsEvents} seen by JS`);
  const ok = msi.exit.reason === 'io' && msi.exit.exits.mmio === 0 && msi.liveness === 0xedcba987 && msi.dmaMatches && msi.interrupts === 1 && intx.interrupts === 2;
  if (!ok) process.exitCode = 1;
}

main().catch((e: unknown) => {
  console.error(e);
  process.exitCode = 1;
});
