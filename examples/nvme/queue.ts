// One NVMe queue pair: a submission queue and its completion queue, both in
// DMA memory the controller reaches through the IOMMU, and a page of PRP list
// for each command slot. A command's slot is its command identifier (CID).
//
// The controller writes completion entries with a phase tag that flips on
// every pass around the ring: an entry is new while its phase bit equals the
// one we expect. Entries are read with Atomics.load, so the JIT never keeps a
// stale copy of memory the device writes behind its back.

import { DmaBuffer, type DmaMapping, type RegionMapping } from '../../lib';
import { CQE_BYTES, PAGE, SQE_BYTES } from './spec';

/** What a command carries (§4.2): opcode, namespace, its data buffer, command dwords 10–15. */
export interface Command {
  opcode: number;
  nsid?: number;
  /** The data the command moves: the queue turns it into PRP entries. */
  data?: { iova: bigint; offset?: number; bytes: number };
  cdw10?: number;
  cdw11?: number;
  cdw12?: number;
  cdw13?: number;
  cdw14?: number;
  cdw15?: number;
}

/** Where the driver's own memory goes in the device's address space. */
export interface DmaSpace {
  /** Map `buffer` for the device to read (deviceWrites false) or write. */
  map(buffer: DmaBuffer, deviceWrites: boolean): DmaMapping;
}

export interface Completion {
  cid: number;
  /** Dword 0: command specific. */
  result: number;
  /** Where the controller's SQ head was when it posted this entry. */
  sqHead: number;
}

/** A completion with a non-zero status (status code type, status code). */
export class NvmeStatusError extends Error {
  readonly code = 'ERR_NVME_STATUS';
  constructor(
    readonly sct: number,
    readonly sc: number,
    what: string,
  ) {
    super(`${what} failed: NVMe status type ${sct}, code 0x${sc.toString(16)}`);
  }
}

interface Slot {
  resolve: (c: Completion) => void;
  reject: (e: Error) => void;
  /** What failed, for the message; built only then. */
  what: string | undefined;
  opcode: number;
  /** The watchdog tick it was submitted in (no clock read per command). */
  tick: number;
}

const TWO_32 = 2 ** 32;
const MAX_SAFE_IOVA = BigInt(Number.MAX_SAFE_INTEGER);

export class QueuePair implements Disposable {
  readonly id: number;
  readonly depth: number;
  /** MSI-X vector of the completion queue, or null (polled). */
  readonly vector: number | null;
  readonly sq: DmaMapping;
  readonly cq: DmaMapping;
  readonly #memory: DmaBuffer[];
  readonly #sqe: Uint32Array;
  readonly #cqe: Uint32Array;
  readonly #prpList: DmaMapping;
  readonly #prpWords: Uint32Array;
  readonly #prpListIova: number;
  readonly #bar: RegionMapping;
  readonly #sqDoorbell: number;
  readonly #cqDoorbell: number;
  readonly #slots: (Slot | undefined)[];
  readonly #freeCids: number[];
  #tail = 0;
  #tick = 0;
  #head = 0;
  #phase = 1;
  #sqHead = 0;

  constructor(dma: DmaSpace, bar: RegionMapping, doorbellStride: number, id: number, depth: number, vector: number | null) {
    this.id = id;
    this.depth = depth;
    this.vector = vector;
    this.#bar = bar;
    this.#sqDoorbell = 0x1000 + 2 * id * doorbellStride;
    this.#cqDoorbell = 0x1000 + (2 * id + 1) * doorbellStride;
    const sq = DmaBuffer.allocate(roundUp(depth * SQE_BYTES));
    const cq = DmaBuffer.allocate(roundUp(depth * CQE_BYTES));
    const prp = DmaBuffer.allocate(depth * PAGE);
    this.#memory = [sq, cq, prp];
    this.sq = dma.map(sq, false);
    this.cq = dma.map(cq, true);
    this.#prpList = dma.map(prp, false);
    this.#sqe = new Uint32Array(sq.arrayBuffer);
    this.#cqe = new Uint32Array(cq.arrayBuffer);
    this.#prpWords = new Uint32Array(prp.arrayBuffer);
    this.#prpListIova = iovaNumber(this.#prpList.iova);
    this.#slots = new Array<Slot | undefined>(depth);
    // One entry always stays empty: a full ring would look empty.
    this.#freeCids = Array.from({ length: depth - 1 }, (_, i) => depth - 2 - i);
  }

  /** Commands submitted and not completed yet. */
  get outstanding(): number {
    return this.depth - 1 - this.#freeCids.length;
  }

  /**
   * Write `cmd` into the next submission entry and ring the doorbell. The
   * promise settles when drain() finds its completion (an interrupt or a
   * poll calls drain()).
   */
  submit(cmd: Command, what?: string): Promise<Completion> {
    return new Promise<Completion>((resolve, reject) => {
      const cid = this.#place(cmd);
      this.#slots[cid] = { resolve, reject, what, opcode: cmd.opcode, tick: this.#tick };
      this.#bar.write32(this.#sqDoorbell, this.#tail);
    });
  }

