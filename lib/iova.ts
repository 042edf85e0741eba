// IOVAs are device addresses, never pointers: always bigint, 0 <= iova < 2^64.

import { RuleCode, VfioError } from './errors';

export type Iova = bigint;
export const IOVA_LIMIT = 1n << 64n;

/** Accepts a bigint or a safe non-negative integer number; returns bigint. */
export function toU64(value: unknown, name: string): bigint {
  if (typeof value === 'bigint') {
    if (value < 0n || value >= IOVA_LIMIT) {
      throw new VfioError(RuleCode.INVALID_ARG, `${name} must be within 0 .. 2^64-1, got ${value}`);
    }
    return value;
  }
  if (typeof value === 'number' && Number.isSafeInteger(value) && value >= 0) return BigInt(value);
  throw new VfioError(
    RuleCode.INVALID_ARG,
    `${name} must be a bigint or a non-negative safe integer, got ${typeof value === 'number' ? value : typeof value}`,
  );
}

/** A non-negative safe integer (byte offsets and sizes inside a buffer). */
export function toSafeSize(value: unknown, name: string): number {
  if (typeof value === 'bigint' && value >= 0n && value <= BigInt(Number.MAX_SAFE_INTEGER)) return Number(value);
  if (typeof value === 'number' && Number.isSafeInteger(value) && value >= 0) return value;
  throw new VfioError(RuleCode.INVALID_ARG, `${name} must be a non-negative safe integer, got ${String(value)}`);
}

export function hex(v: bigint | number): string {
  return `0x${v.toString(16)}`;
}

/** The smallest page size in a page-size bitmap (iova_pgsizes). */
export function smallestPage(bitmap: bigint): bigint {
  if (bitmap <= 0n) return 0n;
  return bitmap & -bitmap;
}

export function isAligned(v: bigint, alignment: bigint): boolean {
  return alignment > 0n && v % alignment === 0n;
}

/** Half-open [start, end) ranges overlap. */
export function overlaps(aStart: bigint, aSize: bigint, bStart: bigint, bSize: bigint): boolean {
  return aStart < bStart + bSize && bStart < aStart + aSize;
}
