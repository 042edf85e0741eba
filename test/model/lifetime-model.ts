// A model of the public API's lifetimes, for fast-check's model-based
// testing: random sequences over open/attach/detach/setIommu/map/mapAsync/
// unmap/openDevice/mmap/MSI/KVM add and remove/every close, in any order,
// with junk arguments mixed in. After each command: no uncoded error, the
// model's state equals the library's, and the library's books equal the
// kernel's (asked through the environment's probe). Run against the fake
// kernel (test/unit) and the real one (test/vm), seed printed, replayable
// with VFIO_MODEL_SEED (and VFIO_MODEL_PATH for a shrunk case).

import assert from 'node:assert/strict';
import fc from 'fast-check';
import { Container, DmaBuffer, Group, Kvm, type Device, type DmaMapping, type Iommu, type KvmVfioDevice, type RegionMapping, type Vm } from '../../lib';

export interface ModelEnv {
  groupId: number;
  bdf: string;
  /** KVM usable here (the VM commands are generated only then). */
  kvm: boolean;
  /** Whether the kernel has `iova` mapped in this container's IOMMU (probed below the rules). */
  kernelMapped(container: Container, iova: bigint): boolean;
}

const PAGE = 0x1000n;
const BASE = 0x100000n;
const SLOTS = 16;
const BUFFER_PAGES = 4;
const iovaOf = (slot: number): bigint => BASE + BigInt(slot) * PAGE;

type Life = 'none' | 'open' | 'closed';

export interface Model {
  container: Life;
  group: 'none' | 'open' | 'attached' | 'closed';
  /** The state of the Iommu object the test holds (the last one setIommu returned). */
  iommu: 'none' | 'live' | 'gone';
  device: Life;
  bar: Life;
  msi: boolean;
  buffers: ('open' | 'closed')[];
  /** Index into real.mappings → what the model says is live. */
  live: Map<number, { iova: bigint; size: bigint; buffer: number }>;
  kvmDev: Life;
  kvmReg: boolean;
}

export interface Real {
  env: ModelEnv;
  container: Container | null;
  group: Group | null;
  iommu: Iommu | null;
  device: Device | null;
  bar: RegionMapping | null;
  buffers: DmaBuffer[];
  mappings: DmaMapping[];
  kvm: Kvm | null;
  vm: Vm | null;
  kvmDev: KvmVfioDevice | null;
}

/** Commands run so far (all runs), for the log. */
export const counter = { commands: 0 };

const JUNK: unknown[] = [null, '0', -1, 1.5, NaN, {}, [], 2 ** 53, 1n << 64n, { valueOf: () => 0 }, Symbol('junk')];

function codeOf(e: unknown): string {
  assert.ok(e instanceof Error, `a non-Error was thrown: ${String(e)}`);
  const code = (e as { code?: unknown }).code;
  assert.equal(typeof code, 'string', `an error without a code: ${e.message}`);
  return code as string;
}

/** Runs `act`; `predicted` null means it must succeed, else the code it must fail with. */
async function outcome(what: string, predicted: string | null, act: () => unknown): Promise<unknown> {
  let result: unknown;
  let error: unknown;
  try {
    result = await act();
  } catch (e) {
    error = e;
  }
  if (error !== undefined) {
    const code = codeOf(error);
    if (predicted === null) assert.fail(`${what} failed with ${code} where the model expected success: ${(error as Error).message}`);
    assert.equal(code, predicted, `${what}: ${(error as Error).message}`);
    return undefined;
  }
  if (predicted !== null) assert.fail(`${what} succeeded where the model expected ${predicted}`);
  return result;
}

// ---- what closes take with them, in the model --------------------------------

function dropDevice(m: Model): void {
  if (m.device === 'open') m.device = 'closed';
  if (m.bar === 'open') m.bar = 'closed';
  m.msi = false;
}

function dropContext(m: Model): void {
  if (m.iommu === 'live') m.iommu = 'gone';
  m.live.clear();
}

function usersOf(m: Model, b: number): number {
  return [...m.live.values()].filter((x) => x.buffer === b).length;
}

function overlaps(m: Model, iova: bigint, size: bigint): boolean {
  return [...m.live.values()].some((x) => x.iova < iova + size && iova < x.iova + x.size);
}

