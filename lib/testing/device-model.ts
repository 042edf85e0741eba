// A scriptable device for the mock kernel: the test (or a model such as
// EduModel) answers BAR0 accesses, DMAs through the IOMMU into the buffers
// the code under test mapped, and raises interrupts. What the kernel side
// does (vfio-pci's regions and interrupt routing, the IOMMU's translation)
// stays the mock kernel's.

import type { AccessWidth } from '../native';

/** What a device model reaches of the machine it is plugged into. */
export interface DeviceBus {
  /** The device's BDF. */
  readonly bdf: string;
  /** Bus mastering on (PCI command register bit 2 of the device as opened now): DMA is allowed. */
  readonly busMaster: boolean;
  /**
   * Read `length` bytes at `iova` through the IOMMU: from the buffers the
   * code under test mapped. An IOVA not mapped readable is an IOMMU fault:
   * recorded in kernel.iommuFaults, and this throws (code 'ERR_MOCK_IOMMU_FAULT').
   */
  dmaRead(iova: bigint, length: number): Uint8Array;
  /** Write `data` at `iova` through the IOMMU; not mapped writable: a fault, as dmaRead. */
  dmaWrite(iova: bigint, data: Uint8Array): void;
  /** Whether the driver enabled interrupt `index` (VFIO_PCI_MSI_IRQ_INDEX, ...) with an eventfd on `vector`. */
  irqEnabled(index: number, vector?: number): boolean;
  /** Signal vector `vector` of interrupt `index`: the driver's eventfd counts it, if it set one. */
  raise(index: number, vector?: number): void;
}

/** A device's behaviour: its BAR0 registers. */
export interface DeviceModel {
  /** PCI vendor and device id (config space 0x00, 0x02). */
  readonly vendorId: number;
  readonly deviceId: number;
  /** BAR0's size in bytes (a power of two, at least a page). */
  readonly bar0Size: number;
  /** An MSI-X capability (table and PBA in BAR0), or none: the device then has no MSI-X vectors. */
  readonly msix?: { vectors: number; tableOffset: number; pbaOffset: number };
  /** Called once when plugged into a kernel. */
  attach(bus: DeviceBus): void;
  /** A `width`-byte load at `offset` in BAR0 (pread or an mmap); 8-byte loads return a bigint. */
  read(offset: number, width: AccessWidth): number | bigint;
  /** A `width`-byte store at `offset` in BAR0. */
  write(offset: number, width: AccessWidth, value: number | bigint): void;
}
