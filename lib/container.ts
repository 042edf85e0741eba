// A VFIO container (/dev/vfio/vfio): one IOMMU context shared by the groups
// attached to it. It owns its groups (and so their devices) and its IOMMU's
// mappings, and closes them in the order the kernel needs: devices, then
// mappings, then group unset, then the container fd.

import { RuleCode, VfioError, rethrow } from './errors';
import { Group } from './group';
import type { Iommu } from './iommu';
import { containerOpenHint } from './hints';
import { native, type NativeContainer } from './native';
import { closeAll, Resource } from './resource';
import { SpaprTceIommu, type SpaprOptions } from './spapr';
import { Type1Iommu } from './type1';

export type IommuType = 'type1v2' | 'type1' | 'spapr-v2' | 'spapr';

/** Preference order when the caller does not name a model. */
const PREFERENCE: IommuType[] = ['type1v2', 'type1', 'spapr-v2', 'spapr'];

export interface ContainerOptions {
  /** Default '/dev/vfio/vfio'. */
  path?: string;
}

export class Container extends Resource {
  readonly path: string;
  readonly description: string;
  readonly apiVersion: number;
  readonly #native: NativeContainer;
  readonly #groups: Group[] = [];
  #iommu: Iommu | null = null;

  private constructor(path: string, handle: NativeContainer) {
    super();
    this.path = path;
    this.#native = handle;
    this.description = `container ${path} (fd ${handle.fd})`;
    this.apiVersion = handle.getApiVersion();
    this.track(() => handle.close());
  }

  /** Opens a container and checks the kernel speaks VFIO_API_VERSION. */
  static open(options: ContainerOptions = {}): Container {
    const path = options.path ?? '/dev/vfio/vfio';
    let handle: NativeContainer;
    try {
      handle = native().openContainer(path);
    } catch (e) {
      rethrow(e, `opening VFIO container ${path}`, (code) => containerOpenHint(code, path), path);
    }
    let container: Container;
    try {
      container = new Container(path, handle);
    } catch (e) {
      handle.close();
      rethrow(e, `querying VFIO container ${path}`);
    }
    const expected = native().constants.VFIO_API_VERSION;
    if (container.apiVersion !== expected) {
      container.close();
      throw new VfioError(
        RuleCode.IOMMU_UNSUPPORTED,
        `${path} speaks VFIO API version ${container.apiVersion}, this addon was built for ${expected}; rebuild it against this kernel's headers`,
      );
    }
    return container;
  }

  /** VFIO_CHECK_EXTENSION: the kernel's answer, 0 when unsupported. */
  checkExtension(extension: number): number {
    this.assertOpen();
    try {
      return this.#native.checkExtension(extension);
    } catch (e) {
      rethrow(e, `${this.description}: checking extension ${extension}`);
    }
  }

  /** The IOMMU models this kernel offers, best first. */
  supportedIommus(): IommuType[] {
    return PREFERENCE.filter((t) => this.checkExtension(iommuConstant(t)) > 0);
  }

