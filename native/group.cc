#include "group.h"

#include <linux/vfio.h>

#include "container.h"
#include "device.h"

namespace vfio {

void Group::Init(Napi::Env env, Napi::Object exports) {
  Define(env, {
                  Method<&Group::GetStatus>("getStatus"),
                  Method<&Group::SetContainer>("setContainer"),
                  Method<&Group::UnsetContainer>("unsetContainer"),
                  Method<&Group::GetDeviceFd>("getDeviceFd"),
              });
  auto open = [](const Napi::CallbackInfo& info) { return OpenAs<Group>(info, nullptr); };
  exports.Set("openGroup", Napi::Function::New(env, open, "openGroup"));
}

Napi::Value Group::GetStatus(const Napi::CallbackInfo& info) {
  int fd = Require(info.Env());
  vfio_group_status status{};
  status.argsz = sizeof status;
  VFIO_IOCTL(info.Env(), fd, VFIO_GROUP_GET_STATUS, &status);
  return Napi::Number::New(info.Env(), status.flags);
}

Napi::Value Group::SetContainer(const Napi::CallbackInfo& info) {
  int fd = Require(info.Env());
  Container* container = UnwrapArg<Container>(info, 0, "container");
  int32_t container_fd = container->Require(info.Env());
  VFIO_IOCTL(info.Env(), fd, VFIO_GROUP_SET_CONTAINER, &container_fd);
  return info.Env().Undefined();
}

Napi::Value Group::UnsetContainer(const Napi::CallbackInfo& info) {
  VFIO_IOCTL(info.Env(), Require(info.Env()), VFIO_GROUP_UNSET_CONTAINER, nullptr);
  return info.Env().Undefined();
}

// The argument is the device's name as listed under the group in sysfs.
Napi::Value Group::GetDeviceFd(const Napi::CallbackInfo& info) {
  int fd = Require(info.Env());
  std::string name = ArgString(info, 0, "name");
  int device_fd = VFIO_IOCTL(info.Env(), fd, VFIO_GROUP_GET_DEVICE_FD, const_cast<char*>(name.c_str()));
  return WrapFd<Device>(info.Env(), Fd(device_fd));
}

}  // namespace vfio

