// The vfio command as the guest suites run it: the compiled CLI, spawned, and
// the shape of a doctor check in its --json output.

import { spawnSync } from 'node:child_process';
import * as path from 'node:path';

const BIN = path.join(__dirname, '../../lib/cli/main.js');

export function vfio(args: string[]): { status: number | null; stdout: string; stderr: string } {
  const r = spawnSync(process.execPath, [BIN, ...args], { encoding: 'utf8' });
  return { status: r.status, stdout: String(r.stdout), stderr: String(r.stderr) };
}

/** One check of `vfio doctor --json`. */
export interface Check {
  name: string;
  status: string;
  detail: string;
  group?: number;
  fix?: string;
}
