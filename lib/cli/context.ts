// What every subcommand gets: where to write, how to draw, and the roots.

import type { BindOptions } from '../sysfs/bind';
import { type CliIo, type Painter, jsonText } from './output';

export { UsageError } from './output';

export interface CommandContext {
  io: CliIo;
  paint: Painter;
  json: boolean;
  /** Roots (and, for bind/unbind, force) passed to the library. */
  opts: BindOptions;
}

export function printJson(ctx: CommandContext, value: unknown): void {
  ctx.io.stdout(jsonText(value));
}

/** Exit status of a command: 0 ok, 1 failure or blocking problem. */
export type ExitStatus = 0 | 1;
