// A VFIO group (/dev/vfio/<n>): the unit of isolation devices are taken from.
#pragma once

#include <napi.h>

#include "wrap.h"

namespace vfio {

class Group : public FdWrap<Group> {
 public:
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
