// What every subcommand gets: where to write, how to draw, and the roots.

import type { BindOptions } from '../sysfs/bind';
import type { CliIo } from './output';
import { Painter } from './output';

export interface CommandContext {
  io: CliIo;
  paint: Painter;
  json: boolean;
  /** Roots (and, for bind/unbind, force) passed to the library. */
  opts: BindOptions;
}

/** Bad command line: exit status 2. */
export class UsageError extends Error {
  constructor(message: string) {
    super(message);
    this.name = 'UsageError';
  }
}

export function printJson(ctx: CommandContext, value: unknown): void {
  ctx.io.stdout(`${JSON.stringify(value, (_k, v: unknown) => (typeof v === 'bigint' ? v.toString() : v), 2)}\n`);
}

/** Exit status of a command: 0 ok, 1 failure or blocking problem. */
export type ExitStatus = 0 | 1;
