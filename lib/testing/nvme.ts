// A small NVMe controller as a mock device model, shaped like QEMU 7.2's
// nvme as the test guest saw it (VS 1.4, 16 KiB BAR0 with the MSI-X table at
// 0x2000 and the PBA at 0x3000, 65 vectors, 512-byte blocks), so a driver
// (examples/nvme) can be unit-tested without a guest. It takes commands when
// a doorbell is written, reads and writes queues and data through the IOMMU
// (PRP1, PRP2, one PRP list page), and raises a CQ's MSI-X vector when the
// driver asked for one. Layouts from the NVMe 1.4 base specification. It is
// no conformance model: what it does not know it answers with Invalid Opcode.

import type { AccessWidth } from '../native';
import type { DeviceBus, DeviceModel } from './device-model';

const MSIX = 2; // VFIO_PCI_MSIX_IRQ_INDEX
const PAGE = 4096;
const DEPTH_MAX = 2048;
const SC_INVALID_OPCODE = 0x01;
const SC_INVALID_FIELD = 0x02;
const SC_INVALID_QID = 0x101;

interface Queue {
  iova: bigint;
  size: number;
  /** SQ: head (what the model took); CQ: tail (where it posts next). */
  at: number;
  /** CQ: phase tag; SQ: the CQ it completes on. */
  phaseOrCq: number;
  /** SQ: the tail the driver rang; CQ: head it rang (unused). */
  doorbell: number;
  /** CQ: MSI-X vector, or -1 without interrupts. */
  vector: number;
}

/** What the mock NVMe controller is made with. */
export interface NvmeModelOptions {
  /** Serial number Identify Controller returns. */
  serial?: string;
  /** Namespace size in 512-byte blocks (default 32768: 16 MiB). */
  blocks?: number;
}

export class NvmeModel implements DeviceModel {
  readonly vendorId = 0x1b36;
  readonly deviceId = 0x0010;
  readonly bar0Size = 0x4000;
  readonly msix = { vectors: 65, tableOffset: 0x2000, pbaOffset: 0x3000 };
  /** The namespace's bytes. */
  readonly disk: Uint8Array;
  readonly serial: string;
  /** Commands taken, for a test to count. */
  commands = 0;
  #bus: DeviceBus | null = null;
  #cc = 0;
  #csts = 0;
  #aqa = 0;
  #asq = 0n;
  #acq = 0n;
  readonly #sqs = new Map<number, Queue>();
  readonly #cqs = new Map<number, Queue>();

  constructor(options: NvmeModelOptions = {}) {
    this.serial = options.serial ?? 'mock-nvme';
    this.disk = new Uint8Array((options.blocks ?? 32768) * 512);
  }

  attach(bus: DeviceBus): void {
    this.#bus = bus;
  }

  read(offset: number, width: AccessWidth): number | bigint {
    const v = this.#register(offset);
    if (width === 8) return v;
    return Number((v >> BigInt((offset % 8) * 8)) & ((1n << BigInt(width * 8)) - 1n));
  }

  write(offset: number, width: AccessWidth, value: number | bigint): void {
    const v = Number(BigInt(value) & 0xffffffffn);
    if (offset >= 0x1000 && offset < 0x2000) return this.#doorbell((offset - 0x1000) >> 2, v);
    switch (offset) {
      case 0x14:
        return this.#setCc(v);
      case 0x24:
        this.#aqa = v;
        return;
      case 0x28:
      case 0x2c:
        this.#asq = merge64(this.#asq, offset - 0x28, width, value);
        return;
      case 0x30:
      case 0x34:
        this.#acq = merge64(this.#acq, offset - 0x30, width, value);
        return;
    }
  }