  get groups(): readonly Group[] {
    return [...this.#groups];
  }

  /** The IOMMU model set on the container, null before setIommu(). */
  get iommu(): Iommu | null {
    return this.#iommu;
  }

  /** Opens group `id` (/dev/vfio/<id>) and attaches it to this container. */
  openGroup(id: number, options: { devRoot?: string; sysfsRoot?: string } = {}): Group {
    this.assertOpen();
    const group = Group.open(id, options);
    try {
      group.attach(this);
    } catch (e) {
      group.close();
      throw e;
    }
    return group;
  }

  /**
   * VFIO_SET_IOMMU. Needs at least one attached group (the kernel sets the
   * model for the groups in the container). Without a type, the best the
   * kernel offers: type1v2, type1, sPAPR v2, sPAPR.
   */
  setIommu(type?: IommuType, options: SpaprOptions = {}): Iommu {
    this.assertOpen();
    if (this.#iommu) {
      throw new VfioError(RuleCode.IOMMU_ALREADY_SET, `${this.description} already has the ${this.#iommu.kind} IOMMU set`);
    }
    if (this.#groups.length === 0) {
      throw new VfioError(
        RuleCode.GROUP_NOT_ATTACHED,
        `${this.description} has no group attached; attach one first (container.openGroup(id)), then set the IOMMU`,
      );
    }
    const chosen = type ?? this.supportedIommus()[0];
    if (chosen === undefined || !PREFERENCE.includes(chosen)) {
      throw new VfioError(RuleCode.IOMMU_UNSUPPORTED, `${this.description}: the kernel offers no IOMMU model this library drives (load vfio_iommu_type1 or vfio_iommu_spapr_tce)`);
    }
    if (type !== undefined && this.checkExtension(iommuConstant(type)) <= 0) {
      throw new VfioError(
        RuleCode.IOMMU_UNSUPPORTED,
        `${this.description}: the kernel does not offer the ${type} IOMMU (it offers: ${this.supportedIommus().join(', ') || 'none'})`,
      );
    }
    try {
      this.#native.setIommu(iommuConstant(chosen));
    } catch (e) {
      rethrow(e, `${this.description}: setting the ${chosen} IOMMU`);
    }
    // The IOMMU stays usable while the container is closing: it unmaps then.
    const owner = { description: this.description, assertUsable: () => this.closed && this.assertOpen() };
    this.#iommu =
      chosen === 'type1' || chosen === 'type1v2'
        ? new Type1Iommu(owner, this.#native, chosen)
        : new SpaprTceIommu(owner, this.#native, chosen, options);
    return this.#iommu;
  }

  /** The IOMMU, or ERR_VFIO_IOMMU_NOT_SET naming the missing step. */
  requireIommu(): Iommu {
    this.assertOpen();
    if (!this.#iommu) {
      throw new VfioError(RuleCode.IOMMU_NOT_SET, `${this.description} has no IOMMU model set; call container.setIommu() after attaching the group`);
    }
    return this.#iommu;
  }

  /** @internal Group.attach() */
  handle(): NativeContainer {
    this.assertOpen();
    return this.#native;
  }

  /** @internal Group.attach() succeeded. */
  addGroup(group: Group): void {
    this.#groups.push(group);
  }

  /**
   * @internal A group is about to leave. When it is the last one, the kernel
   * drops the IOMMU context with it, so unmap first and keep the books equal.
   */
  beforeGroupLeaves(group: Group): void {
    if (this.#groups.length === 1 && this.#groups[0] === group && this.#iommu) {
      this.#iommu.release();
      this.#iommu = null;
    }
  }

  /** @internal Group.detach() done. */
  removeGroup(group: Group): void {
    const i = this.#groups.indexOf(group);
    if (i >= 0) this.#groups.splice(i, 1);
  }

  protected override assertClosable(): void {
    this.#iommu?.assertIdle(`close ${this.description}`);
  }

  protected override release(): void {
    try {
      // Devices first: nothing may DMA while mappings go away.
      closeAll(this.#groups.flatMap((g) => g.devices));
      this.#iommu?.release();
      this.#iommu = null;
      closeAll(this.#groups);
    } finally {
      this.#native.close();
    }
  }
}

function iommuConstant(type: IommuType): number {
  const c = native().constants;
  const n = {
    type1v2: c.VFIO_TYPE1v2_IOMMU,
    type1: c.VFIO_TYPE1_IOMMU,
    'spapr-v2': c.VFIO_SPAPR_TCE_v2_IOMMU,
    spapr: c.VFIO_SPAPR_TCE_IOMMU,
  }[type];
  if (n === undefined) throw new VfioError(RuleCode.INVALID_ARG, `unknown IOMMU type '${String(type)}'; use one of ${PREFERENCE.join(', ')}`);
  return n;
}
