// Type1 IOMMU: GET_INFO with its capability chain, MAP_DMA and UNMAP_DMA.
#include <linux/vfio.h>

#include "container.h"
#include "dma_buffer.h"
#include "info_caps.h"
#include "js_values.h"
#include "ioctl_worker.h"
#include "pin_worker.h"
#include "region_mmap.h"

namespace vfio {

namespace {

Napi::Value Migration(Napi::Env env, const InfoCap& cap) {
  vfio_iommu_type1_info_cap_migration m;
  if (!cap.As(&m)) return env.Null();
  return Fields(env, {{"flags", U32(env, m.flags)},
                      {"pgsizeBitmap", U64(env, m.pgsize_bitmap)},
                      {"maxDirtyBitmapSize", U64(env, m.max_dirty_bitmap_size)}});
}

Napi::Value DmaAvail(Napi::Env env, const InfoCap& cap) {
  vfio_iommu_type1_info_dma_avail a;
  if (!cap.As(&a)) return env.Null();
  return U32(env, a.avail);
}

// Arguments of mapDma/mapDmaAsync, checked in order: buffer, offset, size,
// iova, flags, then the range against the buffer.
vfio_iommu_type1_dma_map ParseMap(const Napi::CallbackInfo& info, DmaBuffer** buffer) {
  *buffer = UnwrapArg<DmaBuffer>(info, 0, "buffer");
  uint64_t offset = ArgSafeUint(info, 1, "offset");
  uint64_t size = ArgSafeUint(info, 2, "size");
  uint64_t iova = ArgBigUint64(info, 3, "iova");
  uint32_t flags = ArgUint32(info, 4, "flags");
  vfio_iommu_type1_dma_map map{};
  map.argsz = sizeof map;
  map.flags = flags;
  map.vaddr = (*buffer)->Vaddr(info.Env(), offset, size);
  map.iova = iova;
  map.size = size;
  if ((flags & VFIO_DMA_MAP_FLAG_WRITE) == 0) PrefaultWritable(map.vaddr, size);
  return map;
}

vfio_iommu_type1_dma_unmap ParseUnmap(const Napi::CallbackInfo& info) {
  vfio_iommu_type1_dma_unmap unmap{};
  unmap.argsz = sizeof unmap;
  unmap.iova = ArgBigUint64(info, 0, "iova");
  unmap.size = ArgBigUint64(info, 1, "size");
  unmap.flags = ArgUint32(info, 2, "flags");
  return unmap;
}

// Settles with nothing: type1 maps at the caller's IOVA.
class MapWorker : public PinWorker<vfio_iommu_type1_dma_map> {
 public:
  MapWorker(Napi::Env env, std::shared_ptr<Fd> fd, const vfio_iommu_type1_dma_map& map, DmaBuffer* buffer,
            Napi::Object buffer_object)
      : PinWorker(env, "vfio:mapDma", std::move(fd), VFIO_IOMMU_MAP_DMA, VFIO_IOCTL_NAME(VFIO_IOMMU_MAP_DMA), map,
                  buffer, buffer_object) {}

 protected:
  Napi::Value Result() override { return Env().Undefined(); }
};

class UnmapWorker : public IoctlWorker<vfio_iommu_type1_dma_unmap> {
 public:
  UnmapWorker(Napi::Env env, std::shared_ptr<Fd> fd, const vfio_iommu_type1_dma_unmap& unmap)
      : IoctlWorker(env, "vfio:unmapDma", std::move(fd), VFIO_IOMMU_UNMAP_DMA,
                    VFIO_IOCTL_NAME(VFIO_IOMMU_UNMAP_DMA), unmap) {}

