// The test/vm files the arm64 guest leaves out (files.ts) are left out for a
// reason that holds here: each is checked, so none is skipped silently and a
// guest that gains what a file needs makes this fail until the file runs.

import assert from 'node:assert/strict';
import { existsSync, readdirSync, readFileSync, readlinkSync, realpathSync } from 'node:fs';
import path from 'node:path';
import { testEnv } from '../vm/env';
import { ARM64_EXCLUDED, type Missing } from './files';

const VM_DIR = path.join(__dirname, '..', 'vm');

const driverOf = (bdf: string): string | null =>
  existsSync(`/sys/bus/pci/devices/${bdf}/driver`) ? path.basename(readlinkSync(`/sys/bus/pci/devices/${bdf}/driver`)) : null;

const holds: Record<Missing, () => void> = {
  'x86-bridge': () => {
    const shared = testEnv().shared;
    assert.ok(shared, 'this guest has no shared group: see scripts/guest-arm64/arch.sh');
    const port = path.basename(path.dirname(realpathSync(`/sys/bus/pci/devices/${shared.bdf}`)));
    assert.equal(driverOf(port), 'pcieport', `the shared group's bridge ${port} is driverless now, as on x86: run the file`);
  },
  kvm: () => assert.equal(existsSync('/dev/kvm'), false, 'this guest has /dev/kvm now: run the file'),
  'x86-recording': () => {
    const fixture = path.join(__dirname, '..', '..', '..', 'test', 'fixtures', 'kernel-answers.json');
    assert.equal(JSON.parse(readFileSync(fixture, 'utf8')).kernel.machine, 'x86_64', 'the recorded answers are no longer x86_64 ones: run the file');
  },
  'x86-project': () => assert.match(readFileSync(path.join(VM_DIR, 'project.test.js'), 'utf8'), /x86_64 test guest/),
};

describe('test/vm files the arm64 guest does not run', () => {
  it('runs on arm64 and names only files of the type1 suite', () => {
    assert.equal(process.arch, 'arm64');
    const files = new Set(readdirSync(VM_DIR));
    for (const f of Object.keys(ARM64_EXCLUDED)) assert.ok(files.has(f), `${f} is not in dist/test/vm`);
  });
  for (const [file, { missing, why }] of Object.entries(ARM64_EXCLUDED)) {
    it(`${file}: ${why}`, () => holds[missing]());
  }
});
