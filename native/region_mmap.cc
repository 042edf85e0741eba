#include "region_mmap.h"

#include <sys/mman.h>

#include <cerrno>
#include <string>

#include "access.h"
#include "errors.h"
#include "wrap.h"

namespace vfio {

void RegionMapping::Init(Napi::Env env, Napi::Object) {
  Napi::Function constructor = DefineWrapClass(env,
                                                {
                                                    Method<&RegionMapping::Read>("read"),
                                                    Method<&RegionMapping::Write>("write"),
                                                    Method<&RegionMapping::GetArrayBuffer>("arrayBuffer"),
                                                    Method<&RegionMapping::Close>("close"),
                                                },
                                                OwnMethods::kBound);
  DefineGetter<RegionMapping, RegionMapping, &RegionMapping::GetSize>(constructor, "size");
}

Napi::Object RegionMapping::Create(Napi::Env env, int fd, off_t offset, uint64_t size, int prot) {
  void* addr = ::mmap(nullptr, size, prot, MAP_SHARED, fd, offset);
  if (addr == MAP_FAILED) ThrowSystemError(env, errno, "mmap");
  Napi::Object object;
  try {
    RegionMapping* mapping = NewWrapped<RegionMapping>(env, &object);
    mapping->memory_ = ExposedMemory(std::make_shared<MappedMemory>(addr, size));
    mapping->size_ = size;
    mapping->prot_ = prot;
  } catch (...) {
    ::munmap(addr, size);
    throw;
  }
  return object;
}

uint8_t* RegionMapping::Addr(Napi::Env env) const {
  if (memory_.Released()) ThrowClosed(env, kClassName);
  return memory_.memory()->addr();
}

uint64_t RegionMapping::Vaddr(Napi::Env env, uint64_t offset, uint64_t size) const {
  uint8_t* addr = Addr(env);
  if (offset > size_ || size > size_ - offset) {
    ThrowRangeError(env, "The range [" + std::to_string(offset) + ", " + std::to_string(offset + size) +
                             ") is out of range. It must lie inside the mapping (" + std::to_string(size_) + " bytes)");
  }
  return reinterpret_cast<uintptr_t>(addr) + offset;
}

// Read() and Write() checked that the mapping is open (that error comes first).
volatile uint8_t* RegionMapping::Slot(const Napi::CallbackInfo& info, uint64_t offset, unsigned width,
                                      int needed_prot) {
  Napi::Env env = info.Env();
  if (offset > size_ || width > size_ - offset || offset % width != 0) {
    ThrowRangeError(env, "The value of \"offset\" is out of range. It must be a multiple of " + std::to_string(width) +
                             " with offset + " + std::to_string(width) + " <= " + std::to_string(size_) +
                             ". Received " + std::to_string(offset));
  }
  if ((prot_ & needed_prot) == 0) {
    const char* missing = needed_prot == PROT_READ ? "PROT_READ" : "PROT_WRITE";
    ThrowCodedError(env, "ERR_VFIO_REGION_ACCESS", std::string("The mapping was not made with ") + missing);
  }
  return memory_.memory()->addr() + offset;
}

Napi::Value RegionMapping::GetSize(const Napi::CallbackInfo& info) { return Napi::Number::New(info.Env(), size_); }

// Each access is one load or store of exactly `width` bytes: device
// registers care about the access size, so no memcpy, no splitting.
Napi::Value RegionMapping::Read(const Napi::CallbackInfo& info) {
  Napi::Env env = info.Env();
  Addr(env);
  uint64_t offset = ArgSafeUint(info, 0, "offset");
  unsigned width = ArgWidth(info, 1);
  volatile uint8_t* p = Slot(info, offset, width, PROT_READ);
  uint64_t value;
  switch (width) {
    case 1: value = *p; break;
    case 2: value = *reinterpret_cast<volatile uint16_t*>(p); break;
    case 4: value = *reinterpret_cast<volatile uint32_t*>(p); break;
    default: value = *reinterpret_cast<volatile uint64_t*>(p); break;
  }
  return RegisterValue(env, value, width);
}

Napi::Value RegionMapping::Write(const Napi::CallbackInfo& info) {
  Napi::Env env = info.Env();
  Addr(env);
  uint64_t offset = ArgSafeUint(info, 0, "offset");
  unsigned width = ArgWidth(info, 1);
  uint64_t value = ArgRegisterValue(info, 2, width);
  volatile uint8_t* p = Slot(info, offset, width, PROT_WRITE);
  switch (width) {
    case 1: *p = static_cast<uint8_t>(value); break;
    case 2: *reinterpret_cast<volatile uint16_t*>(p) = static_cast<uint16_t>(value); break;
    case 4: *reinterpret_cast<volatile uint32_t*>(p) = static_cast<uint32_t>(value); break;
    default: *reinterpret_cast<volatile uint64_t*>(p) = value; break;
  }
  return env.Undefined();
}

// Only a read-write mapping: a store through a view of a read-only one
// would fault the process. Views see native byte order, as read()/write() do.
Napi::Value RegionMapping::GetArrayBuffer(const Napi::CallbackInfo& info) {
  Napi::Env env = info.Env();
  Addr(env);
  if ((prot_ & (PROT_READ | PROT_WRITE)) != (PROT_READ | PROT_WRITE)) {
    ThrowCodedError(env, "ERR_VFIO_REGION_ACCESS", "Only a mapping made with PROT_READ | PROT_WRITE has an ArrayBuffer");
  }
  return memory_.ArrayBuffer(env);
}

Napi::Value RegionMapping::Close(const Napi::CallbackInfo& info) {
  if (busy_ > 0 && !memory_.Released()) ThrowSystemError(info.Env(), EBUSY, "munmap");
  memory_.Release();
  return info.Env().Undefined();
}

}  // namespace vfio
