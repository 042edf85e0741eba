// A VFIO container (/dev/vfio/vfio): one IOMMU context shared by the groups
// attached to it. It owns its groups (and so their devices) and its IOMMU's
// mappings; closing it tears them all down in the kernel's order
// (lib/teardown.ts). The IOMMU context lives from setIommu() until the last
// group leaves: the kernel drops it then, and so does the container.

import { argInt, argOneOf, argOptions, optionField, typeError } from './args';
import { RuleCode, VfioError, rethrow } from './errors';
import { Group, type GroupOptions } from './group';
import type { Iommu } from './iommu';
import { containerOpenHint } from './hints';
import { native, type NativeContainer } from './native';
import { NoIommu } from './noiommu';
import { closerOf, Resource } from './resource';
import { readSpaprOptions, SpaprTceIommu, type SpaprOptions } from './spapr';
import { teardown } from './teardown';
import { Type1Iommu } from './type1';

/** The IOMMU model to set on a container: type1 (x86, arm64 SMMU) or the sPAPR TCE IOMMU (POWER); v2 variants preferred. */
export type IommuType = 'type1v2' | 'type1' | 'spapr-v2' | 'spapr';

/** Preference order when the caller does not name a model. */
const PREFERENCE: IommuType[] = ['type1v2', 'type1', 'spapr-v2', 'spapr'];
/** What setIommu() accepts: an IOMMU model, or 'noiommu' (no IOMMU at all; named only explicitly). */
const MODELS: (IommuType | 'noiommu')[] = [...PREFERENCE, 'noiommu'];

/** Options of {@link Container.open}. */
export interface ContainerOptions {
  /** Default '/dev/vfio/vfio'. */
  path?: string;
}

/** A VFIO container (`/dev/vfio/vfio`): holds groups and the IOMMU context their DMA goes through. Closing it closes everything opened through it (lib/teardown.ts order). */
export class Container extends Resource {
  readonly path: string;
  readonly description: string;
  readonly apiVersion: number;
  readonly #native: NativeContainer;
  readonly #groups: Group[] = [];
  #iommu: Iommu | null = null;
  #noIommu: NoIommu | null = null;

  private constructor(path: string, handle: NativeContainer, apiVersion: number) {
    super();
    this.path = path;
    this.#native = handle;
    this.apiVersion = apiVersion;
    this.description = `container ${path} (fd ${handle.fd})`;
    this.track(closerOf(handle));
  }

  /** Opens a container and checks the kernel speaks VFIO_API_VERSION. */
  static open(options?: ContainerOptions): Container {
    const o = argOptions(options);
    const given = optionField(o, 'path', 'options.path');
    if (given !== undefined && typeof given !== 'string') throw typeError('options.path', 'of type string', given);
    const path = given ?? '/dev/vfio/vfio';
    let handle: NativeContainer;
    try {
      handle = native().openContainer(path);
    } catch (e) {
      rethrow(e, `opening VFIO container ${path}`, (code) => containerOpenHint(code, path), path);
    }
    let version: number;
    try {
      version = handle.getApiVersion();
    } catch (e) {
      handle.close();
      rethrow(e, `querying VFIO container ${path}`);
    }
    const expected = native().constants.VFIO_API_VERSION;
    if (version !== expected) {
      handle.close();
      throw new VfioError(
        RuleCode.IOMMU_UNSUPPORTED,
        `${path} speaks VFIO API version ${version}, this addon was built for ${expected}; rebuild it against this kernel's headers`,
      );
    }
    return new Container(path, handle, version);
  }

