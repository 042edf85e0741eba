// The fake kernel answers the kernel questions (test/fixtures/kernel-questions.ts)
// as the real kernel did when they were recorded (test/fixtures/kernel-answers.json,
// checked against the real kernel by test/vm/kernel-answers.test.ts). A rule or
// hint tested against the fake is then tested against the kernel's real errno.

import assert from 'node:assert/strict';
import { readdirSync, readFileSync, statSync } from 'node:fs';
import path from 'node:path';
import { ask, kernelQuestions, type KernelAnswers, type KernelQuestion } from '../fixtures/kernel-questions';
import { MockKernel } from '../../lib/testing';

const ROOT = path.join(__dirname, '..', '..', '..');
const recording = JSON.parse(readFileSync(path.join(ROOT, 'test', 'fixtures', 'kernel-answers.json'), 'utf8')) as KernelAnswers;

/** Names of addon constants a source names: `constants.X`, `c.X`, or a quoted 'VFIO_X' / 'KVM_X'. */
function constantsNamed(file: string): string[] {
  if (statSync(file).isDirectory()) return readdirSync(file).flatMap((f) => constantsNamed(path.join(file, f)));
  if (!file.endsWith('.ts')) return [];
  const text = readFileSync(file, 'utf8');
  return [...text.matchAll(/\b(?:constants|c)\.([A-Z][A-Za-z0-9_]+)|'((?:VFIO|KVM)_[A-Za-z0-9_]+)'/g)].map((m) => m[1] ?? m[2]);
}

/** A fake shaped like the machine that answered: its groups, its limits for this question. */
function fakeFor(q: KernelQuestion): MockKernel {
  const { group, bdf, sharedGroup } = recording.setup;
  const k = new MockKernel([
    { id: group, devices: [bdf] },
    { id: sharedGroup, devices: ['0000:01:01.0', '0000:01:02.0'], viable: false },
  ]);
  // Root in the guest has CAP_IPC_LOCK: RLIMIT_MEMLOCK binds only the questions asked as a user.
  const memlock = q.memlock === undefined ? -1n : BigInt(q.memlock);
  k.memlock = [memlock, memlock];
  if (q.dmaEntryLimit !== undefined) k.type1.dmaAvail = q.dmaEntryLimit;
  return k;
}

describe(`the fake kernel answers as ${recording.kernel.release} (${recording.kernel.machine}) did`, () => {
  it('has the addon\'s values for every constant it defines', () => {
    const k = new MockKernel();
    const differ = Object.entries(k.constants).filter(([name, value]) => recording.constants[name] !== value);
    assert.deepEqual(differ, [], 'constants the fake gets wrong (or the addon lacks)');
  });

  it('defines every constant lib/ and the questions name', () => {
    const k = new MockKernel();
    const missing = [...constantsNamed(path.join(ROOT, 'lib')), ...constantsNamed(path.join(ROOT, 'test', 'fixtures', 'kernel-questions.ts'))]
      .filter((name) => name in recording.constants && !(name in k.constants));
    assert.deepEqual([...new Set(missing)], []);
  });

  for (const q of kernelQuestions) {
    it(q.name, async () => {
      assert.ok(q.name in recording.answers, 'not in the recording: re-record with VFIO_RECORD_KERNEL_ANSWERS=1 npm test -- vm');
      const { group, bdf, sharedGroup, absentGroup } = recording.setup;
      const answer = await ask(q, { n: fakeFor(q), group, bdf, sharedGroup, absentGroup });
      assert.deepEqual(answer, recording.answers[q.name]);
    });
  }

  it('the recording holds no question that is gone', () => {
    const names = new Set(kernelQuestions.map((q) => q.name));
    assert.deepEqual(Object.keys(recording.answers).filter((name) => !names.has(name)), []);
  });
});
