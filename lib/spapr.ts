// The sPAPR TCE IOMMU (POWER): DMA windows backed by TCE tables instead of
// one flat IOVA space. The kernel checks less than it should here: on
// Debian's 6.12 ppc64el kernel a v2 map straddling the end of a window
// oopses it, a misaligned IOVA "succeeds" (the ioctl returns 1), mapping an
// IOVA twice silently replaces the first TCE, and unregistering memory that
// is still mapped returns 0. So every map is checked against one window and
// that window's page size first, and the books are kept here.
//
// What the kernel answered in the ppc64 test guest (scripts/guest-ppc64):
// - v1: ENABLE needed before MAP/UNMAP (EPERM before); no registration
//   (ENOTTY) and no dynamic windows (ENOTTY).
// - v2: no ENABLE (ENOTTY); MAP only of registered memory (EINVAL); UNMAP is
//   EPERM until the process has registered memory; windows are created with
//   levels 1..ddw.levels and a power-of-two size; there can be at most
//   ddw.maxDynamicWindowsSupported windows in all, the default one included.
// - UNMAP reports back the size it was asked to unmap, mapped or not.
// - Removing (or clearing) a window walks every TCE: ~0.6 s per GiB of
//   4 KiB pages under TCG, 43 s for 64 GiB. Keep test windows small.

import type { BufferUser } from './dma-buffer';
import type { DmaMapping, DmaSource } from './dma-mapping';
import { RuleCode, VfioError, rethrow } from './errors';
import { argInstance, argInt, argOptions, argSize, argU64, optionField, valueError } from './args';
import type { Container } from './container';
import { DmaBuffer } from './dma-buffer';
import { hex, isAligned, overlaps } from './iova';
import { Iommu, type MapRequest } from './iommu';
import { memlockHint } from './hints';
import { native, type NativeContainer, type SpaprInfoRaw } from './native';

/** Options of the sPAPR TCE IOMMU. */
export interface SpaprOptions {
  /**
   * TCE page size of the default 32-bit window. GET_INFO does not report it;
   * it is 4 KiB on pseries (QEMU, PowerVM) and PowerNV alike, which is the
   * default. Maps of 4 KiB at 4 KiB-aligned IOVAs work there.
   */
  dma32PageSize?: number;
}

/** VFIO_IOMMU_SPAPR_TCE_GET_INFO, as the kernel gave it at setup. */
export interface SpaprInfo {
  flags: number;
  dma32WindowStart: bigint;
  dma32WindowSize: bigint;
  /** Dynamic DMA windows (v2 only): page sizes bitmap, most windows in all, most TCE table levels. */
  ddw: SpaprInfoRaw['ddw'];
}

/** A DMA window: [start, start+size) translated by TCEs of pageSize. */
export class DmaWindow {
  constructor(
    readonly start: bigint,
    readonly size: bigint,
    readonly pageSize: bigint,
    /** The default 32-bit window the container starts with (not created by us). */
    readonly isDefault: boolean,
  ) {}

  /** Last IOVA inside the window (inclusive). */
  get end(): bigint {
    return this.start + this.size - 1n;
  }

  /** True when [iova, iova+size) lies inside this window. */
  contains(iova: bigint, size: bigint): boolean {
    return iova >= this.start && iova + size - 1n <= this.end;
  }

  get description(): string {
    return `${this.isDefault ? 'default ' : ''}DMA window ${hex(this.start)}-${hex(this.end)} (${hex(this.pageSize)}-byte TCE pages)`;
  }
}

/** A pre-registered buffer range (v2: VFIO_IOMMU_SPAPR_REGISTER_MEMORY). */
export class MemoryRegistration implements BufferUser {
  /** @internal */
  bufferSlot = -1;
  constructor(
    readonly buffer: DmaBuffer,
    readonly offset: number,
    readonly size: number,
  ) {}
  get description(): string {
    return `sPAPR registration of ${this.buffer.description} at ${hex(this.offset)}+${hex(this.size)}`;
  }
}

