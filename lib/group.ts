// A VFIO group (/dev/vfio/<id>): the unit of ownership the IOMMU isolates.
// Its devices can be opened only once it is viable, attached to a container,
// and the container has an IOMMU model: each missing step has its own error.

import { argInstance, argInt, argName, argOptions, optionField, typeError } from './args';
import { Container } from './container';
import { Device } from './device';
import { RuleCode, VfioError, rethrow } from './errors';
import { groupOpenHint } from './hints';
import type { KvmVfioDevice } from './kvm';
import { native, type NativeGroup } from './native';
import { Resource } from './resource';
import { explainNotViable, iommuGroupOf, readIommuGroup } from './sysfs';
import { teardown } from './teardown';

/** Options of {@link Container.openGroup}. */
export interface GroupOptions {
  /** Where the group nodes live; default '/dev'. */
  devRoot?: string;
  /** Where sysfs is; default '/sys' (used to explain a non-viable group). */
  sysfsRoot?: string;
}

/** VFIO_GROUP_GET_STATUS as the kernel reports it. */
export interface GroupStatus {
  /** Every device in the group is bound to a VFIO driver (or none). */
  viable: boolean;
  /** The group is attached to a container (in the kernel's view). */
  containerSet: boolean;
}

/**
 * Paths of the groups open in this process, so EBUSY can say where the
 * other open is. Paths only: a Group held here could never be collected.
 */
const openPaths = new Set<string>();

/** A VFIO group (`/dev/vfio/<n>`): the unit of isolation the IOMMU can tell apart; its devices are opened through it. */
export class Group extends Resource {
  readonly id: number;
  readonly path: string;
  readonly description: string;
  readonly #native: NativeGroup;
  readonly #options: GroupOptions;
  readonly #devices: Device[] = [];
  readonly #kvm = new Set<KvmVfioDevice>();
  #container: Container | null = null;

  private constructor(id: number, path: string, handle: NativeGroup, options: GroupOptions) {
    super();
    this.id = id;
    this.path = path;
    this.#native = handle;
    this.#options = options;
    this.description = `group ${id}`;
    openPaths.add(path);
    this.track(() => {
      openPaths.delete(path);
      const open = handle.fd >= 0;
      handle.close();
      return open;
    });
  }

  /** Opens /dev/vfio/<id>. A group can be open once system-wide (EBUSY otherwise). */
  static open(id: number, options?: GroupOptions): Group {
    argInt(id, 'id', 0, 0x7fffffff);
    const o = readGroupOptions(options);
    const path = `${o.devRoot ?? '/dev'}/vfio/${id}`;
    let handle: NativeGroup;
    try {
      handle = native().openGroup(path);
    } catch (e) {
      rethrow(e, `opening group ${id}`, (code) => groupOpenHint(code, id, path, openPaths.has(path)), path);
    }
    return new Group(id, path, handle, o);
  }

  /** Opens the group that holds PCI device `address` (found through sysfs). */
  static forDevice(address: string, options?: GroupOptions): Group {
    argName(address, 'address');
    const o = readGroupOptions(options);
    return Group.open(iommuGroupOf(address, { sysfsRoot: o.sysfsRoot }), o);
  }

  /** VFIO_GROUP_GET_STATUS */
  status(): GroupStatus {
    this.assertOpen();
    let flags: number;
    try {
      flags = this.#native.getStatus();
    } catch (e) {
      rethrow(e, `${this.description}: reading its status`);
    }
    const c = native().constants;
    return { viable: (flags & c.VFIO_GROUP_FLAGS_VIABLE) !== 0, containerSet: (flags & c.VFIO_GROUP_FLAGS_CONTAINER_SET) !== 0 };
  }

  get container(): Container | null {
    return this.#container;
  }

