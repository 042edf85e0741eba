#include "iommufd.h"

#include <linux/iommufd.h>

#include <cstddef>
#include <vector>

#include "dma_buffer.h"
#include "ioctl_worker.h"
#include "pin_worker.h"
#include "js_values.h"

namespace vfio {

namespace {

// Arguments of ioasMap/ioasMapAsync, checked in order: ioas, buffer, offset,
// size, iova, flags, then the range against the buffer. Without
// IOMMU_IOAS_MAP_FIXED_IOVA the kernel chooses the IOVA and writes it back.
iommu_ioas_map ParseMap(const Napi::CallbackInfo& info, DmaBuffer** buffer) {
  iommu_ioas_map map{};
  map.size = sizeof map;
  map.ioas_id = ArgUint32(info, 0, "ioas");
  *buffer = UnwrapArg<DmaBuffer>(info, 1, "buffer");
  uint64_t offset = ArgSafeUint(info, 2, "offset");
  uint64_t length = ArgSafeUint(info, 3, "length");
  map.iova = ArgBigUint64(info, 4, "iova");
  map.flags = ArgUint32(info, 5, "flags");
  map.user_va = (*buffer)->Vaddr(info.Env(), offset, length);
  map.length = length;
  if ((map.flags & IOMMU_IOAS_MAP_WRITEABLE) == 0) PrefaultWritable(map.user_va, length);
  return map;
}

iommu_ioas_unmap ParseUnmap(const Napi::CallbackInfo& info) {
  iommu_ioas_unmap unmap{};
  unmap.size = sizeof unmap;
  unmap.ioas_id = ArgUint32(info, 0, "ioas");
  unmap.iova = ArgBigUint64(info, 1, "iova");
  unmap.length = ArgBigUint64(info, 2, "length");
  return unmap;
}

// Settles with the IOVA the mapping got (the kernel's choice without FIXED_IOVA).
class IoasMapWorker : public PinWorker<iommu_ioas_map> {
 public:
  IoasMapWorker(Napi::Env env, std::shared_ptr<Fd> fd, const iommu_ioas_map& map, DmaBuffer* buffer,
                Napi::Object buffer_object)
      : PinWorker(env, "vfio:ioasMap", std::move(fd), IOMMU_IOAS_MAP, VFIO_IOCTL_NAME(IOMMU_IOAS_MAP), map, buffer,
                  buffer_object) {}

 protected:
  Napi::Value Result() override { return U64(Env(), arg_.iova); }
};

class IoasUnmapWorker : public IoctlWorker<iommu_ioas_unmap> {
 public:
  IoasUnmapWorker(Napi::Env env, std::shared_ptr<Fd> fd, const iommu_ioas_unmap& unmap)
      : IoctlWorker(env, "vfio:ioasUnmap", std::move(fd), IOMMU_IOAS_UNMAP, VFIO_IOCTL_NAME(IOMMU_IOAS_UNMAP), unmap) {}

