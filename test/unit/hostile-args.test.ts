// Every public method, called as a hostile caller would: wrong types, null,
// objects whose valueOf/toString throw or lie, numbers out of range. Each
// call either succeeds or throws an error with a string `code`; none runs the
// caller's valueOf/toString/getters; and a refused call changes nothing the
// kernel sees (no syscall was issued).

import assert from 'node:assert/strict';
import { Container, DmaBuffer, Group, Kvm } from '../../lib';
import { EDU, openEdu, useFakeKernel } from './fake/setup';
import { hostile, hostileObject, JUNK, show } from '../hostile-values';


describe('hostile arguments at every public boundary', () => {
  const fake = useFakeKernel([{ id: 3, devices: [EDU] }]);

  function world() {
    const { container, group, iommu, device, buffer } = openEdu();
    const mapping = iommu.map(buffer, { iova: 0x10000n });
    void device.msi; // its GET_IRQ_INFO, a query, before any call is measured
    const bar = device.bar(0);
    const barMap = bar.mmap();
    const kvm = Kvm.open();
    const vm = kvm.createVm();
    const kvmDev = vm.vfioDevice();
    vm.createIrqchip(); // so that irqfd calls reach their argument checks
    const vcpu = vm.createVcpu(0);
    const cleanup = () => {
      vm.close();
      kvm.close();
      container.close();
      if (!mapping.closed) mapping.unmap();
      buffer.close();
    };
    return { container, group, iommu, device, buffer, mapping, bar, barMap, kvm, vm, kvmDev, vcpu, cleanup };
  }

  const calls: [string, (w: ReturnType<typeof world>, a: unknown, b: unknown) => unknown][] = [
    ['Container.open', (_w, a) => Container.open(a as never)],
    ['Group.open', (_w, a, b) => Group.open(a as never, b as never)],
    ['Group.forDevice', (_w, a, b) => Group.forDevice(a as never, b as never)],
    ['DmaBuffer.allocate', (_w, a, b) => DmaBuffer.allocate(a as never, b as never)],
    ['DmaBuffer.memfd', (_w, a, b) => DmaBuffer.memfd(a as never, b as never)],
    ['DmaBuffer.fromFd', (_w, a, b) => DmaBuffer.fromFd(a as never, b as never)],
    ['Kvm.open', (_w, a) => Kvm.open(a as never)],
    ['container.checkExtension', (w, a) => w.container.checkExtension(a as never)],
    ['container.openGroup', (w, a, b) => w.container.openGroup(a as never, b as never)],
    ['container.setIommu', (w, a, b) => w.container.setIommu(a as never, b as never)],
    ['group.attach', (w, a) => w.group.attach(a as never)],
    ['group.openDevice', (w, a) => w.group.openDevice(a as never)],
    ['iommu.map', (w, a, b) => w.iommu.map(a as never, b as never)],
    ['iommu.map(buffer, junk)', (w, a) => w.iommu.map(w.buffer, a as never)],
    ['iommu.map(barMap, junk)', (w, a) => w.iommu.map(w.barMap, a as never)],
    ['iommu.map(buffer, {iova: junk})', (w, a) => w.iommu.map(w.buffer, { iova: a as never })],
    ['iommu.map(buffer, {size: junk})', (w, a) => w.iommu.map(w.buffer, { iova: 0x100000n, size: a as never })],
    ['iommu.map(buffer, {offset: junk})', (w, a) => w.iommu.map(w.buffer, { iova: 0x100000n, offset: a as never })],
    ['iommu.map(buffer, {readable: junk})', (w, a) => w.iommu.map(w.buffer, { iova: 0x100000n, readable: a as never })],
    ['iommu.unmap', (w, a) => w.iommu.unmap(a as never)],
    ['iommu.unmap({iova: junk, size})', (w, a) => w.iommu.unmap({ iova: a as never, size: 8192n })],
    ['iommu.findFreeIova', (w, a, b) => w.iommu.findFreeIova(a as never, b as never)],
    ['iommu.findFreeIova(4096, junk)', (w, a) => w.iommu.findFreeIova(4096n, a as never)],
    ['device.region', (w, a) => w.device.region(a as never)],
    ['device.bar', (w, a) => w.device.bar(a as never)],
    ['device.irq', (w, a) => w.device.irq(a as never)],
    ['device.setBusMaster', (w, a) => w.device.setBusMaster(a as never)],
    ['device.hotReset', (w, a) => w.device.hotReset(a as never)],
    ['device.hotReset([group, junk])', (w, a) => w.device.hotReset([w.group, a as never])],
    ['device.on', (w, a, b) => w.device.on(a as never, b as never)],
    ['device.on(release-requested, junk)', (w, a) => w.device.on('release-requested', a as never)],
    ['device.off', (w, a, b) => w.device.off(a as never, b as never)],
    ['region.read32', (w, a) => w.bar.read32(a as never)],
    ['region.read64', (w, a) => w.bar.read64(a as never)],
    ['region.write32(0, junk)', (w, a) => w.bar.write32(0, a as never)],
    ['region.write64(0, junk)', (w, a) => w.bar.write64(0, a as never)],
    ['region.readBytes', (w, a, b) => w.bar.readBytes(a as never, b as never)],
    ['region.writeBytes(0, junk)', (w, a) => w.bar.writeBytes(0, a as never)],
    ['region.mmap', (w, a) => w.bar.mmap(a as never)],
    ['barMap.read32', (w, a) => w.barMap.read32(a as never)],
    ['barMap.write32(0, junk)', (w, a) => w.barMap.write32(0, a as never)],
    ['barMap.write64(0, junk)', (w, a) => w.barMap.write64(0, a as never)],
    ['msi.enable', (w, a) => w.device.msi.enable(a as never)],
    ['msi.trigger', (w, a, b) => w.device.msi.trigger(a as never, b as never)],
    ['msi.total', (w, a) => w.device.msi.total(a as never)],
    ['msi.enableVector', (w, a) => w.device.msi.enableVector(a as never)],
    ['msi.disableVector', (w, a) => w.device.msi.disableVector(a as never)],
    ['msi.vectorEnabled', (w, a) => w.device.msi.vectorEnabled(a as never)],
    ['buffer.bytes', (w, a, b) => w.buffer.bytes(a as never, b as never)],
    ['buffer.checkRange', (w, a, b) => w.buffer.checkRange(a as never, b as never)],
    ['kvm.checkExtension', (w, a) => w.kvm.checkExtension(a as never)],
    ['kvm.createVm', (w, a) => w.kvm.createVm(a as never)],
    ['vm.checkExtension', (w, a) => w.vm.checkExtension(a as never)],
    ['vm.routeMsi', (w, a, b) => w.vm.routeMsi(a as never, b as never)],
    ['vm.routeMsi(24, {address: junk})', (w, a) => w.vm.routeMsi(24, { address: a as never, data: 0x40 })],
    ['vm.unrouteMsi', (w, a) => w.vm.unrouteMsi(a as never)],
    ['vm.irqfd', (w, a, b) => w.vm.irqfd(a as never, b as never)],
    ['vm.irqfd(msi, junk)', (w, a) => w.vm.irqfd(w.device.msi, a as never)],
    ['vm.irqfd(msi, {gsi: junk})', (w, a) => w.vm.irqfd(w.device.msi, { gsi: a as never })],
    ['vm.mapMemory', (w, a) => w.vm.mapMemory(a as never)],
    ['vm.mapMemory({guestPhys: junk})', (w, a) => w.vm.mapMemory({ guestPhys: a as never, memory: w.buffer })],
    ['vm.mapMemory({memory: junk})', (w, a) => w.vm.mapMemory({ guestPhys: 0n, memory: a as never })],
    ['vm.mapMemory({size: junk})', (w, a) => w.vm.mapMemory({ guestPhys: 0n, memory: w.barMap, size: a as never })],
    ['vm.createVcpu', (w, a) => w.vm.createVcpu(a as never)],
    ['vm.mapMemory({guestPhys: 0, memory: buffer, readonly: junk})', (w, a) => w.vm.mapMemory({ guestPhys: 0n, memory: w.buffer, readonly: a as never })],
    ['vcpu.setRegs', (w, a) => w.vcpu.setRegs(a as never)],
    ['vcpu.setSegment', (w, a, b) => w.vcpu.setSegment(a as never, b as never)],
    ['vcpu.run', (w, a) => w.vcpu.run(a as never)],
    ['kvmDev.add', (w, a) => w.kvmDev.add(a as never)],
    ['kvmDev.remove', (w, a) => w.kvmDev.remove(a as never)],
    ['kvmDev.setSpaprTce(group, junk)', (w, a) => w.kvmDev.setSpaprTce(w.group, a as never)],
  ];

  for (const [name, call] of calls) {
    it(`${name}: every junk argument is refused with a code, or accepted; a refusal issues no syscall`, async () => {
      for (const a of JUNK) {
        for (const b of [undefined, hostileObject, null]) {
          const w = world();
          const before = fake.k.calls.length;
          hostile.touched = 0;
          let error: unknown;
          try {
            let r = call(w, a, b);
            if (r instanceof Promise) r = await r;
            // An accepted call may have opened something (Kvm.open(undefined) opens /dev/kvm): close it.
            if (r !== null && typeof r === 'object' && typeof (r as { close?: unknown }).close === 'function') (r as { close(): void }).close();
          } catch (e) {
            error = e;
          }
          const what = `${name}(${show(a)}, ${show(b)})`;
          if (error !== undefined) {
            assert.ok(error instanceof Error, `${what} threw a non-Error`);
            assert.equal(typeof (error as { code?: unknown }).code, 'string', `${what} threw without a code: ${String((error as Error).message)}`);
            if (!/^E[A-Z]+$/.test((error as unknown as { code: string }).code)) {
              assert.equal(fake.k.calls.length, before, `${what} was refused (${(error as unknown as { code: string }).code}) after issuing ${fake.k.calls.slice(before).join(', ')}`);
            }
          }
          assert.equal(hostile.touched, 0, `${what} ran the caller's valueOf/toString/getter/trap`);
          w.cleanup();
        }
      }
    });
  }
});