 protected:
  // The kernel writes back how much it unmapped.
  Napi::Value Result() override { return U64(Env(), arg_.size); }
};

}  // namespace

Napi::Value Container::Type1GetInfo(const Napi::CallbackInfo& info) {
  Napi::Env env = info.Env();
  int fd = Require(env);
  vfio_iommu_type1_info base{};
  std::vector<uint8_t> buffer =
      InfoIoctl(env, fd, VFIO_IOMMU_GET_INFO, &base, sizeof base, VFIO_IOCTL_NAME(VFIO_IOMMU_GET_INFO));
  std::memcpy(&base, buffer.data(), sizeof base);

  Napi::Object result = Fields(env, {{"flags", U32(env, base.flags)},
                                     {"iovaPgsizes", U64(env, base.iova_pgsizes)},
                                     {"iovaRanges", env.Null()},
                                     {"dmaAvail", env.Null()},
                                     {"migration", env.Null()}});
  if (base.flags & VFIO_IOMMU_INFO_CAPS) {
    WalkInfoCaps(buffer, base.cap_offset, sizeof base, [&](const InfoCap& cap) {
      switch (cap.header.id) {
        case VFIO_IOMMU_TYPE1_INFO_CAP_IOVA_RANGE:
          result.Set("iovaRanges", U64PairArray(env, cap, &vfio_iommu_type1_info_cap_iova_range::nr_iovas, "start",
                                                &vfio_iova_range::start, "end", &vfio_iova_range::end));
          break;
        case VFIO_IOMMU_TYPE1_INFO_CAP_MIGRATION:
          result.Set("migration", Migration(env, cap));
          break;
        case VFIO_IOMMU_TYPE1_INFO_DMA_AVAIL:
          result.Set("dmaAvail", DmaAvail(env, cap));
          break;
      }
    });
  }
  return result;
}

Napi::Value Container::MapDma(const Napi::CallbackInfo& info) {
  int fd = Require(info.Env());
  DmaBuffer* buffer;
  vfio_iommu_type1_dma_map map = ParseMap(info, &buffer);
  VFIO_IOCTL(info.Env(), fd, VFIO_IOMMU_MAP_DMA, &map);
  return info.Env().Undefined();
}

Napi::Value Container::MapDmaAsync(const Napi::CallbackInfo& info) {
  Require(info.Env());
  DmaBuffer* buffer;
  vfio_iommu_type1_dma_map map = ParseMap(info, &buffer);
  auto* worker = new MapWorker(info.Env(), fd_, map, buffer, info[0].As<Napi::Object>());
  return worker->Start();
}

// Peer-to-peer: the source is another device's BAR mmap. type1 resolves the
// PFNMAP vma to the BAR's physical pages; nothing is pinned, so no async twin.
Napi::Value Container::MapDmaRegion(const Napi::CallbackInfo& info) {
  Napi::Env env = info.Env();
  int fd = Require(env);
  RegionMapping* mapping = UnwrapArg<RegionMapping>(info, 0, "mapping");
  uint64_t offset = ArgSafeUint(info, 1, "offset");
  uint64_t size = ArgSafeUint(info, 2, "size");
  vfio_iommu_type1_dma_map map{};
  map.argsz = sizeof map;
  map.iova = ArgBigUint64(info, 3, "iova");
  map.flags = ArgUint32(info, 4, "flags");
  map.vaddr = mapping->Vaddr(env, offset, size);
  map.size = size;
  VFIO_IOCTL(env, fd, VFIO_IOMMU_MAP_DMA, &map);
  return env.Undefined();
}

Napi::Value Container::UnmapDma(const Napi::CallbackInfo& info) {
  int fd = Require(info.Env());
  vfio_iommu_type1_dma_unmap unmap = ParseUnmap(info);
  VFIO_IOCTL(info.Env(), fd, VFIO_IOMMU_UNMAP_DMA, &unmap);
  return U64(info.Env(), unmap.size);
}

Napi::Value Container::UnmapDmaAsync(const Napi::CallbackInfo& info) {
  Require(info.Env());
  vfio_iommu_type1_dma_unmap unmap = ParseUnmap(info);
  auto* worker = new UnmapWorker(info.Env(), fd_, unmap);
  return worker->Start();
}

}  // namespace vfio
