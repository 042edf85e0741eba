// An iommufd IO address space (IOMMU_IOAS_ALLOC): the iommufd counterpart of
// a container's type1 IOMMU. The same books and rule checks (lib/iommu.ts);
// what differs is where the rules come from: the allowed IOVA ranges and the
// alignment are the IOAS's own (IOMMU_IOAS_IOVA_RANGES), they narrow as
// devices attach, and without an IOVA the kernel places the mapping itself.

import { argArray, argOptions, argU64, optionField, valueError } from './args';
import { DmaBuffer } from './dma-buffer';
import type { DmaMapping, DmaSource } from './dma-mapping';
import { RuleCode, VfioError, rethrow } from './errors';
import { hex, IOVA_LIMIT } from './iova';
import { Iommu, UNPLACED, type MapRequest } from './iommu';
import type { IommuFd } from './iommufd';
import { native, type NativeIommufd } from './native';
import type { Device } from './device';

/** An IOVA range with an inclusive end, as IOMMU_IOAS_IOVA_RANGES reports them. */
export interface IovaWindow {
  start: bigint;
  end: bigint;
}

/** IOMMU_IOAS_IOVA_RANGES: where mappings may go, and how IOVAs must be aligned. */
export interface IoasRanges {
  /** Every IOVA and length must be a multiple of it (at most the page size). */
  alignment: bigint;
  /** Allowed IOVA ranges, inclusive ends, sorted. */
  ranges: IovaWindow[];
}

/** An iommufd IO address space (IOAS): maps memory for the devices attached to it. Created by {@link IommuFd.allocIoas}. */
export class Ioas extends Iommu {
  readonly kind = 'ioas' as const;
  /** Its object id inside the iommufd. */
  readonly id: number;
  readonly iommufd: IommuFd;
  /** IOVAs and lengths are multiples of the host page: the kernel's alignment never exceeds it, and pinning is per page. */
  readonly pageSize: bigint;
  readonly #native: NativeIommufd;
  readonly #devices: Device[] = [];
  #windows: IovaWindow[];
  #destroyed = false;

  /** @internal IommuFd.allocIoas() */
  constructor(owner: IommuFd, handle: NativeIommufd, id: number) {
    super(owner);
    this.iommufd = owner;
    this.#native = handle;
    this.id = id;
    this.pageSize = BigInt(native().pageSize);
    this.#windows = this.iovaRanges().ranges;
  }

  override get description(): string {
    return `IOAS ${this.id} of ${this.iommufd.description}`;
  }

  override get closed(): boolean {
    return this.#destroyed || super.closed;
  }

