// Which VFIO interfaces the running kernel offers, found at run time from
// /dev, sysfs and /proc (and the kernel's config when it is installed), so one
// addon runs on kernels with and without them and says why one is absent:
//
//   group      /dev/vfio/vfio (the container) + /dev/vfio/<group>. The container
//              is vfio's own (CONFIG_VFIO_CONTAINER, with vfio_iommu_type1 or
//              vfio_iommu_spapr_tce) or iommufd's stand-in (CONFIG_IOMMUFD_VFIO_CONTAINER);
//              group nodes need CONFIG_VFIO_GROUP ("vfio" in /proc/devices).
//   iommufd    /dev/iommu, a misc device ("iommu" in /proc/misc): CONFIG_IOMMUFD,
//              module iommufd, Linux 6.2+.
//   cdev       /dev/vfio/devices/vfioN per device bound to a vfio driver:
//              CONFIG_VFIO_DEVICE_CDEV (needs IOMMUFD), Linux 6.6+; vfio then
//              registers the "vfio-dev" char region (/proc/devices) and each
//              device's sysfs vfio-dev/vfioN gets a `dev` attribute (since 6.1
//              the vfio-dev/vfioN directory exists without the cdev).
//   noiommu    CONFIG_VFIO_NOIOMMU gives vfio the parameter
//              enable_unsafe_noiommu_mode (Y/N, writable at run time); a device
//              no IOMMU covers then gets a group named "vfio-noiommu", opened at
//              /dev/vfio/noiommu-N (and its cdev is noiommu-vfioN); CAP_SYS_RAWIO.
//
// Read-only: nothing here opens a device or changes anything.

import * as fs from 'node:fs';
import * as path from 'node:path';
import * as zlib from 'node:zlib';
import { groupNodePath, isNoiommuGroup, isVfioDriver, listIommuGroupIds } from './groups';
import { type SysfsOptions, checkOptions, linkName, listDir, readAttr, roots } from './options';
import { pciDeviceDir, readPciDevice, requireAddress } from './pci';

/** The four ways the kernel offers VFIO. */
export type VfioInterfaceName = 'group' | 'iommufd' | 'cdev' | 'noiommu';

/** The interfaces in the order they are reported. */
export const VFIO_INTERFACES: readonly VfioInterfaceName[] = ['group', 'iommufd', 'cdev', 'noiommu'];

/** A kernel config option's value: built in, a module, or not set. */
export type ConfigValue = 'y' | 'm' | 'n';

/** One VFIO interface of the host: there or not, what shows it, and what would enable it. */
export interface VfioInterface {
  name: VfioInterfaceName;
  /** Whether a program can use it on this host now. */
  available: boolean;
  /** What was found; when it is not available, why. */
  detail: string;
  /** What to do to get it (a module to load, a parameter, a config option, a kernel version), or to leave it (noiommu on); null when nothing. */
  fix: string | null;
  /** The files that decided it: those found, or, when it is absent, those that were missing. */
  evidence: string[];
  /** The kernel option behind it, and its value when the kernel's config could be read (null otherwise). */
  config: { option: string; value: ConfigValue | null };
}

/** Which VFIO interfaces the running kernel offers. */
export interface HostInterfaces {
  /** The running kernel's release (uname -r), null when it cannot be read. */
  release: string | null;
  /** The kernel config read (/boot/config-<release> or /proc/config.gz), null when there is none. */
  configFile: string | null;
  /** The legacy interface; `container` says who serves /dev/vfio/vfio, `backends` the IOMMU drivers loaded for it. */
  group: VfioInterface & { container: 'vfio' | 'iommufd' | null; backends: string[] };
  iommufd: VfioInterface;
  cdev: VfioInterface;
  /** `enabled`: the value of enable_unsafe_noiommu_mode, null when the kernel has no such parameter. */
  noiommu: VfioInterface & { enabled: boolean | null };
}

/** How one device can be opened. */
export interface DeviceInterfaces {
  address: string;
  /** Its IOMMU group, null when it has none. */
  group: number | null;
  /** Its group is a no-IOMMU group (vfio-noiommu): opened at /dev/vfio/noiommu-N, no isolation. */
  noiommu: boolean;
  /** The group's node when it exists (/dev/vfio/N or /dev/vfio/noiommu-N). */
  groupNode: string | null;
  /** The vfio device's name in sysfs (vfio0, noiommu-vfio0) while it is bound to a vfio driver (Linux 6.1+), else null. */
  vfioDevice: string | null;
  /** Its character device (/dev/vfio/devices/vfio0) when the kernel made one, else null. */
  cdev: string | null;
  /** What it can be opened through now: 'group' (or 'noiommu', its unsafe kind) and 'cdev'. */
  openWith: ('group' | 'noiommu' | 'cdev')[];
}

