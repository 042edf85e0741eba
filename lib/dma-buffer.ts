// Memory a device may DMA into. Allocated natively (page-aligned mmap,
// optionally huge pages or a memfd), seen from JS as an ArrayBuffer.
//
// The one contract this library cannot check: while a buffer is mapped, the
// device may write it at any time, behind the program's back. Reads of a
// mapped buffer see whatever the device last wrote; synchronise with the
// device (an interrupt, a status register) before trusting its contents.

import { releaseKvmUses } from './teardown';
import { argBool, argFd, argInt, argName, argOptions, argSize, optionField, valueError } from './args';
import { RuleCode, VfioError, rethrow } from './errors';
import { hex } from './iova';
import { native, type NativeDmaBuffer } from './native';
import { Resource } from './resource';

/** Options of {@link DmaBuffer.allocate}. */
export interface DmaBufferOptions {
  /** Back the buffer with huge pages of this size (2 MiB or 1 GiB), from the kernel's pool. */
  hugePageSize?: number;
}

/** Options of {@link DmaBuffer.memfd}. */
export interface MemfdOptions extends DmaBufferOptions {
  /** memfd name, shown in /proc/<pid>/fd; default 'vfio-dma'. */
  name?: string;
}

/** Options of {@link DmaBuffer.fromFd}. */
export interface FromFdOptions {
  /** Where the mapping starts in the file, in bytes (a multiple of the page size); default 0. */
  offset?: number | bigint;
  /** Bytes to map (a multiple of the page size). */
  size: number | bigint;
  /**
   * Map a file that can still shrink: a regular file on a disk file system,
   * a tmpfs or hugetlbfs file, a memfd without F_SEAL_SHRINK. You promise the
   * file is never truncated below the mapping while the buffer lives; if it
   * is, the process dies with SIGBUS on the next touch of the buffer's bytes.
   * Default false: such a file is refused with ERR_VFIO_UNSEALED.
   */
  allowShrink?: boolean;
}

/** Anything that pins a buffer range: a DMA mapping, an sPAPR registration. */
export interface BufferUser {
  readonly description: string;
  /** @internal Its index in the buffer's list of users, -1 when it has none. */
  bufferSlot: number;
}

/**
 * The users of memory a device can DMA into or from (a DmaBuffer, or a BAR
 * mmap used for peer-to-peer DMA), and the one rule about them: the memory
 * is not freed while one of them lives.
 */
export class BufferUsers<U extends BufferUser = BufferUser> {
  // A list with each user's index kept on the user: O(1) add and remove, no
  // hashing on the map path (a Set's add/delete was a tenth of map + unmap).
  readonly #list: U[] = [];

  get size(): number {
    return this.#list.length;
  }

  list(): U[] {
    return this.#list.slice();
  }

  add(user: U): void {
    if (user.bufferSlot >= 0) return;
    user.bufferSlot = this.#list.length;
    this.#list.push(user);
  }

