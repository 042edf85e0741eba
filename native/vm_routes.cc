// What a VM manager wires into a VM so a passed-through device runs with no
// userspace in the data path: the in-kernel irqchip, GSI routes (MSI
// messages), irqfds (an eventfd signal becomes a guest interrupt; with a
// resample eventfd, level-triggered INTx), memory slots (guest RAM from a
// DmaBuffer, or a BAR mmap the guest reaches without exits) and vCPUs.
// Memory is named by our objects plus offset and size, never by address.

#include <linux/kvm.h>

#include <sys/ioctl.h>

#include <cstring>
#include <vector>

#include "dma_buffer.h"
#include "errors.h"
#include "eventfd.h"
#include "kvm.h"
#include "kvm_compat.h"
#include "region_mmap.h"
#include "vcpu.h"

namespace vfio {

Napi::Value Vm::CreateIrqchip(const Napi::CallbackInfo& info) {
  VFIO_IOCTL(info.Env(), Require(info.Env()), KVM_CREATE_IRQCHIP, nullptr);
  return info.Env().Undefined();
}

// irqfd(eventfd, gsi, resampleEventfd | null, deassign)
Napi::Value Vm::Irqfd(const Napi::CallbackInfo& info) {
  Napi::Env env = info.Env();
  int fd = Require(env);
  EventFd* trigger = UnwrapArg<EventFd>(info, 0, "eventfd");
  kvm_irqfd irqfd{};
  irqfd.gsi = ArgUint32(info, 1, "gsi");
  EventFd* resample = info[2].IsNull() ? nullptr : UnwrapArg<EventFd>(info, 2, "resample");
  bool deassign = ArgBool(info, 3, "deassign");
  irqfd.fd = static_cast<uint32_t>(trigger->Require(env));
  if (resample != nullptr) {
    irqfd.flags |= KVM_IRQFD_FLAG_RESAMPLE;
    irqfd.resamplefd = static_cast<uint32_t>(resample->Require(env));
  }
  if (deassign) irqfd.flags = KVM_IRQFD_FLAG_DEASSIGN;
  VFIO_IOCTL(env, fd, KVM_IRQFD, &irqfd);
  return env.Undefined();
}

// The whole routing table at once (the kernel replaces it): a Uint32Array
// of 5 words per entry, [gsi, type, a, b, c] with type
// KVM_IRQ_ROUTING_IRQCHIP (a = irqchip, b = pin) or KVM_IRQ_ROUTING_MSI
// (a = address_lo, b = address_hi, c = data). A typed array runs no JS
// while it is read.
Napi::Value Vm::SetGsiRouting(const Napi::CallbackInfo& info) {
  Napi::Env env = info.Env();
  int fd = Require(env);
  if (!info[0].IsTypedArray() || info[0].As<Napi::TypedArray>().TypedArrayType() != napi_uint32_array ||
      info[0].As<Napi::TypedArray>().ElementLength() % 5 != 0) {
    ThrowTypeError(env, "The \"routes\" argument must be a Uint32Array of 5 words per route");
  }
  Napi::Uint32Array words = info[0].As<Napi::Uint32Array>();
  size_t n = words.ElementLength() / 5;
  std::vector<kvm_irq_routing_entry> entries(n);
  for (size_t i = 0; i < n; ++i) {
    const uint32_t* w = words.Data() + i * 5;
    kvm_irq_routing_entry& e = entries[i];
    e = kvm_irq_routing_entry{};
    e.gsi = w[0];
    e.type = w[1];
    if (w[1] == KVM_IRQ_ROUTING_IRQCHIP) {
      e.u.irqchip.irqchip = w[2];
      e.u.irqchip.pin = w[3];
    } else if (w[1] == KVM_IRQ_ROUTING_MSI) {
      e.u.msi.address_lo = w[2];
      e.u.msi.address_hi = w[3];
      e.u.msi.data = w[4];
    } else {
      ThrowRangeError(env, "The route type " + std::to_string(w[1]) + " is out of range. It must be KVM_IRQ_ROUTING_IRQCHIP or _MSI");
    }
  }
  // The kernel's layout (kvm_compat.h): {nr, flags} then the entries.
  std::vector<uint8_t> buffer(kKvmIrqRoutingHeader + n * sizeof(kvm_irq_routing_entry));
  uint32_t header[2] = {static_cast<uint32_t>(n), 0};
  std::memcpy(buffer.data(), header, sizeof header);
  if (n > 0) std::memcpy(buffer.data() + kKvmIrqRoutingHeader, entries.data(), n * sizeof(kvm_irq_routing_entry));
  CheckedIoctl(env, fd, kKvmSetGsiRouting, buffer.data(), VFIO_IOCTL_NAME(KVM_SET_GSI_ROUTING));
  return env.Undefined();
}

// setUserMemoryRegion(slot, flags, guestPhys: bigint, memory, offset, size):
// memory is a DmaBuffer or a RegionMapping; size 0 deletes the slot (memory
// may then be null). The address comes from our own mapping, bounds-checked.
Napi::Value Vm::SetUserMemoryRegion(const Napi::CallbackInfo& info) {
  Napi::Env env = info.Env();
  int fd = Require(env);
  kvm_userspace_memory_region region{};
  region.slot = ArgUint32(info, 0, "slot");
  region.flags = ArgUint32(info, 1, "flags");
  region.guest_phys_addr = ArgBigUint64(info, 2, "guestPhys");
  uint64_t offset = ArgSafeUint(info, 4, "offset");
  region.memory_size = ArgSafeUint(info, 5, "size");
  DmaBuffer* buffer = nullptr;
  RegionMapping* mapping = nullptr;
  if (region.memory_size != 0) {
    if ((buffer = FindLive<DmaBuffer>(env, info[3])) != nullptr) {
      region.userspace_addr = buffer->Vaddr(env, offset, region.memory_size);
    } else if ((mapping = FindLive<RegionMapping>(env, info[3])) != nullptr) {
      region.userspace_addr = mapping->Vaddr(env, offset, region.memory_size);
    } else {
      ThrowTypeError(env, "The \"memory\" argument must be a DmaBuffer or a RegionMapping");
    }
  }
  VFIO_IOCTL(env, fd, KVM_SET_USER_MEMORY_REGION, &region);
  DropSlot(region.slot);  // deleted, or (flags change) held anew below
  if (region.memory_size != 0) {
    SlotHold& hold = slots_[region.slot];
    hold.owner = Napi::Persistent(info[3].As<Napi::Object>());
    hold.buffer = buffer;
    hold.mapping = mapping;
    if (buffer != nullptr) buffer->BeginUse();
    if (mapping != nullptr) mapping->BeginUse();
  }
  return env.Undefined();
}

void Vm::DropSlot(uint32_t slot) {
  auto it = slots_.find(slot);
  if (it == slots_.end()) return;
  if (it->second.buffer != nullptr) it->second.buffer->EndUse();
  if (it->second.mapping != nullptr) it->second.mapping->EndUse();
  slots_.erase(it);
}

// Closing a VM whose slots were never deleted (the library deletes them
// first; a raw caller may not): delete them in the kernel, since another fd
// of the VM may keep it alive, then let the memory go.
void Vm::DeleteSlotsInKernel() {
  int fd = HeldFd();
  if (fd < 0) return;
  for (const auto& entry : slots_) {
    kvm_userspace_memory_region region{};
    region.slot = entry.first;
    ::ioctl(fd, KVM_SET_USER_MEMORY_REGION, &region);
  }
}

void Vm::Release() {
  DeleteSlotsInKernel();
  while (!slots_.empty()) DropSlot(slots_.begin()->first);
  fd_.reset();
}

// Collected (or the environment is going): the memory objects may be
// finalized already, so only the kernel side is undone here.
Vm::~Vm() {
  DeleteSlotsInKernel();
  for (auto& entry : slots_) entry.second.owner.SuppressDestruct();
}

Napi::Value Vm::CreateVcpu(const Napi::CallbackInfo& info) {
  Napi::Env env = info.Env();
  int fd = Require(env);
  return Vcpu::Create(env, fd, ArgUint32(info, 0, "id"));
}

}  // namespace vfio
