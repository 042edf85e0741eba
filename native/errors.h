// Errors in Node's system-error shape, and the argument checks that keep bad
// JS values from ever reaching a syscall.
#pragma once

#include <napi.h>

#include <cstdint>
#include <string>

namespace vfio {

// Error with code ('EINVAL'), errno (-22), syscall and optional path, the
// shape of Node's own fs errors. `err` is a positive errno.
Napi::Error SystemError(Napi::Env env, int err, const std::string& syscall, const char* path = nullptr);
[[noreturn]] void ThrowSystemError(Napi::Env env, int err, const std::string& syscall, const char* path = nullptr);

// TypeError, code ERR_INVALID_ARG_TYPE.
[[noreturn]] void ThrowTypeError(Napi::Env env, const std::string& message);
// RangeError, code ERR_OUT_OF_RANGE.
[[noreturn]] void ThrowRangeError(Napi::Env env, const std::string& message);
// Error with an ERR_VFIO_* code that is not a syscall failure.
[[noreturn]] void ThrowCodedError(Napi::Env env, const char* code, const std::string& message);
// Error, code ERR_VFIO_CLOSED: a call on an object after close().
[[noreturn]] void ThrowClosed(Napi::Env env, const char* what);

// ioctl(2) that throws a system error named after the request on failure and
// returns the ioctl's (non-negative) result.
int CheckedIoctl(Napi::Env env, int fd, unsigned long request, void* arg, const char* syscall);
// For requests that take their argument by value (VFIO_CHECK_EXTENSION,
// VFIO_SET_IOMMU, KVM_CREATE_VM...), not through a pointer.
inline void* IoctlValue(unsigned long value) { return reinterpret_cast<void*>(value); }

// The syscall name of an ioctl request, spelled as in the uapi header.
#define VFIO_IOCTL_NAME(request) "ioctl(" #request ")"
#define VFIO_IOCTL(env, fd, request, arg) ::vfio::CheckedIoctl((env), (fd), (request), (arg), "ioctl(" #request ")")

// Argument readers: each throws TypeError for a wrong type and RangeError for
// a value of the right type outside the accepted range.
uint32_t ArgUint32(const Napi::CallbackInfo& info, size_t i, const char* name);
int32_t ArgInt32(const Napi::CallbackInfo& info, size_t i, const char* name);
// A non-negative safe integer (number): byte offsets and sizes.
uint64_t ArgSafeUint(const Napi::CallbackInfo& info, size_t i, const char* name);
// A bigint in [0, 2^64).
uint64_t ArgBigUint64(const Napi::CallbackInfo& info, size_t i, const char* name);
// A bigint in [0, 2^63): a file offset (off_t).
int64_t ArgFileOffset(const Napi::CallbackInfo& info, size_t i, const char* name);
bool ArgBool(const Napi::CallbackInfo& info, size_t i, const char* name);
std::string ArgString(const Napi::CallbackInfo& info, size_t i, const char* name);
// The string argument, or `fallback` (if not null) when it is undefined.
std::string ArgPath(const Napi::CallbackInfo& info, size_t i, const char* fallback);
Napi::Function ArgFunction(const Napi::CallbackInfo& info, size_t i, const char* name);

}  // namespace vfio
