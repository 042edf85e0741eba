#include "registry.h"

#include "wrap.h"

namespace vfio {

void Registry::Remove(const void* address) {
  objects.erase(address);
  if (last_address == address) {
    last_address = nullptr;
    last = nullptr;
  }
}

uintptr_t Registry::NewSlot(const char* class_name, void* address, uint32_t* slot) {
  if (free_slots.empty()) {
    free_slots.push_back(static_cast<uint32_t>(slots.size()));
    slots.push_back({nullptr, nullptr, 1});
  }
  *slot = free_slots.back();
  free_slots.pop_back();
  MethodSlot& s = slots[*slot];
  s.class_name = class_name;
  s.object = address;
  return static_cast<uintptr_t>((static_cast<uint64_t>(s.generation) << 32) | *slot);
}

void Registry::FreeSlot(uint32_t slot) {
  MethodSlot& s = slots[slot];
  s.object = nullptr;
  ++s.generation;
  free_slots.push_back(slot);
}

void* Registry::MethodTarget(Napi::Env env, uintptr_t token, const char* class_name) const {
  uint32_t slot = static_cast<uint32_t>(token);
  uint32_t generation = static_cast<uint32_t>(static_cast<uint64_t>(token) >> 32);
  if (slot >= slots.size() || slots[slot].generation != generation) return nullptr;
  const MethodSlot& s = slots[slot];
  if (s.class_name != class_name) ThrowIllegalInvocation(env, class_name);
  return s.object;
}

namespace {

bool OfClass(const LiveObject& live, const char* class_name) {
  return class_name != nullptr ? live.class_name == class_name : live.fd_holder != nullptr;
}

// Whether `value` is the very JS object of `live`.
bool IsObjectOf(Napi::Env env, napi_value value, const LiveObject& live) {
  napi_value js = nullptr;
  bool same = false;
  if (napi_get_reference_value(env, live.js, &js) != napi_ok || js == nullptr) return false;
  return napi_strict_equals(env, js, value, &same) == napi_ok && same;
}

}  // namespace

const LiveObject* Registry::Find(Napi::Env env, napi_value value, const void** address, const char* class_name) {
  if (last != nullptr && OfClass(*last, class_name) && IsObjectOf(env, value, *last)) {
    *address = last_address;
    return last;
  }
  void* unwrapped = nullptr;
  if (napi_unwrap(env, value, &unwrapped) != napi_ok) return nullptr;
  auto it = objects.find(unwrapped);
  if (it == objects.end()) return nullptr;
  const LiveObject& live = it->second;
  if (!OfClass(live, class_name) || !IsObjectOf(env, value, live)) return nullptr;
  last_address = unwrapped;
  last = &live;
  *address = unwrapped;
  return &live;
}

}  // namespace vfio
