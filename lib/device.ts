// A device fd from VFIO_GROUP_GET_DEVICE_FD: regions, interrupts, reset.
// It owns its region mmaps and interrupt eventfds and releases them before
// its fd (a BAR mmap would otherwise keep the device open).

import { EventEmitter } from 'node:events';
import { argBool, argInt, argOneOf, typeError } from './args';
import { RuleCode, VfioError, rethrow } from './errors';
import type { Group } from './group';
import type { Iommu } from './iommu';
import { Irq } from './irq';
import { readMsixCapability, type MsixCapability } from './msix';
import { native, type DeviceInfoRaw, type NativeDevice, type NativeEventFd, type NativeRegionMapping } from './native';
import { Region } from './region';
import { hotReset, hotResetInfo, type HotResetDevice } from './reset';
import { Resource } from './resource';
import { teardown } from './teardown';

/**
 * The native handles a device's children own, for the safety net: when a
 * dropped device is collected, its interrupts' eventfds and BAR mmaps go
 * with its fd (an mmap would keep the device open). Handles only, never a
 * wrapper, so nothing here keeps the device alive.
 */
export interface DeviceNatives {
  readonly eventfds: Set<NativeEventFd>;
  readonly mmaps: Set<NativeRegionMapping>;
}

/** VFIO_DEVICE_GET_INFO as the kernel reports it. */
export interface DeviceInfo {
  flags: number;
  numRegions: number;
  numIrqs: number;
  /** VFIO_DEVICE_FLAGS_PCI */
  pci: boolean;
  /** VFIO_DEVICE_FLAGS_RESET: VFIO_DEVICE_RESET is supported. */
  resettable: boolean;
}

export interface DeviceEvents {
  /**
   * The kernel asks for the device back (VFIO_PCI_REQ_IRQ_INDEX): someone is
   * unbinding it from vfio-pci, and that waits until the device is closed.
   * `count` is how many requests arrived since the last event.
   */
  'release-requested': [count: number];
}

type DeviceEvent = keyof DeviceEvents;
const deviceEvents: readonly DeviceEvent[] = ['release-requested'];

/** A VFIO device fd: its regions (BARs, config space), interrupts and resets. */
export class Device extends Resource {
  readonly group: Group;
  /** The device name as VFIO knows it, e.g. '0000:00:04.0'. */
  readonly name: string;
  readonly description: string;
  readonly info: DeviceInfo;
  readonly #native: NativeDevice;
  readonly #regions = new Map<number, Region>();
  readonly #irqs = new Map<number, Irq>();
  readonly #natives: DeviceNatives = { eventfds: new Set(), mmaps: new Set() };
  readonly #events = new EventEmitter<DeviceEvents>();
  #msix: MsixCapability | null | undefined;

  private constructor(group: Group, name: string, handle: NativeDevice, raw: DeviceInfoRaw) {
    super();
    this.group = group;
    this.name = name;
    this.#native = handle;
    this.description = `device ${name}`;
    const c = native().constants;
    this.info = {
      flags: raw.flags,
      numRegions: raw.numRegions,
      numIrqs: raw.numIrqs,
      pci: (raw.flags & c.VFIO_DEVICE_FLAGS_PCI) !== 0,
      resettable: (raw.flags & c.VFIO_DEVICE_FLAGS_RESET) !== 0,
    };
    const natives = this.#natives;
    this.track(() => {
      const open = handle.fd >= 0;
      closeNatives(natives);
      handle.close();
      return open;
    });
  }

  /** @internal Group.openDevice(): takes the fd, closes it if the device cannot be described. */
  static create(group: Group, name: string, handle: NativeDevice): Device {
    let raw: DeviceInfoRaw;
    try {
      raw = handle.getInfo();
    } catch (e) {
      handle.close();
      rethrow(e, `device ${name}: reading its info`);
    }
    return new Device(group, name, handle, raw);
  }

