// The one typed surface of the C++ addon (native/). Everything in lib/ talks
// to the kernel through this interface and nothing else, so the fake backend
// in lib/testing/ (vfio/testing) can implement the same surface.
//
// Conventions of the native layer (native/errors.cc):
// - each method issues one syscall (ioctl, mmap, pread, pwrite, eventfd...);
// - a failing syscall throws an Error with `code` ('EINVAL'), `errno`
//   (negative, as in Node's own system errors: -22), `syscall`
//   ('ioctl(VFIO_IOMMU_MAP_DMA)') and a message 'EINVAL: invalid argument,
//   ioctl(VFIO_IOMMU_MAP_DMA)';
// - bad arguments from JS (wrong type, out of bounds, closed object) throw a
//   TypeError/RangeError with code 'ERR_INVALID_ARG_TYPE' /
//   'ERR_OUT_OF_RANGE' / 'ERR_VFIO_CLOSED', never crash;
// - every fd is owned by exactly one native object and closed exactly once;
//   close() is idempotent; any other call after close() throws
//   ERR_VFIO_CLOSED;
// - JS never hands over a raw address: DMA names a NativeDmaBuffer plus an
//   offset and size that native code bounds-checks.
//
// Numbers: byte offsets inside a buffer/mapping are `number` (safe integers);
// IOVAs, region offsets and kernel u64 sizes are `bigint`.

import { loadAddon } from './addon';

/** Something that owns an fd the kernel can be handed (KVM-VFIO FILE_ADD). */
export interface NativeFdOwner {
  /** The fd number, -1 once closed. For diagnostics and for the kernel only. */
  readonly fd: number;
  close(): void;
}

export interface IovaRange {
  start: bigint;
  /** Inclusive, as the kernel reports it. */
  end: bigint;
}

export interface Type1InfoRaw {
  flags: number;
  iovaPgsizes: bigint;
  /** VFIO_IOMMU_TYPE1_INFO_CAP_IOVA_RANGE, or null when the kernel has no such cap. */
  iovaRanges: IovaRange[] | null;
  /** VFIO_IOMMU_TYPE1_INFO_DMA_AVAIL, or null. */
  dmaAvail: number | null;
  /** VFIO_IOMMU_TYPE1_INFO_CAP_MIGRATION, or null. */
  migration: { flags: number; pgsizeBitmap: bigint; maxDirtyBitmapSize: bigint } | null;
}

export interface SpaprInfoRaw {
  flags: number;
  dma32WindowStart: bigint;
  dma32WindowSize: bigint;
  /** Present when flags has VFIO_IOMMU_SPAPR_INFO_DDW. */
  ddw: { pgsizes: bigint; maxDynamicWindowsSupported: number; levels: number } | null;
}

export interface NativeContainer extends NativeFdOwner {
  /** ioctl(VFIO_GET_API_VERSION) */
  getApiVersion(): number;
  /** ioctl(VFIO_CHECK_EXTENSION); returns the kernel's answer (0 = no). */
  checkExtension(extension: number): number;
  /** ioctl(VFIO_SET_IOMMU) */
  setIommu(type: number): void;

  /** ioctl(VFIO_IOMMU_GET_INFO), argsz grown until the capability chain fits, chain walked. */
  type1GetInfo(): Type1InfoRaw;
  /**
   * ioctl(VFIO_IOMMU_MAP_DMA) of buffer[offset, offset+size) at iova.
   * flags: VFIO_DMA_MAP_FLAG_READ | VFIO_DMA_MAP_FLAG_WRITE.
   * Throws ERR_OUT_OF_RANGE natively if the range is not inside the buffer.
   */
  mapDma(buffer: NativeDmaBuffer, offset: number, size: number, iova: bigint, flags: number): void;
  /** Same on the libuv thread pool; keeps `buffer` alive until settled. */
  mapDmaAsync(buffer: NativeDmaBuffer, offset: number, size: number, iova: bigint, flags: number): Promise<void>;
  /**
   * ioctl(VFIO_IOMMU_MAP_DMA) of mapping[offset, offset+size): another
   * device's BAR mmap as the memory, for peer-to-peer DMA. Bounds-checked
   * natively like mapDma.
   */
  mapDmaRegion(mapping: NativeRegionMapping, offset: number, size: number, iova: bigint, flags: number): void;
  /**
   * ioctl(VFIO_IOMMU_UNMAP_DMA). flags may hold VFIO_DMA_UNMAP_FLAG_ALL (then iova
   * and size must be 0). Returns the size the kernel reports it unmapped.
   */
  unmapDma(iova: bigint, size: bigint, flags: number): bigint;
  unmapDmaAsync(iova: bigint, size: bigint, flags: number): Promise<bigint>;

