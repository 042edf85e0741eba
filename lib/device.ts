// A device fd: from VFIO_GROUP_GET_DEVICE_FD, or a device cdev
// (/dev/vfio/devices/vfioN) bound to an iommufd and attached to an IOAS.
// Regions, interrupts, reset. It owns its region mmaps and interrupt
// eventfds and releases them before its fd (a BAR mmap would otherwise keep
// the device open). A cdev device refuses every access until it is bound
// and attached, each missing step with its own code.

import { EventEmitter } from 'node:events';
import { readdirSync, readlinkSync } from 'node:fs';
import { argBool, argInstance, argInt, argName, argOneOf, argOptions, optionField, typeError } from './args';
import { RuleCode, VfioError, rethrow } from './errors';
import type { Group } from './group';
import { cdevOpenHint } from './hints';
import type { Iommu } from './iommu';
import { Ioas } from './ioas';
import { IommuFd } from './iommufd';
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

/** Options of {@link Device.openCdev}. */
export interface CdevOptions {
  /** Where the device nodes live; default '/dev'. */
  devRoot?: string;
  /** Where sysfs is; default '/sys' (the device's vfio-dev entry names its cdev). */
  sysfsRoot?: string;
}

/** A device cdev's steps: opened, bound to an iommufd, attached to an IOAS. */
interface CdevState {
  readonly path: string;
  iommufd: IommuFd | null;
  /** Its id inside the iommufd (VFIO_DEVICE_BIND_IOMMUFD's out_devid). */
  devid: number;
  ioas: Ioas | null;
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
  /** The group it was opened through; null for a device opened by its cdev. */
  readonly group: Group | null;
  /** The device name as VFIO knows it, e.g. '0000:00:04.0'. */
  readonly name: string;
  readonly description: string;
  #info: DeviceInfo | null;
  readonly #cdev: CdevState | null;
  readonly #native: NativeDevice;
  readonly #regions = new Map<number, Region>();
  readonly #irqs = new Map<number, Irq>();
  readonly #natives: DeviceNatives = { eventfds: new Set(), mmaps: new Set() };
  readonly #events = new EventEmitter<DeviceEvents>();
  #msix: MsixCapability | null | undefined;

