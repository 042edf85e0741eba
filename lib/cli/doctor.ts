// vfio doctor: renders the library's checks; exit status 1 when one fails.

import { type DoctorCheck, runDoctor } from '../sysfs/doctor';
import { parseSize } from '../sysfs/size';
import { type CommandContext, type ExitStatus, UsageError, printJson } from './context';
import { type Color, quote } from './output';

export function doctorCommand(ctx: CommandContext, positionals: string[], map: string | undefined): ExitStatus {
  if (positionals.length > 0) throw new UsageError(`doctor takes no arguments (got ${quote(positionals[0]!)})`);
  let mapBytes: bigint | undefined;
  if (map !== undefined) {
    try {
      mapBytes = parseSize(map);
    } catch {
      throw new UsageError(`--map: ${quote(map)} is not a size: give a whole number of bytes such as 4096, 64K, 512M, 2G or 1.5GiB`, '--map');
    }
  }
  const report = runDoctor({ ...ctx.opts, ...(mapBytes === undefined ? {} : { mapBytes }) });
  if (ctx.json) {
    printJson(ctx, report);
  } else {
    ctx.io.stdout(render(ctx, report.checks));
  }
  return report.ok ? 0 : 1;
}

const STATUS_COLOR: Record<DoctorCheck['status'], Color> = { ok: 'green', warn: 'yellow', fail: 'red' };

function render(ctx: CommandContext, checks: DoctorCheck[]): string {
  const p = ctx.paint;
  const label = (c: DoctorCheck): string => (c.group === undefined ? c.name : `${c.name} ${c.group}`);
  const width = Math.max(...checks.map((c) => label(c).length));
  const indent = ' '.repeat(6 + width + 2);
  let text = '';
  for (const c of checks) {
    text += `${p.paint(c.status.padEnd(4), STATUS_COLOR[c.status])}  ${label(c).padEnd(width)}  ${c.detail}\n`;
    if (c.fix !== undefined && c.status !== 'ok') text += `${indent}${p.paint('fix:', 'bold')} ${c.fix}\n`;
  }
  const fails = checks.filter((c) => c.status === 'fail').length;
  const warns = checks.filter((c) => c.status === 'warn').length;
  const w = warns === 0 ? '' : ` (${warns} warning${warns === 1 ? '' : 's'})`;
  text +=
    fails === 0
      ? `\n${p.paint('VFIO is usable', 'green')}${w}.\n`
      : `\n${p.paint(`${fails} problem${fails === 1 ? '' : 's'} block${fails === 1 ? 's' : ''} VFIO use`, 'red')}${w}.\n`;
  return text;
}
