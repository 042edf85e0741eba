// A VFIO group (/dev/vfio/<n>): the unit of isolation devices are taken from.
#pragma once

#include <napi.h>

#include "wrap.h"

namespace vfio {

class Group : public FdWrap<Group> {
 public:
  static constexpr napi_type_tag kTypeTag = {0x7666696f2d67726fULL, 0x7570000000000001ULL};
  static constexpr const char kClassName[] = "Group";

  static void Init(Napi::Env env, Napi::Object exports);
  explicit Group(const Napi::CallbackInfo& info) : Base(info) {}

 private:
  Napi::Value GetStatus(const Napi::CallbackInfo& info);
  Napi::Value SetContainer(const Napi::CallbackInfo& info);
  Napi::Value UnsetContainer(const Napi::CallbackInfo& info);
  Napi::Value GetDeviceFd(const Napi::CallbackInfo& info);
};

}  // namespace vfio
