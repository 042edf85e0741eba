#include "mapped_memory.h"

#include <sys/mman.h>

namespace vfio {

void MappedMemory::Unmap() {
  if (addr_ == nullptr) return;
  ::munmap(addr_, size_);
  addr_ = nullptr;
}

Napi::ArrayBuffer ExposedMemory::ArrayBuffer(Napi::Env env) {
  if (!array_buffer_.IsEmpty()) {
    Napi::ArrayBuffer existing = array_buffer_.Value();
    if (!existing.IsEmpty()) return existing;
  }
  using Owner = std::shared_ptr<MappedMemory>;
  auto owner = std::make_unique<Owner>(memory_);
  Napi::ArrayBuffer ab = Napi::ArrayBuffer::New(
      env, memory_->addr(), memory_->size(), [](Napi::Env, void*, Owner* hint) { delete hint; }, owner.get());
  owner.release();
  array_buffer_ = Napi::Weak(ab);
  return ab;
}

void ExposedMemory::Release() {
  if (!memory_) return;
  bool unmap = true;
  if (!array_buffer_.IsEmpty()) {
    Napi::ArrayBuffer ab = array_buffer_.Value();
    if (!ab.IsEmpty()) {
      if (ab.IsDetached()) {
        unmap = false;
      } else {
        ab.Detach();
      }
    }
    array_buffer_.Reset();
  }
  if (unmap) memory_->Unmap();
  memory_.reset();
}

}  // namespace vfio
