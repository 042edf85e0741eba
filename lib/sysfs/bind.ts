// Moving a PCI device to vfio-pci and back through sysfs.
//
// bind:   driver_override <- "vfio-pci"   (first, so nothing else can grab the
//                                          device between unbind and probe)
//         drivers/<old>/unbind <- address (only if a driver holds it)
//         drivers_probe <- address        (the core now matches only vfio-pci)
// unbind: driver_override <- previous value or "\n" (clears it)
//         drivers/vfio-pci/unbind <- address
//         drivers/<previous>/bind <- address, or drivers_probe when we do not
//         know the previous driver (the kernel's normal matching decides)
// See Documentation/ABI/testing/sysfs-bus-pci (driver_override, drivers_probe)
// and the kernel's Documentation/driver-api/vfio.rst.

import * as fs from 'node:fs';
import * as path from 'node:path';
import { argArray } from '../args';
import { RuleCode, VfioError, rethrow } from '../errors';
import { type GroupOptions, groupNodePath, iommuGroupOf, isVfioDriver, readIommuGroup } from './groups';
import { deviceUses, groupUsers } from './in-use';
import { checkOptions, roots } from './options';
import { bridgeAt, pciDeviceDir, readPciDevice, requireAddress } from './pci';
import { type ProcessId, type StateOptions, dropBindingRecord, readBindingRecord, writeBindingRecord } from './state';

/** The driver devices are bound to for VFIO: 'vfio-pci'. */
export const VFIO_PCI = 'vfio-pci';

/** Writes one value to one sysfs attribute (one write(2)). Replaceable for tests. */
export type SysfsWriter = (file: string, value: string) => void;

/** Options of the bind functions. */
export interface BindOptions extends GroupOptions, StateOptions {
  /**
   * Take the device even if it carries the root filesystem or an up network
   * interface, or (unbind) if a process holds its group open.
   */
  force?: boolean;
  /** @internal How sysfs is written; tests replace it with a fake kernel. */
  writer?: SysfsWriter;
}

/** What a bind or unbind did: the device, its driver before and after. */
export interface BindingChange {
  address: string;
  /** Driver before the call (null: none). */
  driverBefore: string | null;
  /** Driver after the call, read back from sysfs. */
  driverAfter: string | null;
  iommuGroup: number | null;
  /** /dev/vfio/<group>, or null when the device has no group. */
  devNode: string | null;
  /** False when there was nothing to do (see `note`). */
  changed: boolean;
  note?: string;
}

const defaultWriter: SysfsWriter = (file, value) => fs.writeFileSync(file, value);

function writeAttr(opts: BindOptions, file: string, value: string): void {
  try {
    (opts.writer ?? defaultWriter)(file, value);
  } catch (e) {
    rethrow(e, `cannot write '${value.trim()}' to ${file}`, writeHint, file);
  }
}

function writeHint(code: string): string | undefined {
  switch (code) {
    case 'EACCES':
    case 'EPERM':
      return 'changing driver bindings needs root (sudo)';
    case 'ENODEV':
      return 'the driver does not accept this device';
    case 'EBUSY':
      return 'the device is busy; is another driver bound to it?';
    default:
      return undefined;
  }
}

function devNodeOf(group: number | null, opts: BindOptions): string | null {
  return group === null ? null : groupNodePath(group, opts);
}

/** Binds one device to vfio-pci, remembering its previous driver for unbindFromVfio. */
export function bindToVfio(address: string, options?: BindOptions): BindingChange {
  return bindRecorded(requireAddress(address), checkOptions(options), undefined);
}

