// The sPAPR TCE IOMMU (POWER): DMA windows backed by TCE tables instead of
// one flat IOVA space. The kernel is unforgiving here (a map straddling a
// window's end has oopsed 6.12 in v2; a misaligned IOVA returned +1), so
// every map is checked against one window and its page size first.

import type { DmaBuffer, BufferUser } from './dma-buffer';
import type { DmaMapping } from './dma-mapping';
import { RuleCode, VfioError, rethrow } from './errors';
import { hex, isAligned, toSafeSize, toU64 } from './iova';
import { Iommu, type IommuOwner, type MapRequest } from './iommu';
import { memlockHint } from './hints';
import type { NativeContainer, SpaprInfoRaw } from './native';

export interface SpaprOptions {
  /** Page size of the default 32-bit window's TCEs (default 4 KiB). */
  dma32PageSize?: number;
}

export interface SpaprInfo {
  flags: number;
  dma32WindowStart: bigint;
  dma32WindowSize: bigint;
  ddw: SpaprInfoRaw['ddw'];
}

/** A DMA window: [start, start+size) mapped with TCEs of pageSize. */
export class DmaWindow {
  constructor(
    readonly start: bigint,
    readonly size: bigint,
    readonly pageSize: bigint,
    /** The default 32-bit window (not created by us). */
    readonly isDefault: boolean,
  ) {}

  get end(): bigint {
    return this.start + this.size - 1n;
  }

  contains(iova: bigint, size: bigint): boolean {
    return iova >= this.start && iova + size - 1n <= this.end;
  }

  get description(): string {
    return `DMA window ${hex(this.start)}+${hex(this.size)} (${hex(this.pageSize)}-byte pages)`;
  }
}

/** A pre-registered buffer range (v2: VFIO_IOMMU_SPAPR_REGISTER_MEMORY). */
export class MemoryRegistration implements BufferUser {
  constructor(
    readonly buffer: DmaBuffer,
    readonly offset: number,
    readonly size: number,
  ) {}
  get description(): string {
    return `sPAPR registration of ${this.buffer.description} at ${hex(this.offset)}+${hex(this.size)}`;
  }
}

export class SpaprTceIommu extends Iommu {
  readonly kind: 'spapr' | 'spapr-v2';
  readonly pageSize: bigint;
  readonly info: SpaprInfo;
  #windows: DmaWindow[];
  readonly #registrations: MemoryRegistration[] = [];

