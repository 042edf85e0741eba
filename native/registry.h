// The addon's registry of its live objects, per environment: how native code
// recognises one of its objects passed from JS (an argument, a getter's
// receiver), and the slots an instance's own methods name their object by.
#pragma once

#include <napi.h>

#include <cstdint>
#include <unordered_map>
#include <vector>

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

// A live wrapper as native code finds it from a JS value: by the address
// napi_unwrap yields, which is never dereferenced unless listed here.
struct LiveObject {
  const char* class_name;  // T::kClassName: the class's identity
  FdHolder* fd_holder;     // null for a class that owns no fd
  napi_ref js;             // the wrapper's own weak reference to its JS object
};

// What an instance's own methods hold instead of the object, which may be
// collected while a method taken off it lives on: a slot number and the
// slot's generation, packed into the value of a JS external (never an
// address). The object's destructor empties its slot and bumps the
// generation, so a method that outlived its object finds a stale generation
// and throws ERR_VFIO_CLOSED (the object's fd was closed with it), and a
// reused slot never answers to an old method.
struct MethodSlot {
  const char* class_name;
  void* object;  // the ObjectWrap<T>*, null while the slot is free
  uint32_t generation;
};

// Everything the objects of one environment may still need when it is torn
// down (finalizers run in no promised order with the instance data's):
// shared by AddonData and every object.
struct Registry {
  std::unordered_map<const void*, LiveObject> objects;
  // The last object FindLive found: a map or register call names the same
  // buffer again and again, and an identity check is cheaper than an unwrap.
  const void* last_address = nullptr;
  const LiveObject* last = nullptr;

  std::vector<MethodSlot> slots;
  std::vector<uint32_t> free_slots;

  void Add(const void* address, const LiveObject& live) { objects.emplace(address, live); }
  void Remove(const void* address);
  // A slot for the object at `address`; returns the token its methods hold.
  uintptr_t NewSlot(const char* class_name, void* address, uint32_t* slot);
  void FreeSlot(uint32_t slot);
  // The object a method token names: null if that object is gone, throws a
  // TypeError if it is of another class.
  void* MethodTarget(Napi::Env env, uintptr_t token, const char* class_name) const;

  // The live object `value` is the JS side of, if it is one of ours of class
  // `class_name` (or, with null, of any class owning an fd): the entry for
  // the address napi_unwrap yields, whose JS object must be `value` itself
  // (so another addon's wrap of a stale address cannot pass). Null otherwise.
  const LiveObject* Find(Napi::Env env, napi_value value, const void** address, const char* class_name);
};

// Whether a method token (slot and generation) fits in the value of a JS
// external. Where it does not (32-bit), objects keep prototype methods only.
constexpr bool kMethodTokensFit = sizeof(uintptr_t) >= 8;

}  // namespace vfio