// ---- commands --------------------------------------------------------------

abstract class Cmd implements fc.AsyncCommand<Model, Real> {
  check(_m: Readonly<Model>): boolean {
    return true;
  }
  async run(m: Model, r: Real): Promise<void> {
    counter.commands++;
    await this.act(m, r);
    checkInvariants(m, r);
  }
  abstract act(m: Model, r: Real): Promise<void>;
  abstract toString(): string;
}

class OpenContainer extends Cmd {
  override check(m: Readonly<Model>) {
    return m.container !== 'open';
  }
  async act(m: Model, r: Real) {
    r.container = (await outcome(this.toString(), null, () => Container.open())) as Container;
    m.container = 'open';
  }
  toString() {
    return 'Container.open()';
  }
}

class CloseContainer extends Cmd {
  async act(m: Model, r: Real) {
    if (!r.container) return;
    await outcome(this.toString(), null, () => r.container!.close());
    if (m.container === 'open' && m.group === 'attached') {
      m.group = 'closed';
      m.kvmReg = false;
      dropDevice(m);
    }
    if (m.container === 'open') dropContext(m);
    m.container = m.container === 'none' ? 'none' : 'closed';
  }
  toString() {
    return 'container.close()';
  }
}

class OpenGroup extends Cmd {
  constructor(readonly standalone: boolean) {
    super();
  }
  async act(m: Model, r: Real) {
    if (!this.standalone && !r.container) return;
    const busy = m.group === 'open' || m.group === 'attached';
    const predicted = !this.standalone && m.container === 'closed' ? 'ERR_VFIO_CLOSED' : busy ? 'EBUSY' : null;
    const g = (await outcome(this.toString(), predicted, () =>
      this.standalone ? Group.open(r.env.groupId) : r.container!.openGroup(r.env.groupId),
    )) as Group | undefined;
    if (!g) return;
    r.group = g;
    m.group = this.standalone ? 'open' : 'attached';
    m.kvmReg = false;
    if (m.device !== 'none') m.device = 'closed';
  }
  toString() {
    return this.standalone ? 'Group.open(id)' : 'container.openGroup(id)';
  }
}

class Attach extends Cmd {
  async act(m: Model, r: Real) {
    if (!r.group || !r.container) return;
    const predicted =
      m.group === 'closed' ? 'ERR_VFIO_CLOSED' : m.group === 'attached' ? 'ERR_VFIO_GROUP_ATTACHED' : m.container === 'closed' ? 'ERR_VFIO_CLOSED' : null;
    await outcome(this.toString(), predicted, () => r.group!.attach(r.container!));
    if (predicted === null) m.group = 'attached';
  }
  toString() {
    return 'group.attach(container)';
  }
}

class Detach extends Cmd {
  async act(m: Model, r: Real) {
    if (!r.group) return;
    await outcome(this.toString(), m.group === 'closed' ? 'ERR_VFIO_CLOSED' : null, () => r.group!.detach());
    if (m.group === 'attached') {
      dropDevice(m);
      dropContext(m);
      m.group = 'open';
    }
  }
  toString() {
    return 'group.detach()';
  }
}

class CloseGroup extends Cmd {
  async act(m: Model, r: Real) {
    if (!r.group) return;
    await outcome(this.toString(), null, () => r.group!.close());
    if (m.group === 'open' || m.group === 'attached') {
      dropDevice(m);
      if (m.group === 'attached') dropContext(m);
      m.kvmReg = false;
      m.group = 'closed';
    }
  }
  toString() {
    return 'group.close()';
  }
}

class SetIommu extends Cmd {
  async act(m: Model, r: Real) {
    if (!r.container) return;
    const predicted =
      m.container === 'closed' ? 'ERR_VFIO_CLOSED' : m.iommu === 'live' ? 'ERR_VFIO_IOMMU_ALREADY_SET' : m.group !== 'attached' ? 'ERR_VFIO_GROUP_NOT_ATTACHED' : null;
    const iommu = (await outcome(this.toString(), predicted, () => r.container!.setIommu())) as Iommu | undefined;
    if (!iommu) return;
    r.iommu = iommu;
    m.iommu = 'live';
    m.live.clear(); // the model tracks the mappings of the Iommu the test holds
  }
  toString() {
    return 'container.setIommu()';
  }
}