/** @internal Container.setIommu() reads these before VFIO_SET_IOMMU, so bad options change nothing. */
export function readSpaprOptions(options: unknown): { dma32PageSize: bigint } {
  const o = argOptions(options);
  const given = optionField(o, 'dma32PageSize', 'options.dma32PageSize');
  const dma32PageSize = given === undefined ? 4096n : argU64(given, 'options.dma32PageSize');
  if (dma32PageSize === 0n || (dma32PageSize & (dma32PageSize - 1n)) !== 0n) {
    throw valueError('options.dma32PageSize', 'must be a power of two', given);
  }
  return { dma32PageSize };
}

export class SpaprTceIommu extends Iommu {
  readonly kind: 'spapr' | 'spapr-v2';
  protected readonly container: NativeContainer;
  readonly info: SpaprInfo;
  #windows: DmaWindow[];
  readonly #registrations: MemoryRegistration[] = [];
  /** Windows a previous owner may have left TCEs in, not yet cleared. */
  #uncleared: DmaWindow[];

  /** @internal Created by Container.setIommu(). */
  constructor(owner: Container, container: NativeContainer, kind: 'spapr' | 'spapr-v2', options: { dma32PageSize: bigint }) {
    super(owner);
    this.container = container;
    this.kind = kind;
    const dma32Page = options.dma32PageSize;
    try {
      this.info = container.spaprGetInfo();
      // v1 maps nothing (EPERM) until the TCE table is enabled; v2 needs no enable.
      if (kind === 'spapr') container.enable();
    } catch (e) {
      rethrow(e, `setting up the ${kind} IOMMU`);
    }
    const dma32 = new DmaWindow(this.info.dma32WindowStart, this.info.dma32WindowSize, dma32Page, true);
    this.#windows = [dma32];
    // A new owner must never inherit a previous owner's TCEs: clear the
    // default window before anything can be mapped. v1 can do it now. v2
    // answers UNMAP with EPERM until memory is registered, and maps only
    // registered memory, so the first register() clears it, still before
    // any map. Windows we create come with a new, empty table.
    this.#uncleared = [dma32];
    if (kind === 'spapr') this.#clearWindows();
  }

  /** The smallest TCE page size of the live windows: IOVA, offset and size are at least aligned to it. */
  get pageSize(): bigint {
    return this.#windows.reduce((min, w) => (w.pageSize < min ? w.pageSize : min), this.#windows[0]?.pageSize ?? 4096n);
  }

  windows(): { start: bigint; end: bigint }[] {
    return this.#windows.map((w) => ({ start: w.start, end: w.end }));
  }

