// The shared shape of our wrapper classes: per-environment registration,
// construction only from native code, a registry of live objects (a foreign
// or look-alike object is a TypeError, never a wild pointer), methods bound
// to their object, and the common base of every object that owns one kernel
// fd.
//
// Methods are found two ways, both safe:
// - On the prototype, with the class's V8 signature (napi_define_class), so
//   V8 itself rejects a foreign receiver ("Illegal invocation"); the
//   receiver is then unwrapped on every call.
// - As the instance's own properties (every class but DmaBuffer): one shared
//   native function per method, bound per object with
//   Function.prototype.bind to a JS external holding the object's method
//   token (MethodSlot). A call then costs what a plain function does: no
//   unwrap, no type check (a bound method ignores the `this` it is called
//   with and acts on its own object). All of an object's methods are bound
//   and defined in one call into JS (a crossing costs ~0.5 us, a bind
//   ~50 ns); napi_create_function per method and object would cost ~10 us
//   each (a new function template each time).
//
// Arguments that are our objects (the buffer of mapDma, the container of
// setContainer) are found through the registry: napi_unwrap, then the
// address must be listed under the expected class and its entry's JS object
// must be the one passed. One napi_unwrap per argument instead of a type-tag
// check plus an unwrap, and none at all when the argument is the object
// found last (an identity check).
#pragma once

#include <napi.h>

#include <cstdint>
#include <memory>
#include <string>
#include <type_traits>
#include <vector>

#include "errors.h"
#include "fd.h"
#include "registry.h"

