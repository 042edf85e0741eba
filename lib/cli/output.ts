// Where the CLI writes, and how it draws tables: plain text for pipes, colour
// only on a terminal and never when NO_COLOR is set (https://no-color.org).

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
