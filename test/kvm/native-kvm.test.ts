// KVM and the KVM-VFIO pseudo device on a real /dev/kvm: the host's, or
// the x86_64 test guest's when the host has none (scripts/test.js decides).
import assert from 'node:assert/strict';
import fs from 'node:fs';
import { native as loadNative, NativeKvm, NativeVm } from '../../lib/native';

const native = loadNative();
const C = native.constants;
const openFds = (): number => fs.readdirSync('/proc/self/fd').length;

describe('native: KVM', () => {
  let kvm: NativeKvm;
  let vm: NativeVm;
  before(() => {
    kvm = native.openKvm('/dev/kvm');
    vm = kvm.createVm(0);
  });
  after(() => {
    vm.close();
    kvm.close();
  });

  it('openKvm defaults to /dev/kvm', () => {
    const k = native.openKvm(undefined as unknown as string);
    try {
      assert.ok(k.fd >= 0);
    } finally {
      k.close();
    }
  });

  it('out-of-range capabilities are RangeError ERR_OUT_OF_RANGE', () => {
    assert.throws(() => kvm.checkExtension(-1), { code: 'ERR_OUT_OF_RANGE' });
    assert.throws(() => kvm.checkExtension(2 ** 32), { code: 'ERR_OUT_OF_RANGE' });
  });

  it('reports API version 12', () => {
    assert.equal(kvm.getApiVersion(), C.KVM_API_VERSION);
    assert.equal(kvm.getApiVersion(), 12);
  });

  // KVM_CAP_DEVICE_CTRL is reported on x86 only from 6.x on (the guest's 6.1 says 0); IRQFD everywhere.
  it('answers KVM_CAP_IRQFD on /dev/kvm and on the VM', () => {
    assert.ok(kvm.checkExtension(C.KVM_CAP_IRQFD) > 0);
    assert.ok(vm.checkExtension(C.KVM_CAP_IRQFD) > 0);
  });

  it('KVM_CREATE_DEVICE_TEST of the VFIO device creates nothing and returns null', () => {
    const before = openFds();
    assert.equal(vm.createDevice(C.KVM_DEV_TYPE_VFIO, true), null);
    assert.equal(openFds(), before);
  });

  it('an unknown device type is the kernel error', () => {
    assert.throws(() => vm.createDevice(0xffff, true), { code: 'ENODEV', syscall: 'ioctl(KVM_CREATE_DEVICE)' });
  });

  describe('KVM-VFIO device', () => {
    it('has the FILE group with ADD and DEL', () => {
      const dev = vm.createDevice(C.KVM_DEV_TYPE_VFIO, false)!;
      try {
        assert.ok(dev.fd >= 0);
        assert.equal(dev.hasAttr(C.KVM_DEV_VFIO_FILE, C.KVM_DEV_VFIO_FILE_ADD), true);
        assert.equal(dev.hasAttr(C.KVM_DEV_VFIO_FILE, C.KVM_DEV_VFIO_FILE_DEL), true);
        assert.equal(dev.hasAttr(C.KVM_DEV_VFIO_FILE, 0x7777), false);
      } finally {
        dev.close();
      }
    });

    it('FILE_ADD of a file that is not VFIO is EINVAL from the kernel', () => {
      const dev = vm.createDevice(C.KVM_DEV_TYPE_VFIO, false)!;
      const eventfd = native.createEventFd();
      try {
        assert.throws(() => dev.setVfioFile(C.KVM_DEV_VFIO_FILE_ADD, eventfd), {
          code: 'EINVAL',
          errno: -22,
          syscall: 'ioctl(KVM_SET_DEVICE_ATTR)',
        });
      } finally {
        eventfd.close();
        dev.close();
      }
    });

    it('FILE_ADD with a closed object is ERR_VFIO_CLOSED, with a stranger TypeError', () => {
      const dev = vm.createDevice(C.KVM_DEV_TYPE_VFIO, false)!;
      const eventfd = native.createEventFd();
      eventfd.close();
      try {
        assert.throws(() => dev.setVfioFile(C.KVM_DEV_VFIO_FILE_ADD, eventfd), { code: 'ERR_VFIO_CLOSED' });
        assert.throws(() => dev.setVfioFile(C.KVM_DEV_VFIO_FILE_ADD, { fd: 0, close() {} }), { code: 'ERR_INVALID_ARG_TYPE' });
      } finally {
        dev.close();
      }
    });

    it('FILE_DEL of a file never added is ENOENT from the kernel', () => {
      const dev = vm.createDevice(C.KVM_DEV_TYPE_VFIO, false)!;
      const notVfio = native.openGroup('/dev/null');
      try {
        assert.throws(() => dev.setVfioFile(C.KVM_DEV_VFIO_FILE_DEL, notVfio), { code: 'ENOENT', syscall: 'ioctl(KVM_SET_DEVICE_ATTR)' });
      } finally {
        notVfio.close();
        dev.close();
      }
    });

    it('SET_SPAPR_TCE where the kernel lacks the attribute is ENXIO', () => {
      const dev = vm.createDevice(C.KVM_DEV_TYPE_VFIO, false)!;
      const notVfio = native.openGroup('/dev/null');
      try {
        assert.equal(dev.hasAttr(C.KVM_DEV_VFIO_GROUP, C.KVM_DEV_VFIO_GROUP_SET_SPAPR_TCE), false, 'this host is not POWER');
        assert.throws(() => dev.setSpaprTce(notVfio, -1), { code: 'ENXIO', errno: -6, syscall: 'ioctl(KVM_SET_DEVICE_ATTR)' });
      } finally {
        notVfio.close();
        dev.close();
      }
    });
  });

  describe('adoptVm', () => {
    it('duplicates a VMM-owned VM fd; closing ours leaves theirs open', () => {
      const adopted = native.adoptVm(vm.fd);
      assert.notEqual(adopted.fd, vm.fd);
      assert.ok(adopted.checkExtension(C.KVM_CAP_IRQFD) > 0);
      adopted.close();
      assert.ok(vm.checkExtension(C.KVM_CAP_IRQFD) > 0);
    });

    it('an fd that is not open is EBADF', () => {
      assert.throws(() => native.adoptVm(-1), { code: 'EBADF', errno: -9, syscall: 'fcntl' });
      const other = kvm.createVm(0);
      const stale = other.fd;
      other.close();
      assert.throws(() => native.adoptVm(stale), { code: 'EBADF' });
    });
  });

  it('every KVM object opened here is closed again', () => {
    const before = openFds();
    const k = native.openKvm('/dev/kvm');
    const v = k.createVm(0);
    const d = v.createDevice(C.KVM_DEV_TYPE_VFIO, false)!;
    assert.equal(openFds(), before + 3);
    d.close();
    v.close();
    k.close();
    assert.equal(openFds(), before);
    assert.throws(() => v.createDevice(C.KVM_DEV_TYPE_VFIO, true), { code: 'ERR_VFIO_CLOSED' });
  });
});
