// noiommu: VFIO without an IOMMU (Linux's vfio.enable_unsafe_noiommu_mode).
// A device bound to vfio-pci that no IOMMU covers gets a fake group,
// /dev/vfio/noiommu-N, and its container the VFIO_NOIOMMU_IOMMU model, which
// maps nothing (MAP_DMA is ENOTTY): the device DMAs to physical addresses,
// anywhere in memory, and nothing checks them. What this library can still do:
// make it opt-in and loud, and hand out a buffer's bus addresses only while
// its pages are locked (mlock), read from /proc/self/pagemap page by page.
//
// What it cannot protect: a wrong address from the driver (or the device)
// reaches any memory, kernel included; mlock keeps pages resident but the
// kernel may still migrate a locked page (compaction, NUMA balancing) unless
// vm.compact_unevictable_allowed is 0; and the device keeps whatever address
// it was given after the buffer is unlocked.

import * as fs from 'node:fs';
import { typeError } from './args';
import type { Container } from './container';
import { DmaBuffer } from './dma-buffer';
import { DmaLock } from './dma-lock';
import { RuleCode, VfioError, rethrow } from './errors';
import { memlockHint } from './hints';
import { hex } from './iova';
import { native } from './native';

/** The process warning every noiommu group open emits (process.on('warning') sees it). */
export const NOIOMMU_WARNING_CODE = 'VFIO_NOIOMMU';

// pagemap entry: bit 63 page present, bits 0-54 the page frame number.
const PRESENT = 1n << 63n;
const PFN_MASK = (1n << 55n) - 1n;

/**
 * The noiommu model set on a container (`container.setIommu('noiommu')`). It
 * maps nothing: `lock(buffer)` pins a buffer's pages in place and tells the
 * physical (bus) address of each, which is what the device must be given.
 */
export class NoIommu {
  readonly kind = 'noiommu' as const;
  readonly #owner: Container;
  readonly #locks = new Set<DmaLock>();
  #gone = false;

  /** @internal Created by Container.setIommu('noiommu'). */
  constructor(owner: Container) {
    this.#owner = owner;
  }

  get description(): string {
    return `noiommu model of ${this.#owner.description}`;
  }

  /** True once the container closed or its last group left (the kernel dropped the model). */
  get closed(): boolean {
    return this.#gone || this.#owner.closed;
  }

