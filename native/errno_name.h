// The macro name of an errno ('ENOMEDIUM' for 123) from a table of our own:
// glibc's strerrorname_np is 2.32+ only and musl has none.
#pragma once

namespace vfio {

// nullptr for a number no errno macro of this platform has (41 and 58 on
// most Linux architectures).
const char* ErrnoMacroName(int err);

}  // namespace vfio
