// KVM-VFIO rules: one device per VM, groups (never numbers) as proof of
// ownership, registration before device open, removal before group close.

import assert from 'node:assert/strict';
import { closeSync, openSync } from 'node:fs';
import { Container, Group, Kvm, Vm } from '../../lib';
import type { MockKvmDevice } from '../../lib/testing';
import { throwsCode, useFakeKernel } from './fake/setup';

describe('KVM-VFIO device rules', () => {
  const fake = useFakeKernel([{ id: 3, devices: ['0000:00:03.0'] }]);

  function vmWithDevice() {
    const kvm = Kvm.open();
    const vm = kvm.createVm();
    kvm.close();
    const dev = vm.vfioDevice();
    const raw = fake.k.vms.at(-1)!.device as MockKvmDevice;
    return { vm, dev, raw };
  }

  it('gives a VM one KVM-VFIO device: asking again returns the same', () => {
    const { vm, dev } = vmWithDevice();
    assert.equal(vm.vfioDevice(), dev);
    assert.equal(fake.k.calls.filter((c) => c === 'ioctl(KVM_CREATE_DEVICE)').length, 1);
    vm.close();
  });

  it('adds and removes a group', () => {
    const { vm, dev, raw } = vmWithDevice();
    using group = Group.open(3);
    dev.add(group);
    assert.equal(raw.files.size, 1);
    assert.deepEqual(dev.groups, [group]);
    throwsCode(() => dev.add(group), 'ERR_VFIO_KVM_EXISTS');
    dev.remove(group);
    assert.equal(raw.files.size, 0);
    throwsCode(() => dev.remove(group), 'ERR_VFIO_KVM_NOT_REGISTERED');
    vm.close();
  });

  it('says a VM already has a KVM-VFIO device when the kernel answers EBUSY', () => {
    const kvm = Kvm.open();
    const vm = kvm.createVm();
    kvm.close();
    fake.k.vms.at(-1)!.createDevice(fake.k.constants.KVM_DEV_TYPE_VFIO, false);
    throwsCode(() => vm.vfioDevice(), 'EBUSY', /already has a KVM-VFIO device made outside this library/);
    vm.close();
  });

  it('takes Group objects only, never numbers', () => {
    const { vm, dev } = vmWithDevice();
    throwsCode(() => dev.add(3 as unknown as Group), 'ERR_INVALID_ARG_TYPE', /must be a Group/);
    vm.close();
  });

  it('refuses to register a group whose devices are already open', () => {
    const { vm, dev } = vmWithDevice();
    using container = Container.open();
    const group = container.openGroup(3);
    container.setIommu();
    group.openDevice('0000:00:03.0');
    throwsCode(() => dev.add(group), 'ERR_VFIO_ORDER', /register the group with KVM before opening its devices/);
    vm.close();
  });

  it('removes a registered group from KVM before the group closes', () => {
    const { vm, dev, raw } = vmWithDevice();
    const group = Group.open(3);
    dev.add(group);
    fake.k.calls.length = 0;
    group.close();
    assert.equal(raw.files.size, 0);
    assert.deepEqual(dev.groups, []);
    assert.equal(fake.k.calls[0], 'ioctl(KVM_SET_DEVICE_ATTR)', 'FILE_DEL went out before the group fd closed');
    vm.close();
  });

  it('closes its KVM-VFIO device with the VM, and refuses use after', () => {
    const { vm, dev, raw } = vmWithDevice();
    const group = Group.open(3);
    dev.add(group);
    vm.close();
    assert.ok(dev.closed);
    assert.equal(raw.files.size, 0, 'groups were removed before the device fd closed');
    throwsCode(() => dev.add(group), 'ERR_VFIO_CLOSED');
    throwsCode(() => vm.vfioDevice(), 'ERR_VFIO_CLOSED');
    group.close();
  });

  it('reports a missing /dev/kvm with what to do', () => {
    fake.k.kvmPresent = false;
    throwsCode(() => Kvm.open(), 'ENOENT', /load kvm_intel or kvm_amd/);
  });

  it('explains sPAPR TCE on a non-POWER host', () => {
    const { vm, dev } = vmWithDevice();
    using group = Group.open(3);
    throwsCode(() => dev.setSpaprTce(group, 5), 'ERR_VFIO_KVM_NOT_REGISTERED');
    dev.add(group);
    throwsCode(() => dev.setSpaprTce(group, -1), 'ERR_OUT_OF_RANGE');
    throwsCode(() => dev.setSpaprTce(group, 5), 'ENXIO', /only on POWER hosts/);
    vm.close();
  });

  it('refuses to adopt a non-fd, or an fd that is not a KVM VM, before any syscall', () => {
    throwsCode(() => Vm.adopt(-1), 'ERR_OUT_OF_RANGE');
    const fd = openSync('/dev/null', 'r');
    try {
      throwsCode(() => Vm.adopt(fd), 'ERR_INVALID_ARG_VALUE', /must be a KVM VM fd .* is \/dev\/null/);
    } finally {
      closeSync(fd);
    }
    assert.ok(!fake.k.calls.includes('fcntl(F_DUPFD_CLOEXEC)'));
  });
});
