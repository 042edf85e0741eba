// IOVAs are device addresses, never pointers: always bigint, 0 <= iova < 2^64.

/** An I/O virtual address: what the device puts on the bus, translated by the IOMMU. */
export type Iova = bigint;
export const IOVA_LIMIT = 1n << 64n;

/** '0x1000' for 4096n: IOVAs and sizes in messages. */
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
