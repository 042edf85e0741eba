// Where a PCI device keeps its MSI-X table and PBA (the MSI-X capability in
// config space, PCI Local Bus 3.0 §6.8.2), and what that means for BAR
// mmaps: the kernel owns the table (it writes the vectors vfio-pci sets up),
// so a BAR page holding it is mmappable only when the kernel says so
// (VFIO_REGION_INFO_CAP_MSIX_MAPPABLE, Linux 4.16+ with interrupt remapping
// or always on x86) or when its sparse areas leave the page in.

import type { Device } from './device';
import type { SparseArea } from './region';

const PCI_STATUS = 0x06;
const PCI_STATUS_CAP_LIST = 0x10;
const PCI_CAPABILITY_LIST = 0x34;
const PCI_CAP_ID_MSIX = 0x11;
const PCI_MSIX_FLAGS = 2;
const PCI_MSIX_TABLE = 4;
const PCI_MSIX_PBA = 8;
const PCI_MSIX_FLAGS_QSIZE = 0x7ff;
const PCI_MSIX_BIR = 0x7;
const MSIX_ENTRY_SIZE = 16;

/** A part of a BAR: which BAR, where in it, how many bytes. */
export interface BarRange {
  bar: number;
  offset: number;
  size: number;
}

/** The MSI-X capability as config space states it. */
export interface MsixCapability {
  /** Offset of the capability in config space. */
  capOffset: number;
  /** Table size: the vectors the function has. */
  vectors: number;
  /** The vector table (16 bytes a vector). */
  table: BarRange;
  /** The pending bit array (one bit a vector, in 64-bit words). */
  pba: BarRange;
}

/** Walks the capability list of `device`'s config space; null when it has no MSI-X capability. */
export function readMsixCapability(device: Device): MsixCapability | null {
  const cfg = device.config;
  if ((cfg.read16(PCI_STATUS) & PCI_STATUS_CAP_LIST) === 0) return null;
  let at = cfg.read8(PCI_CAPABILITY_LIST) & ~3;
  // 48 capabilities fill the standard 256 bytes: a longer walk is a loop.
  for (let n = 0; at >= 0x40 && n < 48; n++) {
    if (cfg.read8(at) === PCI_CAP_ID_MSIX) {
      const vectors = (cfg.read16(at + PCI_MSIX_FLAGS) & PCI_MSIX_FLAGS_QSIZE) + 1;
      const table = cfg.read32(at + PCI_MSIX_TABLE);
      const pba = cfg.read32(at + PCI_MSIX_PBA);
      return {
        capOffset: at,
        vectors,
        table: { bar: table & PCI_MSIX_BIR, offset: table - (table & PCI_MSIX_BIR), size: vectors * MSIX_ENTRY_SIZE },
        pba: { bar: pba & PCI_MSIX_BIR, offset: pba - (pba & PCI_MSIX_BIR), size: Math.ceil(vectors / 64) * 8 },
      };
    }
    at = cfg.read8(at + 1) & ~3;
  }
  return null;
}

/** The pages of `bar` that hold the MSI-X table, as one page-aligned range; null when the table is elsewhere. */
export function msixTablePages(msix: MsixCapability | null, bar: number, page: number): SparseArea | null {
  if (!msix || msix.table.bar !== bar) return null;
  const start = Math.floor(msix.table.offset / page) * page;
  const end = Math.ceil((msix.table.offset + msix.table.size) / page) * page;
  return { offset: BigInt(start), size: BigInt(end - start) };
}

/** `areas` with `hole` cut out (each area keeps the parts before and after it). */
export function withoutRange(areas: readonly SparseArea[], hole: SparseArea | null): SparseArea[] {
  if (!hole) return [...areas];
  const holeEnd = hole.offset + hole.size;
  const out: SparseArea[] = [];
  for (const a of areas) {
    const end = a.offset + a.size;
    if (end <= hole.offset || a.offset >= holeEnd) {
      out.push(a);
      continue;
    }
    if (a.offset < hole.offset) out.push({ offset: a.offset, size: hole.offset - a.offset });
    if (end > holeEnd) out.push({ offset: holeEnd, size: end - holeEnd });
  }
  return out;
}
