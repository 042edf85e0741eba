// What every IOMMU model shares: the bookkeeping of live mappings (always
// equal to the kernel's), the fixed-order validation of a map request, and
// sync/async map and unmap. Type1Iommu and SpaprTceIommu fill in the
// model-specific rules (page sizes, IOVA ranges, DMA windows).

import type { DmaBuffer } from './dma-buffer';
import { DmaMapping } from './dma-mapping';
import { RuleCode, VfioError, rethrow } from './errors';
import { hex, IOVA_LIMIT, isAligned, toSafeSize, toU64 } from './iova';
import { native, type NativeContainer } from './native';
import { memlockHint } from './hints';

export type IommuKind = 'type1' | 'type1v2' | 'spapr' | 'spapr-v2';

export interface MapOptions {
  /** Device address of the mapping. Omitted: the lowest free, aligned IOVA that fits. */
  iova?: bigint | number;
  /** Offset inside the buffer (default 0). */
  offset?: number;
  /** Bytes to map (default: the rest of the buffer from offset). */
  size?: number;
  /** Device may read the memory (default true). */
  readable?: boolean;
  /** Device may write the memory (default true). */
  writable?: boolean;
}

export interface IovaRangeSpec {
  iova: bigint | number;
  size: bigint | number;
}

/** The container side an IOMMU needs. */
export interface IommuOwner {
  readonly description: string;
  /** Throws ERR_VFIO_CLOSED if the container is closed. */
  assertUsable(): void;
}

/** A validated map request. */
export interface MapRequest {
  buffer: DmaBuffer;
  offset: number;
  size: bigint;
  iova: bigint;
  readable: boolean;
  writable: boolean;
}

export abstract class Iommu {
  abstract readonly kind: IommuKind;
  /** The smallest page the IOMMU maps: IOVA, offset and size must be multiples of it. */
  abstract readonly pageSize: bigint;

  readonly #owner: IommuOwner;
  protected readonly container: NativeContainer;
  /** Live and in-flight mappings, sorted by IOVA. */
  readonly #mappings: DmaMapping[] = [];
  readonly #pending = new Set<DmaMapping>();

  protected constructor(owner: IommuOwner, container: NativeContainer) {
    this.#owner = owner;
    this.container = container;
  }

  get description(): string {
    return `${this.kind} IOMMU of ${this.#owner.description}`;
  }

  /** Live mappings, sorted by IOVA. */
  get mappings(): readonly DmaMapping[] {
    return this.#mappings.filter((m) => !this.#pending.has(m));
  }

  /** Number of map/unmap calls that have not settled yet. */
  get pendingOperations(): number {
    return this.#pending.size;
  }

  /** Map a buffer (or part of it) for DMA. */
  map(buffer: DmaBuffer, options: MapOptions = {}): DmaMapping {
    const mapping = this.#reserve(buffer, options);
    try {
      this.issueMap(mapping);
    } catch (e) {
      this.#forget(mapping);
      this.#rethrowMap(e, mapping);
    }
    return mapping;
  }

  /** map() with the pinning done on the libuv thread pool (GiBs take seconds). */
  async mapAsync(buffer: DmaBuffer, options: MapOptions = {}): Promise<DmaMapping> {
    const mapping = this.#reserve(buffer, options);
    this.#pending.add(mapping);
    try {
      await this.issueMapAsync(mapping);
    } catch (e) {
      this.#pending.delete(mapping);
      this.#forget(mapping);
      this.#rethrowMap(e, mapping);
    }
    this.#pending.delete(mapping);
    return mapping;
  }

  /**
   * Unmap one mapping, or an exact IOVA range made of whole live mappings.
   * Returns the mappings removed.
   */
  unmap(target: DmaMapping | IovaRangeSpec): DmaMapping[] {
    const { victims, iova, size } = this.#victims(target);
    let unmapped: bigint;
    try {
      unmapped = this.issueUnmap(iova, size);
    } catch (e) {
      rethrow(e, `unmapping iova ${hex(iova)} (${hex(size)} bytes) from the ${this.description}`);
    }
    this.#settleUnmap(victims, unmapped);
    return victims;
  }

