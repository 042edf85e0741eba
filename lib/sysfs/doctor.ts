// `vfio doctor`: the host checks a first-time VFIO user needs, each with a
// verdict and, when it is not ok, the fix. Read-only: it never changes anything.

import * as fs from 'node:fs';
import * as path from 'node:path';
import { type GroupOptions, explainNotViable, isNoiommuGroup, listIommuGroups, viabilityFix } from './groups';
import { type HostInterfaces, detectInterfaces } from './interfaces';
import { type NodeAccess, type SysfsOptions, checkOptions, currentCredentials, listDir, nodeAccess, readAttr, roots } from './options';
import { formatSize } from './size';

/** The outcome of one host check. */
export type CheckStatus = 'ok' | 'warn' | 'fail';

/** One host check of `vfio doctor`: what was checked, its outcome and the fix. */
export interface DoctorCheck {
  /**
   * Stable identifier: 'iommu', 'vfio-modules', 'vfio-container' (the group/container interface), 'iommufd',
   * 'vfio-cdev', 'noiommu', 'group-node', 'group-viable', 'memlock', 'hugepages', 'kvm'.
   */
  name: string;
  status: CheckStatus;
  detail: string;
  fix?: string;
  /** For 'group-node' and 'group-viable': which group. */
  group?: number;
}

/** Every host check of `vfio doctor`. */
export interface DoctorReport {
  checks: DoctorCheck[];
  /** Which VFIO interfaces the kernel offers, with the evidence (what the interface checks are made from). */
  interfaces: HostInterfaces;
  /** False when some check failed, i.e. something blocks VFIO use. */
  ok: boolean;
}

/** Options of {@link runDoctor}. */
export interface DoctorOptions extends GroupOptions {
  /** How much DMA memory the user means to map; memlock and huge pages are judged against it. */
  mapBytes?: bigint;
}

/** Checks what VFIO needs on this host (IOMMU on, vfio-pci loaded, groups, access, memlock limit) and says how to fix what is missing. */
export function runDoctor(options?: DoctorOptions): DoctorReport {
  const opts: DoctorOptions = checkOptions(options);
  const interfaces = detectInterfaces(opts);
  const checks = [
    checkIommu(opts, interfaces),
    checkModules(opts),
    checkContainer(opts, interfaces),
    checkIommufd(opts, interfaces),
    checkCdev(interfaces),
    checkNoiommu(opts, interfaces),
    ...checkGroups(opts),
    checkMemlock(opts),
    checkHugePages(opts),
    checkKvm(opts),
  ];
  return { checks, interfaces, ok: checks.every((c) => c.status !== 'fail') };
}

function checkIommu(opts: DoctorOptions, ifs: HostInterfaces): DoctorCheck {
  const r = roots(opts);
  // vfio's no-IOMMU groups are no sign of an IOMMU.
  const groups = listDir(path.join(r.sys, 'kernel/iommu_groups')).filter((n) => /^\d+$/.test(n) && !isNoiommuGroup(Number(n), opts));
  const units = listDir(path.join(r.sys, 'class/iommu'));
  if (groups.length > 0) {
    const by = units.length > 0 ? ` (IOMMU ${units.join(', ')})` : '';
    return { name: 'iommu', status: 'ok', detail: `${groups.length} IOMMU groups${by}` };
  }
  const cmdline = readAttr(path.join(r.proc, 'cmdline')) ?? '';
  const vendor = /vendor_id\s*:\s*(\S+)/.exec(readAttr(path.join(r.proc, 'cpuinfo')) ?? '')?.[1];
  const param = vendor === 'AuthenticAMD' ? 'amd_iommu=on' : vendor === 'GenuineIntel' ? 'intel_iommu=on' : 'intel_iommu=on or amd_iommu=on';
  const hasParam = /\b(intel_iommu|amd_iommu)=on\b/.test(cmdline);
  const fix = hasParam
    ? `the kernel was booted with ${param} but found no IOMMU: enable VT-d / AMD-Vi ("IOMMU", "DMA remapping") in the firmware setup`
    : `add ${param} to the kernel command line (e.g. GRUB_CMDLINE_LINUX in /etc/default/grub, then update-grub and reboot) and enable VT-d / AMD-Vi in the firmware`;
  // With no-IOMMU mode on, devices still reach userspace (unsafely): that limits, it does not block.
  const noiommu = ifs.noiommu.enabled === true;
  return {
    name: 'iommu',
    status: noiommu ? 'warn' : 'fail',
    detail:
      `no IOMMU groups in ${path.join(r.sys, 'kernel/iommu_groups')}: the IOMMU is off or absent` +
      (noiommu ? '; only unsafe no-IOMMU mode can hand devices to userspace here, without isolation' : ''),
    fix: `${fix}; check with dmesg | grep -i -e DMAR -e AMD-Vi -e IOMMU`,
  };
}

