// Byte sizes as people type them ('2G', '512M', '1.5GiB', '4096') and as we print them.
// Units are binary (K = 1024), as in ulimit, QEMU's -m and /proc/meminfo.

import { argSize, rangeError, typeError, valueError } from '../args';

const UNITS: Record<string, bigint> = {
  '': 1n,
  k: 1n << 10n,
  m: 1n << 20n,
  g: 1n << 30n,
  t: 1n << 40n,
  p: 1n << 50n,
  e: 1n << 60n,
};

// At most one space between number and unit ('16 MiB'); none around it: a
// newline read from a file or a tab is not part of a size.
const SIZE = /^(\d+)(?:\.(\d+))? ?([kmgtpe]?)(?:i?b)?$/i;

const EXAMPLES = 'such as 4096, 64K, 512M, 2G or 1.5GiB';

/**
 * '2G' → 2147483648n. A non-string is ERR_INVALID_ARG_TYPE; a string that is
 * not a size, or a fraction of a byte, is ERR_INVALID_ARG_VALUE.
 */
export function parseSize(size: string): bigint {
  if (typeof size !== 'string') throw typeError('size', 'of type string', size);
  const m = SIZE.exec(size);
  if (!m) throw valueError('size', `must be a size ${EXAMPLES}, without surrounding whitespace`, size);
  const unit = UNITS[m[3]!.toLowerCase()]!;
  const frac = m[2] ?? '';
  const scale = 10n ** BigInt(frac.length);
  const scaled = (BigInt(m[1]!) * scale + BigInt(frac || '0')) * unit;
  if (scaled % scale !== 0n) throw valueError('size', 'must be a whole number of bytes', size);
  return scaled / scale;
}

/** A byte count of any size: a bigint >= 0, or a safe integer number >= 0; returned as bigint. */
export function argByteCount(value: unknown, argument: string): bigint {
  if (typeof value === 'bigint') {
    if (value < 0n) throw rangeError(argument, '>= 0n', value);
    return value;
  }
  return BigInt(argSize(value, argument));
}

/** 2147483648n → '2 GiB'; exact values only, falling back to bytes. One decimal when it is exact. */
export function formatSize(bytes: bigint): string {
  const b = argByteCount(bytes, 'bytes');
  for (const [suffix, unit] of [['EiB', 1n << 60n], ['PiB', 1n << 50n], ['TiB', 1n << 40n], ['GiB', 1n << 30n], ['MiB', 1n << 20n], ['KiB', 1n << 10n]] as const) {
    if (b >= unit) {
      if (b % unit === 0n) return `${b / unit} ${suffix}`;
      if ((b * 10n) % unit === 0n) return `${Number((b * 10n) / unit) / 10} ${suffix}`;
    }
  }
  return `${b} B`;
}
