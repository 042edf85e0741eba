#include "wrap.h"

#include <fcntl.h>

#include <cerrno>

namespace vfio {

AddonData& GetAddonData(Napi::Env env) { return *env.GetInstanceData<AddonData>(); }

void InitAddonData(Napi::Env env) {
  auto* data = new AddonData();
  env.SetInstanceData(data);
  Napi::Object function_prototype = env.Global().Get("Function").As<Napi::Object>().Get("prototype").As<Napi::Object>();
  data->bind = Napi::Persistent(function_prototype.Get("bind").As<Napi::Function>());
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
