// PCI devices as sysfs shows them under /sys/bus/pci/devices/<address>.

import * as fs from 'node:fs';
import * as path from 'node:path';
import { argInt, argOptions, optionField, typeError, valueError } from '../args';
import { RuleCode, VfioError } from '../errors';
import { type SysfsOptions, checkOptions, linkName, listDir, readAttr, roots } from './options';

/** A PCI device as sysfs describes it: ids, class, driver, IOMMU group. */
export interface PciDeviceInfo {
  /** Full address, domain included: '0000:00:04.0'. */
  address: string;
  vendorId: number;
  deviceId: number;
  /** 24-bit class code: base class, subclass, programming interface (0x020000). */
  classCode: number;
  /** Name of the bound driver, or null. */
  driver: string | null;
  /** Content of driver_override, or null when unset. */
  driverOverride: string | null;
  /** IOMMU group number, or null when the device has none (IOMMU off). */
  iommuGroup: number | null;
  /** Set only for a non-PCI member of an IOMMU group (e.g. 'platform'); vendor/device/class are then 0. */
  bus?: string;
}

const FULL_BDF = /^([0-9a-f]{4,}):([0-9a-f]{2}):([0-1][0-9a-f])\.([0-7])$/;
const SHORT_BDF = /^([0-9a-f]{2}):([0-1][0-9a-f])\.([0-7])$/;
const VENDOR_DEVICE = /^([0-9a-f]{4}):([0-9a-f]{4})$/;

// Whitespace and control characters make a value "not an address": a BDF read
// from a file keeps its newline, and it must not reach sysfs as part of a name.
// eslint-disable-next-line no-control-regex
const BLANK_OR_CONTROL = /[\s\x00-\x1f\x7f]/;

/** '00:04.0' or '0000:00:04.0' (any case) → '0000:00:04.0'; null if it is not an address (whitespace included). */
export function normalizeAddress(address: string): string | null {
  if (typeof address !== 'string') throw typeError('address', 'of type string', address);
  const s = address.toLowerCase();
  if (FULL_BDF.test(s)) return s;
  if (SHORT_BDF.test(s)) return `0000:${s}`;
  return null;
}

/** '8086:10d3' → { vendorId, deviceId }; null if it is not a vendor:device pair (whitespace included). */
export function parseVendorDevice(id: string): { vendorId: number; deviceId: number } | null {
  if (typeof id !== 'string') throw typeError('id', 'of type string', id);
  const m = VENDOR_DEVICE.exec(id.toLowerCase());
  if (!m) return null;
  return { vendorId: parseInt(m[1]!, 16), deviceId: parseInt(m[2]!, 16) };
}

/** Whether a string has whitespace or a control character (then it is neither an address nor an id). */
export function hasBlankOrControl(text: string): boolean {
  return BLANK_OR_CONTROL.test(text);
}

/**
 * The normalized address, or ERR_INVALID_ARG_TYPE (not a string) /
 * ERR_INVALID_ARG_VALUE (not an address: a trailing newline included) naming `argument`.
 */
export function requireAddress(address: unknown, argument = 'address'): string {
  if (typeof address !== 'string') throw typeError(argument, 'of type string', address);
  const a = normalizeAddress(address);
  if (a === null) {
    const blank = hasBlankOrControl(address) ? ' without whitespace or control characters' : '';
    throw valueError(argument, `must be a PCI address${blank} (DDDD:BB:DD.F or BB:DD.F, e.g. 0000:00:04.0)`, address);
  }
  return a;
}

export function pciDeviceDir(address: string, opts?: SysfsOptions): string {
  return path.join(roots(opts).sys, 'bus/pci/devices', address);
}

/** Reads a PCI device from sysfs by its address (0000:01:00.0); ERR_VFIO_NO_DEVICE when there is none. */
export function readPciDevice(address: string, opts?: SysfsOptions): PciDeviceInfo {
  const a = requireAddress(address);
  const o = checkOptions(opts);
  const dir = pciDeviceDir(a, o);
  if (!fs.existsSync(dir)) {
    throw new VfioError(RuleCode.NO_DEVICE, `no PCI device ${a}`, `ls ${path.dirname(dir)} (or vfio list) shows the devices present`);
  }
  return readDeviceDir(dir, a);
}

/** Reads a device directory; works for non-PCI group members too (their ids read as 0). */
export function readDeviceDir(dir: string, name: string): PciDeviceInfo {
  const group = linkName(path.join(dir, 'iommu_group'));
  const override = readAttr(path.join(dir, 'driver_override'));
  const info: PciDeviceInfo = {
    address: name,
    vendorId: hexAttr(path.join(dir, 'vendor')),
    deviceId: hexAttr(path.join(dir, 'device')),
    classCode: hexAttr(path.join(dir, 'class')),
    driver: linkName(path.join(dir, 'driver')),
    // The kernel prints "(null)" for an unset override.
    driverOverride: override === null || override === '' || override === '(null)' ? null : override,
    iommuGroup: group === null ? null : Number(group),
  };
  const subsystem = linkName(path.join(dir, 'subsystem'));
  if (subsystem !== null && subsystem !== 'pci') info.bus = subsystem;
  return info;
}

