// The shared shape of our wrapper classes: per-environment registration,
// construction only from native code, type-tagged unwrapping (a foreign or
// look-alike object is a TypeError, never a wild pointer), and the common
// base of every object that owns one kernel fd.
#pragma once

#include <napi.h>

#include <memory>
#include <string>
#include <type_traits>
#include <vector>

#include "errors.h"
#include "fd.h"

namespace vfio {

// Anything handing a kernel fd to another ioctl (KVM-VFIO FILE_ADD,
// SET_CONTAINER, SET_IRQS): -1 once closed.
class FdHolder {
 public:
  virtual ~FdHolder() = default;
  virtual int HeldFd() const = 0;
  virtual bool Closed() const = 0;
  virtual const char* ClassName() const = 0;
};

struct AddonData {
  struct Class {
    const napi_type_tag* tag;
    Napi::FunctionReference constructor;
    FdHolder* (*as_fd_holder)(Napi::Object);
  };
  std::vector<Class> classes;
  // Set while native code constructs a wrapper; a `new` from JS finds it unset.
  bool constructing = false;
};

AddonData& GetAddonData(Napi::Env env);

// Throws a TypeError unless native code is constructing this object.
void GuardConstruction(const Napi::CallbackInfo& info);

template <class T>
void RegisterClass(Napi::Env env, Napi::Function constructor) {
  FdHolder* (*as_fd_holder)(Napi::Object) = nullptr;
  if constexpr (std::is_base_of_v<FdHolder, T>) {
    as_fd_holder = [](Napi::Object o) -> FdHolder* { return T::Unwrap(o); };
  }
  GetAddonData(env).classes.push_back({&T::kTypeTag, Napi::Persistent(constructor), as_fd_holder});
}

// Creates a T through its registered constructor; `object` receives the JS side.
template <class T>
T* NewWrapped(Napi::Env env, Napi::Object* object) {
  AddonData& data = GetAddonData(env);
  for (AddonData::Class& c : data.classes) {
    if (c.tag != &T::kTypeTag) continue;
    data.constructing = true;
    try {
      *object = c.constructor.New({});
    } catch (...) {
      data.constructing = false;
      throw;
    }
    data.constructing = false;
    return T::Unwrap(*object);
  }
  throw Napi::Error::New(env, "vfio: class not registered");
}

// A type-tag check before the unwrap: a foreign or look-alike object is a
// TypeError instead of a native object of the wrong type.
template <class T>
T* CheckedUnwrap(Napi::Object object) {
  if (!object.IsObject() || !object.CheckTypeTag(&T::kTypeTag)) {
    ThrowTypeError(object.Env(), std::string("Illegal invocation: receiver is not a ") + T::kClassName);
  }
  return Napi::ObjectWrap<T>::Unwrap(object);
}

// node-addon-api dispatches methods and accessors through T::Unwrap(this),
// which stays the plain unwrap: napi_define_class gives methods the class's
// V8 signature, so V8 itself rejects a foreign receiver ("Illegal
// invocation") before we run, and the tag check would double the cost of
// every call. Accessors get no such check from V8, so every getter is
// defined through DefineGetter, which checks the tag itself.
template <class T, class C, Napi::Value (C::*Getter)(const Napi::CallbackInfo&)>
Napi::Value CheckedGetter(const Napi::CallbackInfo& info) {
  return (static_cast<C*>(CheckedUnwrap<T>(info.This().As<Napi::Object>()))->*Getter)(info);
}

template <class T, class C, Napi::Value (C::*Getter)(const Napi::CallbackInfo&)>
void DefineGetter(Napi::Function constructor, const char* name) {
  Napi::Object prototype = constructor.Get("prototype").As<Napi::Object>();
  prototype.DefineProperty(Napi::PropertyDescriptor::Accessor<CheckedGetter<T, C, Getter>>(name, napi_enumerable));
}

template <class T>
T* UnwrapValue(Napi::Env env, Napi::Value v, const char* name) {
  if (!v.IsObject() || !v.As<Napi::Object>().CheckTypeTag(&T::kTypeTag)) {
    ThrowTypeError(env, std::string("The \"") + name + "\" argument must be a " + T::kClassName);
  }
  return T::Unwrap(v.As<Napi::Object>());
}

template <class T>
T* UnwrapArg(const Napi::CallbackInfo& info, size_t i, const char* name) {
  return UnwrapValue<T>(info.Env(), info[i], name);
}

// Any of our fd-owning objects; TypeError for anything else.
FdHolder* UnwrapFdOwner(const Napi::CallbackInfo& info, size_t i, const char* name);

// The fd of an fd-owning argument; ERR_VFIO_CLOSED if it was closed.
int ArgOwnedFd(const Napi::CallbackInfo& info, size_t i, const char* name);

// open(path, O_RDWR | O_CLOEXEC); a failure names the path.
Fd OpenPath(Napi::Env env, const std::string& path);

// Base of the wrappers that own exactly one fd (container, group, device,
// eventfd, KVM objects). The fd is shared only with in-flight async work, so
// it is closed when the object is closed and no worker still uses it.
template <class T>
class FdWrap : public Napi::ObjectWrap<T>, public FdHolder {
 public:
  explicit FdWrap(const Napi::CallbackInfo& info) : Napi::ObjectWrap<T>(info) {
    GuardConstruction(info);
    info.This().As<Napi::Object>().TypeTag(&T::kTypeTag);
  }

  int HeldFd() const override { return fd_ ? fd_->Get() : -1; }
  bool Closed() const override { return !fd_; }
  const char* ClassName() const override { return T::kClassName; }

  void Adopt(Fd fd) { fd_ = std::make_shared<Fd>(std::move(fd)); }

  // The fd for an ioctl; ERR_VFIO_CLOSED after close().
  int Require(Napi::Env env) const {
    if (!fd_) ThrowClosed(env, T::kClassName);
    return fd_->Get();
  }

 protected:
  using Base = FdWrap<T>;

  static Napi::Function Define(Napi::Env env, std::vector<typename Napi::ObjectWrap<T>::PropertyDescriptor> props) {
    props.push_back(Napi::ObjectWrap<T>::InstanceMethod("close", &FdWrap::Close));
    Napi::Function constructor = Napi::ObjectWrap<T>::DefineClass(env, T::kClassName, props);
    DefineGetter<T, FdWrap, &FdWrap::GetFd>(constructor, "fd");
    RegisterClass<T>(env, constructor);
    return constructor;
  }

  // Releases the fd (and whatever else the class holds); idempotent.
  virtual void Release() { fd_.reset(); }

  std::shared_ptr<Fd> fd_;

 private:
  Napi::Value GetFd(const Napi::CallbackInfo& info) { return Napi::Number::New(info.Env(), HeldFd()); }
  Napi::Value Close(const Napi::CallbackInfo& info) {
    Release();
    return info.Env().Undefined();
  }
};

// A new T owning `fd`.
template <class T>
Napi::Object WrapFd(Napi::Env env, Fd fd) {
  Napi::Object object;
  NewWrapped<T>(env, &object)->Adopt(std::move(fd));
  return object;
}

// The module function that opens a character device as a T.
template <class T>
Napi::Value OpenAs(const Napi::CallbackInfo& info, const char* default_path) {
  std::string path = ArgPath(info, 0, default_path);
  return WrapFd<T>(info.Env(), OpenPath(info.Env(), path));
}

}  // namespace vfio