function checkModules(opts: DoctorOptions): DoctorCheck {
  const r = roots(opts);
  const mod = (name: string): boolean => fs.existsSync(path.join(r.sys, 'module', name));
  const spapr = process.arch === 'ppc64';
  const backend = spapr ? 'vfio_iommu_spapr_tce' : 'vfio_iommu_type1';
  const missing: string[] = [];
  if (!mod('vfio') && !fs.existsSync(path.join(r.dev, 'vfio/vfio'))) missing.push('vfio');
  if (!mod(backend) && !mod('iommufd')) missing.push(backend);
  if (!fs.existsSync(path.join(r.sys, 'bus/pci/drivers/vfio-pci'))) missing.push('vfio-pci');
  if (missing.length > 0) {
    return {
      name: 'vfio-modules',
      status: 'fail',
      detail: `not loaded: ${missing.join(', ')}`,
      fix: `modprobe ${missing.includes('vfio-pci') ? 'vfio-pci ' : ''}${missing.includes(backend) ? backend : ''}`.trim() +
        ` (to load at boot: list them in /etc/modules-load.d/vfio.conf)`,
    };
  }
  return { name: 'vfio-modules', status: 'ok', detail: `vfio, ${backend} and vfio-pci are loaded` };
}

function describeNode(n: NodeAccess): string {
  return `${n.path} mode ${n.mode!.toString(8).padStart(4, '0')} uid ${n.uid} gid ${n.gid}`;
}

function checkContainer(opts: DoctorOptions, ifs: HostInterfaces): DoctorCheck {
  const g = ifs.group;
  if (!g.available) {
    // Without the legacy interface a host can still be fine through cdev + iommufd.
    const modern = ifs.cdev.available && ifs.iommufd.available;
    return { name: 'vfio-container', status: modern ? 'warn' : 'fail', detail: `group/container interface: ${g.detail}`, ...(g.fix === null ? {} : { fix: g.fix }) };
  }
  const n = nodeAccess(path.join(roots(opts).dev, 'vfio/vfio'), opts);
  if (!n.accessible) {
    return {
      name: 'vfio-container',
      status: 'fail',
      detail: `${describeNode(n)}: not readable and writable by ${who(opts)}`,
      fix: `chmod 0666 ${n.path} (the container alone grants no device access; that is its normal mode)`,
    };
  }
  const by = g.container === 'iommufd' ? 'served by iommufd' : g.backends.join(', ');
  return { name: 'vfio-container', status: 'ok', detail: `${n.path} is usable (${by}): the group/container interface` };
}

function checkIommufd(opts: DoctorOptions, ifs: HostInterfaces): DoctorCheck {
  const i = ifs.iommufd;
  if (!i.available) return { name: 'iommufd', status: 'warn', detail: `no iommufd: ${i.detail}`, ...(i.fix === null ? {} : { fix: i.fix }) };
  const n = nodeAccess(path.join(roots(opts).dev, 'iommu'), opts);
  if (!n.accessible) {
    return {
      name: 'iommufd',
      status: 'warn',
      detail: `${describeNode(n)}: not readable and writable by ${who(opts)} (needed for the cdev interface)`,
      fix: `as root: chown ${opts.credentials?.uid ?? currentCredentials().uid} ${n.path}, or a udev rule KERNEL=="iommu", OWNER="<user>" in /etc/udev/rules.d/`,
    };
  }
  return { name: 'iommufd', status: 'ok', detail: `${i.detail} is usable` };
}

function checkCdev(ifs: HostInterfaces): DoctorCheck {
  const c = ifs.cdev;
  if (!c.available) return { name: 'vfio-cdev', status: 'warn', detail: `no device cdevs: ${c.detail}`, ...(c.fix === null ? {} : { fix: c.fix }) };
  return { name: 'vfio-cdev', status: 'ok', detail: `device cdevs: ${c.detail}` };
}

