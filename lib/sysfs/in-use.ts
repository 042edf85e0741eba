// Which host resources a PCI device carries, so that bind refuses to pull the
// disk under / or a configured network interface out from under the host.
//
// A block device or network interface "sits on" a PCI device when the PCI
// device (or a bridge above it) appears in the sysfs path of the block or net
// device: /sys/dev/block/8:0 -> ../../devices/pci0000:00/0000:00:1f.2/ata1/.../block/sda.

import * as fs from 'node:fs';
import * as path from 'node:path';
import { argGroupId } from './groups';
import { type SysfsOptions, checkOptions, listDir, readAttr, roots } from './options';
import { requireAddress } from './pci';

/** Why taking a device from the host would hurt: it backs the root filesystem or an active network interface. */
export interface DeviceUse {
  kind: 'root-filesystem' | 'network-interface';
  /** 'sda' or 'eth0'. */
  name: string;
  /** One phrase for a message: 'sda holds the root filesystem'. */
  description: string;
}

const IFF_UP = 0x1;

/** What host resources depend on this PCI device (or on devices behind it, if it is a bridge). */
export function deviceUses(address: string, options?: SysfsOptions): DeviceUse[] {
  const a = requireAddress(address);
  const opts = checkOptions(options);
  const uses: DeviceUse[] = [];
  for (const b of rootBlockDevices(opts)) {
    if (pathHasDevice(b.path, a)) {
      uses.push({ kind: 'root-filesystem', name: b.name, description: `${b.name} holds the root filesystem` });
    }
  }
  for (const n of activeNetInterfaces(opts)) {
    if (pathHasDevice(n.path, a)) {
      uses.push({ kind: 'network-interface', name: n.name, description: `network interface ${n.name} is up` });
    }
  }
  return uses;
}

function pathHasDevice(devicePath: string, address: string): boolean {
  return devicePath.split('/').includes(address);
}

interface SysDevice {
  name: string;
  /** Resolved path under <sysfs>/devices. */
  path: string;
}

/** The block devices behind '/', including the disks under a device-mapper or md volume. */
export function rootBlockDevices(opts?: SysfsOptions): SysDevice[] {
  const r = roots(checkOptions(opts));
  const mount = rootMount(r.proc);
  if (mount === null) return [];
  const start: string[] = [];
  if (!mount.devno.startsWith('0:')) start.push(path.join(r.sys, 'dev/block', mount.devno));
  // btrfs and friends report an anonymous device number (0:N); the source names the disk.
  if (mount.source.startsWith('/dev/')) {
    const name = devSourceName(path.join(r.dev, mount.source.slice('/dev/'.length)));
    start.push(path.join(r.sys, 'class/block', name));
  }
  const seen = new Map<string, SysDevice>();
  const visit = (link: string): void => {
    let real: string;
    try {
      real = fs.realpathSync(link);
    } catch {
      return;
    }
    if (seen.has(real)) return;
    seen.set(real, { name: path.basename(real), path: real });
    // dm-0 / md0 sit on other block devices, listed under slaves/
    for (const s of listDir(path.join(real, 'slaves'))) visit(path.join(real, 'slaves', s));
  };
  start.forEach(visit);
  return [...seen.values()];
}

/** /dev/mapper/vg-root is a symlink to ../dm-0; the block device's name is dm-0. */
function devSourceName(devPath: string): string {
  try {
    return path.basename(fs.realpathSync(devPath));
  } catch {
    return path.basename(devPath);
  }
}

/** The mount of '/' as this process sees it (the last one wins when / is mounted over). */
function rootMount(procRoot: string): { devno: string; source: string } | null {
  const text = readAttr(path.join(procRoot, 'self/mountinfo'));
  if (text === null) return null;
  let found: { devno: string; source: string } | null = null;
  for (const line of text.split('\n')) {
    // id parent major:minor root mountpoint options [optional...] - fstype source superoptions
    const [left, right] = line.split(' - ');
    if (left === undefined || right === undefined) continue;
    const f = left.split(' ');
    if (f[4] !== '/') continue;
    found = { devno: f[2]!, source: right.split(' ')[1] ?? '' };
  }
  return found;
}

/** Network interfaces that are administratively up (IFF_UP), with their device paths. */
export function activeNetInterfaces(opts?: SysfsOptions): SysDevice[] {
  const dir = path.join(roots(checkOptions(opts)).sys, 'class/net');
  const out: SysDevice[] = [];
  for (const name of listDir(dir)) {
    const flags = readAttr(path.join(dir, name, 'flags'));
    if (flags === null || (parseInt(flags, 16) & IFF_UP) === 0) continue;
    try {
      out.push({ name, path: fs.realpathSync(path.join(dir, name)) });
    } catch {
      // vanished between readdir and realpath
    }
  }
  return out;
}

/**
 * Processes holding /dev/vfio/<group> open. vfio-pci's remove waits until
 * userspace lets go of the device, so unbinding a device in use would hang.
 * Best effort: other users' fd tables are unreadable to non-root callers,
 * and a device fd kept after its group fd was closed is not seen.
 */
export function groupUsers(group: number, opts?: SysfsOptions): number[] {
  argGroupId(group, 'group');
  const proc = roots(checkOptions(opts)).proc;
  // The kernel reports the path as the opener sees it, i.e. under the real /dev.
  const target = `/dev/vfio/${group}`;
  const pids: number[] = [];
  for (const entry of listDir(proc)) {
    if (!/^\d+$/.test(entry)) continue;
    const fdDir = path.join(proc, entry, 'fd');
    let fds: string[];
    try {
      fds = fs.readdirSync(fdDir);
    } catch {
      continue;
    }
    for (const fd of fds) {
      let to: string;
      try {
        to = fs.readlinkSync(path.join(fdDir, fd));
      } catch {
        continue;
      }
      if (to === target) {
        pids.push(Number(entry));
        break;
      }
    }
  }
  return pids;
}
