// Opt-in fault injection for tests: "the Nth ioctl(REQUEST) from now fails
// with errno E", before the kernel sees it. Every ioctl the addon issues goes
// through Ioctl() below, so a test can fail each one in turn and check that
// the library's books still equal the kernel's. Nothing is armed unless a test
// arms it (through vfio/testing); then the cost is one relaxed atomic load.
#pragma once

#include <napi.h>

namespace vfio {

// ioctl(2), or -1 with errno set when an armed fault names `syscall`
// ('ioctl(VFIO_IOMMU_MAP_DMA)'). Safe on the libuv pool's threads.
int Ioctl(int fd, unsigned long request, void* arg, const char* syscall);

// exports.ioctlFaults: inject(syscall, nth, errno), clear(), fired().
void InitFaults(Napi::Env env, Napi::Object exports);

}  // namespace vfio
