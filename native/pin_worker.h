// An ioctl on the libuv thread pool that pins a DmaBuffer's memory (type1's
// MAP_DMA, iommufd's IOAS_MAP): it holds the buffer — its JS object and its
// memory — and marks it busy until the promise settles, so neither GC nor
// close() can unmap what the kernel is pinning.
#pragma once

#include <napi.h>

#include <memory>

#include "dma_buffer.h"
#include "ioctl_worker.h"

namespace vfio {

template <class Arg>
class PinWorker : public IoctlWorker<Arg> {
 public:
  PinWorker(Napi::Env env, const char* resource, std::shared_ptr<Fd> fd, unsigned long request, const char* syscall,
            const Arg& arg, DmaBuffer* buffer, Napi::Object buffer_object)
      : IoctlWorker<Arg>(env, resource, std::move(fd), request, syscall, arg),
        buffer_(buffer),
        buffer_ref_(Napi::Persistent(buffer_object)),
        memory_(buffer->BeginUse()) {}
  ~PinWorker() override { buffer_->EndUse(); }

 private:
  DmaBuffer* buffer_;
  Napi::ObjectReference buffer_ref_;
  std::shared_ptr<MappedMemory> memory_;
};

}  // namespace vfio
