// Exact-width register access shared by device pread/pwrite and region
// mmaps: widths 1, 2, 4, 8; values unsigned, 8-byte ones as bigint.
#pragma once

#include <napi.h>

#include <cstdint>

namespace vfio {

// 1, 2, 4 or 8, else RangeError.
unsigned ArgWidth(const Napi::CallbackInfo& info, size_t i);
// A number or bigint that fits in `width` bytes.
uint64_t ArgRegisterValue(const Napi::CallbackInfo& info, size_t i, unsigned width);
// number for widths 1, 2, 4; bigint for 8.
Napi::Value RegisterValue(Napi::Env env, uint64_t value, unsigned width);

}  // namespace vfio