 protected:
  Napi::Value Result() override { return U64(Env(), arg_.length); }
};

}  // namespace

void IommuFd::Init(Napi::Env env, Napi::Object exports) {
  Define(env, {
                  Method<&IommuFd::IoasAlloc>("ioasAlloc"),
                  Method<&IommuFd::Destroy>("destroy"),
                  Method<&IommuFd::IoasIovaRanges>("ioasIovaRanges"),
                  Method<&IommuFd::IoasAllowIovas>("ioasAllowIovas"),
                  Method<&IommuFd::IoasMap>("ioasMap"),
                  Method<&IommuFd::IoasMapAsync>("ioasMapAsync"),
                  Method<&IommuFd::IoasUnmap>("ioasUnmap"),
                  Method<&IommuFd::IoasUnmapAsync>("ioasUnmapAsync"),
              });
  auto open = [](const Napi::CallbackInfo& info) { return OpenAs<IommuFd>(info, "/dev/iommu"); };
  exports.Set("openIommufd", Napi::Function::New(env, open, "openIommufd"));
}

Napi::Value IommuFd::IoasAlloc(const Napi::CallbackInfo& info) {
  iommu_ioas_alloc alloc{};
  alloc.size = sizeof alloc;
  VFIO_IOCTL(info.Env(), Require(info.Env()), IOMMU_IOAS_ALLOC, &alloc);
  return U32(info.Env(), alloc.out_ioas_id);
}

Napi::Value IommuFd::Destroy(const Napi::CallbackInfo& info) {
  int fd = Require(info.Env());
  iommu_destroy destroy{};
  destroy.size = sizeof destroy;
  destroy.id = ArgUint32(info, 0, "id");
  VFIO_IOCTL(info.Env(), fd, IOMMU_DESTROY, &destroy);
  return info.Env().Undefined();
}

// Two calls: the first learns how many ranges there are (EMSGSIZE when the
// array is too small); they can change between calls (an attach), so loop.
Napi::Value IommuFd::IoasIovaRanges(const Napi::CallbackInfo& info) {
  Napi::Env env = info.Env();
  int fd = Require(env);
  iommu_ioas_iova_ranges q{};
  q.size = sizeof q;
  q.ioas_id = ArgUint32(info, 0, "ioas");
  std::vector<iommu_iova_range> ranges;
  for (;;) {
    ranges.resize(q.num_iovas);
    q.allowed_iovas = reinterpret_cast<uintptr_t>(ranges.data());
    if (Ioctl(fd, IOMMU_IOAS_IOVA_RANGES, &q, VFIO_IOCTL_NAME(IOMMU_IOAS_IOVA_RANGES)) == 0) break;
    if (errno != EMSGSIZE) ThrowSystemError(env, errno, VFIO_IOCTL_NAME(IOMMU_IOAS_IOVA_RANGES));
  }
  ranges.resize(q.num_iovas);
  Napi::Array list = Napi::Array::New(env, ranges.size());
  for (size_t i = 0; i < ranges.size(); i++) {
    list.Set(i, Fields(env, {{"start", U64(env, ranges[i].start)}, {"end", U64(env, ranges[i].last)}}));
  }
  return Fields(env, {{"alignment", U64(env, q.out_iova_alignment)}, {"ranges", list}});
}

// The ranges come as a BigUint64Array of (start, last) pairs.
Napi::Value IommuFd::IoasAllowIovas(const Napi::CallbackInfo& info) {
  Napi::Env env = info.Env();
  int fd = Require(env);
  iommu_ioas_allow_iovas allow{};
  allow.size = sizeof allow;
  allow.ioas_id = ArgUint32(info, 0, "ioas");
  if (!info[1].IsTypedArray() || info[1].As<Napi::TypedArray>().TypedArrayType() != napi_biguint64_array ||
      info[1].As<Napi::TypedArray>().ElementLength() % 2 != 0) {
    ThrowTypeError(env, "The \"ranges\" argument must be a BigUint64Array of (start, last) pairs");
  }
  Napi::BigUint64Array pairs = info[1].As<Napi::BigUint64Array>();
  std::vector<iommu_iova_range> ranges(pairs.ElementLength() / 2);
  for (size_t i = 0; i < ranges.size(); i++) ranges[i] = {pairs[2 * i], pairs[2 * i + 1]};
  allow.num_iovas = ranges.size();
  allow.allowed_iovas = reinterpret_cast<uintptr_t>(ranges.data());
  VFIO_IOCTL(env, fd, IOMMU_IOAS_ALLOW_IOVAS, &allow);
  return env.Undefined();
}

Napi::Value IommuFd::IoasMap(const Napi::CallbackInfo& info) {
  int fd = Require(info.Env());
  DmaBuffer* buffer;
  iommu_ioas_map map = ParseMap(info, &buffer);
  VFIO_IOCTL(info.Env(), fd, IOMMU_IOAS_MAP, &map);
  return U64(info.Env(), map.iova);
}

Napi::Value IommuFd::IoasMapAsync(const Napi::CallbackInfo& info) {
  Require(info.Env());
  DmaBuffer* buffer;
  iommu_ioas_map map = ParseMap(info, &buffer);
  auto* worker = new IoasMapWorker(info.Env(), fd_, map, buffer, info[1].As<Napi::Object>());
  return worker->Start();
}

Napi::Value IommuFd::IoasUnmap(const Napi::CallbackInfo& info) {
  int fd = Require(info.Env());
  iommu_ioas_unmap unmap = ParseUnmap(info);
  VFIO_IOCTL(info.Env(), fd, IOMMU_IOAS_UNMAP, &unmap);
  return U64(info.Env(), unmap.length);
}

Napi::Value IommuFd::IoasUnmapAsync(const Napi::CallbackInfo& info) {
  Require(info.Env());
  iommu_ioas_unmap unmap = ParseUnmap(info);
  auto* worker = new IoasUnmapWorker(info.Env(), fd_, unmap);
  return worker->Start();
}

}  // namespace vfio