class MapCmd extends Cmd {
  constructor(
    readonly buffer: number,
    readonly slot: number,
    readonly pages: number,
    readonly async: boolean,
  ) {
    super();
  }
  async act(m: Model, r: Real) {
    if (!r.iommu) return;
    const iova = iovaOf(this.slot);
    const size = BigInt(this.pages) * PAGE;
    const predicted =
      m.iommu !== 'live' ? 'ERR_VFIO_CLOSED' : m.buffers[this.buffer] === 'closed' ? 'ERR_VFIO_CLOSED' : overlaps(m, iova, size) ? 'ERR_VFIO_OVERLAP' : null;
    const options = { iova, size: Number(size) };
    const buffer = r.buffers[this.buffer];
    const mapping = (await outcome(this.toString(), predicted, () =>
      this.async ? r.iommu!.mapAsync(buffer, options) : r.iommu!.map(buffer, options),
    )) as DmaMapping | undefined;
    if (!mapping) return;
    r.mappings.push(mapping);
    m.live.set(r.mappings.length - 1, { iova, size, buffer: this.buffer });
  }
  toString() {
    return `iommu.${this.async ? 'mapAsync' : 'map'}(buffer ${this.buffer}, { iova: ${hex(iovaOf(this.slot))}, size: ${this.pages} pages })`;
  }
}

/** A mapAsync, then a close of what owns it before the map settles: refused, nothing changed. */
class CloseUnderMapAsync extends Cmd {
  constructor(readonly what: 'group.close' | 'group.detach' | 'container.close') {
    super();
  }
  async act(m: Model, r: Real) {
    if (!r.iommu || m.iommu !== 'live' || m.buffers[0] === 'closed') return;
    const slot = [...Array(SLOTS).keys()].find((s) => !overlaps(m, iovaOf(s), PAGE));
    if (slot === undefined) return;
    const pending = r.iommu.mapAsync(r.buffers[0], { iova: iovaOf(slot), size: Number(PAGE) });
    // The context goes with this close (one group), so a map in flight makes it BUSY.
    await outcome(`${this.what}() under a mapAsync`, 'ERR_VFIO_BUSY', () =>
      this.what === 'container.close' ? r.container!.close() : this.what === 'group.close' ? r.group!.close() : r.group!.detach(),
    );
    const mapping = (await outcome('the mapAsync', null, () => pending)) as DmaMapping;
    r.mappings.push(mapping);
    m.live.set(r.mappings.length - 1, { iova: iovaOf(slot), size: PAGE, buffer: 0 });
  }
  toString() {
    return `${this.what}() under a mapAsync`;
  }
}

class Unmap extends Cmd {
  constructor(
    readonly pick: number,
    readonly async: boolean,
  ) {
    super();
  }
  async act(m: Model, r: Real) {
    if (r.mappings.length === 0) return;
    const i = this.pick % r.mappings.length;
    const mapping = r.mappings[i];
    await outcome(this.toString(), null, () => (this.async ? mapping.unmapAsync() : mapping.unmap()));
    m.live.delete(i);
  }
  toString() {
    return `mapping[${this.pick}].${this.async ? 'unmapAsync' : 'unmap'}()`;
  }
}

class UnmapRange extends Cmd {
  constructor(
    readonly slot: number,
    readonly pages: number,
  ) {
    super();
  }
  async act(m: Model, r: Real) {
    if (!r.iommu) return;
    const iova = iovaOf(this.slot);
    const size = BigInt(this.pages) * PAGE;
    const hit = [...m.live.entries()].filter(([, x]) => x.iova < iova + size && iova < x.iova + x.size);
    const cut = hit.some(([, x]) => x.iova < iova || x.iova + x.size > iova + size);
    const predicted = m.iommu !== 'live' ? 'ERR_VFIO_CLOSED' : hit.length === 0 || cut ? 'ERR_VFIO_NO_MAPPING' : null;
    await outcome(this.toString(), predicted, () => r.iommu!.unmap({ iova, size }));
    if (predicted === null) for (const [i] of hit) m.live.delete(i);
  }
  toString() {
    return `iommu.unmap({ iova: ${hex(iovaOf(this.slot))}, size: ${this.pages} pages })`;
  }
}

