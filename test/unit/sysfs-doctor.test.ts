import assert from 'node:assert/strict';
import { type DoctorCheck, type DoctorOptions, runDoctor } from '../../lib/sysfs';
import { type FixtureSpec, buildFixture } from '../fixtures/sysfs-tree';
import { debian61Spec, hostSpec, iommufdSpec, noIommuSpec, noiommuSpec } from '../fixtures/topologies';

const ROOT = { uid: 0, gids: [0] };
const USER = { uid: 1000, gids: [1000] };
const CAP_IPC_LOCK = 1n << 14n;
const KiB = 1024n;
const GiB = 1024n ** 3n;

function doctor(spec: FixtureSpec, opts: Omit<DoctorOptions, 'sysfsRoot' | 'devRoot' | 'procRoot'> = {}) {
  const f = buildFixture(spec);
  try {
    return runDoctor({ ...f.opts, credentials: ROOT, ...opts });
  } finally {
    f.remove();
  }
}

function check(checks: DoctorCheck[], name: string, group?: number): DoctorCheck {
  const c = checks.find((x) => x.name === name && (group === undefined || x.group === group));
  assert.ok(c, `no check ${name}${group === undefined ? '' : ` ${group}`}`);
  return c;
}

describe('doctor', () => {
  it('on a good host as root nothing fails and the report is ok', () => {
    const r = doctor({ ...hostSpec(), capEff: CAP_IPC_LOCK });
    assert.deepEqual(r.checks.filter((c) => c.status === 'fail'), []);
    assert.equal(r.ok, true);
  });

  it('reports the checks in a fixed order', () => {
    const r = doctor({ ...hostSpec(), capEff: CAP_IPC_LOCK });
    assert.deepEqual(
      [...new Set(r.checks.map((c) => c.name))],
      ['iommu', 'vfio-modules', 'vfio-container', 'iommufd', 'vfio-cdev', 'noiommu', 'group-node', 'group-viable', 'memlock', 'hugepages', 'kvm'],
    );
  });

  describe('iommu', () => {
    it('counts the groups and names the IOMMU units', () => {
      assert.equal(check(doctor(hostSpec()).checks, 'iommu').detail, '7 IOMMU groups (IOMMU dmar0)');
    });

    it('without groups fails and says which kernel parameter to add for this CPU', () => {
      const intel = check(doctor(noIommuSpec()).checks, 'iommu');
      assert.equal(intel.status, 'fail');
      assert.match(intel.fix!, /^add intel_iommu=on to the kernel command line/);
      const amd = check(doctor({ ...noIommuSpec(), cpuVendor: 'AuthenticAMD' }).checks, 'iommu');
      assert.match(amd.fix!, /^add amd_iommu=on/);
    });

    it('with intel_iommu=on already given points at the firmware', () => {
      const c = check(doctor({ ...noIommuSpec(), cmdline: 'root=/dev/sda1 intel_iommu=on' }).checks, 'iommu');
      assert.match(c.fix!, /booted with intel_iommu=on but found no IOMMU: enable VT-d/);
    });

    it('makes the report not ok', () => {
      assert.equal(doctor(noIommuSpec()).ok, false);
    });
  });

  describe('vfio modules and container', () => {
    it('missing vfio-pci and the type1 backend fail with the modprobe line', () => {
      const spec = hostSpec();
      spec.devices = spec.devices.filter((d) => d.driver !== 'vfio-pci');
      const c = check(doctor({ ...spec, drivers: [], modules: ['vfio'] }).checks, 'vfio-modules');
      assert.deepEqual([c.status, c.detail], ['fail', 'not loaded: vfio_iommu_type1, vfio-pci']);
      assert.match(c.fix!, /^modprobe vfio-pci vfio_iommu_type1/);
    });

    it('a missing /dev/vfio/vfio with vfio loaded fails: the kernel has no container', () => {
      const c = check(doctor({ ...hostSpec(), vfioNodes: {} }).checks, 'vfio-container');
      assert.equal(c.status, 'fail');
      assert.match(c.detail, /^group\/container interface: .*\/vfio\/vfio is missing: this kernel's vfio has no container \(CONFIG_VFIO_CONTAINER\)$/);
      assert.match(c.fix!, /CONFIG_VFIO_CONTAINER=y/);
    });

    it('without vfio loaded the container check says to load it', () => {
      const c = check(doctor({ ...hostSpec(), vfioNodes: {}, modules: [] }).checks, 'vfio-container');
      assert.deepEqual([c.status, c.fix], ['fail', 'modprobe vfio-pci vfio_iommu_type1 (vfio_iommu_spapr_tce on POWER)']);
    });

    it('the container names its IOMMU backend', () => {
      assert.match(check(doctor(hostSpec()).checks, 'vfio-container').detail, /\/vfio\/vfio is usable \(vfio_iommu_type1\): the group\/container interface$/);
    });

    it('a /dev/vfio/vfio the user cannot open fails with chmod 0666', () => {
      const c = check(doctor({ ...hostSpec(), vfioNodes: { vfio: 0o600 } }, { credentials: USER }).checks, 'vfio-container');
      assert.equal(c.status, 'fail');
      assert.match(c.fix!, /^chmod 0666 .*\/vfio\/vfio/);
    });
  });

  describe('group nodes', () => {
    it('root may open every group node', () => {
      const nodes = doctor(hostSpec()).checks.filter((c) => c.name === 'group-node');
      assert.deepEqual(nodes.map((c) => [c.group, c.status]), [[1, 'ok'], [2, 'ok'], [4, 'ok']]);
    });

    it('a group node owned by root with mode 0600 fails for another user, with the chown and udev fix', () => {
      const c = check(doctor(hostSpec(), { credentials: USER }).checks, 'group-node', 2);
      assert.equal(c.status, 'fail');
      assert.match(c.detail, /vfio\/2 mode 0600 uid \d+ gid \d+: not readable and writable by uid 1000$/);
      assert.match(c.fix!, /chown 1000 .*vfio\/2.*SUBSYSTEM=="vfio", KERNEL=="2", OWNER="<user>"/);
    });

    it('a non-viable group with a node is a warning carrying the explanation', () => {
      const c = check(doctor(hostSpec()).checks, 'group-viable', 4);
      assert.equal(c.status, 'warn');
      assert.match(c.detail, /^group 4 is not viable: 0000:00:04.1 is bound to e1000e/);
      assert.equal(c.fix, 'vfio bind 0000:00:04.1');
    });

    it('no group node at all is a warning that says to bind a device', () => {
      const c = check(doctor(noIommuSpec()).checks, 'group-node');
      assert.deepEqual([c.status, c.fix], ['warn', 'vfio list, then vfio bind <address> (as root)']);
    });
  });

  describe('VFIO interfaces: a check line each', () => {
    it("on Debian's 6.1 kernel iommufd and cdev are warnings that say why and what to enable; noiommu passes", () => {
      const r = doctor(debian61Spec());
      const [iommufd, cdev, noiommu] = [check(r.checks, 'iommufd'), check(r.checks, 'vfio-cdev'), check(r.checks, 'noiommu')];
      assert.deepEqual([iommufd.status, iommufd.detail], ['warn', 'no iommufd: Linux 6.1.0-57-amd64 has no iommufd (it came in 6.2)']);
      assert.match(iommufd.fix!, /CONFIG_IOMMUFD=y/);
      assert.deepEqual([cdev.status, cdev.detail], ['warn', 'no device cdevs: Linux 6.1.0-57-amd64 has no VFIO device cdev (it came in 6.6)']);
      assert.equal(noiommu.status, 'ok');
      assert.match(noiommu.detail, /^no-IOMMU mode \(needed only for devices no IOMMU covers\): this kernel is built without no-IOMMU mode /);
      assert.equal(r.ok, true);
    });

    it('the report carries the detection itself', () => {
      const r = doctor(debian61Spec());
      assert.deepEqual([r.interfaces.group.available, r.interfaces.iommufd.available, r.interfaces.cdev.available, r.interfaces.noiommu.available], [true, false, false, false]);
    });

    it('with iommufd and cdevs every interface line passes', () => {
      const r = doctor(iommufdSpec());
      assert.deepEqual(['vfio-container', 'iommufd', 'vfio-cdev', 'noiommu'].map((n) => check(r.checks, n).status), ['ok', 'ok', 'ok', 'ok']);
      assert.match(check(r.checks, 'iommufd').detail, /\/iommu \(iommufd built in\) is usable$/);
      assert.match(check(r.checks, 'vfio-cdev').detail, /^device cdevs: .*\/vfio\/devices\/vfio0 \(0000:01:00.0\)/);
      assert.match(check(r.checks, 'noiommu').detail, /in this kernel but off/);
    });

    it('a /dev/iommu the user cannot open is a warning with the chown and udev fix', () => {
      const c = check(doctor(iommufdSpec(), { credentials: USER }).checks, 'iommufd');
      assert.equal(c.status, 'warn');
      assert.match(c.detail, /\/iommu mode 0660 uid \d+ gid \d+: not readable and writable by uid 1000/);
      assert.match(c.fix!, /chown 1000 .*\/iommu, or a udev rule KERNEL=="iommu"/);
    });

    it('without a container but with cdev and iommufd, the container line is a warning, not a failure', () => {
      const c = check(doctor({ ...iommufdSpec(), vfioNodes: { '2': 0o600 } }).checks, 'vfio-container');
      assert.equal(c.status, 'warn');
    });

    it('unsafe no-IOMMU mode on is a warning, whose fix turns it off', () => {
      const c = check(doctor({ ...hostSpec(), noiommuMode: true }).checks, 'noiommu');
      assert.equal(c.status, 'warn');
      assert.match(c.detail, /^unsafe no-IOMMU mode is on/);
      assert.match(c.fix!, /echo N > /);
      assert.equal(check(doctor({ ...hostSpec(), noiommuMode: true }).checks, 'vfio-modules').status, 'ok');
    });

    it('on a machine without an IOMMU, a kernel without no-IOMMU mode is a warning', () => {
      const c = check(doctor(noIommuSpec()).checks, 'noiommu');
      assert.equal(c.status, 'warn');
      assert.equal(c.fix, 'boot a kernel built with CONFIG_VFIO_NOIOMMU=y');
    });

    it("noiommu groups are not counted as the IOMMU's groups, and their node is checked at /dev/vfio/noiommu-N", () => {
      const r = doctor(noiommuSpec());
      const iommu = check(r.checks, 'iommu');
      // No IOMMU, but no-IOMMU mode on: a warning (devices reach userspace, without isolation), not a failure.
      assert.equal(iommu.status, 'warn');
      assert.match(iommu.detail, /: the IOMMU is off or absent; only unsafe no-IOMMU mode can hand devices to userspace here, without isolation$/);
      assert.equal(check(doctor({ ...noiommuSpec(), noiommuMode: false }).checks, 'iommu').status, 'fail');
      const node = check(r.checks, 'group-node', 0);
      assert.match(node.detail, /\/vfio\/noiommu-0 is usable$/);
    });
  });

  describe('memlock', () => {
    it('a limit below what will be mapped fails with the ulimit to set', () => {
      const r = doctor({ ...hostSpec(), memlock: { soft: 64n * KiB, hard: 64n * KiB } }, { credentials: USER, mapBytes: GiB });
      const c = check(r.checks, 'memlock');
      assert.equal(c.status, 'fail');
      assert.equal(c.detail, 'RLIMIT_MEMLOCK 64 KiB is less than the 1 GiB to map: MAP_DMA will fail with ENOMEM');
      assert.match(c.fix!, /^the hard limit \(64 KiB\) is below it too, so as root: ulimit -l 1048576 /);
      assert.equal(r.ok, false);
    });

    it('a soft limit that covers the map is ok', () => {
      const c = check(doctor({ ...hostSpec(), memlock: { soft: 2n * GiB, hard: 2n * GiB } }, { mapBytes: GiB }).checks, 'memlock');
      assert.deepEqual([c.status, c.detail], ['ok', 'RLIMIT_MEMLOCK 2 GiB covers the 1 GiB to map']);
    });

    it('unlimited is ok', () => {
      const c = check(doctor({ ...hostSpec(), memlock: { soft: 'unlimited', hard: 'unlimited' } }, { mapBytes: GiB }).checks, 'memlock');
      assert.deepEqual([c.status, c.detail], ['ok', 'RLIMIT_MEMLOCK is unlimited']);
    });

    it('CAP_IPC_LOCK is exempt from the limit', () => {
      const c = check(doctor({ ...hostSpec(), memlock: { soft: 64n * KiB, hard: 64n * KiB }, capEff: CAP_IPC_LOCK }, { mapBytes: GiB }).checks, 'memlock');
      assert.equal(c.status, 'ok');
      assert.match(c.detail, /CAP_IPC_LOCK \(root\).*soft limit 64 KiB is not enforced/);
    });

    it('without --map reports the limit as the ceiling', () => {
      const c = check(doctor(hostSpec()).checks, 'memlock');
      assert.equal(c.status, 'ok');
      assert.match(c.detail, /^RLIMIT_MEMLOCK is 8 MiB: at most that much DMA memory/);
    });
  });

  describe('huge pages and kvm', () => {
    it('no free huge pages is a warning with the sysfs knob to raise', () => {
      const c = check(doctor(hostSpec()).checks, 'hugepages');
      assert.equal(c.status, 'warn');
      assert.equal(c.fix, 'as root: echo 512 > /sys/kernel/mm/hugepages/hugepages-2048kB/nr_hugepages');
    });

    it('enough free huge pages for the map is ok', () => {
      const c = check(doctor({ ...hostSpec(), hugepages: [{ sizeKb: 2048, total: 1024, free: 1024 }] }, { mapBytes: GiB }).checks, 'hugepages');
      assert.deepEqual([c.status, c.detail], ['ok', 'huge pages: 1024/1024 free of 2 MiB']);
    });

    it('fewer free huge pages than the map asks for a pool with the whole map free', () => {
      const c = check(doctor({ ...hostSpec(), hugepages: [{ sizeKb: 2048, total: 16, free: 16 }] }, { mapBytes: GiB }).checks, 'hugepages');
      assert.equal(c.status, 'warn');
      assert.match(c.fix!, /echo 512 > /);
    });

    it('a missing /dev/kvm is only a warning', () => {
      const spec = hostSpec();
      delete spec.kvm;
      const r = doctor(spec, { credentials: ROOT });
      assert.equal(check(r.checks, 'kvm').status, 'warn');
    });

    it('a /dev/kvm the user cannot open is a warning naming its group', () => {
      const c = check(doctor(hostSpec(), { credentials: USER }).checks, 'kvm');
      assert.equal(c.status, 'warn');
      assert.match(c.fix!, /usermod -aG kvm/);
    });
  });
});
