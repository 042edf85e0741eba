// A VFIO device fd (from VFIO_GROUP_GET_DEVICE_FD, or a device cdev opened
// at /dev/vfio/devices/vfioN): info, regions, irqs, register access by
// pread/pwrite, and region mmaps.
#pragma once

#include <napi.h>

#include "wrap.h"

namespace vfio {

class Device : public FdWrap<Device> {
 public:
  static constexpr const char kClassName[] = "Device";

  static void Init(Napi::Env env, Napi::Object exports);
  explicit Device(const Napi::CallbackInfo& info) : Base(info) {}

 private:
  Napi::Value GetInfo(const Napi::CallbackInfo& info);
  Napi::Value GetRegionInfo(const Napi::CallbackInfo& info);
  Napi::Value GetIrqInfo(const Napi::CallbackInfo& info);
  Napi::Value SetIrqsEventfds(const Napi::CallbackInfo& info);
  Napi::Value SetIrqsNone(const Napi::CallbackInfo& info);
  Napi::Value Reset(const Napi::CallbackInfo& info);
  // PCI hot reset (device_reset.cc)
  Napi::Value GetPciHotResetInfo(const Napi::CallbackInfo& info);
  Napi::Value PciHotReset(const Napi::CallbackInfo& info);
  Napi::Value Read(const Napi::CallbackInfo& info);
  Napi::Value Write(const Napi::CallbackInfo& info);
  Napi::Value ReadBytes(const Napi::CallbackInfo& info);
  Napi::Value WriteBytes(const Napi::CallbackInfo& info);
  Napi::Value Mmap(const Napi::CallbackInfo& info);
  // Device cdev: its iommufd bond and IOAS attachment (device_cdev.cc)
  static void InitCdev(Napi::Env env, Napi::Object exports);
  Napi::Value BindIommufd(const Napi::CallbackInfo& info);
  Napi::Value AttachIommufdPt(const Napi::CallbackInfo& info);
  Napi::Value DetachIommufdPt(const Napi::CallbackInfo& info);
};

}  // namespace vfio