class OpenDevice extends Cmd {
  override check(m: Readonly<Model>) {
    return m.device !== 'open';
  }
  async act(m: Model, r: Real) {
    if (!r.group) return;
    const predicted =
      m.group === 'closed'
        ? 'ERR_VFIO_CLOSED'
        : m.group !== 'attached'
          ? 'ERR_VFIO_GROUP_NOT_ATTACHED'
          : r.container?.iommu == null
            ? 'ERR_VFIO_IOMMU_NOT_SET'
            : null;
    const d = (await outcome(this.toString(), predicted, () => r.group!.openDevice(r.env.bdf))) as Device | undefined;
    if (!d) return;
    r.device = d;
    m.device = 'open';
    m.bar = m.bar === 'open' ? 'closed' : m.bar;
    r.bar = null;
    m.bar = 'none';
    m.msi = false;
  }
  toString() {
    return 'group.openDevice(bdf)';
  }
}

class CloseDevice extends Cmd {
  async act(m: Model, r: Real) {
    if (!r.device) return;
    await outcome(this.toString(), null, () => r.device!.close());
    dropDevice(m);
  }
  toString() {
    return 'device.close()';
  }
}

class Bar extends Cmd {
  constructor(readonly op: 'mmap' | 'read' | 'close') {
    super();
  }
  override check(m: Readonly<Model>) {
    return this.op !== 'mmap' || m.bar !== 'open';
  }
  async act(m: Model, r: Real) {
    if (this.op === 'mmap') {
      if (!r.device) return;
      const b = (await outcome(this.toString(), m.device === 'closed' ? 'ERR_VFIO_CLOSED' : null, () => r.device!.bar(0).mmap())) as RegionMapping | undefined;
      if (b) {
        r.bar = b;
        m.bar = 'open';
      }
      return;
    }
    if (!r.bar) return;
    if (this.op === 'read') {
      const v = await outcome(this.toString(), m.bar === 'closed' ? 'ERR_VFIO_CLOSED' : null, () => r.bar!.read32(0));
      if (m.bar === 'open') assert.equal(typeof v, 'number');
      return;
    }
    await outcome(this.toString(), null, () => r.bar!.close());
    if (m.bar === 'open') m.bar = 'closed';
  }
  toString() {
    return `bar.${this.op}()`;
  }
}

class Msi extends Cmd {
  constructor(readonly op: 'enable' | 'disable' | 'wait') {
    super();
  }
  async act(m: Model, r: Real) {
    if (!r.device) return;
    const closed = m.device === 'closed' ? 'ERR_VFIO_CLOSED' : null;
    if (this.op === 'enable') {
      await outcome(this.toString(), closed ?? (m.msi ? 'ERR_VFIO_ORDER' : null), () => r.device!.msi.enable());
      if (!closed) m.msi = true;
    } else if (this.op === 'disable') {
      await outcome(this.toString(), closed, () => r.device!.msi.disable());
      if (!closed) m.msi = false;
    } else {
      const n = await outcome(this.toString(), closed ?? (m.msi ? null : 'ERR_VFIO_ORDER'), async () => {
        const msi = r.device!.msi;
        const waiting = msi.wait(0, 5000);
        if (m.msi) msi.trigger();
        return waiting;
      });
      if (!closed && m.msi) assert.ok((n as number) >= 1, 'the triggered interrupt arrived');
    }
  }
  toString() {
    return `msi.${this.op}()`;
  }
}

