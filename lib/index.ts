// vfio: Linux VFIO and KVM-VFIO for Node.js.

export { Container, type ContainerOptions, type IommuType } from './container';
export { Group, type GroupOptions, type GroupStatus } from './group';
export { Device, type DeviceInfo, type CdevOptions } from './device';
export { IommuFd, type IommuFdOptions, type IommuFdDeviceOptions } from './iommufd';
export { Ioas, type IoasRanges, type IovaWindow } from './ioas';
export { Region, RegionMapping, type SparseArea } from './region';
export type { BarRange, MsixCapability } from './msix';
export { Irq } from './irq';
export { DmaBuffer, type DmaBufferOptions, type FromFdOptions, type MemfdOptions } from './dma-buffer';
export { DmaMapping } from './dma-mapping';
export { Iommu, type IommuKind, type MapOptions, type IovaRangeSpec } from './iommu';
export { Type1Iommu, type Type1Info } from './type1';
export { SpaprTceIommu, DmaWindow, MemoryRegistration, type SpaprInfo, type SpaprOptions } from './spapr';
export { Kvm, Vm, KvmVfioDevice } from './kvm';
export { Irqfd } from './irqfd';
export { KvmSlot } from './kvm-slot';
export { Vcpu, type VcpuExit, type VcpuRegisters, type VcpuSegment } from './vcpu';
export { VfioError, VfioSystemError, RuleCode, type RuleCodeValue } from './errors';
export { VfioArgumentError, VfioRangeError, ArgCode, type ArgCodeValue } from './args';
export { hex, type Iova } from './iova';
/** Discovery and binding over sysfs: IOMMU groups, PCI devices, binding to vfio-pci and back, host checks. */
export * as sysfs from './sysfs';

import { native } from './native';

/** Constants from <linux/vfio.h> and <linux/kvm.h>, as compiled into the addon. */
export function constants(): Readonly<Record<string, number>> {
  return native().constants;
}
