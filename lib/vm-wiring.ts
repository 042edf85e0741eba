// What a VM manager wires into a Vm for device passthrough: the in-kernel
// irqchip, MSI routes, irqfds, memory slots and vCPUs. Kept per Vm, so the
// Vm's close can undo each in the order teardown.ts gives.

import { argBool, argInstance, argInt, argOptions, argSize, argU64, isInstance, optionField } from './args';
import { RuleCode, VfioError, rethrow } from './errors';
import { DmaBuffer } from './dma-buffer';
import { hex } from './iova';
import { Irq } from './irq';
import { Irqfd } from './irqfd';
import { KvmSlot } from './kvm-slot';
import { native, type NativeVm } from './native';
import { RegionMapping } from './region';
import { Vcpu } from './vcpu';

interface MsiRoute {
  addressLo: number;
  addressHi: number;
  data: number;
}

export class VmWiring {
  readonly #vm: { readonly description: string };
  readonly #native: NativeVm;
  #irqchip = false;
  readonly #msi = new Map<number, MsiRoute>();
  readonly #irqfds = new Map<string, Irqfd>();
  readonly #slots = new Set<KvmSlot>();
  readonly #vcpus = new Map<number, Vcpu>();

  constructor(vm: { readonly description: string }, handle: NativeVm) {
    this.#vm = vm;
    this.#native = handle;
  }

  get irqchip(): boolean {
    return this.#irqchip;
  }