/** @internal bindToVfio, the record naming `owner` (a scoped binding) from its first write. */
export function bindRecorded(a: string, opts: BindOptions, owner: ProcessId | undefined): BindingChange {
  const dev = readPciDevice(a, opts);
  const group = iommuGroupOf(a, opts); // no group: nothing to gain, say why before changing anything
  const base = { address: a, driverBefore: dev.driver, iommuGroup: group, devNode: devNodeOf(group, opts) };
  if (isVfioDriver(dev.driver)) {
    return { ...base, driverAfter: dev.driver, changed: false, note: `already bound to ${dev.driver}` };
  }
  checkBindable(a, dev.driver, opts);

  // Remember before touching anything, so an interrupted bind can still be undone.
  const record = { previousDriver: dev.driver, previousOverride: dev.driverOverride, boundAt: new Date().toISOString() };
  writeBindingRecord(a, owner ? { ...record, owner } : record, opts);
  const sys = roots(opts).sys;
  const dir = pciDeviceDir(a, opts);
  writeAttr(opts, path.join(dir, 'driver_override'), VFIO_PCI);
  if (dev.driver !== null) writeAttr(opts, path.join(sys, 'bus/pci/drivers', dev.driver, 'unbind'), a);
  writeAttr(opts, path.join(sys, 'bus/pci/drivers_probe'), a);

  const after = readPciDevice(a, opts).driver;
  if (after !== VFIO_PCI) {
    restore(a, dev.driver, dev.driverOverride, opts);
    dropBindingRecord(a, opts);
    throw new VfioError(
      RuleCode.BIND_FAILED,
      `${a} did not bind to ${VFIO_PCI} (driver after probe: ${after ?? 'none'}); its previous binding was restored`,
      'the kernel log (dmesg) says why the probe failed',
    );
  }
  return { ...base, driverAfter: after, changed: true };
}

/** Refuses, before any write, what would fail or hurt the host. */
function checkBindable(a: string, driver: string | null, opts: BindOptions): void {
  if (bridgeAt(a, opts)) {
    throw new VfioError(
      RuleCode.UNSUPPORTED,
      `${a} is a PCI bridge; vfio-pci does not drive bridges, and a bridge on pcieport or on no driver keeps its group viable`,
    );
  }
  if (!fs.existsSync(path.join(roots(opts).sys, 'bus/pci/drivers', VFIO_PCI))) {
    throw new VfioError(RuleCode.DRIVER_MISSING, `the ${VFIO_PCI} driver is not loaded`, `load it with: modprobe ${VFIO_PCI}`);
  }
  if (driver !== null && !opts.force) {
    const uses = deviceUses(a, opts);
    if (uses.length > 0) {
      throw new VfioError(
        RuleCode.DEVICE_IN_USE,
        `refusing to take ${a} from ${driver}: ${uses.map((u) => u.description).join(', ')}`,
        'use --force (force: true) if you really mean it',
      );
    }
  }
}

/** Best effort after a failed bind: put the old override and driver back. */
function restore(a: string, driver: string | null, override: string | null, opts: BindOptions): void {
  try {
    writeAttr(opts, path.join(pciDeviceDir(a, opts), 'driver_override'), `${override ?? ''}\n`);
    const current = readPciDevice(a, opts).driver;
    if (current !== null) writeAttr(opts, path.join(roots(opts).sys, 'bus/pci/drivers', current, 'unbind'), a);
    if (driver !== null) writeAttr(opts, path.join(roots(opts).sys, 'bus/pci/drivers', driver, 'bind'), a);
  } catch {
    // The bind error is the one to report.
  }
}

/**
 * Releases a device from vfio-pci: clears driver_override (or restores the
 * value it had before bind) and hands it back to the driver it had before
 * bindToVfio. With no record of one, the kernel's normal matching decides.
 */
