// What a VM holds of our objects: irqfds (an interrupt vector's eventfd) and
// memory slots (a DmaBuffer, a BAR mmap). Each use is listed under every
// object whose close must remove it first (the vector's Irq and Device, the
// memory, the VM); teardown.ts removes them, in its one place for order.

export interface KvmUse {
  readonly description: string;
  /** @internal Undo it in KVM (KVM_IRQFD deassign, slot size 0) and forget it; throws if the kernel refuses. */
  removeNow(): void;
}

const byOwner = new WeakMap<object, Set<KvmUse>>();

export function addKvmUse(use: KvmUse, owners: readonly object[]): void {
  for (const o of owners) {
    let set = byOwner.get(o);
    if (!set) byOwner.set(o, (set = new Set()));
    set.add(use);
  }
}

export function deleteKvmUse(use: KvmUse, owners: readonly object[]): void {
  for (const o of owners) byOwner.get(o)?.delete(use);
}

/** The uses that must go before `owner` closes, oldest first. */
export function kvmUsesOf(owner: object): KvmUse[] {
  return [...(byOwner.get(owner) ?? [])];
}