  // sPAPR TCE (POWER). Compiled everywhere; the kernel refuses them elsewhere.
  /** ioctl(VFIO_IOMMU_SPAPR_TCE_GET_INFO) */
  spaprGetInfo(): SpaprInfoRaw;
  /** ioctl(VFIO_IOMMU_ENABLE) */
  enable(): void;
  /** ioctl(VFIO_IOMMU_DISABLE) */
  disable(): void;
  /** ioctl(VFIO_IOMMU_SPAPR_REGISTER_MEMORY) of buffer[offset, offset+size). */
  spaprRegisterMemory(buffer: NativeDmaBuffer, offset: number, size: number): void;
  /** ioctl(VFIO_IOMMU_SPAPR_UNREGISTER_MEMORY) */
  spaprUnregisterMemory(buffer: NativeDmaBuffer, offset: number, size: number): void;
  /** ioctl(VFIO_IOMMU_SPAPR_TCE_CREATE); returns the window's start address. */
  spaprCreateWindow(pageShift: number, windowSize: bigint, levels: number): bigint;
  /** ioctl(VFIO_IOMMU_SPAPR_TCE_REMOVE) */
  spaprRemoveWindow(start: bigint): void;
  /** ioctl(VFIO_EEH_PE_OP); returns the ioctl's non-negative result. */
  eehPeOp(op: number): number;
}

export interface NativeGroup extends NativeFdOwner {
  /** ioctl(VFIO_GROUP_GET_STATUS): the flags word (VFIO_GROUP_FLAGS_*). */
  getStatus(): number;
  /** ioctl(VFIO_GROUP_SET_CONTAINER) */
  setContainer(container: NativeContainer): void;
  /** ioctl(VFIO_GROUP_UNSET_CONTAINER) */
  unsetContainer(): void;
  /** ioctl(VFIO_GROUP_GET_DEVICE_FD) for a device name such as '0000:00:04.0'. */
  getDeviceFd(name: string): NativeDevice;
}

export interface DeviceInfoRaw {
  flags: number;
  numRegions: number;
  numIrqs: number;
}

export interface SparseMmapArea {
  offset: bigint;
  size: bigint;
}

export interface RegionInfoRaw {
  index: number;
  flags: number;
  size: bigint;
  /** Offset of the region within the device fd. */
  offset: bigint;
  /** VFIO_REGION_INFO_CAP_SPARSE_MMAP, or null. */
  sparseMmap: SparseMmapArea[] | null;
  /** VFIO_REGION_INFO_CAP_MSIX_MAPPABLE was in the chain: the MSI-X table's pages may be mmapped. */
  msixMappable: boolean;
  /** VFIO_REGION_INFO_CAP_TYPE, or null. */
  type: { type: number; subtype: number } | null;
}

export interface IrqInfoRaw {
  index: number;
  flags: number;
  count: number;
}

export type AccessWidth = 1 | 2 | 4 | 8;

/** struct vfio_pci_dependent_device */
export interface DependentDeviceRaw {
  groupId: number;
  segment: number;
  bus: number;
  devfn: number;
}

export interface HotResetInfoRaw {
  flags: number;
  devices: DependentDeviceRaw[];
}

