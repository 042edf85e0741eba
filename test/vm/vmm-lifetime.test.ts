// irqfd and memory-slot lifetimes on the real kernel: whatever order the
// parts of a passthrough VM are closed in, the library removes KVM's uses
// first, every close succeeds, and no fd is left behind. An adopted VM (a
// VMM's own fd) keeps living: what we put in it must be gone from it.

import assert from 'node:assert/strict';
import { existsSync } from 'node:fs';
import { Container, DmaBuffer, Kvm, Vm, type Group } from '../../lib';
import { native } from '../../lib/native';
import { buildVmmParts, orders, VMM_PARTS } from '../model/vmm-parts';
import { fdCount, testEnv, type TestEnv } from './env';
import { errorOf } from './raw';

describe('irqfd and memory-slot lifetimes on the real kernel', function () {
  this.timeout(600000);
  let env: TestEnv;
  let container: Container;
  let group: Group;

  before(() => {
    env = testEnv();
    if (!existsSync('/dev/kvm')) throw new Error('/dev/kvm is missing: the guest must load kvm (scripts/guest/run --kvm)');
    container = Container.open();
    group = container.openGroup(env.group);
    container.setIommu();
  });
  after(() => container?.close());

  it(`closes irqfd, slot, irq, device, buffer and VM in all ${[...orders(VMM_PARTS)].length} orders: every close succeeds, no fd leaks`, () => {
    const before = fdCount();
    for (const order of orders(VMM_PARTS)) {
      const kvm = Kvm.open();
      const vm = kvm.createVm();
      kvm.close();
      const { close } = buildVmmParts(vm, group, env.bdf);
      for (const p of order) {
        close[p]();
        const at = `${order.join(' → ')}, after ${p}`;
        // Nothing KVM still holds stands on something closed.
        for (const s of vm.slots) assert.equal(s.memory.closed, false, at);
        for (const f of vm.irqfds) assert.equal(f.irq.device.closed || f.irq.enabled === 0, false, at);
      }
      assert.equal(fdCount(), before, `no fd left after ${order.join(' → ')}`);
    }
  });

  it('an adopted VM: closing ours removes our slots and irqfds from the VMM\'s VM, which lives on', () => {
    const raw = native().openKvm('/dev/kvm').createVm(0);
    try {
      const vm = Vm.adopt(raw.fd);
      const { device, ram } = buildVmmParts(vm, group, env.bdf);
      vm.close();
      assert.equal(device.intx.enabled, 1, 'the device and its interrupt stay ours');
      // Had our slot stayed in the VMM's VM, the same guest range would be EEXIST.
      const again = DmaBuffer.memfd(0x10000);
      raw.setUserMemoryRegion(7, 0, 0n, again.handle(), 0, 0x10000);
      raw.setUserMemoryRegion(7, 0, 0n, null, 0, 0);
      // Our resample irqfd is gone too: the same eventfd is taken again (EBUSY otherwise).
      const fd = native().createEventFd();
      assert.equal(errorOf(() => raw.irqfd(fd, 5, null, false)), null);
      raw.irqfd(fd, 5, null, true);
      fd.close();
      again.close();
      device.close();
      ram.close();
    } finally {
      raw.close();
    }
  });

  it('the kernel refuses what the library would catch: an overlapping slot is EEXIST, a second irqfd on one eventfd EBUSY', () => {
    const raw = native().openKvm('/dev/kvm').createVm(0);
    const a = DmaBuffer.memfd(0x2000);
    const fd = native().createEventFd();
    try {
      raw.createIrqchip();
      raw.setUserMemoryRegion(0, 0, 0n, a.handle(), 0, 0x2000);
      assert.equal(errorOf(() => raw.setUserMemoryRegion(1, 0, 0x1000n, a.handle(), 0, 0x1000))?.code, 'EEXIST');
      raw.irqfd(fd, 24, null, false);
      assert.equal(errorOf(() => raw.irqfd(fd, 25, null, false))?.code, 'EBUSY');
      raw.irqfd(fd, 24, null, true);
      raw.setUserMemoryRegion(0, 0, 0n, null, 0, 0);
    } finally {
      fd.close();
      raw.close();
      a.close();
    }
  });

  it('below the library, memory under a slot cannot be unmapped (EBUSY) until the slot goes; closing the VM deletes it', () => {
    const raw = native().openKvm('/dev/kvm').createVm(0);
    const ram = DmaBuffer.memfd(0x2000);
    const device = group.openDevice(env.bdf);
    try {
      const bar = device.bar(0).mmap();
      raw.setUserMemoryRegion(0, 0, 0n, ram.handle(), 0, 0x2000);
      raw.setUserMemoryRegion(1, 0, 0x20000n, bar.handle(), 0, 0x1000);
      assert.equal(errorOf(() => ram.handle().close())?.code, 'EBUSY');
      assert.equal(errorOf(() => bar.handle().close())?.code, 'EBUSY');
      raw.setUserMemoryRegion(1, 0, 0x20000n, null, 0, 0);
      bar.close();
      raw.close(); // deletes slot 0 and lets the buffer go
      ram.close();
      assert.equal(ram.closed, true);
    } finally {
      raw.close();
      device.close();
      if (!ram.closed) ram.close();
    }
  });
});
