// PCI hot reset (a secondary bus or slot reset): which devices it would hit,
// and the reset itself, proven by the fds of every group it hits.
#include <linux/vfio.h>
#include <sys/ioctl.h>

#include <cerrno>
#include <cstring>
#include <vector>

#include "device.h"
#include "group.h"
#include "js_values.h"

namespace vfio {

namespace {

// The kernel fills at most `count` devices; on ENOSPC it wrote the count it
// needs. A bus has at most 256 functions per segment, so this bounds the
// retries as well as the allocation.
constexpr uint32_t kMaxDependents = 256 * 8;

}  // namespace

Napi::Value Device::GetPciHotResetInfo(const Napi::CallbackInfo& info) {
  Napi::Env env = info.Env();
  int fd = Require(env);
  const char* syscall = VFIO_IOCTL_NAME(VFIO_DEVICE_GET_PCI_HOT_RESET_INFO);
  uint32_t room = 0;
  std::vector<uint8_t> buffer;
  vfio_pci_hot_reset_info head{};
  // Ask with no room first: ENOSPC tells how many there are. The set can
  // grow between the calls (a hotplug), so ask again until it fits.
  for (int attempt = 0;; ++attempt) {
    buffer.assign(sizeof head + room * sizeof(vfio_pci_dependent_device), 0);
    head = {};
    head.argsz = static_cast<uint32_t>(buffer.size());
    std::memcpy(buffer.data(), &head, sizeof head);
    if (::ioctl(fd, VFIO_DEVICE_GET_PCI_HOT_RESET_INFO, buffer.data()) == 0) break;
    int err = errno;
    std::memcpy(&head, buffer.data(), sizeof head);
    if (err != ENOSPC || head.count <= room || head.count > kMaxDependents || attempt == 3) {
      ThrowSystemError(env, err, syscall);
    }
    room = head.count;
  }
  std::memcpy(&head, buffer.data(), sizeof head);
  if (head.count > room) ThrowSystemError(env, ENOSPC, syscall);
  Napi::Array devices = Napi::Array::New(env, head.count);
  for (uint32_t i = 0; i < head.count; ++i) {
    vfio_pci_dependent_device d;
    std::memcpy(&d, buffer.data() + sizeof head + i * sizeof d, sizeof d);
    devices.Set(i, Fields(env, {{"groupId", U32(env, d.group_id)},
                                {"segment", U32(env, d.segment)},
                                {"bus", U32(env, d.bus)},
                                {"devfn", U32(env, d.devfn)}}));
  }
  return Fields(env, {{"flags", U32(env, head.flags)}, {"devices", devices}});
}

Napi::Value Device::PciHotReset(const Napi::CallbackInfo& info) {
  Napi::Env env = info.Env();
  Require(env);
  if (!info[0].IsArray()) ThrowTypeError(env, "The \"groups\" argument must be an array");
  Napi::Array list = info[0].As<Napi::Array>();
  uint32_t count = list.Length();
  if (count > kMaxDependents) ThrowRangeError(env, "The \"groups\" argument has too many elements");
  // Reading elements may run JS, so collect the objects first and take the
  // fd numbers only once no more JS can close anything.
  std::vector<Group*> groups(count, nullptr);
  for (uint32_t i = 0; i < count; ++i) groups[i] = UnwrapValue<Group>(env, list.Get(i), "groups[i]");
  std::vector<uint8_t> buffer(sizeof(vfio_pci_hot_reset) + count * sizeof(int32_t));
  vfio_pci_hot_reset head{};
  head.argsz = static_cast<uint32_t>(buffer.size());
  head.count = count;
  std::memcpy(buffer.data(), &head, sizeof head);
  for (uint32_t i = 0; i < count; ++i) {
    int32_t gfd = groups[i]->Require(env);
    std::memcpy(buffer.data() + sizeof head + i * sizeof gfd, &gfd, sizeof gfd);
  }
  VFIO_IOCTL(env, Require(env), VFIO_DEVICE_PCI_HOT_RESET, buffer.data());
  return env.Undefined();
}

}  // namespace vfio