  /** Devices attached to it: their DMA goes through it. */
  get devices(): readonly Device[] {
    return [...this.#devices];
  }

  /** IOMMU_IOAS_IOVA_RANGES, asked afresh: the ranges narrow as devices attach (reserved regions, the MSI window). */
  iovaRanges(): IoasRanges {
    this.assertUsable();
    let raw;
    try {
      raw = this.#native.ioasIovaRanges(this.id);
    } catch (e) {
      rethrow(e, `${this.description}: reading its IOVA ranges`);
    }
    return { alignment: raw.alignment, ranges: raw.ranges };
  }

  /**
   * IOMMU_IOAS_ALLOW_IOVAS: keep these ranges usable. A device whose
   * reserved regions would cut into them cannot attach afterwards (the
   * kernel refuses the attach), and the kernel places mappings only inside
   * them. An empty list lifts the restriction.
   */
  allowIovas(ranges: readonly IovaWindow[]): void {
    const list = argArray(ranges, 'ranges', 0x10000).map((r, i) => {
      const o = argOptions(r, `ranges[${i}]`);
      const start = argU64(optionField(o, 'start', `ranges[${i}].start`), `ranges[${i}].start`);
      const end = argU64(optionField(o, 'end', `ranges[${i}].end`), `ranges[${i}].end`);
      if (end < start) throw valueError(`ranges[${i}]`, 'must end at or after its start', r);
      return { start, end };
    });
    this.assertUsable();
    const pairs = new BigUint64Array(list.length * 2);
    list.forEach((r, i) => {
      pairs[2 * i] = r.start;
      pairs[2 * i + 1] = r.end;
    });
    try {
      this.#native.ioasAllowIovas(this.id, pairs);
    } catch (e) {
      rethrow(e, `${this.description}: allowing IOVA ranges`, (code) =>
        code === 'EINVAL' ? 'the ranges must lie inside the IOAS ranges the attached devices allow (ioas.iovaRanges())' : undefined,
      );
    }
  }

  windows(): IovaWindow[] {
    return this.#windows;
  }

  /** Closes the IOAS (IOMMU_DESTROY), after unmapping what it maps; refused while a device is attached. */
  destroy(): void {
    if (this.#destroyed || this.iommufd.closed) return;
    this.iommufd.destroyIoas(this);
  }

  /** The same as destroy(). */
  close(): void {
    this.destroy();
  }

  /** destroy(), for `using`. */
  [Symbol.dispose](): void {
    this.destroy();
  }

  // --- model hooks --------------------------------------------------------

  protected override kernelPlacesIova(): boolean {
    return true;
  }

  // iommufd pins user memory; a BAR has none (peer-to-peer over iommufd needs a dma-buf).
  protected override checkSource(source: DmaSource): void {
    if (!DmaBuffer.isBuffer(source)) {
      throw new VfioError(
        RuleCode.UNSUPPORTED,
        `${this.description}: an IOAS maps process memory only, not ${source.description}; map the BAR for peer-to-peer DMA through a type1 container`,
      );
    }
  }

  protected checkMap(r: MapRequest): void {
    this.checkInsideWindows(r.iova, r.size, 'allowed IOVA range');
  }

  protected issueMap(m: DmaMapping): void {
    const iova = this.#native.ioasMap(this.id, (m.buffer as DmaBuffer).handle(), m.offset, Number(m.size), this.#iovaArg(m), this.mapFlags(m));
    if (m.iova === UNPLACED) m.placeAt(iova);
  }

  protected async issueMapAsync(m: DmaMapping): Promise<void> {
    const iova = await this.#native.ioasMapAsync(this.id, (m.buffer as DmaBuffer).handle(), m.offset, Number(m.size), this.#iovaArg(m), this.mapFlags(m));
    if (m.iova === UNPLACED) m.placeAt(iova);
  }

  protected issueUnmap(iova: bigint, size: bigint): bigint {
    return this.#native.ioasUnmap(this.id, iova, size);
  }

  protected issueUnmapAsync(iova: bigint, size: bigint): Promise<bigint> {
    return this.#native.ioasUnmapAsync(this.id, iova, size);
  }

  // IOVA 0 with the largest length unmaps everything in one ioctl.
  protected override issueUnmapAll(): bigint {
    return this.#native.ioasUnmap(this.id, 0n, IOVA_LIMIT - 1n);
  }

  protected override mapFlags(m: DmaMapping): number {
    const c = native().constants;
    return (
      (m.iova === UNPLACED ? 0 : c.IOMMU_IOAS_MAP_FIXED_IOVA) |
      (m.readable ? c.IOMMU_IOAS_MAP_READABLE : 0) |
      (m.writable ? c.IOMMU_IOAS_MAP_WRITEABLE : 0)
    );
  }

  protected override mapHint(code: string, m: DmaMapping): string | undefined {
    if (code === 'EEXIST') return `iova ${hex(m.iova)} overlaps a mapping the kernel holds`;
    if (code === 'ENOSPC') return 'the IOAS has no free IOVA range that large (ioas.iovaRanges())';
    return undefined;
  }

  #iovaArg(m: DmaMapping): bigint {
    return m.iova === UNPLACED ? 0n : m.iova;
  }

  // --- the iommufd's and the devices' side ---------------------------------

  /** @internal Device.attach(): the kernel attached it; the ranges may have narrowed. */
  deviceAttached(device: Device): void {
    if (!this.#devices.includes(device)) this.#devices.push(device);
    this.#refreshWindows();
  }

  /** @internal Device.detach() or its close: the ranges may widen again. */
  deviceDetached(device: Device): void {
    const i = this.#devices.indexOf(device);
    if (i < 0) return;
    this.#devices.splice(i, 1);
    if (!this.closed) this.#refreshWindows();
  }

  /** @internal teardown(), step 2: IOMMU_DESTROY once its mappings are gone; on failure nothing changed. */
  destroyNow(): void {
    if (this.#destroyed) return;
    try {
      this.#native.destroy(this.id);
    } catch (e) {
      rethrow(e, `${this.description}: destroying it`, (code) => (code === 'EBUSY' ? 'a device is still attached to it in the kernel' : undefined));
    }
    this.#destroyed = true;
    this.contextGone();
  }

  #refreshWindows(): void {
    this.#windows = this.iovaRanges().ranges;
  }
}

/** Throws unless `ioas` may be destroyed now: a refusal, before anything changes. */
export function assertIoasIdle(ioas: Ioas, verb: string, leaving: readonly Device[]): void {
  const staying = ioas.devices.filter((d) => !leaving.includes(d));
  if (staying.length > 0) {
    throw new VfioError(
      RuleCode.BUSY,
      `cannot ${verb} the ${ioas.description}: ${staying.map((d) => d.description).join(', ')} ${staying.length === 1 ? 'is' : 'are'} attached to it; detach or close ${staying.length === 1 ? 'it' : 'them'} first. Nothing was changed`,
    );
  }
  ioas.assertIdle(`${verb} the ${ioas.description}`);
}
