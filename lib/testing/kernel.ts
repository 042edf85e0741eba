// MockKernel (vfio/testing): a test twin of the addon (lib/native.ts) for
// users' tests and the project's own, modelled on what the real kernel did in
// the test guest. Its type1 answers are held to a recording of the
// real kernel (test/fixtures/kernel-answers.json, Debian's 6.1 x86_64 with
// QEMU's edu behind vfio-pci) by test/unit/fake-honesty.test.ts: change a
// behaviour here only together with the question that shows the kernel does
// it. With `k.iommuFamily = 'spapr'` the containers are sPAPR TCE ones,
// modelled on Debian's 6.12 ppc64el kernel in the ppc64 test guest, its
// defects included (see SpaprTable below; not covered by the recording).
// Every syscall is logged in `calls`, so a test can prove a rule stopped a
// call before it reached the "kernel"; `faults` fails the Nth call of a kind;
// `plug()` puts a scriptable device (device-model.ts) behind a BDF. It never
// stands in for the kernel: test/vm does.
//
// Lifetimes as the kernel has them: a group's file stays open (a second open
// is EBUSY, the container stays set) while its fd, a device fd or a KVM-VFIO
// registration holds it; a container's IOMMU context lives while a group is
// attached, and goes (model, mappings, pinned memory) when the last one
// leaves, even after the container fd closed.

import { constants as osConstants } from 'node:os';
import { setNativeBackend } from '../native';
import type * as N from '../native';
import type { DeviceBus, DeviceModel } from './device-model';
import { FaultPlan } from './faults';

export const C = {
  VFIO_API_VERSION: 0,
  VFIO_TYPE1_IOMMU: 1,
  VFIO_SPAPR_TCE_IOMMU: 2,
  VFIO_TYPE1v2_IOMMU: 3,
  VFIO_DMA_CC_IOMMU: 4,
  VFIO_SPAPR_TCE_v2_IOMMU: 7,
  VFIO_NOIOMMU_IOMMU: 8,
  VFIO_UNMAP_ALL: 9,
  VFIO_UPDATE_VADDR: 10,
  VFIO_EEH: 5,
  VFIO_IOMMU_INFO_PGSIZES: 1,
  VFIO_IOMMU_INFO_CAPS: 2,
  VFIO_IOMMU_SPAPR_INFO_DDW: 1,
  VFIO_GROUP_FLAGS_VIABLE: 1,
  VFIO_GROUP_FLAGS_CONTAINER_SET: 2,
  VFIO_DEVICE_FLAGS_RESET: 1,
  VFIO_DEVICE_FLAGS_PCI: 2,
  VFIO_PCI_BAR0_REGION_INDEX: 0,
  VFIO_PCI_ROM_REGION_INDEX: 6,
  VFIO_PCI_CONFIG_REGION_INDEX: 7,
  VFIO_PCI_VGA_REGION_INDEX: 8,
  VFIO_PCI_NUM_REGIONS: 9,
  VFIO_PCI_INTX_IRQ_INDEX: 0,
  VFIO_PCI_MSI_IRQ_INDEX: 1,
  VFIO_PCI_MSIX_IRQ_INDEX: 2,
  VFIO_PCI_ERR_IRQ_INDEX: 3,
  VFIO_PCI_REQ_IRQ_INDEX: 4,
  VFIO_PCI_NUM_IRQS: 5,
  VFIO_REGION_INFO_FLAG_READ: 1,
  VFIO_REGION_INFO_FLAG_WRITE: 2,
  VFIO_REGION_INFO_FLAG_MMAP: 4,
  VFIO_IRQ_INFO_EVENTFD: 1,
  VFIO_IRQ_INFO_MASKABLE: 2,
  VFIO_IRQ_INFO_AUTOMASKED: 4,
  VFIO_IRQ_INFO_NORESIZE: 8,
  VFIO_IRQ_SET_DATA_NONE: 1,
  VFIO_IRQ_SET_DATA_EVENTFD: 4,
  VFIO_IRQ_SET_ACTION_MASK: 8,
  VFIO_IRQ_SET_ACTION_UNMASK: 16,
  VFIO_IRQ_SET_ACTION_TRIGGER: 32,
  VFIO_DMA_MAP_FLAG_READ: 1,
  VFIO_DMA_MAP_FLAG_WRITE: 2,
  VFIO_DMA_UNMAP_FLAG_ALL: 2,
  KVM_API_VERSION: 12,
  KVM_CREATE_DEVICE_TEST: 1,
  KVM_DEV_TYPE_VFIO: 4,
  KVM_DEV_VFIO_GROUP: 1,
  KVM_DEV_VFIO_FILE: 1,
  KVM_DEV_VFIO_FILE_ADD: 1,
  KVM_DEV_VFIO_FILE_DEL: 2,
  KVM_DEV_VFIO_GROUP_SET_SPAPR_TCE: 3,
  KVM_CAP_IRQCHIP: 0,
  KVM_CAP_IRQFD_RESAMPLE: 82,
  KVM_MEM_READONLY: 2,
  KVM_IRQ_ROUTING_IRQCHIP: 1,
  KVM_IRQ_ROUTING_MSI: 2,
  KVM_IRQCHIP_PIC_MASTER: 0,
  KVM_IRQCHIP_PIC_SLAVE: 1,
  KVM_IRQCHIP_IOAPIC: 2,
  PROT_READ: 1,
  PROT_WRITE: 2,
  F_SEAL_SEAL: 1,
  F_SEAL_SHRINK: 2,
  F_SEAL_GROW: 4,
  F_SEAL_WRITE: 8,
};

const PAGE = 4096;

export function sysError(code: keyof typeof osConstants.errno, syscall: string): Error {
  const errno = osConstants.errno[code];
  return Object.assign(new Error(`${code}: fake, ${syscall}`), { code, errno: -errno, syscall });
}

function closedError(): Error {
  return Object.assign(new Error('closed'), { code: 'ERR_VFIO_CLOSED' });
}

/** A group of the mock kernel: its number and the devices in it. */
export interface MockGroupSpec {
  id: number;
  devices: string[];
  viable?: boolean;
}

/** A group's kernel side: its file is open while anything holds a reference to it. */
export class GroupState {
  /** The group fd, each device fd, each KVM-VFIO registration. */
  refs = 0;
  container: MockContainer | null = null;
  openDevices = 0;
  constructor(readonly spec: MockGroupSpec) {}
  get open(): boolean {
    return this.refs > 0;
  }
  get(): void {
    this.refs++;
  }
  /** The last reference gone: the file is released, and with it the group's place in its container. */
  put(): void {
    if (--this.refs > 0) return;
    const c = this.container;
    this.container = null;
    c?.leave(this);
  }
}

interface Mapping {
  iova: bigint;
  size: bigint;
  buffer: MockDmaBuffer | MockRegionMapping;
  offset: number;
  /** VFIO_DMA_MAP_FLAG_READ | _WRITE: what the device may do. */
  flags: number;
}

/** A DMA a device model made to an IOVA the IOMMU did not translate (the DMA was dropped). */
export interface IommuFault {
  bdf: string;
  iova: bigint;
  length: number;
  write: boolean;
}

let nextFd = 100;

