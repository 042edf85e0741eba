// An eventfd (interrupt delivery from VFIO, irqfds for KVM), watched on the
// libuv loop with uv_poll: no threads, no polling loop.
#pragma once

#include <napi.h>
#include <uv.h>

#include <memory>

#include "wrap.h"

namespace vfio {

class EventFd : public FdWrap<EventFd> {
 public:
  static constexpr const char kClassName[] = "EventFd";

  static void Init(Napi::Env env, Napi::Object exports);
  explicit EventFd(const Napi::CallbackInfo& info) : Base(info) {}
  ~EventFd() override { CloseHandle(); }

 private:
  static Napi::Value Create(const Napi::CallbackInfo& info);
  static void OnPoll(uv_poll_t* handle, int status, int events);
  static void OnEnvCleanup(void* self);

  Napi::Value Start(const Napi::CallbackInfo& info);
  Napi::Value Stop(const Napi::CallbackInfo& info);
  Napi::Value RefLoop(const Napi::CallbackInfo& info);
  Napi::Value UnrefLoop(const Napi::CallbackInfo& info);
  Napi::Value Read(const Napi::CallbackInfo& info);
  Napi::Value Signal(const Napi::CallbackInfo& info);
  void Release() override;

  void Deliver(int status);
  // Stops delivering: poll stopped, callback dropped, JS object no longer
  // held alive by the watch.
  void StopWatching();
  // Hands the poll handle to uv_close (whose callback frees it) and drops
  // the env cleanup hook that would otherwise do so at teardown.
  void CloseHandle();

  uv_poll_t* handle_ = nullptr;
  Napi::FunctionReference callback_;
  std::unique_ptr<Napi::AsyncContext> async_context_;
  bool loop_ref_ = true;
  bool watching_ = false;
  bool cleanup_hook_ = false;
};

}  // namespace vfio