  /**
   * One watchdog tick: fail the commands submitted more than `ticks` ticks
   * ago (the controller ticks every timeout / 4).
   */
  expire(ticks: number, why: (what: string) => Error): void {
    this.#tick++;
    this.#slots.forEach((slot, cid) => {
      if (!slot || this.#tick - slot.tick <= ticks) return;
      this.#slots[cid] = undefined;
      this.#freeCids.push(cid);
      slot.reject(why(label(slot)));
    });
  }

  /**
   * PRP1/PRP2 for `bytes` at `iova` (§4.3): PRP1 the first page, PRP2 the
   * second page or, past two pages, a PRP list in slot `cid`'s own page.
   */
  // IOVAs as numbers here: exact below 2^53, far above any IOMMU's reach,
  // and no BigInt allocated on the I/O path.
  #prps(iova: number, bytes: number, cid: number): [number, number] {
    const first = PAGE - (iova % PAGE);
    if (bytes <= first) return [iova, 0];
    if (bytes <= first + PAGE) return [iova, iova + first];
    const entries = Math.ceil((bytes - first) / PAGE);
    if (entries > PAGE / 8) throw new RangeError(`a transfer of ${bytes} bytes needs more than one PRP list page`);
    let at = (cid * PAGE) / 4;
    for (let a = iova + first, i = 0; i < entries; i++, a += PAGE) {
      this.#prpWords[at++] = a % TWO_32;
      this.#prpWords[at++] = Math.floor(a / TWO_32);
    }
    return [iova, this.#prpListIova + cid * PAGE];
  }

  /** Take every new completion entry, settle its command, and tell the controller (CQ head doorbell). */
  drain(): number {
    let n = 0;
    for (;;) {
      const at = this.#head * (CQE_BYTES / 4);
      const dw3 = Atomics.load(this.#cqe, at + 3);
      if (((dw3 >>> 16) & 1) !== this.#phase) break;
      const completion = { cid: dw3 & 0xffff, result: Atomics.load(this.#cqe, at), sqHead: Atomics.load(this.#cqe, at + 2) & 0xffff };
      const status = dw3 >>> 17;
      this.#sqHead = completion.sqHead;
      if (++this.#head === this.depth) {
        this.#head = 0;
        this.#phase ^= 1;
      }
      n++;
      const slot = this.#slots[completion.cid];
      if (!slot) continue; // not ours (a controller bug): nothing waits for it
      this.#slots[completion.cid] = undefined;
      this.#freeCids.push(completion.cid);
      if (status === 0) slot.resolve(completion);
      else slot.reject(new NvmeStatusError((status >> 8) & 0x7, status & 0xff, label(slot)));
    }
    if (n > 0) this.#bar.write32(this.#cqDoorbell, this.#head);
    return n;
  }

  /** Fail every outstanding command (the controller is going away). */
  abort(why: () => Error): void {
    this.#slots.forEach((slot, cid) => {
      if (!slot) return;
      this.#slots[cid] = undefined;
      this.#freeCids.push(cid);
      slot.reject(why());
    });
  }

  /** Unmap and free the rings (after the controller forgot the queue, or was disabled). */
  [Symbol.dispose](): void {
    for (const m of [this.sq, this.cq, this.#prpList]) if (!m.closed) m.unmap();
    for (const b of this.#memory) b.close();
  }

  #place(cmd: Command): number {
    if ((this.#tail + 1) % this.depth === this.#sqHead) throw new Error(`submission queue ${this.id} is full`);
    const cid = this.#freeCids.pop();
    if (cid === undefined) throw new Error(`queue ${this.id} is full (${this.depth - 1} commands outstanding)`);
    const w = this.#sqe;
    const at = this.#tail * (SQE_BYTES / 4);
    w.fill(0, at, at + SQE_BYTES / 4);
    w[at] = (cmd.opcode & 0xff) | (cid << 16);
    w[at + 1] = cmd.nsid ?? 0;
    let prp1 = 0;
    let prp2 = 0;
    try {
      if (cmd.data) [prp1, prp2] = this.#prps(iovaNumber(cmd.data.iova) + (cmd.data.offset ?? 0), cmd.data.bytes, cid);
    } catch (e) {
      this.#freeCids.push(cid);
      throw e;
    }
    w[at + 6] = prp1 % TWO_32;
    w[at + 7] = Math.floor(prp1 / TWO_32);
    w[at + 8] = prp2 % TWO_32;
    w[at + 9] = Math.floor(prp2 / TWO_32);
    w[at + 10] = cmd.cdw10 ?? 0;
    w[at + 11] = cmd.cdw11 ?? 0;
    w[at + 12] = cmd.cdw12 ?? 0;
    w[at + 13] = cmd.cdw13 ?? 0;
    w[at + 14] = cmd.cdw14 ?? 0;
    w[at + 15] = cmd.cdw15 ?? 0;
    this.#tail = (this.#tail + 1) % this.depth;
    return cid;
  }
}

function label(slot: Slot): string {
  return slot.what ?? `opcode 0x${slot.opcode.toString(16)}`;
}

function iovaNumber(iova: bigint): number {
  if (iova > MAX_SAFE_IOVA) throw new RangeError(`IOVA 0x${iova.toString(16)} is past 2^53: map the data lower`);
  return Number(iova);
}

function roundUp(n: number): number {
  return Math.ceil(n / PAGE) * PAGE;
}
