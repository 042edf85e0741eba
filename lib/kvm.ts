// KVM and its VFIO pseudo device (KVM_DEV_TYPE_VFIO). A VM manager tells KVM
// which VFIO groups (or device cdevs) a VM uses; the kernel takes an open fd
// as proof of ownership, so the API takes our Group and Device objects only,
// never a number.

import { readlinkSync } from 'node:fs';
import { argFd, argInstance, argInt, argName, isInstance, typeError, valueError } from './args';
import { Device } from './device';
import { RuleCode, VfioError, rethrow } from './errors';
import { Group } from './group';
import { addKvmUse, deleteKvmUse, type KvmUse } from './kvm-uses';
import { native, type NativeDevice, type NativeGroup, type NativeKvm, type NativeKvmDevice, type NativeVm } from './native';
import { closerOf, Resource } from './resource';
import type { DmaBuffer } from './dma-buffer';
import type { Irq } from './irq';
import type { Irqfd } from './irqfd';
import type { KvmSlot } from './kvm-slot';
import type { RegionMapping } from './region';
import { releaseKvmUses, teardown } from './teardown';
import type { Vcpu } from './vcpu';
import { VmWiring } from './vm-wiring';

/** The KVM device (`/dev/kvm`): creates VMs. */
export class Kvm extends Resource {
  readonly path: string;
  readonly description: string;
  readonly apiVersion: number;
  readonly #native: NativeKvm;

  private constructor(path: string, handle: NativeKvm, apiVersion: number) {
    super();
    this.path = path;
    this.#native = handle;
    this.apiVersion = apiVersion;
    this.description = `KVM ${path}`;
    this.track(closerOf(handle));
  }

  /** Opens /dev/kvm (or `path`). */
  static open(path = '/dev/kvm'): Kvm {
    if (typeof path !== 'string' || path.length === 0) argName(path, 'path');
    let handle: NativeKvm;
    try {
      handle = native().openKvm(path);
    } catch (e) {
      rethrow(e, `opening ${path}`, (code) =>
        code === 'ENOENT' ? 'KVM is not available: load kvm_intel or kvm_amd and check virtualization is enabled' :
        code === 'EACCES' ? `add the user to the group owning ${path} (usually 'kvm')` : undefined, path);
    }
    let version: number;
    try {
      version = handle.getApiVersion();
    } catch (e) {
      handle.close();
      rethrow(e, `${path}: KVM_GET_API_VERSION`);
    }
    return new Kvm(path, handle, version);
  }

  /** KVM_CHECK_EXTENSION on /dev/kvm. */
  checkExtension(capability: number): number {
    argInt(capability, 'capability', 0, 0xffffffff);
    this.assertOpen();
    try {
      return this.#native.checkExtension(capability);
    } catch (e) {
      rethrow(e, `${this.description}: KVM_CHECK_EXTENSION(${capability})`);
    }
  }

  /** KVM_CREATE_VM. The VM outlives this object: close it separately. */
  createVm(type = 0): Vm {
    argInt(type, 'type', 0, 0xffffffff);
    this.assertOpen();
    try {
      return new Vm(this.#native.createVm(type), 'created');
    } catch (e) {
      rethrow(e, `${this.description}: KVM_CREATE_VM`);
    }
  }

  protected override release(): void {
    this.#native.close();
  }
}

/** A KVM VM: its memory slots and the KVM-VFIO device that tells KVM which groups its guest uses. */
export class Vm extends Resource {
  readonly description: string;
  readonly #native: NativeVm;
  #vfio: KvmVfioDevice | null = null;
  readonly #wiring: VmWiring;

  /** @internal Kvm.createVm() or Vm.adopt(). */
  constructor(handle: NativeVm, how: string) {
    super();
    this.#native = handle;
    this.description = `VM (${how}, fd ${handle.fd})`;
    this.#wiring = new VmWiring(this, handle);
    this.track(closerOf(handle));
  }

  /** KVM_CREATE_IRQCHIP (x86: PIC, IOAPIC, a local APIC per vCPU): irqfds need it. Before any vCPU. */
  createIrqchip(): void {
    this.assertOpen();
    this.#wiring.createIrqchip();
  }

