#include "wrap.h"

#include <fcntl.h>

#include <cerrno>

namespace vfio {

AddonData& GetAddonData(Napi::Env env) { return *env.GetInstanceData<AddonData>(); }

void GuardConstruction(const Napi::CallbackInfo& info) {
  if (!GetAddonData(info.Env()).constructing) {
    throw Napi::TypeError::New(info.Env(), "Illegal constructor: vfio objects come from the addon's functions");
  }
}

FdHolder* UnwrapFdOwner(const Napi::CallbackInfo& info, size_t i, const char* name) {
  Napi::Value v = info[i];
  if (v.IsObject()) {
    Napi::Object o = v.As<Napi::Object>();
    for (AddonData::Class& c : GetAddonData(info.Env()).classes) {
      if (c.as_fd_holder != nullptr && o.CheckTypeTag(c.tag)) return c.as_fd_holder(o);
    }
  }
  ThrowTypeError(info.Env(), std::string("The \"") + name + "\" argument must be a vfio object that owns an fd");
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