  /** VFIO_CHECK_EXTENSION: the kernel's answer, 0 when unsupported. */
  checkExtension(extension: number): number {
    argInt(extension, 'extension', 0, 0xffffffff);
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

  /** The IOMMU model set on the container, null before setIommu() (and for the noiommu model). */
  get iommu(): Iommu | null {
    return this.#iommu;
  }

  /** The noiommu model, once setIommu('noiommu') set it; null otherwise. */
  get noIommu(): NoIommu | null {
    return this.#noIommu;
  }

  /** Opens group `id` (/dev/vfio/<id>) and attaches it to this container. */
  openGroup(id: number, options?: GroupOptions): Group {
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
   * kernel offers: type1v2, type1, sPAPR v2, sPAPR. 'noiommu' (never chosen
   * for you) is the model of noiommu groups only: it maps nothing (see
   * NoIommu.lock).
   */
  setIommu(type: 'noiommu'): NoIommu;
  setIommu(type?: IommuType, options?: SpaprOptions): Iommu;
  setIommu(type?: IommuType | 'noiommu', options?: SpaprOptions): Iommu | NoIommu {
    if (type !== undefined) argOneOf(type, 'type', MODELS);
    const spapr = readSpaprOptions(options);
    this.assertOpen();
    const set = this.#iommu ?? this.#noIommu;
    if (set) {
      throw new VfioError(RuleCode.IOMMU_ALREADY_SET, `${this.description} already has the ${set.kind} IOMMU set`);
    }
    if (this.#groups.length === 0) {
      throw new VfioError(
        RuleCode.GROUP_NOT_ATTACHED,
        `${this.description} has no group attached; attach one first (container.openGroup(id)), then set the IOMMU`,
      );
    }
    // Groups of one kind only (Group.attach): the first tells which.
    const unsafe = this.#groups[0];
    if (unsafe.noIommu !== (type === 'noiommu')) {
      throw new VfioError(
        RuleCode.IOMMU_MISMATCH,
        unsafe.noIommu
          ? `${this.description}: ${unsafe.description} has no IOMMU behind its device, so no IOMMU model can serve it; call setIommu('noiommu')`
          : `${this.description}: ${unsafe.description} has an IOMMU; the noiommu model is only for noiommu groups (opened with { unsafeNoIommu: true })`,
      );
    }
    if (type === 'noiommu') return this.#setNoIommu();
    // One CHECK_EXTENSION for a named model; the whole list only to choose one or to explain a refusal.
    const chosen = type ?? this.supportedIommus()[0];
    if (chosen === undefined) {
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
    this.#iommu =
      chosen === 'type1' || chosen === 'type1v2'
        ? new Type1Iommu(this, this.#native, chosen)
        : new SpaprTceIommu(this, this.#native, chosen, spapr);
    return this.#iommu;
  }

  #setNoIommu(): NoIommu {
    const model = native().constants.VFIO_NOIOMMU_IOMMU;
    if (this.checkExtension(model) <= 0) {
      throw new VfioError(
        RuleCode.IOMMU_UNSUPPORTED,
        `${this.description}: the kernel does not offer the noiommu model (boot with vfio.enable_unsafe_noiommu_mode=1 on a kernel built with CONFIG_VFIO_NOIOMMU)`,
      );
    }
    try {
      this.#native.setIommu(model);
    } catch (e) {
      rethrow(e, `${this.description}: setting the noiommu model`, (code) => (code === 'EPERM' ? 'the noiommu model needs CAP_SYS_RAWIO' : undefined));
    }
    this.#noIommu = new NoIommu(this);
    return this.#noIommu;
  }

  /** The IOMMU, or ERR_VFIO_IOMMU_NOT_SET naming the missing step. */
  requireIommu(): Iommu {
    this.assertOpen();
    if (this.#noIommu) {
      throw new VfioError(
        RuleCode.IOMMU_MISMATCH,
        `${this.description} has the noiommu model: nothing is mapped through an IOMMU; lock buffers with container.noIommu.lock(buffer) and give the device their bus addresses`,
      );
    }
    if (!this.#iommu) {
      throw new VfioError(RuleCode.IOMMU_NOT_SET, `${this.description} has no IOMMU model set; call container.setIommu() after attaching the group`);
    }
    return this.#iommu;
  }

  /** @internal Group.openDevice(): some model (an IOMMU, or noiommu) is set. */
  get modelSet(): boolean {
    return this.#iommu !== null || this.#noIommu !== null;
  }

  /** @internal Group.attach(): whether the attached groups are noiommu ones; null with none attached. */
  get noIommuGroups(): boolean | null {
    return this.#groups.length === 0 ? null : this.#groups[0].noIommu;
  }

  /** @internal Group.attach(): the fd SET_CONTAINER takes. */
  handle(): NativeContainer {
    this.assertOpen();
    return this.#native;
  }

  /** @internal Group.attach() succeeded. */
  groupAttached(group: Group): void {
    this.#groups.push(group);
  }

  /**
   * @internal A group's UNSET_CONTAINER succeeded. With the last one the
   * kernel has dropped the IOMMU context: so does the container, and the old
   * Iommu object is closed (use → ERR_VFIO_CLOSED).
   */
  groupDetached(group: Group): void {
    const i = this.#groups.indexOf(group);
    if (i >= 0) this.#groups.splice(i, 1);
    if (this.#groups.length === 0 && this.#iommu) {
      this.#iommu.contextGone();
      this.#iommu = null;
    }
    if (this.#groups.length === 0 && this.#noIommu) {
      this.#noIommu.contextGone();
      this.#noIommu = null;
    }
  }

  /** @internal The IOMMU whose context goes if `leaving` all leave (every group attached is among them). */
  iommuLeavingWith(leaving: readonly Group[]): Iommu | null {
    return this.#groups.every((g) => leaving.includes(g)) ? this.#iommu : null;
  }

  /** @internal The noiommu model whose locks go if `leaving` all leave. */
  noIommuLeavingWith(leaving: readonly Group[]): NoIommu | null {
    return this.#groups.every((g) => leaving.includes(g)) ? this.#noIommu : null;
  }

  /** @internal teardown(), step 5. */
  closeFd(): void {
    this.#native.close();
    this.markClosed();
  }

  protected override release(): void {
    const groups = [...this.#groups];
    teardown({
      subject: this,
      verb: 'close',
      devices: groups.flatMap((g) => g.devices),
      iommu: this.#iommu,
      noIommu: this.#noIommu,
      kvm: groups.flatMap((g) => g.kvmRegistrations()),
      unset: groups,
      fds: [...groups, this],
    });
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
  if (n === undefined) throw new VfioError(RuleCode.IOMMU_UNSUPPORTED, `this addon was built without the ${type} IOMMU constants`);
  return n;
}
