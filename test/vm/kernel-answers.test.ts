// The real kernel answers the kernel questions (test/fixtures/kernel-questions.ts)
// as recorded in test/fixtures/kernel-answers.json: the recording the unit
// suite holds the fake kernel to. A different answer means the kernel changed
// (re-record, then fix the fake and any rule or hint that keyed on the old
// answer) or a question did.
//
// Re-record: VFIO_RECORD_KERNEL_ANSWERS=1 npm test -- vm
// (in the guest the file is written to $VFIO_GUEST_OUT; scripts/test.js
// copies it to test/fixtures/).

import assert from 'node:assert/strict';
import { execFileSync } from 'node:child_process';
import { chownSync, existsSync, readFileSync, statSync, writeFileSync } from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { native } from '../../lib/native';
import { ask, kernelQuestions, type Answer, type KernelAnswers, type KernelQuestion, type KernelSetup } from '../fixtures/kernel-questions';
import { requireShared, testEnv, userChildEnv } from './env';

const FIXTURE = path.join(__dirname, '..', '..', '..', 'test', 'fixtures', 'kernel-answers.json');
const RECORD = process.env.VFIO_RECORD_KERNEL_ANSWERS === '1';
const DMA_ENTRY_LIMIT = '/sys/module/vfio_iommu_type1/parameters/dma_entry_limit';

describe('the real kernel answers the kernel questions as recorded', () => {
  let setup: KernelSetup;
  let recorded: KernelAnswers | undefined;
  const answers: Record<string, Answer> = {};

  before(() => {
    const env = testEnv();
    const shared = requireShared(env);
    if (!existsSync('/dev/kvm')) throw new Error('/dev/kvm is missing: the KVM questions need it (scripts/guest/run --kvm)');
    const absentGroup = 999;
    if (existsSync(`/dev/vfio/${absentGroup}`)) throw new Error(`/dev/vfio/${absentGroup} exists: pick another absent group`);
    setup = { n: native(), group: env.group, bdf: env.bdf, sharedGroup: shared.group, absentGroup };
    if (!RECORD) recorded = JSON.parse(readFileSync(FIXTURE, 'utf8')) as KernelAnswers;
  });

  after(() => {
    if (!RECORD || !setup) return;
    const out = path.join(process.env.VFIO_GUEST_OUT ?? os.tmpdir(), 'kernel-answers.json');
    const { n, ...machine } = setup;
    const recording: KernelAnswers = {
      kernel: { release: os.release(), version: os.version(), machine: os.machine() },
      setup: machine,
      constants: { ...n.constants },
      answers,
    };
    writeFileSync(out, `${JSON.stringify(recording, null, 2)}\n`);
    console.log(`kernel answers of ${os.release()} recorded in ${out}`);
  });

  for (const q of kernelQuestions) {
    it(q.name, async function () {
      this.timeout(60000);
      const answer = await askHere(q, setup);
      answers[q.name] = answer;
      if (RECORD) return;
      assert.ok(q.name in recorded!.answers, `not in the recording: re-record with VFIO_RECORD_KERNEL_ANSWERS=1 npm test -- vm`);
      assert.deepEqual(answer, recorded!.answers[q.name], `kernel ${os.release()} answers otherwise than the recording of ${recorded!.kernel.release}`);
    });
  }

  it('the recording holds no question that is gone', () => {
    if (RECORD) return;
    const names = new Set(kernelQuestions.map((q) => q.name));
    assert.deepEqual(Object.keys(recorded!.answers).filter((name) => !names.has(name)), []);
  });
});

/** Asks in this process, or in an unprivileged child when the question wants RLIMIT_MEMLOCK to bite. */
async function askHere(q: KernelQuestion, setup: KernelSetup): Promise<Answer> {
  if (q.memlock !== undefined) return askAsUser(q, setup, q.memlock);
  if (q.dmaEntryLimit === undefined) return ask(q, setup);
  const saved = readFileSync(DMA_ENTRY_LIMIT, 'utf8').trim();
  writeFileSync(DMA_ENTRY_LIMIT, String(q.dmaEntryLimit));
  try {
    return await ask(q, setup);
  } finally {
    writeFileSync(DMA_ENTRY_LIMIT, saved);
  }
}

function askAsUser(q: KernelQuestion, setup: KernelSetup, memlock: number): Answer {
  if (process.getuid?.() !== 0) throw new Error(`'${q.name}' must be asked as root (it switches to uid 65534): run it in the test guest`);
  const node = `/dev/vfio/${setup.group}`;
  const saved = statSync(node);
  chownSync(node, 65534, 65534);
  try {
    const child = path.join(__dirname, 'children', 'ask-as-user.js');
    const args = [q.name, setup.group, setup.bdf, setup.sharedGroup, setup.absentGroup].map((a) => `'${String(a).replace(/'/g, `'\\''`)}'`).join(' ');
    const out = execFileSync('/bin/sh', ['-c', `ulimit -l ${memlock >> 10} && exec "${process.execPath}" "${child}" ${args}`], {
      uid: 65534,
      gid: 65534,
      encoding: 'utf8',
      env: userChildEnv(),
    });
    return JSON.parse(out) as Answer;
  } finally {
    chownSync(node, saved.uid, saved.gid);
  }
}