  /** unmap() on the libuv thread pool. */
  async unmapAsync(target: DmaMapping | IovaRangeSpec): Promise<DmaMapping[]> {
    const { victims, iova, size } = this.#victims(target);
    victims.forEach((m) => this.#pending.add(m));
    let unmapped: bigint;
    try {
      unmapped = await this.issueUnmapAsync(iova, size);
    } catch (e) {
      rethrow(e, `unmapping iova ${hex(iova)} (${hex(size)} bytes) from the ${this.description}`);
    } finally {
      victims.forEach((m) => this.#pending.delete(m));
    }
    this.#settleUnmap(victims, unmapped);
    return victims;
  }

  /** Unmap everything (one ioctl where the kernel has VFIO_DMA_UNMAP_FLAG_ALL). */
  unmapAll(): void {
    this.#owner.assertUsable();
    this.#assertIdle('unmap everything');
    const all = [...this.#mappings];
    if (all.length === 0) return;
    let unmapped: bigint;
    try {
      unmapped = this.issueUnmapAll(all);
    } catch (e) {
      rethrow(e, `unmapping all ${all.length} mappings of the ${this.description}`);
    }
    this.#settleUnmap(all, unmapped);
  }

  /** The lowest IOVA where `size` bytes fit, aligned to `alignment` (default: the page size). */
  findFreeIova(size: bigint | number, alignment: bigint = this.pageSize): bigint {
    const want = toU64(size, 'size');
    for (const { start, end } of this.windows()) {
      let candidate = alignUp(start, alignment);
      for (const m of this.#mappings) {
        if (m.end <= candidate) continue;
        if (m.iova >= candidate + want) break;
        candidate = alignUp(m.end, alignment);
      }
      if (candidate + want - 1n <= end) return candidate;
    }
    throw new VfioError(RuleCode.IOVA_OUT_OF_RANGE, `${this.description}: no free IOVA range of ${hex(want)} bytes is left`);
  }

  /** Usable IOVA ranges, inclusive ends, sorted. */
  abstract windows(): { start: bigint; end: bigint }[];

  /** @internal Container close: unmap everything, ignoring nothing. */
  release(): void {
    this.#assertIdle('close');
    if (this.#mappings.length > 0) this.unmapAll();
  }

  /** @internal Refuse to close while a map/unmap is in flight. */
  assertIdle(what: string): void {
    this.#assertIdle(what);
  }

  // --- model hooks --------------------------------------------------------

  /** Model-specific checks after the generic ones (alignment, windows). */
  protected abstract checkMap(request: MapRequest): void;
  protected abstract issueMap(m: DmaMapping): void;
  protected abstract issueMapAsync(m: DmaMapping): Promise<void>;
  protected abstract issueUnmap(iova: bigint, size: bigint): bigint;
  protected abstract issueUnmapAsync(iova: bigint, size: bigint): Promise<bigint>;
  /** Default: one unmap per contiguous run; models with an unmap-all ioctl override. */
  protected issueUnmapAll(all: DmaMapping[]): bigint {
    let total = 0n;
    for (const m of all) total += this.issueUnmap(m.iova, m.size);
    return total;
  }
  /** Extra kernel-error hints for a failed map. */
  protected mapHint(_code: string, _m: DmaMapping): string | undefined {
    return undefined;
  }

  /** The VFIO_DMA_MAP_FLAG_* word for a mapping. */
  protected mapFlags(m: DmaMapping): number {
    const c = native().constants;
    return (m.readable ? c.VFIO_DMA_MAP_FLAG_READ : 0) | (m.writable ? c.VFIO_DMA_MAP_FLAG_WRITE : 0);
  }

  // --- validation, in a fixed order so the same bad input always gets the same error

  #reserve(buffer: DmaBuffer, options: MapOptions): DmaMapping {
    this.#owner.assertUsable();
    buffer.handle(); // closed buffer → ERR_VFIO_CLOSED
    if (options === null || typeof options !== 'object') {
      throw new VfioError(RuleCode.INVALID_ARG, 'map options must be an object');
    }
    const offset = toSafeSize(options.offset ?? 0, 'offset');
    const size = toSafeSize(options.size ?? Math.max(buffer.size - offset, 0), 'size');
    const readable = options.readable ?? true;
    const writable = options.writable ?? true;
    if (typeof readable !== 'boolean' || typeof writable !== 'boolean') {
      throw new VfioError(RuleCode.INVALID_ARG, 'readable and writable must be booleans');
    }
    if (!readable && !writable) {
      throw new VfioError(RuleCode.INVALID_ARG, 'a mapping the device can neither read nor write is useless: set readable or writable');
    }
    if (size === 0) throw new VfioError(RuleCode.BAD_RANGE, `${this.description}: a mapping needs a size > 0`);
    const bigSize = BigInt(size);
    const iova = options.iova === undefined ? undefined : toU64(options.iova, 'iova');
    if (iova !== undefined && iova + bigSize > IOVA_LIMIT) {
      throw new VfioError(RuleCode.BAD_RANGE, `${this.description}: iova ${hex(iova)} + size ${hex(size)} wraps around 2^64`);
    }
    buffer.checkRange(offset, size);
    this.#checkAlignment('buffer offset', BigInt(offset));
    this.#checkAlignment('size', bigSize);
    const at = iova ?? this.findFreeIova(bigSize);
    this.#checkAlignment('iova', at);
    const request: MapRequest = { buffer, offset, size: bigSize, iova: at, readable, writable };
    this.checkMap(request);
    this.#checkOverlap(at, bigSize);
    this.checkLimit(this.#mappings.length);
    const mapping = new DmaMapping({ iommu: this, ...request });
    this.#insert(mapping);
    buffer.addUser(mapping);
    return mapping;
  }

  #checkAlignment(what: string, value: bigint): void {
    if (!isAligned(value, this.pageSize)) {
      throw new VfioError(
        RuleCode.MISALIGNED,
        `${this.description}: ${what} ${hex(value)} is not a multiple of the IOMMU page size ${hex(this.pageSize)}; round it to ${hex(this.pageSize)}`,
      );
    }
  }

  /** Throws IOVA_OUT_OF_RANGE unless [iova, iova+size) lies inside one window. */
  protected checkInsideWindows(iova: bigint, size: bigint, what = 'IOVA range'): void {
    const last = iova + size - 1n;
    const windows = this.windows();
    if (windows.some((w) => iova >= w.start && last <= w.end)) return;
    const list = windows.map((w) => `${hex(w.start)}-${hex(w.end)}`).join(', ');
    throw new VfioError(
      RuleCode.IOVA_OUT_OF_RANGE,
      `${this.description}: iova ${hex(iova)}-${hex(last)} is outside every ${what} the IOMMU reports (${list}); pick an IOVA inside one`,
    );
  }

  /** Model hook: refuse before the kernel's ENOSPC. Default: no limit. */
  protected checkLimit(_live: number): void {}

  #checkOverlap(iova: bigint, size: bigint): void {
    // Sorted and disjoint: only the neighbours of the insertion point can overlap.
    const i = this.#lowerBound(iova);
    const prev = this.#mappings[i - 1];
    const next = this.#mappings[i];
    const hit = prev && prev.end > iova ? prev : next && next.iova < iova + size ? next : undefined;
    if (hit) {
      throw new VfioError(
        RuleCode.OVERLAP,
        `${this.description}: iova ${hex(iova)} (${hex(size)} bytes) overlaps the live ${hit.description}; unmap it first or pick a free IOVA (findFreeIova)`,
      );
    }
  }

  /** Index of the first mapping at or above `iova`. */
  #lowerBound(iova: bigint): number {
    const ms = this.#mappings;
    let lo = 0;
    let hi = ms.length;
    while (lo < hi) {
      const mid = (lo + hi) >>> 1;
      if (ms[mid].iova < iova) lo = mid + 1;
      else hi = mid;
    }
    return lo;
  }

  #insert(m: DmaMapping): void {
    this.#mappings.splice(this.#lowerBound(m.iova), 0, m);
  }

