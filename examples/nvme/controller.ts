// A small NVMe driver on the public API of this package: it brings a
// controller up (CC/CSTS), runs the admin queue, identifies the controller
// and a namespace, creates I/O queue pairs whose completion queues each
// raise their own MSI-X vector, and reads and writes blocks with PRPs.
// Completions arrive by interrupt (each vector drains its own queue) or, in
// polled mode, by draining the queues from the event loop.
//
// What it takes from the package: a Device (BAR0 mmap, bus mastering, the
// MSI-X index), an Iommu (every ring and data buffer is mapped into it) and
// DmaBuffers. The numbers it uses are in spec.ts.

import type { Device, DmaMapping, Iommu, Irq, RegionMapping } from '../../lib';
import { type Command, type Completion, type DmaSpace, QueuePair } from './queue';
import {
  ADMIN,
  CC_EN,
  CC_IOCQES_16,
  CC_IOSQES_64,
  CNS_CONTROLLER,
  CNS_NAMESPACE,
  CSTS_CFS,
  CSTS_RDY,
  FEATURE_NUM_QUEUES,
  IO,
  PAGE,
  REG,
} from './spec';
import { DmaBuffer } from '../../lib';

export interface NvmeOptions {
  /** I/O queue pairs to create (default 2). With interrupts, queue i raises MSI-X vector i (the admin queue vector 0). */
  ioQueues?: number;
  /** Entries per I/O queue (default 64, at most what CAP.MQES allows). */
  queueDepth?: number;
  /** Completions by MSI-X interrupt (default) or, false, by polling from the event loop. */
  interrupts?: boolean;
  /** How long a command may take before it fails (default 10 s). */
  timeoutMs?: number;
}

export interface ControllerIdentity {
  serial: string;
  model: string;
  firmware: string;
  /** The largest transfer the controller takes (MDTS), in bytes; 0 means no limit. */
  maxTransferBytes: number;
  namespaces: number;
}

export interface NamespaceIdentity {
  nsid: number;
  blocks: bigint;
  blockSize: number;
}

/** The registers that show a controller's state (evidence for resets). */
export interface ControllerRegisters {
  cc: number;
  csts: number;
  aqa: number;
  asq: bigint;
  acq: bigint;
}

const ADMIN_DEPTH = 32;