class KvmCmd extends Cmd {
  constructor(readonly op: 'open' | 'add' | 'remove' | 'close') {
    super();
  }
  async act(m: Model, r: Real) {
    if (!r.kvm) return;
    if (this.op === 'open') {
      if (m.kvmDev === 'open') return;
      r.vm = (await outcome('kvm.createVm()', null, () => r.kvm!.createVm())) as Vm;
      r.kvmDev = (await outcome('vm.vfioDevice()', null, () => r.vm!.vfioDevice())) as KvmVfioDevice;
      m.kvmDev = 'open';
      m.kvmReg = false;
      return;
    }
    if (!r.kvmDev || !r.vm) return;
    if (this.op === 'close') {
      await outcome('vm.close()', null, () => r.vm!.close());
      if (m.kvmDev === 'open') m.kvmDev = 'closed';
      m.kvmReg = false;
      return;
    }
    if (!r.group) return;
    const closed = m.kvmDev === 'closed' || m.group === 'closed' ? 'ERR_VFIO_CLOSED' : null;
    if (this.op === 'add') {
      const predicted = closed ?? (m.kvmReg ? 'ERR_VFIO_KVM_EXISTS' : m.device === 'open' ? 'ERR_VFIO_ORDER' : null);
      await outcome(this.toString(), predicted, () => r.kvmDev!.add(r.group!));
      if (predicted === null) m.kvmReg = true;
    } else {
      const predicted = closed ?? (m.kvmReg ? null : 'ERR_VFIO_KVM_NOT_REGISTERED');
      await outcome(this.toString(), predicted, () => r.kvmDev!.remove(r.group!));
      if (predicted === null) m.kvmReg = false;
    }
  }
  toString() {
    return `kvm ${this.op}`;
  }
}

class BufferCmd extends Cmd {
  constructor(
    readonly b: number,
    readonly op: 'close' | 'alloc',
  ) {
    super();
  }
  override check(m: Readonly<Model>) {
    return this.op === 'close' || m.buffers[this.b] === 'closed';
  }
  async act(m: Model, r: Real) {
    if (this.op === 'alloc') {
      r.buffers[this.b] = (await outcome(this.toString(), null, () => DmaBuffer.allocate(BUFFER_PAGES * Number(PAGE)))) as DmaBuffer;
      m.buffers[this.b] = 'open';
      return;
    }
    const predicted = m.buffers[this.b] === 'open' && usersOf(m, this.b) > 0 ? 'ERR_VFIO_BUFFER_IN_USE' : null;
    await outcome(this.toString(), predicted, () => r.buffers[this.b].close());
    if (predicted === null) m.buffers[this.b] = 'closed';
  }
  toString() {
    return `buffer[${this.b}].${this.op === 'alloc' ? 'allocate' : 'close'}()`;
  }
}

/** A public method called with junk: refused with a code, nothing changed (the invariants then say so). */
class Junk extends Cmd {
  constructor(
    readonly method: number,
    readonly junk: number,
  ) {
    super();
  }
  // Calls whose argument is an options object: a plain object (even {} or
  // one with a valueOf) is a valid one there, so they get no object junk.
  static readonly takesOptions = new Set(['iommu.map(buffer, junk)']);
  static readonly calls: [string, (r: Real, j: unknown) => unknown][] = [
    ['iommu.map(junk)', (r, j) => r.iommu?.map(j as never)],
    ['iommu.map(buffer, junk)', (r, j) => r.iommu?.map(r.buffers[0], j as never)],
    ['iommu.map(buffer, { iova: junk })', (r, j) => r.iommu?.map(r.buffers[0], { iova: j as never })],
    ['iommu.unmap(junk)', (r, j) => r.iommu?.unmap(j as never)],
    ['iommu.findFreeIova(junk)', (r, j) => r.iommu?.findFreeIova(j as never)],
    ['container.setIommu(junk)', (r, j) => r.container?.setIommu(j as never)],
    ['container.openGroup(junk)', (r, j) => r.container?.openGroup(j as never)],
    ['group.openDevice(junk)', (r, j) => r.group?.openDevice(j as never)],
    ['group.attach(junk)', (r, j) => r.group?.attach(j as never)],
    ['device.bar(junk)', (r, j) => r.device?.bar(j as never)],
    ['device.setBusMaster(junk)', (r, j) => r.device?.setBusMaster(j as never)],
    ['bar.read32(junk)', (r, j) => r.bar?.read32(j as never)],
    ['bar.write32(0x04, junk)', (r, j) => r.bar?.write32(0x04, j as never)],
    ['buffer.close(junk) then checkRange(junk, junk)', (r, j) => r.buffers[1].checkRange(j as never, j as never)],
    ['kvmDev.add(junk)', (r, j) => r.kvmDev?.add(j as never)],
    ['DmaBuffer.allocate(junk)', (_r, j) => DmaBuffer.allocate(j as never)],
  ];
  async act(_m: Model, r: Real) {
    const [name, call] = Junk.calls[this.method % Junk.calls.length];
    let junk = JUNK[this.junk % JUNK.length];
    if (Junk.takesOptions.has(name) && junk !== null && typeof junk === 'object' && !Array.isArray(junk)) junk = null;
    let threw: unknown;
    let result: unknown;
    try {
      result = call(r, junk);
      if (result instanceof Promise) result = await result;
    } catch (e) {
      threw = e;
    }
    if (threw === undefined && result !== undefined) assert.fail(`${name} with ${show(junk)} was accepted`);
    // Refused by a rule (ERR_*) or by the kernel (a well-typed junk name: ENODEV); either way
    // with a code, and the invariants that follow prove nothing changed.
    if (threw !== undefined) codeOf(threw);
  }
  toString() {
    const [name] = Junk.calls[this.method % Junk.calls.length];
    const junk = JUNK[this.junk % JUNK.length];
    return `junk: ${name} with ${Junk.takesOptions.has(name) && junk !== null && typeof junk === 'object' && !Array.isArray(junk) ? 'null' : show(junk)}`;
  }
}

