// Fault injection on the real path: the addon fails the Nth ioctl of a kind
// with a chosen errno before the kernel sees it (native/faults.cc), so a test
// on a real kernel can prove that every kernel failure midway leaves the
// library's books equal to the kernel's.

import { constants as osConstants } from 'node:os';
import { valueError } from '../args';
import { native } from '../native';
import { checkFault, type ErrnoCode, type Fault, type FaultSpec, type Faults } from './faults';

const names = new Map(Object.entries(osConstants.errno).map(([name, n]) => [n, name as ErrnoCode]));

/**
 * The real addon's faults. Only ioctls can be failed ('VFIO_IOMMU_MAP_DMA',
 * 'KVM_SET_DEVICE_ATTR', ...). Armed faults are process-wide and count calls
 * from every thread (mapAsync's included); clear() them when done.
 */
export function addonFaults(): Faults {
  const raw = native().ioctlFaults;
  if (!raw) throw new Error('addonFaults(): the backend in use is not the addon (a MockKernel is installed: use its own faults)');
  return {
    inject(spec: FaultSpec): void {
      const f = checkFault(spec);
      if (!f.syscall.startsWith('ioctl(')) throw valueError('spec.syscall', 'must name an ioctl (the addon fails only ioctls)', spec.syscall);
      raw.inject(f.syscall, f.nth, f.errno);
    },
    clear: () => raw.clear(),
    fired: (): Fault[] => raw.fired().map((f) => ({ ...f, code: names.get(f.errno) ?? ('EIO' as ErrnoCode) })),
  };
}
