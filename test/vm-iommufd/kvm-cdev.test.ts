// KVM-VFIO with a device cdev (KVM_DEV_VFIO_FILE_ADD takes a cdev fd since
// 6.6): registered before bind, removed before the device's fd closes, in
// every close order; each refusal next to the kernel's own answer.

import assert from 'node:assert/strict';
import { existsSync } from 'node:fs';
import { Device, DmaBuffer, IommuFd, Kvm, type Vm } from '../../lib';
import { cdevPath } from '../../lib/device';
import { native } from '../../lib/native';
import { testEnv, type TestEnv } from '../vm/env';
import { errorOf } from '../vm/raw';

describe('KVM-VFIO with a device cdev on the real kernel', () => {
  let env: TestEnv;
  let vm: Vm;

  before(() => {
    env = testEnv();
    if (!existsSync('/dev/kvm')) throw new Error('/dev/kvm is missing: the built-kernel guest must run with --kvm (KVM is built in)');
  });
  beforeEach(() => {
    using kvm = Kvm.open();
    vm = kvm.createVm();
  });
  afterEach(() => vm.close());

  it('adds a cdev before bind, the device then binds, attaches and works; removes it again', () => {
    const kvmDev = vm.vfioDevice();
    using fd = IommuFd.open();
    using d = Device.openCdev(env.bdf);
    kvmDev.add(d);
    assert.deepEqual(kvmDev.devices, [d]);
    d.bind(fd);
    d.attach(fd.allocIoas());
    assert.equal(d.bar(0).read32(0), 0x010000ed);
    kvmDev.remove(d);
    assert.deepEqual(kvmDev.devices, []);
  });

  it('adding a cdev after bind: ERR_VFIO_ORDER here; the kernel accepts the fd but the device never sees KVM', () => {
    const kvmDev = vm.vfioDevice();
    using fd = IommuFd.open();
    using d = fd.openDevice(env.bdf);
    assert.throws(() => kvmDev.add(d), { code: 'ERR_VFIO_ORDER', message: /before device\.bind\(iommufd\)/ });
    assert.deepEqual(kvmDev.devices, []);
    const raw = native().openKvm('/dev/kvm').createVm(0);
    try {
      const rawDev = raw.createDevice(native().constants.KVM_DEV_TYPE_VFIO, false)!;
      const handle = d.kvmFile().handle;
      assert.equal(errorOf(() => rawDev.setVfioFile(native().constants.KVM_DEV_VFIO_FILE_ADD, handle)), null);
      rawDev.setVfioFile(native().constants.KVM_DEV_VFIO_FILE_DEL, handle);
      rawDev.close();
    } finally {
      raw.close();
    }
  });

  it('the kernel answers ENOENT to deleting a cdev never added; here ERR_VFIO_KVM_NOT_REGISTERED', () => {
    using d = Device.openCdev(env.bdf);
    assert.throws(() => vm.vfioDevice().remove(d), { code: 'ERR_VFIO_KVM_NOT_REGISTERED' });
    const raw = native().openKvm('/dev/kvm').createVm(0);
    try {
      const rawDev = raw.createDevice(native().constants.KVM_DEV_TYPE_VFIO, false)!;
      assert.equal(errorOf(() => rawDev.setVfioFile(native().constants.KVM_DEV_VFIO_FILE_DEL, d.kvmFile().handle))?.code, 'ENOENT');
      rawDev.close();
    } finally {
      raw.close();
    }
  });

  it('a closed cdev: ERR_VFIO_CLOSED before any ioctl, here and from the raw addon (no fd number ever reaches the kernel)', () => {
    const d = Device.openCdev(env.bdf);
    const handle = d.kvmFile().handle;
    d.close();
    assert.throws(() => vm.vfioDevice().add(d), { code: 'ERR_VFIO_CLOSED' });
    const raw = native().openKvm('/dev/kvm').createVm(0);
    try {
      const rawDev = raw.createDevice(native().constants.KVM_DEV_TYPE_VFIO, false)!;
      assert.equal(errorOf(() => rawDev.setVfioFile(native().constants.KVM_DEV_VFIO_FILE_ADD, handle))?.code, 'ERR_VFIO_CLOSED');
      rawDev.close();
    } finally {
      raw.close();
    }
    assert.match(cdevPath(env.bdf), /vfio\d+$/);
  });

  it('closing a registered device removes it from KVM first (teardown step 0)', () => {
    const kvmDev = vm.vfioDevice();
    using fd = IommuFd.open();
    const d = Device.openCdev(env.bdf);
    kvmDev.add(d);
    d.bind(fd);
    d.attach(fd.allocIoas());
    d.close();
    assert.deepEqual(kvmDev.devices, []);
    assert.deepEqual(fd.devices, []);
    // KVM let go of the file: the device opens and binds again.
    using again = fd.openDevice(env.bdf, { ioas: fd.allocIoas() });
    assert.equal(again.bar(0).read32(0), 0x010000ed);
  });

  it('closes device, iommufd, KVM-VFIO device, VM and buffer in all 120 orders; the device opens afresh after each', () => {
    const parts = ['device', 'iommufd', 'kvmdev', 'vm', 'buffer'] as const;
    type Part = (typeof parts)[number];
    const orders: Part[][] = [];
    const permute = (rest: Part[], done: Part[]) => {
      if (rest.length === 0) orders.push(done);
      rest.forEach((p, i) => permute([...rest.slice(0, i), ...rest.slice(i + 1)], [...done, p]));
    };
    permute([...parts], []);
    assert.equal(orders.length, 120);
    for (const order of orders) {
      using kvm = Kvm.open();
      const v = kvm.createVm();
      const kvmDev = v.vfioDevice();
      const fd = IommuFd.open();
      const d = Device.openCdev(env.bdf);
      kvmDev.add(d);
      d.bind(fd);
      const ioas = fd.allocIoas();
      d.attach(ioas);
      const buf = DmaBuffer.allocate(4096);
      const m = ioas.map(buf, { iova: 0x100000n });
      const close: Record<Part, () => void> = { device: () => d.close(), iommufd: () => fd.close(), kvmdev: () => kvmDev.close(), vm: () => v.close(), buffer: () => buf.close() };
      for (const part of order) {
        try {
          close[part]();
        } catch (e) {
          assert.equal((e as { code?: string }).code, 'ERR_VFIO_BUFFER_IN_USE', `${order.join(' → ')}: ${part}: ${String(e)}`);
        }
      }
      if (!m.closed) m.unmap();
      buf.close();
      assert.ok([d, fd, kvmDev, v, buf].every((o) => o.closed), order.join(' → '));
    }
    using fd = IommuFd.open();
    using d = fd.openDevice(env.bdf, { ioas: fd.allocIoas() });
    assert.equal(d.bar(0).read32(0), 0x010000ed);
  });
});
