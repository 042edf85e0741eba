// Fault injection, one shape for the mock kernel and the real addon: "the
// Nth call of syscall S fails with errno E". The way SQLite tests every
// allocation failure, a test fails each kernel call in turn and checks that
// the library's books still equal the kernel's.

import { constants as osConstants } from 'node:os';
import { argInt, argName, argOptions, optionField, valueError } from '../args';

/** An errno name Node knows ('ENOMEM', 'EIO', ...). */
export type ErrnoCode = keyof typeof osConstants.errno;

/** Which ioctl to fail, when, and with which errno. */
export interface FaultSpec {
  /**
   * The call to fail: an ioctl by its request name ('VFIO_IOMMU_MAP_DMA', or
   * as errors spell it, 'ioctl(VFIO_IOMMU_MAP_DMA)'), or a syscall ('mmap', 'open').
   */
  syscall: string;
  /** Which occurrence, counted from the injection: 1 (default) is the next one. */
  nth?: number;
  /** The errno it fails with. */
  code: ErrnoCode;
}

/** A checked spec: the syscall as errors name it, the nth, the positive errno. */
export interface Fault {
  syscall: string;
  nth: number;
  code: ErrnoCode;
  errno: number;
}

/** The injection surface both backends offer. */
export interface Faults {
  /** Arm a fault; several may be armed at once, for the same or other calls. */
  inject(spec: FaultSpec): void;
  /** Disarm everything not yet fired; the counts start again. */
  clear(): void;
  /** The faults that fired, in order, since the last clear(). */
  fired(): Fault[];
}

/** 'VFIO_X' → 'ioctl(VFIO_X)'; anything else as given. */
export function syscallName(name: string): string {
  return /^[A-Z][A-Z0-9_]+$/.test(name) ? `ioctl(${name})` : name;
}

export function checkFault(spec: FaultSpec): Fault {
  const o = argOptions(spec, 'spec');
  const name = argName(optionField(o, 'syscall', 'spec.syscall'), 'spec.syscall', 64);
  if (!/^[a-z_][a-z0-9_]*(\([A-Z][A-Z0-9_]*\))?$|^[A-Z][A-Z0-9_]+$/.test(name)) throw valueError('spec.syscall', 'must be a syscall (mmap) or an ioctl name (VFIO_IOMMU_MAP_DMA)', name);
  const nth = optionField(o, 'nth', 'spec.nth');
  const code = argName(optionField(o, 'code', 'spec.code'), 'spec.code', 32);
  const errno = Object.hasOwn(osConstants.errno, code) ? (osConstants.errno as Record<string, number>)[code] : 0;
  if (!errno) throw valueError('spec.code', 'must be an errno name such as ENOMEM', code);
  return { syscall: syscallName(name), nth: nth === undefined ? 1 : argInt(nth, 'spec.nth', 1, 2 ** 31 - 1), code: code as ErrnoCode, errno };
}

/** The mock kernel's faults: counted per syscall name from the injection on. */
export class FaultPlan implements Faults {
  #armed: (Fault & { seen: number })[] = [];
  #fired: Fault[] = [];
  inject(spec: FaultSpec): void {
    this.#armed.push({ ...checkFault(spec), seen: 0 });
  }
  clear(): void {
    this.#armed = [];
    this.#fired = [];
  }
  fired(): Fault[] {
    return this.#fired.slice();
  }
  /** The fault that fails this call now, if one does. */
  take(syscall: string): Fault | undefined {
    let hit: Fault | undefined;
    for (const f of this.#armed) if (f.syscall === syscall && ++f.seen === f.nth && !hit) hit = f;
    if (!hit) return undefined;
    this.#armed = this.#armed.filter((f) => f !== hit);
    const { seen: _seen, ...fault } = hit as Fault & { seen: number };
    this.#fired.push(fault);
    return fault;
  }
}
