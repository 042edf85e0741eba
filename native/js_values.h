// Building the plain JS objects the ioctl wrappers return: kernel u32 as
// number, kernel u64 as bigint, as lib/native.ts declares them.
#pragma once

#include <napi.h>

#include <cstdint>
#include <initializer_list>
#include <utility>

namespace vfio {

inline Napi::Value U32(Napi::Env env, uint32_t v) { return Napi::Number::New(env, v); }
inline Napi::Value U64(Napi::Env env, uint64_t v) { return Napi::BigInt::New(env, v); }

inline Napi::Object Fields(Napi::Env env, std::initializer_list<std::pair<const char*, Napi::Value>> fields) {
  Napi::Object object = Napi::Object::New(env);
  for (const auto& [name, value] : fields) object.Set(name, value);
  return object;
}

}  // namespace vfio