  get devices(): readonly Device[] {
    return [...this.#devices];
  }

  /** VFIO_GROUP_SET_CONTAINER, refused first if the group is not viable. */
  attach(container: Container): void {
    argInstance(container, 'container', Container);
    this.assertOpen();
    if (this.#container) {
      throw new VfioError(
        RuleCode.GROUP_ATTACHED,
        `${this.description} is already attached to ${this.#container === container ? 'this container' : this.#container.description}; detach it first`,
      );
    }
    this.#assertViable();
    const handle = container.handle();
    try {
      this.#native.setContainer(handle);
    } catch (e) {
      rethrow(e, `${this.description}: attaching it to ${container.description}`, (code) =>
        code === 'EPERM' ? this.#notViableText() : code === 'EINVAL' ? 'the container already has an IOMMU model this group cannot share' : undefined,
      );
    }
    this.#container = container;
    container.groupAttached(this);
  }

  /**
   * Closes the group's devices, then VFIO_GROUP_UNSET_CONTAINER. When it is
   * the container's last group, the IOMMU context goes with it: its mappings
   * are unmapped first and the Iommu object is closed.
   */
  detach(): void {
    this.assertOpen();
    const container = this.#container;
    if (!container) return;
    teardown({
      subject: this,
      verb: 'detach',
      devices: this.devices,
      iommu: container.iommuLeavingWith([this]),
      kvm: [],
      unset: [this],
      fds: [],
    });
  }

  /** VFIO_GROUP_GET_DEVICE_FD, once every step before it is done. */
  openDevice(name: string): Device {
    argName(name, 'name');
    this.assertOpen();
    this.#assertViable();
    if (!this.#container) {
      throw new VfioError(
        RuleCode.GROUP_NOT_ATTACHED,
        `cannot open ${name}: ${this.description} is not attached to a container; call container.openGroup(${this.id}) or group.attach(container) first`,
      );
    }
    if (!this.#container.iommu) {
      throw new VfioError(
        RuleCode.IOMMU_NOT_SET,
        `cannot open ${name}: ${this.#container.description} has no IOMMU model set; call container.setIommu() first`,
      );
    }
    let handle;
    try {
      handle = this.#native.getDeviceFd(name);
    } catch (e) {
      rethrow(e, `${this.description}: opening device ${name}`, (code) => (code === 'ENODEV' ? this.#membersHint(name) : undefined));
    }
    const device = Device.create(this, name, handle);
    this.#devices.push(device);
    try {
      this.#container.iommu.deviceOpened();
    } catch (e) {
      device.close();
      throw e;
    }
    return device;
  }

  /** @internal For the KVM-VFIO device: proof of ownership is the fd itself. */
  handle(): NativeGroup {
    this.assertOpen();
    return this.#native;
  }

  /** @internal The KVM-VFIO devices this group is registered with. */
  kvmRegistered(device: KvmVfioDevice, registered: boolean): void {
    if (registered) this.#kvm.add(device);
    else this.#kvm.delete(device);
  }

  /** @internal What teardown() removes from KVM before the group goes. */
  kvmRegistrations(): { device: KvmVfioDevice; file: Group }[] {
    return [...this.#kvm].map((device) => ({ device, file: this }));
  }

  /** @internal Device closed. */
  deviceClosed(device: Device): void {
    const i = this.#devices.indexOf(device);
    if (i >= 0) this.#devices.splice(i, 1);
  }

  /** @internal teardown(), step 4: VFIO_GROUP_UNSET_CONTAINER; on failure nothing changed. */
  unsetNow(): void {
    const container = this.#container;
    if (!container) return;
    try {
      this.#native.unsetContainer();
    } catch (e) {
      if (!this.#kernelDetached(e)) rethrow(e, `${this.description}: detaching it from ${container.description}`);
    }
    this.#container = null;
    container.groupDetached(this);
  }

  /** @internal teardown(), step 5. */
  closeFd(): void {
    this.#native.close();
    openPaths.delete(this.path);
    this.markClosed();
  }

  /**
   * Did the kernel detach the group on its own? When its last device leaves
   * vfio-pci (an unbind after a release request), the kernel takes the
   * group out of its container; UNSET_CONTAINER then says EINVAL, and
   * GET_STATUS ENODEV (6.1 in the test guest: the group has no devices left).
   */
  #kernelDetached(e: unknown): boolean {
    if ((e as { code?: unknown }).code !== 'EINVAL') return false;
    try {
      return (this.#native.getStatus() & native().constants.VFIO_GROUP_FLAGS_CONTAINER_SET) === 0;
    } catch (status) {
      return (status as { code?: unknown }).code === 'ENODEV';
    }
  }

  #assertViable(): void {
    if (!this.status().viable) throw new VfioError(RuleCode.GROUP_NOT_VIABLE, this.#notViableText());
  }

  #notViableText(): string {
    try {
      return explainNotViable(readIommuGroup(this.id, { sysfsRoot: this.#options.sysfsRoot }));
    } catch {
      return `group ${this.id} is not viable: a device in it is bound to a host driver; see /sys/kernel/iommu_groups/${this.id}/devices and bind each to vfio-pci (vfio bind) or unbind it`;
    }
  }

  #membersHint(name: string): string {
    try {
      const members = readIommuGroup(this.id, { sysfsRoot: this.#options.sysfsRoot }).devices.map((d) => d.address);
      return `${name} is not a device of ${this.description} (its devices: ${members.join(', ') || 'none'})`;
    } catch {
      return `${name} is not a device of ${this.description}`;
    }
  }

  protected override release(): void {
    const container = this.#container;
    teardown({
      subject: this,
      verb: 'close',
      devices: this.devices,
      iommu: container ? container.iommuLeavingWith([this]) : null,
      kvm: this.kvmRegistrations(),
      unset: container ? [this] : [],
      fds: [this],
    });
  }
}

function readGroupOptions(options: unknown): GroupOptions {
  const o = argOptions(options);
  const out: GroupOptions = {};
  for (const key of ['devRoot', 'sysfsRoot'] as const) {
    const v = optionField(o, key, `options.${key}`);
    if (v === undefined) continue;
    if (typeof v !== 'string') throw typeError(`options.${key}`, 'of type string', v);
    out[key] = v;
  }
  return out;
}