/** IOMMU_IOAS_IOVA_RANGES: allowed IOVA ranges (inclusive ends) and the IOVA alignment. */
export interface IoasRangesRaw {
  alignment: bigint;
  ranges: { start: bigint; end: bigint }[];
}

/** An iommufd (/dev/iommu). Object ids (IOAS) live inside it. */
export interface NativeIommufd extends NativeFdOwner {
  /** ioctl(IOMMU_IOAS_ALLOC): the new IOAS id. */
  ioasAlloc(): number;
  /** ioctl(IOMMU_DESTROY) */
  destroy(id: number): void;
  /** ioctl(IOMMU_IOAS_IOVA_RANGES), the EMSGSIZE size protocol handled natively. */
  ioasIovaRanges(ioas: number): IoasRangesRaw;
  /** ioctl(IOMMU_IOAS_ALLOW_IOVAS) with (start, last) pairs. */
  ioasAllowIovas(ioas: number, pairs: BigUint64Array): void;
  /** ioctl(IOMMU_IOAS_MAP): the IOVA mapped at (the kernel's choice without IOMMU_IOAS_MAP_FIXED_IOVA). */
  ioasMap(ioas: number, buffer: NativeDmaBuffer, offset: number, length: number, iova: bigint, flags: number): bigint;
  /** ioasMap on the libuv thread pool. */
  ioasMapAsync(ioas: number, buffer: NativeDmaBuffer, offset: number, length: number, iova: bigint, flags: number): Promise<bigint>;
  /** ioctl(IOMMU_IOAS_UNMAP): bytes unmapped. */
  ioasUnmap(ioas: number, iova: bigint, length: bigint): bigint;
  /** ioasUnmap on the libuv thread pool. */
  ioasUnmapAsync(ioas: number, iova: bigint, length: bigint): Promise<bigint>;
}

export interface NativeDevice extends NativeFdOwner {
  /** ioctl(VFIO_DEVICE_GET_INFO) */
  getInfo(): DeviceInfoRaw;
  /** ioctl(VFIO_DEVICE_GET_REGION_INFO), capability chain walked. */
  getRegionInfo(index: number): RegionInfoRaw;
  /** ioctl(VFIO_DEVICE_GET_IRQ_INFO) */
  getIrqInfo(index: number): IrqInfoRaw;
  /**
   * ioctl(VFIO_DEVICE_SET_IRQS) with DATA_EVENTFD | ACTION_TRIGGER: vector
   * start+i signals eventfds[i]; null de-assigns that vector (fd -1).
   */
  setIrqsEventfds(index: number, start: number, eventfds: (NativeEventFd | null)[], action?: number): void;
  /**
   * ioctl(VFIO_DEVICE_SET_IRQS) with DATA_NONE and the given action flag
   * (VFIO_IRQ_SET_ACTION_MASK / _UNMASK / _TRIGGER). With ACTION_TRIGGER and
   * count 0 this disables the index.
   */
  setIrqsNone(index: number, start: number, count: number, action: number): void;
  /** ioctl(VFIO_DEVICE_RESET) */
  reset(): void;
  /**
   * ioctl(VFIO_DEVICE_GET_PCI_HOT_RESET_INFO): the devices a bus or slot
   * reset would hit; the ENOSPC size protocol is handled natively.
   */
  getPciHotResetInfo(): HotResetInfoRaw;
  /** ioctl(VFIO_DEVICE_BIND_IOMMUFD) of a device cdev: its device id in that iommufd. */
  bindIommufd(iommufd: NativeIommufd): number;
  /** ioctl(VFIO_DEVICE_ATTACH_IOMMUFD_PT): the id the kernel attached (the IOAS's, or a HWPT it made for it). */
  attachIommufdPt(ptId: number): number;
  /** ioctl(VFIO_DEVICE_DETACH_IOMMUFD_PT): DMA blocked until attached again. */
  detachIommufdPt(): void;
  /** ioctl(VFIO_DEVICE_PCI_HOT_RESET) with the fds of `groups`, in order. */
  pciHotReset(groups: NativeGroup[]): void;
  /**
   * pread of exactly `width` bytes at the device-fd offset (region offset +
   * offset inside it). Widths 1, 2, 4 return number; 8 returns bigint.
   * Host byte order, as the kernel returns it.
   */
  read(offset: bigint, width: AccessWidth): number | bigint;
  /** pwrite of exactly `width` bytes. */
  write(offset: bigint, width: AccessWidth, value: number | bigint): void;
  /** pread of `length` bytes (e.g. PCI config space), returned as a new Buffer. */
  readBytes(offset: bigint, length: number): Buffer;
  /** pwrite of all of `data`. */
  writeBytes(offset: bigint, data: Uint8Array): void;
  /**
   * mmap(MAP_SHARED) of [offset, offset+size) of the device fd (offset and
   * size page-aligned by the caller). prot: PROT_READ | PROT_WRITE bits.
   */
  mmap(offset: bigint, size: number, prot: number): NativeRegionMapping;
}

