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
        : `group ${id} is open in another process, or a device of it is open by its cdev (Device.openCdev, here or elsewhere); find it with 'fuser -v ${path} /dev/vfio/devices/*' and close it there`;
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

/** open(/dev/iommu) failures. */
export function iommufdOpenHint(code: string, path: string): string | undefined {
  switch (code) {
    case 'ENOENT':
      return `${path} does not exist: this kernel has no iommufd (CONFIG_IOMMUFD, Linux 6.2+; Debian's kernels ship without it); use the group/container interface (Container.open()), or boot a kernel with CONFIG_IOMMUFD=y ('vfio doctor' says what this host offers)`;
    case 'EACCES':
    case 'EPERM':
      return `the current user may not open ${path}; grant it (a udev rule for the iommu misc device) or run with the needed privileges`;
    default:
      return undefined;
  }
}

/** open(/dev/vfio/devices/vfioN) failures. */
export function cdevOpenHint(code: string, path: string, address: string): string | undefined {
  switch (code) {
    case 'ENOENT':
      return `${path} does not exist: bind ${address} to vfio-pci ('vfio bind ${address}') on a kernel with device cdevs (CONFIG_VFIO_DEVICE_CDEV, Linux 6.6+)`;
    case 'EBUSY':
      return `${address} is open already (through its group, or its cdev in another process); close that first`;
    case 'EACCES':
    case 'EPERM':
      return `the current user may not open ${path}; grant it (a udev rule for vfio devices) or run with the needed privileges`;
    default:
      return undefined;
  }
}