const IOMMUFD_SINCE: [number, number] = [6, 2];
const CDEV_SINCE: [number, number] = [6, 6];
const NOIOMMU_PARAM = 'module/vfio/parameters/enable_unsafe_noiommu_mode';

/** What every detector reads once. */
interface HostFacts {
  sys: string;
  dev: string;
  proc: string;
  release: string | null;
  version: [number, number] | null;
  config: { file: string; values: Map<string, ConfigValue> } | null;
  misc: Set<string> | null;
  chars: Set<string> | null;
  module(name: string): boolean;
}

/** Detects which VFIO interfaces this host offers, and for each one that is absent, why and what to enable. */
export function detectInterfaces(options?: SysfsOptions): HostInterfaces {
  const facts = readFacts(checkOptions(options));
  const iommufd = detectIommufd(facts);
  return {
    release: facts.release,
    configFile: facts.config?.file ?? null,
    group: detectGroup(facts, iommufd.available),
    iommufd,
    cdev: detectCdev(facts, iommufd.available),
    noiommu: detectNoiommu(facts),
  };
}

function readFacts(opts: SysfsOptions): HostFacts {
  const r = roots(opts);
  const release = readAttr(path.join(r.proc, 'sys/kernel/osrelease'));
  const m = release === null ? null : /^(\d+)\.(\d+)/.exec(release);
  return {
    sys: r.sys,
    dev: r.dev,
    proc: r.proc,
    release,
    version: m ? [Number(m[1]), Number(m[2])] : null,
    config: readKernelConfig(r.boot, r.proc, release),
    misc: nameColumn(readAttr(path.join(r.proc, 'misc'))),
    chars: charDevices(readAttr(path.join(r.proc, 'devices'))),
    // A module built in shows here too when it has parameters or a version (vfio, iommufd, type1 do).
    module: (name) => fs.existsSync(path.join(r.sys, 'module', name)),
  };
}

/** /boot/config-<release>, else /proc/config.gz (CONFIG_IKCONFIG_PROC); null when neither is readable. */
function readKernelConfig(boot: string, proc: string, release: string | null): HostFacts['config'] {
  const candidates: [string, () => string | null][] = [];
  if (release !== null) candidates.push([path.join(boot, `config-${release}`), () => readAttr(path.join(boot, `config-${release}`))]);
  candidates.push([path.join(proc, 'config.gz'), () => gunzipFile(path.join(proc, 'config.gz'))]);
  for (const [file, read] of candidates) {
    const text = read();
    if (text === null) continue;
    const values = new Map<string, ConfigValue>();
    for (const line of text.split('\n')) {
      const set = /^(CONFIG_\w+)=(.*)$/.exec(line);
      if (set) values.set(set[1]!, set[2] === 'm' ? 'm' : set[2] === 'n' ? 'n' : 'y');
      const unset = /^# (CONFIG_\w+) is not set$/.exec(line);
      if (unset) values.set(unset[1]!, 'n');
    }
    return { file, values };
  }
  return null;
}

function gunzipFile(file: string): string | null {
  try {
    return zlib.gunzipSync(fs.readFileSync(file)).toString('utf8');
  } catch {
    return null; // absent, unreadable or not gzip: no config
  }
}

/** The names of "minor name" lines (/proc/misc). */
function nameColumn(text: string | null): Set<string> | null {
  if (text === null) return null;
  return new Set(text.split('\n').map((l) => l.trim().split(/\s+/)[1]).filter((n): n is string => n !== undefined));
}

/** The character device names of /proc/devices (the part before "Block devices:"). */
function charDevices(text: string | null): Set<string> | null {
  if (text === null) return null;
  return nameColumn(text.split(/\n\s*\nBlock devices:/)[0]!);
}

/** A config option's value; null when no config could be read. An option the config does not name is not set. */
function configValue(f: HostFacts, option: string): ConfigValue | null {
  return f.config === null ? null : (f.config.values.get(`CONFIG_${option}`) ?? 'n');
}

function olderThan(f: HostFacts, [major, minor]: [number, number]): boolean {
  if (f.version === null) return false;
  const [a, b] = f.version;
  return a < major || (a === major && b < minor);
}

function notSet(f: HostFacts, option: string): string {
  return `CONFIG_${option} is not set in ${f.config!.file}`;
}

