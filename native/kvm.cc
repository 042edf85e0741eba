#include "kvm.h"

#include <fcntl.h>
#include <linux/kvm.h>
#include <sys/ioctl.h>

#include <cerrno>

#include "faults.h"
#include "group.h"
#include "kvm_compat.h"

namespace vfio {

namespace {

void SetDeviceAttr(Napi::Env env, int fd, uint32_t group, uint64_t attr, const void* data) {
  kvm_device_attr da{};
  da.group = group;
  da.attr = attr;
  da.addr = reinterpret_cast<uintptr_t>(data);
  VFIO_IOCTL(env, fd, KVM_SET_DEVICE_ATTR, &da);
}

}  // namespace

void Kvm::Init(Napi::Env env, Napi::Object exports) {
  Define(env, {
                  Method<&Kvm::GetApiVersion>("getApiVersion"),
                  Method<&Kvm::CheckExtension>("checkExtension"),
                  Method<&Kvm::CreateVm>("createVm"),
              });
  auto open = [](const Napi::CallbackInfo& info) { return OpenAs<Kvm>(info, "/dev/kvm"); };
  exports.Set("openKvm", Napi::Function::New(env, open, "openKvm"));
}

Napi::Value Kvm::GetApiVersion(const Napi::CallbackInfo& info) {
  int fd = Require(info.Env());
  return Napi::Number::New(info.Env(), VFIO_IOCTL(info.Env(), fd, KVM_GET_API_VERSION, nullptr));
}

Napi::Value Kvm::CheckExtension(const Napi::CallbackInfo& info) {
  int fd = Require(info.Env());
  uint32_t extension = ArgUint32(info, 0, "extension");
  return Napi::Number::New(info.Env(), VFIO_IOCTL(info.Env(), fd, KVM_CHECK_EXTENSION, IoctlValue(extension)));
}

Napi::Value Kvm::CreateVm(const Napi::CallbackInfo& info) {
  int fd = Require(info.Env());
  uint32_t type = ArgUint32(info, 0, "type");
  int vm_fd = VFIO_IOCTL(info.Env(), fd, KVM_CREATE_VM, IoctlValue(type));
  return WrapFd<Vm>(info.Env(), Fd(vm_fd));
}

void Vm::Init(Napi::Env env, Napi::Object exports) {
  Define(env, {
                  Method<&Vm::CheckExtension>("checkExtension"),
                  Method<&Vm::CreateDevice>("createDevice"),
                  Method<&Vm::CreateIrqchip>("createIrqchip"),
                  Method<&Vm::Irqfd>("irqfd"),
                  Method<&Vm::SetGsiRouting>("setGsiRouting"),
                  Method<&Vm::SetUserMemoryRegion>("setUserMemoryRegion"),
                  Method<&Vm::CreateVcpu>("createVcpu"),
              });
  exports.Set("adoptVm", Napi::Function::New(env, AdoptVm, "adoptVm"));
}

// A VMM keeps its own VM fd; we hold a duplicate, so closing ours leaves its
// VM alone. An fd that is not open surfaces as the kernel's EBADF.
Napi::Value Vm::AdoptVm(const Napi::CallbackInfo& info) {
  int fd = ArgInt32(info, 0, "fd");
  Fd dup(::fcntl(fd, F_DUPFD_CLOEXEC, 0));
  if (!dup.Valid()) ThrowSystemError(info.Env(), errno, "fcntl");
  return WrapFd<Vm>(info.Env(), std::move(dup));
}

Napi::Value Vm::CheckExtension(const Napi::CallbackInfo& info) {
  int fd = Require(info.Env());
  uint32_t extension = ArgUint32(info, 0, "extension");
  return Napi::Number::New(info.Env(), VFIO_IOCTL(info.Env(), fd, KVM_CHECK_EXTENSION, IoctlValue(extension)));
}

Napi::Value Vm::CreateDevice(const Napi::CallbackInfo& info) {
  Napi::Env env = info.Env();
  int fd = Require(env);
  kvm_create_device cd{};
  cd.type = ArgUint32(info, 0, "type");
  cd.flags = ArgBool(info, 1, "test") ? KVM_CREATE_DEVICE_TEST : 0;
  VFIO_IOCTL(env, fd, KVM_CREATE_DEVICE, &cd);
  if (cd.flags & KVM_CREATE_DEVICE_TEST) return env.Null();
  return WrapFd<KvmDevice>(env, Fd(static_cast<int>(cd.fd)));
}

void KvmDevice::Init(Napi::Env env, Napi::Object) {
  Define(env, {
                  Method<&KvmDevice::HasAttr>("hasAttr"),
                  Method<&KvmDevice::SetVfioFile>("setVfioFile"),
                  Method<&KvmDevice::SetSpaprTce>("setSpaprTce"),
              });
}

Napi::Value KvmDevice::HasAttr(const Napi::CallbackInfo& info) {
  Napi::Env env = info.Env();
  int fd = Require(env);
  kvm_device_attr da{};
  da.group = ArgUint32(info, 0, "group");
  da.attr = ArgSafeUint(info, 1, "attr");
  if (Ioctl(fd, KVM_HAS_DEVICE_ATTR, &da, VFIO_IOCTL_NAME(KVM_HAS_DEVICE_ATTR)) == 0) return Napi::Boolean::New(env, true);
  if (errno == ENXIO) return Napi::Boolean::New(env, false);
  ThrowSystemError(env, errno, VFIO_IOCTL_NAME(KVM_HAS_DEVICE_ATTR));
}

// The kernel reads an int32 fd from addr; any fd we own can be offered, and
// the kernel decides (EINVAL for a file that is not VFIO).
Napi::Value KvmDevice::SetVfioFile(const Napi::CallbackInfo& info) {
  Napi::Env env = info.Env();
  int fd = Require(env);
  uint32_t attr = ArgUint32(info, 0, "attr");
  int32_t file_fd = ArgOwnedFd(info, 1, "file");
  SetDeviceAttr(env, fd, kKvmDevVfioFile, attr, &file_fd);
  return env.Undefined();
}

Napi::Value KvmDevice::SetSpaprTce(const Napi::CallbackInfo& info) {
  Napi::Env env = info.Env();
  int fd = Require(env);
  kvm_vfio_spapr_tce tce{};
  tce.groupfd = UnwrapArg<Group>(info, 0, "group")->Require(env);
  tce.tablefd = ArgInt32(info, 1, "tableFd");
  SetDeviceAttr(env, fd, KVM_DEV_VFIO_GROUP, KVM_DEV_VFIO_GROUP_SET_SPAPR_TCE, &tce);
  return env.Undefined();
}

}  // namespace vfio
