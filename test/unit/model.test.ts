// The lifetime model (test/model) against the fake kernel: many more
// commands than the guest can afford. Seed printed; VFIO_MODEL_SEED and
// VFIO_MODEL_PATH replay a failure.

import type { MockContainer } from '../../lib/testing';
import { counter, modelRun, runModel, type ModelEnv } from '../model/lifetime-model';
import { useFakeKernel } from './fake/setup';

const EDU = '0000:00:03.0';

describe('the lifetime model on the fake kernel', () => {
  useFakeKernel([{ id: 3, devices: [EDU] }]);

  it('keeps model, library and kernel equal over random sequences of every operation, junk included', async function () {
    this.timeout(300_000);
    const run = modelRun({ numRuns: 1000, maxCommands: 60 });
    const env: ModelEnv = {
      groupId: 3,
      bdf: EDU,
      kvm: true,
      kernelMapped: (container, iova) =>
        (container.handle() as unknown as MockContainer).mappings.some((m) => iova >= m.iova && iova < m.iova + m.size),
    };
    const before = counter.commands;
    try {
      await runModel(env, run);
    } finally {
      console.log(`      model: seed ${run.seed}, ${run.numRuns} runs, ${counter.commands - before} commands (replay: VFIO_MODEL_SEED=${run.seed})`);
    }
  });
});