  /**
   * Route an MSI message to `gsi` (KVM_SET_GSI_ROUTING; the library keeps the
   * whole table, x86's default irqchip routes included). On an adopted VM
   * whose VMM sets routes of its own, route through the VMM instead.
   */
  routeMsi(gsi: number, message: { address: bigint | number; data: number }): void {
    this.assertOpen();
    this.#wiring.routeMsi(gsi, message);
  }

  /** Remove the MSI route of `gsi`. */
  unrouteMsi(gsi: number): void {
    this.assertOpen();
    this.#wiring.unrouteMsi(gsi);
  }

  /**
   * KVM_IRQFD: an enabled vector of a device's interrupt index signals guest
   * interrupt `gsi` inside the kernel (JS stops seeing it meanwhile). With
   * `resample: true` (INTx) the line is level-triggered: KVM signals a
   * resample eventfd at the guest's EOI and VFIO unmasks the line on it.
   * Removed before the vector's eventfd, its device or this VM closes.
   */
  irqfd(irq: Irq, options: { gsi: number; vector?: number; resample?: boolean }): Irqfd {
    this.assertOpen();
    return this.#wiring.irqfd(this, irq, options);
  }

  /**
   * KVM_SET_USER_MEMORY_REGION: [offset, offset+size) of a DmaBuffer (guest
   * RAM) or a BAR mmap at guest physical `guestPhys`. Deleted before the
   * memory or this VM closes. `slot` defaults to the lowest one this library
   * has not used; on an adopted VM pass one the VMM does not use.
   */
  mapMemory(options: { guestPhys: bigint | number; memory: DmaBuffer | RegionMapping; offset?: number; size?: number; readonly?: boolean; slot?: number }): KvmSlot {
    this.assertOpen();
    return this.#wiring.mapMemory(this, options);
  }

  /** KVM_CREATE_VCPU: the minimal vCPU (registers, real-mode segments, run). Closed with the VM. */
  createVcpu(id = 0): Vcpu {
    this.assertOpen();
    return this.#wiring.createVcpu(id);
  }

  /** The memory slots and irqfds this library made in the VM and that are still there. */
  get slots(): readonly KvmSlot[] {
    return this.#wiring.slots;
  }

  get irqfds(): readonly Irqfd[] {
    return this.#wiring.irqfds;
  }

  /**
   * Adopt a VMM's VM fd: it is duplicated, and the duplicate is ours to
   * close. Anything but a KVM VM fd is refused: KVM ioctls sent to another
   * driver's fd would mean something else to it.
   */
  static adopt(fd: number): Vm {
    argFd(fd);
    const kind = fdKind(fd);
    if (kind !== null && kind !== 'anon_inode:kvm-vm') {
      throw valueError('fd', `must be a KVM VM fd (anon_inode:kvm-vm, from KVM_CREATE_VM); fd ${fd} is ${kind}`, fd);
    }
    try {
      return new Vm(native().adoptVm(fd), `adopted from fd ${fd}`);
    } catch (e) {
      rethrow(e, `adopting VM fd ${fd}`);
    }
  }

  /** KVM_CHECK_EXTENSION on the VM fd. */
  checkExtension(capability: number): number {
    argInt(capability, 'capability', 0, 0xffffffff);
    this.assertOpen();
    try {
      return this.#native.checkExtension(capability);
    } catch (e) {
      rethrow(e, `${this.description}: KVM_CHECK_EXTENSION(${capability})`);
    }
  }

