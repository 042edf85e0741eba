// Module registration: one Init per kernel object family.
#include <napi.h>

#include "constants.h"
#include "container.h"
#include "device.h"
#include "dma_buffer.h"
#include "eventfd.h"
#include "faults.h"
#include "group.h"
#include "iommufd.h"
#include "kvm.h"
#include "vcpu.h"
#include "region_mmap.h"
#include "wrap.h"

namespace vfio {

Napi::Object Init(Napi::Env env, Napi::Object exports) {
  // Per environment, so worker threads each get their own classes.
  InitAddonData(env);
  Container::Init(env, exports);
  Group::Init(env, exports);
  Device::Init(env, exports);
  RegionMapping::Init(env, exports);
  DmaBuffer::Init(env, exports);
  EventFd::Init(env, exports);
  IommuFd::Init(env, exports);
  Kvm::Init(env, exports);
  Vm::Init(env, exports);
  KvmDevice::Init(env, exports);
  Vcpu::Init(env, exports);
  InitConstants(env, exports);
  InitFaults(env, exports);
  return exports;
}

}  // namespace vfio

static Napi::Object InitVfio(Napi::Env env, Napi::Object exports) { return vfio::Init(env, exports); }

NODE_API_MODULE(vfio, InitVfio)