  get slots(): readonly KvmSlot[] {
    return [...this.#slots].filter((s) => !s.closed);
  }

  get irqfds(): readonly Irqfd[] {
    return [...this.#irqfds.values()].filter((f) => !f.closed);
  }

  /** What closes with the VM in step 5, before its fd. */
  vcpus(): Vcpu[] {
    return [...this.#vcpus.values()];
  }

  createIrqchip(): void {
    if (this.#irqchip) throw new VfioError(RuleCode.KVM_EXISTS, `${this.#vm.description} already has an in-kernel irqchip`);
    try {
      this.#native.createIrqchip();
    } catch (e) {
      rethrow(e, `${this.#vm.description}: KVM_CREATE_IRQCHIP`, (code) =>
        code === 'EEXIST' ? 'the VM already has an irqchip (an adopted VM\'s VMM made it)' :
        code === 'EINVAL' ? 'create the irqchip before any vCPU' : undefined);
    }
    this.#irqchip = true;
  }

  routeMsi(gsi: number, message: { address: bigint | number; data: number }): void {
    argInt(gsi, 'gsi', 0, 0xffffffff);
    const m = argOptions(message, 'message');
    const address = argU64(optionField(m, 'address', 'message.address'), 'message.address');
    const data = argInt(optionField(m, 'data', 'message.data'), 'message.data', 0, 0xffffffff);
    if (this.#irqchip && gsi < 24 && defaultRoutes().length > 0) {
      // x86's default routes give GSIs 0-23 to the irqchip pins: an MSI there would hide a pin.
      throw new VfioError(RuleCode.KVM_EXISTS, `${this.#vm.description}: GSI ${gsi} is an irqchip pin (0-23); route MSIs at GSI 24 or above`);
    }
    const before = this.#msi.get(gsi);
    this.#msi.set(gsi, { addressLo: Number(address & 0xffffffffn), addressHi: Number(address >> 32n), data });
    this.#setRouting(() => (before ? this.#msi.set(gsi, before) : this.#msi.delete(gsi)));
  }

  unrouteMsi(gsi: number): void {
    argInt(gsi, 'gsi', 0, 0xffffffff);
    const before = this.#msi.get(gsi);
    if (!before) throw new VfioError(RuleCode.KVM_NOT_REGISTERED, `${this.#vm.description} has no MSI route on GSI ${gsi}`);
    this.#msi.delete(gsi);
    this.#setRouting(() => this.#msi.set(gsi, before));
  }

  irqfd(vm: { readonly description: string }, irq: Irq, options: { gsi: number; vector?: number; resample?: boolean }): Irqfd {
    argInstance(irq, 'irq', Irq, 'Irq (device.msi, device.intx...)');
    const o = argOptions(options);
    const gsi = argInt(optionField(o, 'gsi', 'options.gsi'), 'options.gsi', 0, 0xffffffff);
    const v = optionField(o, 'vector', 'options.vector');
    const vector = v === undefined ? 0 : argInt(v, 'options.vector', 0, 0xffffffff);
    const r = optionField(o, 'resample', 'options.resample');
    const resample = r === undefined ? false : argBool(r, 'options.resample');
    if (resample && !irq.maskable) {
      throw new VfioError(RuleCode.UNSUPPORTED, `${irq.description} is not maskable: a resample irqfd (level-triggered INTx) needs VFIO_IRQ_INFO_MASKABLE`);
    }
    const key = `${irq.device.description}/${irq.index}/${vector}`;
    const old = this.#irqfds.get(key);
    if (old && !old.closed) throw new VfioError(RuleCode.KVM_EXISTS, `${old.description} exists already; close() it first`);
    const f = new Irqfd(vm, this.#native, irq, vector, gsi, resample);
    this.#irqfds.set(key, f);
    return f;
  }

  mapMemory(vm: object, options: { guestPhys: bigint | number; memory: DmaBuffer | RegionMapping; offset?: number; size?: number; readonly?: boolean; slot?: number }): KvmSlot {
    const o = argOptions(options);
    const guestPhys = argU64(optionField(o, 'guestPhys', 'options.guestPhys'), 'options.guestPhys');
    const memory = optionField(o, 'memory', 'options.memory');
    if (!DmaBuffer.isBuffer(memory) && !isInstance(memory, RegionMapping)) {
      argInstance(memory, 'options.memory', RegionMapping, 'DmaBuffer (guest RAM) or RegionMapping (a BAR mmap)');
    }
    const mem = memory as DmaBuffer | RegionMapping;
    const givenOffset = optionField(o, 'offset', 'options.offset');
    const offset = givenOffset === undefined ? 0 : argSize(givenOffset, 'options.offset');
    const givenSize = optionField(o, 'size', 'options.size');
    const ro = optionField(o, 'readonly', 'options.readonly');
    const readonly = ro === undefined ? false : argBool(ro, 'options.readonly');
    const givenSlot = optionField(o, 'slot', 'options.slot');
    const slot = givenSlot === undefined ? this.#freeSlot() : argInt(givenSlot, 'options.slot', 0, 0x7fff);
    if (mem.closed) throw new VfioError(RuleCode.CLOSED, `${mem.description} is closed`);
    const size = givenSize === undefined ? mem.size - offset : argSize(givenSize, 'options.size');
    const page = native().pageSize;
    if (size <= 0 || guestPhys % BigInt(page) !== 0n || offset % page !== 0 || size % page !== 0) {
      throw new VfioError(RuleCode.BUFFER_RANGE, `${this.#vm.description}: a memory slot needs guestPhys (${hex(guestPhys)}), offset (${hex(offset)}) and size (${hex(size)}) that are multiples of the page size ${hex(page)}, size > 0`);
    }
    mem.checkRange(offset, size);
    const mapping = isInstance(mem, RegionMapping) ? (mem as RegionMapping) : null;
    if (mapping && !mapping.writable && !readonly) {
      throw new VfioError(RuleCode.REGION_ACCESS, `${mapping.description} is read-only (the region is not writable, or it was mmapped so): map it with { readonly: true }`);
    }
    for (const s of this.slots) {
      if (s.slot === slot) throw new VfioError(RuleCode.KVM_EXISTS, `${s.description} exists already: pick another options.slot`);
      if (s.overlaps(guestPhys, size)) throw new VfioError(RuleCode.KVM_EXISTS, `guest ${hex(guestPhys)}+${hex(size)} overlaps ${s.description}`);
    }
    const handle = mapping ? mapping.handle() : (mem as DmaBuffer).handle();
    const owners: object[] = mapping ? [mapping, mapping.region.device, vm] : [mem, vm];
    const flags = readonly ? native().constants.KVM_MEM_READONLY : 0;
    const s = new KvmSlot(this.#vm, this.#native, { slot, flags, guestPhys, memory: mem, handle, offset, size }, readonly, owners, (gone) => this.#slots.delete(gone));
    this.#slots.add(s);
    return s;
  }

  createVcpu(id: number): Vcpu {
    argInt(id, 'id', 0, 0xffff);
    const old = this.#vcpus.get(id);
    if (old && !old.closed) throw new VfioError(RuleCode.KVM_EXISTS, `${old.description} exists already`);
    let handle;
    try {
      handle = this.#native.createVcpu(id);
    } catch (e) {
      rethrow(e, `${this.#vm.description}: KVM_CREATE_VCPU(${id})`, (code) =>
        code === 'EEXIST' ? `vCPU ${id} exists (made by the VMM of an adopted VM)` : undefined);
    }
    const vcpu = new Vcpu(this.#vm, id, handle);
    this.#vcpus.set(id, vcpu);
    return vcpu;
  }

  #freeSlot(): number {
    const used = new Set(this.slots.map((s) => s.slot));
    let n = 0;
    while (used.has(n)) n++;
    return n;
  }

  #setRouting(undo: () => void): void {
    const base = this.#irqchip ? defaultRoutes() : [];
    const words = new Uint32Array(base.length + this.#msi.size * 5);
    words.set(base);
    let i = base.length;
    const C = native().constants;
    for (const [gsi, m] of this.#msi) {
      words.set([gsi, C.KVM_IRQ_ROUTING_MSI, m.addressLo, m.addressHi, m.data], i);
      i += 5;
    }
    try {
      this.#native.setGsiRouting(words);
    } catch (e) {
      undo();
      rethrow(e, `${this.#vm.description}: KVM_SET_GSI_ROUTING`, (code) =>
        code === 'EINVAL' ? 'x86 needs an in-kernel irqchip first (Vm.createIrqchip())' : undefined);
    }
  }
}

/**
 * KVM_SET_GSI_ROUTING replaces the whole table, so ours carries the routes
 * KVM_CREATE_IRQCHIP installs on x86: GSIs 0-15 to the PIC pin and the
 * IOAPIC pin of that number, 16-23 to the IOAPIC only. Elsewhere, none.
 */
function defaultRoutes(): number[] {
  const C = native().constants;
  if (C.KVM_IRQCHIP_PIC_MASTER === undefined) return [];
  const out: number[] = [];
  for (let gsi = 0; gsi < 24; gsi++) {
    if (gsi < 16) out.push(gsi, C.KVM_IRQ_ROUTING_IRQCHIP, gsi < 8 ? C.KVM_IRQCHIP_PIC_MASTER : C.KVM_IRQCHIP_PIC_SLAVE, gsi % 8, 0);
    out.push(gsi, C.KVM_IRQ_ROUTING_IRQCHIP, C.KVM_IRQCHIP_IOAPIC, gsi, 0);
  }
  return out;
}
