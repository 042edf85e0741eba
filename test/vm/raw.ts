// The raw addon, below the rules: used to show what the kernel itself
// answers to the inputs our rules refuse.

import { native, type NativeContainer, type NativeGroup } from '../../lib/native';
import { containerOptions } from './env';

export function rawType1(groupId: number): { container: NativeContainer; group: NativeGroup; close(): void } {
  const n = native();
  const container = n.openContainer(containerOptions().path);
  const group = n.openGroup(`/dev/vfio/${groupId}`);
  group.setContainer(container);
  container.setIommu(n.constants.VFIO_TYPE1v2_IOMMU);
  return {
    container,
    group,
    close() {
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
