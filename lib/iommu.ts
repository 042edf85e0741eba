// What every IOMMU model shares: the bookkeeping of live mappings (always
// equal to the kernel's), the fixed-order validation of a map request, and
// sync/async map and unmap. Type1Iommu and SpaprTceIommu fill in the
// model-specific rules (page sizes, IOVA ranges, DMA windows).

import { argBool, argOptions, argSize, argU64, optionField, rangeError, typeError, valueError } from './args';
import { DmaBuffer } from './dma-buffer';
import { DmaMapping, type DmaMappingInit, type DmaSource } from './dma-mapping';
import { RuleCode, VfioError, rethrow } from './errors';
import { IovaBooks } from './iova-books';
import { hex, IOVA_LIMIT } from './iova';
import { native } from './native';
import { memlockHint } from './hints';
import { RegionMapping } from './region';

/** Which IOMMU model a container was set to, or an iommufd IO address space. */
export type IommuKind = 'type1' | 'type1v2' | 'spapr' | 'spapr-v2' | 'ioas';

/** What an IOMMU context lives in: a container, or an iommufd. */
export interface IommuOwner {
  readonly description: string;
  readonly closed: boolean;
}

/** The IOVA of a mapping the kernel has not placed yet (an IOAS map without an IOVA). */
export const UNPLACED = -1n;

/** Options of {@link Iommu.map}. */
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

/** An IOVA range by start and size. */
export interface IovaRangeSpec {
  iova: bigint | number;
  size: bigint | number;
}

/** A validated map request. */
export type MapRequest = DmaMappingInit;

/** An IOVA at or above this may wrap 2^64 with a size that fits a number. */
const WRAP_RISK = IOVA_LIMIT - BigInt(Number.MAX_SAFE_INTEGER);

/** The IOMMU context of a container: maps and unmaps DMA after checking the rules the kernel reports (page sizes, IOVA ranges, overlaps, limits). */
export abstract class Iommu {
  abstract readonly kind: IommuKind;
  /** The smallest page the IOMMU maps: IOVA, offset and size must be multiples of it. */
  abstract readonly pageSize: bigint;

  readonly #owner: IommuOwner;
  /** Live and in-flight mappings: O(log n) at the kernel's 65,535 (lib/iova-books.ts). */
  readonly #mappings = new IovaBooks<DmaMapping>();
  readonly #pending = new Set<DmaMapping>();
  #gone = false;
  /** pageSize - 1, as a bigint; set on the first map (pageSize is the model's, set after this constructor). */
  #pageMask = -1n;

  protected constructor(owner: IommuOwner) {
    this.#owner = owner;
  }

  get description(): string {
    return `${this.kind} IOMMU of ${this.#owner.description}`;
  }

  /**
   * True once the IOMMU context is gone: its container closed, or the last
   * group left it (the kernel drops the context then). A gone Iommu refuses
   * everything with ERR_VFIO_CLOSED; set a new one with container.setIommu().
   */
  get closed(): boolean {
    return this.#gone || this.#owner.closed;
  }

