// Discovery over sysfs: IOMMU groups, PCI devices, their drivers, and the
// /dev/vfio nodes; binding devices to vfio-pci and back; host checks.
// Every function takes the sysfs/dev/proc roots so tests can use a fixture tree.

export type { SysfsOptions, AccessOptions, Credentials, NodeAccess } from './options';
export type { PciDeviceInfo } from './pci';
export {
  readPciDevice,
  listPciDevices,
  normalizeAddress,
  parseVendorDevice,
  resolveDeviceSpec,
  isBridge,
  formatId,
  describeClass,
} from './pci';
export type { IommuGroupInfo, GroupOptions, ViabilityRule } from './groups';
export {
  listIommuGroups,
  listIommuGroupIds,
  readIommuGroup,
  iommuGroupOf,
  groupOfDevice,
  explainNotViable,
  viabilityFix,
  assertViable,
  isVfioDriver,
  keepsGroupViable,
  viabilityRule,
} from './groups';
export type { DeviceUse } from './in-use';
export { deviceUses, groupUsers } from './in-use';
export type { BindOptions, BindingChange, SysfsWriter } from './bind';
export { bindToVfio, unbindFromVfio, bindAllToVfio, bindGroupToVfio, unbindGroupFromVfio, VFIO_PCI } from './bind';
export type { StateOptions, BindingRecord, ProcessId } from './state';
export { readBindingRecord, stateFile } from './state';
export type { ScopedBinding } from './scoped';
export { bindScoped, withBinding, restoreStaleBindings } from './scoped';
export type { DoctorCheck, DoctorReport, DoctorOptions, CheckStatus } from './doctor';
export { runDoctor, readMemlockLimit, hasIpcLock } from './doctor';
export type { VfioInterfaceName, VfioInterface, HostInterfaces, DeviceInterfaces, ConfigValue } from './interfaces';
export { detectInterfaces, deviceInterfaces, listDeviceInterfaces, VFIO_INTERFACES } from './interfaces';
export { parseSize, formatSize } from './size';
