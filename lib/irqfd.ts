// An interrupt vector of a passed-through device wired into a VM (KVM_IRQFD):
// the device's eventfd becomes a guest interrupt on `gsi` inside the kernel,
// with no JavaScript in between. With `resample` (level-triggered INTx) KVM
// signals a second eventfd at the guest's EOI, and VFIO unmasks the line on
// it (VFIO_IRQ_SET_ACTION_UNMASK bound to that eventfd): the whole
// assert / EOI / unmask cycle stays in the kernel.
//
// An Irqfd is removed before its vector's eventfd closes (Irq.disable(),
// the device's close) and before its VM closes: teardown.ts does it.

import { rethrow } from './errors';
import type { Irq } from './irq';
import { addKvmUse, deleteKvmUse, type KvmUse } from './kvm-uses';
import { native, type NativeEventFd, type NativeVm } from './native';
import { Resource } from './resource';
import { releaseKvmUses } from './teardown';

/** A device interrupt routed into a KVM guest (KVM_IRQFD): the device's eventfd signals the guest's GSI with no JavaScript in the path. */
export class Irqfd extends Resource implements KvmUse {
  readonly irq: Irq;
  readonly vector: number;
  readonly gsi: number;
  /** Level-triggered with a resample eventfd (INTx). */
  readonly resample: boolean;
  readonly description: string;
  readonly #vm: NativeVm;
  readonly #trigger: NativeEventFd;
  readonly #resample: NativeEventFd | null;
  readonly #owners: readonly object[];

  /** @internal Vm.irqfd() */
  constructor(vm: { readonly description: string }, nativeVm: NativeVm, irq: Irq, vector: number, gsi: number, resample: boolean) {
    super();
    this.irq = irq;
    this.vector = vector;
    this.gsi = gsi;
    this.resample = resample;
    this.#vm = nativeVm;
    this.description = `irqfd of vector ${vector} of ${irq.description} on GSI ${gsi} of ${vm.description}`;
    const trigger = irq.lendToKvm(vector);
    let res: NativeEventFd | null = null;
    try {
      if (resample) res = native().createEventFd();
      nativeVm.irqfd(trigger, gsi, res, false);
    } catch (e) {
      res?.close();
      irq.returnFromKvm(vector);
      rethrow(e, `${vm.description}: KVM_IRQFD for vector ${vector} of ${irq.description} on GSI ${gsi}`, (code) =>
        code === 'EBUSY' ? `GSI ${gsi} already has an irqfd on this eventfd` :
        code === 'EINVAL' ? 'the VM needs an in-kernel irqchip first (Vm.createIrqchip(), KVM_CAP_IRQCHIP); a resample irqfd also needs KVM_CAP_IRQFD_RESAMPLE' : undefined);
    }
    if (res) {
      try {
        irq.unmaskOn(vector, res);
      } catch (e) {
        try {
          nativeVm.irqfd(trigger, gsi, null, true);
        } catch {
          // the resample eventfd's close below ends KVM's use of it too
        }
        res.close();
        irq.returnFromKvm(vector);
        rethrow(e, `${irq.description}: VFIO_IRQ_SET_ACTION_UNMASK on the resample eventfd`, (code) =>
          code === 'EINVAL' ? 'only a maskable, level-triggered index (INTx) can be unmasked by an eventfd' : undefined);
      }
    }
    this.#trigger = trigger;
    this.#resample = res;
    this.#owners = [this, irq, irq.device, vm];
    addKvmUse(this, this.#owners);
  }

  /** @internal KVM_IRQFD with KVM_IRQFD_FLAG_DEASSIGN, then VFIO's unmask eventfd goes. */
  removeNow(): void {
    if (this.closed) return;
    try {
      this.#vm.irqfd(this.#trigger, this.gsi, null, true);
    } catch (e) {
      rethrow(e, `${this.description}: KVM_IRQFD deassign`);
    }
    deleteKvmUse(this, this.#owners);
    this.markClosed();
    if (this.#resample) {
      try {
        this.irq.unmaskOn(this.vector, null);
        // A line KVM left masked would never fire for JS again.
        this.irq.unmask(this.vector);
      } catch {
        // the device is closing: its fd's close ends all of it
      }
      this.#resample.close();
    }
    this.irq.returnFromKvm(this.vector);
  }

  protected override release(): void {
    releaseKvmUses(this, 'close', [this]);
  }
}
