// The minimal vCPU a passthrough test needs: registers, real-mode segments,
// and KVM_RUN until the guest exits to us. A VMM keeps its own vCPUs (on an
// adopted VM fd); this one is small on purpose. The kvm_run area stays in
// the addon: an exit comes back as plain numbers.

import { argInt, argOneOf, argOptions, argU64, optionField, valueError } from './args';
import { rethrow } from './errors';
import type { NativeVcpu, VcpuExitRaw } from './native';
import { closerOf, Resource } from './resource';

/** struct kvm_regs, in the header's order. */
const REGS = ['rax', 'rbx', 'rcx', 'rdx', 'rsi', 'rdi', 'rsp', 'rbp', 'r8', 'r9', 'r10', 'r11', 'r12', 'r13', 'r14', 'r15', 'rip', 'rflags'] as const;
export type VcpuRegister = (typeof REGS)[number];
/** The general registers of struct kvm_regs, by name. */
export type VcpuRegisters = Record<VcpuRegister, bigint>;

const SEGMENTS = ['cs', 'ds', 'es', 'fs', 'gs', 'ss'] as const;
/** A segment register of struct kvm_sregs. */
export type VcpuSegment = (typeof SEGMENTS)[number];

/** Why `run()` returned: the exit reason and, for I/O and MMIO, what the guest accessed. */
export type VcpuExit = VcpuExitRaw;

/** A KVM vCPU: its registers, and `run()` until the guest exits (port I/O, MMIO, HLT). */
export class Vcpu extends Resource {
  readonly id: number;
  readonly description: string;
  readonly #native: NativeVcpu;

  /** @internal Vm.createVcpu() */
  constructor(vm: { readonly description: string }, id: number, handle: NativeVcpu) {
    super();
    this.id = id;
    this.#native = handle;
    this.description = `vCPU ${id} of ${vm.description}`;
    this.track(closerOf(handle));
  }

  /** KVM_GET_REGS. */
  getRegs(): VcpuRegisters {
    this.assertOpen();
    let raw: BigUint64Array;
    try {
      raw = this.#native.getRegs();
    } catch (e) {
      rethrow(e, `${this.description}: KVM_GET_REGS`);
    }
    const out = {} as VcpuRegisters;
    REGS.forEach((r, i) => (out[r] = raw[i]));
    return out;
  }

  /** KVM_SET_REGS with the registers given; the others keep their values. */
  setRegs(regs: Partial<VcpuRegisters>): void {
    const o = argOptions(regs, 'regs');
    const given: [number, bigint][] = [];
    for (const key of Object.keys(o)) {
      const i = (REGS as readonly string[]).indexOf(key);
      if (i < 0) throw valueError('regs', `has no register '${key}' (struct kvm_regs has ${REGS.join(', ')})`, key);
      given.push([i, argU64(optionField(o, key, `regs.${key}`), `regs.${key}`)]);
    }
    this.assertOpen();
    try {
      const raw = this.#native.getRegs();
      for (const [i, v] of given) raw[i] = v;
      this.#native.setRegs(raw);
    } catch (e) {
      rethrow(e, `${this.description}: KVM_SET_REGS`);
    }
  }

  /** Real mode: a segment register's selector, and its base (selector * 16 unless given). */
  setSegment(segment: VcpuSegment, selector: number, base?: number): void {
    const which = argOneOf(segment, 'segment', SEGMENTS);
    argInt(selector, 'selector', 0, 0xffff);
    const b = base === undefined ? selector * 16 : argInt(base, 'base', 0, 0xffffffff);
    this.assertOpen();
    try {
      this.#native.setSegment(SEGMENTS.indexOf(which), selector, b);
    } catch (e) {
      rethrow(e, `${this.description}: KVM_SET_SREGS (${which})`);
    }
  }

  /**
   * KVM_RUN until the guest exits to userspace (a port or MMIO access, HLT
   * without an in-kernel irqchip, shutdown) or `timeoutMs` passes (reason
   * 'timeout'). Blocks this thread meanwhile: a VMM runs vCPUs on threads of
   * its own. `exits` counts every exit of this vCPU so far, by kind.
   */
  run(options?: { timeoutMs?: number }): VcpuExit {
    const o = argOptions(options);
    const t = optionField(o, 'timeoutMs', 'options.timeoutMs');
    const timeoutMs = t === undefined ? 0 : argInt(t, 'options.timeoutMs', 1, 0x7fffffff);
    this.assertOpen();
    try {
      return this.#native.run(timeoutMs);
    } catch (e) {
      rethrow(e, `${this.description}: KVM_RUN`);
    }
  }

  /** @internal teardown(), step 5 (with its VM). */
  closeFd(): void {
    this.#native.close();
    this.markClosed();
  }

  protected override release(): void {
    this.#native.close();
  }
}
