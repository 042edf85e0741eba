#include "device.h"

#include <linux/vfio.h>
#include <sys/mman.h>
#include <unistd.h>

#include <cerrno>
#include <cstring>
#include <vector>

#include "access.h"
#include "eventfd.h"
#include "info_caps.h"
#include "js_values.h"
#include "region_mmap.h"

namespace vfio {

namespace {

template <class Call>
ssize_t RetryEintr(Call call) {
  ssize_t n;
  do n = call();
  while (n < 0 && errno == EINTR);
  return n;
}

// A register access is all or nothing: a partial transfer is an I/O error.
void CheckTransfer(Napi::Env env, ssize_t n, size_t wanted, const char* syscall) {
  if (n < 0) ThrowSystemError(env, errno, syscall);
  if (static_cast<size_t>(n) != wanted) ThrowSystemError(env, EIO, syscall);
}

Napi::Value RegionType(Napi::Env env, const InfoCap& cap) {
  vfio_region_info_cap_type t;
  if (!cap.As(&t)) return env.Null();
  return Fields(env, {{"type", U32(env, t.type)}, {"subtype", U32(env, t.subtype)}});
}

void SetIrqs(Napi::Env env, int fd, const vfio_irq_set& head, const std::vector<int32_t>& eventfds) {
  std::vector<uint8_t> buffer(sizeof head + eventfds.size() * sizeof(int32_t));
  std::memcpy(buffer.data(), &head, sizeof head);
  if (!eventfds.empty()) std::memcpy(buffer.data() + sizeof head, eventfds.data(), eventfds.size() * sizeof(int32_t));
  vfio_irq_set* set = reinterpret_cast<vfio_irq_set*>(buffer.data());
  set->argsz = static_cast<uint32_t>(buffer.size());
  VFIO_IOCTL(env, fd, VFIO_DEVICE_SET_IRQS, set);
}

}  // namespace

void Device::Init(Napi::Env env, Napi::Object exports) {
  Define(env, {
                  Method<&Device::GetInfo>("getInfo"),
                  Method<&Device::GetRegionInfo>("getRegionInfo"),
                  Method<&Device::GetIrqInfo>("getIrqInfo"),
                  Method<&Device::SetIrqsEventfds>("setIrqsEventfds"),
                  Method<&Device::SetIrqsNone>("setIrqsNone"),
                  Method<&Device::Reset>("reset"),
                  Method<&Device::GetPciHotResetInfo>("getPciHotResetInfo"),
                  Method<&Device::PciHotReset>("pciHotReset"),
                  Method<&Device::Read>("read"),
                  Method<&Device::Write>("write"),
                  Method<&Device::ReadBytes>("readBytes"),
                  Method<&Device::WriteBytes>("writeBytes"),
                  Method<&Device::Mmap>("mmap"),
                  Method<&Device::BindIommufd>("bindIommufd"),
                  Method<&Device::AttachIommufdPt>("attachIommufdPt"),
                  Method<&Device::DetachIommufdPt>("detachIommufdPt"),
              });
  InitCdev(env, exports);
}

Napi::Value Device::GetInfo(const Napi::CallbackInfo& info) {
  Napi::Env env = info.Env();
  int fd = Require(env);
  vfio_device_info dev{};
  dev.argsz = sizeof dev;
  VFIO_IOCTL(env, fd, VFIO_DEVICE_GET_INFO, &dev);
  return Fields(env, {{"flags", U32(env, dev.flags)},
                      {"numRegions", U32(env, dev.num_regions)},
                      {"numIrqs", U32(env, dev.num_irqs)}});
}

Napi::Value Device::GetRegionInfo(const Napi::CallbackInfo& info) {
  Napi::Env env = info.Env();
  int fd = Require(env);
  vfio_region_info region{};
  region.index = ArgUint32(info, 0, "index");
  std::vector<uint8_t> buffer = InfoIoctl(env, fd, VFIO_DEVICE_GET_REGION_INFO, &region, sizeof region,
                                          VFIO_IOCTL_NAME(VFIO_DEVICE_GET_REGION_INFO));
  uint32_t index = region.index;
  std::memcpy(&region, buffer.data(), sizeof region);

  Napi::Object result = Fields(env, {{"index", U32(env, index)},
                                     {"flags", U32(env, region.flags)},
                                     {"size", U64(env, region.size)},
                                     {"offset", U64(env, region.offset)},
                                     {"sparseMmap", env.Null()},
                                     {"msixMappable", Napi::Boolean::New(env, false)},
                                     {"type", env.Null()}});
  if (region.flags & VFIO_REGION_INFO_FLAG_CAPS) {
    WalkInfoCaps(buffer, region.cap_offset, sizeof region, [&](const InfoCap& cap) {
      if (cap.header.id == VFIO_REGION_INFO_CAP_SPARSE_MMAP) {
        result.Set("sparseMmap", U64PairArray(env, cap, &vfio_region_info_cap_sparse_mmap::nr_areas, "offset",
                                              &vfio_region_sparse_mmap_area::offset, "size",
                                              &vfio_region_sparse_mmap_area::size));
      }
      if (cap.header.id == VFIO_REGION_INFO_CAP_TYPE) result.Set("type", RegionType(env, cap));
      // No payload: its presence says the MSI-X table's pages may be mmapped.
      if (cap.header.id == VFIO_REGION_INFO_CAP_MSIX_MAPPABLE) result.Set("msixMappable", Napi::Boolean::New(env, true));
    });
  }
  return result;
}

Napi::Value Device::GetIrqInfo(const Napi::CallbackInfo& info) {
  Napi::Env env = info.Env();
  int fd = Require(env);
  vfio_irq_info irq{};
  irq.argsz = sizeof irq;
  irq.index = ArgUint32(info, 0, "index");
  VFIO_IOCTL(env, fd, VFIO_DEVICE_GET_IRQ_INFO, &irq);
  return Fields(env, {{"index", U32(env, irq.index)}, {"flags", U32(env, irq.flags)}, {"count", U32(env, irq.count)}});
}

Napi::Value Device::SetIrqsEventfds(const Napi::CallbackInfo& info) {
  Napi::Env env = info.Env();
  Require(env);
  vfio_irq_set head{};
  head.index = ArgUint32(info, 0, "index");
  head.start = ArgUint32(info, 1, "start");
  // ACTION_UNMASK binds an eventfd that unmasks when signalled (KVM's
  // resample fd for INTx); TRIGGER unless told.
  uint32_t action = info[3].IsUndefined() ? VFIO_IRQ_SET_ACTION_TRIGGER : ArgUint32(info, 3, "action");
  if (action != VFIO_IRQ_SET_ACTION_TRIGGER && action != VFIO_IRQ_SET_ACTION_UNMASK) {
    ThrowRangeError(env, "The value of \"action\" is out of range. It must be VFIO_IRQ_SET_ACTION_TRIGGER or _UNMASK. Received " +
                             std::to_string(action));
  }
  head.flags = VFIO_IRQ_SET_DATA_EVENTFD | action;
  if (!info[2].IsArray()) ThrowTypeError(env, "The \"eventfds\" argument must be an array");
  Napi::Array list = info[2].As<Napi::Array>();
  head.count = list.Length();
  // Reading elements may run JS (getters), so collect the objects first and
  // take the fd numbers only once no more JS can close anything.
  std::vector<EventFd*> eventfds(head.count, nullptr);
  for (uint32_t i = 0; i < head.count; ++i) {
    Napi::Value v = list.Get(i);
    if (!v.IsNull()) eventfds[i] = UnwrapValue<EventFd>(env, v, "eventfds[i]");
  }
  std::vector<int32_t> fds(head.count, -1);
  for (uint32_t i = 0; i < head.count; ++i) {
    if (eventfds[i] != nullptr) fds[i] = eventfds[i]->Require(env);
  }
  SetIrqs(env, Require(env), head, fds);
  return env.Undefined();
}

Napi::Value Device::SetIrqsNone(const Napi::CallbackInfo& info) {
  Napi::Env env = info.Env();
  int fd = Require(env);
  vfio_irq_set head{};
  head.index = ArgUint32(info, 0, "index");
  head.start = ArgUint32(info, 1, "start");
  head.count = ArgUint32(info, 2, "count");
  uint32_t action = ArgUint32(info, 3, "action");
  if (action == 0 || (action & ~VFIO_IRQ_SET_ACTION_TYPE_MASK) != 0) {
    ThrowRangeError(env, "The value of \"action\" is out of range. It must be VFIO_IRQ_SET_ACTION_MASK, _UNMASK or "
                         "_TRIGGER. Received " + std::to_string(action));
  }
  head.flags = VFIO_IRQ_SET_DATA_NONE | action;
  SetIrqs(env, fd, head, {});
  return env.Undefined();
}

Napi::Value Device::Reset(const Napi::CallbackInfo& info) {
  VFIO_IOCTL(info.Env(), Require(info.Env()), VFIO_DEVICE_RESET, nullptr);
  return info.Env().Undefined();
}

Napi::Value Device::Read(const Napi::CallbackInfo& info) {
  Napi::Env env = info.Env();
  int fd = Require(env);
  off_t offset = ArgFileOffset(info, 0, "offset");
  unsigned width = ArgWidth(info, 1);
  uint8_t bytes[8];
  CheckTransfer(env, RetryEintr([&] { return ::pread(fd, bytes, width, offset); }), width, "pread");
  uint64_t value = 0;
  switch (width) {
    case 1: value = bytes[0]; break;
    case 2: { uint16_t v; std::memcpy(&v, bytes, 2); value = v; break; }
    case 4: { uint32_t v; std::memcpy(&v, bytes, 4); value = v; break; }
    default: std::memcpy(&value, bytes, 8); break;
  }
  return RegisterValue(env, value, width);
}

Napi::Value Device::Write(const Napi::CallbackInfo& info) {
  Napi::Env env = info.Env();
  int fd = Require(env);
  off_t offset = ArgFileOffset(info, 0, "offset");
  unsigned width = ArgWidth(info, 1);
  uint64_t value = ArgRegisterValue(info, 2, width);
  uint8_t bytes[8];
  switch (width) {
    case 1: bytes[0] = static_cast<uint8_t>(value); break;
    case 2: { uint16_t v = static_cast<uint16_t>(value); std::memcpy(bytes, &v, 2); break; }
    case 4: { uint32_t v = static_cast<uint32_t>(value); std::memcpy(bytes, &v, 4); break; }
    default: std::memcpy(bytes, &value, 8); break;
  }
  CheckTransfer(env, RetryEintr([&] { return ::pwrite(fd, bytes, width, offset); }), width, "pwrite");
  return env.Undefined();
}

Napi::Value Device::ReadBytes(const Napi::CallbackInfo& info) {
  Napi::Env env = info.Env();
  int fd = Require(env);
  off_t offset = ArgFileOffset(info, 0, "offset");
  uint64_t length = ArgSafeUint(info, 1, "length");
  Napi::Buffer<uint8_t> data = Napi::Buffer<uint8_t>::New(env, length);
  CheckTransfer(env, RetryEintr([&] { return ::pread(fd, data.Data(), length, offset); }), length, "pread");
  return data;
}

Napi::Value Device::WriteBytes(const Napi::CallbackInfo& info) {
  Napi::Env env = info.Env();
  int fd = Require(env);
  off_t offset = ArgFileOffset(info, 0, "offset");
  Napi::Value v = info[1];
  if (!v.IsTypedArray() || v.As<Napi::TypedArray>().TypedArrayType() != napi_uint8_array) {
    ThrowTypeError(env, "The \"data\" argument must be an instance of Uint8Array");
  }
  Napi::Uint8Array data = v.As<Napi::Uint8Array>();
  size_t length = data.ByteLength();
  CheckTransfer(env, RetryEintr([&] { return ::pwrite(fd, data.Data(), length, offset); }), length, "pwrite");
  return env.Undefined();
}

Napi::Value Device::Mmap(const Napi::CallbackInfo& info) {
  Napi::Env env = info.Env();
  int fd = Require(env);
  off_t offset = ArgFileOffset(info, 0, "offset");
  uint64_t size = ArgSafeUint(info, 1, "size");
  uint32_t prot = ArgUint32(info, 2, "prot");
  if ((prot & ~static_cast<uint32_t>(PROT_READ | PROT_WRITE)) != 0) {
    ThrowRangeError(env, "The value of \"prot\" is out of range. It must be a combination of PROT_READ and "
                         "PROT_WRITE. Received " + std::to_string(prot));
  }
  return RegionMapping::Create(env, fd, offset, size, static_cast<int>(prot));
}

}  // namespace vfio
