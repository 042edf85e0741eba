// <linux/kvm.h> before 6.5 names the KVM-VFIO attribute group after groups
// only; KVM_DEV_VFIO_FILE{,_ADD,_DEL} are the same numbers under new names.
#pragma once

#include <linux/kvm.h>

namespace vfio {

#ifdef KVM_DEV_VFIO_FILE
constexpr unsigned kKvmDevVfioFile = KVM_DEV_VFIO_FILE;
constexpr unsigned kKvmDevVfioFileAdd = KVM_DEV_VFIO_FILE_ADD;
constexpr unsigned kKvmDevVfioFileDel = KVM_DEV_VFIO_FILE_DEL;
#else
constexpr unsigned kKvmDevVfioFile = KVM_DEV_VFIO_GROUP;
constexpr unsigned kKvmDevVfioFileAdd = KVM_DEV_VFIO_GROUP_ADD;
constexpr unsigned kKvmDevVfioFileDel = KVM_DEV_VFIO_GROUP_DEL;
#endif

// <linux/kvm.h> declares struct kvm_irq_routing's entries[] with
// __DECLARE_FLEX_ARRAY, which in C++ adds an empty struct: sizeof is 16 and
// entries sit at offset 16 here, while the kernel (C) has 8 and 8. Both the
// ioctl number (it encodes the size) and the layout follow the kernel's.
constexpr size_t kKvmIrqRoutingHeader = 2 * sizeof(__u32);  // nr, flags
constexpr unsigned long kKvmSetGsiRouting = _IOC(_IOC_WRITE, KVMIO, 0x6a, kKvmIrqRoutingHeader);
static_assert(sizeof(kvm_irq_routing_entry) == 48, "kvm_irq_routing_entry layout");

}  // namespace vfio