  /** The VM's KVM-VFIO device: created on first call, the same object after (the kernel allows one). */
  vfioDevice(): KvmVfioDevice {
    this.assertOpen();
    if (this.#vfio && !this.#vfio.closed) return this.#vfio;
    let handle: NativeKvmDevice | null;
    try {
      handle = this.#native.createDevice(native().constants.KVM_DEV_TYPE_VFIO, false);
    } catch (e) {
      rethrow(e, `${this.description}: KVM_CREATE_DEVICE(KVM_DEV_TYPE_VFIO)`, (code) =>
        code === 'EBUSY' ? 'this VM already has a KVM-VFIO device made outside this library; a VM can have one' :
        code === 'ENODEV' ? 'the kernel was built without KVM-VFIO (CONFIG_KVM_VFIO)' : undefined);
    }
    if (!handle) throw new VfioError(RuleCode.BOOKKEEPING, `${this.description}: KVM_CREATE_DEVICE returned no device`);
    this.#vfio = new KvmVfioDevice(this, handle);
    return this.#vfio;
  }

  /** Whether the kernel supports KVM-VFIO devices on this VM (KVM_CREATE_DEVICE_TEST). */
  supportsVfioDevice(): boolean {
    this.assertOpen();
    try {
      this.#native.createDevice(native().constants.KVM_DEV_TYPE_VFIO, true);
      return true;
    } catch {
      return false;
    }
  }

  /** @internal teardown(), step 5. */
  closeFd(): void {
    this.#native.close();
    this.markClosed();
  }

  protected override release(): void {
    // An adopted VM lives on in its VMM: what we put in it goes first.
    releaseKvmUses(this, 'close', [this]);
    const vfio = this.#vfio && !this.#vfio.closed ? this.#vfio : null;
    const vcpus = this.#wiring.vcpus();
    teardown({
      subject: this,
      verb: 'close',
      devices: [],
      iommu: null,
      kvm: vfio ? vfio.kvmRegistrations() : [],
      unset: [],
      fds: vfio ? [...vcpus, vfio, this] : [...vcpus, this],
    });
  }
}

/** The KVM-VFIO pseudo-device of a VM (KVM_DEV_TYPE_VFIO): the VFIO files (groups, device cdevs) its guest uses, added before their devices open. */
export class KvmVfioDevice extends Resource {
  readonly vm: Vm;
  readonly description: string;
  readonly #native: NativeKvmDevice;
  // The file's native handle is kept: removal runs while the file is closing.
  readonly #files = new Map<Group | Device, { handle: NativeGroup | NativeDevice; use: KvmUse | null }>();

  /** @internal Vm.vfioDevice() */
  constructor(vm: Vm, handle: NativeKvmDevice) {
    super();
    this.vm = vm;
    this.#native = handle;
    this.description = `KVM-VFIO device of ${vm.description}`;
    this.track(closerOf(handle));
  }

