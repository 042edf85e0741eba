import assert from 'node:assert/strict';
import { type DoctorCheck, type DoctorOptions, runDoctor } from '../../lib/sysfs';
import { type FixtureSpec, buildFixture } from '../fixtures/sysfs-tree';
import { hostSpec, noIommuSpec } from '../fixtures/topologies';

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
      ['iommu', 'vfio-modules', 'vfio-container', 'group-node', 'group-viable', 'memlock', 'hugepages', 'kvm'],
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

    it('unsafe no-IOMMU mode is a warning', () => {
      const c = check(doctor({ ...hostSpec(), noiommuMode: true }).checks, 'vfio-modules');
      assert.equal(c.status, 'warn');
      assert.match(c.detail, /unsafe no-IOMMU mode is on/);
    });

    it('a missing /dev/vfio/vfio fails', () => {
      const c = check(doctor({ ...hostSpec(), vfioNodes: {} }).checks, 'vfio-container');
      assert.deepEqual([c.status, c.fix], ['fail', 'modprobe vfio (the node appears when the module loads)']);
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
