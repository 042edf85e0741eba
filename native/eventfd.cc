#include "eventfd.h"

#include <sys/eventfd.h>
#include <unistd.h>

#include <cerrno>
#include <cstdint>

namespace vfio {

void EventFd::Init(Napi::Env env, Napi::Object exports) {
  Define(env, {
                  Method<&EventFd::Start>("start"),
                  Method<&EventFd::Stop>("stop"),
                  Method<&EventFd::RefLoop>("ref"),
                  Method<&EventFd::UnrefLoop>("unref"),
                  Method<&EventFd::Read>("read"),
                  Method<&EventFd::Signal>("signal"),
              });
  exports.Set("createEventFd", Napi::Function::New(env, Create, "createEventFd"));
}

Napi::Value EventFd::Create(const Napi::CallbackInfo& info) {
  int fd = ::eventfd(0, EFD_CLOEXEC | EFD_NONBLOCK);
  if (fd < 0) ThrowSystemError(info.Env(), errno, "eventfd");
  return WrapFd<EventFd>(info.Env(), Fd(fd));
}

Napi::Value EventFd::Start(const Napi::CallbackInfo& info) {
  Napi::Env env = info.Env();
  int fd = Require(env);
  Napi::Function callback = ArgFunction(info, 0, "callback");
  // A method taken off the object can run after the object was collected and
  // before its finalizer closed it: there is no object left to deliver to.
  Napi::Object self = Value();
  if (self.IsEmpty()) ThrowClosed(env, kClassName);
  if (handle_ == nullptr) {
    uv_loop_t* loop = nullptr;
    if (napi_get_uv_event_loop(env, &loop) != napi_ok) throw Napi::Error::New(env, "no event loop");
    auto* handle = new uv_poll_t;
    int rc = uv_poll_init(loop, handle, fd);
    if (rc < 0) {
      delete handle;
      ThrowSystemError(env, -rc, "uv_poll_init");
    }
    handle->data = this;
    handle_ = handle;
    if (!loop_ref_) uv_unref(reinterpret_cast<uv_handle_t*>(handle_));
    // A worker's loop cannot close with our handle on it: close it first.
    napi_add_env_cleanup_hook(env, OnEnvCleanup, this);
    cleanup_hook_ = true;
  }
  if (!async_context_) {
    async_context_ = std::make_unique<Napi::AsyncContext>(env, "vfio:EventFd", self);
  }
  int rc = uv_poll_start(handle_, UV_READABLE, OnPoll);
  if (rc < 0) ThrowSystemError(env, -rc, "uv_poll_start");
  callback_ = Napi::Persistent(callback);
  // Like a Node handle, an active watch keeps its JS object alive.
  if (!watching_) Ref();
  watching_ = true;
  return env.Undefined();
}

Napi::Value EventFd::Stop(const Napi::CallbackInfo& info) {
  Require(info.Env());
  StopWatching();
  return info.Env().Undefined();
}

void EventFd::StopWatching() {
  if (handle_ != nullptr) uv_poll_stop(handle_);
  callback_.Reset();
  if (watching_) Unref();
  watching_ = false;
}

void EventFd::CloseHandle() {
  if (handle_ != nullptr) {
    handle_->data = nullptr;
    uv_close(reinterpret_cast<uv_handle_t*>(handle_), [](uv_handle_t* h) { delete reinterpret_cast<uv_poll_t*>(h); });
    handle_ = nullptr;
  }
  if (cleanup_hook_) {
    napi_remove_env_cleanup_hook(Env(), OnEnvCleanup, this);
    cleanup_hook_ = false;
  }
}

void EventFd::OnEnvCleanup(void* arg) {
  auto* self = static_cast<EventFd*>(arg);
  self->cleanup_hook_ = false;
  self->CloseHandle();
  self->async_context_.reset();
}

void EventFd::Release() {
  if (Closed()) return;
  StopWatching();
  CloseHandle();
  fd_.reset();
}

Napi::Value EventFd::RefLoop(const Napi::CallbackInfo& info) {
  Require(info.Env());
  loop_ref_ = true;
  if (handle_ != nullptr) uv_ref(reinterpret_cast<uv_handle_t*>(handle_));
  return info.Env().Undefined();
}

Napi::Value EventFd::UnrefLoop(const Napi::CallbackInfo& info) {
  Require(info.Env());
  loop_ref_ = false;
  if (handle_ != nullptr) uv_unref(reinterpret_cast<uv_handle_t*>(handle_));
  return info.Env().Undefined();
}

Napi::Value EventFd::Read(const Napi::CallbackInfo& info) {
  Napi::Env env = info.Env();
  int fd = Require(env);
  uint64_t count = 0;
  if (::read(fd, &count, sizeof count) < 0) {
    if (errno == EAGAIN) return Napi::Number::New(env, 0);
    ThrowSystemError(env, errno, "read");
  }
  return Napi::Number::New(env, static_cast<double>(count));
}

Napi::Value EventFd::Signal(const Napi::CallbackInfo& info) {
  Napi::Env env = info.Env();
  int fd = Require(env);
  uint64_t value = ArgSafeUint(info, 0, "value");
  if (::write(fd, &value, sizeof value) < 0) ThrowSystemError(env, errno, "write");
  return env.Undefined();
}

void EventFd::OnPoll(uv_poll_t* handle, int status, int) {
  auto* self = static_cast<EventFd*>(handle->data);
  if (self != nullptr) self->Deliver(status);
}

// Runs on the loop thread, outside any JS call: the callback goes through
// MakeCallback so async_hooks, nextTicks and microtasks behave, and an
// exception it throws becomes an uncaught exception of the process.
void EventFd::Deliver(int status) {
  Napi::Env env = Env();
  Napi::HandleScope scope(env);
  Napi::Object self = Value();  // alive until we return, even if the callback closes us
  if (status < 0) {
    StopWatching();
    napi_fatal_exception(env, SystemError(env, -status, "uv_poll").Value());
    return;
  }
  uint64_t count = 0;
  if (::read(HeldFd(), &count, sizeof count) < 0) {
    if (errno == EAGAIN || errno == EINTR) return;  // another reader got there first
    int err = errno;
    StopWatching();
    napi_fatal_exception(env, SystemError(env, err, "read").Value());
    return;
  }
  if (callback_.IsEmpty()) return;
  Napi::Function callback = callback_.Value();
  try {
    callback.MakeCallback(self, {Napi::Number::New(env, static_cast<double>(count))}, *async_context_);
  } catch (const Napi::Error& e) {
    napi_fatal_exception(env, e.Value());
  }
}

}  // namespace vfio
