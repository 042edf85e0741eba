#include "errors.h"

#include <sys/ioctl.h>
#include <uv.h>

#include <cerrno>
#include <cmath>
#include <cstring>

#include "errno_name.h"
#include "faults.h"

namespace vfio {

namespace {

constexpr double kMaxSafeInteger = 9007199254740991.0;  // 2^53 - 1

// Node names errnos through libuv ('ENOTSUP' for 95); fall back to our own
// table for the many libuv does not know (ENOMEDIUM, EKEYREVOKED...), so the
// code is a name wherever <errno.h> has one.
std::string ErrnoName(int err) {
  char buf[64];
  uv_err_name_r(-err, buf, sizeof buf);
  if (std::strncmp(buf, "Unknown", 7) != 0) return buf;
  if (const char* name = ErrnoMacroName(err)) return name;
  return "Unknown system error " + std::to_string(-err);
}

std::string ErrnoText(int err) {
  char buf[128];
  uv_strerror_r(-err, buf, sizeof buf);
  if (std::strncmp(buf, "Unknown", 7) != 0) return buf;
  return std::strerror(err);
}

[[noreturn]] void ThrowWithCode(Napi::Error error, const char* code) {
  error.Set("code", Napi::String::New(error.Env(), code));
  throw error;
}

[[noreturn]] void ThrowWrongType(const Napi::CallbackInfo& info, const char* name, const char* what) {
  ThrowTypeError(info.Env(), std::string("The \"") + name + "\" argument must be " + what);
}

double ArgInteger(const Napi::CallbackInfo& info, size_t i, const char* name, double min, double max) {
  Napi::Value v = info[i];
  if (!v.IsNumber()) ThrowWrongType(info, name, "of type number");
  double d = v.As<Napi::Number>().DoubleValue();
  if (!std::isfinite(d) || std::trunc(d) != d || d < min || d > max) {
    ThrowRangeError(info.Env(), std::string("The value of \"") + name +
                                    "\" is out of range. It must be an integer >= " +
                                    std::to_string(static_cast<long long>(min)) + " and <= " +
                                    std::to_string(static_cast<long long>(max)) + ". Received " +
                                    v.ToString().Utf8Value());
  }
  return d;
}

uint64_t ArgBigInt(const Napi::CallbackInfo& info, size_t i, const char* name, uint64_t max) {
  Napi::Value v = info[i];
  if (!v.IsBigInt()) ThrowWrongType(info, name, "of type bigint");
  bool lossless = false;
  uint64_t u = v.As<Napi::BigInt>().Uint64Value(&lossless);
  if (!lossless || u > max) {
    ThrowRangeError(info.Env(), std::string("The value of \"") + name + "\" is out of range. It must be >= 0n and <= " +
                                    std::to_string(max) + "n. Received " + v.ToString().Utf8Value() + "n");
  }
  return u;
}

}  // namespace

Napi::Error SystemError(Napi::Env env, int err, const std::string& syscall, const char* path) {
  std::string code = ErrnoName(err);
  std::string message = code + ": " + ErrnoText(err) + ", " + syscall;
  if (path != nullptr) message += std::string(" '") + path + "'";
  Napi::Error error = Napi::Error::New(env, message);
  error.Set("errno", Napi::Number::New(env, -err));
  error.Set("code", Napi::String::New(env, code));
  error.Set("syscall", Napi::String::New(env, syscall));
  if (path != nullptr) error.Set("path", Napi::String::New(env, path));
  return error;
}

void ThrowSystemError(Napi::Env env, int err, const std::string& syscall, const char* path) {
  throw SystemError(env, err, syscall, path);
}

void ThrowTypeError(Napi::Env env, const std::string& message) {
  ThrowWithCode(Napi::TypeError::New(env, message), "ERR_INVALID_ARG_TYPE");
}

void ThrowRangeError(Napi::Env env, const std::string& message) {
  ThrowWithCode(Napi::RangeError::New(env, message), "ERR_OUT_OF_RANGE");
}

void ThrowCodedError(Napi::Env env, const char* code, const std::string& message) {
  ThrowWithCode(Napi::Error::New(env, message), code);
}

void ThrowClosed(Napi::Env env, const char* what) {
  ThrowCodedError(env, "ERR_VFIO_CLOSED", std::string(what) + " is closed");
}

int CheckedIoctl(Napi::Env env, int fd, unsigned long request, void* arg, const char* syscall) {
  int rc = Ioctl(fd, request, arg, syscall);
  if (rc < 0) ThrowSystemError(env, errno, syscall);
  return rc;
}

uint32_t ArgUint32(const Napi::CallbackInfo& info, size_t i, const char* name) {
  return static_cast<uint32_t>(ArgInteger(info, i, name, 0, 4294967295.0));
}

int32_t ArgInt32(const Napi::CallbackInfo& info, size_t i, const char* name) {
  return static_cast<int32_t>(ArgInteger(info, i, name, -2147483648.0, 2147483647.0));
}

uint64_t ArgSafeUint(const Napi::CallbackInfo& info, size_t i, const char* name) {
  return static_cast<uint64_t>(ArgInteger(info, i, name, 0, kMaxSafeInteger));
}

uint64_t ArgBigUint64(const Napi::CallbackInfo& info, size_t i, const char* name) {
  return ArgBigInt(info, i, name, UINT64_MAX);
}

int64_t ArgFileOffset(const Napi::CallbackInfo& info, size_t i, const char* name) {
  return static_cast<int64_t>(ArgBigInt(info, i, name, INT64_MAX));
}

bool ArgBool(const Napi::CallbackInfo& info, size_t i, const char* name) {
  Napi::Value v = info[i];
  if (!v.IsBoolean()) ThrowWrongType(info, name, "of type boolean");
  return v.As<Napi::Boolean>().Value();
}

std::string ArgString(const Napi::CallbackInfo& info, size_t i, const char* name) {
  Napi::Value v = info[i];
  if (!v.IsString()) ThrowWrongType(info, name, "of type string");
  std::string s = v.As<Napi::String>().Utf8Value();
  // The kernel would stop at the first NUL and act on a different name.
  if (s.find('\0') != std::string::npos) ThrowWrongType(info, name, "a string without null bytes");
  return s;
}

std::string ArgPath(const Napi::CallbackInfo& info, size_t i, const char* fallback) {
  if (info[i].IsUndefined() && fallback != nullptr) return fallback;
  return ArgString(info, i, "path");
}

Napi::Function ArgFunction(const Napi::CallbackInfo& info, size_t i, const char* name) {
  Napi::Value v = info[i];
  if (!v.IsFunction()) ThrowWrongType(info, name, "of type function");
  return v.As<Napi::Function>();
}

}  // namespace vfio
