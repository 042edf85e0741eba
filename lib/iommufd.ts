// An iommufd (/dev/iommu, Linux 6.2+): the kernel's IOMMU front end that
// devices opened by their cdev bind to. It owns its IO address spaces and
// the devices bound to it; closing it tears them down in the kernel's order
// (lib/teardown.ts).

import { argInstance, argOptions, optionField, typeError } from './args';
import { Device, type CdevOptions } from './device';
import { rethrow } from './errors';
import { iommufdOpenHint } from './hints';
import { assertIoasIdle, Ioas } from './ioas';
import { native, type NativeIommufd } from './native';
import { closerOf, Resource } from './resource';
import { teardown } from './teardown';

/** Options of {@link IommuFd.open}. */
export interface IommuFdOptions {
  /** Default '/dev/iommu'. */
  path?: string;
}

/** Options of {@link IommuFd.openDevice}. */
export interface IommuFdDeviceOptions extends CdevOptions {
  /** Attach the device to this IOAS once bound. */
  ioas?: Ioas;
}

/** An iommufd (`/dev/iommu`): IO address spaces, and the device cdevs bound to it. Closing it closes everything bound to it. */
export class IommuFd extends Resource {
  readonly path: string;
  readonly description: string;
  readonly #native: NativeIommufd;
  readonly #ioas: Ioas[] = [];
  readonly #devices: Device[] = [];

  private constructor(path: string, handle: NativeIommufd) {
    super();
    this.path = path;
    this.#native = handle;
    this.description = `iommufd ${path} (fd ${handle.fd})`;
    this.track(closerOf(handle));
  }

  /** Opens /dev/iommu. ENOENT means a kernel without CONFIG_IOMMUFD: the error says what to use instead. */
  static open(options?: IommuFdOptions): IommuFd {
    const o = argOptions(options);
    const given = optionField(o, 'path', 'options.path');
    if (given !== undefined && typeof given !== 'string') throw typeError('options.path', 'of type string', given);
    const path = given ?? '/dev/iommu';
    let handle: NativeIommufd;
    try {
      handle = native().openIommufd(path);
    } catch (e) {
      rethrow(e, `opening iommufd ${path}`, (code) => iommufdOpenHint(code, path), path);
    }
    return new IommuFd(path, handle);
  }

  /** Its IO address spaces, oldest first. */
  get ioas(): readonly Ioas[] {
    return [...this.#ioas];
  }

  /** Device cdevs bound to it. */
  get devices(): readonly Device[] {
    return [...this.#devices];
  }

  /** IOMMU_IOAS_ALLOC: a new, empty IO address space. */
  allocIoas(): Ioas {
    this.assertOpen();
    let id: number;
    try {
      id = this.#native.ioasAlloc();
    } catch (e) {
      rethrow(e, `${this.description}: allocating an IOAS`);
    }
    let ioas: Ioas;
    try {
      ioas = new Ioas(this, this.#native, id);
    } catch (e) {
      try {
        this.#native.destroy(id);
      } catch {
        // the fd's close frees it in any case; the first error is the one to see
      }
      throw e;
    }
    this.#ioas.push(ioas);
    return ioas;
  }

  /**
   * Opens the cdev of PCI device `address`, binds it to this iommufd and,
   * with `options.ioas`, attaches it: the three steps of
   * {@link Device.openCdev}, {@link Device.bind} and {@link Device.attach}.
   * A VM manager registers the device with KVM between open and bind, so it
   * takes the steps one by one.
   */
  openDevice(address: string, options?: IommuFdDeviceOptions): Device {
    const o = argOptions(options);
    const ioas = optionField(o, 'ioas', 'options.ioas');
    if (ioas !== undefined) argInstance(ioas, 'options.ioas', Ioas);
    this.assertOpen();
    const device = Device.openCdev(address, o);
    try {
      device.bind(this);
      if (ioas !== undefined) device.attach(ioas as Ioas);
    } catch (e) {
      device.close();
      throw e;
    }
    return device;
  }

  /** @internal Device.bind(): the fd VFIO_DEVICE_BIND_IOMMUFD takes. */
  handle(): NativeIommufd {
    this.assertOpen();
    return this.#native;
  }

  /** @internal Device.bind() succeeded. */
  deviceBound(device: Device): void {
    this.#devices.push(device);
  }

  /** @internal A bound device closed (its fd's close unbinds it in the kernel). */
  deviceClosed(device: Device): void {
    const i = this.#devices.indexOf(device);
    if (i >= 0) this.#devices.splice(i, 1);
  }

  /** @internal Ioas.destroy(): its mappings, then IOMMU_DESTROY, in teardown's order. */
  destroyIoas(ioas: Ioas): void {
    assertIoasIdle(ioas, 'destroy', []);
    teardown({ subject: ioas, verb: 'destroy', devices: [], iommu: null, ioas: [ioas], kvm: [], unset: [], fds: [] });
    this.#ioas.splice(this.#ioas.indexOf(ioas), 1);
  }

  /** @internal teardown(), step 5. */
  closeFd(): void {
    this.#native.close();
    for (const ioas of this.#ioas.splice(0)) ioas.contextGone();
    this.markClosed();
  }

  protected override release(): void {
    const devices = this.devices;
    for (const ioas of this.#ioas) assertIoasIdle(ioas, 'close', devices);
    teardown({ subject: this, verb: 'close', devices, iommu: null, ioas: this.ioas, kvm: [], unset: [], fds: [this] });
  }
}
