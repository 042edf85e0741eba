#include "container.h"

#include <linux/vfio.h>

namespace vfio {

void Container::Init(Napi::Env env, Napi::Object exports) {
  Define(env, {
                  InstanceMethod("getApiVersion", &Container::GetApiVersion),
                  InstanceMethod("checkExtension", &Container::CheckExtension),
                  InstanceMethod("setIommu", &Container::SetIommu),
                  InstanceMethod("type1GetInfo", &Container::Type1GetInfo),
                  InstanceMethod("mapDma", &Container::MapDma),
                  InstanceMethod("mapDmaAsync", &Container::MapDmaAsync),
                  InstanceMethod("unmapDma", &Container::UnmapDma),
                  InstanceMethod("unmapDmaAsync", &Container::UnmapDmaAsync),
                  InstanceMethod("spaprGetInfo", &Container::SpaprGetInfo),
                  InstanceMethod("enable", &Container::Enable),
                  InstanceMethod("disable", &Container::Disable),
                  InstanceMethod("spaprRegisterMemory", &Container::SpaprRegisterMemory),
                  InstanceMethod("spaprUnregisterMemory", &Container::SpaprUnregisterMemory),
                  InstanceMethod("spaprCreateWindow", &Container::SpaprCreateWindow),
                  InstanceMethod("spaprRemoveWindow", &Container::SpaprRemoveWindow),
                  InstanceMethod("eehPeOp", &Container::EehPeOp),
              });
  auto open = [](const Napi::CallbackInfo& info) { return OpenAs<Container>(info, "/dev/vfio/vfio"); };
  exports.Set("openContainer", Napi::Function::New(env, open, "openContainer"));
}

Napi::Value Container::GetApiVersion(const Napi::CallbackInfo& info) {
  int fd = Require(info.Env());
  return Napi::Number::New(info.Env(), VFIO_IOCTL(info.Env(), fd, VFIO_GET_API_VERSION, nullptr));
}

Napi::Value Container::CheckExtension(const Napi::CallbackInfo& info) {
  int fd = Require(info.Env());
  uint32_t extension = ArgUint32(info, 0, "extension");
  return Napi::Number::New(info.Env(), VFIO_IOCTL(info.Env(), fd, VFIO_CHECK_EXTENSION, IoctlValue(extension)));
}

Napi::Value Container::SetIommu(const Napi::CallbackInfo& info) {
  int fd = Require(info.Env());
  uint32_t type = ArgUint32(info, 0, "type");
  VFIO_IOCTL(info.Env(), fd, VFIO_SET_IOMMU, IoctlValue(type));
  return info.Env().Undefined();
}

}  // namespace vfio
