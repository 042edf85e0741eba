#include "dma_buffer.h"

#include <fcntl.h>
#include <linux/magic.h>
#include <linux/memfd.h>
#include <sys/mman.h>
#include <sys/stat.h>
#include <sys/vfs.h>
#include <unistd.h>

#include <cerrno>
#include <string>

namespace vfio {

void PrefaultWritable(uint64_t vaddr, uint64_t size) {
  ::madvise(reinterpret_cast<void*>(static_cast<uintptr_t>(vaddr)), size, MADV_POPULATE_WRITE);
}

namespace {

size_t SystemPageSize() { return static_cast<size_t>(::sysconf(_SC_PAGESIZE)); }

bool IsPowerOfTwo(uint64_t v) { return v != 0 && (v & (v - 1)) == 0; }

unsigned Log2(uint64_t v) {
  unsigned shift = 0;
  while (v > 1) {
    v >>= 1;
    ++shift;
  }
  return shift;
}

// The page size backing a new allocation: the system's, or the huge page
// size asked for (a power of two above it; the kernel says whether it has
// such pages). `size` must be a non-zero multiple of it.
size_t CheckAllocation(Napi::Env env, uint64_t size, uint64_t huge_page_size) {
  size_t page = SystemPageSize();
  if (huge_page_size != 0) {
    if (!IsPowerOfTwo(huge_page_size) || huge_page_size <= page) {
      ThrowRangeError(env, "The value of \"hugePageSize\" is out of range. It must be 0 or a power of two above " +
                               std::to_string(page) + ". Received " + std::to_string(huge_page_size));
    }
    page = huge_page_size;
  }
  if (size == 0 || size % page != 0) {
    ThrowRangeError(env, "The value of \"size\" is out of range. It must be a non-zero multiple of the page size " +
                             std::to_string(page) + ". Received " + std::to_string(size));
  }
  return page;
}

// Every DMA buffer is MADV_DONTFORK, as QEMU marks guest RAM. A fork (each
// child_process.spawn forks before it execs) would otherwise hand the child
// the pages too: copy-on-write on older kernels, where the next write by
// either side can move the parent's page away from the one the IOMMU pinned,
// so the device DMAs into memory the program no longer sees; newer kernels
// copy pinned private pages at fork instead, which for GiBs is slow.
std::shared_ptr<MappedMemory> Mmap(Napi::Env env, size_t size, int flags, int fd, off_t offset) {
  void* addr = ::mmap(nullptr, size, PROT_READ | PROT_WRITE, flags, fd, offset);
  if (addr == MAP_FAILED) ThrowSystemError(env, errno, "mmap");
  auto memory = std::make_shared<MappedMemory>(addr, size);
  if (::madvise(addr, size, MADV_DONTFORK) < 0) ThrowSystemError(env, errno, "madvise(MADV_DONTFORK)");
  return memory;
}

}  // namespace

void DmaBuffer::Init(Napi::Env env, Napi::Object exports) {
  // None of its methods is on a hot path, and a VM manager may create one
  // buffer per memory slot: its methods stay on the prototype.
  Napi::Function constructor = Define(
      env, {Method<&DmaBuffer::GetArrayBuffer>("arrayBuffer"), Method<&DmaBuffer::GetSeals>("seals")}, OwnMethods::kNone);
  DefineGetter<DmaBuffer, DmaBuffer, &DmaBuffer::GetSize>(constructor, "size");
  DefineGetter<DmaBuffer, DmaBuffer, &DmaBuffer::GetPageSize>(constructor, "pageSize");
  DefineGetter<DmaBuffer, DmaBuffer, &DmaBuffer::GetRegularFile>(constructor, "regularFile");
  exports.Set("allocDmaBuffer", Napi::Function::New(env, Alloc, "allocDmaBuffer"));
  exports.Set("createMemfdBuffer", Napi::Function::New(env, CreateMemfd, "createMemfdBuffer"));
  exports.Set("mapFdBuffer", Napi::Function::New(env, MapFd, "mapFdBuffer"));
}

Napi::Object DmaBuffer::Wrap(Napi::Env env, std::shared_ptr<MappedMemory> memory, Fd fd, size_t page_size,
                             bool regular_file) {
  Napi::Object object;
  DmaBuffer* buffer = NewWrapped<DmaBuffer>(env, &object);
  buffer->size_ = memory->size();
  buffer->page_size_ = page_size;
  buffer->regular_file_ = regular_file;
  buffer->memory_ = ExposedMemory(std::move(memory));
  buffer->Adopt(std::move(fd));
  return object;
}

Napi::Value DmaBuffer::Alloc(const Napi::CallbackInfo& info) {
  Napi::Env env = info.Env();
  uint64_t size = ArgSafeUint(info, 0, "size");
  uint64_t huge = ArgSafeUint(info, 1, "hugePageSize");
  size_t page = CheckAllocation(env, size, huge);
  int flags = MAP_PRIVATE | MAP_ANONYMOUS;
  if (huge != 0) flags |= MAP_HUGETLB | static_cast<int>(Log2(huge) << MAP_HUGE_SHIFT);
  return Wrap(env, Mmap(env, size, flags, -1, 0), Fd(), page, false);
}

Napi::Value DmaBuffer::CreateMemfd(const Napi::CallbackInfo& info) {
  Napi::Env env = info.Env();
  std::string name = ArgString(info, 0, "name");
  uint64_t size = ArgSafeUint(info, 1, "size");
  uint64_t huge = ArgSafeUint(info, 2, "hugePageSize");
  size_t page = CheckAllocation(env, size, huge);
  unsigned flags = MFD_CLOEXEC | MFD_ALLOW_SEALING;
  if (huge != 0) flags |= MFD_HUGETLB | (Log2(huge) << MFD_HUGE_SHIFT);
  Fd fd(::memfd_create(name.c_str(), flags));
  if (!fd.Valid()) ThrowSystemError(env, errno, "memfd_create");
  if (::ftruncate(fd.Get(), static_cast<off_t>(size)) < 0) ThrowSystemError(env, errno, "ftruncate");
  // The fd is visible to JS; a shrink through it would turn our own mapping
  // into SIGBUS on the next touch, so forbid shrinking for good.
  if (::fcntl(fd.Get(), F_ADD_SEALS, F_SEAL_SHRINK) < 0) ThrowSystemError(env, errno, "fcntl");
  std::shared_ptr<MappedMemory> memory = Mmap(env, size, MAP_SHARED, fd.Get(), 0);
  return Wrap(env, std::move(memory), std::move(fd), page, true);
}

// The caller's file may still be truncated behind our back (then touching
// the memory raises SIGBUS). Whether that is allowed is lib/'s rule; it reads
// the facts from the buffer (regularFile, seals()), which describe the very
// file mapped here through our own dup, whatever the caller's fd number
// means by then.
Napi::Value DmaBuffer::MapFd(const Napi::CallbackInfo& info) {
  Napi::Env env = info.Env();
  int caller_fd = ArgInt32(info, 0, "fd");
  uint64_t offset = ArgSafeUint(info, 1, "offset");
  uint64_t size = ArgSafeUint(info, 2, "size");
  if (size == 0) ThrowRangeError(env, "The value of \"size\" is out of range. It must be > 0. Received 0");
  Fd fd(::fcntl(caller_fd, F_DUPFD_CLOEXEC, 0));
  if (!fd.Valid()) ThrowSystemError(env, errno, "fcntl");
  struct stat st;
  if (::fstat(fd.Get(), &st) < 0) ThrowSystemError(env, errno, "fstat");
  // Pages past the end of a file fault with SIGBUS: refuse them up front.
  if (S_ISREG(st.st_mode) && offset + size > static_cast<uint64_t>(st.st_size)) {
    ThrowRangeError(env, "The range [" + std::to_string(offset) + ", " + std::to_string(offset + size) +
                             ") is out of range. It must lie inside the file (" + std::to_string(st.st_size) +
                             " bytes)");
  }
  struct statfs fs;
  if (::fstatfs(fd.Get(), &fs) < 0) ThrowSystemError(env, errno, "fstatfs");
  size_t page = fs.f_type == HUGETLBFS_MAGIC ? static_cast<size_t>(fs.f_bsize) : SystemPageSize();
  std::shared_ptr<MappedMemory> memory = Mmap(env, size, MAP_SHARED, fd.Get(), static_cast<off_t>(offset));
  return Wrap(env, std::move(memory), std::move(fd), page, S_ISREG(st.st_mode));
}

uint64_t DmaBuffer::Vaddr(Napi::Env env, uint64_t offset, uint64_t size) const {
  if (Closed()) ThrowClosed(env, kClassName);
  if (offset > size_ || size > size_ - offset) {
    ThrowRangeError(env, "The range [" + std::to_string(offset) + ", " + std::to_string(offset + size) +
                             ") is out of range. It must lie inside the buffer (" + std::to_string(size_) + " bytes)");
  }
  return reinterpret_cast<uintptr_t>(memory_.memory()->addr()) + offset;
}

Napi::Value DmaBuffer::GetSize(const Napi::CallbackInfo& info) { return Napi::Number::New(info.Env(), size_); }

Napi::Value DmaBuffer::GetPageSize(const Napi::CallbackInfo& info) {
  return Napi::Number::New(info.Env(), page_size_);
}

Napi::Value DmaBuffer::GetRegularFile(const Napi::CallbackInfo& info) {
  return Napi::Boolean::New(info.Env(), regular_file_);
}

// Seals only ever get added, so a seal seen here holds for the buffer's life.
Napi::Value DmaBuffer::GetSeals(const Napi::CallbackInfo& info) {
  Napi::Env env = info.Env();
  int fd = Require(env);
  if (fd < 0) return Napi::Number::New(env, -1);
  int seals = ::fcntl(fd, F_GET_SEALS);
  if (seals < 0) {
    // Only shmem (memfd, tmpfs) and hugetlbfs files know seals.
    if (errno == EINVAL) return Napi::Number::New(env, -1);
    ThrowSystemError(env, errno, "fcntl(F_GET_SEALS)");
  }
  return Napi::Number::New(env, seals);
}

Napi::Value DmaBuffer::GetArrayBuffer(const Napi::CallbackInfo& info) {
  Napi::Env env = info.Env();
  if (Closed()) ThrowClosed(env, kClassName);
  return memory_.ArrayBuffer(env);
}

void DmaBuffer::Release() {
  if (Closed()) return;
  if (busy_ > 0) ThrowSystemError(Env(), EBUSY, "munmap");
  memory_.Release();
  fd_.reset();
}

}  // namespace vfio
