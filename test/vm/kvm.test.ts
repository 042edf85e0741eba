// KVM-VFIO with a real bound group, in the test guest with kvm loaded.

import assert from 'node:assert/strict';
import { existsSync } from 'node:fs';
import { Container, Group, Kvm, Vm } from '../../lib';
import { native } from '../../lib/native';
import { testEnv, type TestEnv } from './env';
import { errorOf } from './raw';

describe('KVM-VFIO device with a real VFIO group', () => {
  let env: TestEnv;
  let vm: Vm;

  before(() => {
    env = testEnv();
    if (!existsSync('/dev/kvm')) {
      throw new Error('/dev/kvm is missing: the guest must load kvm (scripts/guest/run --kvm); on a host, load kvm_intel or kvm_amd');
    }
  });
  beforeEach(() => {
    using kvm = Kvm.open();
    vm = kvm.createVm();
  });
  afterEach(() => vm.close());

  it('adds and removes a real group, and the kernel accepts both', () => {
    using group = Group.open(env.group);
    const dev = vm.vfioDevice();
    dev.add(group);
    assert.deepEqual(dev.groups, [group]);
    dev.remove(group);
    assert.deepEqual(dev.groups, []);
  });

  it('the kernel answers ENOENT to deleting a group never added', () => {
    using group = Group.open(env.group);
    const dev = vm.vfioDevice();
    assert.throws(() => dev.remove(group), { code: 'ERR_VFIO_KVM_NOT_REGISTERED' });
    // Below the rule, the kernel's own answer:
    const raw = native().openKvm('/dev/kvm').createVm(0);
    try {
      const rawDev = raw.createDevice(native().constants.KVM_DEV_TYPE_VFIO, false)!;
      assert.equal(errorOf(() => rawDev.setVfioFile(native().constants.KVM_DEV_VFIO_FILE_DEL, group.handle()))?.code, 'ENOENT');
      rawDev.close();
    } finally {
      raw.close();
    }
  });

  it('a VM whose KVM-VFIO device was made elsewhere: the kernel says EBUSY, and the message says why', () => {
    const raw = native().openKvm('/dev/kvm').createVm(0);
    try {
      const rawDev = raw.createDevice(native().constants.KVM_DEV_TYPE_VFIO, false)!;
      using adopted = Vm.adopt(raw.fd);
      assert.throws(() => adopted.vfioDevice(), { code: 'EBUSY', message: /already has a KVM-VFIO device made outside this library/ });
      rawDev.close();
      assert.equal(adopted.vfioDevice().closed, false, 'once that device is gone the VM takes a new one');
    } finally {
      raw.close();
    }
  });

  it('closing a registered group leaves no registration behind', () => {
    const dev = vm.vfioDevice();
    const group = Group.open(env.group);
    dev.add(group);
    group.close();
    assert.deepEqual(dev.groups, []);
    // Had KVM kept the old file, the group would still be held open (EBUSY)
    // and re-adding it would fail; both succeed.
    using again = Group.open(env.group);
    dev.add(again);
    dev.remove(again);
  });

  it('refuses to register a group after one of its devices was opened', () => {
    const dev = vm.vfioDevice();
    using container = Container.open();
    const group = container.openGroup(env.group);
    container.setIommu();
    group.openDevice(env.bdf);
    assert.throws(() => dev.add(group), { code: 'ERR_VFIO_ORDER' });
  });

  it('registers first, then opens the device: the order the kernel documents', () => {
    const dev = vm.vfioDevice();
    using container = Container.open();
    const group = container.openGroup(env.group);
    dev.add(group);
    container.setIommu();
    const device = group.openDevice(env.bdf);
    assert.equal(device.info.pci, true);
    container.close();
    assert.deepEqual(dev.groups, [], 'closing the container closed the group, which left KVM first');
  });
});
