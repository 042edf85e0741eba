// IOMMU groups as sysfs shows them under /sys/kernel/iommu_groups/<n>/devices,
// their viability, and the /dev/vfio/<n> node a user opens.

import * as fs from 'node:fs';
import * as path from 'node:path';
import { RuleCode, VfioError } from '../errors';
import {
  type AccessOptions,
  type NodeAccess,
  type SysfsOptions,
  listDir,
  nodeAccess,
  readAttr,
  roots,
} from './options';
import { type PciDeviceInfo, isBridge, readDeviceDir, readPciDevice, requireAddress } from './pci';

export interface IommuGroupInfo {
  id: number;
  devices: PciDeviceInfo[];
  viable: boolean;
  /** The devices that make the group non-viable (empty when viable). */
  blockers: PciDeviceInfo[];
  devNode: NodeAccess;
}

export type GroupOptions = SysfsOptions & AccessOptions;

// ---------------------------------------------------------------------------
// Viability: the kernel's rule, as seen from sysfs.
//
// A group may be handed to userspace only when no device in it is driven by a
// kernel driver that does DMA on its own, because every device of the group
// shares one IOMMU context (Documentation/driver-api/vfio.rst: a group is
// viable when every device in it is bound to a vfio bus driver or to no
// driver; the kernel allows a few harmless drivers besides, listed below).
//
// Linux >= 5.19 (drivers/vfio/group.c, VFIO_GROUP_GET_STATUS): the group is
// viable unless its DMA ownership is claimed (iommu_group_dma_owner_claimed).
// A driver claims it at probe time unless it sets `driver_managed_dma`
// (pci_dma_configure -> iommu_device_use_default_domain). Drivers that set it:
// vfio-pci and all its variant drivers (mlx5_vfio_pci, hisi_acc_vfio_pci,
// virtio_vfio_pci, nvgrace_gpu_vfio_pci, ...; every vfio_pci_core user),
// the other vfio bus drivers (vfio-platform, vfio-amba, vfio-fsl-mc, vfio-cdx),
// pci-stub, and pcieport (commit "PCI: portdrv: Set driver_managed_dma").
// An unbound device never claims. Bridges get no special treatment: a bridge
// on pcieport is fine, a bridge on any other driver (shpchp, ...) blocks.
// sysfs does not expose driver_managed_dma, so we match the driver names above:
// any name containing "vfio", plus pci-stub and pcieport.
//
// Linux < 5.19 (drivers/vfio/vfio.c, vfio_dev_viable): a device was fine if
// unbound, bound to a vfio driver, bound to pci-stub, or if it was a PCI
// device with a non-type-0 header (a bridge) whatever its driver (since 4.4,
// "vfio: Whitelist PCI bridges"; before that only pcieport).
// We pick the rule by the running kernel's release (procRoot/sys/kernel/osrelease).
// ---------------------------------------------------------------------------

export type ViabilityRule = 'dma-owner' | 'legacy';

const MANAGED_DMA_DRIVERS = new Set(['pci-stub', 'pcieport']);

/** True for a vfio bus driver name (vfio-pci and its variants, vfio-platform, ...). */
export function isVfioDriver(driver: string | null): boolean {
  return driver !== null && driver.includes('vfio');
}

/** Which rule the running kernel applies (unknown release: the current one). */
export function viabilityRule(opts?: SysfsOptions): ViabilityRule {
  const release = readAttr(path.join(roots(opts).proc, 'sys/kernel/osrelease'));
  const m = release === null ? null : /^(\d+)\.(\d+)/.exec(release);
  if (!m) return 'dma-owner';
  const [major, minor] = [Number(m[1]), Number(m[2])];
  return major > 5 || (major === 5 && minor >= 19) ? 'dma-owner' : 'legacy';
}

/** Does this device, as it is bound now, keep its group viable? */
export function keepsGroupViable(dev: PciDeviceInfo, rule: ViabilityRule, bridge: boolean): boolean {
  if (dev.driver === null || isVfioDriver(dev.driver)) return true;
  if (rule === 'legacy') return dev.driver === 'pci-stub' || (dev.bus === undefined && bridge);
  return MANAGED_DMA_DRIVERS.has(dev.driver);
}

function groupsDir(opts?: SysfsOptions): string {
  return path.join(roots(opts).sys, 'kernel/iommu_groups');
}

