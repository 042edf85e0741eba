// The raw addon, below the rules: used to show what the kernel itself
// answers to the inputs our rules refuse.

import { native, type NativeContainer, type NativeGroup } from '../../lib/native';
import { containerOptions } from './env';

/**
 * A raw type1v2 container holding `groupId`. With `deviceName` the device is
 * opened too: on the iommufd compat container (/dev/iommu) only then does it
 * join the IOAS, and the kernel applies its page alignment and reserved
 * ranges (before, any alignment and any IOVA pass).
 */
export function rawType1(groupId: number, deviceName?: string): { container: NativeContainer; group: NativeGroup; close(): void } {
  const n = native();
  const container = n.openContainer(containerOptions().path);
  const group = n.openGroup(`/dev/vfio/${groupId}`);
  group.setContainer(container);
  container.setIommu(n.constants.VFIO_TYPE1v2_IOMMU);
  const device = deviceName === undefined ? null : group.getDeviceFd(deviceName);
  return {
    container,
    group,
    close() {
      device?.close();
      group.unsetContainer();
      group.close();
      container.close();
    },
  };
}

/** The error `fn` throws (or null). */
export function errorOf(fn: () => unknown): (Error & { code?: string; errno?: number; syscall?: string }) | null {
  try {
    fn();
    return null;
  } catch (e) {
    return e as Error;
  }
}