  /** Live mappings, sorted by IOVA. */
  get mappings(): readonly DmaMapping[] {
    const live: DmaMapping[] = [];
    for (const m of this.#mappings) if (!this.#pending.has(m)) live.push(m);
    return live;
  }

  /** Number of map/unmap calls that have not settled yet. */
  get pendingOperations(): number {
    return this.#pending.size;
  }

  /**
   * Map a buffer (or part of it) for DMA. A RegionMapping (a BAR mmap of
   * another device) maps that device's registers for peer-to-peer DMA: the
   * devices of this IOMMU then reach them at the IOVA.
   */
  map(buffer: DmaSource, options?: MapOptions): DmaMapping {
    const mapping = this.#reserve(buffer, options);
    const unplaced = mapping.iova === UNPLACED;
    try {
      this.issueMap(mapping);
    } catch (e) {
      this.#forget(mapping);
      this.#rethrowMap(e, mapping);
    }
    if (unplaced) this.#place(mapping);
    return mapping;
  }

  /** map() with the pinning done on the libuv thread pool (GiBs take seconds). */
  async mapAsync(buffer: DmaSource, options?: MapOptions): Promise<DmaMapping> {
    const mapping = this.#reserve(buffer, options);
    const unplaced = mapping.iova === UNPLACED;
    this.#pending.add(mapping);
    try {
      await this.issueMapAsync(mapping);
    } catch (e) {
      this.#pending.delete(mapping);
      this.#forget(mapping);
      this.#rethrowMap(e, mapping);
    }
    this.#pending.delete(mapping);
    if (unplaced) this.#place(mapping);
    return mapping;
  }

  /**
   * Books a mapping the kernel placed (issueMap set its IOVA). Only an
   * in-flight map with an IOVA of the caller's can sit there: the kernel
   * then allocated around something it had not seen yet, so the new mapping
   * goes again and the caller is told to await the other first.
   */
  #place(m: DmaMapping): void {
    const hit = this.#mappings.insertFree(m);
    if (hit === undefined) return;
    let undone = false;
    try {
      undone = this.issueUnmap(m.iova, m.size) === m.size;
    } catch {
      // reported below: the kernel keeps a mapping the books cannot hold
    }
    m.buffer.removeUser(m);
    throw new VfioError(
      undone ? RuleCode.BUSY : RuleCode.BOOKKEEPING,
      `${this.description}: the kernel placed ${hex(m.size)} bytes at iova ${hex(m.iova)}, where the in-flight ${hit.description} goes; ` +
        (undone ? 'it was unmapped again: await the other map first, or give an IOVA' : 'unmapping it again failed, so the kernel holds a mapping these books do not'),
    );
  }

  /**
   * Unmap one mapping, or an exact IOVA range made of whole live mappings.
   * Returns the mappings removed.
   */
  unmap(target: DmaMapping | IovaRangeSpec): DmaMapping[] {
    if (DmaMapping.isMapping(target)) {
      this.#unmapOne(target);
      return [target];
    }
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

  /** @internal DmaMapping.unmap(): one mapping, with no arrays on the way. */
  unmapMapping(m: DmaMapping): void {
    this.#unmapOne(m);
  }

  #unmapOne(m: DmaMapping): void {
    this.#assertLive(m);
    let unmapped: bigint;
    try {
      unmapped = this.issueUnmap(m.iova, m.size);
    } catch (e) {
      rethrow(e, `unmapping iova ${hex(m.iova)} (${hex(m.size)} bytes) from the ${this.description}`);
    }
    this.#mappings.remove(m);
    m.markUnmapped();
    if (unmapped !== m.size) this.#unmappedWrong(unmapped, m.size);
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
    this.assertUsable();
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
  findFreeIova(size: bigint | number, alignment: bigint | number = this.pageSize): bigint {
    const want = argU64(size, 'size');
    const align = argU64(alignment, 'alignment');
    if (want === 0n) throw rangeError('size', '> 0', size);
    if (align === 0n || (align & (align - 1n)) !== 0n) throw valueError('alignment', 'must be a power of two', alignment);
    this.assertUsable();
    return this.#findFree(want, align);
  }

  #findFree(want: bigint, alignment: bigint): bigint {
    const at = this.#mappings.findFree(want, alignment, this.windows());
    if (at !== undefined) return at;
    throw new VfioError(RuleCode.IOVA_OUT_OF_RANGE, `${this.description}: no free IOVA range of ${hex(want)} bytes is left`);
  }

  /** Usable IOVA ranges, inclusive ends, sorted. */
  abstract windows(): { start: bigint; end: bigint }[];

  /** @internal A device behind this IOMMU opened: models whose ranges can change then re-read them. */
  deviceOpened(): void {}

  /** @internal Live mappings, for teardown(). */
  get mappingCount(): number {
    return this.#mappings.size;
  }

