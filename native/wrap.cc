#include "wrap.h"

#include <fcntl.h>

#include <cerrno>

namespace vfio {

AddonData& GetAddonData(Napi::Env env) { return *env.GetInstanceData<AddonData>(); }

namespace {

// Node-API can call one JS function at a time, and each crossing costs more
// than a bind: the loop over an object's methods runs in JS. The builtins
// are the ones found when the addon loads; a later replacement of them is
// never called. (Even one replaced before that gains nothing: a bound
// method checks its token against the registry before acting.)
constexpr char kInstallMethods[] = R"js(
'use strict';
(function (bind, apply, defineProperty) {
  return function installMethods(object, names, methods, token) {
    for (let i = 0; i < names.length; i++) {
      defineProperty(object, names[i], { value: apply(bind, methods[i], [token]) });
    }
  };
})(Function.prototype.bind, Reflect.apply, Object.defineProperty)
)js";

}  // namespace

void InitAddonData(Napi::Env env) {
  auto* data = new AddonData();
  env.SetInstanceData(data);
  napi_value script;
  if (napi_run_script(env, Napi::String::New(env, kInstallMethods), &script) != napi_ok) {
    throw Napi::Error::New(env, "vfio: cannot define the method installer");
  }
  data->install_methods = Napi::Persistent(Napi::Function(env, script));
}

void GuardConstruction(const Napi::CallbackInfo& info) {
  if (!GetAddonData(info.Env()).constructing) {
    throw Napi::TypeError::New(info.Env(), "Illegal constructor: vfio objects come from the addon's functions");
  }
}

void ThrowIllegalInvocation(Napi::Env env, const char* class_name) {
  ThrowTypeError(env, std::string("Illegal invocation: receiver is not a ") + class_name);
}

Napi::Function NativeFunction(Napi::Env env, const char* name, napi_callback callback) {
  napi_value fn;
  if (napi_create_function(env, name, NAPI_AUTO_LENGTH, callback, nullptr, &fn) != napi_ok) {
    throw Napi::Error::New(env, std::string("vfio: cannot create ") + name);
  }
  return Napi::Function(env, fn);
}

FdHolder* UnwrapFdOwner(const Napi::CallbackInfo& info, size_t i, const char* name) {
  const void* address = nullptr;
  const LiveObject* live = GetAddonData(info.Env()).registry->Find(info.Env(), info[i], &address, nullptr);
  if (live == nullptr) {
    ThrowTypeError(info.Env(), std::string("The \"") + name + "\" argument must be a vfio object that owns an fd");
  }
  return live->fd_holder;
}

int ArgOwnedFd(const Napi::CallbackInfo& info, size_t i, const char* name) {
  FdHolder* holder = UnwrapFdOwner(info, i, name);
  if (holder->Closed()) ThrowClosed(info.Env(), holder->ClassName());
  return holder->HeldFd();
}

Fd OpenPath(Napi::Env env, const std::string& path) {
  int fd = ::open(path.c_str(), O_RDWR | O_CLOEXEC);
  if (fd < 0) ThrowSystemError(env, errno, "open", path.c_str());
  return Fd(fd);
}

}  // namespace vfio
