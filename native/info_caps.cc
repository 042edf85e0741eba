#include "info_caps.h"

#include "errors.h"

namespace vfio {

namespace {

// A chain is a few hundred bytes; anything far larger is not a real answer.
constexpr uint32_t kMaxInfoSize = 1 << 20;

void SetArgsz(std::vector<uint8_t>& buffer) {
  uint32_t argsz = static_cast<uint32_t>(buffer.size());
  std::memcpy(buffer.data(), &argsz, sizeof argsz);
}

}  // namespace

std::vector<uint8_t> InfoIoctl(Napi::Env env, int fd, unsigned long request, const void* base, size_t base_size,
                               const char* syscall) {
  std::vector<uint8_t> buffer(static_cast<const uint8_t*>(base), static_cast<const uint8_t*>(base) + base_size);
  SetArgsz(buffer);
  CheckedIoctl(env, fd, request, buffer.data(), syscall);
  uint32_t wanted;
  std::memcpy(&wanted, buffer.data(), sizeof wanted);
  if (wanted <= buffer.size() || wanted > kMaxInfoSize) return buffer;
  // Too small for the chain: the kernel said how much it needs. Start again
  // from the caller's input so nothing the kernel wrote is sent back.
  buffer.assign(wanted, 0);
  std::memcpy(buffer.data(), base, base_size);
  SetArgsz(buffer);
  CheckedIoctl(env, fd, request, buffer.data(), syscall);
  return buffer;
}

void WalkInfoCaps(const std::vector<uint8_t>& buffer, uint32_t first, size_t base_size,
                  const std::function<void(const InfoCap&)>& visit) {
  size_t max_caps = buffer.size() / sizeof(vfio_info_cap_header);
  uint32_t offset = first;
  for (size_t n = 0; offset != 0 && n < max_caps; ++n) {
    if (offset < base_size || offset > buffer.size() || buffer.size() - offset < sizeof(vfio_info_cap_header)) return;
    InfoCap cap;
    std::memcpy(&cap.header, buffer.data() + offset, sizeof cap.header);
    cap.data = buffer.data() + offset;
    cap.available = buffer.size() - offset;
    visit(cap);
    offset = cap.header.next;
  }
}

}  // namespace vfio