function iface<N extends VfioInterfaceName>(
  name: N,
  option: string,
  f: HostFacts,
  available: boolean,
  detail: string,
  fix: string | null,
  evidence: string[],
): VfioInterface & { name: N } {
  return { name, available, detail, fix, evidence, config: { option: `CONFIG_${option}`, value: configValue(f, option) } };
}

function detectGroup(f: HostFacts, iommufd: boolean): HostInterfaces['group'] {
  const container = path.join(f.dev, 'vfio/vfio');
  const vfioModule = path.join(f.sys, 'module/vfio');
  const backends = ['vfio_iommu_type1', 'vfio_iommu_spapr_tce'].filter((m) => f.module(m));
  const hasNode = fs.existsSync(container);
  const servedBy: HostInterfaces['group']['container'] = !hasNode ? null : backends.length > 0 || !iommufd ? 'vfio' : 'iommufd';
  const group = (available: boolean, detail: string, fix: string | null, evidence: string[]) => ({
    ...iface('group', 'VFIO_CONTAINER', f, available, detail, fix, evidence),
    container: servedBy,
    backends,
  });
  if (!f.module('vfio') && !hasNode) {
    return group(false, `vfio is not loaded (no ${vfioModule}, no ${container})`, 'modprobe vfio-pci vfio_iommu_type1 (vfio_iommu_spapr_tce on POWER)', [vfioModule, container]);
  }
  // CONFIG_VFIO_GROUP (6.6+, on by default) gives the group nodes their char region "vfio".
  if (f.chars !== null && !f.chars.has('vfio') && f.module('vfio')) {
    return group(
      false,
      'vfio registered no group nodes ("vfio" is not in /proc/devices): the kernel was built without CONFIG_VFIO_GROUP',
      'open devices through their cdev and iommufd, or boot a kernel built with CONFIG_VFIO_GROUP=y',
      [path.join(f.proc, 'devices')],
    );
  }
  if (!hasNode) {
    if (f.misc?.has('vfio')) {
      return group(false, `vfio's container is registered (vfio in /proc/misc) but ${container} is missing: devtmpfs or udev did not create it`, 'mount -t devtmpfs devtmpfs /dev, or as root: mknod /dev/vfio/vfio c 10 196', [container]);
    }
    const compat = configValue(f, 'IOMMUFD_VFIO_CONTAINER');
    const detail =
      `${container} is missing: this kernel's vfio has no container (CONFIG_VFIO_CONTAINER)` +
      (iommufd ? ' and iommufd does not stand in for it (CONFIG_IOMMUFD_VFIO_CONTAINER)' : '');
    const fix =
      compat === 'y' && !iommufd
        ? 'modprobe iommufd (it serves /dev/vfio/vfio on this kernel)'
        : 'open devices through their cdev and iommufd, or boot a kernel built with CONFIG_VFIO_CONTAINER=y (or CONFIG_IOMMUFD_VFIO_CONTAINER=y)';
    return group(false, detail, fix, [container]);
  }
  if (servedBy === 'iommufd') {
    return group(true, `${container} is served by iommufd (CONFIG_IOMMUFD_VFIO_CONTAINER), with /dev/vfio/<group> nodes`, null, [container, path.join(f.dev, 'iommu')]);
  }
  if (backends.length === 0) {
    return group(false, `${container} is there but no IOMMU backend is loaded: VFIO_SET_IOMMU would fail`, 'modprobe vfio_iommu_type1 (vfio_iommu_spapr_tce on POWER)', [container, path.join(f.sys, 'module/vfio_iommu_type1')]);
  }
  return group(true, `${container} (${backends.join(', ')}) with /dev/vfio/<group> nodes`, null, [container, ...backends.map((b) => path.join(f.sys, 'module', b))]);
}

