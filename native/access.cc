#include "access.h"

#include <cmath>
#include <string>

#include "errors.h"

namespace vfio {

unsigned ArgWidth(const Napi::CallbackInfo& info, size_t i) {
  uint32_t width = ArgUint32(info, i, "width");
  if (width != 1 && width != 2 && width != 4 && width != 8) {
    ThrowRangeError(info.Env(), "The value of \"width\" is out of range. It must be 1, 2, 4 or 8. Received " +
                                    std::to_string(width));
  }
  return width;
}

uint64_t ArgRegisterValue(const Napi::CallbackInfo& info, size_t i, unsigned width) {
  uint64_t max = width == 8 ? UINT64_MAX : (uint64_t{1} << (8 * width)) - 1;
  uint64_t value;
  if (info[i].IsBigInt()) {
    value = ArgBigUint64(info, i, "value");
  } else if (info[i].IsNumber()) {
    value = ArgSafeUint(info, i, "value");
  } else {
    ThrowTypeError(info.Env(), "The \"value\" argument must be of type number or bigint");
  }
  if (value > max) {
    ThrowRangeError(info.Env(), "The value of \"value\" is out of range. It must fit in " + std::to_string(width) +
                                    " bytes. Received " + std::to_string(value));
  }
  return value;
}

Napi::Value RegisterValue(Napi::Env env, uint64_t value, unsigned width) {
  if (width == 8) return Napi::BigInt::New(env, value);
  return Napi::Number::New(env, static_cast<double>(value));
}

}  // namespace vfio
