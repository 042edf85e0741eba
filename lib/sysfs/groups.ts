// IOMMU groups as sysfs shows them under /sys/kernel/iommu_groups/<n>/devices,
// their viability, and the /dev/vfio/<n> node a user opens.

import * as fs from 'node:fs';
import * as path from 'node:path';
import { argArray, argBool, argInt, argOneOf, argOptions, optionField, typeError } from '../args';
import { RuleCode, VfioError } from '../errors';
import {
  type AccessOptions,
  type NodeAccess,
  type SysfsOptions,
  checkOptions,
  listDir,
  nodeAccess,
  readAttr,
  roots,
} from './options';
import { type PciDeviceInfo, bridgeAt, readDeviceDir, readPciDevice, requireAddress } from './pci';

/** An IOMMU group as sysfs describes it: its devices, its /dev/vfio node and whether it is viable. */
export interface IommuGroupInfo {
  id: number;
  devices: PciDeviceInfo[];
  viable: boolean;
  /** The devices that make the group non-viable (empty when viable). */
  blockers: PciDeviceInfo[];
  /** /dev/vfio/<id>, or /dev/vfio/noiommu-<id> for a no-IOMMU group. */
  devNode: NodeAccess;
  /** A group vfio made for a device that no IOMMU covers (unsafe no-IOMMU mode): no isolation at all. */
  noiommu: boolean;
}

/** Options of the group functions: where sysfs is, and whose access is judged. */
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

/** Which devices keep a group viable: the kernel's dma-owner rule (6.x) or the legacy one. */
export type ViabilityRule = 'dma-owner' | 'legacy';

const MANAGED_DMA_DRIVERS = new Set(['pci-stub', 'pcieport']);

/** True for a vfio bus driver name (vfio-pci and its variants, vfio-platform, ...). */
export function isVfioDriver(driver: string | null): boolean {
  const d = argDriver(driver, 'driver');
  return d !== null && d.includes('vfio');
}

function argDriver(value: unknown, argument: string): string | null {
  if (value !== null && typeof value !== 'string') throw typeError(argument, 'of type string or null', value);
  return value;
}

/** Which rule the running kernel applies (unknown release: the current one). */
export function viabilityRule(opts?: SysfsOptions): ViabilityRule {
  const release = readAttr(path.join(roots(checkOptions(opts)).proc, 'sys/kernel/osrelease'));
  const m = release === null ? null : /^(\d+)\.(\d+)/.exec(release);
  if (!m) return 'dma-owner';
  const [major, minor] = [Number(m[1]), Number(m[2])];
  return major > 5 || (major === 5 && minor >= 19) ? 'dma-owner' : 'legacy';
}

/** Does this device, as it is bound now, keep its group viable? */
export function keepsGroupViable(dev: PciDeviceInfo, rule: ViabilityRule, bridge: boolean): boolean {
  const d = argDevice(dev, 'dev');
  argOneOf(rule, 'rule', ['dma-owner', 'legacy']);
  argBool(bridge, 'bridge');
  if (d.driver === null || isVfioDriver(d.driver)) return true;
  if (rule === 'legacy') return d.driver === 'pci-stub' || (d.bus === undefined && bridge);
  return MANAGED_DMA_DRIVERS.has(d.driver);
}

/** The fields of a PciDeviceInfo the viability rule and its explanation read, checked. */
interface DeviceFacts {
  address: string;
  driver: string | null;
  bus?: string;
}

function argDevice(value: unknown, argument: string): DeviceFacts {
  const o = argOptions(value, argument);
  const address = optionField(o, 'address', `${argument}.address`);
  if (typeof address !== 'string') throw typeError(`${argument}.address`, 'of type string', address);
  const driver = argDriver(optionField(o, 'driver', `${argument}.driver`), `${argument}.driver`);
  const bus = optionField(o, 'bus', `${argument}.bus`);
  if (bus !== undefined && typeof bus !== 'string') throw typeError(`${argument}.bus`, 'of type string or undefined', bus);
  return bus === undefined ? { address, driver } : { address, driver, bus };
}

/** The fields of an IommuGroupInfo explainNotViable reads, checked. */
interface GroupFacts {
  id: number;
  viable: boolean;
  devices: DeviceFacts[];
  blockers: DeviceFacts[];
}

function argGroup(value: unknown, argument: string): GroupFacts {
  const o = argOptions(value, argument);
  const list = (key: string): DeviceFacts[] =>
    argArray(optionField(o, key, `${argument}.${key}`), `${argument}.${key}`).map((d, i) => argDevice(d, `${argument}.${key}[${i}]`));
  return {
    id: argGroupId(optionField(o, 'id', `${argument}.id`), `${argument}.id`),
    viable: argBool(optionField(o, 'viable', `${argument}.viable`), `${argument}.viable`),
    devices: list('devices'),
    blockers: list('blockers'),
  };
}

/** An IOMMU group number: the N of /sys/kernel/iommu_groups/N and /dev/vfio/N. */
export function argGroupId(value: unknown, argument = 'id'): number {
  return argInt(value, argument, 0, 0xffffffff);
}

function groupsDir(opts?: SysfsOptions): string {
  return path.join(roots(opts).sys, 'kernel/iommu_groups');
}

/** Group ids present in sysfs, ascending. Empty when the IOMMU is off. */
export function listIommuGroupIds(opts?: SysfsOptions): number[] {
  return listDir(groupsDir(checkOptions(opts)))
    .filter((n) => /^\d+$/.test(n))
    .map(Number)
    .sort((a, b) => a - b);
}

