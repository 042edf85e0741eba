// vfio list: every IOMMU group with its devices, viable or not and why, and
// what each device can be opened through (group node, cdev, noiommu).

import { IOMMU_OFF_HINT, type IommuGroupInfo, explainNotViable, listIommuGroups } from '../sysfs/groups';
import { type DeviceInterfaces, type HostInterfaces, VFIO_INTERFACES, detectInterfaces, listDeviceInterfaces } from '../sysfs/interfaces';
import type { NodeAccess } from '../sysfs/options';
import { describeClass, formatId } from '../sysfs/pci';
import { type CommandContext, type ExitStatus, printJson } from './context';
import type { Cell, Row } from './output';

export function listCommand(ctx: CommandContext): ExitStatus {
  const groups = listIommuGroups(ctx.opts);
  const access = new Map(listDeviceInterfaces(ctx.opts).map((d) => [d.address, d]));
  const interfaces = detectInterfaces(ctx.opts);
  if (ctx.json) {
    printJson(ctx, {
      groups: groups.map((g) => ({
        ...g,
        devices: g.devices.map((d) => ({ ...d, vfio: access.get(d.address) ?? null })),
        reason: g.viable ? null : explainNotViable(g),
      })),
      interfaces,
    });
  } else if (groups.length > 0) {
    ctx.io.stdout(renderGroups(ctx, groups, access) + summary(interfaces));
  }
  if (groups.length === 0) {
    ctx.io.stderr(`vfio: no IOMMU groups: ${IOMMU_OFF_HINT}\n`);
    return 1;
  }
  return 0;
}

export function renderGroups(ctx: CommandContext, groups: IommuGroupInfo[], access: Map<string, DeviceInterfaces> = new Map()): string {
  const withOverride = groups.some((g) => g.devices.some((d) => d.driverOverride !== null));
  const header = ['GROUP', 'VIABLE', 'DEVICE', 'ID', 'CLASS', 'DRIVER', ...(withOverride ? ['OVERRIDE'] : []), 'NODE', 'OPEN'];
  const rows: Row[] = [];
  for (const g of groups) {
    g.devices.forEach((d, i) => {
      const first = i === 0;
      const blocker = g.blockers.includes(d);
      const driver: Cell = { text: d.driver ?? '-', ...(blocker ? { color: 'red' as const } : {}) };
      rows.push([
        first ? String(g.id) : '',
        first ? viableCell(g.viable) : '',
        d.address,
        d.bus === undefined ? formatId(d) : d.bus,
        d.bus === undefined ? describeClass(d.classCode) : '',
        driver,
        ...(withOverride ? [d.driverOverride ?? '-'] : []),
        first ? nodeCell(g.devNode) : '',
        openCell(access.get(d.address)),
      ]);
    });
  }
  let text = ctx.paint.table(header, rows);
  // A group that is half prepared (some device on vfio or driverless) gets its
  // own explanation; groups left wholly to host drivers, the usual state of
  // most of a machine, share one line.
  const notViable = groups.filter((g) => !g.viable);
  const hostOnly = notViable.filter((g) => g.blockers.length === g.devices.length);
  const lines = notViable.filter((g) => !hostOnly.includes(g)).map((g) => explainNotViable(g));
  if (hostOnly.length > 0) {
    const ids = hostOnly.map((g) => g.id).join(', ');
    lines.push(
      `${hostOnly.length === 1 ? 'group' : 'groups'} ${ids}: not viable, ${hostOnly.length === 1 ? 'its devices are' : 'every device is'} ` +
        `on a host driver; vfio bind <device> (or --group) to hand one to userspace`,
    );
  }
  if (lines.length > 0) text += `\n${lines.join('\n')}\n`;
  return text;
}

function viableCell(viable: boolean): Cell {
  return viable ? { text: 'yes', color: 'green' } : { text: 'no', color: 'red' };
}

function nodeCell(n: NodeAccess): Cell {
  if (!n.exists) return { text: '-' };
  return n.accessible ? { text: `${n.path} (rw)` } : { text: `${n.path} (no access)`, color: 'yellow' };
}

/** 'group 1, cdev vfio0', 'noiommu-3, cdev noiommu-vfio0', or '-'. */
function openCell(d: DeviceInterfaces | undefined): Cell {
  if (d === undefined || d.openWith.length === 0) return { text: '-' };
  const text = d.openWith
    .map((w) => (w === 'cdev' ? `cdev ${d.vfioDevice}` : w === 'noiommu' ? `noiommu-${d.group}` : `group ${d.group}`))
    .join(', ');
  return d.noiommu ? { text, color: 'yellow' } : { text };
}

const LABEL: Record<(typeof VFIO_INTERFACES)[number], string> = { group: 'group/container', iommufd: 'iommufd', cdev: 'cdev', noiommu: 'noiommu' };

/** One line: which interfaces this kernel offers, and which not (vfio doctor says why). */
function summary(ifs: HostInterfaces): string {
  const yes = VFIO_INTERFACES.filter((n) => ifs[n].available).map((n) => LABEL[n]);
  const no = VFIO_INTERFACES.filter((n) => !ifs[n].available).map((n) => LABEL[n]);
  return `\ninterfaces: ${yes.length > 0 ? yes.join(', ') : 'none'}${no.length > 0 ? `; not offered: ${no.join(', ')} (vfio doctor says why)` : ''}\n`;
}
