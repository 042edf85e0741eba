// An mmap of a device region (a BAR). JS reaches it through exact-width
// volatile loads and stores, bounds- and alignment-checked here, so a wrong
// offset is a RangeError instead of a fault; or, for a read-write mapping,
// through an external ArrayBuffer (no Node-API call per access), detached
// on close.
#pragma once

#include <napi.h>
#include <sys/types.h>

#include <cstdint>

#include "mapped_memory.h"
#include "wrap.h"

namespace vfio {

class RegionMapping : public Wrap<RegionMapping> {
 public:
  static constexpr const char kClassName[] = "RegionMapping";

  static void Init(Napi::Env env, Napi::Object exports);
  // mmap(MAP_SHARED) of [offset, offset + size) of a device fd. The mapping
  // keeps the device open on its own; the kernel may still deliver SIGBUS
  // when the device stops decoding memory, which no check here can see.
  static Napi::Object Create(Napi::Env env, int fd, off_t offset, uint64_t size, int prot);

  explicit RegionMapping(const Napi::CallbackInfo& info) : Wrap(info) {}

  // Address of [offset, offset + size) inside the mapping, for a peer-to-peer
  // DMA map; ERR_VFIO_CLOSED after close, RangeError unless the range lies inside.
  uint64_t Vaddr(Napi::Env env, uint64_t offset, uint64_t size) const;

  // A KVM memory slot over the mapping holds it busy: close() is EBUSY
  // meanwhile, so the guest can never reach memory mapped there later.
  void BeginUse() { ++busy_; }
  void EndUse() { --busy_; }

 private:
  Napi::Value GetSize(const Napi::CallbackInfo& info);
  Napi::Value Read(const Napi::CallbackInfo& info);
  Napi::Value Write(const Napi::CallbackInfo& info);
  Napi::Value GetArrayBuffer(const Napi::CallbackInfo& info);
  Napi::Value Close(const Napi::CallbackInfo& info);
  // The address of a `width`-byte access at `offset`, after every check.
  volatile uint8_t* Slot(const Napi::CallbackInfo& info, uint64_t offset, unsigned width, int needed_prot);
  uint8_t* Addr(Napi::Env env) const;

  ExposedMemory memory_;  // unmapped when the last holder lets go
  size_t size_ = 0;
  int prot_ = 0;
  int busy_ = 0;
};

}  // namespace vfio