abstract class MockFd implements N.NativeFdOwner {
  #fd = nextFd++;
  get fd(): number {
    return this.#fd;
  }
  protected live(): void {
    if (this.#fd < 0) throw closedError();
  }
  /** Closes the mock fd: idempotent, as the real one. */
  close(): void {
    if (this.#fd >= 0) this.onClose();
    this.#fd = -1;
  }
  protected onClose(): void {}
}

/** A model of the VFIO and KVM kernel interfaces in memory: `install()` it and lib/ runs against it instead of the addon. */
export class MockKernel implements N.NativeBinding {
  readonly constants = C;
  readonly pageSize = PAGE;
  readonly calls: string[] = [];
  readonly groups = new Map<number, GroupState>();
  /**
   * What type1 reports, as the guest's VT-d (39-bit, MSI window cut out) did;
   * dmaAvail is vfio_iommu_type1's dma_entry_limit, taken at SET_IOMMU.
   */
  type1 = {
    pgsizes: 0x40201000n,
    ranges: [
      { start: 0n, end: 0xfedfffffn },
      { start: 0xfef00000n, end: 0x7fffffffffn },
    ] as N.IovaRange[] | null,
    dmaAvail: 65535 as number | null,
    migration: { flags: 0, pgsizeBitmap: 0x1000n, maxDirtyBitmapSize: 0x10000000n } as N.Type1InfoRaw['migration'],
  };
  /** The device is edu, which has no reset method; true models one with FLR. */
  resettable = false;
  /**
   * A plugged model's BAR holding its MSI-X table: true answers as Linux
   * 4.16+ does (VFIO_REGION_INFO_CAP_MSIX_MAPPABLE, no sparse areas: the 6.1
   * guest kernel did so for QEMU's nvme); false as older kernels did (sparse
   * areas around the table's pages, no capability).
   */
  msixMappable = true;
  /**
   * What a PCI hot reset of a device hits: device name → the names below the
   * same bridge (itself included). A device not listed sits on the root bus:
   * GET_PCI_HOT_RESET_INFO answers ENODEV, as it did for edu at 00:03.0.
   */
  hotResetBus = new Map<string, string[]>();
  /** Which IOMMU driver the next containers offer: vfio_iommu_type1 or vfio_iommu_spapr_tce. */
  iommuFamily: 'type1' | 'spapr' = 'type1';
  /** sPAPR GET_INFO the next container reports (ddw only for v2), as the ppc64 guest's kernel did. */
  spapr = {
    dma32Start: 0n,
    dma32Size: 0x40000000n,
    ddw: { pgsizes: 0x1211000n, maxDynamicWindowsSupported: 2, levels: 1 },
    /** TCEs a previous owner left in the default window of the next container. */
    leftovers: [] as { iova: bigint; size: bigint }[],
  };
  /** Set when a call reached what oopsed the real kernel (a v2 map straddling a window's end). */
  oopses: string[] = [];
  memlock: [bigint, bigint] = [8n * 1024n * 1024n, 8n * 1024n * 1024n];
  /** Fail the next syscall of this name with this code. */
  failNext = new Map<string, keyof typeof osConstants.errno>();
  /** Fault injection: the Nth call of a syscall fails with an errno (faults.inject). */
  readonly faults = new FaultPlan();
  /** Device models plugged in, by BDF (plug()); a device without one is edu's BAR as plain memory. */
  readonly models = new Map<string, DeviceModel>();
  /** DMAs of device models the IOMMU refused. */
  readonly iommuFaults: IommuFault[] = [];
  #previous: N.NativeBinding | undefined;
  #installed = false;
  readonly containers: MockContainer[] = [];
  readonly eventfds: MockEventFd[] = [];
  readonly buffers: MockDmaBuffer[] = [];
  readonly devices: MockDevice[] = [];
  readonly vms: MockVm[] = [];

  constructor(groups: MockGroupSpec[] = [{ id: 3, devices: ['0000:00:03.0'] }]) {
    for (const spec of groups) this.groups.set(spec.id, new GroupState(spec));
  }

  /** Log a syscall; throw if a failure was queued or injected for it. */
  syscall(name: string): void {
    this.calls.push(name);
    const code = this.failNext.get(name);
    if (code) {
      this.failNext.delete(name);
      throw sysError(code, name);
    }
    const fault = this.faults.take(name);
    if (fault) throw sysError(fault.code, name);
  }

  /** Make this the backend the library uses (every Container.open() etc. from now on); dispose() undoes it. */
  install(): this {
    if (!this.#installed) this.#previous = setNativeBackend(this);
    this.#installed = true;
    return this;
  }

  /** Give the library its previous backend back (the real addon, unless another mock was installed). */
  [Symbol.dispose](): void {
    if (this.#installed) setNativeBackend(this.#previous);
    this.#installed = false;
  }

  /** Plug a device model in at `bdf` (a device some group's spec lists): its BAR0, DMA and interrupts. */
  plug(bdf: string, model: DeviceModel): void {
    const group = [...this.groups.values()].find((g) => g.spec.devices.includes(bdf));
    if (!group) throw new Error(`mock kernel: no group lists ${bdf}`);
    this.models.set(bdf, model);
    model.attach(new ModelBus(this, bdf, group));
  }

  openContainer(path: string): N.NativeContainer {
    this.syscall('open');
    if (path !== '/dev/vfio/vfio') throw Object.assign(sysError('ENOENT', 'open'), { path });
    const c = new MockContainer(this);
    this.containers.push(c);
    return c;
  }

  openGroup(path: string): N.NativeGroup {
    this.syscall('open');
    const id = Number(/\/vfio\/(\d+)$/.exec(path)?.[1]);
    const g = this.groups.get(id);
    if (!g) throw Object.assign(sysError('ENOENT', 'open'), { path });
    if (g.open) throw Object.assign(sysError('EBUSY', 'open'), { path });
    g.get();
    return new MockGroup(this, g);
  }

  // The kernel modelled here is Debian's: no CONFIG_IOMMUFD, no device cdevs.
  openIommufd(path: string): N.NativeIommufd {
    this.syscall('open');
    throw Object.assign(sysError('ENOENT', 'open'), { path });
  }

  openDeviceCdev(path: string): N.NativeDevice {
    this.syscall('open');
    throw Object.assign(sysError('ENOENT', 'open'), { path });
  }

  allocDmaBuffer(size: number, hugePageSize: number): N.NativeDmaBuffer {
    this.syscall('mmap');
    const b = new MockDmaBuffer(size, hugePageSize || PAGE, -1);
    this.buffers.push(b);
    return b;
  }

  createMemfdBuffer(_name: string, size: number, hugePageSize: number): N.NativeDmaBuffer {
    this.syscall('memfd_create');
    const fd = nextFd++;
    this.files.set(fd, { regular: true, seals: C.F_SEAL_SHRINK });
    const b = new MockDmaBuffer(size, hugePageSize || PAGE, fd, this.files.get(fd));
    this.buffers.push(b);
    return b;
  }

  /** Files a caller's fd may name for mapFdBuffer; an fd not listed is a regular file without seals (ext4). */
  readonly files = new Map<number, MockFile>();

  mapFdBuffer(fd: number, _offset: number, size: number): N.NativeDmaBuffer {
    this.syscall('mmap');
    const b = new MockDmaBuffer(size, PAGE, fd + 1000, this.files.get(fd) ?? { regular: true, seals: -1 });
    this.buffers.push(b);
    return b;
  }

  createEventFd(): N.NativeEventFd {
    this.syscall('eventfd');
    const e = new MockEventFd();
    this.eventfds.push(e);
    return e;
  }

  /** Set to false to model a host without /dev/kvm. */
  kvmPresent = true;

  openKvm(path: string): N.NativeKvm {
    this.syscall('open');
    if (!this.kvmPresent) throw Object.assign(sysError('ENOENT', 'open'), { path });
    return new MockKvm(this);
  }

  adoptVm(fd: number): N.NativeVm {
    this.syscall('fcntl(F_DUPFD_CLOEXEC)');
    if (fd < 3) throw sysError('EBADF', 'fcntl(F_DUPFD_CLOEXEC)');
    return new MockVm(this);
  }

  getMemlockLimit(): [bigint, bigint] {
    return this.memlock;
  }
}

/** One sPAPR DMA window and its TCEs. */
interface SpaprWindow {
  start: bigint;
  size: bigint;
  pageShift: number;
}

/** The mock kernel's container: its IOMMU model and the mappings the (mock) kernel holds. */
export class MockContainer extends MockFd implements N.NativeContainer {
  iommu = 0;
  readonly groups = new Set<GroupState>();
  readonly mappings: Mapping[] = [];
  dmaAvail: number | null = null;
  readonly family: 'type1' | 'spapr';
  /** sPAPR state: v1 enabled, v2 registrations, windows. */
  enabled = false;
  readonly registrations: { buffer: MockDmaBuffer; offset: number; size: number }[] = [];
  windows: SpaprWindow[] = [];
  /** v2: UNMAP is EPERM until the first registration ties the container to the process. */
  mmSet = false;
  constructor(readonly k: MockKernel) {
    super();
    this.family = k.iommuFamily;
  }
  get #spapr(): boolean {
    return this.iommu === C.VFIO_SPAPR_TCE_IOMMU || this.iommu === C.VFIO_SPAPR_TCE_v2_IOMMU;
  }
  get #v2(): boolean {
    return this.iommu === C.VFIO_SPAPR_TCE_v2_IOMMU;
  }
  /** An ioctl the container passes to its IOMMU driver: EINVAL while there is none. */
  #driverIoctl(name: string): void {
    this.live();
    this.k.syscall(name);
    if (!this.iommu) throw sysError('EINVAL', name);
  }
  getApiVersion(): number {
    this.live();
    this.k.syscall('ioctl(VFIO_GET_API_VERSION)');
    return 0;
  }
  checkExtension(ext: number): number {
    this.live();
    this.k.syscall('ioctl(VFIO_CHECK_EXTENSION)');
    return this.#offers(ext) ? 1 : 0;
  }
  #offers(ext: number): boolean {
    if (this.family === 'spapr') return ext === C.VFIO_SPAPR_TCE_IOMMU || ext === C.VFIO_SPAPR_TCE_v2_IOMMU;
    // type1 answers UPDATE_VADDR only once it is the container's driver.
    return [C.VFIO_TYPE1_IOMMU, C.VFIO_TYPE1v2_IOMMU, C.VFIO_UNMAP_ALL].includes(ext) || (ext === C.VFIO_UPDATE_VADDR && this.iommu !== 0);
  }
  setIommu(type: number): void {
    this.live();
    this.k.syscall('ioctl(VFIO_SET_IOMMU)');
    if (this.groups.size === 0 || this.iommu) throw sysError('EINVAL', 'ioctl(VFIO_SET_IOMMU)');
    if (type === C.VFIO_UNMAP_ALL || type === C.VFIO_UPDATE_VADDR || !this.#offers(type)) throw sysError('ENODEV', 'ioctl(VFIO_SET_IOMMU)');
    this.iommu = type;
    this.dmaAvail = this.k.type1.dmaAvail;
    if (this.#spapr) {
      const sp = this.k.spapr;
      this.windows = [{ start: sp.dma32Start, size: sp.dma32Size, pageShift: 12 }];
      for (const l of sp.leftovers) this.mappings.push({ iova: l.iova, size: l.size, buffer: new MockDmaBuffer(Number(l.size), PAGE, -1), offset: 0, flags: 3 });
    }
  }
  /** The IOMMU context goes: model, mappings (their pinned memory), sPAPR state. */
  #releaseIommu(): void {
    this.iommu = 0;
    this.mappings.length = 0;
    this.dmaAvail = null;
    this.enabled = false;
    this.registrations.length = 0;
    this.windows = [];
    this.mmSet = false;
  }
  /** @internal A group left (UNSET_CONTAINER, or its file was released). */
  leave(g: GroupState): void {
    this.groups.delete(g);
    if (this.groups.size === 0) this.#releaseIommu();
  }
  type1GetInfo(): N.Type1InfoRaw {
    this.#driverIoctl('ioctl(VFIO_IOMMU_GET_INFO)');
    if (this.#spapr) throw sysError('ENOTTY', 'ioctl(VFIO_IOMMU_GET_INFO)');
    const t = this.k.type1;
    return {
      flags: C.VFIO_IOMMU_INFO_PGSIZES | C.VFIO_IOMMU_INFO_CAPS,
      iovaPgsizes: t.pgsizes,
      iovaRanges: t.ranges,
      dmaAvail: this.dmaAvail,
      migration: t.migration && { ...t.migration, pgsizeBitmap: t.pgsizes & -t.pgsizes },
    };
  }
  // vfio_dma_do_map's order: arguments, overlap, entry limit, IOVA ranges, pinning.
  mapDma(buffer: N.NativeDmaBuffer, offset: number, size: number, iova: bigint, flags: number): void {
    const b = buffer as MockDmaBuffer;
    this.#map(b, b.closed, offset, size, iova, flags);
  }
  /** type1 maps a BAR's PFNMAP vma as it maps memory (nothing to pin, nothing accounted). */
  mapDmaRegion(mapping: N.NativeRegionMapping, offset: number, size: number, iova: bigint, flags: number): void {
    const r = mapping as MockRegionMapping;
    this.#map(r, r.closed, offset, size, iova, flags);
  }
  #map(source: MockDmaBuffer | MockRegionMapping, closed: boolean, offset: number, size: number, iova: bigint, flags: number): void {
    this.live();
    if (closed) throw closedError();
    if (offset + size > source.size) throw Object.assign(new RangeError('out of range'), { code: 'ERR_OUT_OF_RANGE' });
    const name = 'ioctl(VFIO_IOMMU_MAP_DMA)';
    this.#driverIoctl(name);
    const memory = source instanceof MockDmaBuffer ? source : null;
    if (this.#spapr) {
      // A TCE needs a struct page: a BAR cannot be mapped there.
      if (!memory) throw sysError('EINVAL', name);
      return this.#spaprMap(memory, offset, BigInt(size), iova);
    }
    const min = this.k.type1.pgsizes & -this.k.type1.pgsizes;
    const s = BigInt(size);
    const prot = flags & (C.VFIO_DMA_MAP_FLAG_READ | C.VFIO_DMA_MAP_FLAG_WRITE);
    if (!prot || s === 0n || iova % min !== 0n || s % min !== 0n || BigInt(offset) % min !== 0n) throw sysError('EINVAL', name);
    if (this.mappings.some((m) => iova < m.iova + m.size && m.iova < iova + s)) throw sysError('EEXIST', name);
    if (this.dmaAvail !== null && this.dmaAvail <= 0) throw sysError('ENOSPC', name);
    const ranges = this.k.type1.ranges;
    if (ranges && !ranges.some((r) => iova >= r.start && iova + s - 1n <= r.end)) throw sysError('EINVAL', name);
    // A BAR (a peer-to-peer source) pins and accounts nothing.
    const pinned = this.k.containers.reduce((n, c) => n + c.mappings.reduce((a, m) => a + (m.buffer instanceof MockDmaBuffer ? m.size : 0n), 0n), 0n);
    if (memory && this.k.memlock[0] >= 0n && pinned + s > this.k.memlock[0]) throw sysError('ENOMEM', name);
    this.mappings.push({ iova, size: s, buffer: source, offset, flags: prot });
    if (this.dmaAvail !== null) this.dmaAvail--;
  }
  async mapDmaAsync(buffer: N.NativeDmaBuffer, offset: number, size: number, iova: bigint, flags: number): Promise<void> {
    await new Promise((r) => setImmediate(r));
    this.mapDma(buffer, offset, size, iova, flags);
  }
  // vfio_dma_do_unmap: v2 refuses a range that cuts a mapping; v1 unmaps
  // every mapping that starts inside the range, whole.
  unmapDma(iova: bigint, size: bigint, flags: number): bigint {
    const name = 'ioctl(VFIO_IOMMU_UNMAP_DMA)';
    this.#driverIoctl(name);
    if (this.#spapr) return this.#spaprUnmap(iova, size);
    const min = this.k.type1.pgsizes & -this.k.type1.pgsizes;
    const all = (flags & C.VFIO_DMA_UNMAP_FLAG_ALL) !== 0;
    if (iova % min !== 0n) throw sysError('EINVAL', name);
    if (all ? iova !== 0n || size !== 0n : size === 0n || size % min !== 0n) throw sysError('EINVAL', name);
    const end = all ? 1n << 64n : iova + size;
    const v2 = this.iommu === C.VFIO_TYPE1v2_IOMMU;
    if (v2 && this.mappings.some((m) => m.iova < end && iova < m.iova + m.size && (m.iova < iova || m.iova + m.size > end))) {
      throw sysError('EINVAL', name);
    }
    const hit = this.mappings.filter((m) => m.iova >= iova && m.iova < end);
    let total = 0n;
    for (const m of hit) {
      this.mappings.splice(this.mappings.indexOf(m), 1);
      total += m.size;
      if (this.dmaAvail !== null) this.dmaAvail++;
    }
    return total;
  }
  /** unmapDma, settled asynchronously as the addon's thread pool does. */
  async unmapDmaAsync(iova: bigint, size: bigint, flags: number): Promise<bigint> {
    await new Promise((r) => setImmediate(r));
    return this.unmapDma(iova, size, flags);
  }
  // --- sPAPR TCE, as Debian's 6.12 ppc64el kernel answered in the guest ---
  spaprGetInfo(): N.SpaprInfoRaw {
    this.#driverIoctl('ioctl(VFIO_IOMMU_SPAPR_TCE_GET_INFO)');
    if (!this.#spapr) throw sysError('ENOTTY', 'ioctl(VFIO_IOMMU_SPAPR_TCE_GET_INFO)');
    const sp = this.k.spapr;
    return {
      flags: this.#v2 ? C.VFIO_IOMMU_SPAPR_INFO_DDW : 0,
      dma32WindowStart: sp.dma32Start,
      dma32WindowSize: sp.dma32Size,
      ddw: this.#v2 ? { ...sp.ddw } : null,
    };
  }
  enable(): void {
    this.#driverIoctl('ioctl(VFIO_IOMMU_ENABLE)');
    if (!this.#spapr || this.#v2) throw sysError('ENOTTY', 'ioctl(VFIO_IOMMU_ENABLE)');
    if (this.enabled) throw sysError('EBUSY', 'ioctl(VFIO_IOMMU_ENABLE)');
    this.enabled = true;
  }
  disable(): void {
    this.#driverIoctl('ioctl(VFIO_IOMMU_DISABLE)');
    if (!this.#spapr || this.#v2) throw sysError('ENOTTY', 'ioctl(VFIO_IOMMU_DISABLE)');
    this.enabled = false;
  }
  spaprRegisterMemory(buffer: N.NativeDmaBuffer, offset: number, size: number): void {
    this.#driverIoctl('ioctl(VFIO_IOMMU_SPAPR_REGISTER_MEMORY)');
    if (!this.#v2) throw sysError('ENOTTY', 'ioctl(VFIO_IOMMU_SPAPR_REGISTER_MEMORY)');
    const b = buffer as MockDmaBuffer;
    if (offset % b.pageSize || size % b.pageSize || size === 0) throw sysError('EINVAL', 'ioctl(VFIO_IOMMU_SPAPR_REGISTER_MEMORY)');
    const same = this.registrations.find((r) => r.buffer === b && r.offset === offset && r.size === size);
    if (same) throw sysError('EBUSY', 'ioctl(VFIO_IOMMU_SPAPR_REGISTER_MEMORY)');
    if (this.registrations.some((r) => r.buffer === b && offset < r.offset + r.size && r.offset < offset + size)) {
      throw sysError('EINVAL', 'ioctl(VFIO_IOMMU_SPAPR_REGISTER_MEMORY)');
    }
    this.registrations.push({ buffer: b, offset, size });
    this.mmSet = true;
  }
  spaprUnregisterMemory(buffer: N.NativeDmaBuffer, offset: number, size: number): void {
    this.#driverIoctl('ioctl(VFIO_IOMMU_SPAPR_UNREGISTER_MEMORY)');
    if (!this.#v2) throw sysError('ENOTTY', 'ioctl(VFIO_IOMMU_SPAPR_UNREGISTER_MEMORY)');
    // Defect modelled: it succeeds while the memory is still mapped.
    const i = this.registrations.findIndex((r) => r.buffer === buffer && r.offset === offset && r.size === size);
    if (i < 0) throw sysError('ENOENT', 'ioctl(VFIO_IOMMU_SPAPR_UNREGISTER_MEMORY)');
    this.registrations.splice(i, 1);
  }
  spaprCreateWindow(pageShift: number, windowSize: bigint, levels: number): bigint {
    this.#driverIoctl('ioctl(VFIO_IOMMU_SPAPR_TCE_CREATE)');
    if (!this.#v2) throw sysError('ENOTTY', 'ioctl(VFIO_IOMMU_SPAPR_TCE_CREATE)');
    const ddw = this.k.spapr.ddw;
    // levels 0 is accepted, as the real kernel did.
    if (levels > ddw.levels || (ddw.pgsizes & (1n << BigInt(pageShift))) === 0n || (windowSize & (windowSize - 1n)) !== 0n) {
      throw sysError('EINVAL', 'ioctl(VFIO_IOMMU_SPAPR_TCE_CREATE)');
    }
    if (this.windows.length >= ddw.maxDynamicWindowsSupported) throw sysError('ENOSPC', 'ioctl(VFIO_IOMMU_SPAPR_TCE_CREATE)');
    const start = this.windows.some((w) => w.start === 0n) ? 1n << 59n : 0n;
    this.windows.push({ start, size: windowSize, pageShift });
    return start;
  }
  spaprRemoveWindow(start: bigint): void {
    this.#driverIoctl('ioctl(VFIO_IOMMU_SPAPR_TCE_REMOVE)');
    if (!this.#v2) throw sysError('ENOTTY', 'ioctl(VFIO_IOMMU_SPAPR_TCE_REMOVE)');
    // Any address inside a window removes it, TCEs and all.
    const w = this.windows.find((x) => start >= x.start && start < x.start + x.size);
    if (!w) throw sysError('EINVAL', 'ioctl(VFIO_IOMMU_SPAPR_TCE_REMOVE)');
    this.windows = this.windows.filter((x) => x !== w);
    this.#drop(w.start, w.size);
  }
  eehPeOp(): number {
    this.#driverIoctl('ioctl(VFIO_EEH_PE_OP)');
    throw sysError('ENOTTY', 'ioctl(VFIO_EEH_PE_OP)');
  }
  #spaprMap(b: MockDmaBuffer, offset: number, size: bigint, iova: bigint): void {
    const name = 'ioctl(VFIO_IOMMU_MAP_DMA)';
    if (!this.#v2 && !this.enabled) throw sysError('EPERM', name);
    if (this.#v2 && !this.registrations.some((r) => r.buffer === b && offset >= r.offset && offset + Number(size) <= r.offset + r.size)) {
      throw sysError('EINVAL', name);
    }
    const w = this.windows.find((x) => iova >= x.start && iova < x.start + x.size);
    if (!w) throw sysError('ENXIO', name);
    const page = 1n << BigInt(w.pageShift);
    if (size % page !== 0n || BigInt(offset) % page !== 0n || BigInt(b.pageSize) < page) throw sysError('EINVAL', name);
    if (iova + size > w.start + w.size) {
      // v2 oopsed in tce_iommu_unuse_page_v2; v1 returned EINTR.
      if (this.#v2) this.k.oopses.push(`map of ${size} bytes at ${iova} straddling the window end`);
      throw sysError('EINTR', name);
    }
    // Defect modelled: a misaligned IOVA returns +1 and maps nothing we can name.
    if (iova % page !== 0n) return;
    // Defect modelled: a second map of an IOVA silently replaces the first.
    this.#drop(iova, size);
    this.mappings.push({ iova, size, buffer: b, offset, flags: 3 });
  }
  #spaprUnmap(iova: bigint, size: bigint): bigint {
    const name = 'ioctl(VFIO_IOMMU_UNMAP_DMA)';
    if (!this.#v2 && !this.enabled) throw sysError('EPERM', name);
    if (this.#v2 && !this.mmSet) throw sysError('EPERM', name);
    if (!this.windows.some((w) => iova >= w.start && iova + size <= w.start + w.size)) throw sysError('ENXIO', name);
    this.#drop(iova, size);
    // sPAPR echoes the size asked for.
    return size;
  }
  #drop(iova: bigint, size: bigint): void {
    for (const m of this.mappings.filter((x) => x.iova < iova + size && iova < x.iova + x.size)) this.mappings.splice(this.mappings.indexOf(m), 1);
  }
  protected override onClose(): void {
    // Attached groups hold the container: its IOMMU context goes with the last of them.
    if (this.groups.size === 0) this.#releaseIommu();
  }
}

/** The mock kernel's group. */
export class MockGroup extends MockFd implements N.NativeGroup {
  constructor(
    readonly k: MockKernel,
    readonly state: GroupState,
  ) {
    super();
  }
  getStatus(): number {
    this.live();
    this.k.syscall('ioctl(VFIO_GROUP_GET_STATUS)');
    return (this.state.spec.viable === false ? 0 : C.VFIO_GROUP_FLAGS_VIABLE) | (this.state.container ? C.VFIO_GROUP_FLAGS_CONTAINER_SET : 0);
  }
  setContainer(container: N.NativeContainer): void {
    this.live();
    const c = container as MockContainer;
    if (c.fd < 0) throw closedError();
    this.k.syscall('ioctl(VFIO_GROUP_SET_CONTAINER)');
    if (this.state.spec.viable === false) throw sysError('EPERM', 'ioctl(VFIO_GROUP_SET_CONTAINER)');
    if (this.state.container) throw sysError('EINVAL', 'ioctl(VFIO_GROUP_SET_CONTAINER)');
    this.state.container = c;
    c.groups.add(this.state);
  }
  unsetContainer(): void {
    this.live();
    this.k.syscall('ioctl(VFIO_GROUP_UNSET_CONTAINER)');
    const c = this.state.container;
    if (!c) throw sysError('EINVAL', 'ioctl(VFIO_GROUP_UNSET_CONTAINER)');
    if (this.state.openDevices > 0) throw sysError('EBUSY', 'ioctl(VFIO_GROUP_UNSET_CONTAINER)');
    this.state.container = null;
    c.leave(this.state);
  }
  getDeviceFd(name: string): N.NativeDevice {
    this.live();
    this.k.syscall('ioctl(VFIO_GROUP_GET_DEVICE_FD)');
    if (!this.state.container?.iommu) throw sysError('EINVAL', 'ioctl(VFIO_GROUP_GET_DEVICE_FD)');
    if (!this.state.spec.devices.includes(name)) throw sysError('ENODEV', 'ioctl(VFIO_GROUP_GET_DEVICE_FD)');
    const d = new MockDevice(this.k, this.state, name);
    this.k.devices.push(d);
    return d;
  }
  protected override onClose(): void {
    // The file goes only when no device fd or KVM registration holds it.
    this.state.put();
  }
}

const REGION_SHIFT = 40n; // VFIO_PCI_OFFSET_SHIFT: region index << 40 is its offset in the device fd
const IRQ_SET = 'ioctl(VFIO_DEVICE_SET_IRQS)';

/**
 * QEMU's edu behind vfio-pci, as the guest's kernel reported it: BAR0 (1 MiB,
 * mappable) and 256 bytes of config space, no other region, no reset method
 * (unless k.resettable); INTx, one MSI vector, no MSI-X, no ERR (not PCIe), REQ.
 */
export class MockDevice extends MockFd implements N.NativeDevice {
  /** BAR0 as memory: edu's ident at 0, and ~0 where nothing was written (edu reads unknown registers as ~0). */
  readonly bar0 = Buffer.alloc(1 << 20, 0xff);
  readonly config = Buffer.alloc(256);
  /** Eventfds per index, by vector. */
  readonly irqs = new Map<number, (N.NativeEventFd | null)[]>();
  resets = 0;
  /** The one of INTx / MSI / MSI-X in use (vfio-pci allows one at a time), -1 for none. */
  #irqType = -1;
  /** The device file is held by its fd and by each BAR mmap: it is released when all are gone. */
  #refs = 1;
  /** The device's behaviour when a test plugged one in (k.plug), else null: BAR0 is plain memory. */
  readonly model: DeviceModel | null;
  constructor(
    readonly k: MockKernel,
    readonly group: GroupState,
    readonly name = group.spec.devices[0],
  ) {
    super();
    group.openDevices++;
    group.get();
    this.model = k.models.get(name) ?? null;
    this.bar0.writeUInt32LE(0x010000ed, 0);
    this.config.writeUInt16LE(this.model?.vendorId ?? 0x1234, 0);
    this.config.writeUInt16LE(this.model?.deviceId ?? 0x11e8, 2);
    const msix = this.model?.msix;
    if (msix) {
      // One capability, MSI-X, at 0x40: its table and PBA in BAR0.
      this.config.writeUInt16LE(0x10, 0x06);
      this.config.writeUInt8(0x40, 0x34);
      this.config.writeUInt8(0x11, 0x40);
      this.config.writeUInt16LE(msix.vectors - 1, 0x42);
      this.config.writeUInt32LE(msix.tableOffset, 0x44);
      this.config.writeUInt32LE(msix.pbaOffset, 0x48);
    }
  }
  get #bar0Size(): number {
    return this.model?.bar0Size ?? this.bar0.length;
  }
  getInfo(): N.DeviceInfoRaw {
    this.live();
    this.k.syscall('ioctl(VFIO_DEVICE_GET_INFO)');
    return { flags: C.VFIO_DEVICE_FLAGS_PCI | (this.k.resettable ? C.VFIO_DEVICE_FLAGS_RESET : 0), numRegions: 9, numIrqs: 5 };
  }
  getRegionInfo(index: number): N.RegionInfoRaw {
    this.live();
    this.k.syscall('ioctl(VFIO_DEVICE_GET_REGION_INFO)');
    const rw = C.VFIO_REGION_INFO_FLAG_READ | C.VFIO_REGION_INFO_FLAG_WRITE;
    const offset = BigInt(index) << REGION_SHIFT;
    const region = (flags: number, size: bigint) => ({ index, flags, size, offset, sparseMmap: null, msixMappable: false, type: null });
    if (index === C.VFIO_PCI_BAR0_REGION_INDEX) return { ...region(rw | C.VFIO_REGION_INFO_FLAG_MMAP, BigInt(this.#bar0Size)), ...this.#msixAreas() };
    if (index === C.VFIO_PCI_CONFIG_REGION_INDEX) return region(rw, BigInt(this.config.length));
    // The VGA region exists only for VGA devices.
    if (index < C.VFIO_PCI_CONFIG_REGION_INDEX) return region(0, 0n);
    throw sysError('EINVAL', 'ioctl(VFIO_DEVICE_GET_REGION_INFO)');
  }
  /** What vfio-pci says of the BAR holding the MSI-X table (see MockKernel.msixMappable). */
  #msixAreas(): Pick<N.RegionInfoRaw, 'sparseMmap' | 'msixMappable'> {
    const msix = this.model?.msix;
    if (!msix) return { sparseMmap: null, msixMappable: false };
    if (this.k.msixMappable) return { sparseMmap: null, msixMappable: true };
    const page = 4096;
    const start = Math.floor(msix.tableOffset / page) * page;
    const end = Math.ceil((msix.tableOffset + msix.vectors * 16) / page) * page;
    const size = this.#bar0Size;
    const areas = [
      { offset: 0n, size: BigInt(start) },
      { offset: BigInt(end), size: BigInt(size - end) },
    ].filter((a) => a.size > 0n);
    return { sparseMmap: areas, msixMappable: false };
  }
  getIrqInfo(index: number): N.IrqInfoRaw {
    this.live();
    this.k.syscall('ioctl(VFIO_DEVICE_GET_IRQ_INFO)');
    // ERR exists only on PCIe devices.
    if (index === C.VFIO_PCI_ERR_IRQ_INDEX || index >= C.VFIO_PCI_NUM_IRQS) throw sysError('EINVAL', 'ioctl(VFIO_DEVICE_GET_IRQ_INFO)');
    if (index === C.VFIO_PCI_INTX_IRQ_INDEX) return { index, flags: C.VFIO_IRQ_INFO_EVENTFD | C.VFIO_IRQ_INFO_MASKABLE | C.VFIO_IRQ_INFO_AUTOMASKED, count: 1 };
    return { index, flags: C.VFIO_IRQ_INFO_EVENTFD | C.VFIO_IRQ_INFO_NORESIZE, count: this.#irqCount(index) };
  }
  #irqCount(index: number): number {
    if (index === C.VFIO_PCI_MSIX_IRQ_INDEX) return this.model?.msix?.vectors ?? 0;
    return index === C.VFIO_PCI_ERR_IRQ_INDEX ? 0 : 1;
  }
  /** vfio_set_irqs_validate_and_prepare: the index exists and [start, start+count) lies in it. */
  #validate(index: number, start: number, count: number): void {
    if (index < 0 || index >= C.VFIO_PCI_NUM_IRQS) throw sysError('EINVAL', IRQ_SET);
    const max = this.#irqCount(index);
    if (start >= max || start + count > max) throw sysError('EINVAL', IRQ_SET);
  }
  /** INTx, MSI, MSI-X exclude each other; REQ stands apart. */
  #exclusive(index: number): boolean {
    return index === C.VFIO_PCI_INTX_IRQ_INDEX || index === C.VFIO_PCI_MSI_IRQ_INDEX || index === C.VFIO_PCI_MSIX_IRQ_INDEX;
  }
  /** INTx's unmask eventfd (DATA_EVENTFD | ACTION_UNMASK), as vfio_virqfd holds it. */
  unmaskFd: N.NativeEventFd | null = null;
  setIrqsEventfds(index: number, start: number, eventfds: (N.NativeEventFd | null)[], action = C.VFIO_IRQ_SET_ACTION_TRIGGER): void {
    this.live();
    this.k.syscall(IRQ_SET);
    this.#validate(index, start, eventfds.length);
    if (action === C.VFIO_IRQ_SET_ACTION_UNMASK) {
      // Only INTx is maskable, and only while enabled.
      if (index !== C.VFIO_PCI_INTX_IRQ_INDEX || !this.irqs.has(index) || eventfds.length !== 1) throw sysError('EINVAL', IRQ_SET);
      this.unmaskFd = eventfds[0];
      return;
    }
    const live = this.irqs.get(index);
    // vfio_msi_set_block: a live index takes eventfds (or -1) only for the
    // vectors it was enabled with; it cannot grow.
    if (live && index !== C.VFIO_PCI_INTX_IRQ_INDEX && start + eventfds.length > live.length) throw sysError('EINVAL', IRQ_SET);
    if (this.#exclusive(index)) {
      if (this.#irqType !== -1 && this.#irqType !== index) throw sysError('EINVAL', IRQ_SET);
      this.#irqType = index;
    }
    const fds = live ?? new Array<N.NativeEventFd | null>(start + eventfds.length).fill(null);
    eventfds.forEach((fd, i) => (fds[start + i] = fd));
    this.irqs.set(index, fds);
  }
  setIrqsNone(index: number, start: number, count: number, action: number): void {
    this.live();
    this.k.syscall(IRQ_SET);
    this.#validate(index, start, count);
    const on = this.irqs.has(index);
    const trigger = action === C.VFIO_IRQ_SET_ACTION_TRIGGER;
    if (index === C.VFIO_PCI_INTX_IRQ_INDEX) {
      if (trigger && on && count === 0) return this.#disable(index);
      if (!on || start !== 0 || count !== 1) throw sysError('EINVAL', IRQ_SET);
      if (trigger) this.raise(index);
      return;
    }
    // MSI, MSI-X and REQ have no mask.
    if (!trigger) throw sysError('ENOTTY', IRQ_SET);
    if (on && count === 0) return this.#disable(index);
    if (!on) throw sysError('EINVAL', IRQ_SET);
    for (let v = start; v < start + count; v++) this.raise(index, v);
  }
  #disable(index: number): void {
    this.irqs.delete(index);
    if (index === C.VFIO_PCI_INTX_IRQ_INDEX) this.unmaskFd = null;
    if (this.#irqType === index) this.#irqType = -1;
  }
  /** Device side: raise vector `v` of `index` (as edu's raise-interrupt register would). */
  raise(index: number, v = 0): void {
    this.irqs.get(index)?.[v]?.signal(1);
  }
  // A 6.1 kernel's vfio-pci has no cdev ioctls: they reach the driver, which answers ENOTTY.
  bindIommufd(_iommufd: N.NativeIommufd): number {
    this.live();
    throw sysError('ENOTTY', 'ioctl(VFIO_DEVICE_BIND_IOMMUFD)');
  }
  attachIommufdPt(_ptId: number): number {
    this.live();
    throw sysError('ENOTTY', 'ioctl(VFIO_DEVICE_ATTACH_IOMMUFD_PT)');
  }
  detachIommufdPt(): void {
    this.live();
    throw sysError('ENOTTY', 'ioctl(VFIO_DEVICE_DETACH_IOMMUFD_PT)');
  }

  reset(): void {
    this.live();
    this.k.syscall('ioctl(VFIO_DEVICE_RESET)');
    if (!this.k.resettable) throw sysError('EINVAL', 'ioctl(VFIO_DEVICE_RESET)');
    this.resets++;
  }
  /** vfio_pci_get_hot_reset_info: the devices below the bridge, with their groups. */
  getPciHotResetInfo(): N.HotResetInfoRaw {
    this.live();
    const name = 'ioctl(VFIO_DEVICE_GET_PCI_HOT_RESET_INFO)';
    this.k.syscall(name);
    const hit = this.k.hotResetBus.get(this.name);
    if (!hit) throw sysError('ENODEV', name);
    return {
      flags: 0,
      devices: hit.map((dev) => {
        const [segment, bus, slot] = dev.split(/[:.]/).map((x) => parseInt(x, 16));
        const fn = Number(dev.split('.')[1]);
        const group = [...this.k.groups.values()].find((g) => g.spec.devices.includes(dev));
        return { groupId: group?.spec.id ?? 0, segment, bus, devfn: (slot << 3) | fn };
      }),
    };
  }
  /** vfio_pci_ioctl_pci_hot_reset: every group the reset hits among the fds, or EINVAL. */
  pciHotReset(groups: N.NativeGroup[]): void {
    this.live();
    const fakes = groups.map((g) => g as MockGroup);
    if (fakes.some((g) => g.fd < 0)) throw closedError();
    const name = 'ioctl(VFIO_DEVICE_PCI_HOT_RESET)';
    this.k.syscall(name);
    const hit = this.k.hotResetBus.get(this.name);
    if (!hit) throw sysError('ENODEV', name);
    const given = new Set(fakes.map((g) => g.state));
    for (const dev of hit) {
      const g = [...this.k.groups.values()].find((x) => x.spec.devices.includes(dev));
      if (!g || !given.has(g)) throw sysError('EINVAL', name);
    }
    this.hotResets++;
  }
  hotResets = 0;
  /**
   * The region an fd offset falls in, and the offset inside it. vfio-pci's
   * answers: at or past a BAR's end EINVAL, across it a short transfer (the
   * addon makes that EIO); at, past or across config space's end EFAULT.
   */
  #space(offset: bigint, length: number, syscall: string): [Buffer, number] {
    const index = Number(offset >> REGION_SHIFT);
    const o = Number(offset & ((1n << REGION_SHIFT) - 1n));
    const b = index === C.VFIO_PCI_BAR0_REGION_INDEX ? this.bar0 : index === C.VFIO_PCI_CONFIG_REGION_INDEX ? this.config : null;
    if (!b) throw sysError('EINVAL', syscall);
    if (b === this.config && o + length > b.length) throw sysError('EFAULT', syscall);
    if (o >= b.length) throw sysError('EINVAL', syscall);
    if (o + length > b.length) throw sysError('EIO', syscall);
    return [b, o];
  }
  /** A modelled BAR0 access: [offset inside BAR0] when `offset` is in BAR0 and a model answers it. */
  #modelled(offset: bigint, length: number, syscall: string): number | null {
    if (!this.model || offset >> REGION_SHIFT !== BigInt(C.VFIO_PCI_BAR0_REGION_INDEX)) return null;
    const o = Number(offset & ((1n << REGION_SHIFT) - 1n));
    if (o >= this.model.bar0Size) throw sysError('EINVAL', syscall);
    if (o + length > this.model.bar0Size) throw sysError('EIO', syscall);
    return o;
  }
  read(offset: bigint, width: N.AccessWidth): number | bigint {
    this.live();
    this.k.syscall('pread');
    const m = this.#modelled(offset, width, 'pread');
    if (m !== null) return this.model!.read(m, width);
    const [b, o] = this.#space(offset, width, 'pread');
    return width === 8 ? b.readBigUInt64LE(o) : b.readUIntLE(o, width);
  }
  write(offset: bigint, width: N.AccessWidth, value: number | bigint): void {
    this.live();
    this.k.syscall('pwrite');
    const m = this.#modelled(offset, width, 'pwrite');
    if (m !== null) return this.model!.write(m, width, value);
    const [b, o] = this.#space(offset, width, 'pwrite');
    if (width === 8) b.writeBigUInt64LE(BigInt(value), o);
    else b.writeUIntLE(Number(value), o, width);
  }
  readBytes(offset: bigint, length: number): Buffer {
    this.live();
    this.k.syscall('pread');
    const [b, o] = this.#space(offset, length, 'pread');
    return Buffer.from(b.subarray(o, o + length));
  }
  writeBytes(offset: bigint, data: Uint8Array): void {
    this.live();
    this.k.syscall('pwrite');
    const [b, o] = this.#space(offset, data.length, 'pwrite');
    b.set(data, o);
  }
  mmap(offset: bigint, size: number, _prot: number): MockRegionMapping {
    this.live();
    this.k.syscall('mmap');
    // Only BAR0 is mappable, and only inside its (page-rounded) size.
    const index = Number(offset >> REGION_SHIFT);
    const o = Number(offset & ((1n << REGION_SHIFT) - 1n));
    if (index !== C.VFIO_PCI_BAR0_REGION_INDEX || size === 0 || o + size > this.#bar0Size) throw sysError('EINVAL', 'mmap');
    if (this.model) {
      // Every access reaches the model (its registers have side effects), so
      // it offers no ArrayBuffer and the library keeps to the accessors, as it
      // does where external ArrayBuffers are forbidden.
      const model = this.model;
      return this.#mapping(size, {
        arrayBuffer: () => {
          throw Object.assign(new Error('mock kernel: a modelled BAR has no ArrayBuffer'), { code: 'ERR_VFIO_REGION_ACCESS' });
        },
        read: (off, w) => model.read(o + off, w),
        write: (off, w, v) => model.write(o + off, w, v),
      });
    }
    const view = this.bar0.subarray(o, o + size);
    return this.#mapping(size, {
      // Shares memory with pread/pwrite only for a whole-BAR mapping (the
      // BAR's own ArrayBuffer); the fake needs no more.
      arrayBuffer: () => {
        if ((_prot & 3) !== 3) throw Object.assign(new Error('read-only mapping'), { code: 'ERR_VFIO_REGION_ACCESS' });
        if (view.byteOffset !== 0 || view.byteLength !== view.buffer.byteLength) throw new Error('fake: arrayBuffer() of a partial mapping');
        return view.buffer as ArrayBuffer;
      },
      read: (off, w) => (w === 8 ? view.readBigUInt64LE(off) : view.readUIntLE(off, w)),
      write: (off, w, v) => {
        if (w === 8) view.writeBigUInt64LE(BigInt(v), off);
        else view.writeUIntLE(Number(v), off, w);
      },
    });
  }
  /** A BAR mmap: it holds the device file until closed; accesses checked as the addon checks them. */
  #mapping(size: number, access: Omit<N.NativeRegionMapping, 'size' | 'close'>): MockRegionMapping {
    this.#refs++;
    let open = true;
    const isOpen = () => open;
    const check = (off: number, w: number) => {
      if (!open) throw closedError();
      if (off < 0 || off + w > size || off % w) throw Object.assign(new RangeError('out of range'), { code: 'ERR_OUT_OF_RANGE' });
    };
    return {
      size,
      get closed() {
        return !isOpen();
      },
      arrayBuffer: () => {
        if (!open) throw closedError();
        return access.arrayBuffer();
      },
      read: (off, w) => (check(off, w), access.read(off, w)),
      write: (off, w, v) => (check(off, w), access.write(off, w, v)),
      close: () => {
        if (open) this.#put();
        open = false;
      },
    };
  }
  /** Bus mastering: PCI command register bit 2. */
  get busMaster(): boolean {
    return (this.config.readUInt16LE(4) & 4) !== 0;
  }
  /** Whether `index` has an eventfd on `vector`. */
  irqEnabled(index: number, vector = 0): boolean {
    return !!this.irqs.get(index)?.[vector];
  }
  /** The device file released: vfio-pci turns its interrupts off, the group loses a holder. */
  #put(): void {
    if (--this.#refs > 0) return;
    this.irqs.clear();
    this.#irqType = -1;
    this.group.openDevices--;
    this.group.put();
  }
  protected override onClose(): void {
    this.#put();
  }
}

/** The mock's BAR mmap: a NativeRegionMapping that says whether it is still mapped. */
export type MockRegionMapping = N.NativeRegionMapping & { readonly closed: boolean };

/** A file the mock kernel serves to DmaBuffer.fromFd. */
export interface MockFile {
  regular: boolean;
  /** F_SEAL_* bits; -1 for a file system without seals. */
  seals: number;
}

/** The mock kernel's DMA memory: plain JavaScript memory. */
export class MockDmaBuffer implements N.NativeDmaBuffer {
  #ab: ArrayBuffer | null;
  readonly size: number;
  closed = false;
  constructor(
    size: number,
    readonly pageSize: number,
    readonly memfd: number,
    readonly file: MockFile | null = null,
  ) {
    this.size = size;
    this.#ab = new ArrayBuffer(size);
  }
  get fd(): number {
    return this.closed ? -1 : this.memfd;
  }
  get regularFile(): boolean {
    return this.file?.regular ?? false;
  }
  seals(): number {
    if (this.closed) throw closedError();
    return this.file?.seals ?? -1;
  }
  arrayBuffer(): ArrayBuffer {
    if (!this.#ab) throw closedError();
    return this.#ab;
  }
  /** Closes the mock fd: idempotent, as the real one. */
  close(): void {
    if (this.#ab) structuredClone(this.#ab, { transfer: [this.#ab] }); // detach, as the addon does
    this.#ab = null;
    this.closed = true;
  }
}

/** The mock kernel's eventfd: a counter that devices signal. */
export class MockEventFd extends MockFd implements N.NativeEventFd {
  #count = 0;
  #cb: ((n: number) => void) | null = null;
  #scheduled = false;
  referenced = true;
  start(callback: (count: number) => void): void {
    this.live();
    this.#cb = callback;
    this.#deliver();
  }
  /** Stops watching the eventfd. */
  stop(): void {
    this.#cb = null;
  }
  ref(): void {
    this.referenced = true;
  }
  /** Lets the process exit while the eventfd is watched. */
  unref(): void {
    this.referenced = false;
  }
  read(): number {
    const n = this.#count;
    this.#count = 0;
    return n;
  }
  /** Set while a VM's irqfd holds this eventfd: KVM consumes each signal. */
  kvmSink: ((n: number) => void) | null = null;
  signal(value: number): void {
    this.live();
    if (this.kvmSink) return this.kvmSink(value);
    this.#count += value;
    this.#deliver();
  }
  #deliver(): void {
    if (this.#scheduled || !this.#cb || this.#count === 0) return;
    this.#scheduled = true;
    setImmediate(() => {
      this.#scheduled = false;
      if (this.#cb && this.#count > 0) this.#cb(this.read());
    });
  }
  protected override onClose(): void {
    this.#cb = null;
  }
}

/** The mock kernel's /dev/kvm. */
export class MockKvm extends MockFd implements N.NativeKvm {
  constructor(readonly k: MockKernel) {
    super();
  }
  getApiVersion(): number {
    this.live();
    this.k.syscall('ioctl(KVM_GET_API_VERSION)');
    return 12;
  }
  checkExtension(_ext: number): number {
    this.live();
    this.k.syscall('ioctl(KVM_CHECK_EXTENSION)');
    return 1;
  }
  createVm(_type: number): N.NativeVm {
    this.live();
    this.k.syscall('ioctl(KVM_CREATE_VM)');
    const vm = new MockVm(this.k);
    this.k.vms.push(vm);
    return vm;
  }
}

export interface MockSlot {
  guestPhys: bigint;
  size: number;
  flags: number;
  memory: N.NativeDmaBuffer | N.NativeRegionMapping;
}

/** The mock kernel's KVM VM. */
export class MockVm extends MockFd implements N.NativeVm {
  device: MockKvmDevice | null = null;
  irqchip = false;
  /** KVM_IRQFD: eventfd -> GSI (and the resample eventfd). */
  readonly irqfds = new Map<MockEventFd, { gsi: number; resample: N.NativeEventFd | null }>();
  /** Interrupts injected per GSI through irqfds. */
  readonly injected = new Map<number, number>();
  /** The last KVM_SET_GSI_ROUTING table, 5 words per route. */
  routes = new Uint32Array(0);
  readonly slots = new Map<number, MockSlot>();
  readonly vcpus = new Map<number, MockVcpu>();
  constructor(readonly k: MockKernel) {
    super();
  }
  createIrqchip(): void {
    this.live();
    this.k.syscall('ioctl(KVM_CREATE_IRQCHIP)');
    if (this.irqchip) throw sysError('EEXIST', 'ioctl(KVM_CREATE_IRQCHIP)');
    if (this.vcpus.size > 0) throw sysError('EINVAL', 'ioctl(KVM_CREATE_IRQCHIP)');
    this.irqchip = true;
  }
  /** kvm_irqfd_assign / _deassign: x86 needs the in-kernel irqchip; one irqfd per eventfd. */
  irqfd(eventfd: N.NativeEventFd, gsi: number, resample: N.NativeEventFd | null, deassign: boolean): void {
    this.live();
    const name = 'ioctl(KVM_IRQFD)';
    if (eventfd.fd < 0 || (resample && resample.fd < 0)) throw closedError();
    this.k.syscall(name);
    const fd = eventfd as MockEventFd;
    if (deassign) {
      if (this.irqfds.get(fd)?.gsi === gsi) {
        this.irqfds.delete(fd);
        fd.kvmSink = null;
      }
      return;
    }
    if (!this.irqchip) throw sysError('EINVAL', name);
    if (this.irqfds.has(fd)) throw sysError('EBUSY', name);
    this.irqfds.set(fd, { gsi, resample });
    fd.kvmSink = (n) => this.injected.set(gsi, (this.injected.get(gsi) ?? 0) + n);
  }
  setGsiRouting(routes: Uint32Array): void {
    this.live();
    this.k.syscall('ioctl(KVM_SET_GSI_ROUTING)');
    if (!this.irqchip || routes.length % 5 !== 0) throw sysError('EINVAL', 'ioctl(KVM_SET_GSI_ROUTING)');
    this.routes = routes.slice();
  }
  /** kvm_set_memory_region: size 0 deletes; a new slot may not overlap another. */
  setUserMemoryRegion(slot: number, flags: number, guestPhys: bigint, memory: N.NativeDmaBuffer | N.NativeRegionMapping | null, offset: number, size: number): void {
    this.live();
    const name = 'ioctl(KVM_SET_USER_MEMORY_REGION)';
    if (size === 0) {
      this.k.syscall(name);
      this.slots.delete(slot);
      return;
    }
    if (!memory || (memory as { closed?: boolean }).closed) throw closedError();
    if (offset + size > memory.size) throw new RangeError('The range is out of range. It must lie inside the mapping');
    this.k.syscall(name);
    if (guestPhys % BigInt(PAGE) !== 0n || size % PAGE !== 0) throw sysError('EINVAL', name);
    if (this.slots.has(slot)) throw sysError('EINVAL', name);
    for (const s of this.slots.values()) {
      if (guestPhys < s.guestPhys + BigInt(s.size) && s.guestPhys < guestPhys + BigInt(size)) throw sysError('EEXIST', name);
    }
    this.slots.set(slot, { guestPhys, size, flags, memory });
  }
  createVcpu(id: number): N.NativeVcpu {
    this.live();
    this.k.syscall('ioctl(KVM_CREATE_VCPU)');
    if (this.vcpus.has(id)) throw sysError('EEXIST', 'ioctl(KVM_CREATE_VCPU)');
    const vcpu = new MockVcpu(this.k);
    this.vcpus.set(id, vcpu);
    return vcpu;
  }
  checkExtension(_ext: number): number {
    this.live();
    this.k.syscall('ioctl(KVM_CHECK_EXTENSION)');
    return 1;
  }
  createDevice(type: number, test: boolean): N.NativeKvmDevice | null {
    this.live();
    this.k.syscall('ioctl(KVM_CREATE_DEVICE)');
    if (type !== C.KVM_DEV_TYPE_VFIO) throw sysError('ENODEV', 'ioctl(KVM_CREATE_DEVICE)');
    if (test) return null;
    // One KVM-VFIO device per VM; it goes when its fd closes (kvm_vfio_release).
    if (this.device) throw sysError('EBUSY', 'ioctl(KVM_CREATE_DEVICE)');
    this.device = new MockKvmDevice(this.k, this);
    return this.device;
  }
}

/** A vCPU with no guest behind it: KVM_RUN answers HLT (nothing runs here). */
export class MockVcpu extends MockFd implements N.NativeVcpu {
  regs = new BigUint64Array(18);
  readonly segments: { selector: number; base: number }[] = [];
  #hlt = 0;
  constructor(readonly k: MockKernel) {
    super();
  }
  getRegs(): BigUint64Array {
    this.live();
    this.k.syscall('ioctl(KVM_GET_REGS)');
    return this.regs.slice();
  }
  setRegs(regs: BigUint64Array): void {
    this.live();
    this.k.syscall('ioctl(KVM_SET_REGS)');
    this.regs = regs.slice();
  }
  setSegment(segment: number, selector: number, base: number): void {
    this.live();
    this.k.syscall('ioctl(KVM_SET_SREGS)');
    this.segments[segment] = { selector, base };
  }
  run(_timeoutMs: number): N.VcpuExitRaw {
    this.live();
    this.k.syscall('ioctl(KVM_RUN)');
    this.#hlt++;
    return { reason: 'hlt', exitReason: 5, exits: { io: 0, mmio: 0, hlt: this.#hlt, intr: 0, other: 0 } };
  }
}

/** KVM-VFIO on x86: no sPAPR TCE attribute. */
export class MockKvmDevice extends MockFd implements N.NativeKvmDevice {
  /** The group files registered with FILE_ADD (the kernel holds a reference to each). */
  readonly files = new Set<MockGroup>();
  constructor(
    readonly k: MockKernel,
    readonly vm: MockVm,
  ) {
    super();
  }
  hasAttr(group: number, attr: number): boolean {
    this.live();
    this.k.syscall('ioctl(KVM_HAS_DEVICE_ATTR)');
    return group === C.KVM_DEV_VFIO_FILE && (attr === C.KVM_DEV_VFIO_FILE_ADD || attr === C.KVM_DEV_VFIO_FILE_DEL);
  }
  setVfioFile(attr: number, file: N.NativeFdOwner): void {
    this.live();
    if (file.fd < 0) throw closedError();
    const name = 'ioctl(KVM_SET_DEVICE_ATTR)';
    this.k.syscall(name);
    if (attr === C.KVM_DEV_VFIO_FILE_ADD) {
      // Only a group fd proves ownership on this kernel (device fds came in 6.6 with cdev).
      if (!(file instanceof MockGroup)) throw sysError('EINVAL', name);
      if (this.files.has(file)) throw sysError('EEXIST', name);
      this.files.add(file);
      file.state.get();
    } else if (attr === C.KVM_DEV_VFIO_FILE_DEL) {
      if (!(file instanceof MockGroup) || !this.files.delete(file)) throw sysError('ENOENT', name);
      file.state.put();
    } else throw sysError('ENXIO', name);
  }
  setSpaprTce(_group: N.NativeGroup, _tableFd: number): void {
    this.live();
    this.k.syscall('ioctl(KVM_SET_DEVICE_ATTR)');
    throw sysError('ENXIO', 'ioctl(KVM_SET_DEVICE_ATTR)');
  }
  protected override onClose(): void {
    for (const g of this.files) g.state.put();
    this.files.clear();
    this.vm.device = null;
  }
}

/** How a plugged-in device model reaches the machine: through the open device and its group's IOMMU. */
class ModelBus implements DeviceBus {
  constructor(
    readonly k: MockKernel,
    readonly bdf: string,
    readonly group: GroupState,
  ) {}
  /** The device as its driver has it open now (the latest open fd), or null. */
  get #device(): MockDevice | null {
    const open = this.k.devices.filter((d) => d.name === this.bdf && d.fd >= 0);
    return open[open.length - 1] ?? null;
  }
  get busMaster(): boolean {
    return this.#device?.busMaster ?? false;
  }
  irqEnabled(index: number, vector = 0): boolean {
    return this.#device?.irqEnabled(index, vector) ?? false;
  }
  raise(index: number, vector = 0): void {
    this.#device?.raise(index, vector);
  }
  dmaRead(iova: bigint, length: number): Uint8Array {
    const out = new Uint8Array(length);
    this.#walk(iova, length, false, (bytes, at) => out.set(bytes, at));
    return out;
  }
  dmaWrite(iova: bigint, data: Uint8Array): void {
    this.#walk(iova, data.length, true, (bytes, at) => bytes.set(data.subarray(at, at + bytes.length)));
  }
  /** Translate [iova, iova+length) piece by piece through the mappings of the group's container; all or nothing. */
  #walk(iova: bigint, length: number, write: boolean, each: (bytes: Uint8Array, at: number) => void): void {
    const need = write ? C.VFIO_DMA_MAP_FLAG_WRITE : C.VFIO_DMA_MAP_FLAG_READ;
    const mappings = this.group.container?.mappings ?? [];
    const pieces: [Uint8Array, number][] = [];
    for (let at = 0; at < length; ) {
      const a = iova + BigInt(at);
      const m = mappings.find((x) => a >= x.iova && a < x.iova + x.size && (x.flags & need) !== 0);
      if (!m || m.buffer.closed) {
        this.k.iommuFaults.push({ bdf: this.bdf, iova: a, length: length - at, write });
        throw Object.assign(new Error(`mock IOMMU: ${this.bdf} ${write ? 'wrote' : 'read'} unmapped iova 0x${a.toString(16)}`), { code: 'ERR_MOCK_IOMMU_FAULT' });
      }
      const inMapping = Number(a - m.iova);
      const n = Math.min(length - at, Number(m.size) - inMapping);
      pieces.push([new Uint8Array(m.buffer.arrayBuffer(), m.offset + inMapping, n), at]);
      at += n;
    }
    for (const [bytes, at] of pieces) each(bytes, at);
  }
}