  #register(offset: number): bigint {
    switch (offset & ~7) {
      case 0x00: // CAP: MQES 2047, CQR, TO 15 (7.5 s), DSTRD 0, CSS NVM
        return BigInt(DEPTH_MAX - 1) | (1n << 16n) | (15n << 24n) | (1n << 37n);
      case 0x08:
        return 0x10400n; // VS 1.4; INTMS at 0x0c reads 0
      case 0x10:
        return BigInt(this.#cc) << 32n; // INTMC at 0x10 reads 0, CC at 0x14
      case 0x18:
        return BigInt(this.#csts) << 32n; // CSTS at 0x1c
      case 0x20:
        return BigInt(this.#aqa) << 32n; // AQA at 0x24
      case 0x28:
        return this.#asq;
      case 0x30:
        return this.#acq;
    }
    return 0n;
  }

  #setCc(v: number): void {
    const wasOn = (this.#cc & 1) !== 0;
    this.#cc = v;
    if (v & 1 && !wasOn) {
      this.#cqs.set(0, { iova: this.#acq, size: ((this.#aqa >> 16) & 0xfff) + 1, at: 0, phaseOrCq: 1, doorbell: 0, vector: 0 });
      this.#sqs.set(0, { iova: this.#asq, size: (this.#aqa & 0xfff) + 1, at: 0, phaseOrCq: 0, doorbell: 0, vector: -1 });
      this.#csts = 1;
    } else if (!(v & 1)) {
      this.#sqs.clear();
      this.#cqs.clear();
      this.#csts = 0;
    }
  }

  #doorbell(index: number, value: number): void {
    if (index % 2 === 1) return; // a CQ head: the model never runs out of room
    const sq = this.#sqs.get(index / 2);
    if (!sq) return;
    sq.doorbell = value;
    while (sq.at !== sq.doorbell) {
      const bytes = this.#bus!.dmaRead(sq.iova + BigInt(sq.at * 64), 64);
      sq.at = (sq.at + 1) % sq.size;
      this.#execute(index / 2, sq, new DataView(bytes.buffer, bytes.byteOffset, 64));
    }
  }

  #execute(sqid: number, sq: Queue, cmd: DataView): void {
    this.commands++;
    const opcode = cmd.getUint8(0);
    const cid = cmd.getUint16(2, true);
    let status: number;
    let result = 0;
    try {
      status = sqid === 0 ? this.#admin(opcode, cmd) : this.#io(opcode, cmd);
    } catch {
      status = 0x04; // Data Transfer Error: the IOMMU refused the DMA
    }
    if (opcode === 0x09 && status === 0) result = cmd.getUint32(44, true);
    this.#post(sq.phaseOrCq, sqid, sq.at, cid, status, result);
  }

  #post(cqid: number, sqid: number, sqHead: number, cid: number, status: number, result: number): void {
    const cq = this.#cqs.get(cqid);
    if (!cq) return;
    const entry = new DataView(new ArrayBuffer(16));
    entry.setUint32(0, result, true);
    entry.setUint16(8, sqHead, true);
    entry.setUint16(10, sqid, true);
    entry.setUint16(12, cid, true);
    entry.setUint16(14, (status << 1) | cq.phaseOrCq, true);
    this.#bus!.dmaWrite(cq.iova + BigInt(cq.at * 16), new Uint8Array(entry.buffer));
    if (++cq.at === cq.size) {
      cq.at = 0;
      cq.phaseOrCq ^= 1;
    }
    if (cq.vector >= 0 && this.#bus!.irqEnabled(MSIX, cq.vector)) this.#bus!.raise(MSIX, cq.vector);
  }