  private constructor(group: Group | null, name: string, handle: NativeDevice, raw: DeviceInfoRaw | null, cdevPath?: string) {
    super();
    this.group = group;
    this.name = name;
    this.#native = handle;
    this.description = `device ${name}`;
    this.#info = raw && describe(raw);
    this.#cdev = cdevPath === undefined ? null : { path: cdevPath, iommufd: null, devid: -1, ioas: null };
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

  /**
   * Opens PCI device `address` by its cdev (/dev/vfio/devices/vfioN, named
   * by sysfs), Linux 6.6+. It can do nothing yet: register it with KVM if a
   * VM will use it, then bind(iommufd), then attach(ioas).
   */
  static openCdev(address: string, options?: CdevOptions): Device {
    argName(address, 'address');
    const o = argOptions(options);
    const roots: CdevOptions = {};
    for (const key of ['devRoot', 'sysfsRoot'] as const) {
      const v = optionField(o, key, `options.${key}`);
      if (v === undefined) continue;
      if (typeof v !== 'string') throw typeError(`options.${key}`, 'of type string', v);
      roots[key] = v;
    }
    const path = cdevPath(address, roots);
    let handle: NativeDevice;
    try {
      handle = native().openDeviceCdev(path);
    } catch (e) {
      rethrow(e, `opening the cdev of ${address}`, (code) => cdevOpenHint(code, path, address), path);
    }
    return new Device(null, address, handle, null, path);
  }

  /** The cdev path a device was opened by, null for a device opened through its group. */
  get cdev(): string | null {
    return this.#cdev?.path ?? null;
  }

  /** The iommufd a cdev device is bound to. */
  get iommufd(): IommuFd | null {
    return this.#cdev?.iommufd ?? null;
  }

  /** The IOAS a cdev device's DMA goes through, null while detached. */
  get ioas(): Ioas | null {
    return this.#cdev?.ioas ?? null;
  }

  /** VFIO_DEVICE_GET_INFO, read when the device opened (a cdev device: when it was bound). */
  get info(): DeviceInfo {
    if (this.#info !== null) return this.#info;
    this.assertUsable();
    try {
      this.#info = describe(this.#native.getInfo());
    } catch (e) {
      rethrow(e, `${this.description}: reading its info`);
    }
    return this.#info;
  }

  /**
   * VFIO_DEVICE_BIND_IOMMUFD: the device's DMA belongs to `iommufd` from
   * now on (blocked until attach()). A device the VM will use is registered
   * with KVM before this (KvmVfioDevice.add), as a group is before its
   * devices open.
   */
  bind(iommufd: IommuFd): void {
    const fd = argInstance(iommufd, 'iommufd', IommuFd);
    this.assertOpen();
    const cdev = this.#requireCdev('bind');
    if (cdev.iommufd) {
      throw new VfioError(RuleCode.ORDER, `${this.description} is already bound to ${cdev.iommufd.description}; a device binds once (close and reopen it for another iommufd)`);
    }
    let devid: number;
    try {
      devid = this.#native.bindIommufd(fd.handle());
    } catch (e) {
      rethrow(e, `${this.description}: binding it to ${fd.description}`, (code) =>
        code === 'EBUSY' ? 'the device is in use through its group or another cdev open' : undefined,
      );
    }
    cdev.iommufd = fd;
    cdev.devid = devid;
    fd.deviceBound(this);
  }

  /**
   * VFIO_DEVICE_ATTACH_IOMMUFD_PT: the device's DMA goes through `ioas`
   * (of the iommufd it is bound to). Attached to another IOAS, it moves:
   * the kernel replaces the old attachment in one step.
   */
  attach(ioas: Ioas): void {
    const to = argInstance(ioas, 'ioas', Ioas);
    this.assertOpen();
    const cdev = this.#requireCdev('attach');
    if (!cdev.iommufd) throw this.#notBound(`attach it to ${to.description}`);
    if (to.iommufd !== cdev.iommufd) {
      throw new VfioError(RuleCode.ORDER, `${this.description} is bound to ${cdev.iommufd.description}; ${to.description} belongs to another iommufd`);
    }
    to.assertUsable();
    if (cdev.ioas === to) return;
    try {
      this.#native.attachIommufdPt(to.id);
    } catch (e) {
      rethrow(e, `${this.description}: attaching it to ${to.description}`, (code) =>
        code === 'EINVAL' || code === 'EADDRINUSE'
          ? `a mapping of ${to.description} lies where the device has a reserved IOVA range, or an allowed range excludes one; unmap it or pick other IOVAs`
          : undefined,
      );
    }
    const from = cdev.ioas;
    cdev.ioas = to;
    from?.deviceDetached(this);
    to.deviceAttached(this);
  }

  /** VFIO_DEVICE_DETACH_IOMMUFD_PT: DMA blocked, and every access refused, until attached again. */
  detach(): void {
    this.assertOpen();
    const cdev = this.#requireCdev('detach');
    if (!cdev.ioas) return;
    try {
      this.#native.detachIommufdPt();
    } catch (e) {
      rethrow(e, `${this.description}: detaching it from ${cdev.ioas.description}`);
    }
    const from = cdev.ioas;
    cdev.ioas = null;
    from.deviceDetached(this);
  }

  /** Region `index` (VFIO_PCI_BAR0_REGION_INDEX.., VFIO_PCI_CONFIG_REGION_INDEX). */
  region(index: number): Region {
    argInt(index, 'index', 0, 0xffffffff);
    this.assertUsable();
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
    this.assertUsable();
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
    this.assertUsable();
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
    this.assertUsable();
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
    this.assertUsable();
    return hotResetInfo(this, this.#native);
  }

  /**
   * PCI hot reset (VFIO_DEVICE_PCI_HOT_RESET). `groups` proves ownership of
   * every group the reset hits (default: this device's own group); refused
   * before the ioctl, naming it, when one is missing. A cdev device passes
   * none: its iommufd proves ownership of every device bound to it.
   */
  hotReset(groups: readonly Group[] = this.group ? [this.group] : []): void {
    this.assertUsable();
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
    this.assertUsable();
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

  /** @internal Regions and IRQs check their device is open (and, a cdev, bound and attached). */
  assertUsable(): void {
    this.assertOpen();
    const cdev = this.#cdev;
    if (cdev === null || cdev.ioas !== null) return;
    if (!cdev.iommufd) throw this.#notBound('use it');
    throw new VfioError(
      RuleCode.DEVICE_NOT_ATTACHED,
      `${this.description} is bound to ${cdev.iommufd.description} but attached to no IOAS, so its DMA is blocked; call device.attach(ioas) first`,
    );
  }

  #notBound(what: string): VfioError {
    return new VfioError(
      RuleCode.DEVICE_NOT_BOUND,
      `cannot ${what}: ${this.description} (cdev ${this.#cdev?.path}) is not bound to an iommufd; call device.bind(iommufd), then device.attach(ioas)`,
    );
  }

  #requireCdev(what: string): CdevState {
    if (this.#cdev) return this.#cdev;
    throw new VfioError(
      RuleCode.UNSUPPORTED,
      `cannot ${what} ${this.description}: it was opened through ${this.group?.description ?? 'its group'}, whose container is its IOMMU; only a device opened by its cdev (Device.openCdev) binds to an iommufd`,
    );
  }

  /** @internal KvmVfioDevice.add(): a cdev device's fd proves ownership; one not bound yet may still be registered. */
  kvmFile(): { handle: NativeDevice; bound: boolean } {
    this.assertOpen();
    this.#requireCdev('register with KVM');
    return { handle: this.#native, bound: this.#cdev?.iommufd != null };
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
    this.group?.deviceClosed(this);
    const cdev = this.#cdev;
    if (cdev) {
      // Closing the fd detached and unbound it in the kernel.
      const ioas = cdev.ioas;
      cdev.ioas = null;
      ioas?.deviceDetached(this);
      cdev.iommufd?.deviceClosed(this);
    }
  }

  protected override release(): void {
    teardown({ subject: this, verb: 'close', devices: [this], iommu: null, kvm: [], unset: [], fds: [] });
  }
}

function describe(raw: DeviceInfoRaw): DeviceInfo {
  const c = native().constants;
  return {
    flags: raw.flags,
    numRegions: raw.numRegions,
    numIrqs: raw.numIrqs,
    pci: (raw.flags & c.VFIO_DEVICE_FLAGS_PCI) !== 0,
    resettable: (raw.flags & c.VFIO_DEVICE_FLAGS_RESET) !== 0,
  };
}

/** /dev/vfio/devices/vfioN of a PCI device bound to vfio-pci: sysfs names it under the device's vfio-dev. */
export function cdevPath(address: string, roots: CdevOptions = {}): string {
  const dir = `${roots.sysfsRoot ?? '/sys'}/bus/pci/devices/${address}/vfio-dev`;
  let names: string[];
  try {
    names = readdirSync(dir).filter((n) => /^vfio\d+$/.test(n));
  } catch (e) {
    const code = (e as { code?: string }).code;
    let why: string;
    if (code === 'ENOENT') {
      let bound = false;
      try {
        bound = /vfio-pci$/.test(readlinkSync(`${roots.sysfsRoot ?? '/sys'}/bus/pci/devices/${address}/driver`));
      } catch {
        // not bound at all, or no such device
      }
      why = bound
        ? `${address} is bound to vfio-pci but has no cdev: this kernel lacks CONFIG_VFIO_DEVICE_CDEV (Linux 6.6+); open it through its group (Container.openGroup)`
        : `${address} has no vfio-dev entry in sysfs: bind it to vfio-pci first ('vfio bind ${address}')`;
    } else {
      why = `reading ${dir} failed (${code ?? String(e)})`;
    }
    throw new VfioError(RuleCode.NO_DEVICE, `cannot open the cdev of ${address}: ${why}`);
  }
  if (names.length !== 1) throw new VfioError(RuleCode.NO_DEVICE, `cannot open the cdev of ${address}: ${dir} lists ${names.length} cdevs`);
  return `${roots.devRoot ?? '/dev'}/vfio/devices/${names[0]}`;
}

function closeNatives(natives: DeviceNatives): void {
  for (const m of natives.mmaps) m.close();
  natives.mmaps.clear();
  for (const fd of natives.eventfds) fd.close();
  natives.eventfds.clear();
}
