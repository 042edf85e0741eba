// Prints "<errno> <name>" for 1..133 through native/errno_name.cc, the table
// behind every native system error's `code`; "<errno> -" where no errno
// macro has that number. Built and run by test/host/errno-names.test.ts,
// without _GNU_SOURCE, to show the table needs nothing but POSIX <errno.h>.
#include <cstdio>

#include "errno_name.h"

int main() {
  for (int err = 1; err <= 133; ++err) {
    const char* name = vfio::ErrnoMacroName(err);
    std::printf("%d %s\n", err, name != nullptr ? name : "-");
  }
  return 0;
}
