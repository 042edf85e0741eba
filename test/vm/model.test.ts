// The lifetime model (test/model) on the real kernel: after every command
// the library's books are probed against the kernel's with a raw one-page
// MAP_DMA below the rules (EEXIST: mapped), and at the end fds, VmLck and
// RSS are back to where they were. Seed printed; VFIO_MODEL_SEED and
// VFIO_MODEL_PATH replay a failure.

import assert from 'node:assert/strict';
import { readFileSync } from 'node:fs';
import { DmaBuffer } from '../../lib';
import { native } from '../../lib/native';
import { settle } from '../fixtures/gc';
import { counter, modelRun, runModel, type ModelEnv } from '../model/lifetime-model';
import { expectKvm, fdCount, lockedKb, testEnv } from './env';

const rssKb = (): number => Number(/^VmRSS:\s+(\d+) kB/m.exec(readFileSync('/proc/self/status', 'utf8'))?.[1]);

describe('the lifetime model on the real kernel', () => {
  it('keeps model, library and kernel equal over random sequences of every operation, junk included; everything comes back', async function () {
    this.timeout(900_000);
    const t = testEnv();
    const probe = DmaBuffer.allocate(4096);
    const c = native().constants;
    const flags = c.VFIO_DMA_MAP_FLAG_READ | c.VFIO_DMA_MAP_FLAG_WRITE;
    const env: ModelEnv = {
      groupId: t.group,
      bdf: t.bdf,
      kvm: expectKvm(t),
      kernelMapped(container, iova) {
        const raw = container.handle();
        try {
          raw.mapDma(probe.handle(), 0, 4096, iova, flags);
        } catch (e) {
          if ((e as { code?: string }).code === 'EEXIST') return true;
          throw e;
        }
        assert.equal(raw.unmapDma(iova, 4096n, 0), 4096n);
        return false;
      },
    };
    const run = modelRun({ numRuns: Number(process.env.VFIO_MODEL_RUNS ?? 200), maxCommands: 60 });
    await settle();
    const fds = fdCount();
    const locked = lockedKb();
    const rss = rssKb();
    const before = counter.commands;
    try {
      await runModel(env, run);
    } finally {
      console.log(`      model: seed ${run.seed}, ${run.numRuns} runs, ${counter.commands - before} commands (replay: VFIO_MODEL_SEED=${run.seed})`);
    }
    probe.close();
    await settle();
    assert.equal(fdCount(), fds, 'fds back to baseline');
    assert.equal(lockedKb(), locked, 'VmLck back to baseline');
    assert.ok(rssKb() < rss + 64 * 1024, `RSS ${rssKb()} kB stays near ${rss} kB`);
  });
});
