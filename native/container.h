// A VFIO container (/dev/vfio/vfio): the IOMMU context groups attach to.
#pragma once

#include <napi.h>

#include "wrap.h"

namespace vfio {

class Container : public FdWrap<Container> {
 public:
  static constexpr const char kClassName[] = "Container";

  static void Init(Napi::Env env, Napi::Object exports);
  explicit Container(const Napi::CallbackInfo& info) : Base(info) {}

 private:
  Napi::Value GetApiVersion(const Napi::CallbackInfo& info);
  Napi::Value CheckExtension(const Napi::CallbackInfo& info);
  Napi::Value SetIommu(const Napi::CallbackInfo& info);

  // Type1 (container_type1.cc)
  Napi::Value Type1GetInfo(const Napi::CallbackInfo& info);
  Napi::Value MapDma(const Napi::CallbackInfo& info);
  Napi::Value MapDmaAsync(const Napi::CallbackInfo& info);
  Napi::Value MapDmaRegion(const Napi::CallbackInfo& info);
  Napi::Value UnmapDma(const Napi::CallbackInfo& info);
  Napi::Value UnmapDmaAsync(const Napi::CallbackInfo& info);

  // sPAPR TCE and EEH (container_spapr.cc)
  Napi::Value SpaprGetInfo(const Napi::CallbackInfo& info);
  Napi::Value Enable(const Napi::CallbackInfo& info);
  Napi::Value Disable(const Napi::CallbackInfo& info);
  Napi::Value SpaprRegisterMemory(const Napi::CallbackInfo& info);
  Napi::Value SpaprUnregisterMemory(const Napi::CallbackInfo& info);
  Napi::Value SpaprCreateWindow(const Napi::CallbackInfo& info);
  Napi::Value SpaprRemoveWindow(const Napi::CallbackInfo& info);
  Napi::Value EehPeOp(const Napi::CallbackInfo& info);
};

}  // namespace vfio
