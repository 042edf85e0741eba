// One interrupt index of a device (INTx, MSI, MSI-X...). Each enabled vector
// signals its own eventfd, watched on the libuv loop; an 'interrupt' event
// (vector, count) is emitted on the JS thread. `count` is how many times the
// vector fired since the last event (eventfd counters coalesce).

import { EventEmitter } from 'node:events';
import { argInt } from './args';
import type { Device, DeviceNatives } from './device';
import { RuleCode, VfioError, rethrow } from './errors';
import { native, type IrqInfoRaw, type NativeDevice, type NativeEventFd } from './native';
import { kvmUsesOf } from './kvm-uses';
import { releaseKvmUses } from './teardown';

export interface IrqEvents {
  interrupt: [vector: number, count: number];
}

interface Waiter {
  vector: number;
  resolve: (count: number) => void;
  reject: (e: Error) => void;
  timer: NodeJS.Timeout | undefined;
}

/** One interrupt vector of a device (INTx, MSI or MSI-X), delivered through an eventfd: `wait()` for the next one or listen to its events. */
export class Irq extends EventEmitter<IrqEvents> implements Disposable {
  readonly device: Device;
  readonly index: number;
  /** Vectors the index has (MSI/MSI-X: the most that can be enabled). */
  readonly count: number;
  readonly flags: number;
  readonly maskable: boolean;
  /** INTx: the kernel masks the line on each interrupt; unmask() after handling it. */
  readonly automasked: boolean;
  readonly description: string;
  readonly #native: NativeDevice;
  readonly #natives: DeviceNatives;
  // One per enabled vector; null where disableVector() unwired it.
  #eventfds: (NativeEventFd | null)[] = [];
  #totals: number[] = [];
  #waiters: Waiter[] = [];
  #ref = true;

  /** @internal Created by Device.irq(). */
  constructor(device: Device, handle: NativeDevice, raw: IrqInfoRaw, natives: DeviceNatives) {
    super();
    const c = native().constants;
    this.device = device;
    this.#native = handle;
    this.#natives = natives;
    this.index = raw.index;
    this.count = raw.count;
    this.flags = raw.flags;
    this.maskable = (raw.flags & c.VFIO_IRQ_INFO_MASKABLE) !== 0;
    this.automasked = (raw.flags & c.VFIO_IRQ_INFO_AUTOMASKED) !== 0;
    this.description = `interrupt index ${raw.index} of ${device.description}`;
  }

  /** Vectors the index is enabled with (0 when disabled), wired or not (see disableVector). */
  get enabled(): number {
    return this.#eventfds.length;
  }

  /** Interrupts seen on `vector` since enable(). */
  total(vector = 0): number {
    argInt(vector, 'vector', 0, 0xffffffff);
    return this.#totals[vector] ?? 0;
  }

