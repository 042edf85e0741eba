#include "errno_name.h"

#include <cerrno>

namespace vfio {

namespace {

struct ErrnoEntry {
  int value;
  const char* name;
};

constexpr ErrnoEntry kErrnos[] = {
#define VFIO_ERRNO(name) {name, #name},
#include "errno_list.h"
#undef VFIO_ERRNO
};

}  // namespace

const char* ErrnoMacroName(int err) {
  for (const ErrnoEntry& e : kErrnos) {
    if (e.value == err) return e.name;
  }
  return nullptr;
}

}  // namespace vfio
