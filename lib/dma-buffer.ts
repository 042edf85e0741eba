// Memory a device may DMA into. Allocated natively (page-aligned mmap,
// optionally huge pages or a memfd), seen from JS as an ArrayBuffer.
//
// The one contract this library cannot check: while a buffer is mapped, the
// device may write it at any time, behind the program's back. Reads of a
// mapped buffer see whatever the device last wrote; synchronise with the
// device (an interrupt, a status register) before trusting its contents.

import { RuleCode, VfioError, rethrow } from './errors';
import { hex, toSafeSize } from './iova';
import { native, type NativeDmaBuffer } from './native';
import { Resource } from './resource';

export interface DmaBufferOptions {
  /** Back the buffer with huge pages of this size (2 MiB or 1 GiB), from the kernel's pool. */
  hugePageSize?: number;
}

export interface MemfdOptions extends DmaBufferOptions {
  /** memfd name, shown in /proc/<pid>/fd; default 'vfio-dma'. */
  name?: string;
}

/** Anything that pins a buffer range: a DMA mapping, an sPAPR registration. */
export interface BufferUser {
  readonly description: string;
}

const HUGE_2M = 2 * 1024 * 1024;
const HUGE_1G = 1024 * 1024 * 1024;

export class DmaBuffer extends Resource {
  readonly #native: NativeDmaBuffer;
  readonly #users = new Set<BufferUser>();
  readonly description: string;
  readonly size: number;
  readonly pageSize: number;

  private constructor(handle: NativeDmaBuffer, kind: string) {
    super();
    this.#native = handle;
    this.size = handle.size;
    this.pageSize = handle.pageSize;
    this.description = `DMA buffer (${kind}, ${hex(handle.size)} bytes)`;
    this.track(() => handle.close());
  }

  /** Anonymous, page-aligned memory. `size` is rounded up to the page size. */
  static allocate(size: number, options: DmaBufferOptions = {}): DmaBuffer {
    const hp = hugePage(options);
    const bytes = roundUp(toSafeSize(size, 'size'), hp || native().pageSize);
    if (bytes === 0) throw new VfioError(RuleCode.BAD_RANGE, 'a DMA buffer needs a size > 0');
    try {
      return new DmaBuffer(native().allocDmaBuffer(bytes, hp), hp ? `anonymous, ${hp >> 20} MiB pages` : 'anonymous');
    } catch (e) {
      rethrow(e, `allocating a ${hex(bytes)}-byte DMA buffer`, (code) => memoryHint(code, hp));
    }
  }

  /**
   * Memory in a new memfd (MAP_SHARED): what a VM manager uses for guest RAM,
   * so the same pages can be handed to a VMM (`fd`) and mapped for DMA.
   */
  static memfd(size: number, options: MemfdOptions = {}): DmaBuffer {
    const hp = hugePage(options);
    const bytes = roundUp(toSafeSize(size, 'size'), hp || native().pageSize);
    if (bytes === 0) throw new VfioError(RuleCode.BAD_RANGE, 'a DMA buffer needs a size > 0');
    const name = options.name ?? 'vfio-dma';
    try {
      return new DmaBuffer(native().createMemfdBuffer(name, bytes, hp), `memfd ${name}`);
    } catch (e) {
      rethrow(e, `creating memfd '${name}' of ${hex(bytes)} bytes`, (code) => memoryHint(code, hp));
    }
  }

  /**
   * Map [offset, offset+size) of a file you own (a memfd or a hugetlbfs
   * file holding guest RAM). The fd is duplicated; yours stays yours.
   */
  static fromFd(fd: number, options: { offset?: number; size: number }): DmaBuffer {
    if (!Number.isSafeInteger(fd) || fd < 0) throw new VfioError(RuleCode.INVALID_ARG, `fd must be a file descriptor number, got ${fd}`);
    const offset = toSafeSize(options.offset ?? 0, 'offset');
    const size = toSafeSize(options.size, 'size');
    const page = native().pageSize;
    if (size === 0) throw new VfioError(RuleCode.BAD_RANGE, 'a DMA buffer needs a size > 0');
    if (offset % page !== 0 || size % page !== 0) {
      throw new VfioError(RuleCode.MISALIGNED, `fd ${fd}: offset ${hex(offset)} and size ${hex(size)} must be multiples of the page size ${hex(page)}`);
    }
    try {
      return new DmaBuffer(native().mapFdBuffer(fd, offset, size), `fd ${fd} at ${hex(offset)}`);
    } catch (e) {
      rethrow(e, `mapping ${hex(size)} bytes of fd ${fd}`);
    }
  }

  /** The memory. Detached (zero length) once the buffer is closed. */
  get arrayBuffer(): ArrayBuffer {
    this.assertOpen();
    return this.#native.arrayBuffer();
  }

  /** A Uint8Array over the whole buffer (or a part of it). */
  bytes(offset = 0, length = this.size - offset): Uint8Array {
    return new Uint8Array(this.arrayBuffer, offset, length);
  }

  /** The backing memfd, -1 for anonymous memory. Do not close it yourself. */
  get fd(): number {
    this.assertOpen();
    return this.#native.fd;
  }

  /** Live users (mappings, registrations) of this buffer. */
  get users(): readonly BufferUser[] {
    return [...this.#users];
  }

  /** @internal The native handle, for the IOMMU code that maps it. */
  handle(): NativeDmaBuffer {
    this.assertOpen();
    return this.#native;
  }

  /** @internal */
  addUser(user: BufferUser): void {
    this.#users.add(user);
  }

  /** @internal */
  removeUser(user: BufferUser): void {
    this.#users.delete(user);
  }

  /** Checks [offset, offset+size) lies inside the buffer. */
  checkRange(offset: number, size: number): void {
    if (offset + size > this.size) {
      throw new VfioError(
        RuleCode.BUFFER_RANGE,
        `${this.description}: range ${hex(offset)}+${hex(size)} ends past the buffer's end ${hex(this.size)}`,
      );
    }
  }

  protected override assertClosable(): void {
    if (this.#users.size > 0) {
      const names = [...this.#users].map((u) => u.description).join(', ');
      throw new VfioError(
        RuleCode.BUFFER_IN_USE,
        `${this.description} cannot be freed while the device can still DMA into it (${names}); unmap it first, or close the container`,
      );
    }
  }

  protected override release(): void {
    this.#native.close();
  }
}

function hugePage(options: DmaBufferOptions): number {
  const hp = options.hugePageSize ?? 0;
  if (hp !== 0 && hp !== HUGE_2M && hp !== HUGE_1G) {
    throw new VfioError(RuleCode.INVALID_ARG, `hugePageSize must be 2 MiB (${HUGE_2M}) or 1 GiB (${HUGE_1G}), got ${hp}`);
  }
  return hp;
}

function roundUp(n: number, to: number): number {
  return Math.ceil(n / to) * to;
}

function memoryHint(code: string, hugePageSize: number): string | undefined {
  if (code !== 'ENOMEM') return undefined;
  if (hugePageSize) {
    const kb = hugePageSize / 1024;
    return `the huge page pool has too few free ${kb} kB pages; raise /sys/kernel/mm/hugepages/hugepages-${kb}kB/nr_hugepages`;
  }
  return 'the system is out of memory';
}
