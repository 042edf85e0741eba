// VFIO INFO ioctls with a capability chain (VFIO_IOMMU_GET_INFO,
// VFIO_DEVICE_GET_REGION_INFO): argsz grown to what the kernel asks for,
// then the chain walked with every offset checked against the buffer.
#pragma once

#include <linux/vfio.h>
#include <napi.h>

#include <cstdint>
#include <cstring>
#include <functional>
#include <vector>

#include "js_values.h"

namespace vfio {

// Issues `request` with `base` (a struct starting with __u32 argsz) and, if
// the kernel reports a larger argsz, once more with a buffer of that size.
// Returns the whole buffer, base struct first.
std::vector<uint8_t> InfoIoctl(Napi::Env env, int fd, unsigned long request, const void* base, size_t base_size,
                               const char* syscall);

// A capability as found in the buffer: its header and the bytes from its
// start to the end of the buffer (the most it can span).
struct InfoCap {
  vfio_info_cap_header header;
  const uint8_t* data;
  size_t available;

  // The capability as struct T, or false if T would run past the buffer.
  template <class T>
  bool As(T* out) const {
    if (sizeof(T) > available) return false;
    std::memcpy(out, data, sizeof(T));
    return true;
  }
};

// The `count` entries of type Entry that follow the capability's fixed part
// Head, as [{a, b}] of bigints (IOVA ranges, sparse mmap areas); null if
// the capability or its entries would run past the buffer.
template <class Head, class Entry>
Napi::Value U64PairArray(Napi::Env env, const InfoCap& cap, uint32_t Head::*count, const char* a_name,
                         __u64 Entry::*a, const char* b_name, __u64 Entry::*b) {
  Head head;
  if (!cap.As(&head)) return env.Null();
  uint32_t n = head.*count;
  if (n > (cap.available - sizeof head) / sizeof(Entry)) return env.Null();
  Napi::Array list = Napi::Array::New(env, n);
  for (uint32_t i = 0; i < n; ++i) {
    Entry e;
    std::memcpy(&e, cap.data + sizeof head + i * sizeof e, sizeof e);
    list.Set(i, Fields(env, {{a_name, U64(env, e.*a)}, {b_name, U64(env, e.*b)}}));
  }
  return list;
}

// Calls visit for each capability reachable from `first`, stopping at an
// offset outside the buffer or a chain longer than the buffer could hold.
void WalkInfoCaps(const std::vector<uint8_t>& buffer, uint32_t first, size_t base_size,
                  const std::function<void(const InfoCap&)>& visit);

}  // namespace vfio