  /** Region `index` (VFIO_PCI_BAR0_REGION_INDEX.., VFIO_PCI_CONFIG_REGION_INDEX). */
  region(index: number): Region {
    argInt(index, 'index', 0, 0xffffffff);
    this.assertOpen();
    if (index >= this.info.numRegions) {
      throw new VfioError(RuleCode.REGION_RANGE, `${this.description} has regions 0..${this.info.numRegions - 1}, not ${String(index)}`);
    }
    let region = this.#regions.get(index);
    if (!region) {
      let raw;
      try {
        raw = this.#native.getRegionInfo(index);
      } catch (e) {
        rethrow(e, `${this.description}: reading region ${index}`);
      }
      region = new Region(this, this.#native, raw, this.#natives);
      this.#regions.set(index, region);
    }
    return region;
  }

  /** PCI BAR n (0..5). */
  bar(n: number): Region {
    argInt(n, 'n', 0, 5);
    return this.region(native().constants.VFIO_PCI_BAR0_REGION_INDEX + n);
  }

  /** PCI configuration space. */
  get config(): Region {
    return this.region(native().constants.VFIO_PCI_CONFIG_REGION_INDEX);
  }

  /** Interrupt index `index` (VFIO_PCI_INTX/MSI/MSIX_IRQ_INDEX...). */
  irq(index: number): Irq {
    argInt(index, 'index', 0, 0xffffffff);
    this.assertOpen();
    if (index >= this.info.numIrqs) {
      throw new VfioError(RuleCode.IRQ_RANGE, `${this.description} has interrupt indexes 0..${this.info.numIrqs - 1}, not ${String(index)}`);
    }
    let irq = this.#irqs.get(index);
    if (!irq) {
      let raw;
      try {
        raw = this.#native.getIrqInfo(index);
      } catch (e) {
        rethrow(e, `${this.description}: reading interrupt index ${index}`);
      }
      irq = new Irq(this, this.#native, raw, this.#natives);
      this.#irqs.set(index, irq);
    }
    return irq;
  }

  /** The MSI interrupt index of a PCI device. */
  get msi(): Irq {
    return this.irq(native().constants.VFIO_PCI_MSI_IRQ_INDEX);
  }

  /** The MSI-X interrupt index of a PCI device. */
  get msix(): Irq {
    return this.irq(native().constants.VFIO_PCI_MSIX_IRQ_INDEX);
  }

  /**
   * The MSI-X capability from config space (vector count, where the table
   * and PBA sit), read once; null when the device has none.
   */
  get msixCapability(): MsixCapability | null {
    this.assertOpen();
    if (this.#msix === undefined) this.#msix = this.info.pci ? readMsixCapability(this) : null;
    return this.#msix;
  }

  /** The legacy INTx interrupt of a PCI device. */
  get intx(): Irq {
    return this.irq(native().constants.VFIO_PCI_INTX_IRQ_INDEX);
  }

  /** Sets or clears Bus Master Enable (PCI command register bit 2); DMA needs it. */
  setBusMaster(enabled: boolean): void {
    argBool(enabled, 'enabled');
    const cfg = this.config;
    const command = cfg.read16(4);
    cfg.write16(4, enabled ? command | 0x4 : command & ~0x4);
  }

  /** VFIO_DEVICE_RESET */
  reset(): void {
    this.assertOpen();
    if (!this.info.resettable) {
      throw new VfioError(RuleCode.UNSUPPORTED, `${this.description} does not support VFIO_DEVICE_RESET (no reset method: FLR, PM or bus reset)`);
    }
    try {
      this.#native.reset();
    } catch (e) {
      rethrow(e, `${this.description}: reset`);
    }
  }

  /**
   * The devices a PCI hot reset (secondary bus or slot reset) of this device
   * would hit, and their groups (VFIO_DEVICE_GET_PCI_HOT_RESET_INFO).
   */
  hotResetInfo(): HotResetDevice[] {
    this.assertOpen();
    return hotResetInfo(this, this.#native);
  }

  /**
   * PCI hot reset (VFIO_DEVICE_PCI_HOT_RESET). `groups` proves ownership of
   * every group the reset hits (default: this device's own group); refused
   * before the ioctl, naming it, when one is missing.
   */
  hotReset(groups: readonly Group[] = [this.group]): void {
    this.assertOpen();
    hotReset(this, this.#native, groups);
  }

  /**
   * Listen for 'release-requested'. The first listener wires the device's
   * request interrupt (VFIO_PCI_REQ_IRQ_INDEX) to an eventfd, which closes
   * with the device; it does not keep the process alive by itself.
   */
  on<E extends DeviceEvent>(event: E, listener: (...args: DeviceEvents[E]) => void): this {
    this.#listen(event, listener);
    this.#events.on(event, listener as never);
    return this;
  }

  /** Like `on`, for one event only. */
  once<E extends DeviceEvent>(event: E, listener: (...args: DeviceEvents[E]) => void): this {
    this.#listen(event, listener);
    this.#events.once(event, listener as never);
    return this;
  }

  /** Removes a listener added with `on` or `once`. */
  off<E extends DeviceEvent>(event: E, listener: (...args: DeviceEvents[E]) => void): this {
    argOneOf(event, 'event', deviceEvents);
    this.#events.off(event, listener as never);
    return this;
  }

  #listen(event: unknown, listener: unknown): void {
    argOneOf(event, 'event', deviceEvents);
    if (typeof listener !== 'function') throw typeError('listener', 'a function', listener);
    this.assertOpen();
    const req = this.irq(native().constants.VFIO_PCI_REQ_IRQ_INDEX);
    if (req.count === 0) {
      throw new VfioError(RuleCode.UNSUPPORTED, `${this.description} has no request interrupt (VFIO_PCI_REQ_IRQ_INDEX count 0): the kernel cannot ask for it back`);
    }
    if (req.enabled > 0) return;
    req.enable(1);
    req.unref();
    req.on('interrupt', (_vector, n) => this.#events.emit('release-requested', n));
  }

  /** @internal teardown()'s refusal: a BAR mmap another IOMMU still maps for peer-to-peer DMA. */
  assertNoPeerUsers(leaving: Iommu | null): void {
    for (const region of this.#regions.values()) region.assertNoUsersBeyond(leaving);
  }

  /** @internal Regions and IRQs check their device is open. */
  assertUsable(): void {
    this.assertOpen();
  }

  /**
   * @internal teardown(), step 1: interrupts, BAR mmaps, then the fd. Never
   * fails: whatever SET_IRQS answers, closing the device fd disables its
   * interrupts in the kernel.
   */
  closeNow(): void {
    if (this.closed) return;
    for (const irq of this.#irqs.values()) irq.deviceClosing();
    for (const region of this.#regions.values()) region.deviceClosing();
    closeNatives(this.#natives);
    this.#native.close();
    this.#events.removeAllListeners();
    this.markClosed();
    this.group.deviceClosed(this);
  }

  protected override release(): void {
    teardown({ subject: this, verb: 'close', devices: [this], iommu: null, kvm: [], unset: [], fds: [] });
  }
}

function closeNatives(natives: DeviceNatives): void {
  for (const m of natives.mmaps) m.close();
  natives.mmaps.clear();
  for (const fd of natives.eventfds) fd.close();
  natives.eventfds.clear();
}
