// Errors follow Node's system-error conventions: callers branch on `code`.
// Kernel failures keep the kernel's code ('EINVAL'), errno (negative, as in
// Node) and syscall ('ioctl(VFIO_IOMMU_MAP_DMA)'); rule violations found by
// this library before any syscall use our own 'ERR_VFIO_*' codes.

import { getSystemErrorName } from 'node:util';

/** Codes of the rules lib/ enforces before a syscall is issued. */
export const RuleCode = {
  /** The object was closed (explicitly, or by its parent). */
  CLOSED: 'ERR_VFIO_CLOSED',
  /** Group is not viable: a device in it is bound to a host driver. */
  GROUP_NOT_VIABLE: 'ERR_VFIO_GROUP_NOT_VIABLE',
  /** Group is not attached to a container. */
  GROUP_NOT_ATTACHED: 'ERR_VFIO_GROUP_NOT_ATTACHED',
  /** Group is already attached (to this or another container). */
  GROUP_ATTACHED: 'ERR_VFIO_GROUP_ATTACHED',
  /** The container has no IOMMU model set yet. */
  IOMMU_NOT_SET: 'ERR_VFIO_IOMMU_NOT_SET',
  /** The container's IOMMU model is already set. */
  IOMMU_ALREADY_SET: 'ERR_VFIO_IOMMU_ALREADY_SET',
  /** The kernel does not offer the IOMMU model asked for. */
  IOMMU_UNSUPPORTED: 'ERR_VFIO_IOMMU_UNSUPPORTED',
  /** IOVA, buffer offset or size not aligned to the IOMMU page size. */
  MISALIGNED: 'ERR_VFIO_MISALIGNED',
  /** Size 0, negative, or an IOVA range that wraps around 2^64. */
  BAD_RANGE: 'ERR_VFIO_BAD_RANGE',
  /** IOVA range outside every IOVA range / DMA window the IOMMU reports. */
  IOVA_OUT_OF_RANGE: 'ERR_VFIO_IOVA_OUT_OF_RANGE',
  /** Map overlaps a live mapping. */
  OVERLAP: 'ERR_VFIO_OVERLAP',
  /** Unmap names a range that is not exactly one live mapping. */
  NO_MAPPING: 'ERR_VFIO_NO_MAPPING',
  /** More mappings than the IOMMU's DMA-avail count allows. */
  DMA_LIMIT: 'ERR_VFIO_DMA_LIMIT',
  /** The device lacks the capability asked for (e.g. no reset method, a non-maskable interrupt). */
  UNSUPPORTED: 'ERR_VFIO_UNSUPPORTED',
  /** A PCI hot reset would hit a group the caller did not hand over as proof of ownership. */
  RESET_GROUP_MISSING: 'ERR_VFIO_RESET_GROUP_MISSING',
  /** Nothing happened within the time asked for (Irq.wait). */
  TIMEOUT: 'ERR_VFIO_TIMEOUT',
  /** An async operation on this object has not settled yet. */
  BUSY: 'ERR_VFIO_BUSY',
  /** The kernel's answer disagrees with our bookkeeping (a bug: please report it). */
  BOOKKEEPING: 'ERR_VFIO_BOOKKEEPING',
  /** Buffer range outside the buffer. */
  BUFFER_RANGE: 'ERR_VFIO_BUFFER_RANGE',
  /**
   * DmaBuffer.fromFd: the file can still be truncated under the mapping (a
   * regular file, or a memfd without F_SEAL_SHRINK); touching the memory
   * after a truncation kills the process with SIGBUS.
   */
  UNSEALED: 'ERR_VFIO_UNSEALED',
  /** Buffer still has live mappings (or registrations). */
  BUFFER_IN_USE: 'ERR_VFIO_BUFFER_IN_USE',
  /** Region offset/width outside the region or not naturally aligned. */
  REGION_RANGE: 'ERR_VFIO_REGION_RANGE',
  /** Region cannot be read, written or mmapped as asked. */
  REGION_ACCESS: 'ERR_VFIO_REGION_ACCESS',
  /** A BAR mmap would cover the MSI-X table's pages, and the kernel does not say they are mappable. */
  MSIX_TABLE: 'ERR_VFIO_MSIX_TABLE',
  /** IRQ index or vector range does not exist on the device. */
  IRQ_RANGE: 'ERR_VFIO_IRQ_RANGE',
  /** A device cdev is not bound to an iommufd yet (device.bind(iommufd)). */
  DEVICE_NOT_BOUND: 'ERR_VFIO_DEVICE_NOT_BOUND',
  /** A bound device cdev is not attached to an IO address space (device.attach(ioas)). */
  DEVICE_NOT_ATTACHED: 'ERR_VFIO_DEVICE_NOT_ATTACHED',
  /** Operations in the wrong order (e.g. KVM registration after device open). */
  ORDER: 'ERR_VFIO_ORDER',
  /** sPAPR: buffer must be pre-registered (v2) first. */
  NOT_REGISTERED: 'ERR_VFIO_NOT_REGISTERED',
  /** sPAPR: window page size larger than the buffer's page size. */
  PAGE_SIZE_MISMATCH: 'ERR_VFIO_PAGE_SIZE_MISMATCH',
  /** sPAPR: as many DMA windows are live as the IOMMU allows. */
  WINDOW_LIMIT: 'ERR_VFIO_WINDOW_LIMIT',
  /** A KVM-VFIO device already exists for this VM, or a group is already registered. */
  KVM_EXISTS: 'ERR_VFIO_KVM_EXISTS',
  /** Group is not registered with the KVM-VFIO device. */
  KVM_NOT_REGISTERED: 'ERR_VFIO_KVM_NOT_REGISTERED',
  /** No such PCI device or IOMMU group in sysfs. */
  NO_DEVICE: 'ERR_VFIO_NO_DEVICE',
  /** The device has no IOMMU group (the IOMMU is off or does not cover it). */
  NO_IOMMU_GROUP: 'ERR_VFIO_NO_IOMMU_GROUP',
  /** Refused to take a device from the host: it backs the root filesystem or an active network interface. */
  DEVICE_IN_USE: 'ERR_VFIO_DEVICE_IN_USE',
  /** A driver the operation needs (vfio-pci) is not loaded. */
  DRIVER_MISSING: 'ERR_VFIO_DRIVER_MISSING',
  /** The kernel accepted the sysfs writes but the device did not end up on the expected driver. */
  BIND_FAILED: 'ERR_VFIO_BIND_FAILED',
  /** The `vfio` command line is malformed: unknown command or option, wrong number of arguments. */
  USAGE: 'ERR_VFIO_USAGE',
  /** The C++ addon did not load: no prebuild for this platform and no local build (see the message for what to install). */
  NO_ADDON: 'ERR_VFIO_NO_ADDON',
  /** Something threw that carries no code: a bug in this package (the `vfio` CLI reports it so). */
  INTERNAL: 'ERR_VFIO_INTERNAL',
} as const;

