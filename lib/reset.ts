// PCI hot reset: a secondary bus (or slot) reset hits every device below the
// bridge, so the kernel wants proof that the caller owns every group those
// devices are in: the group fds, handed over with the reset. We name the
// missing group before the ioctl, where the kernel would only say EINVAL.

import { argArray, isInstance, typeError } from './args';
import type { Device } from './device';
import { RuleCode, VfioError, rethrow } from './errors';
import { Group } from './group';
import type { HotResetInfoRaw, NativeDevice } from './native';

/** A device a hot reset would hit (struct vfio_pci_dependent_device). */
export interface HotResetDevice {
  /** PCI address, e.g. '0000:02:00.0'. */
  address: string;
  /** Its IOMMU group. */
  group: number;
}

/** VFIO_DEVICE_GET_PCI_HOT_RESET_INFO, in our words. */
export function hotResetInfo(device: Device, handle: NativeDevice): HotResetDevice[] {
  let raw: HotResetInfoRaw;
  try {
    raw = handle.getPciHotResetInfo();
  } catch (e) {
    rethrow(e, `${device.description}: asking which devices a PCI hot reset would hit`, (code) =>
      code === 'ENODEV' ? 'the device sits where no bus or slot reset can reach it alone (e.g. on the root bus): it has no hot reset' : undefined,
    );
  }
  return raw.devices.map((d) => ({ address: pciAddress(d.segment, d.bus, d.devfn), group: d.groupId }));
}

/**
 * VFIO_DEVICE_PCI_HOT_RESET with the fds of `groups`. Refused before the
 * ioctl when a group is closed or when a group the reset would hit is not
 * among them; the caller's groups array is copied once, so nothing can
 * change it between the check and the ioctl.
 */
export function hotReset(device: Device, handle: NativeDevice, given: unknown): void {
  const groups = argArray(given, 'groups', 0x800).map((g, i) => {
    if (!isInstance(g, Group)) throw typeError(`groups[${i}]`, 'a Group', g);
    return g as Group;
  });
  const closed = groups.find((g) => g.closed);
  if (closed) throw new VfioError(RuleCode.CLOSED, `${device.description}: cannot prove ownership with ${closed.description}: it is closed`);
  const hit = hotResetInfo(device, handle);
  const have = new Set(groups.map((g) => g.id));
  const missing = hit.filter((d) => !have.has(d.group));
  if (missing.length > 0) {
    const ids = [...new Set(missing.map((d) => d.group))];
    throw new VfioError(
      RuleCode.RESET_GROUP_MISSING,
      `${device.description}: a PCI hot reset would also hit ${missing.map((d) => `${d.address} (group ${d.group})`).join(', ')}; ` +
        `pass the open Group object${ids.length > 1 ? 's' : ''} of group${ids.length > 1 ? 's' : ''} ${ids.join(', ')} too. Nothing was reset`,
    );
  }
  try {
    handle.pciHotReset(groups.map((g) => g.handle()));
  } catch (e) {
    rethrow(e, `${device.description}: PCI hot reset`, (code) =>
      code === 'EINVAL' ? 'the kernel did not accept the groups as covering every device the reset hits' : code === 'EBUSY' ? 'a device the reset hits is in use elsewhere' : undefined,
    );
  }
}

function pciAddress(segment: number, bus: number, devfn: number): string {
  const h = (n: number, w: number) => n.toString(16).padStart(w, '0');
  return `${h(segment, 4)}:${h(bus, 2)}:${h(devfn >> 3, 2)}.${devfn & 7}`;
}
