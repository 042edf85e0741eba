// The raw addon on an iommufd, below the rules: what the kernel itself
// answers to the inputs our rules refuse. A second edu (alone below its root
// port) is the raw side's device, so the suite's own device stays open.

import { cdevPath } from '../../lib/device';
import { native, type NativeDevice, type NativeIommufd } from '../../lib/native';

export interface RawIoas {
  fd: NativeIommufd;
  id: number;
  device: NativeDevice | null;
  close(): void;
}

/** A raw IOAS; with `bdf`, that device's cdev bound and attached to it. */
export function rawIoas(bdf?: string): RawIoas {
  const n = native();
  const fd = n.openIommufd('/dev/iommu');
  let device: NativeDevice | null = null;
  try {
    const id = fd.ioasAlloc();
    if (bdf) {
      device = n.openDeviceCdev(cdevPath(bdf));
      device.bindIommufd(fd);
      device.attachIommufdPt(id);
    }
    return {
      fd,
      id,
      device,
      close() {
        device?.close();
        fd.close();
      },
    };
  } catch (e) {
    device?.close();
    fd.close();
    throw e;
  }
}

export const mapFlags = (): number => {
  const c = native().constants;
  return c.IOMMU_IOAS_MAP_FIXED_IOVA | c.IOMMU_IOAS_MAP_READABLE | c.IOMMU_IOAS_MAP_WRITEABLE;
};
