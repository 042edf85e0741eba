// What to do about a kernel error, in the words of the object that failed.

import { hex } from './iova';
import { native } from './native';

/** ENOMEM from MAP_DMA / REGISTER_MEMORY: the locked-memory limit, almost always. */
export function memlockHint(bytes: bigint): string {
  let limit = 'unknown';
  try {
    const [soft] = native().getMemlockLimit();
    limit = soft < 0n ? 'unlimited' : `${soft} bytes (${soft / 1024n} KiB)`;
  } catch {
    // keep 'unknown': the hint still says what to do
  }
  return (
    `pinning ${hex(bytes)} more bytes exceeds RLIMIT_MEMLOCK, which is ${limit} for this process; ` +
    `raise it (ulimit -l, LimitMEMLOCK= in a systemd unit, memlock in /etc/security/limits.conf) ` +
    `or give the process CAP_IPC_LOCK`
  );
}

/** open(/dev/vfio/N) failures. */
export function groupOpenHint(code: string, id: number, path: string, openHere: boolean): string | undefined {
  switch (code) {
    case 'EBUSY':
      return openHere
        ? `group ${id} is already open in this process; use that Group object (a group can be opened once)`
        : `group ${id} is open in another process; find it with 'fuser -v ${path}' and close it there`;
    case 'EACCES':
    case 'EPERM':
      return `the current user may not open ${path}; grant it (e.g. 'chown $USER ${path}', or a udev rule setting OWNER/GROUP for vfio devices) or run with the needed privileges`;
    case 'ENOENT':
      return `${path} does not exist: bind a device of group ${id} to vfio-pci first ('vfio bind <bdf>') and check that the vfio-pci module is loaded`;
    case 'ENODEV':
      return `group ${id} has no devices left (they were unbound or removed)`;
    default:
      return undefined;
  }
}

/** open(/dev/vfio/vfio) failures. */
export function containerOpenHint(code: string, path: string): string | undefined {
  switch (code) {
    case 'ENOENT':
      return `${path} does not exist: load the vfio modules ('modprobe vfio-pci') and check the IOMMU is on (intel_iommu=on / amd_iommu=on)`;
    case 'EACCES':
    case 'EPERM':
      return `the current user may not open ${path}; it is usually world-accessible: check its mode`;
    default:
      return undefined;
  }
}
