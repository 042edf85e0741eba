// vfio doctor and vfio list on the kernel we build, booted without any IOMMU
// and with no-IOMMU mode on: edu A is in vfio's noiommu group, opened at
// /dev/vfio/noiommu-N. What is expected is read from the kernel here,
// without the library.

import assert from 'node:assert/strict';
import { existsSync, readdirSync } from 'node:fs';
import { testEnv } from '../vm/env';
import { type Check, vfio } from '../vm/vfio-cli';

/** edu A's vfio device, from sysfs, and its cdev when the kernel made one. */
function vfioDevice(bdf: string): { name: string; cdev: string | null } {
  const names = readdirSync(`/sys/bus/pci/devices/${bdf}/vfio-dev`);
  assert.equal(names.length, 1, names.join(' '));
  const name = names[0]!;
  const cdev = existsSync(`/sys/bus/pci/devices/${bdf}/vfio-dev/${name}/dev`) ? `/dev/vfio/devices/${name}` : null;
  return { name, cdev };
}

describe('vfio doctor and list on the built kernel without an IOMMU (noiommu on)', function () {
  this.timeout(60_000);
  const env = testEnv();

  it('doctor: no IOMMU and no-IOMMU mode on are warnings (usable, without isolation), naming the noiommu group; its node is checked at noiommu-N', () => {
    const r = vfio(['doctor', '--json']);
    const j = JSON.parse(r.stdout) as { ok: boolean; checks: Check[]; interfaces: { group: { available: boolean }; noiommu: { available: boolean; enabled: boolean | null; detail: string } } };
    assert.equal(r.status, 0, r.stdout);
    const check = (name: string, group?: number) => j.checks.find((c) => c.name === name && c.group === group)!;
    assert.equal(check('iommu').status, 'warn');
    assert.match(check('iommu').detail, /only unsafe no-IOMMU mode can hand devices to userspace here, without isolation$/);
    const noiommu = check('noiommu');
    assert.equal(noiommu.status, 'warn');
    assert.match(noiommu.detail, new RegExp(`^unsafe no-IOMMU mode is on \\(/sys/module/vfio/parameters/enable_unsafe_noiommu_mode = Y\\): .*; groups /dev/vfio/noiommu-${env.group}$`));
    assert.match(noiommu.fix!, /^when done: echo N > /);
    assert.deepEqual([j.interfaces.noiommu.available, j.interfaces.noiommu.enabled, j.interfaces.group.available], [true, true, true]);
    assert.deepEqual([check('group-node', env.group).status, check('group-node', env.group).detail], ['ok', `/dev/vfio/noiommu-${env.group} is usable`]);
  });

  it('list: edu A sits in a noiommu group and opens through /dev/vfio/noiommu-N (and its cdev when the kernel made one)', () => {
    const { name, cdev } = vfioDevice(env.bdf);
    const r = vfio(['list', '--json']);
    assert.equal(r.status, 0, r.stderr);
    const j = JSON.parse(r.stdout) as { groups: { id: number; noiommu: boolean; devNode: { path: string; exists: boolean }; devices: { address: string; vfio: Record<string, unknown> }[] }[] };
    const g = j.groups.find((x) => x.id === env.group)!;
    assert.deepEqual([g.noiommu, g.devNode.path, g.devNode.exists], [true, `/dev/vfio/noiommu-${env.group}`, true]);
    assert.deepEqual(g.devices.find((d) => d.address === env.bdf)!.vfio, {
      address: env.bdf,
      group: env.group,
      noiommu: true,
      groupNode: `/dev/vfio/noiommu-${env.group}`,
      vfioDevice: name,
      cdev,
      openWith: cdev === null ? ['noiommu'] : ['noiommu', 'cdev'],
    });
    const table = vfio(['list']).stdout;
    const open = cdev === null ? `noiommu-${env.group}` : `noiommu-${env.group}, cdev ${name}`;
    assert.ok(table.split('\n').some((l) => l.includes(env.bdf) && l.endsWith(open)), table);
    assert.match(table, /\ninterfaces: group\/container, .*noiommu/);
  });
});
