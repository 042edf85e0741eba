// An iommufd (/dev/iommu): IO address spaces (IOAS) and their mappings.
// Object ids (an IOAS, a device's bond) live inside this fd; the kernel
// frees them all when it closes.
#pragma once

#include <napi.h>

#include "wrap.h"

namespace vfio {

class IommuFd : public FdWrap<IommuFd> {
 public:
  static constexpr const char kClassName[] = "IommuFd";

  static void Init(Napi::Env env, Napi::Object exports);
  explicit IommuFd(const Napi::CallbackInfo& info) : Base(info) {}

 private:
  Napi::Value IoasAlloc(const Napi::CallbackInfo& info);
  Napi::Value Destroy(const Napi::CallbackInfo& info);
  Napi::Value IoasIovaRanges(const Napi::CallbackInfo& info);
  Napi::Value IoasAllowIovas(const Napi::CallbackInfo& info);
  Napi::Value IoasMap(const Napi::CallbackInfo& info);
  Napi::Value IoasMapAsync(const Napi::CallbackInfo& info);
  Napi::Value IoasUnmap(const Napi::CallbackInfo& info);
  Napi::Value IoasUnmapAsync(const Napi::CallbackInfo& info);
};

}  // namespace vfio
