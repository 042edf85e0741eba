// Numbers from <linux/vfio.h>, <linux/kvm.h> and <sys/mman.h> as compiled
// into the addon, plus the system limits DMA setup depends on.
#pragma once

#include <napi.h>

namespace vfio {

void InitConstants(Napi::Env env, Napi::Object exports);

}  // namespace vfio
