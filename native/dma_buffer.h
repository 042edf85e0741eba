// DMA memory allocated natively (anonymous, huge pages, memfd, or a caller's
// fd) and shown to JS as one external ArrayBuffer. JS never sees an address:
// a map/register call names the buffer plus an offset and size checked here.
#pragma once

#include <napi.h>

#include <cstddef>
#include <cstdint>
#include <memory>

#include "mapped_memory.h"
#include "wrap.h"

namespace vfio {

// An IOMMU (type1, iommufd) pins a mapping the device only reads without
// FOLL_WRITE: a page of private anonymous memory never written yet is then
// the shared zero page,
// and the program's first write moves it to a new page the device never
// sees (it reads zeros: an NVMe queue written after its map). Faulting the
// range in writable first, without changing a byte, pins the real pages.
// Older kernels (EINVAL) and read-only mappings keep what they had.
void PrefaultWritable(uint64_t vaddr, uint64_t size);

class DmaBuffer : public FdWrap<DmaBuffer> {
 public:
  static constexpr const char kClassName[] = "DmaBuffer";

  static void Init(Napi::Env env, Napi::Object exports);
  explicit DmaBuffer(const Napi::CallbackInfo& info) : Base(info) {}

  // Address of [offset, offset + size) inside the buffer; ERR_VFIO_CLOSED
  // after close, RangeError (ERR_OUT_OF_RANGE) unless the range lies inside.
  uint64_t Vaddr(Napi::Env env, uint64_t offset, uint64_t size) const;

  // An async map holds the buffer busy: close() refuses with EBUSY meanwhile.
  std::shared_ptr<MappedMemory> BeginUse() {
    ++busy_;
    return memory_.memory();
  }
  void EndUse() { --busy_; }

 private:
  static Napi::Value Alloc(const Napi::CallbackInfo& info);
  static Napi::Value CreateMemfd(const Napi::CallbackInfo& info);
  static Napi::Value MapFd(const Napi::CallbackInfo& info);
  static Napi::Object Wrap(Napi::Env env, std::shared_ptr<MappedMemory> memory, Fd fd, size_t page_size,
                           bool regular_file);

  Napi::Value GetSize(const Napi::CallbackInfo& info);
  Napi::Value GetPageSize(const Napi::CallbackInfo& info);
  Napi::Value GetRegularFile(const Napi::CallbackInfo& info);
  Napi::Value GetSeals(const Napi::CallbackInfo& info);
  Napi::Value GetArrayBuffer(const Napi::CallbackInfo& info);
  void Release() override;

  ExposedMemory memory_;
  size_t size_ = 0;
  size_t page_size_ = 0;
  bool regular_file_ = false;
  int busy_ = 0;
};

}  // namespace vfio
