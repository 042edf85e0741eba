// QEMU's edu teaching device as a mock device model, so a driver for it
// (examples/edu) can be unit-tested without a guest. Register semantics
// from QEMU's docs/specs/edu.rst and what QEMU 7.2's edu did in the test
// guest: 4-byte registers below 0x80, 4- or 8-byte from 0x80 up, unknown
// registers read as ~0, a 4 KiB buffer at 0x40000, DMA only with bus
// mastering on, MSI when the driver enabled it, else INTx.

import type { AccessWidth } from '../native';
import type { DeviceBus, DeviceModel } from './device-model';

const MSI = 1;
const INTX = 0;
const BUFFER = 0x40000;
const BUFFER_SIZE = 4096;
const DMA_IRQ = 0x100;
const FACTORIAL_IRQ = 0x1;

export class EduModel implements DeviceModel {
  readonly vendorId = 0x1234;
  readonly deviceId = 0x11e8;
  readonly bar0Size = 1 << 20;
  /** The device's own 4 KiB DMA buffer (device address 0x40000). */
  readonly buffer = new Uint8Array(BUFFER_SIZE);
  /** What the device refused, as QEMU logs it (a DMA out of its buffer aborts QEMU 7.2 itself). */
  readonly errors: string[] = [];
  /** DMAs done, for a test to count. */
  dmaCount = 0;
  /** edu's dma_mask property (default 28 bits): a RAM address is clamped to it, as QEMU's edu does. */
  dmaMask = (1n << 28n) - 1n;
  #bus: DeviceBus | null = null;
  #liveness = 0;
  #factorial = 0;
  #status = 0;
  #irqStatus = 0;
  #dma = { src: 0n, dst: 0n, count: 0n, cmd: 0n };

  attach(bus: DeviceBus): void {
    this.#bus = bus;
  }

  /** The irq status register (0x24), as the driver would read it. */
  get irqStatus(): number {
    return this.#irqStatus;
  }

  read(offset: number, width: AccessWidth): number | bigint {
    if (offset >= 0x80 && offset < 0xa0 && offset % 8 === 0) {
      const v = this.#dmaRegister(offset);
      return width === 8 ? v : Number(v & 0xffffffffn);
    }
    if (width !== 4) return width === 8 ? 0xffffffffffffffffn : 2 ** (width * 8) - 1;
    switch (offset) {
      case 0x00:
        return 0x010000ed;
      case 0x04:
        return ~this.#liveness >>> 0;
      case 0x08:
        return this.#factorial;
      case 0x20:
        return this.#status;
      case 0x24:
        return this.#irqStatus;
      default:
        return 0xffffffff;
    }
  }

  write(offset: number, width: AccessWidth, value: number | bigint): void {
    if (offset >= 0x80 && offset < 0xa0 && offset % 8 === 0 && (width === 4 || width === 8)) return this.#dmaWrite(offset, BigInt(value));
    if (width !== 4) return;
    const v = Number(value);
    switch (offset) {
      case 0x04:
        this.#liveness = v;
        return;
      case 0x08:
        this.#factorial = factorial(v);
        if (this.#status & 0x80) this.#raise(FACTORIAL_IRQ);
        return;
      case 0x20:
        this.#status = (this.#status & ~0x80) | (v & 0x80);
        return;
      case 0x60:
        this.#raise(v);
        return;
      case 0x64:
        this.#irqStatus &= ~v;
        return;
    }
  }

  #dmaRegister(offset: number): bigint {
    const d = this.#dma;
    return [d.src, d.dst, d.count, d.cmd][(offset - 0x80) / 8];
  }

  // A 4-byte write at the base sets the whole register, as QEMU's edu does.
  #dmaWrite(offset: number, value: bigint): void {
    const key = (['src', 'dst', 'count', 'cmd'] as const)[(offset - 0x80) / 8];
    this.#dma[key] = value;
    if (key === 'cmd' && value & 1n) this.#runDma();
  }

  #runDma(): void {
    const { src, dst, count, cmd } = this.#dma;
    const bus = this.#bus;
    const toRam = (cmd & 2n) !== 0n;
    const devAddr = toRam ? src : dst;
    let ramAddr = toRam ? dst : src;
    if ((ramAddr & this.dmaMask) !== ramAddr) {
      // QEMU's edu goes on with the clamped address: with no IOMMU that is other memory.
      this.errors.push(`EDU: clamping DMA 0x${ramAddr.toString(16)} to 0x${(ramAddr & this.dmaMask).toString(16)}`);
      ramAddr &= this.dmaMask;
    }
    const n = Number(count);
    this.#dma.cmd &= ~1n;
    if (devAddr < BigInt(BUFFER) || devAddr + count > BigInt(BUFFER + BUFFER_SIZE - 1) || n === 0) {
      this.errors.push(`EDU: DMA range 0x${devAddr.toString(16)}+0x${count.toString(16)} out of bounds`);
      return;
    }
    if (!bus?.busMaster) {
      this.errors.push('EDU: DMA with bus mastering off (dropped)');
      return;
    }
    const at = Number(devAddr) - BUFFER;
    try {
      if (toRam) bus.dmaWrite(ramAddr, this.buffer.subarray(at, at + n));
      else this.buffer.set(bus.dmaRead(ramAddr, n), at);
      this.dmaCount++;
    } catch (e) {
      // An IOMMU fault drops the DMA; the bus recorded it. edu still completes.
      // A stray noiommu DMA is modelled the same way (on a machine it hits whatever memory is there).
      const code = (e as { code?: string }).code;
      if (code !== 'ERR_MOCK_IOMMU_FAULT' && code !== 'ERR_MOCK_STRAY_DMA') throw e;
    }
    if (cmd & 4n) this.#raise(DMA_IRQ);
  }

  #raise(bits: number): void {
    this.#irqStatus |= bits;
    const bus = this.#bus;
    if (!bus) return;
    if (bus.irqEnabled(MSI)) bus.raise(MSI);
    else bus.raise(INTX);
  }
}

function factorial(n: number): number {
  let f = 1;
  for (let i = 2; i <= n; i++) f = Math.imul(f, i) >>> 0;
  return f;
}