function checkNoiommu(opts: DoctorOptions, ifs: HostInterfaces): DoctorCheck {
  const m = ifs.noiommu;
  const fix = m.fix === null ? {} : { fix: m.fix };
  if (m.enabled === true) return { name: 'noiommu', status: 'warn', detail: m.detail, ...fix };
  // Off or absent is the safe state; it limits only a host no IOMMU covers.
  const iommu = listDir(path.join(roots(opts).sys, 'kernel/iommu_groups')).some((n) => /^\d+$/.test(n) && !isNoiommuGroup(Number(n), opts));
  return {
    name: 'noiommu',
    status: iommu ? 'ok' : 'warn',
    detail: `no-IOMMU mode${iommu ? ' (needed only for devices no IOMMU covers)' : ''}: ${m.detail}`,
    ...fix,
  };
}

function who(opts: DoctorOptions): string {
  const uid = opts.credentials?.uid ?? currentCredentials().uid;
  return uid === 0 ? 'root' : `uid ${uid}`;
}

function checkGroups(opts: DoctorOptions): DoctorCheck[] {
  const groups = listIommuGroups(opts).filter((g) => g.devNode.exists);
  if (groups.length === 0) {
    return [
      {
        name: 'group-node',
        status: 'warn',
        detail: 'no /dev/vfio/<group> node: no device is bound to vfio-pci yet',
        fix: 'vfio list, then vfio bind <address> (as root)',
      },
    ];
  }
  const out: DoctorCheck[] = [];
  for (const g of groups) {
    const n = g.devNode;
    out.push(
      n.accessible
        ? { name: 'group-node', group: g.id, status: 'ok', detail: `${n.path} is usable` }
        : {
            name: 'group-node',
            group: g.id,
            status: 'fail',
            detail: `${describeNode(n)}: not readable and writable by ${who(opts)}`,
            fix:
              `as root: chown ${opts.credentials?.uid ?? currentCredentials().uid} ${n.path} (until the next bind), or a udev rule ` +
              `SUBSYSTEM=="vfio", KERNEL=="${g.id}", OWNER="<user>" in /etc/udev/rules.d/`,
          },
    );
    if (!g.viable) {
      out.push({
        name: 'group-viable',
        group: g.id,
        status: 'warn',
        detail: explainNotViable(g),
        fix: viabilityFix(g),
      });
    }
  }
  return out;
}

/** Soft and hard RLIMIT_MEMLOCK of this process in bytes; null = unlimited. */
export function readMemlockLimit(opts?: SysfsOptions): { soft: bigint | null; hard: bigint | null } | null {
  const text = readAttr(path.join(roots(checkOptions(opts)).proc, 'self/limits'));
  const m = text === null ? null : /^Max locked memory\s+(\d+|unlimited)\s+(\d+|unlimited)/m.exec(text);
  if (!m) return null;
  const v = (s: string): bigint | null => (s === 'unlimited' ? null : BigInt(s));
  return { soft: v(m[1]!), hard: v(m[2]!) };
}

const CAP_IPC_LOCK = 14n;

/** Whether this process has CAP_IPC_LOCK in its effective set (vfio type1 then skips memlock accounting). */
export function hasIpcLock(opts?: SysfsOptions): boolean {
  const text = readAttr(path.join(roots(checkOptions(opts)).proc, 'self/status'));
  const m = text === null ? null : /^CapEff:\s*([0-9a-f]+)/im.exec(text);
  return m !== null && ((BigInt(`0x${m[1]}`) >> CAP_IPC_LOCK) & 1n) === 1n;
}

