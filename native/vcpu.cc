#include "vcpu.h"

#include <fcntl.h>
#include <signal.h>
#include <sys/ioctl.h>
#include <sys/mman.h>
#include <sys/syscall.h>
#include <time.h>
#include <unistd.h>

#include <cerrno>
#include <cstring>

#include "errors.h"

namespace vfio {

namespace {

// The vCPU this thread is running, for the timeout signal: setting
// immediate_exit closes the race of a signal that lands just before KVM_RUN.
thread_local kvm_run* running = nullptr;
thread_local volatile sig_atomic_t timed_out = 0;

void OnTimeout(int) {
  timed_out = 1;
  if (running != nullptr) running->immediate_exit = 1;
}

// A one-shot SIGALRM aimed at this thread only; the previous handler is put
// back when the run ends.
class RunTimer {
 public:
  RunTimer(Napi::Env env, uint32_t ms) {
    if (ms == 0) return;
    struct sigaction sa {};
    sa.sa_handler = OnTimeout;  // no SA_RESTART: KVM_RUN returns EINTR
    sigemptyset(&sa.sa_mask);
    if (::sigaction(SIGALRM, &sa, &old_) != 0) ThrowSystemError(env, errno, "sigaction");
    sigevent ev{};
    ev.sigev_notify = SIGEV_THREAD_ID;
    ev.sigev_signo = SIGALRM;
    pid_t tid = static_cast<pid_t>(::syscall(SYS_gettid));
#ifdef sigev_notify_thread_id  // musl, newer glibc
    ev.sigev_notify_thread_id = tid;
#else
    ev._sigev_un._tid = tid;
#endif
    if (::timer_create(CLOCK_MONOTONIC, &ev, &timer_) != 0) {
      int err = errno;
      ::sigaction(SIGALRM, &old_, nullptr);
      ThrowSystemError(env, err, "timer_create");
    }
    armed_ = true;
    itimerspec spec{};
    spec.it_value.tv_sec = ms / 1000;
    spec.it_value.tv_nsec = static_cast<long>(ms % 1000) * 1000000L;
    ::timer_settime(timer_, 0, &spec, nullptr);
  }
  ~RunTimer() {
    if (!armed_) return;
    ::timer_delete(timer_);
    ::sigaction(SIGALRM, &old_, nullptr);
  }

