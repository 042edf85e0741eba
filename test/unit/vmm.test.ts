// VM-manager rules on the mock kernel: irqfds and memory slots are KVM's
// uses of our objects, removed by the library before what they use closes,
// in any order the caller closes things; refusals change nothing.

import assert from 'node:assert/strict';
import { Container, DmaBuffer, Irqfd, Kvm, KvmSlot, type Device, type Vm } from '../../lib';
import type { MockDevice, MockVm } from '../../lib/testing';
import { buildVmmParts, orders, VMM_PARTS } from '../model/vmm-parts';
import { EDU, throwsCode, useFakeKernel } from './fake/setup';

describe('VM manager wiring (irqfds, memory slots, vCPUs)', () => {
  const fake = useFakeKernel();

  function newVm(): { vm: Vm; raw: MockVm } {
    const kvm = Kvm.open();
    const vm = kvm.createVm();
    kvm.close();
    return { vm, raw: fake.k.vms.at(-1)! };
  }

  function setup() {
    const { vm, raw } = newVm();
    const container = Container.open();
    const group = container.openGroup(3);
    vm.vfioDevice().add(group);
    const iommu = container.setIommu();
    const device = group.openDevice(EDU);
    const rawDevice = fake.k.devices.at(-1)!;
    const ram = DmaBuffer.memfd(0x10000);
    return { vm, raw, container, iommu, device, rawDevice, ram };
  }

  it('an irqfd needs the in-kernel irqchip: the kernel says EINVAL and the message says what to do', () => {
    const { vm, device, container, ram } = setup();
    device.msi.enable();
    throwsCode(() => vm.irqfd(device.msi, { gsi: 24 }), 'EINVAL', /createIrqchip/);
    assert.equal(vm.irqfds.length, 0);
    vm.close(); container.close(); ram.close();
  });

  it('routes a vector into the VM: KVM consumes its signals, JS sees none until the irqfd closes', async () => {
    const { vm, raw, device, rawDevice, container, ram } = setup();
    vm.createIrqchip();
    device.msi.enable();
    let events = 0;
    device.msi.on('interrupt', () => events++);
    vm.routeMsi(24, { address: 0xfee00000n, data: 0x40 });
    assert.equal(raw.routes.length, (40 + 1) * 5, 'x86 default irqchip routes (16 PIC + 24 IOAPIC) kept, plus the MSI');
    const f = vm.irqfd(device.msi, { gsi: 24 });
    assert.ok(f instanceof Irqfd);
    rawDevice.raise(fake.k.constants.VFIO_PCI_MSI_IRQ_INDEX);
    await new Promise((r) => setImmediate(r));
    assert.equal(raw.injected.get(24), 1);
    assert.equal(events, 0);
    f.close();
    assert.equal(raw.irqfds.size, 0);
    rawDevice.raise(fake.k.constants.VFIO_PCI_MSI_IRQ_INDEX);
    await new Promise((r) => setImmediate(r));
    assert.equal(events, 1, 'JS watches the vector again');
    vm.close(); container.close(); ram.close();
  });

  it('INTx with resample binds VFIO unmask to the resample eventfd, and unbinds it on close', () => {
    const { vm, raw, device, rawDevice, container, ram } = setup();
    vm.createIrqchip();
    device.intx.enable();
    const f = vm.irqfd(device.intx, { gsi: 5, resample: true });
    const held = [...raw.irqfds.values()][0];
    assert.ok(held.resample, 'KVM_IRQFD_FLAG_RESAMPLE with a resample eventfd');
    assert.equal(rawDevice.unmaskFd, held.resample, 'VFIO_IRQ_SET_ACTION_UNMASK bound to that same eventfd');
    f.close();
    assert.equal(rawDevice.unmaskFd, null);
    assert.equal(held.resample!.fd, -1, 'the resample eventfd is closed');
    vm.close(); container.close(); ram.close();
  });

  it('refuses a resample irqfd on an index that cannot be masked (MSI), before any ioctl', () => {
    const { vm, device, container, ram } = setup();
    vm.createIrqchip();
    device.msi.enable();
    const before = fake.k.calls.length;
    throwsCode(() => vm.irqfd(device.msi, { gsi: 24, resample: true }), 'ERR_VFIO_UNSUPPORTED');
    assert.equal(fake.k.calls.length, before);
    vm.close(); container.close(); ram.close();
  });

  it('refuses an MSI route on an irqchip pin, and a second irqfd of one vector', () => {
    const { vm, device, container, ram } = setup();
    vm.createIrqchip();
    throwsCode(() => vm.routeMsi(5, { address: 0xfee00000n, data: 0x40 }), 'ERR_VFIO_KVM_EXISTS', /irqchip pin/);
    device.msi.enable();
    vm.irqfd(device.msi, { gsi: 24 });
    throwsCode(() => vm.irqfd(device.msi, { gsi: 25 }), 'ERR_VFIO_KVM_EXISTS');
    throwsCode(() => vm.irqfd(device.msi, { gsi: 25, vector: 1 }), 'ERR_VFIO_ORDER', /not enabled/);
    vm.close(); container.close(); ram.close();
  });

  it('maps guest RAM and a BAR as memory slots, and refuses what KVM must not get', () => {
    const { vm, raw, device, container, ram } = setup();
    const s = vm.mapMemory({ guestPhys: 0n, memory: ram });
    assert.ok(s instanceof KvmSlot);
    assert.equal(raw.slots.get(0)?.size, 0x10000);
    const bar = device.bar(0).mmap();
    throwsCode(() => vm.mapMemory({ guestPhys: 0x8000n, memory: bar, size: 0x1000 }), 'ERR_VFIO_KVM_EXISTS', /overlaps/);
    throwsCode(() => vm.mapMemory({ guestPhys: 0x20800n, memory: bar, size: 0x1000 }), 'ERR_VFIO_BUFFER_RANGE', /page size/);
    throwsCode(() => vm.mapMemory({ guestPhys: 0x20000n, memory: bar, size: bar.size + 0x1000 }), 'ERR_VFIO_BUFFER_RANGE');
    throwsCode(() => vm.mapMemory({ guestPhys: 0x20000n, memory: bar, slot: 0 }), 'ERR_VFIO_KVM_EXISTS');
    const ro = device.bar(0).mmap({ writable: false });
    throwsCode(() => vm.mapMemory({ guestPhys: 0x20000n, memory: ro, size: 0x1000 }), 'ERR_VFIO_REGION_ACCESS', /readonly: true/);
    const rs = vm.mapMemory({ guestPhys: 0x20000n, memory: ro, size: 0x1000, readonly: true });
    assert.equal(raw.slots.get(rs.slot)?.flags, fake.k.constants.KVM_MEM_READONLY);
    assert.equal(raw.slots.size, 2, 'refusals changed nothing');
    vm.close(); container.close(); ram.close();
  });

  it('closing memory a slot uses deletes the slot first; a buffer the IOMMU maps is refused with the slot left in place', () => {
    const { vm, raw, iommu, device, container, ram } = setup();
    vm.mapMemory({ guestPhys: 0n, memory: ram });
    const m = iommu.map(ram, { iova: 0n });
    throwsCode(() => ram.close(), 'ERR_VFIO_BUFFER_IN_USE');
    assert.equal(raw.slots.size, 1, 'the refusal changed nothing');
    m.unmap();
    ram.close();
    assert.equal(raw.slots.size, 0);
    assert.equal(vm.slots.length, 0);
    const bar = device.bar(0).mmap();
    vm.mapMemory({ guestPhys: 0x20000n, memory: bar, size: 0x1000 });
    bar.close();
    assert.equal(raw.slots.size, 0);
    vm.close(); container.close();
  });

  it('a vCPU sets registers and segments, runs, and closes with its VM', () => {
    const { vm, raw, container, ram } = setup();
    vm.createIrqchip();
    const vcpu = vm.createVcpu(0);
    vcpu.setRegs({ rip: 0x1000n, rflags: 2n });
    assert.equal(vcpu.getRegs().rip, 0x1000n);
    vcpu.setSegment('es', 0x2000);
    assert.deepEqual(raw.vcpus.get(0)!.segments[2], { selector: 0x2000, base: 0x20000 });
    assert.equal(vcpu.run({ timeoutMs: 100 }).reason, 'hlt');
    throwsCode(() => vm.createVcpu(0), 'ERR_VFIO_KVM_EXISTS');
    vm.close();
    assert.equal(vcpu.closed, true);
    assert.equal(raw.vcpus.get(0)!.fd, -1);
    container.close(); ram.close();
  });

  it('hostile arguments: nothing coerced, no getter run, nothing reached the kernel', () => {
    const { vm, device, container, ram } = setup();
    vm.createIrqchip();
    device.msi.enable();
    let ran = false;
    const getter = { get gsi() { ran = true; return 24; } };
    const before = fake.k.calls.length;
    throwsCode(() => vm.irqfd(device.msi, getter as never), 'ERR_INVALID_ARG_TYPE');
    throwsCode(() => vm.irqfd({} as never, { gsi: 24 }), 'ERR_INVALID_ARG_TYPE');
    throwsCode(() => vm.irqfd(device.msi, { gsi: '24' as never }), 'ERR_INVALID_ARG_TYPE');
    throwsCode(() => vm.irqfd(device.msi, { gsi: -1 }), 'ERR_OUT_OF_RANGE');
    throwsCode(() => vm.irqfd(device.msi, { gsi: 24, resample: 1 as never }), 'ERR_INVALID_ARG_TYPE');
    throwsCode(() => vm.mapMemory({ guestPhys: 0n, memory: { size: 4096 } as never }), 'ERR_INVALID_ARG_TYPE');
    throwsCode(() => vm.mapMemory({ guestPhys: -1n, memory: ram }), 'ERR_OUT_OF_RANGE');
    throwsCode(() => vm.mapMemory({ guestPhys: { valueOf: () => 0 } as never, memory: ram }), 'ERR_INVALID_ARG_TYPE');
    throwsCode(() => vm.routeMsi(24, { address: 0xfee00000n, data: 2 ** 32 }), 'ERR_OUT_OF_RANGE');
    throwsCode(() => vm.createVcpu(1.5), 'ERR_OUT_OF_RANGE');
    const vcpu = vm.createVcpu(0);
    throwsCode(() => vcpu.setRegs({ rip: '1' } as never), 'ERR_INVALID_ARG_TYPE');
    throwsCode(() => vcpu.setRegs({ rip: -1n }), 'ERR_OUT_OF_RANGE');
    throwsCode(() => vcpu.setRegs({ rop: 1n } as never), 'ERR_INVALID_ARG_VALUE');
    throwsCode(() => vcpu.setSegment('xs' as never, 0), 'ERR_INVALID_ARG_VALUE');
    throwsCode(() => vcpu.setSegment('cs', 0x10000), 'ERR_OUT_OF_RANGE');
    throwsCode(() => vcpu.run({ timeoutMs: 0 }), 'ERR_OUT_OF_RANGE');
    assert.equal(ran, false, 'no getter ran');
    assert.equal(fake.k.calls.slice(before).filter((c) => c !== 'ioctl(KVM_CREATE_VCPU)').length, 0);
    vm.close(); container.close(); ram.close();
  });

  // Every order of closing what a passthrough VM is made of: the library
  // removes KVM's uses first each time, so every close succeeds and the
  // kernel is left with no irqfd, no slot and no open fd of ours.
  it(`closes ${VMM_PARTS.length} parts in all ${[...orders(VMM_PARTS)].length} orders, books equal to the kernel's every time`, function () {
    this.timeout(60000);
    for (const order of orders(VMM_PARTS)) {
      const { vm, raw } = newVm();
      const container = Container.open();
      const group = container.openGroup(3);
      container.setIommu();
      const { device, close } = buildVmmParts(vm, group, EDU);
      const rawDevice = fake.k.devices.at(-1)!;
      for (const p of order) {
        close[p]();
        assertBooks(vm, raw, rawDevice, device, order, p);
      }
      assert.equal(raw.irqfds.size + raw.slots.size, 0, order.join(' → '));
      assert.equal(raw.fd, -1);
      container.close();
    }
  });

  function assertBooks(vm: Vm, raw: MockVm, rawDevice: MockDevice, device: Device, order: readonly string[], after: string): void {
    const at = `${order.join(' → ')}, after ${after}`;
    assert.equal(vm.irqfds.length, raw.irqfds.size, at);
    assert.equal(vm.slots.length, raw.slots.size, at);
    if (device.closed) assert.equal(rawDevice.fd, -1, at);
    for (const s of raw.slots.values()) assert.equal((s.memory as { closed?: boolean }).closed, false, `${at}: a slot over closed memory`);
    for (const fd of raw.irqfds.keys()) assert.ok(fd.fd >= 0, `${at}: an irqfd over a closed eventfd`);
  }
});
