import assert from 'node:assert/strict';
import * as path from 'node:path';
import { type HostInterfaces, deviceInterfaces, detectInterfaces, listDeviceInterfaces, listIommuGroups } from '../../lib/sysfs';
import { type Fixture, type FixtureSpec, buildFixture } from '../fixtures/sysfs-tree';
import { debian61Spec, hostSpec, iommufdSpec, noiommuSpec } from '../fixtures/topologies';

describe('VFIO interfaces of the host', () => {
  let f: Fixture;
  const fresh = (spec: FixtureSpec): Fixture => {
    f?.remove();
    return (f = buildFixture(spec));
  };
  const detect = (spec: FixtureSpec): HostInterfaces => detectInterfaces(fresh(spec).opts);
  afterEach(() => f?.remove());

  describe("a host with groups only (Debian's 6.1 kernel)", () => {
    it('offers the group/container interface, with vfio_iommu_type1 behind /dev/vfio/vfio', () => {
      const i = detect(debian61Spec());
      assert.deepEqual([i.group.available, i.group.container, i.group.backends], [true, 'vfio', ['vfio_iommu_type1']]);
      assert.deepEqual(i.group.evidence, [path.join(f.devRoot, 'vfio/vfio'), path.join(f.sysfsRoot, 'module/vfio_iommu_type1')]);
    });

    it('has no iommufd: the kernel predates it, and the fix names the version and the option', () => {
      const { iommufd } = detect(debian61Spec());
      assert.equal(iommufd.available, false);
      assert.equal(iommufd.detail, 'Linux 6.1.0-57-amd64 has no iommufd (it came in 6.2)');
      assert.match(iommufd.fix!, /^boot Linux 6\.2 or later built with CONFIG_IOMMUFD=y/);
      assert.deepEqual(iommufd.evidence, [path.join(f.devRoot, 'iommu')]);
    });

    it('has no device cdev: the kernel predates it (6.6)', () => {
      const { cdev } = detect(debian61Spec());
      assert.deepEqual([cdev.available, cdev.detail], [false, 'Linux 6.1.0-57-amd64 has no VFIO device cdev (it came in 6.6)']);
      assert.match(cdev.fix!, /CONFIG_IOMMUFD=y and CONFIG_VFIO_DEVICE_CDEV=y/);
    });

    it('has no no-IOMMU mode: vfio is loaded without the parameter, so the kernel lacks CONFIG_VFIO_NOIOMMU', () => {
      const { noiommu } = detect(debian61Spec());
      assert.deepEqual([noiommu.available, noiommu.enabled], [false, null]);
      assert.match(noiommu.detail, /^this kernel is built without no-IOMMU mode \(CONFIG_VFIO_NOIOMMU/);
      assert.equal(noiommu.fix, 'boot a kernel built with CONFIG_VFIO_NOIOMMU=y');
      assert.deepEqual(noiommu.evidence, [path.join(f.sysfsRoot, 'module/vfio/parameters/enable_unsafe_noiommu_mode')]);
    });

    it('a device on vfio-pci opens through its group only: it has a vfio-dev name but no cdev', () => {
      const d = deviceInterfaces('0000:00:02.0', fresh(debian61Spec()).opts);
      assert.deepEqual(d, {
        address: '0000:00:02.0',
        group: 2,
        noiommu: false,
        groupNode: path.join(f.devRoot, 'vfio/2'),
        vfioDevice: 'vfio1',
        cdev: null,
        openWith: ['group'],
      });
    });

    it('a device on its host driver opens through nothing, even when its group has a node', () => {
      const d = deviceInterfaces('0000:00:04.1', fresh(debian61Spec()).opts);
      assert.deepEqual([d.groupNode, d.vfioDevice, d.openWith], [path.join(f.devRoot, 'vfio/4'), null, []]);
    });
  });

  describe('a kernel new enough, without a config to read', () => {
    it('without /dev/iommu says to load iommufd and what it means if there is no such module', () => {
      const { iommufd, configFile } = detect(hostSpec());
      assert.equal(configFile, null);
      assert.equal(iommufd.detail, `no ${path.join(f.devRoot, 'iommu')} and no iommufd module loaded (${path.join(f.sysfsRoot, 'module/iommufd')})`);
      assert.match(iommufd.fix!, /^modprobe iommufd; if there is no such module, the kernel is built without CONFIG_IOMMUFD/);
      assert.equal(iommufd.config.value, null);
    });

    it('without "vfio-dev" in /proc/devices, vfio has no cdevs', () => {
      const { cdev } = detect(hostSpec());
      assert.equal(cdev.detail, 'this kernel is built without VFIO device cdevs (vfio registered no "vfio-dev" character devices in /proc/devices); it also needs iommufd, absent here');
    });
  });

  describe("the kernel's config, when installed", () => {
    const config = (text: string, at: 'boot' | 'proc'): FixtureSpec => ({ ...hostSpec(), kernelConfig: { text, at } });

    it('/boot/config-<release> saying IOMMUFD is not set: built without, the file named', () => {
      const i = detect(config('CONFIG_VFIO=m\n# CONFIG_IOMMUFD is not set\n# CONFIG_VFIO_NOIOMMU is not set\n', 'boot'));
      const file = path.join(f.bootRoot, 'config-6.12.0-amd64');
      assert.equal(i.configFile, file);
      assert.equal(i.iommufd.detail, `this kernel is built without iommufd (CONFIG_IOMMUFD is not set in ${file})`);
      assert.deepEqual(i.iommufd.config, { option: 'CONFIG_IOMMUFD', value: 'n' });
      assert.equal(i.noiommu.detail, `this kernel is built without no-IOMMU mode (CONFIG_VFIO_NOIOMMU is not set in ${file})`);
      // An option the config does not name at all is not set either.
      assert.deepEqual(i.cdev.config, { option: 'CONFIG_VFIO_DEVICE_CDEV', value: 'n' });
    });

    it('/proc/config.gz with IOMMUFD=m and the module not loaded: modprobe iommufd', () => {
      const i = detect(config('CONFIG_IOMMUFD=m\nCONFIG_VFIO_DEVICE_CDEV=y\n', 'proc'));
      assert.equal(i.configFile, path.join(f.procRoot, 'config.gz'));
      assert.equal(i.iommufd.fix, 'modprobe iommufd');
      assert.match(i.iommufd.detail, /^iommufd is a module \(CONFIG_IOMMUFD=m in .*config\.gz\) that is not loaded$/);
      assert.deepEqual(i.cdev.config, { option: 'CONFIG_VFIO_DEVICE_CDEV', value: 'y' });
    });
  });

  describe('a host with iommufd and device cdevs', () => {
    it('offers iommufd at /dev/iommu, built in', () => {
      const { iommufd } = detect(iommufdSpec());
      assert.deepEqual([iommufd.available, iommufd.detail, iommufd.fix], [true, `${path.join(f.devRoot, 'iommu')} (iommufd built in)`, null]);
    });

    it('tells a loaded iommufd module from a built-in one', () => {
      assert.match(detect({ ...iommufdSpec(), iommufd: 'module' }).iommufd.detail, /\(module iommufd\)$/);
    });

    it('offers cdevs and names each with its device', () => {
      const { cdev } = detect(iommufdSpec());
      const node = (n: string) => path.join(f.devRoot, 'vfio/devices', n);
      assert.equal(cdev.available, true);
      assert.equal(cdev.detail, `${node('vfio0')} (0000:01:00.0), ${node('vfio1')} (0000:00:02.0), ${node('vfio2')} (0000:00:04.0)`);
      assert.deepEqual(cdev.evidence, [node('vfio0'), node('vfio1'), node('vfio2')]);
    });

    it('offers cdevs while no device is bound to vfio: /proc/devices has vfio-dev', () => {
      const spec = iommufdSpec();
      spec.devices = spec.devices.map((d) => (d.driver === 'vfio-pci' ? { ...d, driver: null, override: null } : d));
      const { cdev } = detect(spec);
      assert.equal(cdev.available, true);
      assert.match(cdev.detail, /none is bound now$/);
    });

    it('a device bound to vfio-pci opens through its group and its cdev', () => {
      const d = deviceInterfaces('0000:00:02.0', fresh(iommufdSpec()).opts);
      assert.deepEqual([d.vfioDevice, d.cdev, d.openWith], ['vfio1', path.join(f.devRoot, 'vfio/devices/vfio1'), ['group', 'cdev']]);
    });

    it('with iommufd and no type1 behind /dev/vfio/vfio, iommufd serves the container', () => {
      const g = detect({ ...iommufdSpec(), modules: ['vfio', 'vfio_pci'] }).group;
      assert.deepEqual([g.available, g.container, g.backends], [true, 'iommufd', []]);
      assert.match(g.detail, /served by iommufd \(CONFIG_IOMMUFD_VFIO_CONTAINER\)/);
    });

    it('without /dev/vfio/vfio at all the group interface is absent and the cdev is the way', () => {
      const g = detect({ ...iommufdSpec(), vfioNodes: { '1': 0o600, '2': 0o600, '4': 0o600 } }).group;
      assert.equal(g.available, false);
      assert.match(g.detail, /has no container \(CONFIG_VFIO_CONTAINER\) and iommufd does not stand in for it/);
      assert.match(g.fix!, /^open devices through their cdev and iommufd/);
    });
  });

  describe('no-IOMMU mode', () => {
    it('enabled: available, names the noiommu groups, and the fix turns it off', () => {
      const { noiommu } = detect(noiommuSpec());
      assert.deepEqual([noiommu.available, noiommu.enabled], [true, true]);
      assert.match(noiommu.detail, /^unsafe no-IOMMU mode is on \(.*enable_unsafe_noiommu_mode = Y\): .*; groups .*\/vfio\/noiommu-0$/);
      assert.match(noiommu.fix!, /^when done: echo N > \/sys\/module\/vfio\/parameters\/enable_unsafe_noiommu_mode/);
    });

    it('disabled: in the kernel but off, and the fix says how to turn it on and what it costs', () => {
      const { noiommu } = detect({ ...hostSpec(), noiommuMode: false });
      assert.deepEqual([noiommu.available, noiommu.enabled, noiommu.detail], [false, false, `in this kernel but off (${path.join(f.sysfsRoot, 'module/vfio/parameters/enable_unsafe_noiommu_mode')} = N)`]);
      assert.match(noiommu.fix!, /^as root: echo Y > \/sys\/module\/vfio\/parameters\/enable_unsafe_noiommu_mode .*CAP_SYS_RAWIO.*DMA anywhere/);
    });

    it('absent with vfio not loaded: unknown, load vfio with the parameter', () => {
      const { noiommu } = detect({ ...hostSpec(), modules: [] });
      assert.match(noiommu.fix!, /^modprobe vfio enable_unsafe_noiommu_mode=1/);
    });

    it('a device in a noiommu group opens through /dev/vfio/noiommu-N and its noiommu- cdev', () => {
      const d = deviceInterfaces('0000:00:03.0', fresh(noiommuSpec()).opts);
      assert.deepEqual(d, {
        address: '0000:00:03.0',
        group: 0,
        noiommu: true,
        groupNode: path.join(f.devRoot, 'vfio/noiommu-0'),
        vfioDevice: 'noiommu-vfio0',
        cdev: path.join(f.devRoot, 'vfio/devices/noiommu-vfio0'),
        openWith: ['noiommu', 'cdev'],
      });
    });

    it('the group listing gives a noiommu group its own node and says so', () => {
      const [g] = listIommuGroups(fresh(noiommuSpec()).opts);
      assert.deepEqual([g!.id, g!.noiommu, g!.devNode.path, g!.devNode.exists], [0, true, path.join(f.devRoot, 'vfio/noiommu-0'), true]);
    });
  });

  it('listDeviceInterfaces covers every member of every group, in group order', () => {
    const all = listDeviceInterfaces(fresh(iommufdSpec()).opts);
    assert.deepEqual(
      all.map((d) => [d.address, d.group]),
      [
        ['0000:00:00.0', 0], ['0000:00:01.0', 1], ['0000:01:00.0', 1], ['0000:00:02.0', 2], ['0000:00:03.0', 3],
        ['0000:00:04.0', 4], ['0000:00:04.1', 4], ['0000:00:1f.2', 5], ['0000:00:05.0', 6],
      ],
    );
    assert.deepEqual(all.filter((d) => d.openWith.length > 0).map((d) => [d.address, d.openWith]), [
      ['0000:01:00.0', ['group', 'cdev']],
      ['0000:00:02.0', ['group', 'cdev']],
      ['0000:00:04.0', ['group', 'cdev']],
    ]);
  });
});
