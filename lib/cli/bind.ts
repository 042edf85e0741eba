// vfio bind / vfio unbind: move devices to vfio-pci and back, then say where
// the group node is and whether the group is usable.

import { type BindingChange, bindAllToVfio, bindToVfio, unbindFromVfio, unbindGroupFromVfio } from '../sysfs/bind';
import { explainNotViable, iommuGroupOf, readIommuGroup } from '../sysfs/groups';
import { restoreStaleBindings } from '../sysfs/scoped';
import { hasBlankOrControl, normalizeAddress, parseVendorDevice, resolveDeviceSpec } from '../sysfs/pci';
import { type CommandContext, type ExitStatus, UsageError, printJson } from './context';
import { quote } from './output';

export interface BindFlags {
  group: boolean;
  /** unbind --restore: the stale scoped bindings instead of one device. */
  restore?: boolean;
}

function oneTarget(positionals: string[], command: string, allowId: boolean): string {
  if (positionals.length !== 1) {
    throw new UsageError(`${command} takes one device: vfio ${command} <${allowId ? 'bdf|vendor:device' : 'bdf'}>`);
  }
  const spec = positionals[0]!;
  if (normalizeAddress(spec) === null && !(allowId && parseVendorDevice(spec) !== null)) {
    const blank = hasBlankOrControl(spec) ? ': it contains whitespace or a control character' : '';
    throw new UsageError(
      `${quote(spec)} is not a PCI address (0000:00:04.0)${allowId ? ' nor a vendor:device pair (8086:10d3)' : ''}${blank}`,
      'device',
    );
  }
  return spec;
}

export function bindCommand(ctx: CommandContext, positionals: string[], flags: BindFlags): ExitStatus {
  const spec = oneTarget(positionals, 'bind', true);
  const addresses = resolveDeviceSpec(spec, ctx.opts);
  let changes: BindingChange[];
  if (flags.group) {
    changes = bindAllToVfio(addresses.flatMap((a) => readIommuGroup(iommuGroupOf(a, ctx.opts), ctx.opts).devices.map((d) => d.address)), ctx.opts);
  } else if (addresses.length === 1) {
    changes = [bindToVfio(addresses[0]!, ctx.opts)]; // a bridge named explicitly is refused, not skipped
  } else {
    changes = bindAllToVfio(addresses, ctx.opts);
  }
  report(ctx, changes);
  return 0;
}

export function unbindCommand(ctx: CommandContext, positionals: string[], flags: BindFlags): ExitStatus {
  if (flags.restore) {
    if (positionals.length > 0 || flags.group) throw new UsageError('unbind --restore takes no device: it restores every stale scoped binding');
    const changes = restoreStaleBindings(ctx.opts);
    if (changes.length === 0 && !ctx.json) ctx.io.stdout('nothing to restore: no scoped binding of a process that is gone\n');
    report(ctx, changes);
    return 0;
  }
  const address = normalizeAddress(oneTarget(positionals, 'unbind', false))!;
  const changes = flags.group ? unbindGroupFromVfio(address, ctx.opts) : [unbindFromVfio(address, ctx.opts)];
  report(ctx, changes);
  return 0;
}

function report(ctx: CommandContext, changes: BindingChange[]): void {
  const groupIds = [...new Set(changes.map((c) => c.iommuGroup).filter((g): g is number => g !== null))];
  const groups = groupIds.map((id) => readIommuGroup(id, ctx.opts));
  if (ctx.json) {
    printJson(ctx, {
      changes,
      groups: groups.map((g) => ({ id: g.id, viable: g.viable, reason: g.viable ? null : explainNotViable(g), devNode: g.devNode })),
    });
    return;
  }
  const p = ctx.paint;
  for (const c of changes) {
    const where = c.iommuGroup === null ? '' : `, group ${c.iommuGroup}`;
    const what = c.changed
      ? `${c.driverBefore ?? 'no driver'} -> ${p.paint(c.driverAfter ?? 'no driver', 'bold')}`
      : (c.note ?? 'unchanged');
    ctx.io.stdout(`${c.address}: ${what}${where}\n`);
  }
  for (const g of groups) {
    const node = g.devNode.exists ? `${g.devNode.path}${g.devNode.accessible ? '' : ' (no access for this user)'}` : 'no node';
    ctx.io.stdout(
      g.viable ? `group ${g.id}: ${p.paint('viable', 'green')}, ${node}\n` : `${p.paint(explainNotViable(g), 'yellow')}\n`,
    );
  }
}