export function unbindFromVfio(address: string, options?: BindOptions): BindingChange {
  const a = requireAddress(address);
  const opts = checkOptions(options);
  const dev = readPciDevice(a, opts);
  const record = readBindingRecord(a, opts);
  const base = { address: a, driverBefore: dev.driver, iommuGroup: dev.iommuGroup, devNode: devNodeOf(dev.iommuGroup, opts) };
  if (!isVfioDriver(dev.driver) && dev.driverOverride !== VFIO_PCI) {
    dropBindingRecord(a, opts);
    return { ...base, driverAfter: dev.driver, changed: false, note: `not bound to vfio (driver: ${dev.driver ?? 'none'})` };
  }
  if (dev.driver !== null && dev.iommuGroup !== null && !opts.force) {
    const pids = groupUsers(dev.iommuGroup, opts);
    if (pids.length > 0) {
      throw new VfioError(
        RuleCode.DEVICE_IN_USE,
        `refusing to unbind ${a}: /dev/vfio/${dev.iommuGroup} is open in process ${pids.join(', ')} ` +
          `and the kernel would wait for it to let go`,
        'close it first or use --force',
      );
    }
  }

  const sys = roots(opts).sys;
  writeAttr(opts, path.join(pciDeviceDir(a, opts), 'driver_override'), `${record?.previousOverride ?? ''}\n`);
  if (dev.driver !== null) writeAttr(opts, path.join(sys, 'bus/pci/drivers', dev.driver, 'unbind'), a);

  const target = record === null ? undefined : record.previousDriver;
  if (target === undefined) {
    writeAttr(opts, path.join(sys, 'bus/pci/drivers_probe'), a);
  } else if (target !== null) {
    if (fs.existsSync(path.join(sys, 'bus/pci/drivers', target))) {
      writeAttr(opts, path.join(sys, 'bus/pci/drivers', target, 'bind'), a);
    } else {
      // Its module was unloaded since: let the kernel find a driver.
      writeAttr(opts, path.join(sys, 'bus/pci/drivers_probe'), a);
    }
  }
  dropBindingRecord(a, opts);

  const after = readPciDevice(a, opts).driver;
  if (target !== undefined && after !== target) {
    throw new VfioError(
      RuleCode.BIND_FAILED,
      `${a} was released from ${dev.driver ?? 'vfio'} but is now on ${after ?? 'no driver'}, not on its previous driver ` +
        `${target ?? '(none)'}`,
      `try: echo ${a} > /sys/bus/pci/drivers_probe`,
    );
  }
  return { ...base, driverAfter: after, changed: true };
}

/** The PCI devices of a device's IOMMU group. */
function groupMembers(address: string, opts: BindOptions): string[] {
  const group = readIommuGroup(iommuGroupOf(address, opts), opts);
  return group.devices.filter((d) => d.bus === undefined).map((d) => d.address);
}

/**
 * Binds several devices to vfio-pci, all or none as far as the checks go:
 * every device is checked (driver loaded, not carrying / or an up interface)
 * before the first one moves. Bridges are left where they are, with a note.
 */
export function bindAllToVfio(addresses: string[], options?: BindOptions): BindingChange[] {
  const unique = [...new Set(argArray(addresses, 'addresses').map((a, i) => requireAddress(a, `addresses[${i}]`)))];
  const opts = checkOptions(options);
  const bridges = new Map<string, BindingChange>();
  for (const a of unique) {
    const dev = readPciDevice(a, opts);
    iommuGroupOf(a, opts);
    if (isVfioDriver(dev.driver)) continue;
    if (bridgeAt(a, opts)) {
      bridges.set(a, {
        address: a,
        driverBefore: dev.driver,
        driverAfter: dev.driver,
        iommuGroup: dev.iommuGroup,
        devNode: devNodeOf(dev.iommuGroup, opts),
        changed: false,
        note: 'PCI bridge, left as it is',
      });
    } else {
      checkBindable(a, dev.driver, opts);
    }
  }
  return unique.map((a) => bridges.get(a) ?? bindToVfio(a, opts));
}

/** Binds every device of the device's IOMMU group to vfio-pci (bridges stay), checked as a whole first. */
export function bindGroupToVfio(address: string, options?: BindOptions): BindingChange[] {
  const a = requireAddress(address);
  const opts = checkOptions(options);
  return bindAllToVfio(groupMembers(a, opts), opts);
}

/** Releases every device of the group that is on vfio. */
export function unbindGroupFromVfio(address: string, options?: BindOptions): BindingChange[] {
  const a = requireAddress(address);
  const opts = checkOptions(options);
  return groupMembers(a, opts).map((m) => unbindFromVfio(m, opts));
}