/** One of the {@link RuleCode} values. */
export type RuleCodeValue = (typeof RuleCode)[keyof typeof RuleCode];

/** A rule of this library was broken; nothing reached the kernel. */
export class VfioError extends Error {
  readonly code: RuleCodeValue;
  /** What to do about it, when we know (also appended to the message, as VfioSystemError does). */
  readonly hint?: string;
  constructor(code: RuleCodeValue, message: string, hint?: string) {
    super(hint === undefined ? message : `${message}; ${hint}`);
    this.name = 'VfioError';
    this.code = code;
    if (hint !== undefined) this.hint = hint;
  }
}

/** The kernel refused a syscall. Carries Node's system-error fields. */
export class VfioSystemError extends Error {
  readonly code: string;
  readonly errno: number;
  readonly syscall: string;
  readonly path?: string;
  /** What to do about it, when we know (also appended to the message). */
  readonly hint?: string;
  constructor(opts: { errno: number; syscall: string; message: string; code?: string; path?: string; hint?: string; cause?: unknown }) {
    super(opts.message, opts.cause === undefined ? undefined : { cause: opts.cause });
    this.name = 'VfioSystemError';
    this.errno = opts.errno;
    this.code = opts.code ?? errnoName(opts.errno);
    this.syscall = opts.syscall;
    if (opts.path !== undefined) this.path = opts.path;
    if (opts.hint !== undefined) this.hint = opts.hint;
  }
}

