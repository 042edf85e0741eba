// One mmap that JS may see as one external ArrayBuffer: DMA memory, or a
// BAR. The ArrayBuffer co-owns the mapping (its finalizer holds a reference),
// so collecting the wrapper never unmaps what a live ArrayBuffer points at.
#pragma once

#include <napi.h>

#include <cstddef>
#include <cstdint>
#include <memory>

namespace vfio {

// Shared by the wrapper, its ArrayBuffer's finalizer and any in-flight async
// work: whichever lets go last unmaps, unless Unmap() came first.
class MappedMemory {
 public:
  MappedMemory(void* addr, size_t size) : addr_(static_cast<uint8_t*>(addr)), size_(size) {}
  MappedMemory(const MappedMemory&) = delete;
  MappedMemory& operator=(const MappedMemory&) = delete;
  ~MappedMemory() { Unmap(); }

  uint8_t* addr() const { return addr_; }
  size_t size() const { return size_; }
  void Unmap();

 private:
  uint8_t* addr_;
  size_t size_;
};

// The wrapper's side: the mapping plus (weakly) the one ArrayBuffer over it.
class ExposedMemory {
 public:
  ExposedMemory() = default;
  explicit ExposedMemory(std::shared_ptr<MappedMemory> memory) : memory_(std::move(memory)) {}

  const std::shared_ptr<MappedMemory>& memory() const { return memory_; }
  bool Released() const { return !memory_; }

  // The same ArrayBuffer on every call while it is alive.
  Napi::ArrayBuffer ArrayBuffer(Napi::Env env);

  // Detaches the ArrayBuffer (views become zero-length, never dangling) and
  // unmaps now. If someone else detached it first, its memory was moved to
  // a new ArrayBuffer (a transfer): that holder keeps the mapping until it
  // is collected. Idempotent.
  void Release();

 private:
  std::shared_ptr<MappedMemory> memory_;
  Napi::Reference<Napi::ArrayBuffer> array_buffer_;  // weak
};

}  // namespace vfio