  /** The buffers locked for DMA now. */
  get locks(): readonly DmaLock[] {
    return [...this.#locks];
  }

  /**
   * Lock `buffer` for noiommu DMA: mlock(2) its pages and read their
   * physical addresses from /proc/self/pagemap. A device may DMA to the
   * buffer only while the lock lives; the buffer cannot be closed meanwhile.
   * Needs CAP_SYS_ADMIN (pagemap shows frame numbers only to it) and
   * RLIMIT_MEMLOCK room (or CAP_IPC_LOCK).
   */
  lock(buffer: DmaBuffer): DmaLock {
    if (!DmaBuffer.isBuffer(buffer)) throw typeError('buffer', 'a DmaBuffer', buffer);
    this.#assertUsable();
    const handle = buffer.handle(); // closed buffer → ERR_VFIO_CLOSED
    const held = buffer.users.find((u) => u instanceof DmaLock);
    if (held) {
      throw new VfioError(RuleCode.ALREADY_LOCKED, `${buffer.description} is already locked (${held.description}); use that lock, or unlock it first`);
    }
    try {
      handle.mlock();
    } catch (e) {
      rethrow(e, `locking ${buffer.description} for noiommu DMA`, (code) => (code === 'ENOMEM' || code === 'EPERM' || code === 'EAGAIN' ? memlockHint(BigInt(buffer.size)) : undefined));
    }
    let pages: bigint[];
    try {
      pages = busAddresses(buffer, handle.pagemap());
    } catch (e) {
      handle.munlock(); // a refusal changes nothing
      if (e instanceof VfioError) throw e;
      rethrow(e, `reading the physical addresses of ${buffer.description}`);
    }
    const lock = new DmaLock(this, buffer, pages);
    this.#locks.add(lock);
    buffer.addUser(lock);
    return lock;
  }

  /** @internal DmaLock.unlock(): munlock, then the lock is closed. On failure it stays locked. */
  unlockOne(lock: DmaLock): void {
    if (!this.#locks.has(lock)) return;
    try {
      lock.buffer.handle().munlock();
    } catch (e) {
      rethrow(e, `unlocking ${lock.buffer.description}`);
    }
    this.#locks.delete(lock);
    lock.buffer.removeUser(lock);
    lock.markClosed();
  }

  /** @internal teardown(), step 2: what the model holds goes with its context. */
  get lockCount(): number {
    return this.#locks.size;
  }

  /** @internal teardown(), step 2: unlock every buffer; a failure stops there, the rest stay locked. */
  releaseAll(): void {
    for (const lock of [...this.#locks]) this.unlockOne(lock);
  }

  /** @internal The last group left: the kernel dropped the model. */
  contextGone(): void {
    this.#gone = true;
  }

  #assertUsable(): void {
    if (this.#owner.closed) throw new VfioError(RuleCode.CLOSED, `the ${this.description} is closed: its container is closed`);
    if (this.#gone) {
      throw new VfioError(
        RuleCode.CLOSED,
        `the ${this.description} is closed: its last group left the container; attach a noiommu group and call container.setIommu('noiommu') again`,
      );
    }
  }
}

/** pagemap entries → bus addresses; a page without a frame number is refused, never handed out. */
function busAddresses(buffer: DmaBuffer, entries: BigUint64Array): bigint[] {
  const page = BigInt(native().pageSize);
  const out: bigint[] = [];
  for (let i = 0; i < entries.length; i++) {
    const e = entries[i];
    const pfn = e & PFN_MASK;
    if ((e & PRESENT) === 0n || pfn === 0n) {
      const why =
        (e & PRESENT) === 0n
          ? 'the page is not present even though it is locked'
          : '/proc/self/pagemap shows page frame numbers only to a process with CAP_SYS_ADMIN (it reads 0 without it); run with CAP_SYS_ADMIN';
      throw new VfioError(RuleCode.NO_BUS_ADDRESS, `no physical address for page ${i} (offset ${hex(i * Number(page))}) of ${buffer.description}: ${why}`);
    }
    out.push(pfn * page);
  }
  return out;
}

/** The /dev/vfio node of group `id`: its noiommu node when asked for one. */
export function groupNodePath(devRoot: string, id: number, unsafeNoIommu: boolean): string {
  return `${devRoot}/vfio/${unsafeNoIommu ? 'noiommu-' : ''}${id}`;
}

/**
 * After an ENOENT opening group `id`: the refusal to give when the group
 * exists as the other kind (a noiommu group asked for the regular way, or the
 * reverse), else undefined.
 */
export function groupKindRefusal(devRoot: string, id: number, unsafeNoIommu: boolean): VfioError | undefined {
  const other = groupNodePath(devRoot, id, !unsafeNoIommu);
  if (!fs.existsSync(other)) return undefined;
  if (unsafeNoIommu) {
    return new VfioError(
      RuleCode.NOT_NOIOMMU,
      `group ${id} has an IOMMU (${other}): open it without { unsafeNoIommu: true }, and its DMA goes through the IOMMU`,
    );
  }
  return new VfioError(
    RuleCode.NOIOMMU_OPT_IN,
    `group ${id} is a noiommu group (${other}): no IOMMU isolates its device, which can DMA anywhere in memory; ` +
      `open it with { unsafeNoIommu: true } only if you accept that`,
  );
}

/** The loud part of the opt-in: a process warning on every noiommu group open. */
export function warnNoIommu(id: number, path: string): void {
  process.emitWarning(
    `group ${id} (${path}) was opened in unsafe noiommu mode: no IOMMU isolates its device, which can DMA anywhere in physical memory, kernel included`,
    { type: 'UnsafeNoIommuWarning', code: NOIOMMU_WARNING_CODE, detail: 'Give the device only bus addresses of buffers locked with container.noIommu.lock(buffer), and only while locked.' },
  );
}
