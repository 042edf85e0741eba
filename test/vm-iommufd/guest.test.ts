// The guest of the iommufd and device-cdev suites: the kernel we build
// (scripts/guest-kernel/build), with the emulated Intel IOMMU and the vm
// suite's devices. These facts are what every other file here relies on.

import assert from 'node:assert/strict';
import { existsSync, readdirSync, readFileSync, statSync } from 'node:fs';
import { itSeesTheProject, requireNvme, requireRootPort, requireShared, testEnv } from '../vm/env';

/** "major:minor" of a device node, as sysfs writes it in its dev file. */
const devOf = (node: string): string => {
  const st = statSync(node);
  assert.ok(st.isCharacterDevice(), `${node} is not a character device`);
  return `${Math.floor(st.rdev / 256) & 0xfff}:${(st.rdev & 0xff) | ((st.rdev >> 12) & 0xfff00)}`;
};

/** The device's VFIO cdev, found through sysfs as the kernel documents it. */
const cdevOf = (bdf: string): string => {
  const names = readdirSync(`/sys/bus/pci/devices/${bdf}/vfio-dev`);
  assert.equal(names.length, 1, `${bdf} has ${names.length} entries in vfio-dev/`);
  assert.match(names[0], /^vfio\d+$/);
  return names[0];
};

describe('the built-kernel guest with an IOMMU (iommufd, device cdev)', () => {
  const env = testEnv();

  it('runs the kernel we build, with the emulated IOMMU on', () => {
    assert.equal(process.env.VFIO_GUEST_KERNEL, 'built', 'run this suite through `node scripts/test.js vm-iommufd`');
    assert.equal(process.env.VFIO_GUEST_NOIOMMU, '0');
    assert.deepEqual(readdirSync('/sys/class/iommu'), ['dmar0']);
    assert.ok(existsSync(`/sys/bus/pci/devices/${env.bdf}/iommu`), 'edu A sits behind the IOMMU');
    assert.equal(readFileSync('/sys/module/vfio/parameters/enable_unsafe_noiommu_mode', 'utf8').trim(), 'N');
  });

  it('has /dev/iommu, the iommufd, as the misc device sysfs names', () => {
    assert.equal(devOf('/dev/iommu'), readFileSync('/sys/class/misc/iommu/dev', 'utf8').trim());
  });

  it("gives each vfio-pci device a cdev /dev/vfio/devices/vfioN matching its sysfs vfio-dev entry", () => {
    const bdfs = [env.bdf, requireShared(env).bdf, requireRootPort(env).bdf, requireNvme(env).bdf];
    const cdevs = bdfs.map((bdf) => {
      const name = cdevOf(bdf);
      assert.equal(devOf(`/dev/vfio/devices/${name}`), readFileSync(`/sys/bus/pci/devices/${bdf}/vfio-dev/${name}/dev`, 'utf8').trim());
      return name;
    });
    assert.equal(new Set(cdevs).size, bdfs.length, `one cdev per device: ${cdevs.join(' ')}`);
    assert.deepEqual(readdirSync('/dev/vfio/devices').sort(), [...cdevs].sort());
  });

  it('keeps the legacy interface: /dev/vfio/vfio and each group node', () => {
    devOf('/dev/vfio/vfio');
    for (const g of [env.group, requireShared(env).group, requireRootPort(env).group]) devOf(`/dev/vfio/${g}`);
  });

  it('has /dev/kvm (built in, for KVM-VFIO with a cdev fd)', () => {
    devOf('/dev/kvm');
  });

  itSeesTheProject();
});