// ---- the invariants ---------------------------------------------------------

function checkInvariants(m: Model, r: Real): void {
  if (r.container) assert.equal(r.container.closed, m.container === 'closed', 'container closed?');
  if (r.group) {
    assert.equal(r.group.closed, m.group === 'closed', 'group closed?');
    assert.equal(r.group.container !== null, m.group === 'attached', 'group attached?');
  }
  if (r.iommu) assert.equal(r.iommu.closed, m.iommu !== 'live', 'iommu closed?');
  if (r.container && m.container === 'open') {
    assert.equal(r.container.iommu !== null, m.iommu === 'live', 'container has an IOMMU?');
    if (m.iommu === 'live') assert.equal(r.container.iommu, r.iommu);
  }
  for (let i = 0; i < r.mappings.length; i++) assert.equal(r.mappings[i].closed, !m.live.has(i), `mapping[${i}] closed?`);
  if (r.iommu && m.iommu === 'live') {
    const books = r.iommu.mappings.map((x) => x.iova);
    const model = [...m.live.values()].map((x) => x.iova).sort((a, b) => (a < b ? -1 : a > b ? 1 : 0));
    assert.deepEqual(books, model, 'the books equal the model');
    // The books equal the kernel's: every slot's first page mapped exactly where the books say.
    for (let s = 0; s < SLOTS; s++) {
      const iova = iovaOf(s);
      const booked = [...m.live.values()].some((x) => iova >= x.iova && iova < x.iova + x.size);
      assert.equal(r.env.kernelMapped(r.container!, iova), booked, `the kernel ${booked ? 'lacks' : 'has'} iova ${hex(iova)}`);
    }
  }
  if (r.device) assert.equal(r.device.closed, m.device === 'closed', 'device closed?');
  if (r.device && m.device === 'open') assert.equal(r.device.msi.enabled > 0, m.msi, 'MSI enabled?');
  if (r.bar) assert.equal(r.bar.closed, m.bar === 'closed', 'bar mmap closed?');
  for (let b = 0; b < r.buffers.length; b++) {
    assert.equal(r.buffers[b].closed, m.buffers[b] === 'closed', `buffer[${b}] closed?`);
    assert.equal(r.buffers[b].users.length, m.buffers[b] === 'open' ? usersOf(m, b) : 0, `buffer[${b}] users`);
  }
  if (r.kvmDev) {
    assert.equal(r.kvmDev.closed, m.kvmDev === 'closed', 'KVM-VFIO device closed?');
    if (r.group && m.kvmDev === 'open') assert.equal(r.kvmDev.groups.includes(r.group), m.kvmReg, 'group registered with KVM?');
  }
}

// ---- running it ---------------------------------------------------------------

