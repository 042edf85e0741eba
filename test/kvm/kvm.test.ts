// KVM on a real /dev/kvm (the host's, or the x86_64 test guest's when the
// host has none; scripts/test.js decides): the public API, no VFIO needed.

import assert from 'node:assert/strict';
import { existsSync } from 'node:fs';
import { Kvm, Vm } from '../../lib';
import { native } from '../../lib/native';

describe('KVM and the KVM-VFIO device on this host', () => {
  before(() => {
    if (!existsSync('/dev/kvm')) {
      throw new Error('/dev/kvm is missing: these tests need KVM (load kvm_intel or kvm_amd); npm test runs them in the test guest when the host has none');
    }
  });

  it('opens /dev/kvm and reads API version 12', () => {
    using kvm = Kvm.open();
    assert.equal(kvm.apiVersion, 12);
  });

  it('creates a VM with one KVM-VFIO device: asking again returns the same device', () => {
    using kvm = Kvm.open();
    using vm = kvm.createVm();
    assert.ok(vm.supportsVfioDevice());
    const dev = vm.vfioDevice();
    assert.equal(vm.vfioDevice(), dev);
  });

  it('the kernel itself refuses a second KVM-VFIO device on one VM', () => {
    using kvm = Kvm.open();
    using vm = kvm.createVm();
    vm.vfioDevice();
    const raw = native().openKvm('/dev/kvm').createVm(0);
    try {
      raw.createDevice(native().constants.KVM_DEV_TYPE_VFIO, false);
      assert.throws(() => raw.createDevice(native().constants.KVM_DEV_TYPE_VFIO, false), (e: Error & { code?: string }) => typeof e.code === 'string' && e.code.startsWith('E'));
    } finally {
      raw.close();
    }
  });

  it('adopts a VMM\'s VM fd as its own duplicate', () => {
    using kvm = Kvm.open();
    const theirs = native().openKvm('/dev/kvm').createVm(0);
    try {
      const vm = Vm.adopt(theirs.fd);
      assert.notEqual(vm.description.match(/fd (\d+)\)$/)?.[1], String(theirs.fd));
      vm.vfioDevice();
      vm.close();
      // Their fd still works after ours closed.
      assert.ok(theirs.checkExtension(1) >= 0);
    } finally {
      theirs.close();
    }
    assert.ok(kvm);
  });

  it('adopting an open fd that is not a VM (/dev/null, /dev/kvm itself) is refused before any ioctl', () => {
    const kvm = native().openKvm('/dev/kvm');
    try {
      assert.throws(() => Vm.adopt(kvm.fd), { code: 'ERR_INVALID_ARG_VALUE', message: /fd \d+ is \/dev\/kvm/ });
    } finally {
      kvm.close();
    }
  });

  it('adopting something that is not an open fd is EBADF', () => {
    assert.throws(() => Vm.adopt(987654), { code: 'EBADF', errno: -9 });
  });

  it('refuses use after close on the VM and its device', () => {
    using kvm = Kvm.open();
    const vm = kvm.createVm();
    const dev = vm.vfioDevice();
    vm.close();
    assert.ok(dev.closed);
    assert.throws(() => vm.vfioDevice(), { code: 'ERR_VFIO_CLOSED' });
    assert.throws(() => vm.checkExtension(1), { code: 'ERR_VFIO_CLOSED' });
  });

  it('the kernel rejects a non-VFIO fd with EINVAL (native level: the API cannot express it)', () => {
    using kvm = Kvm.open();
    const raw = native().openKvm('/dev/kvm').createVm(0);
    const efd = native().createEventFd();
    try {
      const dev = raw.createDevice(native().constants.KVM_DEV_TYPE_VFIO, false)!;
      assert.equal(dev.hasAttr(native().constants.KVM_DEV_VFIO_FILE, native().constants.KVM_DEV_VFIO_FILE_ADD), true);
      assert.throws(() => dev.setVfioFile(native().constants.KVM_DEV_VFIO_FILE_ADD, efd), { code: 'EINVAL', syscall: /KVM_SET_DEVICE_ATTR/ });
      dev.close();
    } finally {
      efd.close();
      raw.close();
    }
    assert.ok(kvm);
  });

  it('explains that sPAPR TCE needs a POWER host', () => {
    // No group exists on this host; the rule on registration comes first.
    using kvm = Kvm.open();
    using vm = kvm.createVm();
    assert.throws(() => vm.vfioDevice().setSpaprTce(7 as never, 3), { code: 'ERR_INVALID_ARG_TYPE' });
  });
});
