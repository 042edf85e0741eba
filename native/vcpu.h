// A vCPU: the minimal plumbing a VM manager's test needs (create, set
// registers, run until the guest halts or exits to us). The kvm_run area is
// mmapped here and never shown to JS; an exit comes back as plain numbers.
#pragma once

#include <linux/kvm.h>
#include <napi.h>

#include <cstddef>

#include "wrap.h"

namespace vfio {

class Vcpu : public FdWrap<Vcpu> {
 public:
  static constexpr const char kClassName[] = "Vcpu";

  static void Init(Napi::Env env, Napi::Object exports);
  // KVM_CREATE_VCPU on a VM fd, then the mmap of its kvm_run area.
  static Napi::Object Create(Napi::Env env, int vm_fd, uint32_t id);

  explicit Vcpu(const Napi::CallbackInfo& info) : Base(info) {}
  ~Vcpu() override { Unmap(); }

 private:
  Napi::Value GetRegs(const Napi::CallbackInfo& info);
  Napi::Value SetRegs(const Napi::CallbackInfo& info);
  Napi::Value SetSegment(const Napi::CallbackInfo& info);
  Napi::Value Run(const Napi::CallbackInfo& info);
  void Release() override;
  void Unmap();

  kvm_run* run_ = nullptr;
  size_t run_size_ = 0;
  // Exits seen so far, by kind.
  double io_ = 0, mmio_ = 0, hlt_ = 0, intr_ = 0, other_ = 0;
};

}  // namespace vfio