  #admin(opcode: number, cmd: DataView): number {
    const cdw10 = cmd.getUint32(40, true);
    const cdw11 = cmd.getUint32(44, true);
    const qid = cdw10 & 0xffff;
    const size = (cdw10 >>> 16) + 1;
    const prp1 = cmd.getBigUint64(24, true);
    switch (opcode) {
      case 0x06: // Identify
        return this.#identify(cdw10 & 0xff, cmd.getUint32(4, true), prp1);
      case 0x09: // Set Features
        return 0;
      case 0x05: // Create I/O CQ
        if (qid === 0 || this.#cqs.has(qid)) return SC_INVALID_QID;
        this.#cqs.set(qid, { iova: prp1, size, at: 0, phaseOrCq: 1, doorbell: 0, vector: cdw11 & 2 ? cdw11 >>> 16 : -1 });
        return 0;
      case 0x01: // Create I/O SQ
        if (qid === 0 || this.#sqs.has(qid) || !this.#cqs.has(cdw11 >>> 16)) return SC_INVALID_QID;
        this.#sqs.set(qid, { iova: prp1, size, at: 0, phaseOrCq: cdw11 >>> 16, doorbell: 0, vector: -1 });
        return 0;
      case 0x00: // Delete I/O SQ
        return qid !== 0 && this.#sqs.delete(qid) ? 0 : SC_INVALID_QID;
      case 0x04: // Delete I/O CQ
        return qid !== 0 && this.#cqs.delete(qid) ? 0 : SC_INVALID_QID;
    }
    return SC_INVALID_OPCODE;
  }

  #identify(cns: number, nsid: number, prp1: bigint): number {
    const d = new Uint8Array(PAGE);
    const v = new DataView(d.buffer);
    if (cns === 1) {
      d.fill(0x20, 4, 72);
      d.set(Buffer.from(this.serial.slice(0, 20), 'latin1'), 4);
      d.set(Buffer.from('Mock NVMe Ctrl', 'latin1'), 24);
      d.set(Buffer.from('1.0', 'latin1'), 64);
      d[77] = 7; // MDTS: 2^7 pages
      v.setUint32(516, 1, true);
    } else if (cns === 0 && nsid === 1) {
      const blocks = BigInt(this.disk.length / 512);
      v.setBigUint64(0, blocks, true);
      v.setBigUint64(8, blocks, true);
      d[128 + 2] = 9; // LBA format 0: 512-byte blocks
    } else {
      return SC_INVALID_FIELD;
    }
    this.#bus!.dmaWrite(prp1, d);
    return 0;
  }

  #io(opcode: number, cmd: DataView): number {
    if (opcode !== 0x01 && opcode !== 0x02) return SC_INVALID_OPCODE;
    const slba = Number(cmd.getBigUint64(40, true));
    const bytes = ((cmd.getUint32(48, true) & 0xffff) + 1) * 512;
    if (cmd.getUint32(4, true) !== 1 || (slba * 512 + bytes > this.disk.length)) return SC_INVALID_FIELD;
    const pages = this.#pages(cmd.getBigUint64(24, true), cmd.getBigUint64(32, true), bytes);
    let at = slba * 512;
    for (const [iova, n] of pages) {
      if (opcode === 0x01) this.disk.set(this.#bus!.dmaRead(iova, n), at);
      else this.#bus!.dmaWrite(iova, this.disk.subarray(at, at + n));
      at += n;
    }
    return 0;
  }

  /** The (iova, length) pieces PRP1/PRP2 describe for `bytes`. */
  #pages(prp1: bigint, prp2: bigint, bytes: number): [bigint, number][] {
    const first = Math.min(bytes, PAGE - Number(prp1 % BigInt(PAGE)));
    const out: [bigint, number][] = [[prp1, first]];
    let left = bytes - first;
    if (left === 0) return out;
    if (left <= PAGE) return [...out, [prp2, left]];
    const list = this.#bus!.dmaRead(prp2, Math.ceil(left / PAGE) * 8);
    const v = new DataView(list.buffer, list.byteOffset, list.byteLength);
    for (let i = 0; left > 0; i++, left -= PAGE) out.push([v.getBigUint64(i * 8, true), Math.min(PAGE, left)]);
    return out;
  }
}

/** A 64-bit register after a `width`-byte write of `value` at byte `at` of it. */
function merge64(old: bigint, at: number, width: AccessWidth, value: number | bigint): bigint {
  const shift = BigInt(at * 8);
  const mask = ((1n << BigInt(width * 8)) - 1n) << shift;
  return (old & ~mask) | ((BigInt(value) << shift) & mask);
}
