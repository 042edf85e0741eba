// One interrupt index of a device (INTx, MSI, MSI-X...). Each enabled vector
// signals its own eventfd, watched on the libuv loop; an 'interrupt' event
// (vector, count) is emitted on the JS thread. `count` is how many times the
// vector fired since the last event (eventfd counters coalesce).

import { EventEmitter, once } from 'node:events';
import type { Device } from './device';
import { RuleCode, VfioError, rethrow } from './errors';
import { native, type IrqInfoRaw, type NativeDevice, type NativeEventFd } from './native';

export interface IrqEvents {
  interrupt: [vector: number, count: number];
}

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
  #eventfds: NativeEventFd[] = [];
  #totals: number[] = [];
  #ref = true;

  /** @internal Created by Device.irq(). */
  constructor(device: Device, handle: NativeDevice, raw: IrqInfoRaw) {
    super();
    const c = native().constants;
    this.device = device;
    this.#native = handle;
    this.index = raw.index;
    this.count = raw.count;
    this.flags = raw.flags;
    this.maskable = (raw.flags & c.VFIO_IRQ_INFO_MASKABLE) !== 0;
    this.automasked = (raw.flags & c.VFIO_IRQ_INFO_AUTOMASKED) !== 0;
    this.description = `interrupt index ${raw.index} of ${device.description}`;
  }

  /** Vectors currently enabled (0 when disabled). */
  get enabled(): number {
    return this.#eventfds.length;
  }

  /** Interrupts seen on `vector` since enable(). */
  total(vector = 0): number {
    return this.#totals[vector] ?? 0;
  }

  /** Wire `vectors` vectors (default 1) to eventfds: VFIO_DEVICE_SET_IRQS, DATA_EVENTFD | ACTION_TRIGGER. */
  enable(vectors = 1): void {
    this.device.assertUsable();
    if (this.#eventfds.length > 0) {
      throw new VfioError(RuleCode.ORDER, `${this.description} is already enabled with ${this.#eventfds.length} vector(s); disable() it first`);
    }
    if (!Number.isInteger(vectors) || vectors < 1 || vectors > this.count) {
      throw new VfioError(RuleCode.IRQ_RANGE, `${this.description} has ${this.count} vector(s); cannot enable ${String(vectors)}`);
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
    fds.forEach((fd, vector) => {
      fd.start((n) => {
        this.#totals[vector] += n;
        this.emit('interrupt', vector, n);
      });
      if (!this.#ref) fd.unref();
    });
  }

  /** Resolves with the count of the next interrupt on `vector` (rejects after timeoutMs, if given). */
  async wait(vector = 0, timeoutMs?: number): Promise<number> {
    this.#checkVector(vector, 1);
    const signal = timeoutMs === undefined ? undefined : AbortSignal.timeout(timeoutMs);
    for (;;) {
      let args: unknown[];
      try {
        args = await once(this, 'interrupt', { signal });
      } catch (e) {
        if (signal?.aborted) {
          throw new VfioError(RuleCode.TIMEOUT, `${this.description}: no interrupt on vector ${vector} within ${timeoutMs} ms`);
        }
        throw e;
      }
      if (args[0] === vector) return args[1] as number;
    }
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

  /** Tear the index down (ACTION_TRIGGER, count 0) and close its eventfds. */
  disable(): void {
    if (this.#eventfds.length === 0) return;
    const fds = this.#eventfds;
    this.#eventfds = [];
    try {
      if (!this.device.closed) this.#native.setIrqsNone(this.index, 0, 0, native().constants.VFIO_IRQ_SET_ACTION_TRIGGER);
    } catch (e) {
      rethrow(e, `${this.description}: disabling it`);
    } finally {
      fds.forEach((fd) => fd.close());
    }
  }

  /** Let the process exit even while this interrupt is enabled. */
  unref(): this {
    this.#ref = false;
    this.#eventfds.forEach((fd) => fd.unref());
    return this;
  }

  ref(): this {
    this.#ref = true;
    this.#eventfds.forEach((fd) => fd.ref());
    return this;
  }

  /** @internal Device.close() */
  close(): void {
    this.disable();
    this.removeAllListeners();
  }

  [Symbol.dispose](): void {
    this.disable();
  }

  #checkVector(start: number, count: number): void {
    const limit = this.#eventfds.length || this.count;
    if (!Number.isInteger(start) || !Number.isInteger(count) || start < 0 || count < 1 || start + count > limit) {
      throw new VfioError(RuleCode.IRQ_RANGE, `${this.description}: vectors ${String(start)}+${String(count)} are outside 0..${limit - 1}`);
    }
  }

  #action(action: number, start: number, count: number, what: string): void {
    this.device.assertUsable();
    this.#checkVector(start, count);
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
