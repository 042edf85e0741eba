// A KVM memory slot (KVM_SET_USER_MEMORY_REGION): guest physical memory
// backed by a DmaBuffer (guest RAM; map the same buffer in the IOMMU at
// IOVA = guest physical and a passed-through device DMAs straight into the
// guest) or by a BAR mmap (the guest reaches the device's registers with no
// exit). The slot is deleted (size 0) before its memory or its VM closes:
// teardown.ts does it. No address crosses into JS: the addon takes the
// memory object, an offset and a size, and checks them.

import { rethrow } from './errors';
import { hex } from './iova';
import type { DmaBuffer } from './dma-buffer';
import { addKvmUse, deleteKvmUse, type KvmUse } from './kvm-uses';
import { type NativeDmaBuffer, type NativeRegionMapping, type NativeVm } from './native';
import type { RegionMapping } from './region';
import { Resource } from './resource';
import { releaseKvmUses } from './teardown';

export interface KvmSlotSpec {
  readonly slot: number;
  readonly flags: number;
  readonly guestPhys: bigint;
  readonly memory: DmaBuffer | RegionMapping;
  readonly handle: NativeDmaBuffer | NativeRegionMapping;
  readonly offset: number;
  readonly size: number;
}

/** A KVM memory slot (KVM_SET_USER_MEMORY_REGION): a DmaBuffer or BAR mapping as guest physical memory. */
export class KvmSlot extends Resource implements KvmUse {
  readonly slot: number;
  readonly guestPhys: bigint;
  readonly size: number;
  readonly offset: number;
  readonly memory: DmaBuffer | RegionMapping;
  readonly readonly: boolean;
  readonly description: string;
  readonly #vm: NativeVm;
  readonly #owners: readonly object[];
  readonly #onRemoved: (slot: KvmSlot) => void;

  /** @internal Vm.mapMemory() checked the spec; this issues the ioctl. */
  constructor(vm: { readonly description: string }, nativeVm: NativeVm, spec: KvmSlotSpec, readonly: boolean, owners: readonly object[], onRemoved: (slot: KvmSlot) => void) {
    super();
    this.slot = spec.slot;
    this.guestPhys = spec.guestPhys;
    this.size = spec.size;
    this.offset = spec.offset;
    this.memory = spec.memory;
    this.readonly = readonly;
    this.#vm = nativeVm;
    this.#onRemoved = onRemoved;
    this.description = `memory slot ${spec.slot} (guest ${hex(spec.guestPhys)}+${hex(spec.size)}, ${spec.memory.description}) of ${vm.description}`;
    try {
      nativeVm.setUserMemoryRegion(spec.slot, spec.flags, spec.guestPhys, spec.handle, spec.offset, spec.size);
    } catch (e) {
      rethrow(e, `${vm.description}: KVM_SET_USER_MEMORY_REGION for ${this.description}`, (code) =>
        code === 'EEXIST' ? 'the guest physical range overlaps a slot this library does not know (an adopted VM\'s own); pick another guestPhys' :
        code === 'EINVAL' ? 'the slot number may be taken by the VMM (pass options.slot), or outside KVM_CAP_NR_MEMSLOTS' : undefined);
    }
    this.#owners = [this, ...owners];
    addKvmUse(this, this.#owners);
  }

  /** Whether [guestPhys, guestPhys+size) meets this slot. */
  overlaps(guestPhys: bigint, size: number): boolean {
    return guestPhys < this.guestPhys + BigInt(this.size) && this.guestPhys < guestPhys + BigInt(size);
  }

  /** @internal KVM_SET_USER_MEMORY_REGION with size 0. */
  removeNow(): void {
    if (this.closed) return;
    try {
      this.#vm.setUserMemoryRegion(this.slot, 0, this.guestPhys, null, 0, 0);
    } catch (e) {
      rethrow(e, `${this.description}: deleting it (KVM_SET_USER_MEMORY_REGION, size 0)`);
    }
    deleteKvmUse(this, this.#owners);
    this.markClosed();
    this.#onRemoved(this);
  }

  protected override release(): void {
    releaseKvmUses(this, 'close', [this]);
  }
}
