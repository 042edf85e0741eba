// The parts of a passthrough VM, built and closed in every order by both the
// unit suite (mock kernel) and the real-kernel suite: edu's INTx on a
// resample irqfd, guest RAM and edu's BAR page as memory slots.

import { DmaBuffer, type Device, type Group, type Vm } from '../../lib';

export const VMM_PARTS = ['irqfd', 'slot', 'irq', 'device', 'buffer', 'vm'] as const;
export type VmmPart = (typeof VMM_PARTS)[number];

/** Every permutation of `items`. */
export function* orders<T>(items: readonly T[]): Generator<T[]> {
  if (items.length <= 1) return yield [...items];
  for (let i = 0; i < items.length; i++) {
    for (const rest of orders([...items.slice(0, i), ...items.slice(i + 1)])) yield [items[i], ...rest];
  }
}

export interface VmmParts {
  device: Device;
  ram: DmaBuffer;
  close: Record<VmmPart, () => void>;
}

/** Builds the parts in `vm` (edu of `group`), with one closer per part. */
export function buildVmmParts(vm: Vm, group: Group, bdf: string): VmmParts {
  const device = group.openDevice(bdf);
  const ram = DmaBuffer.memfd(0x10000);
  vm.createIrqchip();
  device.intx.enable();
  const irqfd = vm.irqfd(device.intx, { gsi: 5, resample: true });
  const slot = vm.mapMemory({ guestPhys: 0n, memory: ram });
  const bar = device.bar(0).mmap();
  // The BAR's slot goes with the device (or the VM), guest RAM's with `slot`.
  vm.mapMemory({ guestPhys: 0x20000n, memory: bar, size: 0x1000 });
  return {
    device,
    ram,
    close: {
      irqfd: () => irqfd.close(),
      slot: () => slot.close(),
      irq: () => !device.closed && device.intx.disable(),
      device: () => device.close(),
      buffer: () => ram.close(),
      vm: () => vm.close(),
    },
  };
}
