// sPAPR TCE IOMMU (POWER) and EEH. Compiled on every architecture and issued
// as asked; elsewhere the kernel answers for itself (ENOTTY, EINVAL).
// Beware: request numbers are shared between IOMMU models. On a type1
// container SPAPR_TCE_GET_INFO is VFIO_IOMMU_GET_INFO (it succeeds and fills
// the struct with type1 fields) and REGISTER_MEMORY is VFIO_IOMMU_DIRTY_PAGES;
// the kernel bounds every write by argsz, so this is wrong but never unsafe.
// Knowing which model the container has is lib/'s job.
#include <linux/vfio.h>

#include "container.h"
#include "dma_buffer.h"
#include "js_values.h"

namespace vfio {

namespace {

vfio_iommu_spapr_register_memory ParseRegister(const Napi::CallbackInfo& info) {
  DmaBuffer* buffer = UnwrapArg<DmaBuffer>(info, 0, "buffer");
  uint64_t offset = ArgSafeUint(info, 1, "offset");
  uint64_t size = ArgSafeUint(info, 2, "size");
  vfio_iommu_spapr_register_memory reg{};
  reg.argsz = sizeof reg;
  reg.vaddr = buffer->Vaddr(info.Env(), offset, size);
  reg.size = size;
  return reg;
}

}  // namespace

Napi::Value Container::SpaprGetInfo(const Napi::CallbackInfo& info) {
  Napi::Env env = info.Env();
  int fd = Require(env);
  vfio_iommu_spapr_tce_info tce{};
  tce.argsz = sizeof tce;
  VFIO_IOCTL(env, fd, VFIO_IOMMU_SPAPR_TCE_GET_INFO, &tce);
  Napi::Value ddw = env.Null();
  if (tce.flags & VFIO_IOMMU_SPAPR_INFO_DDW) {
    ddw = Fields(env, {{"pgsizes", U64(env, tce.ddw.pgsizes)},
                       {"maxDynamicWindowsSupported", U32(env, tce.ddw.max_dynamic_windows_supported)},
                       {"levels", U32(env, tce.ddw.levels)}});
  }
  return Fields(env, {{"flags", U32(env, tce.flags)},
                      {"dma32WindowStart", U64(env, tce.dma32_window_start)},
                      {"dma32WindowSize", U64(env, tce.dma32_window_size)},
                      {"ddw", ddw}});
}

Napi::Value Container::Enable(const Napi::CallbackInfo& info) {
  VFIO_IOCTL(info.Env(), Require(info.Env()), VFIO_IOMMU_ENABLE, nullptr);
  return info.Env().Undefined();
}

Napi::Value Container::Disable(const Napi::CallbackInfo& info) {
  VFIO_IOCTL(info.Env(), Require(info.Env()), VFIO_IOMMU_DISABLE, nullptr);
  return info.Env().Undefined();
}

Napi::Value Container::SpaprRegisterMemory(const Napi::CallbackInfo& info) {
  int fd = Require(info.Env());
  vfio_iommu_spapr_register_memory reg = ParseRegister(info);
  VFIO_IOCTL(info.Env(), fd, VFIO_IOMMU_SPAPR_REGISTER_MEMORY, &reg);
  return info.Env().Undefined();
}

Napi::Value Container::SpaprUnregisterMemory(const Napi::CallbackInfo& info) {
  int fd = Require(info.Env());
  vfio_iommu_spapr_register_memory reg = ParseRegister(info);
  VFIO_IOCTL(info.Env(), fd, VFIO_IOMMU_SPAPR_UNREGISTER_MEMORY, &reg);
  return info.Env().Undefined();
}

Napi::Value Container::SpaprCreateWindow(const Napi::CallbackInfo& info) {
  int fd = Require(info.Env());
  vfio_iommu_spapr_tce_create create{};
  create.argsz = sizeof create;
  create.page_shift = ArgUint32(info, 0, "pageShift");
  create.window_size = ArgBigUint64(info, 1, "windowSize");
  create.levels = ArgUint32(info, 2, "levels");
  VFIO_IOCTL(info.Env(), fd, VFIO_IOMMU_SPAPR_TCE_CREATE, &create);
  return U64(info.Env(), create.start_addr);
}

Napi::Value Container::SpaprRemoveWindow(const Napi::CallbackInfo& info) {
  int fd = Require(info.Env());
  vfio_iommu_spapr_tce_remove remove{};
  remove.argsz = sizeof remove;
  remove.start_addr = ArgBigUint64(info, 0, "start");
  VFIO_IOCTL(info.Env(), fd, VFIO_IOMMU_SPAPR_TCE_REMOVE, &remove);
  return info.Env().Undefined();
}

// Only the op is passed: the err union that VFIO_EEH_PE_INJECT_ERR reads
// goes to the kernel zeroed.
Napi::Value Container::EehPeOp(const Napi::CallbackInfo& info) {
  int fd = Require(info.Env());
  vfio_eeh_pe_op op{};
  op.argsz = sizeof op;
  op.op = ArgUint32(info, 0, "op");
  return Napi::Number::New(info.Env(), VFIO_IOCTL(info.Env(), fd, VFIO_EEH_PE_OP, &op));
}

}  // namespace vfio
