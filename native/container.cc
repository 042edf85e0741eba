#include "container.h"

#include <linux/vfio.h>

namespace vfio {

void Container::Init(Napi::Env env, Napi::Object exports) {
  Define(env, {
                  Method<&Container::GetApiVersion>("getApiVersion"),
                  Method<&Container::CheckExtension>("checkExtension"),
                  Method<&Container::SetIommu>("setIommu"),
                  Method<&Container::Type1GetInfo>("type1GetInfo"),
                  Method<&Container::MapDma>("mapDma"),
                  Method<&Container::MapDmaAsync>("mapDmaAsync"),
                  Method<&Container::MapDmaRegion>("mapDmaRegion"),
                  Method<&Container::UnmapDma>("unmapDma"),
                  Method<&Container::UnmapDmaAsync>("unmapDmaAsync"),
                  Method<&Container::SpaprGetInfo>("spaprGetInfo"),
                  Method<&Container::Enable>("enable"),
                  Method<&Container::Disable>("disable"),
                  Method<&Container::SpaprRegisterMemory>("spaprRegisterMemory"),
                  Method<&Container::SpaprUnregisterMemory>("spaprUnregisterMemory"),
                  Method<&Container::SpaprCreateWindow>("spaprCreateWindow"),
                  Method<&Container::SpaprRemoveWindow>("spaprRemoveWindow"),
                  Method<&Container::EehPeOp>("eehPeOp"),
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
