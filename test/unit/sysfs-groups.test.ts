import assert from 'node:assert/strict';
import { ArgCode } from '../../lib/args';
import { RuleCode } from '../../lib/errors';
import {
  explainNotViable,
  iommuGroupOf,
  listIommuGroups,
  normalizeAddress,
  readIommuGroup,
  readPciDevice,
  resolveDeviceSpec,
} from '../../lib/sysfs';
import { type Fixture, type FixtureSpec, buildFixture } from '../fixtures/sysfs-tree';
import { EDU, hostSpec, noIommuSpec } from '../fixtures/topologies';

function withFixture(spec: FixtureSpec, body: (f: Fixture) => void): void {
  const f = buildFixture(spec);
  try {
    body(f);
  } finally {
    f.remove();
  }
}

describe('sysfs discovery: PCI devices', () => {
  let f: Fixture;
  before(() => (f = buildFixture(hostSpec())));
  after(() => f.remove());

  it('reads address, ids, class, driver, override and group of a device', () => {
    assert.deepEqual(readPciDevice('0000:00:04.1', f.opts), {
      address: '0000:00:04.1',
      vendorId: 0x8086,
      deviceId: 0x10d3,
      classCode: 0x020000,
      driver: 'e1000e',
      driverOverride: null,
      iommuGroup: 4,
    });
  });

  it('reads a set driver_override and a device behind a bridge', () => {
    const d = readPciDevice('0000:01:00.0', f.opts);
    assert.equal(d.driverOverride, 'vfio-pci');
    assert.equal(d.iommuGroup, 1);
  });

  it('accepts the short address form and any case', () => {
    assert.equal(normalizeAddress('00:1F.2'), '0000:00:1f.2');
    assert.equal(readPciDevice('00:1f.2', f.opts).driver, 'ahci');
  });

  it('rejects a malformed address with ERR_INVALID_ARG_VALUE naming the argument', () => {
    assert.throws(() => readPciDevice('00:04', f.opts), { code: ArgCode.VALUE, argument: 'address', message: /must be a PCI address/ });
  });

  it('reports a missing device with ERR_VFIO_NO_DEVICE', () => {
    assert.throws(() => readPciDevice('0000:00:09.0', f.opts), { code: RuleCode.NO_DEVICE, message: /no PCI device 0000:00:09.0/ });
  });

  it('resolves vendor:device to every matching device', () => {
    assert.deepEqual(resolveDeviceSpec('1234:11E8', f.opts), ['0000:00:02.0', '0000:00:03.0', '0000:00:04.0', '0000:01:00.0']);
  });
});

