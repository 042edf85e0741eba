// Asks one kernel question as the user this process runs as (the guest
// suite starts it as uid 65534 under `ulimit -l`), and prints the answer as JSON.
//   node ask-as-user.js <question name> <group> <bdf> <shared group> <absent group>

import { native } from '../../../lib/native';
import { ask, kernelQuestions } from '../../fixtures/kernel-questions';

async function main(): Promise<void> {
  const [name, group, bdf, sharedGroup, absentGroup] = process.argv.slice(2);
  const q = kernelQuestions.find((x) => x.name === name);
  if (!q) throw new Error(`no kernel question named '${name}'`);
  const answer = await ask(q, { n: native(), group: Number(group), bdf, sharedGroup: Number(sharedGroup), absentGroup: Number(absentGroup) });
  process.stdout.write(JSON.stringify(answer));
}

main().catch((e) => {
  process.stderr.write(`${(e as Error).stack}\n`);
  process.exitCode = 1;
});
