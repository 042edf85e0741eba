import assert from 'node:assert/strict';
import * as fs from 'node:fs';
import * as path from 'node:path';
import { RuleCode, VfioSystemError } from '../../lib/errors';
import {
  bindAllToVfio,
  bindGroupToVfio,
  bindToVfio,
  readBindingRecord,
  readIommuGroup,
  readPciDevice,
  unbindFromVfio,
  unbindGroupFromVfio,
} from '../../lib/sysfs';
import { type Fixture, type FixtureSpec, buildFixture } from '../fixtures/sysfs-tree';
import { hostSpec, noIommuSpec } from '../fixtures/topologies';

describe('sysfs bind/unbind', () => {
  let f: Fixture;
  const fresh = (spec: FixtureSpec = hostSpec()): Fixture => {
    f?.remove();
    f = buildFixture(spec);
    return f;
  };
  afterEach(() => f?.remove());

  describe('bindToVfio', () => {
    it('sets driver_override first, then unbinds the old driver, then probes', () => {
      const { opts, kernel } = fresh();
      bindToVfio('0000:00:04.1', opts);
      assert.deepEqual(kernel.writes, [
        { file: 'bus/pci/devices/0000:00:04.1/driver_override', value: 'vfio-pci' },
        { file: 'bus/pci/drivers/e1000e/unbind', value: '0000:00:04.1' },
        { file: 'bus/pci/drivers_probe', value: '0000:00:04.1' },
      ]);
    });

    it('leaves the device on vfio-pci, reports the group node, and the group becomes viable', () => {
      const { opts, devRoot } = fresh();
      const r = bindToVfio('0000:00:04.1', opts);
      assert.deepEqual(r, {
        address: '0000:00:04.1',
        driverBefore: 'e1000e',
        driverAfter: 'vfio-pci',
        iommuGroup: 4,
        devNode: path.join(devRoot, 'vfio/4'),
        changed: true,
      });
      assert.equal(readPciDevice('0000:00:04.1', opts).driver, 'vfio-pci');
      assert.equal(readIommuGroup(4, opts).viable, true);
    });

    it('remembers the previous driver and override under <runRoot>/vfio-node', () => {
      const { opts, runRoot } = fresh();
      bindToVfio('0000:00:04.1', opts);
      const rec = readBindingRecord('0000:00:04.1', opts);
      assert.deepEqual([rec?.previousDriver, rec?.previousOverride], ['e1000e', null]);
      assert.ok(fs.existsSync(path.join(runRoot, 'vfio-node/bindings.json')));
    });

    it('does not write unbind for a device with no driver', () => {
      const { opts, kernel } = fresh();
      bindToVfio('0000:00:03.0', opts);
      assert.deepEqual(
        kernel.writes.map((w) => w.file),
        ['bus/pci/devices/0000:00:03.0/driver_override', 'bus/pci/drivers_probe'],
      );
      assert.ok(fs.existsSync(path.join(f.devRoot, 'vfio/3')));
    });

    it('writes nothing for a device already on vfio-pci', () => {
      const { opts, kernel } = fresh();
      const r = bindToVfio('0000:00:02.0', opts);
      assert.deepEqual([r.changed, r.note, kernel.writes.length], [false, 'already bound to vfio-pci', 0]);
    });

    it('refuses the device holding the root filesystem, before any write', () => {
      const { opts, kernel } = fresh();
      assert.throws(() => bindToVfio('0000:00:1f.2', opts), {
        code: RuleCode.DEVICE_IN_USE,
        message: 'refusing to take 0000:00:1f.2 from ahci: sda holds the root filesystem; use --force (force: true) if you really mean it',
      });
      assert.equal(kernel.writes.length, 0);
    });

    it('refuses the device under a root filesystem on LVM (dm slaves are followed)', () => {
      const spec = hostSpec();
      spec.rootDisk = { name: 'sda', devno: '8:0', under: '0000:00:1f.2' };
      const fx = fresh(spec);
      // / on dm-0 whose slave is sda
      const dm = path.join(fx.sysfsRoot, 'devices/virtual/block/dm-0');
      fs.mkdirSync(path.join(dm, 'slaves'), { recursive: true });
      fs.symlinkSync(path.relative(path.join(dm, 'slaves'), fs.realpathSync(path.join(fx.sysfsRoot, 'class/block/sda'))), path.join(dm, 'slaves/sda'));
      fs.symlinkSync(path.relative(path.join(fx.sysfsRoot, 'dev/block'), dm), path.join(fx.sysfsRoot, 'dev/block/253:0'));
      fs.writeFileSync(path.join(fx.procRoot, 'self/mountinfo'), '22 1 253:0 / / rw - ext4 /dev/mapper/vg-root rw\n');
      assert.throws(() => bindToVfio('0000:00:1f.2', fx.opts), { code: RuleCode.DEVICE_IN_USE, message: /sda holds the root filesystem/ });
    });

    it('takes the root-filesystem device with force', () => {
      const { opts } = fresh();
      assert.equal(bindToVfio('0000:00:1f.2', { ...opts, force: true }).driverAfter, 'vfio-pci');
    });

    it('refuses the device of an up network interface', () => {
      const { opts } = fresh();
      assert.throws(() => bindToVfio('0000:00:05.0', opts), { code: RuleCode.DEVICE_IN_USE, message: /network interface eth0 is up/ });
    });

    it('takes the device of a network interface that is down', () => {
      const spec = hostSpec();
      spec.netifs = [{ name: 'eth0', under: '0000:00:05.0', up: false }];
      const { opts } = fresh(spec);
      assert.equal(bindToVfio('0000:00:05.0', opts).driverAfter, 'vfio-pci');
    });

    it('refuses a bridge: vfio-pci does not drive bridges', () => {
      const { opts, kernel } = fresh();
      assert.throws(() => bindToVfio('0000:00:01.0', opts), { code: RuleCode.UNSUPPORTED, message: /is a PCI bridge/ });
      assert.equal(kernel.writes.length, 0);
    });

    it('says to load vfio-pci when it is not registered, before any write', () => {
      const spec = hostSpec();
      spec.devices = spec.devices.filter((d) => d.driver !== 'vfio-pci');
      spec.drivers = [];
      const { opts, kernel } = fresh(spec);
      assert.throws(() => bindToVfio('0000:00:04.1', opts), { code: RuleCode.DRIVER_MISSING, message: /modprobe vfio-pci/ });
      assert.equal(kernel.writes.length, 0);
    });

    it('without an IOMMU refuses with ERR_VFIO_NO_IOMMU_GROUP, before any write', () => {
      const { opts, kernel } = fresh(noIommuSpec());
      assert.throws(() => bindToVfio('0000:00:03.0', opts), { code: RuleCode.NO_IOMMU_GROUP });
      assert.equal(kernel.writes.length, 0);
    });

    it('when the probe does not bind vfio-pci, restores the old driver and override and forgets the record', () => {
      const { opts, kernel } = fresh();
      kernel.failProbe = true;
      assert.throws(() => bindToVfio('0000:00:04.1', opts), { code: RuleCode.BIND_FAILED, message: /driver after probe: none/ });
      const d = readPciDevice('0000:00:04.1', opts);
      assert.deepEqual([d.driver, d.driverOverride], ['e1000e', null]);
      assert.equal(readBindingRecord('0000:00:04.1', opts), null);
    });

    it('turns a refused sysfs write into a system error with code, syscall, path and a hint', () => {
      const { opts } = fresh();
      const denied = (file: string): never => {
        throw Object.assign(new Error('EACCES'), { code: 'EACCES', errno: -13, syscall: 'open', path: file });
      };
      assert.throws(() => bindToVfio('0000:00:04.1', { ...opts, writer: denied }), (e: unknown) => {
        assert.ok(e instanceof VfioSystemError);
        assert.deepEqual([e.code, e.syscall, e.path], ['EACCES', 'open', path.join(f.sysfsRoot, 'bus/pci/devices/0000:00:04.1/driver_override')]);
        assert.match(e.message, /needs root/);
        return true;
      });
    });
  });

  describe('unbindFromVfio', () => {
    it('clears driver_override, unbinds vfio-pci, then binds the remembered driver', () => {
      const { opts, kernel } = fresh();
      bindToVfio('0000:00:04.1', opts);
      kernel.writes.length = 0;
      unbindFromVfio('0000:00:04.1', opts);
      assert.deepEqual(kernel.writes, [
        { file: 'bus/pci/devices/0000:00:04.1/driver_override', value: '\n' },
        { file: 'bus/pci/drivers/vfio-pci/unbind', value: '0000:00:04.1' },
        { file: 'bus/pci/drivers/e1000e/bind', value: '0000:00:04.1' },
      ]);
    });

    it('gives the device back to its previous driver and forgets the record', () => {
      const { opts } = fresh();
      bindToVfio('0000:00:04.1', opts);
      const r = unbindFromVfio('0000:00:04.1', opts);
      assert.deepEqual([r.driverBefore, r.driverAfter, r.changed], ['vfio-pci', 'e1000e', true]);
      const d = readPciDevice('0000:00:04.1', opts);
      assert.deepEqual([d.driver, d.driverOverride], ['e1000e', null]);
      assert.equal(readBindingRecord('0000:00:04.1', opts), null);
      assert.equal(readIommuGroup(4, opts).viable, false);
    });

    it('leaves a device that had no driver before bind without one', () => {
      const { opts, kernel } = fresh();
      bindToVfio('0000:00:03.0', opts);
      kernel.writes.length = 0;
      assert.equal(unbindFromVfio('0000:00:03.0', opts).driverAfter, null);
      assert.deepEqual(kernel.writes.map((w) => w.file), ['bus/pci/devices/0000:00:03.0/driver_override', 'bus/pci/drivers/vfio-pci/unbind']);
      assert.equal(fs.existsSync(path.join(f.devRoot, 'vfio/3')), false);
    });

    it('with no record (bound by someone else) lets the kernel pick a driver through drivers_probe', () => {
      const { opts, kernel } = fresh();
      unbindFromVfio('0000:00:02.0', opts);
      assert.deepEqual(kernel.writes.map((w) => w.file), [
        'bus/pci/devices/0000:00:02.0/driver_override',
        'bus/pci/drivers/vfio-pci/unbind',
        'bus/pci/drivers_probe',
      ]);
      assert.equal(readPciDevice('0000:00:02.0', opts).driver, null);
    });

    it('restores the driver_override the device had before bind', () => {
      const spec = hostSpec();
      spec.devices.find((d) => d.address === '0000:00:03.0')!.override = 'none';
      const { opts } = fresh(spec);
      bindToVfio('0000:00:03.0', opts);
      unbindFromVfio('0000:00:03.0', opts);
      assert.equal(readPciDevice('0000:00:03.0', opts).driverOverride, 'none');
    });

    it('writes nothing for a device that is not on vfio', () => {
      const { opts, kernel } = fresh();
      const r = unbindFromVfio('0000:00:04.1', opts);
      assert.deepEqual([r.changed, kernel.writes.length], [false, 0]);
    });

    it('refuses while a process holds the group open, unless forced', () => {
      const { opts, kernel } = fresh({ ...hostSpec(), groupOpeners: [{ pid: 4321, group: 2 }] });
      assert.throws(() => unbindFromVfio('0000:00:02.0', opts), { code: RuleCode.DEVICE_IN_USE, message: /\/dev\/vfio\/2 is open in process 4321/ });
      assert.equal(kernel.writes.length, 0);
      assert.equal(unbindFromVfio('0000:00:02.0', { ...opts, force: true }).changed, true);
    });
  });

  describe('whole groups', () => {
    it('bindGroupToVfio binds the devices of the group not yet on vfio-pci', () => {
      const { opts } = fresh();
      const r = bindGroupToVfio('0000:00:04.0', opts);
      assert.deepEqual(r.map((c) => [c.address, c.changed, c.driverAfter]), [
        ['0000:00:04.0', false, 'vfio-pci'],
        ['0000:00:04.1', true, 'vfio-pci'],
      ]);
      assert.equal(readIommuGroup(4, opts).viable, true);
    });

    it('bindGroupToVfio leaves a bridge of the group where it is', () => {
      const spec = hostSpec();
      spec.devices.find((d) => d.address === '0000:01:00.0')!.driver = null;
      const { opts } = fresh(spec);
      const r = bindGroupToVfio('0000:01:00.0', opts);
      assert.deepEqual(r.map((c) => [c.address, c.driverAfter, c.note ?? null]), [
        ['0000:00:01.0', 'pcieport', 'PCI bridge, left as it is'],
        ['0000:01:00.0', 'vfio-pci', null],
      ]);
    });

    it('bindGroupToVfio checks every device before moving any', () => {
      const spec = hostSpec();
      spec.devices.push({ address: '0000:00:1f.3', vendor: 0x8086, device: 0x2930, class: 0x0c0500, driver: 'i801_smbus', group: 5 });
      const { opts, kernel } = fresh(spec);
      assert.throws(() => bindGroupToVfio('0000:00:1f.3', opts), { code: RuleCode.DEVICE_IN_USE });
      assert.equal(kernel.writes.length, 0);
    });

    it('bindAllToVfio checks every device before moving any', () => {
      const { opts, kernel } = fresh();
      assert.throws(() => bindAllToVfio(['0000:00:03.0', '0000:00:05.0'], opts), { code: RuleCode.DEVICE_IN_USE });
      assert.equal(kernel.writes.length, 0);
      assert.deepEqual(bindAllToVfio(['0000:00:03.0', '0000:00:04.1'], opts).map((c) => c.driverAfter), ['vfio-pci', 'vfio-pci']);
    });

    it('unbindGroupFromVfio gives every device of the group back', () => {
      const { opts } = fresh();
      bindGroupToVfio('0000:00:04.0', opts);
      unbindGroupFromVfio('0000:00:04.0', opts);
      assert.deepEqual(readIommuGroup(4, opts).devices.map((d) => d.driver), [null, 'e1000e']);
    });
  });
});
