// KVM objects needed to hand VFIO groups to a VM: /dev/kvm, a VM fd, and the
// KVM-VFIO pseudo device (KVM_DEV_TYPE_VFIO).
#pragma once

#include <napi.h>

#include <map>

#include "wrap.h"

namespace vfio {

class Kvm : public FdWrap<Kvm> {
 public:
  static constexpr const char kClassName[] = "Kvm";

  static void Init(Napi::Env env, Napi::Object exports);
  explicit Kvm(const Napi::CallbackInfo& info) : Base(info) {}

 private:
  Napi::Value GetApiVersion(const Napi::CallbackInfo& info);
  Napi::Value CheckExtension(const Napi::CallbackInfo& info);
  Napi::Value CreateVm(const Napi::CallbackInfo& info);
};

class DmaBuffer;
class RegionMapping;

class Vm : public FdWrap<Vm> {
 public:
  static constexpr const char kClassName[] = "Vm";

  static void Init(Napi::Env env, Napi::Object exports);
  explicit Vm(const Napi::CallbackInfo& info) : Base(info) {}
  ~Vm() override;

 private:
  static Napi::Value AdoptVm(const Napi::CallbackInfo& info);
  Napi::Value CheckExtension(const Napi::CallbackInfo& info);
  Napi::Value CreateDevice(const Napi::CallbackInfo& info);
  // vm_routes.cc
  Napi::Value CreateIrqchip(const Napi::CallbackInfo& info);
  Napi::Value Irqfd(const Napi::CallbackInfo& info);
  Napi::Value SetGsiRouting(const Napi::CallbackInfo& info);
  Napi::Value SetUserMemoryRegion(const Napi::CallbackInfo& info);
  Napi::Value CreateVcpu(const Napi::CallbackInfo& info);
  void Release() override;

  // What each memory slot maps: held busy (and its JS object alive) until the
  // slot is deleted, so its memory cannot be unmapped under the guest. Our
  // fd may be a VMM's VM's dup: close deletes our slots from it first.
  struct SlotHold {
    Napi::ObjectReference owner;
    DmaBuffer* buffer = nullptr;
    RegionMapping* mapping = nullptr;
  };
  void DropSlot(uint32_t slot);
  void DeleteSlotsInKernel();
  std::map<uint32_t, SlotHold> slots_;
};

class KvmDevice : public FdWrap<KvmDevice> {
 public:
  static constexpr const char kClassName[] = "KvmDevice";

  static void Init(Napi::Env env, Napi::Object exports);
  explicit KvmDevice(const Napi::CallbackInfo& info) : Base(info) {}

 private:
  Napi::Value HasAttr(const Napi::CallbackInfo& info);
  Napi::Value SetVfioFile(const Napi::CallbackInfo& info);
  Napi::Value SetSpaprTce(const Napi::CallbackInfo& info);
};

}  // namespace vfio
