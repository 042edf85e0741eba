// Keeps the prebuilt addon loadable on glibc 2.28 (RHEL 8, Ubuntu 20.04)
// although it is compiled against newer glibc headers (Debian 12's 2.36) and
// links libstdc++ statically (scripts/prebuild.js). Each definition below
// replaces one reference that would otherwise raise the floor; all are
// hidden, so they bind inside the addon and change nothing else in the
// process. Other C libraries (musl) and older glibc need none of them.
#include <fcntl.h>
#include <pthread.h>
#include <sys/random.h>
#include <sys/stat.h>
#include <sys/syscall.h>
#include <sys/sysmacros.h>
#include <signal.h>
#include <time.h>
#include <unistd.h>

#include <cerrno>
#include <cstdint>
#include <cstring>

#if defined(__GLIBC__) && defined(__linux__)

#define VFIO_HIDDEN extern "C" __attribute__((visibility("hidden")))

namespace {

// fstat: since 2.33 an exported function (fstat@GLIBC_2.33); before, an
// inline around __fxstat. Served by statx (glibc 2.28).
template <typename Stat>
int StatxFstat(int fd, Stat* st) {
  struct statx x;
  if (::statx(fd, "", AT_EMPTY_PATH, STATX_BASIC_STATS, &x) != 0) return -1;
  std::memset(st, 0, sizeof *st);
  st->st_dev = makedev(x.stx_dev_major, x.stx_dev_minor);
  st->st_ino = x.stx_ino;
  st->st_mode = x.stx_mode;
  st->st_nlink = x.stx_nlink;
  st->st_uid = x.stx_uid;
  st->st_gid = x.stx_gid;
  st->st_rdev = makedev(x.stx_rdev_major, x.stx_rdev_minor);
  st->st_size = static_cast<decltype(st->st_size)>(x.stx_size);
  st->st_blksize = static_cast<decltype(st->st_blksize)>(x.stx_blksize);
  st->st_blocks = static_cast<decltype(st->st_blocks)>(x.stx_blocks);
  st->st_atim = {x.stx_atime.tv_sec, x.stx_atime.tv_nsec};
  st->st_mtim = {x.stx_mtime.tv_sec, x.stx_mtime.tv_nsec};
  st->st_ctim = {x.stx_ctime.tv_sec, x.stx_ctime.tv_nsec};
  return 0;
}

}  // namespace

#if __GLIBC_PREREQ(2, 33) && defined(__LP64__)
// With _FILE_OFFSET_BITS=64 (node-gyp's default) fstat is fstat64 already.
#if !defined(__USE_FILE_OFFSET64)
VFIO_HIDDEN int fstat(int fd, struct stat* st) noexcept { return StatxFstat(fd, st); }
#endif
VFIO_HIDDEN int fstat64(int fd, struct stat64* st) noexcept { return StatxFstat(fd, st); }
#endif

// libstdc++'s headers read __libc_single_threaded (GLIBC_2.32) to skip
// atomics. Our copy, always 0, means "use atomics": correct, a little slower.
#if __GLIBC_PREREQ(2, 32)
extern "C" {
__attribute__((visibility("hidden"))) char __libc_single_threaded = 0;
}
#endif

// The static libstdc++ calls pthread_once and tests __pthread_key_create;
// 2.34 moved both from libpthread into libc under GLIBC_2.34. Bound here to
// their first version, which every glibc (and node's own libpthread) has;
// the forwarders are not hidden: a hidden versioned reference cannot bind.
#if __GLIBC_PREREQ(2, 34)
#if defined(__x86_64__)
#define VFIO_GLIBC_BASE "GLIBC_2.2.5"
#elif defined(__aarch64__) || (defined(__powerpc64__) && defined(__LITTLE_ENDIAN__))
#define VFIO_GLIBC_BASE "GLIBC_2.17"
#else
#error "glibc_floor.cc: name this architecture's first glibc symbol version"
#endif
extern "C" int vfio_pthread_once(pthread_once_t*, void (*)());
extern "C" int vfio_pthread_key_create(pthread_key_t*, void (*)(void*));
__asm__(".symver vfio_pthread_once, pthread_once@" VFIO_GLIBC_BASE);
__asm__(".symver vfio_pthread_key_create, __pthread_key_create@" VFIO_GLIBC_BASE);
VFIO_HIDDEN int pthread_once(pthread_once_t* once, void (*init)()) noexcept { return vfio_pthread_once(once, init); }
VFIO_HIDDEN int __pthread_key_create(pthread_key_t* key, void (*destroy)(void*)) noexcept {
  return vfio_pthread_key_create(key, destroy);
}
#endif

// timer_create/settime/delete: 2.34 moved them from librt into libc
// (GLIBC_2.34), and Node does not load librt on an older glibc. The addon
// arms only SIGEV_THREAD_ID timers (vcpu.cc), which are the kernel's own:
// served by the syscalls, the kernel's timer id kept in the timer_t.
#if __GLIBC_PREREQ(2, 34)
VFIO_HIDDEN int timer_create(clockid_t clock, struct sigevent* ev, timer_t* timer) noexcept {
  if (ev == nullptr || ev->sigev_notify == SIGEV_THREAD) {
    errno = ENOTSUP;
    return -1;
  }
  int id = -1;
  if (::syscall(SYS_timer_create, clock, ev, &id) != 0) return -1;
  *timer = reinterpret_cast<timer_t>(static_cast<intptr_t>(id));
  return 0;
}
VFIO_HIDDEN int timer_settime(timer_t timer, int flags, const struct itimerspec* value, struct itimerspec* old) noexcept {
  return static_cast<int>(::syscall(SYS_timer_settime, static_cast<int>(reinterpret_cast<intptr_t>(timer)), flags, value, old));
}
VFIO_HIDDEN int timer_delete(timer_t timer) noexcept {
  return static_cast<int>(::syscall(SYS_timer_delete, static_cast<int>(reinterpret_cast<intptr_t>(timer))));
}
#endif

// std::random_device in the static libstdc++ uses arc4random (GLIBC_2.36);
// getrandom (2.25) is what it wraps.
#if __GLIBC_PREREQ(2, 36)
VFIO_HIDDEN uint32_t arc4random() noexcept {
  uint32_t v = 0;
  while (::getrandom(&v, sizeof v, 0) != static_cast<ssize_t>(sizeof v) && errno == EINTR) {
  }
  return v;
}
#endif

#endif