/** 'EINVAL' for -22 (or 22). */
export function errnoName(errno: number): string {
  try {
    return getSystemErrorName(-Math.abs(errno));
  } catch {
    return `Unknown system error ${errno}`;
  }
}

/** A native error: an Error carrying code/errno/syscall from native/errors.cc. */
export interface NativeSystemError extends Error {
  code: string;
  errno: number;
  syscall: string;
}

export function isSystemError(e: unknown): e is NativeSystemError {
  return e instanceof Error && typeof (e as NativeSystemError).errno === 'number' && typeof (e as NativeSystemError).syscall === 'string';
}

/**
 * Re-throws a native system error with the object named and, when given, a
 * hint saying how to fix it. Anything else is re-thrown unchanged.
 */
export function rethrow(e: unknown, what: string, hint?: (code: string) => string | undefined, path?: string): never {
  if (!isSystemError(e)) throw e;
  const h = hint?.(e.code);
  const message = `${what}: ${e.code}: ${describeErrno(e.errno)}, ${e.syscall}${h ? `; ${h}` : ''}`;
  throw adopt(e, message, path, h);
}

/**
 * The native error itself, made the VfioSystemError: building an Error (its
 * stack trace) is most of what a failed call costs, so a failure builds one,
 * not two; its stack starts where lib/ called the addon. An error that
 * cannot be changed (frozen) is wrapped in a new one instead, as before.
 */
function adopt(e: NativeSystemError, message: string, path: string | undefined, hint: string | undefined): VfioSystemError {
  // The native code names errnos Node's table lacks (ENOMEDIUM, EKEYREVOKED...): keep it.
  const code = typeof e.code === 'string' ? e.code : undefined;
  try {
    const v = Object.setPrototypeOf(e, VfioSystemError.prototype) as Record<string, unknown>;
    v.name = 'VfioSystemError';
    v.message = message;
    if (code === undefined) v.code = errnoName(e.errno);
    setOrDrop(v, 'path', path);
    setOrDrop(v, 'hint', hint);
    return v as unknown as VfioSystemError;
  } catch {
    return new VfioSystemError({ errno: e.errno, syscall: e.syscall, code, message, path, hint, cause: e });
  }
}

// Only what this rethrow says: an adopted error keeps no path or hint of an earlier one.
function setOrDrop(v: Record<string, unknown>, key: string, value: string | undefined): void {
  if (value !== undefined) v[key] = value;
  else if (Object.hasOwn(v, key)) delete v[key];
}

function describeErrno(errno: number): string {
  // The native message is 'CODE: text, syscall'; recompute the text here so
  // fake and real backends produce identical messages.
  return ERRNO_TEXT[errnoName(errno)] ?? `errno ${errno}`;
}

const ERRNO_TEXT: Record<string, string> = {
  EPERM: 'operation not permitted',
  ENOENT: 'no such file or directory',
  EINTR: 'interrupted system call',
  EIO: 'i/o error',
  ENXIO: 'no such device or address',
  EBADF: 'bad file descriptor',
  EAGAIN: 'resource temporarily unavailable',
  ENOMEM: 'cannot allocate memory',
  EACCES: 'permission denied',
  EFAULT: 'bad address',
  EBUSY: 'resource busy or locked',
  EEXIST: 'file already exists',
  ENODEV: 'no such device',
  EINVAL: 'invalid argument',
  ENOSPC: 'no space left on device',
  ENOTTY: 'inappropriate ioctl for device',
  ENOSYS: 'function not implemented',
  EOPNOTSUPP: 'operation not supported',
};