function detectIommufd(f: HostFacts): VfioInterface {
  const node = path.join(f.dev, 'iommu');
  const mod = path.join(f.sys, 'module/iommufd');
  const mk = (available: boolean, detail: string, fix: string | null, evidence: string[]) => iface('iommufd', 'IOMMUFD', f, available, detail, fix, evidence);
  if (fs.existsSync(node)) {
    // A loadable module has initstate; one built in only its parameters.
    const how = !f.module('iommufd') ? '' : fs.existsSync(path.join(mod, 'initstate')) ? ' (module iommufd)' : ' (iommufd built in)';
    return mk(true, `${node}${how}`, null, [node]);
  }
  if (olderThan(f, IOMMUFD_SINCE)) {
    return mk(false, `Linux ${f.release} has no iommufd (it came in 6.2)`, 'boot Linux 6.2 or later built with CONFIG_IOMMUFD=y (or =m, then modprobe iommufd)', [node]);
  }
  if (f.misc?.has('iommu') || f.module('iommufd')) {
    const minor = '<minor of "iommu" in /proc/misc>';
    return mk(false, `iommufd is loaded but ${node} is missing: devtmpfs or udev did not create it`, `mount -t devtmpfs devtmpfs /dev, or as root: mknod -m 0660 /dev/iommu c 10 ${minor}`, [node, mod]);
  }
  const value = configValue(f, 'IOMMUFD');
  if (value === 'm') {
    return mk(false, `iommufd is a module (CONFIG_IOMMUFD=m in ${f.config!.file}) that is not loaded`, 'modprobe iommufd', [node, mod]);
  }
  if (value === 'n') {
    return mk(false, `this kernel is built without iommufd (${notSet(f, 'IOMMUFD')})`, "boot a kernel built with CONFIG_IOMMUFD=y (Debian's kernels leave it off)", [node, f.config!.file]);
  }
  return mk(
    false,
    `no ${node} and no iommufd module loaded (${mod})`,
    "modprobe iommufd; if there is no such module, the kernel is built without CONFIG_IOMMUFD (Debian's kernels are): boot one built with CONFIG_IOMMUFD=y",
    [node, mod],
  );
}

function detectCdev(f: HostFacts, iommufd: boolean): VfioInterface {
  const devices = path.join(f.dev, 'vfio/devices');
  const procDevices = path.join(f.proc, 'devices');
  const mk = (available: boolean, detail: string, fix: string | null, evidence: string[]) => iface('cdev', 'VFIO_DEVICE_CDEV', f, available, detail, fix, evidence);
  const classDir = path.join(f.sys, 'class/vfio-dev');
  const names = listDir(classDir).sort(byIndex);
  const withCdev = names.filter((n) => fs.existsSync(path.join(classDir, n, 'dev')));
  if (f.chars?.has('vfio-dev') || withCdev.length > 0) {
    const nodes = withCdev.filter((n) => fs.existsSync(path.join(devices, n)));
    if (nodes.length === 0) {
      return mk(true, 'the kernel makes a cdev for every device bound to a vfio driver ("vfio-dev" in /proc/devices); none is bound now', null, [procDevices]);
    }
    const list = nodes.map((n) => `${path.join(devices, n)} (${ownerOf(path.join(classDir, n))})`);
    return mk(true, list.join(', '), null, nodes.map((n) => path.join(devices, n)));
  }
  const want = 'boot Linux 6.6 or later built with CONFIG_IOMMUFD=y and CONFIG_VFIO_DEVICE_CDEV=y';
  if (olderThan(f, CDEV_SINCE)) {
    return mk(false, `Linux ${f.release} has no VFIO device cdev (it came in 6.6)`, want, [devices]);
  }
  if (!f.module('vfio')) {
    return mk(false, `vfio is not loaded (no ${path.join(f.sys, 'module/vfio')})`, 'modprobe vfio-pci', [path.join(f.sys, 'module/vfio')]);
  }
  const needs = iommufd ? '' : '; it also needs iommufd, absent here';
  const value = configValue(f, 'VFIO_DEVICE_CDEV');
  const why = value === 'n' ? notSet(f, 'VFIO_DEVICE_CDEV') : 'vfio registered no "vfio-dev" character devices in /proc/devices';
  return mk(false, `this kernel is built without VFIO device cdevs (${why})${needs}`, want, [devices, value === 'n' ? f.config!.file : procDevices]);
}