  delete(user: U): void {
    const i = user.bufferSlot;
    if (i < 0 || this.#list[i] !== user) return;
    const last = this.#list.pop()!;
    if (last !== user) {
      this.#list[i] = last;
      last.bufferSlot = i;
    }
    user.bufferSlot = -1;
  }

  /** Throws ERR_VFIO_BUFFER_IN_USE while a user lives. */
  assertNone(description: string): void {
    if (this.#list.length === 0) return;
    const names = this.list().map((u) => u.description).join(', ');
    throw new VfioError(
      RuleCode.BUFFER_IN_USE,
      `${description} cannot be freed while a device can still DMA to or from it (${names}); unmap it first (a noiommu lock: unlock it), or close the container`,
    );
  }
}

const HUGE_2M = 2 * 1024 * 1024;
const HUGE_1G = 1024 * 1024 * 1024;

/** Memory a device may reach by DMA once mapped through an IOMMU: anonymous, memfd-backed or from a sealed fd; pinned by the kernel while mapped. */
export class DmaBuffer extends Resource {
  readonly #native: NativeDmaBuffer;
  readonly #users = new BufferUsers();
  // What the safety net's closer knows (it must not reach the buffer itself).
  readonly #state = { open: true };
  readonly description: string;
  readonly size: number;
  readonly pageSize: number;

  private constructor(handle: NativeDmaBuffer, kind: string) {
    super();
    this.#native = handle;
    this.size = handle.size;
    this.pageSize = handle.pageSize;
    this.description = `DMA buffer (${kind}, ${hex(handle.size)} bytes)`;
    const state = this.#state;
    this.track(() => {
      const open = state.open;
      state.open = false;
      handle.close();
      return open;
    });
  }

  /** Anonymous, page-aligned memory. `size` is rounded up to the page size. */
  static allocate(size: number, options?: DmaBufferOptions): DmaBuffer {
    const want = argSize(size, 'size');
    const hp = hugePage(argOptions(options));
    const bytes = roundUp(want, hp || native().pageSize);
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
  static memfd(size: number, options?: MemfdOptions): DmaBuffer {
    const want = argSize(size, 'size');
    const o = argOptions(options);
    const hp = hugePage(o);
    const givenName = optionField(o, 'name', 'options.name');
    // memfd_create takes at most 249 bytes of name.
    const name = givenName === undefined ? 'vfio-dma' : argName(givenName, 'options.name', 200);
    const bytes = roundUp(want, hp || native().pageSize);
    if (bytes === 0) throw new VfioError(RuleCode.BAD_RANGE, 'a DMA buffer needs a size > 0');
    try {
      return new DmaBuffer(native().createMemfdBuffer(name, bytes, hp), `memfd ${name}`);
    } catch (e) {
      rethrow(e, `creating memfd '${name}' of ${hex(bytes)} bytes`, (code) => memoryHint(code, hp));
    }
  }

  /**
   * Map [offset, offset+size) of a file you own (a memfd or a hugetlbfs
   * file holding guest RAM). The fd is duplicated; yours stays yours.
   *
   * Memory this library hands out must not shrink under it (a truncated
   * file turns the next touch of its pages into SIGBUS), so a file that can
   * still be truncated is refused (ERR_VFIO_UNSEALED) unless you pass
   * `allowShrink: true`. A memfd is safe once sealed:
   * `fcntl(fd, F_ADD_SEALS, F_SEAL_SHRINK)` (create it with MFD_ALLOW_SEALING).
   */
  static fromFd(fd: number, options: FromFdOptions): DmaBuffer {
    fd = argFd(fd);
    const o = argOptions(options);
    const offsetArg = optionField(o, 'offset', 'options.offset');
    const offset = offsetArg === undefined ? 0 : argSize(offsetArg, 'options.offset');
    const size = argSize(optionField(o, 'size', 'options.size'), 'options.size');
    const allowArg = optionField(o, 'allowShrink', 'options.allowShrink');
    const allowShrink = allowArg === undefined ? false : argBool(allowArg, 'options.allowShrink');
    const page = native().pageSize;
    if (size === 0) throw new VfioError(RuleCode.BAD_RANGE, 'a DMA buffer needs a size > 0');
    if (offset % page !== 0 || size % page !== 0) {
      throw new VfioError(RuleCode.MISALIGNED, `fd ${fd}: offset ${hex(offset)} and size ${hex(size)} must be multiples of the page size ${hex(page)}`);
    }
    let handle: NativeDmaBuffer;
    try {
      handle = native().mapFdBuffer(fd, offset, size);
    } catch (e) {
      rethrow(e, `mapping ${hex(size)} bytes of fd ${fd}`);
    }
    // Judged on the buffer's own dup of the file, so the facts are about the
    // file mapped even if the caller's fd number was reused meanwhile.
    let why: string | undefined;
    try {
      why = allowShrink ? undefined : shrinkable(handle, fd);
    } catch (e) {
      handle.close();
      rethrow(e, `reading the seals of fd ${fd}`);
    }
    if (why !== undefined) {
      handle.close();
      throw new VfioError(RuleCode.UNSEALED, why);
    }
    return new DmaBuffer(handle, `fd ${fd} at ${hex(offset)}`);
  }

  /** The memory. Detached (zero length) once the buffer is closed. */
  get arrayBuffer(): ArrayBuffer {
    this.assertOpen();
    return this.#native.arrayBuffer();
  }

  /** A Uint8Array over the whole buffer (or a part of it). */
  bytes(offset = 0, length?: number): Uint8Array {
    argSize(offset, 'offset', this.size);
    const n = length === undefined ? this.size - offset : argSize(length, 'length', this.size - offset);
    return new Uint8Array(this.arrayBuffer, offset, n);
  }

  /** The backing memfd, -1 for anonymous memory. Do not close it yourself. */
  get fd(): number {
    this.assertOpen();
    return this.#native.fd;
  }

  /** @internal Always: a device may write our memory (a BAR mmap can be read-only). */
  get writable(): boolean {
    return true;
  }

  /** Live users (mappings, registrations) of this buffer. */
  get users(): readonly BufferUser[] {
    return this.#users.list();
  }

  /**
   * @internal A brand check for the map path: cheaper than instanceof behind
   * a Proxy test, and like it never runs a caller's code (a Proxy has no
   * private fields and no trap sees this).
   */
  static isBuffer(value: unknown): value is DmaBuffer {
    return typeof value === 'object' && value !== null && #native in value;
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
    argSize(offset, 'offset');
    argSize(size, 'size');
    if (offset + size > this.size) {
      throw new VfioError(
        RuleCode.BUFFER_RANGE,
        `${this.description}: range ${hex(offset)}+${hex(size)} ends past the buffer's end ${hex(this.size)}`,
      );
    }
  }

  protected override release(): void {
    this.#users.assertNone(this.description);
    releaseKvmUses(this, 'close', [this]);
    this.#native.close();
    this.#state.open = false;
  }
}

function hugePage(options: Record<string, unknown>): number {
  const given = optionField(options, 'hugePageSize', 'options.hugePageSize');
  if (given === undefined) return 0;
  const hp = argInt(given, 'options.hugePageSize', 0, HUGE_1G);
  if (hp !== 0 && hp !== HUGE_2M && hp !== HUGE_1G) {
    throw valueError('options.hugePageSize', `must be 2 MiB (${HUGE_2M}) or 1 GiB (${HUGE_1G})`, given);
  }
  return hp;
}

/**
 * Why the file behind a fresh fd mapping can still shrink (then the next
 * touch of a truncated page is SIGBUS), or undefined when it cannot: a file
 * that is not a regular one (a device) has no length to cut, and a regular
 * one is safe only with F_SEAL_SHRINK, which only shmem (memfd) and
 * hugetlbfs files can carry.
 */
function shrinkable(handle: NativeDmaBuffer, fd: number): string | undefined {
  if (!handle.regularFile) return undefined;
  const C = native().constants;
  const seals = handle.seals();
  if (seals >= 0 && (seals & C.F_SEAL_SHRINK) !== 0) return undefined;
  const optIn = "or pass { allowShrink: true } if you promise the file is never truncated while the buffer lives (if it is, the process dies with SIGBUS)";
  if (seals < 0) {
    return `fd ${fd} is a file that can be truncated under the mapping and its file system has no seals; map a memfd sealed with fcntl(fd, F_ADD_SEALS, F_SEAL_SHRINK) instead, ${optIn}`;
  }
  if ((seals & C.F_SEAL_SEAL) !== 0) {
    return `fd ${fd} can be truncated under the mapping and no seal can be added to it any more (F_SEAL_SEAL; a memfd needs MFD_ALLOW_SEALING); map a memfd sealed with fcntl(fd, F_ADD_SEALS, F_SEAL_SHRINK) instead, ${optIn}`;
  }
  return `fd ${fd} can be truncated under the mapping: seal it first with fcntl(fd, F_ADD_SEALS, F_SEAL_SHRINK), ${optIn}`;
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