/** Group ids present in sysfs, ascending. Empty when the IOMMU is off. */
export function listIommuGroupIds(opts?: SysfsOptions): number[] {
  return listDir(groupsDir(opts))
    .filter((n) => /^\d+$/.test(n))
    .map(Number)
    .sort((a, b) => a - b);
}

export function listIommuGroups(opts?: GroupOptions): IommuGroupInfo[] {
  const rule = viabilityRule(opts);
  return listIommuGroupIds(opts).map((id) => readGroup(id, rule, opts));
}

export function readIommuGroup(id: number, opts?: GroupOptions): IommuGroupInfo {
  if (!Number.isSafeInteger(id) || id < 0) {
    throw new VfioError(RuleCode.INVALID_ARG, `IOMMU group must be a non-negative integer, got ${String(id)}`);
  }
  if (!fs.existsSync(path.join(groupsDir(opts), String(id)))) {
    const ids = listIommuGroupIds(opts);
    throw new VfioError(
      RuleCode.NO_DEVICE,
      ids.length === 0
        ? `no IOMMU group ${id}: there are no IOMMU groups at all; ${IOMMU_OFF_HINT}`
        : `no IOMMU group ${id} (groups present: ${ids.join(', ')})`,
    );
  }
  return readGroup(id, viabilityRule(opts), opts);
}

function readGroup(id: number, rule: ViabilityRule, opts?: GroupOptions): IommuGroupInfo {
  const devDir = path.join(groupsDir(opts), String(id), 'devices');
  const devices = listDir(devDir)
    .sort()
    .map((name) => readDeviceDir(path.join(devDir, name), name));
  const blockers = devices.filter((d) => !keepsGroupViable(d, rule, d.bus === undefined && isBridge(d.address, opts)));
  return {
    id,
    devices,
    viable: blockers.length === 0,
    blockers,
    devNode: nodeAccess(path.join(roots(opts).dev, 'vfio', String(id)), opts),
  };
}

export const IOMMU_OFF_HINT =
  'the IOMMU is probably off: enable VT-d (Intel) or AMD-Vi (AMD) in the firmware and boot with ' +
  'intel_iommu=on or amd_iommu=on on the kernel command line; check with `ls /sys/kernel/iommu_groups` ' +
  '(empty means off) and `dmesg | grep -i -e DMAR -e AMD-Vi -e IOMMU`, or run `vfio doctor`';

/** The group number of a device; explains why when it has none. */
export function iommuGroupOf(address: string, opts?: SysfsOptions): number {
  const dev = readPciDevice(address, opts);
  if (dev.iommuGroup !== null) return dev.iommuGroup;
  const any = listIommuGroupIds(opts).length > 0;
  throw new VfioError(
    RuleCode.NO_IOMMU_GROUP,
    any
      ? `${dev.address} has no IOMMU group although other devices have one: no IOMMU covers it ` +
          `(check the firmware's DMAR/IVRS tables, dmesg | grep -i -e DMAR -e AMD-Vi)`
      : `${dev.address} has no IOMMU group: ${IOMMU_OFF_HINT}`,
  );
}

/** One sentence a person can act on: why the group cannot be used, and the command that fixes it. */
export function explainNotViable(group: IommuGroupInfo): string {
  if (group.viable) return `group ${group.id} is viable`;
  const who = group.blockers.map((d) => `${d.address} is bound to ${d.driver}`).join(', ');
  const fix =
    group.blockers.length === 1
      ? `bind it to vfio-pci (${viabilityFix(group)}) or unbind it`
      : `bind them to vfio-pci (${viabilityFix(group)}) or unbind them`;
  return `group ${group.id} is not viable: ${who}; ${fix}`;
}

/** The command that makes a non-viable group viable: 'vfio bind <blocker>' or, for several, 'vfio bind --group <first>'. */
export function viabilityFix(group: IommuGroupInfo): string {
  const first = group.blockers[0]?.address ?? group.devices[0]?.address ?? '<device>';
  return group.blockers.length > 1 ? `vfio bind --group ${first}` : `vfio bind ${first}`;
}

/** Throws ERR_VFIO_GROUP_NOT_VIABLE with the explanation unless the group is viable. */
export function assertViable(group: IommuGroupInfo): void {
  if (!group.viable) throw new VfioError(RuleCode.GROUP_NOT_VIABLE, explainNotViable(group));
}

/** The group of a device, read in full. */
export function groupOfDevice(address: string, opts?: GroupOptions): IommuGroupInfo {
  return readIommuGroup(iommuGroupOf(requireAddress(address), opts), opts);
}
