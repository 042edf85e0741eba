#include "faults.h"

#include <sys/ioctl.h>

#include <atomic>
#include <cerrno>
#include <mutex>
#include <string>
#include <vector>

#include "errors.h"

namespace vfio {

namespace {

struct Fault {
  std::string syscall;
  uint32_t nth;
  int err;
  uint32_t seen = 0;
};

// Process-wide, as the fds are: a fault armed from one thread (or worker)
// fails the call wherever it is issued.
std::mutex mutex;
std::vector<Fault> armed;
std::vector<Fault> fired;
std::atomic<bool> any{false};

// Counts the call against every armed fault of its name; the one whose turn
// it is fires (once) and its errno is returned, else 0.
int Take(const char* syscall) {
  std::lock_guard<std::mutex> lock(mutex);
  int err = 0;
  for (auto it = armed.begin(); it != armed.end();) {
    if (it->syscall == syscall && ++it->seen == it->nth && err == 0) {
      err = it->err;
      fired.push_back(*it);
      it = armed.erase(it);
    } else {
      ++it;
    }
  }
  any.store(!armed.empty(), std::memory_order_relaxed);
  return err;
}

Napi::Value Inject(const Napi::CallbackInfo& info) {
  std::string syscall = ArgString(info, 0, "syscall");
  uint32_t nth = ArgUint32(info, 1, "nth");
  int32_t err = ArgInt32(info, 2, "errno");
  if (nth == 0) ThrowRangeError(info.Env(), "The value of \"nth\" is out of range. It must be >= 1");
  if (err <= 0) ThrowRangeError(info.Env(), "The value of \"errno\" is out of range. It must be > 0");
  std::lock_guard<std::mutex> lock(mutex);
  armed.push_back({syscall, nth, err});
  any.store(true, std::memory_order_relaxed);
  return info.Env().Undefined();
}

Napi::Value Clear(const Napi::CallbackInfo& info) {
  std::lock_guard<std::mutex> lock(mutex);
  armed.clear();
  fired.clear();
  any.store(false, std::memory_order_relaxed);
  return info.Env().Undefined();
}

Napi::Value Fired(const Napi::CallbackInfo& info) {
  Napi::Env env = info.Env();
  std::lock_guard<std::mutex> lock(mutex);
  Napi::Array out = Napi::Array::New(env, fired.size());
  for (size_t i = 0; i < fired.size(); i++) {
    Napi::Object f = Napi::Object::New(env);
    f.Set("syscall", fired[i].syscall);
    f.Set("nth", fired[i].nth);
    f.Set("errno", fired[i].err);
    out.Set(static_cast<uint32_t>(i), f);
  }
  return out;
}

}  // namespace

int Ioctl(int fd, unsigned long request, void* arg, const char* syscall) {
  if (any.load(std::memory_order_relaxed)) {
    if (int err = Take(syscall)) {
      errno = err;
      return -1;
    }
  }
  return ::ioctl(fd, request, arg);
}

void InitFaults(Napi::Env env, Napi::Object exports) {
  Napi::Object faults = Napi::Object::New(env);
  faults.Set("inject", Napi::Function::New(env, Inject, "inject"));
  faults.Set("clear", Napi::Function::New(env, Clear, "clear"));
  faults.Set("fired", Napi::Function::New(env, Fired, "fired"));
  exports.Set("ioctlFaults", faults);
}

}  // namespace vfio
