// vfio/testing: test your VFIO code without a VFIO machine.
//
// MockKernel is a twin of the addon, modelled on what the real kernel did in
// the project's test guest and held to a recording of its answers
// (test/fixtures/kernel-answers.json) in the project's own CI: the same rule
// checks, the same errnos. Plug scriptable devices in (registers, BAR
// contents, DMA through the IOMMU into the buffers your code mapped,
// interrupts raised from the test), and inject kernel failures ("the 2nd
// VFIO_IOMMU_MAP_DMA fails with ENOMEM"). It never stands in for the real
// kernel: run the same code in `vfio guest` for that.

export {
  MockKernel,
  MockContainer,
  MockGroup,
  MockDevice,
  MockDmaBuffer,
  MockEventFd,
  MockKvm,
  MockVm,
  MockKvmDevice,
  type MockGroupSpec,
  type MockFile,
  type IommuFault,
} from './kernel';
export type { DeviceBus, DeviceModel } from './device-model';
export { EduModel } from './edu';
export { NvmeModel, type NvmeModelOptions } from './nvme';
export type { ErrnoCode, Fault, FaultSpec, Faults } from './faults';
export { addonFaults } from './addon-faults';