function hexAttr(file: string): number {
  const v = readAttr(file);
  const n = v === null ? 0 : parseInt(v, 16);
  return Number.isNaN(n) ? 0 : n;
}

/** Every PCI device, in address order. */
export function listPciDevices(opts?: SysfsOptions): PciDeviceInfo[] {
  const dir = path.join(roots(checkOptions(opts)).sys, 'bus/pci/devices');
  return listDir(dir)
    .filter((n) => FULL_BDF.test(n))
    .sort()
    .map((n) => readDeviceDir(path.join(dir, n), n));
}

/** Addresses of the devices matching a BDF or a vendor:device pair. */
export function resolveDeviceSpec(spec: string, opts?: SysfsOptions): string[] {
  if (typeof spec !== 'string') throw typeError('spec', 'of type string', spec);
  const o = checkOptions(opts);
  const a = normalizeAddress(spec);
  if (a !== null) {
    readPciDevice(a, o); // throws NO_DEVICE with the path to look at
    return [a];
  }
  const id = parseVendorDevice(spec);
  if (id === null) {
    const blank = hasBlankOrControl(spec) ? ', without whitespace or control characters' : '';
    throw valueError('spec', `must be a PCI address (0000:00:04.0) or a vendor:device pair (8086:10d3)${blank}`, spec);
  }
  const found = listPciDevices(o).filter((d) => d.vendorId === id.vendorId && d.deviceId === id.deviceId);
  if (found.length === 0) {
    throw new VfioError(RuleCode.NO_DEVICE, `no PCI device with vendor:device ${spec.toLowerCase()}`, 'vfio list shows the devices present');
  }
  return found.map((d) => d.address);
}

/**
 * A device whose config header is not type 0: PCI-to-PCI bridges and the like.
 * vfio-pci refuses them and older kernels treated them specially for
 * viability. The header type byte is in config space at 0x0e (readable by
 * everyone in the first 64 bytes); without it, the class code decides.
 */
export function isBridge(address: string, opts?: SysfsOptions): boolean {
  return bridgeAt(requireAddress(address), checkOptions(opts));
}

/** isBridge for an address and options already checked. */
export function bridgeAt(address: string, opts: SysfsOptions): boolean {
  const dir = pciDeviceDir(address, opts);
  try {
    const fd = fs.openSync(path.join(dir, 'config'), 'r');
    try {
      const b = Buffer.alloc(1);
      if (fs.readSync(fd, b, 0, 1, 0x0e) === 1) return (b[0]! & 0x7f) !== 0;
    } finally {
      fs.closeSync(fd);
    }
  } catch {
    // no config file (fixture, or a hot-removed device): fall through
  }
  const cls = hexAttr(path.join(dir, 'class'));
  const baseSub = cls >> 8;
  return baseSub === 0x0604 || baseSub === 0x0609 || baseSub === 0x0607;
}

/** '8086:10d3': vendor and device id as lspci prints them. */
export function formatId(d: Pick<PciDeviceInfo, 'vendorId' | 'deviceId'>): string {
  const o = argOptions(d, 'device');
  const vendorId = argInt(optionField(o, 'vendorId', 'device.vendorId'), 'device.vendorId', 0, 0xffff);
  const deviceId = argInt(optionField(o, 'deviceId', 'device.deviceId'), 'device.deviceId', 0, 0xffff);
  return `${hex4(vendorId)}:${hex4(deviceId)}`;
}

function hex4(n: number): string {
  return n.toString(16).padStart(4, '0');
}

// PCI base class names (PCI Code and ID Assignment specification), short.
const BASE_CLASS: Record<number, string> = {
  0x00: 'unclassified',
  0x01: 'storage',
  0x02: 'network',
  0x03: 'display',
  0x04: 'multimedia',
  0x05: 'memory',
  0x06: 'bridge',
  0x07: 'communication',
  0x08: 'system',
  0x09: 'input',
  0x0a: 'docking',
  0x0b: 'processor',
  0x0c: 'serial bus',
  0x0d: 'wireless',
  0x0e: 'intelligent I/O',
  0x0f: 'satellite',
  0x10: 'encryption',
  0x11: 'signal processing',
  0x12: 'accelerator',
  0x13: 'instrumentation',
  0xff: 'unassigned',
};

/** 'network (020000)'. */
export function describeClass(classCode: number): string {
  argInt(classCode, 'classCode', 0, 0xffffff);
  const name = BASE_CLASS[classCode >> 16] ?? 'unknown';
  return `${name} (${classCode.toString(16).padStart(6, '0')})`;
}
