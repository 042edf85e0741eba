#!/usr/bin/env node
// The `vfio` command: list, bind, unbind, doctor. It only renders what
// lib/sysfs computes, and changes nothing unless told to (bind, unbind).
// Exit status: 0 ok, 1 failure or blocking problem found, 2 usage error.

import * as fs from 'node:fs';
import * as path from 'node:path';
import { parseArgs } from 'node:util';
import type { BindOptions } from '../sysfs/bind';
import { bindCommand, unbindCommand } from './bind';
import type { CommandContext } from './context';
import { doctorCommand } from './doctor';
import { guestCommand } from './guest';
import { listCommand } from './list';
import { type CliIo, Painter, UsageError, quote, reportFailure, useColor } from './output';

export const USAGE = `Usage: vfio <command> [options]

Inspect a Linux host for VFIO and move PCI devices to vfio-pci and back.

Commands:
  list                       IOMMU groups and their devices, viable or not and why,
                             and what each can be opened through (group, cdev, noiommu)
  bind <bdf|vendor:device>   unbind from the current driver, set driver_override
                             to vfio-pci, probe; print the group node
  unbind <bdf>               clear driver_override, give the device back to the
                             driver it had before bind
  unbind --restore           give back every device a scoped binding (sysfs.bindScoped)
                             of a process that is gone left on vfio-pci
  doctor [--map SIZE]        check IOMMU, modules, the VFIO interfaces (group/container,
                             iommufd, cdev, noiommu), /dev/vfio permissions,
                             RLIMIT_MEMLOCK, huge pages, /dev/kvm; a fix for each
  guest [opts] -- CMD...     run CMD in the test guest (real /dev/vfio, emulated
                             IOMMU) with the devices you ask for: vfio guest --help

Options:
  --json         machine-readable output on stdout (every command); a failure
                 prints {"error": {"code": ..., "message": ..., "fix": ...}}
  -g, --group    bind/unbind every device of the device's IOMMU group
  -f, --force    bind: even a device under / or an up network interface;
                 unbind: even while a process holds the group open
  --map SIZE     doctor: DMA memory you will map (64K, 512M, 2G, ...)
  --no-color     plain output (also when NO_COLOR is set or not a terminal)
  -h, --help     show this help
  -V, --version  show the version

Exit status: 0 ok, 1 failure or a blocking problem found, 2 usage error.
`;

const OPTIONS = {
  help: { type: 'boolean', short: 'h' },
  version: { type: 'boolean', short: 'V' },
  json: { type: 'boolean' },
  group: { type: 'boolean', short: 'g' },
  force: { type: 'boolean', short: 'f' },
  restore: { type: 'boolean' },
  map: { type: 'string' },
  'no-color': { type: 'boolean' },
  // For tests and for inspecting a copy of another machine's tree; not in --help.
  'sysfs-root': { type: 'string' },
  'dev-root': { type: 'string' },
  'proc-root': { type: 'string' },
  'boot-root': { type: 'string' },
  'run-root': { type: 'string' },
} as const;

type OptionName = keyof typeof OPTIONS;

const COMMON: OptionName[] = ['help', 'json', 'no-color', 'sysfs-root', 'dev-root', 'proc-root', 'boot-root', 'run-root'];
const ALLOWED: Record<string, OptionName[]> = {
  list: COMMON,
  bind: [...COMMON, 'group', 'force'],
  unbind: [...COMMON, 'group', 'force', 'restore'],
  doctor: [...COMMON, 'map'],
};

/**
 * Runs one command line; returns the exit status. `lib` is merged into the
 * options handed to lib/sysfs (tests pass a fake kernel's writer and
 * credentials through it). Never throws: every failure is reported by
 * reportFailure, with --json as one error object on stdout.
 */
export function run(argv: string[], io: CliIo, lib: Partial<BindOptions> = {}): number {
  let json = jsonWanted(argv);
  try {
    // Its own options, and a command line of the user's after '--'.
    if (argv[0] === 'guest') return guestCommand(argv.slice(1), io);
    let parsed;
    try {
      parsed = parseArgs({ args: argv, options: OPTIONS, allowPositionals: true, strict: true });
    } catch (e) {
      throw new UsageError((e as Error).message);
    }
    const { values, positionals } = parsed;
    json = values.json === true;
    if (values.version) {
      io.stdout(`${version()}\n`);
      return 0;
    }
    const [command, ...rest] = positionals;
    if (values.help || command === 'help') {
      io.stdout(USAGE);
      return 0;
    }
    if (command === undefined) throw new UsageError('missing command (list, bind, unbind, doctor, guest)');
    const allowed = ALLOWED[command];
    if (allowed === undefined) throw new UsageError(`unknown command ${quote(command)} (list, bind, unbind, doctor, guest)`);
    const stray = (Object.keys(values) as OptionName[]).find((k) => !allowed.includes(k));
    if (stray !== undefined) throw new UsageError(`option --${stray} does not apply to '${command}'`);
    for (const root of ROOTS) {
      if (values[root] === '') throw new UsageError(`--${root} needs a directory`, `--${root}`);
    }

    const ctx: CommandContext = {
      io,
      paint: new Painter(useColor(io, values['no-color'] === true)),
      json,
      opts: {
        ...lib,
        ...(values['sysfs-root'] === undefined ? {} : { sysfsRoot: values['sysfs-root'] }),
        ...(values['dev-root'] === undefined ? {} : { devRoot: values['dev-root'] }),
        ...(values['proc-root'] === undefined ? {} : { procRoot: values['proc-root'] }),
        ...(values['boot-root'] === undefined ? {} : { bootRoot: values['boot-root'] }),
        ...(values['run-root'] === undefined ? {} : { runRoot: values['run-root'] }),
        force: values.force === true,
      },
    };
    switch (command) {
      case 'list':
        if (rest.length > 0) throw new UsageError(`list takes no arguments (got ${quote(rest[0]!)})`);
        return listCommand(ctx);
      case 'bind':
        return bindCommand(ctx, rest, { group: values.group === true });
      case 'unbind':
        return unbindCommand(ctx, rest, { group: values.group === true, restore: values.restore === true });
      default:
        return doctorCommand(ctx, rest, values.map);
    }
  } catch (e) {
    return reportFailure(io, json, e);
  }
}

const ROOTS = ['sysfs-root', 'dev-root', 'proc-root', 'boot-root', 'run-root'] as const;

/** --json before any '--', for a command line parseArgs refused. */
function jsonWanted(argv: string[]): boolean {
  const end = argv.indexOf('--');
  return (end === -1 ? argv : argv.slice(0, end)).includes('--json');
}

/** The package's version, from the package.json above this file (source or dist). */
export function version(): string {
  for (let dir = __dirname; ; dir = path.dirname(dir)) {
    try {
      const pkg = JSON.parse(fs.readFileSync(path.join(dir, 'package.json'), 'utf8')) as { name?: string; version?: string };
      if (pkg.name === 'vfio' && pkg.version) return pkg.version;
    } catch {
      // not here; go up
    }
    if (path.dirname(dir) === dir) return 'unknown';
  }
}

if (require.main === module) {
  process.stdout.on('error', (e: NodeJS.ErrnoException) => {
    if (e.code === 'EPIPE') process.exit(process.exitCode ?? 0); // `vfio list | head`
    throw e;
  });
  process.exitCode = run(process.argv.slice(2), {
    stdout: (t) => process.stdout.write(t),
    stderr: (t) => process.stderr.write(t),
    env: process.env,
    isTTY: process.stdout.isTTY === true,
  });
}