/** An mmap of a device region: exact-width volatile access only. */
export interface NativeRegionMapping {
  readonly size: number;
  /**
   * Volatile load of `width` bytes at `offset`; bounds- and
   * alignment-checked natively (ERR_OUT_OF_RANGE), so a bad offset throws
   * instead of faulting.
   */
  read(offset: number, width: AccessWidth): number | bigint;
  write(offset: number, width: AccessWidth, value: number | bigint): void;
  /**
   * The mapping as an external ArrayBuffer (one per mapping), for accesses
   * without a native call each; close() detaches it. Only for a mapping
   * made with PROT_READ | PROT_WRITE (ERR_VFIO_REGION_ACCESS otherwise): a
   * store into a read-only one would fault the process.
   */
  arrayBuffer(): ArrayBuffer;
  /** munmap; idempotent. */
  close(): void;
}

export interface NativeDmaBuffer {
  readonly size: number;
  /** The page size backing the memory (4096, or the huge page size). */
  readonly pageSize: number;
  /** The fd the memory came from (memfd), -1 for anonymous memory or once closed. */
  readonly fd: number;
  /** Whether the memory is a regular file's (S_ISREG, a memfd included): such a file can be truncated. */
  readonly regularFile: boolean;
  /**
   * fcntl(F_GET_SEALS) of the file behind the buffer (F_SEAL_* bits), -1 for
   * anonymous memory or a file system without seals (EINVAL: only shmem and
   * hugetlbfs have them). Seals are only ever added, never removed.
   */
  seals(): number;
  /**
   * The memory as an external ArrayBuffer (one per buffer, created on first
   * call). close() detaches it, so views become zero-length instead of
   * dangling.
   */
  arrayBuffer(): ArrayBuffer;
  /** detach the ArrayBuffer, munmap, close the fd; idempotent. Throws EBUSY while an async map holds it. */
  close(): void;
}

export interface NativeEventFd extends NativeFdOwner {
  /**
   * Watch the eventfd on the libuv loop (uv_poll); on each readiness the
   * counter is read (reset to 0) and callback(count) runs on the JS thread.
   */
  start(callback: (count: number) => void): void;
  stop(): void;
  /** Whether an active watch keeps the event loop alive (default true). */
  ref(): void;
  unref(): void;
  /** Non-blocking read of the counter; 0 when nothing is pending. */
  read(): number;
  /** write(2) `value` to the counter (tests, and software-triggered interrupts). */
  signal(value: number): void;
}

export interface NativeKvm extends NativeFdOwner {
  /** ioctl(KVM_GET_API_VERSION) */
  getApiVersion(): number;
  /** ioctl(KVM_CHECK_EXTENSION) on /dev/kvm */
  checkExtension(extension: number): number;
  /** ioctl(KVM_CREATE_VM) */
  createVm(type: number): NativeVm;
}

