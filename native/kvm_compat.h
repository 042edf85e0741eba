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

}  // namespace vfio