function checkMemlock(opts: DoctorOptions): DoctorCheck {
  const want = opts.mapBytes;
  const limit = readMemlockLimit(opts);
  if (hasIpcLock(opts)) {
    return {
      name: 'memlock',
      status: 'ok',
      detail: `this process has CAP_IPC_LOCK (root): VFIO does not count pinned DMA memory against RLIMIT_MEMLOCK` +
        (limit?.soft != null ? ` (soft limit ${formatSize(limit.soft)} is not enforced)` : ''),
    };
  }
  if (limit === null) {
    return { name: 'memlock', status: 'warn', detail: 'cannot read RLIMIT_MEMLOCK from /proc/self/limits' };
  }
  if (limit.soft === null) return { name: 'memlock', status: 'ok', detail: 'RLIMIT_MEMLOCK is unlimited' };
  const soft = formatSize(limit.soft);
  if (want === undefined) {
    return {
      name: 'memlock',
      status: 'ok',
      detail: `RLIMIT_MEMLOCK is ${soft}: at most that much DMA memory can be mapped at once; pass --map SIZE to check a size`,
    };
  }
  if (want <= limit.soft) {
    return { name: 'memlock', status: 'ok', detail: `RLIMIT_MEMLOCK ${soft} covers the ${formatSize(want)} to map` };
  }
  const kib = (want + 1023n) / 1024n;
  const hardNote =
    limit.hard !== null && limit.hard < want
      ? `the hard limit (${formatSize(limit.hard)}) is below it too, so as root:`
      : 'raise it:';
  return {
    name: 'memlock',
    status: 'fail',
    detail: `RLIMIT_MEMLOCK ${soft} is less than the ${formatSize(want)} to map: MAP_DMA will fail with ENOMEM`,
    fix:
      `${hardNote} ulimit -l ${kib} in the shell that starts node; for good, "<user> - memlock ${kib}" in ` +
      `/etc/security/limits.conf (new login) or LimitMEMLOCK=${want} in a systemd unit; or run with CAP_IPC_LOCK, which is exempt`,
  };
}

function checkHugePages(opts: DoctorOptions): DoctorCheck {
  const dir = path.join(roots(opts).sys, 'kernel/mm/hugepages');
  const pools = listDir(dir)
    .map((name) => {
      const kb = /^hugepages-(\d+)kB$/.exec(name)?.[1];
      if (kb === undefined) return null;
      const num = (f: string): bigint => {
        const v = readAttr(path.join(dir, name, f)) ?? '';
        return /^\d+$/.test(v) ? BigInt(v) : 0n; // a count the kernel prints; anything else counts as none
      };
      return { size: BigInt(kb) * 1024n, total: num('nr_hugepages'), free: num('free_hugepages') };
    })
    .filter((p): p is { size: bigint; total: bigint; free: bigint } => p !== null)
    .sort((a, b) => (a.size < b.size ? -1 : 1));
  if (pools.length === 0) {
    return { name: 'hugepages', status: 'warn', detail: 'this kernel offers no huge pages (no hugetlbfs): DMA buffers use 4 KiB pages' };
  }
  const free = pools.reduce((s, p) => s + p.size * p.free, 0n);
  const desc = pools.map((p) => `${p.free}/${p.total} free of ${formatSize(p.size)}`).join(', ');
  const small = pools[0]!;
  const need = opts.mapBytes ?? 0n;
  if (free === 0n || free < need) {
    const pages = need > 0n ? (need + small.size - 1n) / small.size : 512n;
    return {
      name: 'hugepages',
      status: 'warn',
      detail: `huge pages: ${desc}; huge-page DMA buffers ${free === 0n ? 'cannot be allocated' : `are limited to ${formatSize(free)}`} ` +
        `(4 KiB pages still work, with more IOMMU entries and slower pinning)`,
      fix: `as root: echo ${small.total - small.free + pages} > ${path.join('/sys/kernel/mm/hugepages', `hugepages-${small.size / 1024n}kB`, 'nr_hugepages')}`,
    };
  }
  return { name: 'hugepages', status: 'ok', detail: `huge pages: ${desc}` };
}

function checkKvm(opts: DoctorOptions): DoctorCheck {
  const n = nodeAccess(path.join(roots(opts).dev, 'kvm'), opts);
  if (!n.exists) {
    return {
      name: 'kvm',
      status: 'warn',
      detail: `${n.path} is missing (needed only to hand groups to a VM through KVM-VFIO)`,
      fix: 'modprobe kvm_intel or kvm_amd, and enable VT-x / AMD-V in the firmware',
    };
  }
  if (!n.accessible) {
    return {
      name: 'kvm',
      status: 'warn',
      detail: `${describeNode(n)}: not readable and writable by ${who(opts)} (needed only for KVM-VFIO)`,
      fix: `add the user to the group that owns it (gid ${n.gid}, usually "kvm"): usermod -aG kvm <user>, then log in again`,
    };
  }
  return { name: 'kvm', status: 'ok', detail: `${n.path} is usable` };
}