  /** The live DMA windows, sorted by start. */
  get dmaWindows(): readonly DmaWindow[] {
    return [...this.#windows];
  }

  get registrations(): readonly MemoryRegistration[] {
    return [...this.#registrations];
  }

  /**
   * v2: VFIO_IOMMU_SPAPR_REGISTER_MEMORY. Pins [offset, offset+size) of the
   * buffer (default: all of it); maps must lie inside a registration.
   */
  register(buffer: DmaBuffer, options?: { offset?: number; size?: number }): MemoryRegistration {
    argInstance(buffer, 'buffer', DmaBuffer);
    const o = argOptions(options);
    const givenOffset = optionField(o, 'offset', 'options.offset');
    const givenSize = optionField(o, 'size', 'options.size');
    const offset = givenOffset === undefined ? 0 : argSize(givenOffset, 'options.offset');
    const explicitSize = givenSize === undefined ? undefined : argSize(givenSize, 'options.size');
    this.assertUsable();
    this.#requireV2('pre-registers memory', 'v1 maps any memory without registering it');
    buffer.handle(); // closed buffer → ERR_VFIO_CLOSED
    const size = explicitSize ?? Math.max(buffer.size - offset, 0);
    buffer.checkRange(offset, size);
    if (size === 0 || offset % buffer.pageSize !== 0 || size % buffer.pageSize !== 0) {
      throw new VfioError(
        RuleCode.MISALIGNED,
        `${this.description}: register offset ${hex(offset)} and size ${hex(size)} of ${buffer.description} must be non-zero multiples of its page size ${hex(buffer.pageSize)}`,
      );
    }
    const clash = this.#registrations.find((g) => g.buffer === buffer && overlaps(BigInt(offset), BigInt(size), BigInt(g.offset), BigInt(g.size)));
    if (clash) {
      // The kernel says EBUSY for the same range and EINVAL for a partial overlap.
      throw new VfioError(RuleCode.OVERLAP, `${this.description}: ${hex(offset)}+${hex(size)} overlaps the live ${clash.description}; it is registered already`);
    }
    try {
      this.container.spaprRegisterMemory(buffer.handle(), offset, size);
    } catch (e) {
      rethrow(e, `registering ${buffer.description} with the ${this.description}`, (code) => (code === 'ENOMEM' ? memlockHint(BigInt(size)) : undefined));
    }
    const reg = new MemoryRegistration(buffer, offset, size);
    this.#registrations.push(reg);
    buffer.addUser(reg);
    this.#clearWindows();
    return reg;
  }

  /**
   * VFIO_IOMMU_SPAPR_UNREGISTER_MEMORY. Refused while a mapping uses the
   * range: the kernel would return 0 and leave the device a TCE to memory
   * that is no longer pinned for it.
   */
  unregister(reg: MemoryRegistration): void {
    argInstance(reg, 'reg', MemoryRegistration);
    this.assertUsable();
    const i = this.#registrations.indexOf(reg);
    if (i < 0) throw new VfioError(RuleCode.NOT_REGISTERED, `${reg.description} is not live in the ${this.description}`);
    const user = this.mappings.find((m) => m.buffer === reg.buffer && overlaps(BigInt(m.offset), m.size, BigInt(reg.offset), BigInt(reg.size)));
    if (user) throw new VfioError(RuleCode.BUFFER_IN_USE, `${reg.description} is still used by the ${user.description}; unmap it first`);
    try {
      this.container.spaprUnregisterMemory(reg.buffer.handle(), reg.offset, reg.size);
    } catch (e) {
      rethrow(e, `unregistering ${reg.description}`);
    }
    this.#registrations.splice(i, 1);
    reg.buffer.removeUser(reg);
  }

  /**
   * v2: VFIO_IOMMU_SPAPR_TCE_CREATE of a dynamic window. The kernel chooses
   * where it starts (2^59 on pseries while the default window lives; 0 once
   * that was removed). Large windows are cheap to create but costly to remove
   * or clear: the kernel walks every TCE.
   */
  createWindow(options: { pageSize: number | bigint; size: number | bigint; levels?: number }): DmaWindow {
    const o = argOptions(options);
    const pageSize = argU64(optionField(o, 'pageSize', 'options.pageSize'), 'options.pageSize');
    const size = argU64(optionField(o, 'size', 'options.size'), 'options.size');
    const givenLevels = optionField(o, 'levels', 'options.levels');
    const levels = givenLevels === undefined ? 1 : argInt(givenLevels, 'options.levels', 1, 0xffffffff);
    this.assertUsable();
    const ddw = this.#requireDdw();
    if (pageSize === 0n || (pageSize & (pageSize - 1n)) !== 0n || (ddw.pgsizes & pageSize) === 0n) {
      throw new VfioError(RuleCode.WINDOW_LIMIT, `${this.description}: page size ${hex(pageSize)} is not one the IOMMU offers (${pageSizeList(ddw.pgsizes)})`);
    }
    if (size < pageSize || (size & (size - 1n)) !== 0n) {
      throw new VfioError(RuleCode.BAD_RANGE, `${this.description}: a window's size must be a power of two of at least its page size ${hex(pageSize)}, got ${hex(size)}`);
    }
    if (levels > ddw.levels) {
      throw new VfioError(RuleCode.WINDOW_LIMIT, `${this.description}: a TCE table has 1..${ddw.levels} levels here, got ${levels}`);
    }
    if (this.#windows.length >= ddw.maxDynamicWindowsSupported) {
      throw new VfioError(
        RuleCode.WINDOW_LIMIT,
        `${this.description}: ${this.#windows.length} windows are live and the IOMMU allows ${ddw.maxDynamicWindowsSupported} (the default window counts); remove one first (removeWindow)`,
      );
    }
    let start: bigint;
    try {
      start = this.container.spaprCreateWindow(log2(pageSize), size, levels);
    } catch (e) {
      rethrow(e, `${this.description}: creating a ${hex(size)}-byte window of ${hex(pageSize)}-byte pages`);
    }
    const w = new DmaWindow(start, size, pageSize, false);
    this.#windows = [...this.#windows, w].sort((a, b) => (a.start < b.start ? -1 : 1));
    return w;
  }

  /**
   * v2: VFIO_IOMMU_SPAPR_TCE_REMOVE (the default window too). Refused while
   * mappings live in the window: the kernel would drop them silently.
   */
  removeWindow(window: DmaWindow): void {
    argInstance(window, 'window', DmaWindow);
    this.assertUsable();
    this.#requireDdw();
    if (!this.#windows.includes(window)) throw new VfioError(RuleCode.NO_MAPPING, `${window.description} is not a live window of the ${this.description}`);
    const user = this.mappings.find((m) => overlaps(m.iova, m.size, window.start, window.size));
    if (user) throw new VfioError(RuleCode.BUFFER_IN_USE, `${window.description} still holds the ${user.description}; unmap it first`);
    this.assertIdle(`remove the ${window.description}`);
    try {
      this.container.spaprRemoveWindow(window.start);
    } catch (e) {
      rethrow(e, `${this.description}: removing the ${window.description}`);
    }
    this.#windows = this.#windows.filter((w) => w !== window);
    this.#uncleared = this.#uncleared.filter((w) => w !== window);
  }

  /** Does the kernel offer EEH for this container (VFIO_CHECK_EXTENSION(VFIO_EEH))? */
  get eehSupported(): boolean {
    try {
      return this.container.checkExtension(native().constants.VFIO_EEH) > 0;
    } catch {
      return false;
    }
  }

  /** VFIO_EEH_PE_OP (op: VFIO_EEH_PE_*); returns the kernel's result (a state for GET_STATE). */
  eehPeOp(op: number): number {
    argInt(op, 'op', 0, 0xffffffff);
    this.assertUsable();
    if (!this.eehSupported) throw new VfioError(RuleCode.IOMMU_UNSUPPORTED, `${this.description}: the kernel offers no EEH for this container (VFIO_EEH)`);
    try {
      return this.container.eehPeOp(op);
    } catch (e) {
      rethrow(e, `${this.description}: EEH operation ${op}`);
    }
  }

  // The checks after the generic ones (buffer range, IOMMU page alignment),
  // in this order: one window, its page size, the memory's page size, registration.
  protected checkMap(r: MapRequest): void {
    const buffer = ownMemory(r.buffer, this.description);
    const w = this.#windows.find((x) => x.contains(r.iova, r.size));
    if (!w) {
      const partly = this.#windows.find((x) => overlaps(r.iova, r.size, x.start, x.size));
      if (partly) {
        throw new VfioError(
          RuleCode.IOVA_OUT_OF_RANGE,
          `${this.description}: iova ${hex(r.iova)}-${hex(r.iova + r.size - 1n)} straddles the edge of the ${partly.description}; a map must lie wholly inside one window`,
        );
      }
      this.checkInsideWindows(r.iova, r.size, 'DMA window');
      return;
    }
    for (const [what, v] of [['iova', r.iova], ['buffer offset', BigInt(r.offset)], ['size', r.size]] as const) {
      if (!isAligned(v, w.pageSize)) {
        throw new VfioError(
          RuleCode.MISALIGNED,
          `${this.description}: ${what} ${hex(v)} is not a multiple of the page size of the ${w.description}; round it to ${hex(w.pageSize)}`,
        );
      }
    }
    if (w.pageSize > BigInt(buffer.pageSize)) {
      throw new VfioError(
        RuleCode.PAGE_SIZE_MISMATCH,
        `${this.description}: the ${w.description} needs memory backed by pages of at least ${hex(w.pageSize)} bytes (one TCE maps one such page), ` +
          `but ${buffer.description} is backed by ${hex(buffer.pageSize)}-byte pages (the kernel would say EINVAL); ` +
          `back the buffer with huge pages (DmaBuffer.allocate(size, { hugePageSize })) or map it through a window of ${hex(buffer.pageSize)}-byte pages`,
      );
    }
    if (this.kind === 'spapr-v2') {
      const covered = this.#registrations.some((g) => g.buffer === r.buffer && r.offset >= g.offset && BigInt(r.offset) + r.size <= BigInt(g.offset + g.size));
      if (!covered) {
        throw new VfioError(
          RuleCode.NOT_REGISTERED,
          `${this.description}: ${r.buffer.description} at ${hex(r.offset)}+${hex(r.size)} is not pre-registered, and v2 maps only registered memory; call iommu.register(buffer) first`,
        );
      }
    }
  }

  // checkMap let only DmaBuffers through.
  protected issueMap(m: DmaMapping): void {
    this.container.mapDma((m.buffer as DmaBuffer).handle(), m.offset, Number(m.size), m.iova, this.mapFlags(m));
  }

  protected issueMapAsync(m: DmaMapping): Promise<void> {
    return this.container.mapDmaAsync((m.buffer as DmaBuffer).handle(), m.offset, Number(m.size), m.iova, this.mapFlags(m));
  }

  // sPAPR echoes the requested size, mapped or not: the books here are
  // what says a range was mapped.
  protected issueUnmap(iova: bigint, size: bigint): bigint {
    return this.container.unmapDma(iova, size, 0);
  }

  protected issueUnmapAsync(iova: bigint, size: bigint): Promise<bigint> {
    return this.container.unmapDmaAsync(iova, size, 0);
  }

  protected override mapHint(code: string, m: DmaMapping): string | undefined {
    if (code === 'EINVAL' && this.kind === 'spapr-v2') return 'v2 maps only pre-registered memory, at the window page size';
    if (code === 'ENXIO') return `iova ${hex(m.iova)} is outside the DMA windows`;
    return undefined;
  }

  /** @internal Unregisters too: the context is about to go. */
  override releaseAll(): void {
    super.releaseAll();
    for (const reg of [...this.#registrations]) this.unregister(reg);
  }

  #requireV2(what: string, why: string): void {
    if (this.kind !== 'spapr-v2') {
      throw new VfioError(RuleCode.IOMMU_UNSUPPORTED, `${this.description}: only the spapr-v2 IOMMU ${what} (${why}); ask for container.setIommu('spapr-v2')`);
    }
  }

  #requireDdw(): NonNullable<SpaprInfoRaw['ddw']> {
    this.#requireV2('has dynamic DMA windows', 'v1 has only the default window');
    const ddw = this.info.ddw;
    if (!ddw) throw new VfioError(RuleCode.IOMMU_UNSUPPORTED, `${this.description}: the kernel reports no dynamic DMA window support (VFIO_IOMMU_SPAPR_INFO_DDW)`);
    return ddw;
  }

  /** Unmap every window not cleared yet, whole. */
  #clearWindows(): void {
    while (this.#uncleared.length > 0) {
      const w = this.#uncleared[0];
      try {
        this.container.unmapDma(w.start, w.size, 0);
      } catch (e) {
        rethrow(e, `${this.description}: clearing the ${w.description} of a previous owner's TCEs`);
      }
      this.#uncleared.shift();
    }
  }
}

function log2(v: bigint): number {
  return v.toString(2).length - 1;
}

function pageSizeList(bitmap: bigint): string {
  const sizes: string[] = [];
  for (let bit = 0n; bit < 64n; bit++) if (bitmap & (1n << bit)) sizes.push(hex(1n << bit));
  return `bitmap ${hex(bitmap)}: ${sizes.join(', ')}`;
}

/** sPAPR maps only memory of ours: a TCE needs a struct page behind it (no peer-to-peer through a BAR mmap). */
function ownMemory(source: DmaSource, where: string): DmaBuffer {
  if (DmaBuffer.isBuffer(source)) return source;
  throw new VfioError(RuleCode.UNSUPPORTED, `${where}: ${source.description} is a BAR mmap; the sPAPR TCE IOMMU maps only DmaBuffers (no peer-to-peer DMA)`);
}
