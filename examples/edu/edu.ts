// A userspace driver for QEMU's `edu` teaching device, written against the
// public API only. Register map (QEMU docs/specs/edu.rst):
//   0x00 ident  0x04 liveness (reads back ~value)  0x08 factorial
//   0x20 status (bit0 computing, bit7 irq on factorial)  0x24 irq status
//   0x60 raise irq  0x64 ack irq
//   0x80 DMA source  0x88 DMA destination  0x90 DMA count
//   0x98 DMA command (bit0 start, bit1 device→RAM, bit2 irq when done)
// The device's DMA buffer is at 0x40000 in its own address space.

import type { Device, Irq, RegionMapping } from '../../lib';

const IDENT = 0x00;
const LIVENESS = 0x04;
const FACTORIAL = 0x08;
const STATUS = 0x20;
const IRQ_STATUS = 0x24;
const IRQ_RAISE = 0x60;
const IRQ_ACK = 0x64;
const DMA_SRC = 0x80;
const DMA_DST = 0x88;
const DMA_COUNT = 0x90;
const DMA_CMD = 0x98;

const STATUS_COMPUTING = 0x01;
const CMD_START = 0x1;
const CMD_TO_RAM = 0x2;
const CMD_IRQ = 0x4;
/** The irq status bit edu sets when a DMA completes. */
export const DMA_IRQ = 0x100;

/** Device-side address of edu's DMA buffer. */
export const EDU_BUFFER = 0x40000;
/** QEMU 7.2's edu aborts on a DMA of its whole 4 KiB buffer (off by one): stay below. */
export const EDU_MAX_DMA = 4095;

export interface EduOptions {
  /** edu's MMIO is big-endian on ppc64 guests: swap register values there. */
  bigEndian?: boolean;
}

export class Edu {
  readonly device: Device;
  readonly irq: Irq;
  readonly #bar: RegionMapping;
  readonly #swap: boolean;

  constructor(device: Device, options: EduOptions = {}) {
    this.device = device;
    this.#bar = device.bar(0).mmap();
    this.#swap = options.bigEndian ?? false;
    device.setBusMaster(true);
    this.irq = device.msi;
    this.irq.enable();
  }

  read(reg: number): number {
    const v = this.#bar.read32(reg);
    return this.#swap ? swap32(v) : v;
  }

  write(reg: number, value: number): void {
    this.#bar.write32(reg, this.#swap ? swap32(value) : value);
  }

  /** 64-bit write (registers from 0x80 up). */
  write64(reg: number, value: bigint): void {
    this.#bar.write64(reg, this.#swap ? swap64(value) : value);
  }

  /** 0x010000ed: major 1, minor 0, 'ed'. */
  ident(): number {
    return this.read(IDENT);
  }

  /** The device inverts what is written to the liveness register. */
  isAlive(probe = 0x5a5aa5a5): boolean {
    this.write(LIVENESS, probe);
    return this.read(LIVENESS) === (~probe >>> 0);
  }

  /** n! computed by the device (polling the status register). */
  async factorial(n: number): Promise<number> {
    this.write(FACTORIAL, n);
    while (this.read(STATUS) & STATUS_COMPUTING) await new Promise((r) => setImmediate(r));
    return this.read(FACTORIAL);
  }

  /** Raise an interrupt with `bits` in the irq status register and wait for its MSI. */
  async raiseInterrupt(bits: number, timeoutMs = 5000): Promise<number> {
    const arrived = this.irq.wait(0, timeoutMs);
    this.write(IRQ_RAISE, bits);
    const count = await arrived;
    this.ack();
    return count;
  }

  /** Acknowledge every pending interrupt bit. */
  ack(): number {
    const pending = this.read(IRQ_STATUS);
    if (pending) this.write(IRQ_ACK, pending);
    return pending;
  }

  /** DMA `count` bytes from RAM (at `iova`) into the device buffer; resolves on the completion MSI. */
  toDevice(iova: bigint, count: number, deviceOffset = 0): Promise<void> {
    return this.#dma(iova, EDU_BUFFER + deviceOffset, count, 0);
  }

  /** DMA `count` bytes from the device buffer to RAM (at `iova`); resolves on the completion MSI. */
  toRam(iova: bigint, count: number, deviceOffset = 0): Promise<void> {
    return this.#dma(EDU_BUFFER + deviceOffset, iova, count, CMD_TO_RAM);
  }

  async #dma(src: bigint | number, dst: bigint | number, count: number, direction: number, timeoutMs = 10000): Promise<void> {
    if (count <= 0 || count > EDU_MAX_DMA) throw new RangeError(`edu DMAs 1..${EDU_MAX_DMA} bytes, not ${count}`);
    // A 32-bit write sets the whole 64-bit register, so addresses below
    // 4 GiB take one; above (an sPAPR dynamic window, with edu's dma_mask
    // raised) a 64-bit write.
    this.#address(DMA_SRC, BigInt(src));
    this.#address(DMA_DST, BigInt(dst));
    this.write(DMA_COUNT, count);
    const done = this.irq.wait(0, timeoutMs);
    this.write(DMA_CMD, CMD_START | direction | CMD_IRQ);
    await done;
    const status = this.ack();
    if (!(status & DMA_IRQ)) throw new Error(`edu: interrupt without DMA completion (irq status 0x${status.toString(16)})`);
  }

  #address(reg: number, value: bigint): void {
    if (value < 1n << 32n) this.write(reg, Number(value));
    else this.write64(reg, value);
  }
}

function swap64(v: bigint): bigint {
  return (BigInt(swap32(Number(v & 0xffffffffn))) << 32n) | BigInt(swap32(Number(v >> 32n)));
}

function swap32(v: number): number {
  return (((v & 0xff) << 24) | ((v & 0xff00) << 8) | ((v >>> 8) & 0xff00) | (v >>> 24)) >>> 0;
}
