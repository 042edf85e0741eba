// vfio doctor and vfio list on the kernel we build (iommufd, device cdev,
// noiommu compiled in but off), with the emulated IOMMU: every interface is
// found, and each device on vfio-pci opens through its group and its cdev.
// What is expected is read from the kernel here, without the library.

import assert from 'node:assert/strict';
import { readdirSync, statSync } from 'node:fs';
import { testEnv } from '../vm/env';
import { type Check, vfio } from '../vm/vfio-cli';

const NOIOMMU_PARAM = '/sys/module/vfio/parameters/enable_unsafe_noiommu_mode';

interface Iface {
  available: boolean;
  detail: string;
  fix: string | null;
  evidence: string[];
}

/** edu A's vfio device name, from sysfs: vfio-dev/vfioN. */
function vfioName(bdf: string): string {
  const names = readdirSync(`/sys/bus/pci/devices/${bdf}/vfio-dev`);
  assert.equal(names.length, 1, names.join(' '));
  return names[0]!;
}

describe('vfio doctor and list on the built kernel with an IOMMU (iommufd, cdev)', function () {
  this.timeout(60_000);
  const env = testEnv();

  it('doctor: the group/container, iommufd and cdev lines pass; noiommu is in the kernel but off', () => {
    assert.ok(statSync('/dev/iommu').isCharacterDevice(), 'this guest has /dev/iommu');
    const r = vfio(['doctor', '--json']);
    const j = JSON.parse(r.stdout) as {
      checks: Check[];
      interfaces: { group: Iface & { container: string; backends: string[] }; iommufd: Iface; cdev: Iface; noiommu: Iface & { enabled: boolean | null } };
    };
    assert.equal(r.status, 0, r.stdout);
    const status = (name: string) => j.checks.find((c) => c.name === name)!.status;
    assert.deepEqual(['vfio-container', 'iommufd', 'vfio-cdev', 'noiommu'].map(status), ['ok', 'ok', 'ok', 'ok']);
    const i = j.interfaces;
    assert.deepEqual([i.group.available, i.group.container, i.group.backends], [true, 'vfio', ['vfio_iommu_type1']]);
    // Built in: /sys/module/iommufd is there through its parameter, without a module's initstate.
    assert.deepEqual([i.iommufd.available, i.iommufd.detail, i.iommufd.evidence], [true, '/dev/iommu (iommufd built in)', ['/dev/iommu']]);
    assert.equal(i.cdev.available, true);
    assert.ok(i.cdev.detail.includes(`/dev/vfio/devices/${vfioName(env.bdf)} (${env.bdf})`), i.cdev.detail);
    assert.deepEqual([i.noiommu.available, i.noiommu.enabled, i.noiommu.detail], [false, false, `in this kernel but off (${NOIOMMU_PARAM} = N)`]);
    assert.match(i.noiommu.fix!, /^as root: echo Y > \/sys\/module\/vfio\/parameters\/enable_unsafe_noiommu_mode/);
  });

  it('list: edu A opens through its group and its cdev, and the last line names every interface but noiommu', () => {
    const name = vfioName(env.bdf);
    const r = vfio(['list', '--json']);
    assert.equal(r.status, 0, r.stderr);
    const j = JSON.parse(r.stdout) as { groups: { id: number; devices: { address: string; vfio: Record<string, unknown> }[] }[] };
    assert.deepEqual(j.groups.find((g) => g.id === env.group)!.devices.find((d) => d.address === env.bdf)!.vfio, {
      address: env.bdf,
      group: env.group,
      noiommu: false,
      groupNode: `/dev/vfio/${env.group}`,
      vfioDevice: name,
      cdev: `/dev/vfio/devices/${name}`,
      openWith: ['group', 'cdev'],
    });
    const table = vfio(['list']).stdout;
    assert.ok(table.split('\n').some((l) => l.includes(env.bdf) && l.endsWith(`group ${env.group}, cdev ${name}`)), table);
    assert.ok(table.endsWith('\ninterfaces: group/container, iommufd, cdev; not offered: noiommu (vfio doctor says why)\n'), table);
  });
});
