// One live IOMMU mapping: iova..iova+size → buffer[offset..offset+size).
// While it lives, the buffer (or the BAR mmap, for peer-to-peer DMA) cannot be freed.

import type { DmaBuffer } from './dma-buffer';
import { hex } from './iova';
import type { Iommu } from './iommu';
import type { RegionMapping } from './region';
import { Resource } from './resource';

/**
 * What a DMA mapping maps: memory of ours, or another device's BAR mmap
 * (peer-to-peer: this IOMMU's devices then reach that device's registers).
 */
export type DmaSource = DmaBuffer | RegionMapping;

/** A validated map request (Iommu's #reserve builds it). */
export interface DmaMappingInit {
  buffer: DmaSource;
  offset: number;
  iova: bigint;
  size: bigint;
  readable: boolean;
  writable: boolean;
}

/** One live IOMMU mapping of a buffer (or BAR mapping) at an IOVA; unmapped by `unmap()` or `close()`. */
export class DmaMapping extends Resource {
  readonly iommu: Iommu;
  /** The memory mapped: a DmaBuffer, or a BAR mmap (RegionMapping) for peer-to-peer DMA. */
  readonly buffer: DmaSource;
  /** Offset of the mapped range inside the buffer. */
  readonly offset: number;
  /** Device address; -1n only while a map the kernel places is in flight. */
  readonly iova: bigint;
  readonly size: bigint;
  /** The device may read the memory (VFIO_DMA_MAP_FLAG_READ). */
  readonly readable: boolean;
  /** The device may write the memory (VFIO_DMA_MAP_FLAG_WRITE). */
  readonly writable: boolean;

  // Its brand, for a check that no Proxy trap can see (isMapping).
  readonly #brand = true;
  /** @internal Its place in its buffer's list of users (DmaBuffer.addUser). */
  bufferSlot = -1;

  /** @internal Is `value` a DmaMapping? A brand check: never runs a caller's code. */
  static isMapping(value: unknown): value is DmaMapping {
    return typeof value === 'object' && value !== null && #brand in value;
  }

  /** @internal Created by an Iommu only. */
  constructor(iommu: Iommu, init: DmaMappingInit) {
    super();
    this.iommu = iommu;
    this.buffer = init.buffer;
    this.offset = init.offset;
    this.iova = init.iova;
    this.size = init.size;
    this.readable = init.readable;
    this.writable = init.writable;
  }

  // Built on demand: maps are a hot path, messages are not.
  get description(): string {
    return this.iova < 0n ? `DMA mapping of ${hex(this.size)} bytes (iova not placed yet)` : `DMA mapping at iova ${hex(this.iova)} (${hex(this.size)} bytes)`;
  }

  /** @internal The kernel placed it (an IOAS map without an IOVA). */
  placeAt(iova: bigint): void {
    (this as { iova: bigint }).iova = iova;
  }

  /** One past the last IOVA. */
  get end(): bigint {
    return this.iova + this.size;
  }

  /** Unmap it (the same as close()). */
  unmap(): void {
    this.close();
  }

  /** Unmap on the libuv thread pool. */
  async unmapAsync(): Promise<void> {
    if (this.closed) return;
    await this.iommu.unmapAsync(this);
  }

  // Marked closed by the IOMMU once the kernel has unmapped it; a failed
  // unmap leaves it live (and its buffer in use), as the kernel does.
  protected override release(): void {
    this.iommu.unmapMapping(this);
  }

  /** @internal The IOMMU has unmapped it (or its container closed). */
  markUnmapped(): void {
    this.buffer.removeUser(this);
    this.markClosed();
  }
}
