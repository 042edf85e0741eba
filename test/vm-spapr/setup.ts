// What the sPAPR suite runs against: the ppc64 test guest's edu (or a POWER
// host's device bound to vfio-pci, VFIO_TEST_BDF), and the checks that the
// kernel is still well after each refusal.

import assert from 'node:assert/strict';
import { closeSync, constants, openSync, readSync } from 'node:fs';
import { Container, DmaBuffer, type DmaBufferOptions, type Group, type SpaprTceIommu } from '../../lib';
import { Edu } from '../../examples/edu/edu';
import { isEdu, testEnv } from '../vm/env';

export const GiB = 1n << 30n;

export interface Spapr {
  container: Container;
  group: Group;
  iommu: SpaprTceIommu;
  /** Opened on first use. */
  edu(): Edu;
  /** A buffer closed after the container. */
  buffer(size?: number, options?: DmaBufferOptions): DmaBuffer;
  close(): void;
}

/** A container with the device's group and the sPAPR IOMMU of this kind. */
export function openSpapr(kind: 'spapr' | 'spapr-v2'): Spapr {
  const env = testEnv();
  if (!isEdu(env.bdf)) throw new Error(`${env.bdf} is not QEMU's edu (1234:11e8): this suite drives edu registers`);
  const container = Container.open();
  const buffers: DmaBuffer[] = [];
  try {
    const group = container.openGroup(env.group);
    const iommu = container.setIommu(kind) as SpaprTceIommu;
    let edu: Edu | undefined;
    return {
      container,
      group,
      iommu,
      // edu's registers are big-endian on this QEMU target: the driver's business, not the library's.
      edu: () => (edu ??= new Edu(group.openDevice(env.bdf), { bigEndian: process.arch === 'ppc64' })),
      buffer(size = 0x10000, options = {}) {
        const b = DmaBuffer.allocate(size, options);
        buffers.push(b);
        return b;
      },
      close() {
        // Closed before the process exits: a v2 container the kernel
        // releases at exit hits a WARN in destroy_context (seen on 6.12).
        container.close();
        buffers.forEach((b) => b.close());
      },
    };
  } catch (e) {
    container.close();
    throw e;
  }
}

/** A pattern in `src`, zeros in `dst`. */
export function fillPattern(bytes: Uint8Array, seed: number): void {
  for (let i = 0; i < bytes.length; i++) bytes[i] = (i * 7 + seed) & 0xff;
}

/** RAM → edu → RAM through two IOVAs; resolves when the bytes are checked. */
export async function roundTrip(edu: Edu, src: { iova: bigint; bytes: Uint8Array }, dst: { iova: bigint; bytes: Uint8Array }, n = 1024): Promise<void> {
  fillPattern(src.bytes.subarray(0, n), n & 0xff);
  dst.bytes.fill(0);
  await edu.toDevice(src.iova, n);
  await edu.toRam(dst.iova, n);
  assert.deepEqual(Buffer.from(dst.bytes.subarray(0, n)), Buffer.from(src.bytes.subarray(0, n)), 'the bytes came back through the IOMMU');
  assert.equal(dst.bytes[n], 0, 'nothing past the count was written');
}

/**
 * The device writes to `iova` (edu DMA to RAM, from its own buffer, which
 * never holds 0x11 everywhere) and `bytes` must stay as they were: no TCE
 * translates that IOVA to them.
 */
export async function unreachable(edu: Edu, iova: bigint, bytes: Uint8Array): Promise<void> {
  bytes.fill(0x11);
  await edu.toRam(iova, 512);
  assert.ok(bytes.every((v) => v === 0x11), `a device write to iova 0x${iova.toString(16)} reached the memory`);
}

/** Kernel log records (root reads /dev/kmsg), or null where it cannot be read. */
export function kernelLog(): string[] | null {
  let fd: number;
  try {
    fd = openSync('/dev/kmsg', constants.O_RDONLY | constants.O_NONBLOCK);
  } catch {
    return null;
  }
  const records: string[] = [];
  const buf = Buffer.alloc(8192);
  try {
    for (;;) {
      let n: number;
      try {
        n = readSync(fd, buf, 0, buf.length, null);
      } catch (e) {
        if ((e as { code?: string }).code === 'EAGAIN') break;
        if ((e as { code?: string }).code === 'EPIPE') continue; // records overwritten meanwhile
        throw e;
      }
      records.push(buf.toString('utf8', 0, n));
    }
  } finally {
    closeSync(fd);
  }
  return records;
}

/** Oops, BUG and WARN records in the kernel log. */
export function kernelTrouble(): string[] {
  return (kernelLog() ?? []).filter((r) => /Oops|BUG:|WARNING:|Kernel panic|cut here/.test(r));
}
