// One ioctl on the libuv thread pool, for calls that may pin a lot of memory
// (MAP_DMA of guest RAM). The promise settles with the result, or rejects
// with the same error the synchronous call would throw.
#pragma once

#include <napi.h>
#include <sys/ioctl.h>

#include <cerrno>
#include <memory>

#include "errors.h"
#include "faults.h"
#include "fd.h"

namespace vfio {

template <class Arg>
class IoctlWorker : public Napi::AsyncWorker {
 public:
  // `fd` is shared so that close() of the owner during the call cannot hand
  // the number to another open() before the ioctl has run.
  IoctlWorker(Napi::Env env, const char* resource, std::shared_ptr<Fd> fd, unsigned long request,
              const char* syscall, const Arg& arg)
      : Napi::AsyncWorker(env, resource),
        deferred_(Napi::Promise::Deferred::New(env)),
        fd_(std::move(fd)),
        request_(request),
        syscall_(syscall),
        arg_(arg) {}

  // Queues the work; the worker deletes itself once the promise settled.
  Napi::Promise Start() {
    Napi::Promise promise = deferred_.Promise();
    try {
      Queue();
    } catch (...) {
      delete this;  // never queued, so nothing else will
      throw;
    }
    return promise;
  }

 protected:
  virtual Napi::Value Result() = 0;

  void Execute() override {
    if (Ioctl(fd_->Get(), request_, &arg_, syscall_) < 0) err_ = errno;
  }

  void OnOK() override {
    if (err_ != 0) {
      deferred_.Reject(SystemError(Env(), err_, syscall_).Value());
    } else {
      deferred_.Resolve(Result());
    }
  }

 private:
  Napi::Promise::Deferred deferred_;
  std::shared_ptr<Fd> fd_;
  unsigned long request_;
  const char* syscall_;
  int err_ = 0;

 protected:
  // Last: vfio_iommu_type1_dma_unmap ends in a flexible array member.
  Arg arg_;
};

}  // namespace vfio
