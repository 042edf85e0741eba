// noiommu DMA: with no IOMMU a device reaches memory by physical address, so
// the pages must stay where they are while it may DMA (mlock keeps them
// resident) and their physical frames are read from /proc/self/pagemap.
// Always on the buffer's own mapping: JS names the buffer, never an address.
#include <fcntl.h>
#include <sys/mman.h>
#include <unistd.h>

#include <cerrno>
#include <cstring>

#include "dma_buffer.h"

namespace vfio {

namespace {

constexpr const char kPagemap[] = "/proc/self/pagemap";

}  // namespace

void* DmaBuffer::Memory(Napi::Env env) const {
  if (Closed() || memory_.Released()) ThrowClosed(env, kClassName);
  return memory_.memory()->addr();
}

Napi::Value DmaBuffer::Mlock(const Napi::CallbackInfo& info) {
  Napi::Env env = info.Env();
  if (::mlock(Memory(env), size_) < 0) ThrowSystemError(env, errno, "mlock");
  return env.Undefined();
}

Napi::Value DmaBuffer::Munlock(const Napi::CallbackInfo& info) {
  Napi::Env env = info.Env();
  if (::munlock(Memory(env), size_) < 0) ThrowSystemError(env, errno, "munlock");
  return env.Undefined();
}

// One raw 64-bit pagemap entry per system page of the buffer (bit 63
// present, bits 0-54 the PFN, which reads as 0 without CAP_SYS_ADMIN);
// lib/ judges them.
Napi::Value DmaBuffer::Pagemap(const Napi::CallbackInfo& info) {
  Napi::Env env = info.Env();
  auto addr = reinterpret_cast<uintptr_t>(Memory(env));
  const size_t page = static_cast<size_t>(::sysconf(_SC_PAGESIZE));
  const size_t count = size_ / page;
  Napi::ArrayBuffer ab = Napi::ArrayBuffer::New(env, count * sizeof(uint64_t));
  int fd = ::open(kPagemap, O_RDONLY | O_CLOEXEC);
  if (fd < 0) ThrowSystemError(env, errno, "open", kPagemap);
  auto* out = static_cast<uint8_t*>(ab.Data());
  size_t want = count * sizeof(uint64_t);
  off_t at = static_cast<off_t>(addr / page * sizeof(uint64_t));
  size_t got = 0;
  while (got < want) {
    ssize_t n = ::pread(fd, out + got, want - got, at + static_cast<off_t>(got));
    if (n < 0 && errno == EINTR) continue;
    if (n <= 0) {
      int err = n < 0 ? errno : EIO;
      ::close(fd);
      ThrowSystemError(env, err, "pread", kPagemap);
    }
    got += static_cast<size_t>(n);
  }
  ::close(fd);
  napi_value array;
  if (napi_create_typedarray(env, napi_biguint64_array, count, ab, 0, &array) != napi_ok) {
    throw Napi::Error::New(env, "vfio: cannot create BigUint64Array");
  }
  return Napi::Value(env, array);
}

}  // namespace vfio