  /** @internal Created by Container.setIommu(). */
  constructor(owner: IommuOwner, container: NativeContainer, kind: 'spapr' | 'spapr-v2', options: SpaprOptions = {}) {
    super(owner, container);
    this.kind = kind;
    try {
      this.info = container.spaprGetInfo();
      // v1 needs the TCE table enabled; v2 manages it itself.
      if (kind === 'spapr') container.enable();
    } catch (e) {
      rethrow(e, `setting up the ${kind} IOMMU`);
    }
    const dma32Page = BigInt(options.dma32PageSize ?? 4096);
    this.pageSize = dma32Page;
    this.#windows = [new DmaWindow(this.info.dma32WindowStart, this.info.dma32WindowSize, dma32Page, true)];
    // A fresh owner must never inherit a previous owner's TCEs.
    for (const w of this.#windows) this.#clear(w);
  }

  windows(): { start: bigint; end: bigint }[] {
    return this.#windows.map((w) => ({ start: w.start, end: w.end }));
  }

  get dmaWindows(): readonly DmaWindow[] {
    return [...this.#windows];
  }

  get registrations(): readonly MemoryRegistration[] {
    return [...this.#registrations];
  }

  /** v2: VFIO_IOMMU_SPAPR_REGISTER_MEMORY (pins the memory; maps must lie inside a registration). */
  register(buffer: DmaBuffer, options: { offset?: number; size?: number } = {}): MemoryRegistration {
    const offset = toSafeSize(options.offset ?? 0, 'offset');
    const size = toSafeSize(options.size ?? buffer.size - offset, 'size');
    buffer.checkRange(offset, size);
    if (size === 0 || offset % buffer.pageSize !== 0 || size % buffer.pageSize !== 0) {
      throw new VfioError(RuleCode.MISALIGNED, `${buffer.description}: register offset and size must be non-zero multiples of its page size ${hex(buffer.pageSize)}`);
    }
    try {
      this.container.spaprRegisterMemory(buffer.handle(), offset, size);
    } catch (e) {
      rethrow(e, `registering ${buffer.description} with the ${this.description}`, (code) => (code === 'ENOMEM' ? memlockHint(BigInt(size)) : undefined));
    }
    const reg = new MemoryRegistration(buffer, offset, size);
    this.#registrations.push(reg);
    buffer.addUser(reg);
    return reg;
  }

  /** VFIO_IOMMU_SPAPR_UNREGISTER_MEMORY; refused while a mapping uses the range. */
  unregister(reg: MemoryRegistration): void {
    const i = this.#registrations.indexOf(reg);
    if (i < 0) throw new VfioError(RuleCode.NOT_REGISTERED, `${reg.description} is not live`);
    const user = this.mappings.find((m) => m.buffer === reg.buffer && m.offset < reg.offset + reg.size && reg.offset < m.offset + Number(m.size));
    if (user) throw new VfioError(RuleCode.BUFFER_IN_USE, `${reg.description} is still used by the ${user.description}; unmap it first`);
    try {
      this.container.spaprUnregisterMemory(reg.buffer.handle(), reg.offset, reg.size);
    } catch (e) {
      rethrow(e, `unregistering ${reg.description}`);
    }
    this.#registrations.splice(i, 1);
    reg.buffer.removeUser(reg);
  }

  /** v2: VFIO_IOMMU_SPAPR_TCE_CREATE of a dynamic window. */
  createWindow(options: { pageSize: number | bigint; size: number | bigint; levels?: number }): DmaWindow {
    const pageSize = toU64(options.pageSize, 'pageSize');
    const size = toU64(options.size, 'size');
    const ddw = this.info.ddw;
    if (this.kind !== 'spapr-v2' || !ddw) {
      throw new VfioError(RuleCode.IOMMU_UNSUPPORTED, `${this.description}: dynamic DMA windows need the sPAPR v2 IOMMU with DDW support`);
    }
    if (pageSize === 0n || (pageSize & (pageSize - 1n)) !== 0n || (ddw.pgsizes & pageSize) === 0n) {
      throw new VfioError(RuleCode.INVALID_ARG, `${this.description}: page size ${hex(pageSize)} is not one the IOMMU supports (bitmap ${hex(ddw.pgsizes)})`);
    }
    if (size === 0n || !isAligned(size, pageSize)) {
      throw new VfioError(RuleCode.MISALIGNED, `${this.description}: window size ${hex(size)} must be a non-zero multiple of its page size ${hex(pageSize)}`);
    }
    const levels = options.levels ?? 1;
    let start: bigint;
    try {
      start = this.container.spaprCreateWindow(log2(pageSize), size, levels);
    } catch (e) {
      rethrow(e, `${this.description}: creating a ${hex(size)}-byte window of ${hex(pageSize)}-byte pages`);
    }
    const w = new DmaWindow(start, size, pageSize, false);
    this.#windows.push(w);
    return w;
  }

  /** VFIO_IOMMU_SPAPR_TCE_REMOVE; refused while mappings live in the window. */
  removeWindow(window: DmaWindow): void {
    if (!this.#windows.includes(window)) throw new VfioError(RuleCode.NO_MAPPING, `${window.description} is not a live window`);
    const user = this.mappings.find((m) => window.contains(m.iova, m.size));
    if (user) throw new VfioError(RuleCode.BUFFER_IN_USE, `${window.description} still holds the ${user.description}; unmap it first`);
    try {
      this.container.spaprRemoveWindow(window.start);
    } catch (e) {
      rethrow(e, `${this.description}: removing ${window.description}`);
    }
    this.#windows = this.#windows.filter((w) => w !== window);
  }

  protected checkMap(r: MapRequest): void {
    const window = this.#windows.find((w) => w.contains(r.iova, r.size));
    if (!window) this.checkInsideWindows(r.iova, r.size, 'DMA window');
    const w = window as DmaWindow;
    if (!isAligned(r.iova, w.pageSize) || !isAligned(r.size, w.pageSize) || !isAligned(BigInt(r.offset), w.pageSize)) {
      throw new VfioError(RuleCode.MISALIGNED, `${this.description}: iova ${hex(r.iova)}, offset and size must be multiples of the page size of the ${w.description}`);
    }
    if (w.pageSize > BigInt(r.buffer.pageSize)) {
      throw new VfioError(
        RuleCode.PAGE_SIZE_MISMATCH,
        `${this.description}: the ${w.description} maps ${hex(w.pageSize)}-byte pages but ${r.buffer.description} is backed by ${hex(r.buffer.pageSize)}-byte pages; ` +
          `back the buffer with huge pages of at least the window's page size, or map it through a window with smaller pages`,
      );
    }
    if (this.kind === 'spapr-v2') {
      const covered = this.#registrations.some((g) => g.buffer === r.buffer && r.offset >= g.offset && r.offset + Number(r.size) <= g.offset + g.size);
      if (!covered) {
        throw new VfioError(RuleCode.NOT_REGISTERED, `${this.description}: ${r.buffer.description} at ${hex(r.offset)}+${hex(r.size)} is not pre-registered; call iommu.register(buffer) first`);
      }
    }
  }

  protected issueMap(m: DmaMapping): void {
    this.container.mapDma(m.buffer.handle(), m.offset, Number(m.size), m.iova, this.mapFlags(m));
  }

  protected issueMapAsync(m: DmaMapping): Promise<void> {
    return this.container.mapDmaAsync(m.buffer.handle(), m.offset, Number(m.size), m.iova, this.mapFlags(m));
  }

  // sPAPR does not report the unmapped size back; we only ever unmap whole mappings.
  protected issueUnmap(iova: bigint, size: bigint): bigint {
    this.container.unmapDma(iova, size, 0);
    return size;
  }

  protected async issueUnmapAsync(iova: bigint, size: bigint): Promise<bigint> {
    await this.container.unmapDmaAsync(iova, size, 0);
    return size;
  }

  protected override mapHint(code: string, m: DmaMapping): string | undefined {
    if (code === 'EINVAL' && this.kind === 'spapr-v2') return 'v2 maps only pre-registered memory, at the window page size';
    if (code === 'ENXIO') return `iova ${hex(m.iova)} is outside the DMA windows`;
    return undefined;
  }

  override release(): void {
    super.release();
    for (const reg of [...this.#registrations]) this.unregister(reg);
  }

  #clear(w: DmaWindow): void {
    try {
      this.container.unmapDma(w.start, w.size, 0);
    } catch (e) {
      rethrow(e, `${this.description}: clearing the ${w.description} of a previous owner's TCEs`);
    }
  }
}

function log2(v: bigint): number {
  let n = 0;
  while (v > 1n) {
    v >>= 1n;
    n++;
  }
  return n;
}