export class NvmeController {
  readonly device: Device;
  readonly iommu: Iommu;
  readonly bar: RegionMapping;
  /** CAP, VS as the controller reports them. */
  readonly cap: bigint;
  readonly version: number;
  /** Bytes between doorbells (4 << CAP.DSTRD). */
  readonly doorbellStride: number;
  /** null in polled mode. */
  readonly irq: Irq | null;
  readonly timeoutMs: number;
  admin!: QueuePair;
  readonly io: QueuePair[] = [];
  identity!: ControllerIdentity;
  namespace!: NamespaceIdentity;
  /** Interrupts taken per vector. */
  readonly interruptsTaken: number[] = [];
  #scratch: DmaBuffer;
  #scratchMap: DmaMapping;
  #polling = false;
  #onInterrupt: ((vector: number) => void) | null = null;
  #watchdog: NodeJS.Timeout | undefined;
  // NVMe reads a PRP of 0 as "no buffer" (QEMU refuses the command), and an
  // IOMMU's lowest free IOVA is 0: the driver's own rings and buffers take
  // IOVAs from 4 GiB up, out of the way of the caller's data mappings.
  #nextIova = 1n << 32n;
  readonly #dma: DmaSpace = {
    map: (buffer, deviceWrites) => {
      const m = this.iommu.map(buffer, { iova: this.#nextIova, readable: !deviceWrites, writable: deviceWrites });
      this.#nextIova += BigInt(buffer.size);
      return m;
    },
  };

  private constructor(device: Device, iommu: Iommu, options: NvmeOptions) {
    this.device = device;
    this.iommu = iommu;
    this.timeoutMs = options.timeoutMs ?? 10_000;
    // The registers and doorbells sit in BAR0 below the MSI-X table; mmap()
    // takes the first area the kernel lets us map (all of BAR0 when it says
    // the table is mappable).
    this.bar = device.bar(0).mmap();
    this.cap = this.bar.read64(REG.CAP);
    this.version = this.bar.read32(REG.VS);
    this.doorbellStride = 4 << Number((this.cap >> 32n) & 0xfn);
    this.irq = options.interrupts === false ? null : device.msix;
    this.#scratch = DmaBuffer.allocate(PAGE);
    this.#scratchMap = this.#dma.map(this.#scratch, true);
  }

  /** Reset the controller, bring it up with an admin queue, identify it and namespace 1, create the I/O queues. */
  static async start(device: Device, iommu: Iommu, options: NvmeOptions = {}): Promise<NvmeController> {
    const ctrl = new NvmeController(device, iommu, options);
    const ioQueues = options.ioQueues ?? 2;
    const maxEntries = Number(ctrl.cap & 0xffffn) + 1;
    const depth = Math.min(options.queueDepth ?? 64, maxEntries);
    device.setBusMaster(true);
    await ctrl.disable();
    ctrl.admin = new QueuePair(ctrl.#dma, ctrl.bar, ctrl.doorbellStride, 0, ADMIN_DEPTH, ctrl.irq ? 0 : null);
    ctrl.#watch();
    if (ctrl.irq) ctrl.#enableInterrupts(ctrl.irq, 1 + ioQueues);
    await ctrl.#enable();
    ctrl.identity = await ctrl.identifyController();
    ctrl.namespace = await ctrl.identifyNamespace(1);
    // Ask for the queues first (QEMU grants up to its max_ioqpairs).
    const n = ioQueues - 1;
    await ctrl.adminCommand({ opcode: ADMIN.SET_FEATURES, cdw10: FEATURE_NUM_QUEUES, cdw11: n | (n << 16) }, 'Set Features (queues)');
    for (let q = 1; q <= ioQueues; q++) await ctrl.#createQueuePair(q, depth);
    return ctrl;
  }

  registers(): ControllerRegisters {
    const b = this.bar;
    return { cc: b.read32(REG.CC), csts: b.read32(REG.CSTS), aqa: b.read32(REG.AQA), asq: b.read64(REG.ASQ), acq: b.read64(REG.ACQ) };
  }

  /** CC.EN = 0, then wait for CSTS.RDY = 0: the controller forgets every queue. */
  async disable(): Promise<void> {
    const cc = this.bar.read32(REG.CC);
    if (cc & CC_EN) this.bar.write32(REG.CC, cc & ~CC_EN);
    await this.#waitReady(false);
  }

  /** An admin command; resolves with its completion, rejects with its status. */
  adminCommand(cmd: Command, what: string): Promise<Completion> {
    return this.#command(this.admin, cmd, what);
  }

  async identifyController(): Promise<ControllerIdentity> {
    const d = await this.#identify(CNS_CONTROLLER, 0);
    const mdts = d[77];
    return {
      serial: ascii(d, 4, 20),
      model: ascii(d, 24, 40),
      firmware: ascii(d, 64, 8),
      maxTransferBytes: mdts === 0 ? 0 : PAGE << mdts, // in CAP.MPSMIN pages; ours is 4 KiB
      namespaces: new DataView(d.buffer, d.byteOffset).getUint32(516, true),
    };
  }

  async identifyNamespace(nsid: number): Promise<NamespaceIdentity> {
    const d = await this.#identify(CNS_NAMESPACE, nsid);
    const v = new DataView(d.buffer, d.byteOffset);
    const format = d[26] & 0xf;
    const lbads = d[128 + format * 4 + 2];
    return { nsid, blocks: v.getBigUint64(0, true), blockSize: 2 ** lbads };
  }

  /** Write `blocks` blocks at `lba` from `data` (a mapped buffer) at `offset`, on I/O queue `queue` (1-based). */
  write(lba: bigint | number, blocks: number, data: DmaMapping, offset = 0, queue = 1): Promise<Completion> {
    return this.#rw(IO.WRITE, lba, blocks, data, offset, queue);
  }

  /** Read `blocks` blocks at `lba` into `data` at `offset`. */
  read(lba: bigint | number, blocks: number, data: DmaMapping, offset = 0, queue = 1): Promise<Completion> {
    return this.#rw(IO.READ, lba, blocks, data, offset, queue);
  }

  /**
   * Delete the I/O queues, disable the controller and free the rings, the
   * MSI-X vectors with them. The device itself stays open (its owner closes it).
   */
  async close(): Promise<void> {
    for (const q of [...this.io].reverse()) {
      await this.adminCommand({ opcode: ADMIN.DELETE_SQ, cdw10: q.id }, `Delete I/O SQ ${q.id}`);
      await this.adminCommand({ opcode: ADMIN.DELETE_CQ, cdw10: q.id }, `Delete I/O CQ ${q.id}`);
    }
    await this.disable();
    this.forget();
  }

  /**
   * Free what the driver holds (vectors, rings, the BAR mmap) without a
   * word to the controller: for when it already lost its state (a reset).
   */
  forget(): void {
    clearInterval(this.#watchdog);
    if (this.irq && this.#onInterrupt) {
      this.irq.off('interrupt', this.#onInterrupt);
      if (!this.device.closed) this.irq.disable();
    }
    this.#onInterrupt = null;
    for (const q of [...this.io, this.admin]) {
      q.abort(() => new Error('the controller was closed'));
      q[Symbol.dispose]();
    }
    this.io.length = 0;
    if (!this.#scratchMap.closed) this.#scratchMap.unmap();
    this.#scratch.close();
    this.bar.close();
  }

  #rw(opcode: number, lba: bigint | number, blocks: number, data: DmaMapping, offset: number, queue: number): Promise<Completion> {
    const q = this.io[queue - 1];
    if (!q) return Promise.reject(new RangeError(`no I/O queue ${queue} (1..${this.io.length})`));
    const bytes = blocks * this.namespace.blockSize;
    if (blocks < 1 || blocks > 0x10000) return Promise.reject(new RangeError(`blocks must be 1..65536, not ${blocks}`));
    if (this.identity.maxTransferBytes && bytes > this.identity.maxTransferBytes) {
      return Promise.reject(new RangeError(`${bytes} bytes exceed the controller's limit of ${this.identity.maxTransferBytes} per command`));
    }
    if (offset === 0 && data.iova === 0n) return Promise.reject(new RangeError('NVMe reads a PRP of 0 as no buffer: map the data at an IOVA other than 0'));
    if (!Number.isSafeInteger(offset) || offset < 0 || offset + bytes > Number(data.size)) return Promise.reject(new RangeError(`${bytes} bytes at ${offset} run past the mapping (${data.size} bytes)`));
    const slba = Number(lba);
    return this.#command(q, {
      opcode,
      nsid: this.namespace.nsid,
      data: { iova: data.iova, offset, bytes },
      cdw10: slba % 2 ** 32,
      cdw11: Math.floor(slba / 2 ** 32),
      cdw12: blocks - 1,
    });
  }

  #command(q: QueuePair, cmd: Command, what?: string): Promise<Completion> {
    const done = q.submit(cmd, what);
    if (!this.irq) this.#pollSoon();
    return done;
  }

  // One timer for all commands (a timer, or even a clock read, per command
  // costs more than the command on a fast path): every timeout / 4 it fails
  // the commands older than 4 ticks, so a command fails after 1 to 1.25
  // timeouts.
  #watch(): void {
    this.#watchdog = setInterval(() => {
      const csts = this.bar.closed ? 0 : this.bar.read32(REG.CSTS);
      for (const q of [this.admin, ...this.io]) q.expire(4, (what) => new Error(`${what}: no completion within ${this.timeoutMs} ms (CSTS 0x${csts.toString(16)})`));
    }, Math.max(1, this.timeoutMs / 4));
    this.#watchdog.unref();
  }

  // Polled mode: drain every queue once per event-loop turn while anything is outstanding.
  #pollSoon(): void {
    if (this.#polling) return;
    this.#polling = true;
    const tick = (): void => {
      const queues = [this.admin, ...this.io];
      for (const q of queues) q.drain();
      if (queues.some((q) => q.outstanding > 0)) setImmediate(tick);
      else this.#polling = false;
    };
    setImmediate(tick);
  }

  #enableInterrupts(irq: Irq, vectors: number): void {
    irq.enable(vectors);
    this.#onInterrupt = (vector) => {
      this.interruptsTaken[vector] = (this.interruptsTaken[vector] ?? 0) + 1;
      const q = vector === 0 ? this.admin : this.io[vector - 1];
      q?.drain();
    };
    irq.on('interrupt', this.#onInterrupt);
  }

  async #enable(): Promise<void> {
    const a = this.admin;
    this.bar.write32(REG.AQA, (a.depth - 1) | ((a.depth - 1) << 16));
    write64(this.bar, REG.ASQ, a.sq.iova);
    write64(this.bar, REG.ACQ, a.cq.iova);
    this.bar.write32(REG.CC, CC_EN | CC_IOSQES_64 | CC_IOCQES_16);
    await this.#waitReady(true);
  }

  async #createQueuePair(id: number, depth: number): Promise<void> {
    const vector = this.irq ? id : null;
    const q = new QueuePair(this.#dma, this.bar, this.doorbellStride, id, depth, vector);
    const size = (depth - 1) << 16;
    // CQ first: the SQ names it. CDW11: PC (contiguous), IEN and the vector.
    const ien = vector === null ? 0 : 0x2 | (vector << 16);
    await this.adminCommand({ opcode: ADMIN.CREATE_CQ, data: { iova: q.cq.iova, bytes: PAGE }, cdw10: size | id, cdw11: 0x1 | ien }, `Create I/O CQ ${id}`);
    await this.adminCommand({ opcode: ADMIN.CREATE_SQ, data: { iova: q.sq.iova, bytes: PAGE }, cdw10: size | id, cdw11: 0x1 | (id << 16) }, `Create I/O SQ ${id}`);
    this.io.push(q);
  }

  async #identify(cns: number, nsid: number): Promise<Uint8Array> {
    await this.adminCommand({ opcode: ADMIN.IDENTIFY, nsid, data: { iova: this.#scratchMap.iova, bytes: PAGE }, cdw10: cns }, `Identify (CNS ${cns})`);
    return this.#scratch.bytes().slice();
  }

  // CAP.TO is the worst case in 500 ms units; poll CSTS every millisecond.
  async #waitReady(ready: boolean): Promise<void> {
    const limit = Date.now() + Math.max(1, Number((this.cap >> 24n) & 0xffn)) * 500;
    for (;;) {
      const csts = this.bar.read32(REG.CSTS);
      if (csts & CSTS_CFS) throw new Error(`controller fatal status (CSTS 0x${csts.toString(16)})`);
      if (((csts & CSTS_RDY) !== 0) === ready) return;
      if (Date.now() > limit) throw new Error(`CSTS.RDY did not become ${ready ? 1 : 0} within CAP.TO (CSTS 0x${csts.toString(16)})`);
      await new Promise((r) => setTimeout(r, 1));
    }
  }
}

// Two 32-bit writes, low half first: every controller takes those.
function write64(bar: RegionMapping, reg: number, value: bigint): void {
  bar.write32(reg, Number(value & 0xffffffffn));
  bar.write32(reg + 4, Number(value >> 32n));
}

function ascii(d: Uint8Array, at: number, length: number): string {
  return Buffer.from(d.subarray(at, at + length)).toString('latin1').trimEnd();
}