export interface NativeVm extends NativeFdOwner {
  /** ioctl(KVM_CHECK_EXTENSION) on the VM fd */
  checkExtension(extension: number): number;
  /**
   * ioctl(KVM_CREATE_DEVICE). With test=true (KVM_CREATE_DEVICE_TEST) nothing
   * is created and null is returned when the kernel supports the type.
   */
  createDevice(type: number, test: boolean): NativeKvmDevice | null;
  /** ioctl(KVM_CREATE_IRQCHIP) */
  createIrqchip(): void;
  /**
   * ioctl(KVM_IRQFD): assign `eventfd` to `gsi` (with KVM_IRQFD_FLAG_RESAMPLE
   * when `resample` is given), or with deassign=true remove it.
   */
  irqfd(eventfd: NativeEventFd, gsi: number, resample: NativeEventFd | null, deassign: boolean): void;
  /**
   * ioctl(KVM_SET_GSI_ROUTING) with the whole table: 5 words per route,
   * [gsi, KVM_IRQ_ROUTING_IRQCHIP, irqchip, pin, 0] or
   * [gsi, KVM_IRQ_ROUTING_MSI, addressLo, addressHi, data].
   */
  setGsiRouting(routes: Uint32Array): void;
  /**
   * ioctl(KVM_SET_USER_MEMORY_REGION): [offset, offset+size) of `memory`
   * (bounds-checked natively) at guest physical `guestPhys`; size 0 deletes
   * the slot (memory may be null then).
   */
  setUserMemoryRegion(slot: number, flags: number, guestPhys: bigint, memory: NativeDmaBuffer | NativeRegionMapping | null, offset: number, size: number): void;
  /** ioctl(KVM_CREATE_VCPU), and the mmap of its kvm_run area (kept native). */
  createVcpu(id: number): NativeVcpu;
}

/** Why KVM_RUN came back to us, and every exit counted so far. */
export interface VcpuExitRaw {
  reason: 'io' | 'mmio' | 'hlt' | 'shutdown' | 'fail-entry' | 'internal-error' | 'other' | 'timeout';
  exitReason?: number;
  port?: number;
  size?: number;
  write?: boolean;
  value?: number;
  address?: bigint;
  hardwareReason?: bigint;
  suberror?: number;
  exits: { io: number; mmio: number; hlt: number; intr: number; other: number };
}

export interface NativeVcpu extends NativeFdOwner {
  /** ioctl(KVM_GET_REGS): struct kvm_regs as 18 u64 (rax..r15, rip, rflags). */
  getRegs(): BigUint64Array;
  /** ioctl(KVM_SET_REGS) */
  setRegs(regs: BigUint64Array): void;
  /** KVM_GET_SREGS, then KVM_SET_SREGS with one segment's selector and base (0..5: cs, ds, es, fs, gs, ss). */
  setSegment(segment: number, selector: number, base: number): void;
  /** KVM_RUN until an exit for userspace, or `timeoutMs` (0: none) passes. Blocks the calling thread. */
  run(timeoutMs: number): VcpuExitRaw;
}

export interface NativeKvmDevice extends NativeFdOwner {
  /** ioctl(KVM_HAS_DEVICE_ATTR); false on ENXIO, throws otherwise. */
  hasAttr(group: number, attr: number): boolean;
  /**
   * ioctl(KVM_SET_DEVICE_ATTR) of group KVM_DEV_VFIO_FILE (== _GROUP) with
   * attr _ADD or _DEL; addr points to the int32 fd of `file`. Any of our fd
   * owners is accepted so that tests can show the kernel's answer to a
   * non-VFIO fd; lib/ only ever passes groups (or devices).
   */
  setVfioFile(attr: number, file: NativeFdOwner): void;
  /**
   * ioctl(KVM_SET_DEVICE_ATTR) KVM_DEV_VFIO_GROUP_SET_SPAPR_TCE with
   * struct kvm_vfio_spapr_tce { groupfd, tablefd }.
   */
  setSpaprTce(group: NativeGroup, tableFd: number): void;
}