  /**
   * @internal teardown(), step 2: the context is about to go, so give back
   * everything it holds (mappings; sPAPR registrations too). On a kernel
   * failure the books stay equal to the kernel's.
   */
  releaseAll(): void {
    if (this.#mappings.size > 0) this.unmapAll();
  }

  /** @internal The kernel dropped the context (the last group left): close with it. */
  contextGone(): void {
    this.#gone = true;
    // Normally empty (teardown unmapped first); the kernel has dropped any left.
    const left = [...this.#mappings];
    this.#mappings.clear();
    for (const m of left) m.markUnmapped();
  }

  /** @internal Refuse to close while a map/unmap is in flight. */
  assertIdle(what: string): void {
    this.#assertIdle(what);
  }

  /** @internal Throws ERR_VFIO_CLOSED once the context is gone. */
  assertUsable(): void {
    if (this.#owner.closed) throw new VfioError(RuleCode.CLOSED, `the ${this.description} is closed: ${this.#owner.description} is closed`);
    if (this.#gone) {
      throw new VfioError(
        RuleCode.CLOSED,
        `the ${this.description} is closed: its last group left the container and the kernel dropped the IOMMU context; attach a group and call container.setIommu() for a new one`,
      );
    }
  }

  // --- model hooks --------------------------------------------------------

  /** Does the kernel choose the IOVA when the caller gives none? (iommufd: yes; type1: we do.) */
  protected kernelPlacesIova(): boolean {
    return false;
  }

  /** What the model can map at all (default: buffers and BAR mmaps). */
  protected checkSource(_source: DmaSource): void {}

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

  #reserve(buffer: DmaSource, options: MapOptions | undefined): DmaMapping {
    if (!DmaBuffer.isBuffer(buffer) && !RegionMapping.isMapping(buffer)) throw typeError('buffer', 'a DmaBuffer or a RegionMapping', buffer);
    const o = argOptions(options);
    const givenIova = optionField(o, 'iova', 'options.iova');
    const givenOffset = optionField(o, 'offset', 'options.offset');
    const givenSize = optionField(o, 'size', 'options.size');
    const givenReadable = optionField(o, 'readable', 'options.readable');
    const givenWritable = optionField(o, 'writable', 'options.writable');
    const iova = givenIova === undefined ? undefined : argU64(givenIova, 'options.iova');
    const offset = givenOffset === undefined ? 0 : argSize(givenOffset, 'options.offset');
    const explicitSize = givenSize === undefined ? undefined : argSize(givenSize, 'options.size');
    const readable = givenReadable === undefined ? true : argBool(givenReadable, 'options.readable');
    const writable = givenWritable === undefined ? true : argBool(givenWritable, 'options.writable');
    if (!readable && !writable) {
      throw valueError('options', 'asks for a mapping the device can neither read nor write: set readable or writable', o);
    }
    this.assertUsable();
    buffer.handle(); // closed buffer → ERR_VFIO_CLOSED
    this.checkSource(buffer);
    if (writable && !buffer.writable) {
      throw new VfioError(RuleCode.REGION_ACCESS, `${this.description}: ${buffer.description} is read-only, so a device cannot write through it; map it with { writable: false }, or mmap it writable`);
    }
    const size = explicitSize ?? Math.max(buffer.size - offset, 0);
    if (size === 0) throw new VfioError(RuleCode.BAD_RANGE, `${this.description}: a mapping needs a size > 0`);
    const bigSize = BigInt(size);
    // Compared before added: the sum is a BigInt allocation the common case skips.
    if (iova !== undefined && iova >= WRAP_RISK && iova + bigSize > IOVA_LIMIT) {
      throw new VfioError(RuleCode.BAD_RANGE, `${this.description}: iova ${hex(iova)} + size ${hex(size)} wraps around 2^64`);
    }
    buffer.checkRange(offset, size);
    const page = this.pageSize;
    if (this.#pageMask < 0n) this.#pageMask = page - 1n;
    // offset and size are safe integers and the page a power of two that fits a number: no BigInt division.
    if (offset % Number(page) !== 0) this.#misaligned('buffer offset', BigInt(offset), page);
    if (size % Number(page) !== 0) this.#misaligned('size', bigSize, page);
    if (iova === undefined && this.kernelPlacesIova()) {
      // Placed by the kernel's own allocator (issueMap sets the IOVA), booked after.
      const unplaced = new DmaMapping(this, { buffer, offset, size: bigSize, iova: UNPLACED, readable, writable });
      buffer.addUser(unplaced);
      return unplaced;
    }
    const at = iova ?? this.#findFree(bigSize, page);
    if ((at & this.#pageMask) !== 0n) this.#misaligned('iova', at, page);
    const mapping = new DmaMapping(this, { buffer, offset, size: bigSize, iova: at, readable, writable });
    this.checkMap(mapping);
    // The overlap check and the insert are one descent of the books.
    const hit = this.#mappings.insertFree(mapping);
    if (hit !== undefined) this.#overlaps(at, bigSize, hit);
    try {
      this.checkLimit(this.#mappings.size - 1);
    } catch (e) {
      this.#mappings.remove(mapping);
      throw e;
    }
    buffer.addUser(mapping);
    return mapping;
  }

  #misaligned(what: string, value: bigint, page: bigint): never {
    throw new VfioError(
      RuleCode.MISALIGNED,
      `${this.description}: ${what} ${hex(value)} is not a multiple of the IOMMU page size ${hex(page)}; round it to ${hex(page)}`,
    );
  }

  /** Throws IOVA_OUT_OF_RANGE unless [iova, iova+size) lies inside one window. */
  protected checkInsideWindows(iova: bigint, size: bigint, what = 'IOVA range'): void {
    const windows = this.windows();
    const s = Number(iova);
    const l = s + Number(size) - 1;
    if (l < 2 ** 53) {
      // Exact doubles: against a bound rounded to a double the order still holds (rounding is monotone).
      for (let i = 0; i < windows.length; i++) if (s >= Number(windows[i].start) && l <= Number(windows[i].end)) return;
    }
    const last = iova + size - 1n;
    for (let i = 0; i < windows.length; i++) if (iova >= windows[i].start && last <= windows[i].end) return;
    const list = windows.map((w) => `${hex(w.start)}-${hex(w.end)}`).join(', ');
    throw new VfioError(
      RuleCode.IOVA_OUT_OF_RANGE,
      `${this.description}: iova ${hex(iova)}-${hex(last)} is outside every ${what} the IOMMU reports (${list}); pick an IOVA inside one`,
    );
  }

  /** Model hook: refuse before the kernel's ENOSPC. Default: no limit. */
  protected checkLimit(_live: number): void {}

  #overlaps(iova: bigint, size: bigint, hit: DmaMapping): never {
    throw new VfioError(
      RuleCode.OVERLAP,
      `${this.description}: iova ${hex(iova)} (${hex(size)} bytes) overlaps the live ${hit.description}; unmap it first or pick a free IOVA (findFreeIova)`,
    );
  }

  #forget(m: DmaMapping): void {
    this.#mappings.remove(m);
    m.buffer.removeUser(m);
  }

  #victims(target: DmaMapping | IovaRangeSpec): { victims: DmaMapping[]; iova: bigint; size: bigint } {
    if (DmaMapping.isMapping(target)) {
      this.#assertLive(target);
      return { victims: [target], iova: target.iova, size: target.size };
    }
    const spec = argOptions(target, 'target');
    const iova = argU64(optionField(spec, 'iova', 'target.iova'), 'target.iova');
    const size = argU64(optionField(spec, 'size', 'target.size'), 'target.size');
    this.assertUsable();
    if (size === 0n) throw new VfioError(RuleCode.BAD_RANGE, `${this.description}: an unmap needs a size > 0`);
    if (iova + size > IOVA_LIMIT) throw new VfioError(RuleCode.BAD_RANGE, `${this.description}: iova ${hex(iova)} + size ${hex(size)} wraps around 2^64`);
    const inside = this.#mappings.inRange(iova, size);
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

  /** A mapping of this IOMMU, mapped (not closed) and not in flight. */
  #assertLive(m: DmaMapping): void {
    this.assertUsable();
    // Closed ⇔ unmapped: markUnmapped() closes it when it leaves the books.
    if (m.iommu !== this || m.closed) {
      throw new VfioError(RuleCode.NO_MAPPING, `${m.description} is not live in the ${this.description}`);
    }
    if (this.#pending.size > 0) this.#assertNotPending([m]);
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
      this.#mappings.remove(m);
      m.markUnmapped();
    }
    if (unmapped !== expected) this.#unmappedWrong(unmapped, expected);
  }

  #unmappedWrong(unmapped: bigint, expected: bigint): never {
    throw new VfioError(
      RuleCode.BOOKKEEPING,
      `${this.description}: the kernel unmapped ${hex(unmapped)} bytes where ${hex(expected)} were mapped`,
    );
  }

  #rethrowMap(e: unknown, m: DmaMapping): never {
    rethrow(e, `mapping ${hex(m.size)} bytes of ${m.buffer.description} at iova ${hex(m.iova)} in the ${this.description}`, (code) =>
      code === 'ENOMEM' ? memlockHint(m.size) : this.mapHint(code, m),
    );
  }
}
