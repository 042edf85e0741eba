// Where the CLI writes, how it draws tables (plain text for pipes, colour
// only on a terminal and never when NO_COLOR is set, https://no-color.org),
// and how a failure is reported: text on stderr, and with --json one error
// object on stdout (the shape is defined here, once).

import { ArgCode, describeValue } from '../args';
import { RuleCode } from '../errors';

export interface CliIo {
  stdout(text: string): void;
  stderr(text: string): void;
  env: Record<string, string | undefined>;
  /** Whether stdout is a terminal. */
  isTTY: boolean;
}

export type Color = 'red' | 'green' | 'yellow' | 'bold' | 'dim';

const SGR: Record<Color, [number, number]> = {
  red: [31, 39],
  green: [32, 39],
  yellow: [33, 39],
  bold: [1, 22],
  dim: [2, 22],
};

export function useColor(io: CliIo, noColorFlag: boolean): boolean {
  if (noColorFlag || !io.isTTY) return false;
  const nc = io.env.NO_COLOR;
  if (nc !== undefined && nc !== '') return false;
  return io.env.TERM !== 'dumb';
}

export interface Cell {
  text: string;
  color?: Color;
}

export type Row = (Cell | string)[];

export class Painter {
  constructor(readonly color: boolean) {}

  paint(text: string, color?: Color): string {
    if (!this.color || color === undefined || text === '') return text;
    const [on, off] = SGR[color];
    return `\x1b[${on}m${text}\x1b[${off}m`;
  }

  /** Left-aligned columns two spaces apart; the header is bold. Widths come from the plain text. */
  table(header: string[], rows: Row[]): string {
    const cells = rows.map((r) => r.map((c) => (typeof c === 'string' ? { text: c } : c)));
    const widths = header.map((h, i) => Math.max(h.length, ...cells.map((r) => r[i]?.text.length ?? 0)));
    const line = (r: Cell[]): string =>
      r
        .map((c, i) => {
          const pad = i === r.length - 1 ? '' : ' '.repeat(widths[i]! - c.text.length);
          return this.paint(c.text, c.color) + pad;
        })
        .join('  ')
        .trimEnd();
    return [line(header.map((h) => ({ text: h, color: 'bold' as const }))), ...cells.map(line)].join('\n') + '\n';
  }
}

/** JSON as every command prints it: two-space indent, bigints as decimal strings. */
export function jsonText(value: unknown): string {
  return `${JSON.stringify(value, (_k, v: unknown) => (typeof v === 'bigint' ? v.toString() : v), 2)}\n`;
}

/** 'abc' as 'abc'; a string with anything but printable ASCII as a JSON string ("0000:00:03.0\n"), so a newline shows. */
export function quote(text: string): string {
  return /^[\x20-\x7e]*$/.test(text) ? `'${text}'` : JSON.stringify(text);
}

/**
 * A bad command line, exit status 2. Its code is ERR_VFIO_USAGE when the
 * shape is wrong (unknown command or option, wrong number of arguments), or
 * ERR_INVALID_ARG_VALUE when one value means nothing (then `argument` names
 * it: 'device', '--map').
 */
export class UsageError extends Error {
  readonly code: typeof RuleCode.USAGE | typeof ArgCode.VALUE;
  readonly argument?: string;
  constructor(message: string, argument?: string) {
    super(message);
    this.name = 'UsageError';
    this.code = argument === undefined ? RuleCode.USAGE : ArgCode.VALUE;
    if (argument !== undefined) this.argument = argument;
  }
}

/**
 * What `--json` prints on stdout when a command fails: {"error": CliError}.
 * Documented in lib/cli/README.md ("Errors"); a script tells it from a
 * result by the "error" key.
 */
export interface CliError {
  /**
   * Always a string: ERR_VFIO_USAGE or ERR_INVALID_ARG_VALUE (the command
   * line, exit 2); an ERR_VFIO_* rule code or Node's ERR_INVALID_ARG_* /
   * ERR_OUT_OF_RANGE from the library; the kernel's errno name ('EACCES');
   * ERR_VFIO_INTERNAL for anything that carries no code (a bug).
   */
  code: string;
  /** The text printed on stderr after 'vfio: '. */
  message: string;
  /** What to do about it, or null when nothing is known. */
  fix: string | null;
  /** The argument or option refused (ERR_INVALID_ARG_*, ERR_OUT_OF_RANGE). */
  argument?: string;
  /** A kernel error's errno (negative, as in Node), the syscall, and the file it was about. */
  errno?: number;
  syscall?: string;
  path?: string;
}

export const USAGE_FIX = "see 'vfio --help'";
export const INTERNAL_FIX = 'this is a bug in vfio: please report it with the output of the same command run with VFIO_DEBUG=1';

/** One property of a thrown value; a getter that throws reads as undefined. Never throws. */
function field(e: unknown, key: string): unknown {
  if (e === null || (typeof e !== 'object' && typeof e !== 'function')) return undefined;
  try {
    return (e as Record<string, unknown>)[key];
  } catch {
    return undefined;
  }
}

function isUsageError(e: unknown): e is UsageError {
  try {
    return e instanceof UsageError;
  } catch {
    return false; // a Proxy's getPrototypeOf trap
  }
}

/** The report of any thrown value, and the exit status it means. Never throws. */
export function describeFailure(e: unknown): { error: CliError; status: 1 | 2 } {
  const str = (key: string): string | undefined => {
    const v = field(e, key);
    return typeof v === 'string' ? v : undefined;
  };
  const code = str('code');
  if (code === undefined || code === '') {
    const name = str('name') ?? 'Error';
    const message = str('message');
    return {
      error: { code: RuleCode.INTERNAL, message: `internal error: ${message === undefined ? `a thrown ${describeValue(e)}` : `${name}: ${message}`}`, fix: INTERNAL_FIX },
      status: 1,
    };
  }
  const error: CliError = { code, message: str('message') || code, fix: null };
  const usage = isUsageError(e);
  if (usage) error.fix = USAGE_FIX;
  const hint = str('hint');
  if (hint !== undefined) error.fix = hint;
  const argument = str('argument');
  if (argument !== undefined) error.argument = argument;
  const errno = field(e, 'errno');
  if (typeof errno === 'number') error.errno = errno;
  const syscall = str('syscall');
  if (syscall !== undefined) error.syscall = syscall;
  const path = str('path');
  if (path !== undefined) error.path = path;
  return { error, status: usage ? 2 : 1 };
}

/**
 * Reports a failed command: `vfio: <message>` on stderr (plus a line saying
 * what to do, when the message does not already say it), and with `json` the
 * error object on stdout. Returns the exit status. Never throws.
 */
export function reportFailure(io: CliIo, json: boolean, e: unknown): 1 | 2 {
  const { error, status } = describeFailure(e);
  let text = `vfio: ${error.message}\n`;
  if (status === 2) text += "Try 'vfio --help'.\n";
  if (error.code === RuleCode.INTERNAL) text += `vfio: ${error.fix}\n`;
  if (io.env.VFIO_DEBUG) {
    const stack = field(e, 'stack');
    if (typeof stack === 'string') text += `${stack}\n`;
  }
  if (json) io.stdout(jsonText({ error }));
  io.stderr(text);
  return status;
}
