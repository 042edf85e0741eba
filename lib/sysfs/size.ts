// Byte sizes as people type them ('2G', '512M', '1.5GiB', '4096') and as we print them.
// Units are binary (K = 1024), as in ulimit, QEMU's -m and /proc/meminfo.

import { RuleCode, VfioError } from '../errors';

const UNITS: Record<string, bigint> = {
  '': 1n,
  k: 1n << 10n,
  m: 1n << 20n,
  g: 1n << 30n,
  t: 1n << 40n,
  p: 1n << 50n,
  e: 1n << 60n,
};

const SIZE = /^(\d+)(?:\.(\d+))?\s*([kmgtpe]?)(?:i?b)?$/i;

/** '2G' → 2147483648n. Throws ERR_VFIO_INVALID_ARG for anything else, or a fraction of a byte. */
export function parseSize(text: string): bigint {
  const m = SIZE.exec(text.trim());
  if (!m) {
    throw new VfioError(RuleCode.INVALID_ARG, `'${text}' is not a size (examples: 4096, 64K, 512M, 2G, 1.5GiB)`);
  }
  const unit = UNITS[m[3]!.toLowerCase()]!;
  const frac = m[2] ?? '';
  const scale = 10n ** BigInt(frac.length);
  const scaled = (BigInt(m[1]!) * scale + BigInt(frac || '0')) * unit;
  if (scaled % scale !== 0n) {
    throw new VfioError(RuleCode.INVALID_ARG, `'${text}' is not a whole number of bytes`);
  }
  return scaled / scale;
}

/** 2147483648n → '2 GiB'; exact values only, falling back to bytes. One decimal when it is exact. */
export function formatSize(bytes: bigint): string {
  for (const [suffix, unit] of [['EiB', 1n << 60n], ['PiB', 1n << 50n], ['TiB', 1n << 40n], ['GiB', 1n << 30n], ['MiB', 1n << 20n], ['KiB', 1n << 10n]] as const) {
    if (bytes >= unit) {
      if (bytes % unit === 0n) return `${bytes / unit} ${suffix}`;
      if ((bytes * 10n) % unit === 0n) return `${Number((bytes * 10n) / unit) / 10} ${suffix}`;
    }
  }
  return `${bytes} B`;
}
