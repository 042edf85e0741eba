// The published typings show the public API only: the protocol the objects
// use among themselves (native handles, books, teardown steps) is @internal
// and stripped, so a TypeScript caller cannot reach around a rule with it.

import assert from 'node:assert/strict';
import { readdirSync, readFileSync } from 'node:fs';
import path from 'node:path';

const INTERNAL = [
  'handle', 'markClosed', 'addUser', 'removeUser', 'markUnmapped', 'closeNow', 'closeFd', 'unsetNow',
  'groupAttached', 'groupDetached', 'iommuLeavingWith', 'kvmRegistered', 'kvmRegistrations',
  'removeNow', 'releaseAll', 'contextGone', 'deviceClosing', 'deviceClosed', 'assertIdle', 'assertUsable',
  'mappingCount', 'create', 'unmapMapping', 'bufferSlot',
  'unlockOne', 'lockCount', 'modelSet', 'noIommuGroups', 'noIommuLeavingWith',
];

describe('published typings', () => {
  const dir = path.resolve(__dirname, '..', '..', 'lib');
  // What `import 'vfio'` reaches: every module but the addon's raw surface and the teardown plan.
  // ... and what `import 'vfio/testing'` reaches.
  const files = [...readdirSync(dir), ...readdirSync(path.join(dir, 'testing')).map((f) => path.join('testing', f))]
    .filter((f) => f.endsWith('.d.ts') && !['native.d.ts', 'teardown.d.ts'].includes(f));

  it('are there to check', () => {
    assert.ok(files.includes('container.d.ts') && files.includes('index.d.ts') && files.includes(path.join('testing', 'index.d.ts')), files.join(', '));
  });

  for (const name of INTERNAL) {
    it(`do not declare the internal ${name}()`, () => {
      const re = new RegExp(`^\\s*(?:static\\s+|get\\s+)?${name}\\b`, 'm');
      const hits = files.filter((f) => re.test(readFileSync(path.join(dir, f), 'utf8')));
      assert.deepEqual(hits, [], `${name} is declared in ${hits.join(', ')}`);
    });
  }
});