/**
 * Opt-in fault injection (native/faults.cc): the nth ioctl named `syscall`
 * ('ioctl(VFIO_IOMMU_MAP_DMA)') from now fails with `errno` (positive) before
 * the kernel sees it. Reached only through vfio/testing (addonFaults()).
 */
export interface NativeFaults {
  inject(syscall: string, nth: number, errno: number): void;
  clear(): void;
  fired(): { syscall: string; nth: number; errno: number }[];
}

/** Constants from <linux/vfio.h>, <linux/kvm.h>, <sys/mman.h> as compiled into the addon. */
export interface NativeConstants {
  readonly [name: string]: number;
}

export interface NativeBinding {
  readonly constants: NativeConstants;
  /** open(path, O_RDWR | O_CLOEXEC); default '/dev/vfio/vfio'. */
  openContainer(path: string): NativeContainer;
  /** open(path, O_RDWR | O_CLOEXEC), e.g. '/dev/vfio/12'. */
  openGroup(path: string): NativeGroup;
  /** open(/dev/iommu). */
  openIommufd(path: string): NativeIommufd;
  /** open(/dev/vfio/devices/vfioN): a device cdev, unbound. */
  openDeviceCdev(path: string): NativeDevice;
  /**
   * mmap(MAP_PRIVATE | MAP_ANONYMOUS [| MAP_HUGETLB | MAP_HUGE_xx]) of `size`
   * bytes (a multiple of the page size). hugePageSize 0 = normal pages.
   * Every DMA buffer's mapping, whichever creator made it, is marked
   * madvise(MADV_DONTFORK): a child process never gets the pinned pages.
   */
  allocDmaBuffer(size: number, hugePageSize: number): NativeDmaBuffer;
  /**
   * memfd_create(name, MFD_CLOEXEC | MFD_ALLOW_SEALING [| MFD_HUGETLB...]) + ftruncate + F_SEAL_SHRINK +
   * mmap(MAP_SHARED); the buffer owns the memfd.
   */
  createMemfdBuffer(name: string, size: number, hugePageSize: number): NativeDmaBuffer;
  /**
   * mmap(MAP_SHARED) of [offset, offset+size) of a caller's fd (memfd,
   * hugetlbfs file). The fd is dup'ed; the caller keeps its own. Whether the
   * file can shrink under the mapping is for lib/ to judge (regularFile, seals()).
   */
  mapFdBuffer(fd: number, offset: number, size: number): NativeDmaBuffer;
  /** eventfd(0, EFD_CLOEXEC | EFD_NONBLOCK) */
  createEventFd(): NativeEventFd;
  /** open(path, O_RDWR | O_CLOEXEC); default '/dev/kvm'. */
  openKvm(path: string): NativeKvm;
  /** Adopt a VMM's VM fd: fcntl(F_DUPFD_CLOEXEC); the caller keeps its own fd. */
  adoptVm(fd: number): NativeVm;
  /** getrlimit(RLIMIT_MEMLOCK): [soft, hard] in bytes, -1n = unlimited. */
  getMemlockLimit(): [bigint, bigint];
  /** sysconf(_SC_PAGESIZE) */
  readonly pageSize: number;
  /** The real addon's fault injection; a test twin has none. */
  readonly ioctlFaults?: NativeFaults;
}

let loaded: NativeBinding | undefined;

/** The backend lib/ uses: the real addon (loaded once, by lib/addon.ts), or a test twin. */
export function native(): NativeBinding {
  // On every syscall path: process.env is read once, at load (its getter costs ~300 ns).
  return (loaded ??= load());
}

function load(): NativeBinding {
  return loadAddon() as NativeBinding;
}

/**
 * Swap the backend (the mock kernel of lib/testing/, MockKernel.install()); returns the previous one.
 * For tests only: objects opened with one backend must be closed with it.
 */
export function setNativeBackend(backend: NativeBinding | undefined): NativeBinding | undefined {
  const previous = loaded;
  loaded = backend;
  return previous;
}