/** Every IOMMU group of the host, by number. */
export function listIommuGroups(opts?: GroupOptions): IommuGroupInfo[] {
  const o = checkOptions(opts);
  const rule = viabilityRule(o);
  return listIommuGroupIds(o).map((id) => readGroup(id, rule, o));
}

/** One IOMMU group by number; ERR_VFIO_NO_DEVICE when it does not exist. */
export function readIommuGroup(id: number, opts?: GroupOptions): IommuGroupInfo {
  argGroupId(id);
  const o = checkOptions(opts);
  if (!fs.existsSync(path.join(groupsDir(o), String(id)))) {
    const ids = listIommuGroupIds(o);
    if (ids.length === 0) {
      throw new VfioError(RuleCode.NO_DEVICE, `no IOMMU group ${id}: there are no IOMMU groups at all`, IOMMU_OFF_HINT);
    }
    throw new VfioError(RuleCode.NO_DEVICE, `no IOMMU group ${id} (groups present: ${ids.join(', ')})`);
  }
  return readGroup(id, viabilityRule(o), o);
}

function readGroup(id: number, rule: ViabilityRule, opts: GroupOptions): IommuGroupInfo {
  const devDir = path.join(groupsDir(opts), String(id), 'devices');
  const devices = listDir(devDir)
    .sort()
    .map((name) => readDeviceDir(path.join(devDir, name), name));
  const blockers = devices.filter((d) => !keepsGroupViable(d, rule, d.bus === undefined && bridgeAt(d.address, opts)));
  return {
    id,
    devices,
    viable: blockers.length === 0,
    blockers,
    devNode: nodeAccess(groupNodePath(id, opts), opts),
    noiommu: isNoiommuGroup(id, opts),
  };
}

// vfio names the IOMMU group it creates for a device without an IOMMU
// "vfio-noiommu" (drivers/vfio/group.c), and its node /dev/vfio/noiommu-<id>.
const NOIOMMU_GROUP_NAME = 'vfio-noiommu';

/** @internal Whether group `id` is a no-IOMMU group (its sysfs name is vfio-noiommu). Options already checked. */
export function isNoiommuGroup(id: number, opts: SysfsOptions): boolean {
  return readAttr(path.join(groupsDir(opts), String(id), 'name')) === NOIOMMU_GROUP_NAME;
}

/** @internal The node a group is opened through: /dev/vfio/<id>, or /dev/vfio/noiommu-<id>. Options already checked. */
export function groupNodePath(id: number, opts: SysfsOptions): string {
  return path.join(roots(opts).dev, 'vfio', `${isNoiommuGroup(id, opts) ? 'noiommu-' : ''}${id}`);
}

export const IOMMU_OFF_HINT =
  'the IOMMU is probably off: enable VT-d (Intel) or AMD-Vi (AMD) in the firmware and boot with ' +
  'intel_iommu=on or amd_iommu=on on the kernel command line; check with `ls /sys/kernel/iommu_groups` ' +
  '(empty means off) and `dmesg | grep -i -e DMAR -e AMD-Vi -e IOMMU`, or run `vfio doctor`';

/** The group number of a device; explains why when it has none. */
export function iommuGroupOf(address: string, opts?: SysfsOptions): number {
  const dev = readPciDevice(address, opts);
  if (dev.iommuGroup !== null) return dev.iommuGroup;
  if (listIommuGroupIds(opts).length > 0) {
    throw new VfioError(
      RuleCode.NO_IOMMU_GROUP,
      `${dev.address} has no IOMMU group although other devices have one: no IOMMU covers it`,
      `check the firmware's DMAR/IVRS tables (dmesg | grep -i -e DMAR -e AMD-Vi)`,
    );
  }
  throw new VfioError(RuleCode.NO_IOMMU_GROUP, `${dev.address} has no IOMMU group`, IOMMU_OFF_HINT);
}

/** One sentence a person can act on: why the group cannot be used, and the command that fixes it. */
export function explainNotViable(group: IommuGroupInfo): string {
  const g = argGroup(group, 'group');
  if (g.viable) return `group ${g.id} is viable`;
  const [why, fix] = notViable(g);
  return `${why}; ${fix}`;
}

/** Why a non-viable group is not viable, and what to do. */
function notViable(g: GroupFacts): [string, string] {
  const who = g.blockers.map((d) => `${d.address} is bound to ${d.driver}`).join(', ');
  const fix =
    g.blockers.length === 1
      ? `bind it to vfio-pci (${fixCommand(g)}) or unbind it`
      : `bind them to vfio-pci (${fixCommand(g)}) or unbind them`;
  return [`group ${g.id} is not viable: ${who}`, fix];
}

/** The command that makes a non-viable group viable: 'vfio bind <blocker>' or, for several, 'vfio bind --group <first>'. */
export function viabilityFix(group: IommuGroupInfo): string {
  return fixCommand(argGroup(group, 'group'));
}

function fixCommand(g: GroupFacts): string {
  const first = g.blockers[0]?.address ?? g.devices[0]?.address ?? '<device>';
  return g.blockers.length > 1 ? `vfio bind --group ${first}` : `vfio bind ${first}`;
}

/** Throws ERR_VFIO_GROUP_NOT_VIABLE with the explanation (and the fix as its hint) unless the group is viable. */
export function assertViable(group: IommuGroupInfo): void {
  const g = argGroup(group, 'group');
  if (g.viable) return;
  const [why, fix] = notViable(g);
  throw new VfioError(RuleCode.GROUP_NOT_VIABLE, why, fix);
}

/** The group of a device, read in full. */
export function groupOfDevice(address: string, opts?: GroupOptions): IommuGroupInfo {
  const a = requireAddress(address);
  const o = checkOptions(opts);
  return readIommuGroup(iommuGroupOf(a, o), o);
}