 private:
  struct sigaction old_ {};
  timer_t timer_{};
  bool armed_ = false;
};

#if defined(__x86_64__)
kvm_segment* SegmentAt(kvm_sregs& s, uint32_t index) {
  switch (index) {
    case 0: return &s.cs;
    case 1: return &s.ds;
    case 2: return &s.es;
    case 3: return &s.fs;
    case 4: return &s.gs;
    case 5: return &s.ss;
    default: return nullptr;
  }
}
#endif

}  // namespace

void Vcpu::Init(Napi::Env env, Napi::Object) {
  Define(env, {
                  Method<&Vcpu::GetRegs>("getRegs"),
                  Method<&Vcpu::SetRegs>("setRegs"),
                  Method<&Vcpu::SetSegment>("setSegment"),
                  Method<&Vcpu::Run>("run"),
              });
}

Napi::Object Vcpu::Create(Napi::Env env, int vm_fd, uint32_t id) {
  // The kvm_run size is a /dev/kvm question; an adopted VM has no /dev/kvm
  // object of ours, so ask a short-lived one.
  Fd kvm(::open("/dev/kvm", O_RDWR | O_CLOEXEC));
  if (!kvm.Valid()) ThrowSystemError(env, errno, "open", "/dev/kvm");
  int size = VFIO_IOCTL(env, kvm.Get(), KVM_GET_VCPU_MMAP_SIZE, nullptr);
  Fd fd(VFIO_IOCTL(env, vm_fd, KVM_CREATE_VCPU, IoctlValue(id)));
  void* addr = ::mmap(nullptr, static_cast<size_t>(size), PROT_READ | PROT_WRITE, MAP_SHARED, fd.Get(), 0);
  if (addr == MAP_FAILED) ThrowSystemError(env, errno, "mmap");
  Napi::Object object;
  Vcpu* self = nullptr;
  try {
    self = NewWrapped<Vcpu>(env, &object);
  } catch (...) {
    ::munmap(addr, static_cast<size_t>(size));
    throw;
  }
  self->run_ = static_cast<kvm_run*>(addr);
  self->run_size_ = static_cast<size_t>(size);
  self->Adopt(std::move(fd));
  return object;
}

void Vcpu::Unmap() {
  if (run_ != nullptr) ::munmap(run_, run_size_);
  run_ = nullptr;
}

void Vcpu::Release() {
  Unmap();
  fd_.reset();
}

#if defined(__x86_64__)
// kvm_regs is 18 __u64 in the header's order (rax ... r15, rip, rflags):
// JS sees them as one BigUint64Array of that length.
static_assert(sizeof(kvm_regs) == 18 * sizeof(uint64_t), "kvm_regs layout");

Napi::Value Vcpu::GetRegs(const Napi::CallbackInfo& info) {
  Napi::Env env = info.Env();
  int fd = Require(env);
  kvm_regs regs{};
  VFIO_IOCTL(env, fd, KVM_GET_REGS, &regs);
  Napi::ArrayBuffer ab = Napi::ArrayBuffer::New(env, sizeof regs);
  std::memcpy(ab.Data(), &regs, sizeof regs);
  napi_value array;
  if (napi_create_typedarray(env, napi_biguint64_array, 18, ab, 0, &array) != napi_ok) {
    throw Napi::Error::New(env, "vfio: cannot create BigUint64Array");
  }
  return Napi::Value(env, array);
}

Napi::Value Vcpu::SetRegs(const Napi::CallbackInfo& info) {
  Napi::Env env = info.Env();
  int fd = Require(env);
  napi_typedarray_type type;
  size_t length = 0;
  void* data = nullptr;
  if (!info[0].IsTypedArray() ||
      napi_get_typedarray_info(env, info[0], &type, &length, &data, nullptr, nullptr) != napi_ok ||
      type != napi_biguint64_array || length != 18) {
    ThrowTypeError(env, "The \"regs\" argument must be a BigUint64Array of 18 registers (struct kvm_regs)");
  }
  kvm_regs regs{};
  std::memcpy(&regs, data, sizeof regs);
  VFIO_IOCTL(env, fd, KVM_SET_REGS, &regs);
  return env.Undefined();
}

// Real mode: a segment is its selector and a base (selector * 16 unless set
// otherwise); the limit stays 64 KiB.
Napi::Value Vcpu::SetSegment(const Napi::CallbackInfo& info) {
  Napi::Env env = info.Env();
  int fd = Require(env);
  uint32_t index = ArgUint32(info, 0, "segment");
  uint32_t selector = ArgUint32(info, 1, "selector");
  uint32_t base = ArgUint32(info, 2, "base");
  if (selector > 0xffff) ThrowRangeError(env, "The value of \"selector\" is out of range. It must be <= 0xffff");
  kvm_sregs sregs{};
  VFIO_IOCTL(env, fd, KVM_GET_SREGS, &sregs);
  kvm_segment* seg = SegmentAt(sregs, index);
  if (seg == nullptr) ThrowRangeError(env, "The value of \"segment\" is out of range. It must be 0..5 (cs, ds, es, fs, gs, ss)");
  seg->selector = static_cast<uint16_t>(selector);
  seg->base = base;
  VFIO_IOCTL(env, fd, KVM_SET_SREGS, &sregs);
  return env.Undefined();
}
#else
// kvm_regs and kvm_sregs are x86's layouts: elsewhere (the arm64 and ppc64le
// prebuilds) the register calls say so instead of failing the build.
Napi::Value Vcpu::GetRegs(const Napi::CallbackInfo& info) {
  Require(info.Env());
  ThrowSystemError(info.Env(), ENOSYS, "ioctl(KVM_GET_REGS) (x86_64 only)");
}

Napi::Value Vcpu::SetRegs(const Napi::CallbackInfo& info) {
  Require(info.Env());
  ThrowSystemError(info.Env(), ENOSYS, "ioctl(KVM_SET_REGS) (x86_64 only)");
}

Napi::Value Vcpu::SetSegment(const Napi::CallbackInfo& info) {
  Require(info.Env());
  ThrowSystemError(info.Env(), ENOSYS, "ioctl(KVM_SET_SREGS) (x86_64 only)");
}
#endif

// KVM_RUN until an exit the kernel hands to userspace for us to handle (port
// or MMIO access, HLT without an in-kernel irqchip, shutdown, a failure), or
// the timeout. Exits that need nothing from us (a signal) are run through.
Napi::Value Vcpu::Run(const Napi::CallbackInfo& info) {
  Napi::Env env = info.Env();
  int fd = Require(env);
  uint32_t timeout_ms = ArgUint32(info, 0, "timeoutMs");
  if (run_ == nullptr) ThrowClosed(env, kClassName);
  timed_out = 0;
  run_->immediate_exit = 0;
  RunTimer timer(env, timeout_ms);
  running = run_;
  int err = 0;
  for (;;) {
    if (::ioctl(fd, KVM_RUN, 0) < 0) {
      err = errno;
      if (err == EINTR && !timed_out) {
        ++intr_;
        continue;
      }
      break;
    }
    uint32_t reason = run_->exit_reason;
    if (reason == KVM_EXIT_INTR && !timed_out) {
      ++intr_;
      continue;
    }
    break;
  }
  running = nullptr;
  run_->immediate_exit = 0;
  Napi::Object out = Napi::Object::New(env);
  if (timed_out) {
    out.Set("reason", Napi::String::New(env, "timeout"));
  } else if (err != 0) {
    ThrowSystemError(env, err, VFIO_IOCTL_NAME(KVM_RUN));
  } else {
    uint32_t reason = run_->exit_reason;
    out.Set("exitReason", Napi::Number::New(env, reason));
    switch (reason) {
      case KVM_EXIT_IO: {
        ++io_;
        out.Set("reason", Napi::String::New(env, "io"));
        out.Set("port", Napi::Number::New(env, run_->io.port));
        out.Set("size", Napi::Number::New(env, run_->io.size));
        out.Set("write", Napi::Boolean::New(env, run_->io.direction == KVM_EXIT_IO_OUT));
        uint64_t value = 0;
        size_t n = run_->io.size <= sizeof value ? run_->io.size : sizeof value;
        if (run_->io.data_offset + n <= run_size_) {
          std::memcpy(&value, reinterpret_cast<uint8_t*>(run_) + run_->io.data_offset, n);
        }
        out.Set("value", Napi::Number::New(env, static_cast<double>(value)));
        break;
      }
      case KVM_EXIT_MMIO:
        ++mmio_;
        out.Set("reason", Napi::String::New(env, "mmio"));
        out.Set("address", Napi::BigInt::New(env, static_cast<uint64_t>(run_->mmio.phys_addr)));
        out.Set("write", Napi::Boolean::New(env, run_->mmio.is_write != 0));
        break;
      case KVM_EXIT_HLT:
        ++hlt_;
        out.Set("reason", Napi::String::New(env, "hlt"));
        break;
      case KVM_EXIT_SHUTDOWN:
        ++other_;
        out.Set("reason", Napi::String::New(env, "shutdown"));
        break;
      case KVM_EXIT_FAIL_ENTRY:
        ++other_;
        out.Set("reason", Napi::String::New(env, "fail-entry"));
        out.Set("hardwareReason", Napi::BigInt::New(env, static_cast<uint64_t>(run_->fail_entry.hardware_entry_failure_reason)));
        break;
      case KVM_EXIT_INTERNAL_ERROR:
        ++other_;
        out.Set("reason", Napi::String::New(env, "internal-error"));
        out.Set("suberror", Napi::Number::New(env, run_->internal.suberror));
        break;
      default:
        ++other_;
        out.Set("reason", Napi::String::New(env, "other"));
        break;
    }
  }
  Napi::Object exits = Napi::Object::New(env);
  exits.Set("io", Napi::Number::New(env, io_));
  exits.Set("mmio", Napi::Number::New(env, mmio_));
  exits.Set("hlt", Napi::Number::New(env, hlt_));
  exits.Set("intr", Napi::Number::New(env, intr_));
  exits.Set("other", Napi::Number::New(env, other_));
  out.Set("exits", exits);
  return out;
}

}  // namespace vfio