namespace vfio {

// A plain native function (no class signature, no data).
Napi::Function NativeFunction(Napi::Env env, const char* name, napi_callback callback);

struct AddonData {
  struct Class {
    const char* name;
    Napi::FunctionReference constructor;
    // The names and shared native functions each instance gets bound copies
    // of; empty for a class whose methods live on its prototype only.
    Napi::Reference<Napi::Array> own_names;
    Napi::Reference<Napi::Array> own_methods;
  };
  std::vector<Class> classes;
  std::shared_ptr<Registry> registry = std::make_shared<Registry>();
  // (object, names, methods, token) => defines each method bound to token
  // as the object's own property, with the builtins found at load.
  Napi::FunctionReference install_methods;
  // Set while native code constructs a wrapper; a `new` from JS finds it unset.
  bool constructing = false;
};

AddonData& GetAddonData(Napi::Env env);
void InitAddonData(Napi::Env env);

// Throws a TypeError unless native code is constructing this object.
void GuardConstruction(const Napi::CallbackInfo& info);

[[noreturn]] void ThrowIllegalInvocation(Napi::Env env, const char* class_name);

// Our live T that `value` is the JS side of, or null (Registry::Find).
template <class T>
T* FindLive(Napi::Env env, napi_value value) {
  const void* address = nullptr;
  if (GetAddonData(env).registry->Find(env, value, &address, T::kClassName) == nullptr) return nullptr;
  return static_cast<T*>(static_cast<Napi::ObjectWrap<T>*>(const_cast<void*>(address)));
}

template <class T>
T* CheckedUnwrap(Napi::Object object) {
  T* self = FindLive<T>(object.Env(), object);
  if (self == nullptr) ThrowIllegalInvocation(object.Env(), T::kClassName);
  return self;
}

template <class T>
T* UnwrapValue(Napi::Env env, Napi::Value v, const char* name) {
  T* self = FindLive<T>(env, v);
  if (self == nullptr) ThrowTypeError(env, std::string("The \"") + name + "\" argument must be a " + T::kClassName);
  return self;
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

namespace detail {

template <class>
struct MethodClass;
template <class C>
struct MethodClass<Napi::Value (C::*)(const Napi::CallbackInfo&)> {
  using type = C;
};

// What node-addon-api's own callback wrappers do with a thrown Napi::Error.
template <class F>
napi_value Guarded(napi_env env, F body) {
  try {
    return body();
  } catch (const Napi::Error& e) {
    e.ThrowAsJavaScriptException();
    return nullptr;
  }
}

template <class T, auto M>
Napi::Value Invoke(void* address, const Napi::CallbackInfo& info) {
  using C = typename MethodClass<decltype(M)>::type;
  T* self = static_cast<T*>(static_cast<Napi::ObjectWrap<T>*>(address));
  return (static_cast<C*>(self)->*M)(info);
}

// On the prototype: V8 checked the receiver against the class signature.
template <class T, auto M>
napi_value PrototypeMethod(napi_env env, napi_callback_info cbinfo) {
  return Guarded(env, [&]() -> napi_value {
    Napi::CallbackInfo info(env, cbinfo);
    void* address = nullptr;
    if (napi_unwrap(env, info.This(), &address) != napi_ok) ThrowIllegalInvocation(env, T::kClassName);
    return Invoke<T, M>(address, info);
  });
}

// An instance's own method: `this` is the external holding its object's
// method token (Function.prototype.bind fixed it). The token is checked
// against the slot table before any cast, so even a replaced
// Function.prototype.bind that saw the shared function cannot make it act on
// another class's object or on an address.
template <class T, auto M>
napi_value BoundMethod(napi_env env, napi_callback_info cbinfo) {
  return Guarded(env, [&]() -> napi_value {
    Napi::CallbackInfo info(env, cbinfo);
    void* token = nullptr;
    if (napi_get_value_external(env, info.This(), &token) != napi_ok) ThrowIllegalInvocation(env, T::kClassName);
    void* object = GetAddonData(env).registry->MethodTarget(env, reinterpret_cast<uintptr_t>(token), T::kClassName);
    if (object == nullptr) ThrowClosed(env, T::kClassName);
    return Invoke<T, M>(object, info);
  });
}

template <class T, class C, Napi::Value (C::*Getter)(const Napi::CallbackInfo&)>
Napi::Value CheckedGetter(const Napi::CallbackInfo& info) {
  return (static_cast<C*>(CheckedUnwrap<T>(info.This().As<Napi::Object>()))->*Getter)(info);
}

}  // namespace detail

// Accessors get no receiver check from V8, so every getter is defined
// through DefineGetter, which finds its object in the registry.
template <class T, class C, Napi::Value (C::*Getter)(const Napi::CallbackInfo&)>
void DefineGetter(Napi::Function constructor, const char* name) {
  Napi::Object prototype = constructor.Get("prototype").As<Napi::Object>();
  prototype.DefineProperty(
      Napi::PropertyDescriptor::Accessor<detail::CheckedGetter<T, C, Getter>>(name, napi_enumerable));
}

// Whether each instance gets its class's methods as its own bound
// properties too (see the top of this file), or only the prototype has them.
enum class OwnMethods { kNone, kBound };

template <class T>
T* NewWrapped(Napi::Env env, Napi::Object* object);

// Base of every wrapper class: construction guard, registry entry, token.
template <class T>
class Wrap : public Napi::ObjectWrap<T> {
 public:
  explicit Wrap(const Napi::CallbackInfo& info) : Napi::ObjectWrap<T>(info) {
    GuardConstruction(info);
    registry_ = GetAddonData(info.Env()).registry;
    FdHolder* holder = nullptr;
    if constexpr (std::is_base_of_v<FdHolder, T>) holder = static_cast<T*>(this);
    registry_->Add(Address(), LiveObject{T::kClassName, holder, static_cast<napi_ref>(*this)});
  }

  ~Wrap() override {
    registry_->Remove(Address());
    if (slot_ != kNoSlot) registry_->FreeSlot(slot_);
  }

 protected:
  struct MethodDef {
    const char* name;
    napi_callback on_prototype;
    napi_callback bound;
  };

  template <auto M>
  static MethodDef Method(const char* name) {
    return {name, &detail::PrototypeMethod<T, M>, &detail::BoundMethod<T, M>};
  }

  // Defines the class (prototype methods) and registers it.
  static Napi::Function DefineWrapClass(Napi::Env env, const std::vector<MethodDef>& methods, OwnMethods own) {
    std::vector<typename Napi::ObjectWrap<T>::PropertyDescriptor> props;
    for (const MethodDef& m : methods) {
      props.push_back(napi_property_descriptor{m.name, nullptr, m.on_prototype, nullptr, nullptr, nullptr,
                                               napi_default, nullptr});
    }
    Napi::Function constructor = Napi::ObjectWrap<T>::DefineClass(env, T::kClassName, props);
    AddonData::Class c{T::kClassName, Napi::Persistent(constructor), {}, {}};
    if (own == OwnMethods::kBound && kMethodTokensFit) {
      Napi::Array names = Napi::Array::New(env, methods.size());
      Napi::Array shared = Napi::Array::New(env, methods.size());
      for (uint32_t i = 0; i < methods.size(); ++i) {
        names[i] = Napi::String::New(env, methods[i].name);
        shared[i] = NativeFunction(env, methods[i].name, methods[i].bound);
      }
      c.own_names = Napi::Persistent(names);
      c.own_methods = Napi::Persistent(shared);
    }
    GetAddonData(env).classes.push_back(std::move(c));
    return constructor;
  }

 private:
  friend T* NewWrapped<T>(Napi::Env env, Napi::Object* object);

  const void* Address() { return static_cast<Napi::ObjectWrap<T>*>(this); }

  // Gives the new object its own bound methods (see the top of this file).
  void BindMethods(Napi::Env env, const AddonData::Class& c, Napi::Object object) {
    if (c.own_methods.IsEmpty()) return;
    uintptr_t token = registry_->NewSlot(T::kClassName, const_cast<void*>(Address()), &slot_);
    napi_value external;
    if (napi_create_external(env, reinterpret_cast<void*>(token), nullptr, nullptr, &external) != napi_ok) {
      throw Napi::Error::New(env, "vfio: cannot bind methods");
    }
    GetAddonData(env).install_methods.Call({object, c.own_names.Value(), c.own_methods.Value(), external});
  }

  static constexpr uint32_t kNoSlot = UINT32_MAX;

  std::shared_ptr<Registry> registry_;
  uint32_t slot_ = kNoSlot;
};

// Creates a T through its registered constructor; `object` receives the JS side.
template <class T>
T* NewWrapped(Napi::Env env, Napi::Object* object) {
  AddonData& data = GetAddonData(env);
  for (AddonData::Class& c : data.classes) {
    if (c.name != T::kClassName) continue;
    data.constructing = true;
    try {
      *object = c.constructor.New({});
    } catch (...) {
      data.constructing = false;
      throw;
    }
    data.constructing = false;
    T* self = T::Unwrap(*object);
    self->BindMethods(env, c, *object);
    return self;
  }
  throw Napi::Error::New(env, "vfio: class not registered");
}

// Base of the wrappers that own exactly one fd (container, group, device,
// eventfd, KVM objects). The fd is shared only with in-flight async work, so
// it is closed when the object is closed and no worker still uses it.
template <class T>
class FdWrap : public Wrap<T>, public FdHolder {
 public:
  explicit FdWrap(const Napi::CallbackInfo& info) : Wrap<T>(info) {}

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
  using MethodDef = typename Wrap<T>::MethodDef;

  static Napi::Function Define(Napi::Env env, std::vector<MethodDef> methods, OwnMethods own = OwnMethods::kBound) {
    methods.push_back(Wrap<T>::template Method<&FdWrap::Close>("close"));
    Napi::Function constructor = Wrap<T>::DefineWrapClass(env, methods, own);
    DefineGetter<T, FdWrap, &FdWrap::GetFd>(constructor, "fd");
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