  /** Wire `vectors` vectors (default 1) to eventfds: VFIO_DEVICE_SET_IRQS, DATA_EVENTFD | ACTION_TRIGGER. */
  enable(vectors = 1): void {
    argInt(vectors, 'vectors', 1, 0xffffffff);
    this.device.assertUsable();
    if (this.#eventfds.length > 0) {
      throw new VfioError(RuleCode.ORDER, `${this.description} is already enabled with ${this.#eventfds.length} vector(s); disable() it first`);
    }
    if (vectors > this.count) {
      throw new VfioError(RuleCode.IRQ_RANGE, `${this.description} has ${this.count} vector(s); cannot enable ${vectors}`);
    }
    const fds: NativeEventFd[] = [];
    try {
      for (let v = 0; v < vectors; v++) fds.push(native().createEventFd());
      this.#native.setIrqsEventfds(this.index, 0, fds);
    } catch (e) {
      fds.forEach((fd) => fd.close());
      rethrow(e, `${this.description}: enabling ${vectors} vector(s)`, (code) =>
        code === 'EINVAL' ? 'the device may not support this interrupt type or vector count (check the irq count, and that MSI/MSI-X is not already in use)' : undefined,
      );
    }
    this.#eventfds = fds;
    this.#totals = fds.map(() => 0);
    fds.forEach((fd, vector) => this.#watch(fd, vector));
  }

  #watch(fd: NativeEventFd, vector: number): void {
    this.#natives.eventfds.add(fd);
    fd.start(Irq.#listener(new WeakRef(this), vector));
    if (!this.#ref) fd.unref();
  }

  /** Whether `vector` signals an eventfd now (enabled, and not unwired by disableVector). */
  vectorEnabled(vector: number): boolean {
    argInt(vector, 'vector', 0, 0xffffffff);
    return (this.#eventfds[vector] ?? null) !== null;
  }

  /**
   * Unwire one vector of a live index (SET_IRQS DATA_EVENTFD with fd -1 on
   * it): the other vectors keep firing; its eventfd closes and its waiters
   * are rejected. enableVector() wires it again. Refused with nothing
   * changed if the kernel refuses.
   */
  disableVector(vector: number): void {
    this.#checkLive(vector, 'disableVector');
    const fd = this.#eventfds[vector];
    if (fd === null) return;
    // An irqfd holds this eventfd: KVM would keep a vector nobody can see.
    const lent = kvmUsesOf(this).find((u) => (u as { vector?: unknown }).vector === vector);
    if (lent) throw new VfioError(RuleCode.ORDER, `${this.description}: vector ${vector} is wired to a VM (${lent.description}); remove that first`);
    try {
      this.#native.setIrqsEventfds(this.index, vector, [null]);
    } catch (e) {
      rethrow(e, `${this.description}: disabling vector ${vector}`);
    }
    this.#eventfds[vector] = null;
    fd.close();
    this.#natives.eventfds.delete(fd);
    this.#rejectWaiters((w) => w.vector === vector, () => new VfioError(RuleCode.ORDER, `${this.description}: vector ${vector} was disabled while waiting for it`));
  }

  /** Wire one vector of a live index to a fresh eventfd (after disableVector), the others untouched. */
  enableVector(vector: number): void {
    this.#checkLive(vector, 'enableVector');
    if (this.#eventfds[vector] !== null) return;
    const fd = native().createEventFd();
    try {
      this.#native.setIrqsEventfds(this.index, vector, [fd]);
    } catch (e) {
      fd.close();
      rethrow(e, `${this.description}: enabling vector ${vector}`);
    }
    this.#eventfds[vector] = fd;
    this.#watch(fd, vector);
  }

  #checkLive(vector: number, what: string): void {
    argInt(vector, 'vector', 0, 0xffffffff);
    this.device.assertUsable();
    if (this.#eventfds.length === 0) {
      throw new VfioError(RuleCode.ORDER, `${this.description} is not enabled: enable(n) it first, then ${what}() one of its n vectors`);
    }
    if (vector >= this.#eventfds.length) {
      throw new VfioError(
        RuleCode.IRQ_RANGE,
        `${this.description}: vector ${vector} is outside the ${this.#eventfds.length} it was enabled with (the kernel cannot grow a live index: disable() and enable() with more)`,
      );
    }
  }

  // A watched eventfd is a GC root, and a dropped device must stay
  // collectable (its safety net then closes these eventfds): the callback
  // reaches the Irq only weakly. Made in a static method so that the
  // closure's scope holds no `this` either.
  static #listener(self: WeakRef<Irq>, vector: number): (n: number) => void {
    return (n) => {
      const irq = self.deref();
      if (irq) irq.#fired(vector, n);
    };
  }

  /**
   * Resolves with the count of the next interrupt on `vector`. Rejects with
   * ERR_VFIO_TIMEOUT after `timeoutMs` (if given; the timer keeps the process
   * alive meanwhile), and with ERR_VFIO_CLOSED or ERR_VFIO_ORDER when the
   * device closes or the index is disabled first.
   */
  wait(vector = 0, timeoutMs?: number): Promise<number> {
    try {
      argInt(vector, 'vector', 0, 0xffffffff);
      if (timeoutMs !== undefined) argInt(timeoutMs, 'timeoutMs', 0, 0x7fffffff);
      this.device.assertUsable();
      if (this.#eventfds.length === 0) {
        throw new VfioError(RuleCode.ORDER, `${this.description} is not enabled: nothing can arrive; enable() it first`);
      }
      if ((this.#eventfds[vector] ?? null) === null) {
        throw new VfioError(RuleCode.IRQ_RANGE, `${this.description}: vector ${vector} is not enabled (of vectors 0..${this.#eventfds.length - 1}); enableVector(${vector}) first`);
      }
    } catch (e) {
      return Promise.reject(e);
    }
    return new Promise<number>((resolve, reject) => {
      const w: Waiter = { vector, resolve, reject, timer: undefined };
      if (timeoutMs !== undefined) {
        w.timer = setTimeout(() => {
          this.#dropWaiter(w);
          reject(new VfioError(RuleCode.TIMEOUT, `${this.description}: no interrupt on vector ${vector} within ${timeoutMs} ms`));
        }, timeoutMs);
      }
      this.#waiters.push(w);
    });
  }

  /** VFIO_IRQ_SET_ACTION_MASK on [start, start+count). */
  mask(start = 0, count = 1): void {
    this.#action(native().constants.VFIO_IRQ_SET_ACTION_MASK, start, count, 'mask');
  }

  /** VFIO_IRQ_SET_ACTION_UNMASK (INTx: after handling an automasked interrupt). */
  unmask(start = 0, count = 1): void {
    this.#action(native().constants.VFIO_IRQ_SET_ACTION_UNMASK, start, count, 'unmask');
  }

  /** Fire the vectors from software (DATA_NONE | ACTION_TRIGGER): tests the path to the eventfd. */
  trigger(start = 0, count = 1): void {
    this.#action(native().constants.VFIO_IRQ_SET_ACTION_TRIGGER, start, count, 'trigger');
  }

  /**
   * Tear the index down (ACTION_TRIGGER, count 0) and close its eventfds.
   * If the kernel refuses, nothing changed: the vectors stay wired.
   */
  disable(): void {
    if (this.#eventfds.length === 0) return;
    this.device.assertUsable();
    releaseKvmUses(this, 'disable', [this]);
    try {
      this.#native.setIrqsNone(this.index, 0, 0, native().constants.VFIO_IRQ_SET_ACTION_TRIGGER);
    } catch (e) {
      rethrow(e, `${this.description}: disabling it`);
    }
    this.#dropEventfds(() => new VfioError(RuleCode.ORDER, `${this.description} was disabled while waiting for an interrupt`));
  }

  /** Let the process exit even while this interrupt is enabled. */
  unref(): this {
    this.#ref = false;
    this.#eventfds.forEach((fd) => fd?.unref());
    return this;
  }

  /** Keeps the process alive while this interrupt is watched (the default); undoes `unref()`. */
  ref(): this {
    this.#ref = true;
    this.#eventfds.forEach((fd) => fd?.ref());
    return this;
  }

  /** Stops watching, as `disable()` does. */
  [Symbol.dispose](): void {
    if (!this.device.closed) this.disable();
  }

  /**
   * @internal Device teardown: its fd closes next, which disables the index
   * in the kernel whatever SET_IRQS answers now; waiters learn why.
   */
  deviceClosing(): void {
    if (this.#eventfds.length === 0) return;
    try {
      this.#native.setIrqsNone(this.index, 0, 0, native().constants.VFIO_IRQ_SET_ACTION_TRIGGER);
    } catch {
      // the device fd's close disables it
    }
    this.#dropEventfds(() => new VfioError(RuleCode.CLOSED, `${this.device.description} was closed while waiting for an interrupt on ${this.description}`));
    this.removeAllListeners();
  }

  /**
   * @internal Vm.irqfd(): the vector's eventfd for KVM to take. JS stops
   * watching it meanwhile (KVM consumes each signal; no 'interrupt' events).
   */
  lendToKvm(vector: number): NativeEventFd {
    this.device.assertUsable();
    const fd = this.#eventfds[vector];
    if (!fd) {
      throw new VfioError(RuleCode.ORDER, `${this.description}: vector ${vector} is not enabled (${this.#eventfds.length} are); enable() it before handing it to a VM`);
    }
    fd.stop();
    return fd;
  }

  /** @internal The irqfd is gone: JS watches the vector again. */
  returnFromKvm(vector: number): void {
    const fd = this.#eventfds[vector];
    if (!fd || this.device.closed) return;
    fd.start(Irq.#listener(new WeakRef(this), vector));
    if (!this.#ref) fd.unref();
  }

  /**
   * @internal INTx with resample: VFIO_IRQ_SET_ACTION_UNMASK bound to
   * `eventfd` (KVM signals it at the guest's EOI), or unbound with null.
   */
  unmaskOn(vector: number, eventfd: NativeEventFd | null): void {
    this.#native.setIrqsEventfds(this.index, vector, [eventfd], native().constants.VFIO_IRQ_SET_ACTION_UNMASK);
  }

  #fired(vector: number, n: number): void {
    this.#totals[vector] += n;
    if (this.#waiters.length > 0) {
      const waiting = this.#waiters;
      this.#waiters = [];
      for (const w of waiting) {
        if (w.vector !== vector) {
          this.#waiters.push(w);
          continue;
        }
        if (w.timer) clearTimeout(w.timer);
        w.resolve(n);
      }
    }
    this.emit('interrupt', vector, n);
  }

  #dropWaiter(w: Waiter): void {
    const i = this.#waiters.indexOf(w);
    if (i >= 0) this.#waiters.splice(i, 1);
  }

  #dropEventfds(why: () => Error): void {
    const fds = this.#eventfds;
    this.#eventfds = [];
    for (const fd of fds) {
      if (!fd) continue;
      fd.close();
      this.#natives.eventfds.delete(fd);
    }
    this.#rejectWaiters(() => true, why);
  }

  #rejectWaiters(which: (w: Waiter) => boolean, why: () => Error): void {
    const waiting = this.#waiters;
    this.#waiters = waiting.filter((w) => !which(w));
    for (const w of waiting) {
      if (!which(w)) continue;
      if (w.timer) clearTimeout(w.timer);
      w.reject(why());
    }
  }

  #checkVector(start: number, count: number): void {
    argInt(start, 'start', 0, 0xffffffff);
    argInt(count, 'count', 1, 0xffffffff);
    const limit = this.#eventfds.length || this.count;
    if (start + count > limit) {
      throw new VfioError(RuleCode.IRQ_RANGE, `${this.description}: vectors ${start}+${count} are outside 0..${limit - 1}`);
    }
  }

  #action(action: number, start: number, count: number, what: string): void {
    this.#checkVector(start, count);
    this.device.assertUsable();
    if ((what === 'mask' || what === 'unmask') && !this.maskable) {
      throw new VfioError(RuleCode.UNSUPPORTED, `${this.description} is not maskable (no VFIO_IRQ_INFO_MASKABLE)`);
    }
    try {
      this.#native.setIrqsNone(this.index, start, count, action);
    } catch (e) {
      rethrow(e, `${this.description}: ${what} vectors ${start}+${count}`);
    }
  }
}