function detectNoiommu(f: HostFacts): HostInterfaces['noiommu'] {
  const param = path.join(f.sys, NOIOMMU_PARAM);
  const value = readAttr(param);
  const enabled = value === null ? null : value === 'Y';
  const mk = (available: boolean, detail: string, fix: string | null, evidence: string[]) => ({
    ...iface('noiommu', 'VFIO_NOIOMMU', f, available, detail, fix, evidence),
    enabled,
  });
  const turnOn =
    'as root: echo Y > /sys/module/vfio/parameters/enable_unsafe_noiommu_mode (or boot with vfio.enable_unsafe_noiommu_mode=1), ' +
    'then bind a device no IOMMU covers to vfio-pci; opening /dev/vfio/noiommu-N needs CAP_SYS_RAWIO, and the device can DMA anywhere in memory';
  if (enabled === true) {
    const groups = listIommuGroupIds({ sysfsRoot: f.sys })
      .filter((id) => isNoiommuGroup(id, { sysfsRoot: f.sys }))
      .map((id) => groupNodePath(id, { sysfsRoot: f.sys, devRoot: f.dev }));
    const which = groups.length > 0 ? `groups ${groups.join(', ')}` : 'no device without an IOMMU is bound to vfio-pci yet';
    return mk(
      true,
      `unsafe no-IOMMU mode is on (${param} = Y): devices without an IOMMU can be bound, and can DMA anywhere; ${which}`,
      'when done: echo N > /sys/module/vfio/parameters/enable_unsafe_noiommu_mode (and drop vfio.enable_unsafe_noiommu_mode=1)',
      [param, ...groups],
    );
  }
  if (enabled === false) return mk(false, `in this kernel but off (${param} = N)`, turnOn, [param]);
  const build = 'boot a kernel built with CONFIG_VFIO_NOIOMMU=y';
  if (configValue(f, 'VFIO_NOIOMMU') === 'n') {
    return mk(false, `this kernel is built without no-IOMMU mode (${notSet(f, 'VFIO_NOIOMMU')})`, build, [param, f.config!.file]);
  }
  if (!f.module('vfio')) {
    return mk(false, `vfio is not loaded (no ${path.join(f.sys, 'module/vfio')})`, `modprobe vfio enable_unsafe_noiommu_mode=1 (needs CONFIG_VFIO_NOIOMMU=y)`, [param]);
  }
  return mk(false, `this kernel is built without no-IOMMU mode (CONFIG_VFIO_NOIOMMU: vfio has no enable_unsafe_noiommu_mode parameter)`, build, [param]);
}

/** The device a class/vfio-dev/<name> entry belongs to: it sits at <device>/vfio-dev/<name>. */
function ownerOf(entry: string): string {
  try {
    return path.basename(path.dirname(path.dirname(fs.realpathSync(entry))));
  } catch {
    return '?'; // gone between the listing and now (unbound)
  }
}

/** vfio2 before vfio10. */
function byIndex(a: string, b: string): number {
  const n = (s: string): number => Number(/(\d+)$/.exec(s)?.[1] ?? -1);
  return n(a) - n(b) || (a < b ? -1 : a > b ? 1 : 0);
}

/** How one PCI device can be opened: its group node, its cdev, whether its group is a no-IOMMU one. */
export function deviceInterfaces(address: string, options?: SysfsOptions): DeviceInterfaces {
  const a = requireAddress(address);
  const o = checkOptions(options);
  const dev = readPciDevice(a, o); // ERR_VFIO_NO_DEVICE when there is none
  return interfacesAt(pciDeviceDir(a, o), a, dev.iommuGroup, dev.driver, o);
}

/**
 * @internal deviceInterfaces for a device directory already found (a group member,
 * PCI or not); options already checked.
 */
export function interfacesAt(dir: string, address: string, group: number | null, driver: string | null, opts: SysfsOptions): DeviceInterfaces {
  const noiommu = group !== null && isNoiommuGroup(group, opts);
  const node = group === null ? null : groupNodePath(group, opts);
  const groupNode = node !== null && fs.existsSync(node) ? node : null;
  const vfioDevice = listDir(path.join(dir, 'vfio-dev')).sort(byIndex)[0] ?? null;
  const cdevNode = vfioDevice === null ? null : path.join(roots(opts).dev, 'vfio/devices', vfioDevice);
  const cdev = cdevNode !== null && fs.existsSync(path.join(dir, 'vfio-dev', vfioDevice!, 'dev')) && fs.existsSync(cdevNode) ? cdevNode : null;
  const openWith: DeviceInterfaces['openWith'] = [];
  // A group node opens only the members bound to a vfio driver.
  if (groupNode !== null && (vfioDevice !== null || isVfioDriver(driver))) openWith.push(noiommu ? 'noiommu' : 'group');
  if (cdev !== null) openWith.push('cdev');
  return { address, group, noiommu, groupNode, vfioDevice, cdev, openWith };
}

/** deviceInterfaces of every member of every IOMMU group (PCI or not), by group then address. */
export function listDeviceInterfaces(options?: SysfsOptions): DeviceInterfaces[] {
  const o = checkOptions(options);
  const out: DeviceInterfaces[] = [];
  for (const id of listIommuGroupIds(o)) {
    const dir = path.join(roots(o).sys, 'kernel/iommu_groups', String(id), 'devices');
    for (const name of listDir(dir).sort()) {
      out.push(interfacesAt(path.join(dir, name), name, id, linkName(path.join(dir, name, 'driver')), o));
    }
  }
  return out;
}