describe('sysfs discovery: IOMMU groups and viability', () => {
  let f: Fixture;
  before(() => (f = buildFixture(hostSpec())));
  after(() => f.remove());

  it('lists every group in numeric order with its devices', () => {
    const groups = listIommuGroups(f.opts);
    assert.deepEqual(
      groups.map((g) => [g.id, g.devices.map((d) => d.address)]),
      [
        [0, ['0000:00:00.0']],
        [1, ['0000:00:01.0', '0000:01:00.0']],
        [2, ['0000:00:02.0']],
        [3, ['0000:00:03.0']],
        [4, ['0000:00:04.0', '0000:00:04.1']],
        [5, ['0000:00:1f.2']],
        [6, ['0000:00:05.0']],
      ],
    );
  });

  it('a group whose devices are all on vfio-pci is viable', () => {
    assert.equal(readIommuGroup(2, f.opts).viable, true);
  });

  it('a device with no driver keeps its group viable', () => {
    const g = readIommuGroup(3, f.opts);
    assert.deepEqual([g.viable, g.blockers], [true, []]);
  });

  it('a bridge on pcieport keeps its group viable', () => {
    assert.equal(readIommuGroup(1, f.opts).viable, true);
  });

  it('a device on a host driver makes its group non-viable and is named as the blocker', () => {
    const g = readIommuGroup(4, f.opts);
    assert.equal(g.viable, false);
    assert.deepEqual(g.blockers.map((d) => d.address), ['0000:00:04.1']);
  });

  it('explains a non-viable group with the command that fixes it', () => {
    assert.equal(
      explainNotViable(readIommuGroup(4, f.opts)),
      'group 4 is not viable: 0000:00:04.1 is bound to e1000e; bind it to vfio-pci (vfio bind 0000:00:04.1) or unbind it',
    );
  });

  it('explains several blockers with vfio bind --group', () => {
    const spec = hostSpec();
    spec.devices.push({ address: '0000:00:04.2', vendor: 0x8086, device: 0x293e, class: 0x040300, driver: 'snd_hda_intel', group: 4 });
    withFixture(spec, (g) => {
      assert.equal(
        explainNotViable(readIommuGroup(4, g.opts)),
        'group 4 is not viable: 0000:00:04.1 is bound to e1000e, 0000:00:04.2 is bound to snd_hda_intel; ' +
          'bind them to vfio-pci (vfio bind --group 0000:00:04.1) or unbind them',
      );
    });
  });

  it('pci-stub keeps a group viable', () => {
    const spec = hostSpec();
    spec.devices.find((d) => d.address === '0000:00:04.1')!.driver = 'pci-stub';
    withFixture(spec, (g) => assert.equal(readIommuGroup(4, g.opts).viable, true));
  });

  it('a vfio-pci variant driver (mlx5_vfio_pci) keeps a group viable', () => {
    const spec = hostSpec();
    spec.devices.find((d) => d.address === '0000:00:04.1')!.driver = 'mlx5_vfio_pci';
    withFixture(spec, (g) => assert.equal(readIommuGroup(4, g.opts).viable, true));
  });

  it('since 5.19 a bridge on a driver other than pcieport (shpchp) blocks; before, any bridge driver was allowed', () => {
    const spec = hostSpec();
    spec.devices.find((d) => d.address === '0000:00:01.0')!.driver = 'shpchp';
    withFixture({ ...spec, osrelease: '6.1.0-27-amd64' }, (g) => {
      assert.deepEqual(readIommuGroup(1, g.opts).blockers.map((d) => d.address), ['0000:00:01.0']);
    });
    withFixture({ ...spec, osrelease: '5.10.0-32-amd64' }, (g) => assert.equal(readIommuGroup(1, g.opts).viable, true));
  });

  it('reports the group node with its mode and owner', () => {
    const n = readIommuGroup(4, f.opts).devNode;
    assert.deepEqual([n.path, n.exists, n.mode, n.uid], [`${f.devRoot}/vfio/4`, true, 0o600, process.getuid!()]);
  });

  it('a group with no device on vfio-pci has no node', () => {
    const n = readIommuGroup(3, f.opts).devNode;
    assert.deepEqual([n.exists, n.mode, n.accessible], [false, null, false]);
  });

  it('judges node access from the mode bits for the given user: owner, group, other', () => {
    const uid = process.getuid!();
    const gid = process.getgid!();
    assert.equal(readIommuGroup(4, { ...f.opts, credentials: { uid, gids: [] } }).devNode.accessible, true);
    assert.equal(readIommuGroup(4, { ...f.opts, credentials: { uid: uid + 4242, gids: [gid] } }).devNode.accessible, false);
    const spec = hostSpec();
    spec.vfioNodes = { vfio: 0o666, '4': 0o660 };
    withFixture(spec, (g) => {
      assert.equal(readIommuGroup(4, { ...g.opts, credentials: { uid: uid + 4242, gids: [gid] } }).devNode.accessible, true);
      assert.equal(readIommuGroup(4, { ...g.opts, credentials: { uid: uid + 4242, gids: [gid + 4242] } }).devNode.accessible, false);
    });
  });

  it('gives the group number of a device', () => {
    assert.equal(iommuGroupOf('0000:01:00.0', f.opts), 1);
  });

  it('reports an unknown group with the groups that exist', () => {
    assert.throws(() => readIommuGroup(99, f.opts), { code: RuleCode.NO_DEVICE, message: /groups present: 0, 1, 2, 3, 4, 5, 6/ });
  });
});

describe('sysfs discovery: no IOMMU', () => {
  let f: Fixture;
  before(() => (f = buildFixture(noIommuSpec())));
  after(() => f.remove());

  it('lists no groups', () => {
    assert.deepEqual(listIommuGroups(f.opts), []);
  });

  it('a device reads with iommuGroup null', () => {
    assert.equal(readPciDevice('0000:00:02.0', f.opts).iommuGroup, null);
  });

  it('iommuGroupOf says the IOMMU is probably off and how to turn it on and check', () => {
    assert.throws(() => iommuGroupOf('0000:00:02.0', f.opts), (e: Error & { code?: string }) => {
      assert.equal(e.code, RuleCode.NO_IOMMU_GROUP);
      assert.match(e.message, /^0000:00:02.0 has no IOMMU group; the IOMMU is probably off/);
      assert.match((e as Error & { hint?: string }).hint!, /^the IOMMU is probably off/);
      assert.match(e.message, /intel_iommu=on or amd_iommu=on/);
      assert.match(e.message, /ls \/sys\/kernel\/iommu_groups/);
      return true;
    });
  });

  it('a device left out while others have groups is told apart from IOMMU off', () => {
    const spec = hostSpec();
    spec.devices.push({ address: '0000:00:06.0', ...EDU });
    withFixture(spec, (g) => {
      assert.throws(() => iommuGroupOf('0000:00:06.0', g.opts), { code: RuleCode.NO_IOMMU_GROUP, message: /although other devices have one/ });
    });
  });
});