export function commands(env: ModelEnv): fc.Arbitrary<fc.AsyncCommand<Model, Real>>[] {
  const b = fc.integer({ min: 0, max: 1 });
  const slot = fc.integer({ min: 0, max: SLOTS - 1 });
  const pages = fc.integer({ min: 1, max: BUFFER_PAGES });
  const list: fc.Arbitrary<fc.AsyncCommand<Model, Real>>[] = [
    fc.constant(new OpenContainer()),
    fc.constant(new CloseContainer()),
    fc.boolean().map((s) => new OpenGroup(s)),
    fc.constant(new Attach()),
    fc.constant(new Detach()),
    fc.constant(new CloseGroup()),
    fc.constant(new SetIommu()),
    fc.tuple(b, slot, pages, fc.boolean()).map(([x, s, p, a]) => new MapCmd(x, s, p, a)),
    fc.tuple(b, slot, pages, fc.boolean()).map(([x, s, p, a]) => new MapCmd(x, s, p, a)),
    fc.constantFrom('group.close', 'group.detach', 'container.close').map((w) => new CloseUnderMapAsync(w as 'group.close')),
    fc.tuple(fc.nat(), fc.boolean()).map(([p, a]) => new Unmap(p, a)),
    fc.tuple(slot, fc.integer({ min: 1, max: 8 })).map(([s, p]) => new UnmapRange(s, p)),
    fc.constant(new OpenDevice()),
    fc.constant(new CloseDevice()),
    fc.constantFrom('mmap', 'read', 'close').map((op) => new Bar(op as 'mmap')),
    fc.constantFrom('enable', 'disable', 'wait').map((op) => new Msi(op as 'enable')),
    fc.tuple(b, fc.constantFrom('close', 'alloc')).map(([x, op]) => new BufferCmd(x, op as 'close')),
    fc.tuple(fc.nat(), fc.nat()).map(([mth, j]) => new Junk(mth, j)),
  ];
  if (env.kvm) list.push(fc.constantFrom('open', 'add', 'remove', 'close').map((op) => new KvmCmd(op as 'open')));
  return list;
}

export function initialModel(): Model {
  return {
    container: 'none',
    group: 'none',
    iommu: 'none',
    device: 'none',
    bar: 'none',
    msi: false,
    buffers: ['open', 'open'],
    live: new Map(),
    kvmDev: 'none',
    kvmReg: false,
  };
}

export function initialReal(env: ModelEnv): Real {
  return {
    env,
    container: null,
    group: null,
    iommu: null,
    device: null,
    bar: null,
    buffers: [DmaBuffer.allocate(BUFFER_PAGES * Number(PAGE)), DmaBuffer.allocate(BUFFER_PAGES * Number(PAGE))],
    mappings: [],
    kvm: env.kvm ? Kvm.open() : null,
    vm: null,
    kvmDev: null,
  };
}

/** Closes everything a run left open, in an order that must always work. */
export function closeAll(r: Real): void {
  r.vm?.close();
  r.kvm?.close();
  r.container?.close();
  r.group?.close();
  for (const b of r.buffers) b.close();
}

export interface ModelRun {
  seed: number;
  path?: string;
  numRuns: number;
  maxCommands: number;
}

/** The run's parameters: VFIO_MODEL_SEED / VFIO_MODEL_PATH replay one. */
export function modelRun(defaults: { numRuns: number; maxCommands: number }): ModelRun {
  const seed = process.env.VFIO_MODEL_SEED ? Number(process.env.VFIO_MODEL_SEED) : (Date.now() ^ (Math.random() * 0x7fffffff)) | 0;
  return { seed, path: process.env.VFIO_MODEL_PATH, ...defaults };
}

export async function runModel(env: ModelEnv, run: ModelRun): Promise<void> {
  await fc.assert(
    fc.asyncProperty(fc.commands(commands(env), { maxCommands: run.maxCommands, size: 'max' }), async (cmds) => {
      let real: Real | undefined;
      try {
        await fc.asyncModelRun(() => {
          real = initialReal(env);
          return { model: initialModel(), real };
        }, cmds);
      } finally {
        if (real) closeAll(real);
      }
    }),
    { seed: run.seed, path: run.path, numRuns: run.numRuns },
  );
}

function hex(v: bigint): string {
  return `0x${v.toString(16)}`;
}

function show(v: unknown): string {
  if (typeof v === 'symbol') return 'Symbol()';
  if (typeof v === 'bigint') return `${v}n`;
  if (v !== null && typeof v === 'object' && 'valueOf' in v && !Array.isArray(v) && Object.keys(v).length > 0) return '{ valueOf }';
  return JSON.stringify(v) ?? String(v);
}
