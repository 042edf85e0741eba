// A device opened by its cdev (/dev/vfio/devices/vfioN, Linux 6.6+) is
// useless until bound to an iommufd and attached to an IO address space;
// the kernel refuses every other ioctl before the bind.
#include <linux/vfio.h>

#include <cstddef>

#include "device.h"
#include "iommufd.h"
#include "js_values.h"

namespace vfio {

void Device::InitCdev(Napi::Env env, Napi::Object exports) {
  auto open = [](const Napi::CallbackInfo& info) { return OpenAs<Device>(info, nullptr); };
  exports.Set("openDeviceCdev", Napi::Function::New(env, open, "openDeviceCdev"));
}

// argsz covers what the 6.6 kernel knew: later kernels grew these structs
// (a token, a PASID) behind flags we do not set, and accept the shorter size.

// VFIO_DEVICE_BIND_IOMMUFD: the device's DMA now belongs to that iommufd
// (blocked until attached). Returns the device id inside the iommufd.
Napi::Value Device::BindIommufd(const Napi::CallbackInfo& info) {
  Napi::Env env = info.Env();
  int fd = Require(env);
  vfio_device_bind_iommufd bind{};
  bind.argsz = offsetof(vfio_device_bind_iommufd, out_devid) + sizeof bind.out_devid;
  bind.iommufd = UnwrapArg<IommuFd>(info, 0, "iommufd")->Require(env);
  VFIO_IOCTL(env, fd, VFIO_DEVICE_BIND_IOMMUFD, &bind);
  return U32(env, bind.out_devid);
}

// VFIO_DEVICE_ATTACH_IOMMUFD_PT: DMA goes through IOAS (or HWPT) `ptId`;
// attaching again replaces the old one. Returns the id the kernel attached.
Napi::Value Device::AttachIommufdPt(const Napi::CallbackInfo& info) {
  Napi::Env env = info.Env();
  int fd = Require(env);
  vfio_device_attach_iommufd_pt attach{};
  attach.argsz = offsetof(vfio_device_attach_iommufd_pt, pt_id) + sizeof attach.pt_id;
  attach.pt_id = ArgUint32(info, 0, "ptId");
  VFIO_IOCTL(env, fd, VFIO_DEVICE_ATTACH_IOMMUFD_PT, &attach);
  return U32(env, attach.pt_id);
}

// VFIO_DEVICE_DETACH_IOMMUFD_PT: DMA blocked until attached again.
Napi::Value Device::DetachIommufdPt(const Napi::CallbackInfo& info) {
  Napi::Env env = info.Env();
  int fd = Require(env);
  vfio_device_detach_iommufd_pt detach{};
  detach.argsz = offsetof(vfio_device_detach_iommufd_pt, flags) + sizeof detach.flags;
  VFIO_IOCTL(env, fd, VFIO_DEVICE_DETACH_IOMMUFD_PT, &detach);
  return env.Undefined();
}

}  // namespace vfio
