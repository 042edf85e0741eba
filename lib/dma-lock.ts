// A buffer locked for noiommu DMA (NoIommu.lock): its pages pinned in place
// (mlock) and the bus address of each, handed out only while it lives. It is
// one of the buffer's users, so the buffer cannot be freed meanwhile.

import { argSize, rangeError } from './args';
import type { BufferUser, DmaBuffer } from './dma-buffer';
import { RuleCode, VfioError } from './errors';
import { hex } from './iova';
import { native } from './native';
import type { NoIommu } from './noiommu';
import { Resource } from './resource';

/**
 * A buffer locked for noiommu DMA, with the bus (physical) address of each
 * of its pages. The addresses are valid only while the lock lives: after
 * unlock() (or the container's close) asking for one throws ERR_VFIO_CLOSED.
 */
export class DmaLock extends Resource implements BufferUser {
  readonly noIommu: NoIommu;
  readonly buffer: DmaBuffer;
  /** The granule of `pages`: the system page size (pagemap's), whatever pages back the buffer. */
  readonly pageSize: number;
  readonly #pages: readonly bigint[];
  /** @internal Its place in its buffer's list of users. */
  bufferSlot = -1;

  /** @internal Created by NoIommu.lock(). */
  constructor(noIommu: NoIommu, buffer: DmaBuffer, pages: bigint[]) {
    super();
    this.noIommu = noIommu;
    this.buffer = buffer;
    this.pageSize = native().pageSize;
    this.#pages = Object.freeze(pages);
  }

  get description(): string {
    return `noiommu lock of ${this.buffer.description}`;
  }

  /** The bus address of each page of the buffer, in order (pageSize apart in the buffer, anywhere in memory). */
  get pages(): readonly bigint[] {
    this.#assertLocked();
    return this.#pages;
  }

  /** The bus address of byte `offset` of the buffer: what the device is given. */
  busAddress(offset = 0): bigint {
    const at = argSize(offset, 'offset');
    if (at >= this.buffer.size) throw rangeError('offset', `< the buffer's size ${this.buffer.size}`, offset);
    this.#assertLocked();
    return this.#pages[Math.floor(at / this.pageSize)] + BigInt(at % this.pageSize);
  }

  /**
   * The bus address of [offset, offset + length) for one DMA, refused
   * (ERR_VFIO_NOT_CONTIGUOUS) unless those bytes are contiguous in physical
   * memory too: a device given one address walks physical memory, not the
   * buffer's pages. Use segments() to build a scatter-gather list instead.
   */
  busRange(offset: number, length: number): bigint {
    const [at, n] = this.#range(offset, length);
    const pieces = this.#segments(at, n);
    if (pieces.length > 1) {
      throw new VfioError(
        RuleCode.NOT_CONTIGUOUS,
        `${this.description}: bytes ${hex(at)}+${hex(n)} are not contiguous in physical memory (the page at buffer offset ${hex(pieces[1].offset)} is at ${hex(pieces[1].busAddress)}, ` +
          `not right after the one before it); DMA them in pieces (lock.segments(offset, length)) or keep a DMA inside one page`,
      );
    }
    return pieces[0].busAddress;
  }

  /** [offset, offset + length) (default: the whole buffer) as physically contiguous pieces, in order: a scatter-gather list. */
  segments(offset = 0, length?: number): { offset: number; busAddress: bigint; length: number }[] {
    const from = argSize(offset, 'offset');
    if (length === undefined && from >= this.buffer.size) throw rangeError('offset', `< the buffer's size ${this.buffer.size}`, offset);
    const [at, n] = this.#range(from, length ?? this.buffer.size - from);
    return this.#segments(at, n);
  }

  #range(offset: unknown, length: unknown): [number, number] {
    const at = argSize(offset, 'offset');
    const n = argSize(length, 'length');
    if (n === 0) throw rangeError('length', '> 0', length);
    this.buffer.checkRange(at, n);
    this.#assertLocked();
    return [at, n];
  }

  #segments(at: number, n: number): { offset: number; busAddress: bigint; length: number }[] {
    const out: { offset: number; busAddress: bigint; length: number }[] = [];
    for (let o = at; o < at + n; ) {
      const take = Math.min(at + n - o, this.pageSize - (o % this.pageSize));
      const bus = this.#pages[Math.floor(o / this.pageSize)] + BigInt(o % this.pageSize);
      const last = out[out.length - 1];
      if (last && last.busAddress + BigInt(last.length) === bus) last.length += take;
      else out.push({ offset: o, busAddress: bus, length: take });
      o += take;
    }
    return out;
  }

  /** Unlock (munlock): from now on the device must not be given these addresses. Same as close(). */
  unlock(): void {
    this.close();
  }

  #assertLocked(): void {
    if (this.closed) {
      throw new VfioError(RuleCode.CLOSED, `${this.description} is unlocked: its pages may have moved; lock the buffer again for new bus addresses`);
    }
  }

  protected override release(): void {
    this.noIommu.unlockOne(this);
  }
}
