// The type1 IOMMU (x86, ARM): any IOVA in the reported ranges, any page size
// in iova_pgsizes; overlapping maps fail with EEXIST, so we refuse them first.

import { DmaBuffer } from './dma-buffer';
import type { DmaMapping } from './dma-mapping';
import { RuleCode, VfioError, rethrow } from './errors';
import { hex, IOVA_LIMIT, smallestPage } from './iova';
import type { Container } from './container';
import { Iommu, type MapRequest } from './iommu';
import { native, type NativeContainer, type Type1InfoRaw } from './native';

/** VFIO_IOMMU_GET_INFO of a type1 IOMMU: page sizes, usable IOVA ranges, DMA mapping limit. */
export interface Type1Info {
  flags: number;
  /** Bitmap of the page sizes the IOMMU can map. */
  pageSizes: bigint;
  /** Usable IOVA ranges (inclusive ends); the whole 64-bit space when the kernel reports none. */
  iovaRanges: { start: bigint; end: bigint }[];
  /** Mappings the container may still create (VFIO_IOMMU_TYPE1_INFO_DMA_AVAIL), null if not reported. */
  dmaAvail: number | null;
  migration: Type1InfoRaw['migration'];
}

/** The type1 IOMMU (x86 VT-d/AMD-Vi, arm64 SMMU): any IOVA inside the reported ranges. */
export class Type1Iommu extends Iommu {
  readonly kind: 'type1' | 'type1v2';
  protected readonly container: NativeContainer;
  readonly pageSize: bigint;
  #ranges: { start: bigint; end: bigint }[];
  /** Most live mappings the kernel will allow (DMA-avail at setup), null if unknown. */
  readonly maxMappings: number | null;
  readonly #unmapAll: boolean;

  /** @internal Created by Container.setIommu(). */
  constructor(owner: Container, container: NativeContainer, kind: 'type1' | 'type1v2') {
    super(owner);
    this.container = container;
    this.kind = kind;
    const info = this.info();
    this.pageSize = smallestPage(info.pageSizes);
    if (this.pageSize === 0n) {
      throw new VfioError(RuleCode.BOOKKEEPING, `${owner.description}: the kernel reported no IOMMU page sizes`);
    }
    this.#ranges = info.iovaRanges;
    this.maxMappings = info.dmaAvail;
    this.#unmapAll = safeCheck(container, native().constants.VFIO_UNMAP_ALL);
  }

  /** VFIO_IOMMU_GET_INFO, asked afresh. */
  info(): Type1Info {
    let raw: Type1InfoRaw;
    try {
      raw = this.container.type1GetInfo();
    } catch (e) {
      rethrow(e, `reading the ${this.kind} IOMMU info`);
    }
    return {
      flags: raw.flags,
      pageSizes: raw.iovaPgsizes,
      iovaRanges: raw.iovaRanges && raw.iovaRanges.length > 0 ? raw.iovaRanges : [{ start: 0n, end: IOVA_LIMIT - 1n }],
      dmaAvail: raw.dmaAvail,
      migration: raw.migration,
    };
  }

  windows(): { start: bigint; end: bigint }[] {
    return this.#ranges;
  }

  /**
   * @internal A device of the container opened. On the iommufd compat
   * container (/dev/iommu) the IOVA ranges narrow only now: the device joins
   * the IOAS at open, not at SET_CONTAINER (legacy type1 answers the same
   * ranges again).
   */
  override deviceOpened(): void {
    this.#ranges = this.info().iovaRanges;
  }

  protected checkMap(r: MapRequest): void {
    this.checkInsideWindows(r.iova, r.size, 'IOVA range');
  }

  protected override checkLimit(live: number): void {
    if (this.maxMappings !== null && live >= this.maxMappings) {
      throw new VfioError(
        RuleCode.DMA_LIMIT,
        `${this.description}: ${live} mappings are live and the kernel allows ${this.maxMappings} per container ` +
          `(vfio_iommu_type1 dma_entry_limit); map fewer, larger buffers, or raise the module parameter`,
      );
    }
  }

  protected issueMap(m: DmaMapping): void {
    const b = m.buffer;
    if (DmaBuffer.isBuffer(b)) this.container.mapDma(b.handle(), m.offset, Number(m.size), m.iova, this.mapFlags(m));
    else this.container.mapDmaRegion(b.handle(), m.offset, Number(m.size), m.iova, this.mapFlags(m));
  }

  // A BAR has no pages to pin: its map is quick and stays on this thread.
  protected issueMapAsync(m: DmaMapping): Promise<void> {
    const b = m.buffer;
    if (!DmaBuffer.isBuffer(b)) return new Promise((resolve) => resolve(this.issueMap(m)));
    return this.container.mapDmaAsync(b.handle(), m.offset, Number(m.size), m.iova, this.mapFlags(m));
  }

  protected issueUnmap(iova: bigint, size: bigint): bigint {
    return this.container.unmapDma(iova, size, 0);
  }

  protected issueUnmapAsync(iova: bigint, size: bigint): Promise<bigint> {
    return this.container.unmapDmaAsync(iova, size, 0);
  }

  protected override issueUnmapAll(all: DmaMapping[]): bigint {
    if (!this.#unmapAll) return super.issueUnmapAll(all);
    return this.container.unmapDma(0n, 0n, native().constants.VFIO_DMA_UNMAP_FLAG_ALL);
  }

  protected override mapHint(code: string, m: DmaMapping): string | undefined {
    if (code === 'ENOSPC') return `the container hit the kernel's DMA entry limit (vfio_iommu_type1 dma_entry_limit)`;
    if (code === 'EINVAL') return `check that iova ${hex(m.iova)} and the size are aligned to the IOMMU page size and inside its IOVA ranges`;
    return undefined;
  }
}

function safeCheck(container: NativeContainer, extension: number | undefined): boolean {
  if (extension === undefined) return false;
  try {
    return container.checkExtension(extension) > 0;
  } catch {
    return false;
  }
}