  /** Groups registered with KVM. */
  get groups(): readonly Group[] {
    return [...this.#files.keys()].filter((f): f is Group => f instanceof Group);
  }

  /** Device cdevs registered with KVM. */
  get devices(): readonly Device[] {
    return [...this.#files.keys()].filter((f): f is Device => f instanceof Device);
  }

  /**
   * KVM_DEV_VFIO_FILE_ADD of a group, or of a device opened by its cdev
   * (Linux 6.6+). Register before the devices open: a group before
   * openDevice(), a cdev device before bind() (the kernel hands the device
   * its KVM then). It is removed again before it closes.
   */
  add(file: Group | Device): void {
    const f = argFile(file);
    this.assertOpen();
    const handle = this.#openHandle(f, 'add');
    if (this.#files.has(f)) throw new VfioError(RuleCode.KVM_EXISTS, `${f.description} is already registered with the ${this.description}`);
    try {
      this.#native.setVfioFile(native().constants.KVM_DEV_VFIO_FILE_ADD, handle);
    } catch (e) {
      rethrow(e, `${this.description}: adding ${f.description}`, (code) =>
        code === 'EINVAL' && f instanceof Device ? 'this kernel takes only group fds (device cdevs need Linux 6.6+)' : undefined,
      );
    }
    let use: KvmUse | null = null;
    if (f instanceof Group) {
      f.kvmRegistered(this, true);
    } else {
      // A cdev's registration goes in teardown's step 0, while its fd is open.
      use = { description: `${f.description}'s registration with the ${this.description}`, removeNow: () => this.removeNow(f) };
      addKvmUse(use, [f]);
    }
    this.#files.set(f, { handle, use });
  }

  /** KVM_DEV_VFIO_FILE_DEL. */
  remove(file: Group | Device): void {
    const f = argFile(file);
    this.assertOpen();
    this.#openHandle(f, 'remove');
    if (!this.#files.has(f)) throw new VfioError(RuleCode.KVM_NOT_REGISTERED, `${f.description} is not registered with the ${this.description}`);
    this.removeNow(f);
  }

  /**
   * KVM_DEV_VFIO_GROUP_SET_SPAPR_TCE: attach a registered group to an sPAPR
   * TCE table (`tableFd`, from KVM_CREATE_SPAPR_TCE_64). POWER hosts only.
   */
  setSpaprTce(group: Group, tableFd: number): void {
    argInstance(group, 'group', Group, 'Group (its open fd proves ownership)');
    argFd(tableFd, 'tableFd');
    this.assertOpen();
    const handle = group.handle();
    if (!this.#files.has(group)) throw new VfioError(RuleCode.KVM_NOT_REGISTERED, `${group.description} must be added to the ${this.description} before its sPAPR TCE table is set`);
    try {
      this.#native.setSpaprTce(handle, tableFd);
    } catch (e) {
      rethrow(e, `${this.description}: setting the sPAPR TCE table of ${group.description}`, (code) =>
        code === 'ENXIO' || code === 'EINVAL' || code === 'ENOTTY' ? `sPAPR TCE tables exist only on POWER hosts with KVM-HV/PR; on ${process.arch} the kernel refuses them` : undefined);
    }
  }

  /** @internal What teardown() removes when this device closes. */
  kvmRegistrations(): { device: KvmVfioDevice; file: Group | Device }[] {
    return [...this.#files.keys()].map((file) => ({ device: this, file }));
  }

  /** @internal teardown(), step 3 (a group) or 0 (a cdev): KVM_DEV_VFIO_FILE_DEL; on failure nothing changed. */
  removeNow(file: Group | Device): void {
    const entry = this.#files.get(file);
    if (!entry) return;
    try {
      this.#native.setVfioFile(native().constants.KVM_DEV_VFIO_FILE_DEL, entry.handle);
    } catch (e) {
      rethrow(e, `${this.description}: removing ${file.description}`);
    }
    this.#files.delete(file);
    if (file instanceof Group) file.kvmRegistered(this, false);
    if (entry.use) deleteKvmUse(entry.use, [file]);
  }

  /** @internal teardown(), step 5. */
  closeFd(): void {
    this.#native.close();
    this.markClosed();
  }

  /** The fd that proves ownership, refusing what cannot be registered now. */
  #openHandle(f: Group | Device, verb: 'add' | 'remove'): NativeGroup | NativeDevice {
    if (f instanceof Group) {
      const handle = f.handle();
      if (verb === 'add' && f.devices.length > 0) {
        throw new VfioError(
          RuleCode.ORDER,
          `${f.description} has open devices (${f.devices.map((d) => d.name).join(', ')}); register the group with KVM before opening its devices`,
        );
      }
      return handle;
    }
    const { handle, bound } = f.kvmFile();
    if (verb === 'add' && bound) {
      throw new VfioError(
        RuleCode.ORDER,
        `${f.description} is already bound to ${f.iommufd?.description}; register a device cdev with KVM before device.bind(iommufd) (the kernel gives the device its KVM at bind)`,
      );
    }
    return handle;
  }

  protected override release(): void {
    teardown({ subject: this, verb: 'close', devices: [], iommu: null, kvm: this.kvmRegistrations(), unset: [], fds: [this] });
  }
}

function argFile(file: unknown): Group | Device {
  if (isInstance(file, Group) || isInstance(file, Device)) return file as Group | Device;
  throw typeError('file', 'a Group or a Device opened by its cdev (its open fd proves ownership)', file);
}

/** What /proc says an fd is ('anon_inode:kvm-vm', '/dev/null'), or null if it cannot tell. */
function fdKind(fd: number): string | null {
  try {
    return readlinkSync(`/proc/self/fd/${fd}`);
  } catch {
    return null;
  }
}
