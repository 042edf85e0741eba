// A VFIO group (/dev/vfio/<id>): the unit of ownership the IOMMU isolates.
// Its devices can be opened only once it is viable, attached to a container,
// and the container has an IOMMU model: each missing step has its own error.

import type { Container } from './container';
import { Device } from './device';
import { RuleCode, VfioError, rethrow } from './errors';
import { groupOpenHint } from './hints';
import { native, type NativeGroup } from './native';
import { closeAll, Resource } from './resource';
import { explainNotViable, iommuGroupOf, readIommuGroup } from './sysfs';

export interface GroupOptions {
  /** Where the group nodes live; default '/dev'. */
  devRoot?: string;
  /** Where sysfs is; default '/sys' (used to explain a non-viable group). */
  sysfsRoot?: string;
}

export interface GroupStatus {
  /** Every device in the group is bound to a VFIO driver (or none). */
  viable: boolean;
  /** The group is attached to a container (in the kernel's view). */
  containerSet: boolean;
}

/** Groups open in this process, so EBUSY can say where the other open is. */
const openGroups = new Map<string, Group>();

export class Group extends Resource {
  readonly id: number;
  readonly path: string;
  readonly description: string;
  readonly #native: NativeGroup;
  readonly #options: GroupOptions;
  readonly #devices: Device[] = [];
  readonly #beforeClose: (() => void)[] = [];
  #container: Container | null = null;

  private constructor(id: number, path: string, handle: NativeGroup, options: GroupOptions) {
    super();
    this.id = id;
    this.path = path;
    this.#native = handle;
    this.#options = options;
    this.description = `group ${id}`;
    this.track(() => handle.close());
  }

  /** Opens /dev/vfio/<id>. A group can be open once system-wide (EBUSY otherwise). */
  static open(id: number, options: GroupOptions = {}): Group {
    if (!Number.isSafeInteger(id) || id < 0) {
      throw new VfioError(RuleCode.INVALID_ARG, `a group id is a non-negative integer (the N of /dev/vfio/N), got ${String(id)}`);
    }
    const path = `${options.devRoot ?? '/dev'}/vfio/${id}`;
    let handle: NativeGroup;
    try {
      handle = native().openGroup(path);
    } catch (e) {
      rethrow(e, `opening group ${id}`, (code) => groupOpenHint(code, id, path, openGroups.has(path)), path);
    }
    const group = new Group(id, path, handle, options);
    openGroups.set(path, group);
    return group;
  }

  /** Opens the group that holds PCI device `address` (found through sysfs). */
  static forDevice(address: string, options: GroupOptions = {}): Group {
    return Group.open(iommuGroupOf(address, { sysfsRoot: options.sysfsRoot }), options);
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
    container.addGroup(this);
  }

  /** Closes the group's devices, then VFIO_GROUP_UNSET_CONTAINER. */
  detach(): void {
    this.assertOpen();
    this.#detach();
  }

  /** VFIO_GROUP_GET_DEVICE_FD, once every step before it is done. */
  openDevice(name: string): Device {
    this.assertOpen();
    if (typeof name !== 'string' || name.length === 0) {
      throw new VfioError(RuleCode.INVALID_ARG, `a device name is a string such as '0000:00:04.0', got ${String(name)}`);
    }
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
    const device = new Device(this, name, handle);
    this.#devices.push(device);
    return device;
  }

  /**
   * Runs `hook` before the group fd closes (KVM-VFIO uses it to unregister
   * the group first). Returns a function that removes the hook.
   */
  onBeforeClose(hook: () => void): () => void {
    this.#beforeClose.push(hook);
    return () => {
      const i = this.#beforeClose.indexOf(hook);
      if (i >= 0) this.#beforeClose.splice(i, 1);
    };
  }

  /** @internal For the KVM-VFIO device: proof of ownership is the fd itself. */
  handle(): NativeGroup {
    this.assertOpen();
    return this.#native;
  }

  /** @internal Device.close() */
  removeDevice(device: Device): void {
    const i = this.#devices.indexOf(device);
    if (i >= 0) this.#devices.splice(i, 1);
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

  #detach(): void {
    const container = this.#container;
    if (!container) return;
    closeAll(this.#devices);
    container.beforeGroupLeaves(this);
    try {
      this.#native.unsetContainer();
    } catch (e) {
      rethrow(e, `${this.description}: detaching it from ${container.description}`);
    } finally {
      this.#container = null;
      container.removeGroup(this);
    }
  }

  protected override release(): void {
    try {
      closeAll(this.#devices);
      // Hooks (KVM-VFIO unregistration) run while the fd still proves ownership.
      closeAll([...this.#beforeClose].reverse().map((fn) => ({ close: fn })));
      this.#detach();
    } finally {
      this.#native.close();
      openGroups.delete(this.path);
    }
  }
}