  #isLive(m: DmaMapping): boolean {
    return this.#mappings[this.#lowerBound(m.iova)] === m;
  }

  #remove(m: DmaMapping): void {
    const i = this.#lowerBound(m.iova);
    if (this.#mappings[i] === m) this.#mappings.splice(i, 1);
  }

  #forget(m: DmaMapping): void {
    this.#remove(m);
    m.buffer.removeUser(m);
  }

  #victims(target: DmaMapping | IovaRangeSpec): { victims: DmaMapping[]; iova: bigint; size: bigint } {
    this.#owner.assertUsable();
    if (target instanceof DmaMapping) {
      if (target.iommu !== this || !this.#isLive(target)) {
        throw new VfioError(RuleCode.NO_MAPPING, `${target.description} is not live in the ${this.description}`);
      }
      this.#assertNotPending([target]);
      return { victims: [target], iova: target.iova, size: target.size };
    }
    if (target === null || typeof target !== 'object') {
      throw new VfioError(RuleCode.INVALID_ARG, 'unmap takes a DmaMapping or { iova, size }');
    }
    const iova = toU64(target.iova, 'iova');
    const size = toU64(target.size, 'size');
    if (size === 0n) throw new VfioError(RuleCode.BAD_RANGE, `${this.description}: an unmap needs a size > 0`);
    const inside: DmaMapping[] = [];
    const first = this.#lowerBound(iova);
    const before = this.#mappings[first - 1];
    if (before && before.end > iova) inside.push(before);
    for (let i = first; i < this.#mappings.length && this.#mappings[i].iova < iova + size; i++) inside.push(this.#mappings[i]);
    const cut = inside.find((m) => m.iova < iova || m.end > iova + size);
    if (cut) {
      throw new VfioError(
        RuleCode.NO_MAPPING,
        `${this.description}: range ${hex(iova)}+${hex(size)} cuts through the ${cut.description}; unmap whole mappings`,
      );
    }
    if (inside.length === 0) {
      throw new VfioError(RuleCode.NO_MAPPING, `${this.description}: nothing is mapped in ${hex(iova)}+${hex(size)}`);
    }
    this.#assertNotPending(inside);
    return { victims: inside, iova, size };
  }

  #assertNotPending(ms: DmaMapping[]): void {
    const busy = ms.find((m) => this.#pending.has(m));
    if (busy) throw new VfioError(RuleCode.BUSY, `${busy.description} has a map or unmap in flight; await it first`);
  }

  #assertIdle(what: string): void {
    if (this.#pending.size > 0) {
      throw new VfioError(
        RuleCode.BUSY,
        `cannot ${what}: ${this.#pending.size} async map/unmap operation(s) of the ${this.description} have not settled; await them first`,
      );
    }
  }

  #settleUnmap(victims: DmaMapping[], unmapped: bigint): void {
    const expected = victims.reduce((n, m) => n + m.size, 0n);
    for (const m of victims) {
      this.#remove(m);
      m.markUnmapped();
    }
    if (unmapped !== expected) {
      throw new VfioError(
        RuleCode.BOOKKEEPING,
        `${this.description}: the kernel unmapped ${hex(unmapped)} bytes where ${hex(expected)} were mapped`,
      );
    }
  }

  #rethrowMap(e: unknown, m: DmaMapping): never {
    rethrow(e, `mapping ${hex(m.size)} bytes of ${m.buffer.description} at iova ${hex(m.iova)} in the ${this.description}`, (code) =>
      code === 'ENOMEM' ? memlockHint(m.size) : this.mapHint(code, m),
    );
  }
}

function alignUp(v: bigint, a: bigint): bigint {
  return ((v + a - 1n) / a) * a;
}
