import assert from 'node:assert/strict';
import { spawnSync } from 'node:child_process';
import * as fs from 'node:fs';
import * as path from 'node:path';
import { type Fixture, buildFixture } from '../fixtures/sysfs-tree';
import { hostSpec, noIommuSpec } from '../fixtures/topologies';

// The compiled bin, as package.json's "bin" names it.
const BIN = path.join(__dirname, '../../lib/cli/main.js');

function vfio(f: Fixture, args: string[]) {
  return spawnSync(process.execPath, [BIN, ...args, '--sysfs-root', f.sysfsRoot, '--dev-root', f.devRoot, '--proc-root', f.procRoot, '--boot-root', f.bootRoot], {
    encoding: 'utf8',
    env: { ...process.env, NO_COLOR: '' },
  });
}

describe('vfio bin', () => {
  it('starts with a node shebang', () => {
    assert.equal(fs.readFileSync(BIN, 'utf8').split('\n')[0], '#!/usr/bin/env node');
  });

  it('exits 0 and prints JSON for list --json on a host with groups', () => {
    const f = buildFixture(hostSpec());
    try {
      const r = vfio(f, ['list', '--json']);
      assert.equal(r.status, 0, r.stderr);
      assert.equal((JSON.parse(r.stdout) as { groups: unknown[] }).groups.length, 7);
    } finally {
      f.remove();
    }
  });

  it('exits 1 with "vfio: <message>" on stderr when there is no IOMMU', () => {
    const f = buildFixture(noIommuSpec());
    try {
      const r = vfio(f, ['list']);
      assert.equal(r.status, 1);
      assert.match(r.stderr, /^vfio: no IOMMU groups: /);
    } finally {
      f.remove();
    }
  });

  it('exits 2 on a usage error', () => {
    const r = spawnSync(process.execPath, [BIN, 'list', '--nope'], { encoding: 'utf8' });
    assert.equal(r.status, 2);
  });
});
