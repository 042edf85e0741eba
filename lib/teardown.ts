// Teardown is a transaction, and this is the one place that knows its order.
// Every close of a VFIO object (device, group, container, KVM-VFIO device,
// VM) and a group's detach names what goes with it in a Plan and calls
// teardown(), which runs the steps in the order the kernel needs:
//
//   0. KVM's uses of what closes (irqfds, memory slots, a device cdev's
//      KVM-VFIO registration)                 KVM must not signal or map through what goes;
//                                             a cdev's registration needs its fd
//   1. interrupts and BAR mmaps, then device fds  nothing may DMA or signal while mappings go
//   2. DMA mappings, when the IOMMU context goes  the last group leaving drops it in the kernel;
//      an IOAS's mappings, then the IOAS         IOMMU_DESTROY (its devices closed or detached)
//   3. KVM-VFIO registrations                     while the group fd still proves ownership
//   4. group unset (VFIO_GROUP_UNSET_CONTAINER)   the last one takes the IOMMU context with it
//   5. fds: groups, KVM-VFIO devices, VMs, the container or iommufd
//
// Everything that can refuse is checked before step 1 (async work in flight;
// a BAR mmap another IOMMU still maps for peer-to-peer DMA), so a refusal changes
// nothing. Steps 1 and 5 cannot fail: closing a device fd disables its
// interrupts in the kernel, and close(2) always releases the fd. A kernel
// failure in steps 2-4 stops the teardown there: what was done is recorded
// (those objects are closed), the rest stays open and in the books, equal to
// the kernel's, and the error says so; close() again carries on from there.

import type { Container } from './container';
import type { Device } from './device';
import { RuleCode, VfioError, VfioSystemError, isSystemError } from './errors';
import type { Group } from './group';
import type { Iommu } from './iommu';
import type { Ioas } from './ioas';
import type { KvmVfioDevice } from './kvm';
import { kvmUsesOf } from './kvm-uses';

/** Something whose fd closes in step 5. */
export interface FdCloser {
  readonly description: string;
  /** @internal Close the fd and mark the object closed; never throws. */
  closeFd(): void;
}

export interface Plan {
  /** The object being closed or detached, for messages ('container /dev/vfio/vfio (fd 21)'). */
  readonly subject: { readonly description: string };
  /** 'close' or 'detach', for messages. */
  readonly verb: string;
  readonly devices: readonly Device[];
  /** The IOMMU whose context goes with this teardown (the last group leaves), if any. */
  readonly iommu: Iommu | null;
  /** IO address spaces destroyed with it (an iommufd's close, an Ioas's destroy); their devices are gone by step 2. */
  readonly ioas?: readonly Ioas[];
  readonly kvm: readonly { device: KvmVfioDevice; file: Group | Device }[];
  readonly unset: readonly Group[];
  readonly fds: readonly FdCloser[];
}

export function teardown(plan: Plan): void {
  // Refusals first: async work in flight pins what it uses.
  for (const ioas of plan.ioas ?? []) ioas.assertIdle(`${plan.verb} ${plan.subject.description}`);
  if (plan.iommu && plan.iommu.pendingOperations > 0) {
    throw new VfioError(
      RuleCode.BUSY,
      `cannot ${plan.verb} ${plan.subject.description}: ${plan.iommu.pendingOperations} async map/unmap operation(s) of the ` +
        `${plan.iommu.description} have not settled (its mappings go with it); await them first. Nothing was changed`,
    );
  }
  // A BAR mmap that another IOMMU maps for peer-to-peer DMA outlives no device close.
  for (const d of plan.devices) d.assertNoPeerUsers(plan.iommu);
  const done: string[] = [];
  // 0. KVM lets go of the devices' vectors and BAR mmaps.
  step(plan, done, () => removeKvmUses(plan.devices, done));
  // 1. Interrupts, BAR mmaps, device fds.
  for (const d of plan.devices) {
    d.closeNow();
    done.push(`closed ${d.description}`);
  }
  // 2-4. The steps the kernel can refuse.
  step(plan, done, () => {
    if (plan.iommu) {
      const n = plan.iommu.mappingCount;
      plan.iommu.releaseAll();
      if (n > 0) done.push(`unmapped ${n} DMA mapping(s)`);
    }
    for (const ioas of plan.ioas ?? []) {
      const n = ioas.mappingCount;
      ioas.releaseAll();
      if (n > 0) done.push(`unmapped ${n} DMA mapping(s) of ${ioas.description}`);
      ioas.destroyNow();
      done.push(`destroyed ${ioas.description}`);
    }
    for (const { device, file } of plan.kvm) {
      device.removeNow(file);
      done.push(`removed ${file.description} from the ${device.description}`);
    }
    for (const g of plan.unset) {
      const container: Container | null = g.container;
      g.unsetNow();
      done.push(`detached ${g.description} from ${container?.description ?? 'its container'}`);
    }
  });
  // 5. Fds.
  for (const f of plan.fds) f.closeFd();
}

/**
 * Step 0 on its own, for a close that is not a VFIO teardown (an Irq's
 * disable, a DmaBuffer, a BAR mmap, a VM): KVM's irqfds and memory slots
 * over `owners` go first. On a kernel failure the ones removed are recorded
 * and the rest stay, and the caller's close stops there.
 */
export function releaseKvmUses(subject: { readonly description: string }, verb: string, owners: readonly object[]): void {
  step({ subject, verb }, [], (done) => removeKvmUses(owners, done));
}

function removeKvmUses(owners: readonly object[], done: string[]): void {
  for (const o of owners) {
    for (const use of kvmUsesOf(o)) {
      use.removeNow();
      done.push(`removed ${use.description}`);
    }
  }
}

function step(plan: Pick<Plan, 'subject' | 'verb'>, done: string[], run: (done: string[]) => void): void {
  try {
    run(done);
  } catch (e) {
    const so = `${done.length > 0 ? `done before it failed: ${done.join(', ')}; ` : 'nothing was changed; '}${plan.subject.description} is still open: call ${plan.verb}() again to finish`;
    if (isSystemError(e)) {
      const { path, hint } = e as { path?: string; hint?: string };
      throw new VfioSystemError({ errno: e.errno, syscall: e.syscall, code: e.code, message: `${e.message}; ${so}`, path, hint, cause: e });
    }
    if (e instanceof VfioError) throw new VfioError(e.code, `${e.message}; ${so}`);
    throw e;
  }
}
