// The iommufd path on a kernel without it (the fake kernel is Debian's: no
// CONFIG_IOMMUFD, no device cdevs): every refusal says what the host lacks
// and what to use instead. The iommufd path itself runs in the built-kernel
// guest (test/vm-iommufd).

import assert from 'node:assert/strict';
import { mkdirSync, mkdtempSync, rmSync, symlinkSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { Device, IommuFd, Kvm } from '../../lib';
import { cdevPath } from '../../lib/device';
import { EDU, openEdu, throwsCode, useFakeKernel } from './fake/setup';

describe('iommufd and device cdevs on a kernel without them', () => {
  useFakeKernel([{ id: 3, devices: [EDU] }]);
  let sys: string;
  beforeEach(() => {
    sys = mkdtempSync(join(tmpdir(), 'vfio-sys-'));
  });
  afterEach(() => rmSync(sys, { recursive: true, force: true }));

  function pciDevice(bdf: string, driver: string | null, cdev?: string): void {
    const dir = join(sys, 'bus/pci/devices', bdf);
    mkdirSync(dir, { recursive: true });
    if (driver) symlinkSync(`../../../bus/pci/drivers/${driver}`, join(dir, 'driver'));
    if (cdev) mkdirSync(join(dir, 'vfio-dev', cdev), { recursive: true });
  }

  it('IommuFd.open(): ENOENT, and the message says which interface to use and what to enable', () => {
    const e = throwsCode(() => IommuFd.open(), 'ENOENT', /CONFIG_IOMMUFD/);
    assert.match(e.message, /Container\.open\(\)/);
    assert.equal((e as unknown as { syscall?: string }).syscall, 'open');
  });

  it('the cdev of a device comes from sysfs: vfio-dev/vfioN → /dev/vfio/devices/vfioN', () => {
    pciDevice('0000:00:05.0', 'vfio-pci', 'vfio7');
    assert.equal(cdevPath('0000:00:05.0', { sysfsRoot: sys }), '/dev/vfio/devices/vfio7');
    assert.equal(cdevPath('0000:00:05.0', { sysfsRoot: sys, devRoot: '/x' }), '/x/vfio/devices/vfio7');
  });

  it('a device on vfio-pci without a cdev: the kernel lacks CONFIG_VFIO_DEVICE_CDEV, open it through its group', () => {
    pciDevice('0000:00:05.0', 'vfio-pci');
    throwsCode(() => Device.openCdev('0000:00:05.0', { sysfsRoot: sys }), 'ERR_VFIO_NO_DEVICE', /CONFIG_VFIO_DEVICE_CDEV.*openGroup/);
  });

  it('a device not bound to vfio-pci: bind it first', () => {
    pciDevice('0000:00:05.0', 'e1000e');
    throwsCode(() => Device.openCdev('0000:00:05.0', { sysfsRoot: sys }), 'ERR_VFIO_NO_DEVICE', /vfio bind 0000:00:05\.0/);
  });

  it('the cdev named by sysfs but missing from /dev: ENOENT naming the path', () => {
    pciDevice('0000:00:05.0', 'vfio-pci', 'vfio0');
    const e = throwsCode(() => Device.openCdev('0000:00:05.0', { sysfsRoot: sys }), 'ENOENT', /CONFIG_VFIO_DEVICE_CDEV/);
    assert.equal((e as unknown as { path?: string }).path, '/dev/vfio/devices/vfio0');
  });

  it('a device opened through its group does not bind, attach or detach, and KVM takes its group, not it', () => {
    const { container, device } = openEdu();
    try {
      assert.equal(device.cdev, null);
      assert.equal(device.iommufd, null);
      throwsCode(() => device.detach(), 'ERR_VFIO_UNSUPPORTED', /Device\.openCdev/);
      using kvm = Kvm.open();
      using vm = kvm.createVm();
      throwsCode(() => vm.vfioDevice().add(device), 'ERR_VFIO_UNSUPPORTED', /opened through group 3/);
      assert.deepEqual(vm.vfioDevice().devices, []);
    } finally {
      container.close();
    }
  });
});
