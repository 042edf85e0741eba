// Scoped binding on the real kernel: the shared group's e1000e goes to
// vfio-pci for a scope and back to e1000e after it, when the scope throws,
// and when the process holding it is SIGKILLed (then `vfio unbind --restore`,
// or the next bindScoped, replays the record on disk).

import assert from 'node:assert/strict';
import { spawn, spawnSync } from 'node:child_process';
import { readlinkSync } from 'node:fs';
import path from 'node:path';
import { sysfs } from '../../lib';
import { requireShared, testEnv } from './env';

const ROOT = path.resolve(__dirname, '..', '..', '..');
const CLI = path.join(ROOT, 'dist', 'lib', 'cli', 'main.js');

const driverOf = (bdf: string): string | null => {
  try {
    return path.basename(readlinkSync(`/sys/bus/pci/devices/${bdf}/driver`));
  } catch {
    return null;
  }
};

/** A child that takes a scoped binding of `bdf`, says so, and waits to be killed. */
async function bindInChildAndKill(bdf: string): Promise<number> {
  const script = `const { sysfs } = require(${JSON.stringify(path.join(ROOT, 'dist', 'lib'))});
    sysfs.bindScoped(${JSON.stringify(bdf)}, { force: true });
    process.stdout.write('bound\\n');
    setInterval(() => {}, 1000);`;
  const child = spawn(process.execPath, ['-e', script], { stdio: ['ignore', 'pipe', 'inherit'] });
  await new Promise<void>((resolve, reject) => {
    child.stdout.on('data', (d: Buffer) => d.toString().includes('bound') && resolve());
    child.on('exit', (code) => reject(new Error(`the child exited (${code}) before binding`)));
  });
  assert.equal(driverOf(bdf), 'vfio-pci', 'the child bound it');
  assert.equal(sysfs.readBindingRecord(bdf)?.owner?.pid, child.pid, 'the record on disk names the child');
  const exited = new Promise((r) => child.on('exit', (_c, signal) => r(signal)));
  child.kill('SIGKILL');
  assert.equal(await exited, 'SIGKILL');
  return child.pid!;
}

describe('scoped binding on the real kernel', () => {
  let hostBdf: string;
  before(function () {
    hostBdf = requireShared(testEnv()).hostBdf;
    assert.equal(driverOf(hostBdf), 'e1000e', 'the shared group\'s NIC starts on its host driver');
  });
  afterEach(() => {
    // Whatever a failed test left behind: back to e1000e for the next one.
    if (driverOf(hostBdf) !== 'e1000e') sysfs.unbindFromVfio(hostBdf, { force: true });
  });

  it('binds for a `using` scope and gives the device back to e1000e after it, also when the scope throws', () => {
    {
      using b = sysfs.bindScoped(hostBdf, { force: true });
      assert.equal(b.change.driverBefore, 'e1000e');
      assert.equal(driverOf(hostBdf), 'vfio-pci');
    }
    assert.equal(driverOf(hostBdf), 'e1000e');
    assert.throws(() => {
      using _b = sysfs.bindScoped(hostBdf, { force: true });
      throw new Error('the test failed');
    }, /the test failed/);
    assert.equal(driverOf(hostBdf), 'e1000e');
    assert.equal(sysfs.readBindingRecord(hostBdf), null, 'no record left');
  });

  it('withBinding() gives the device back when the function rejects', async () => {
    await assert.rejects(
      sysfs.withBinding(hostBdf, async () => {
        assert.equal(driverOf(hostBdf), 'vfio-pci');
        throw new Error('rejected');
      }, { force: true }),
      /rejected/,
    );
    assert.equal(driverOf(hostBdf), 'e1000e');
  });

  it('after the holder is SIGKILLed, `vfio unbind --restore` gives the device back to e1000e', async function () {
    this.timeout(60_000); // two node starts, ~5 s each in the arm64 guest (TCG), more on a loaded host
    await bindInChildAndKill(hostBdf);
    assert.equal(driverOf(hostBdf), 'vfio-pci', 'nothing restored it yet: the process died');
    const r = spawnSync(process.execPath, [CLI, 'unbind', '--restore'], { encoding: 'utf8' });
    console.log(`      $ vfio unbind --restore\n${r.stdout.replace(/^/gm, '      ')}`);
    assert.equal(r.status, 0, r.stderr);
    assert.match(r.stdout, new RegExp(`${hostBdf}: vfio-pci -> e1000e`));
    assert.equal(driverOf(hostBdf), 'e1000e');
    assert.equal(sysfs.readBindingRecord(hostBdf), null);
  });

  it('after the holder is SIGKILLed, the next bindScoped replays the record first', async function () {
    this.timeout(60_000); // a node start, ~5 s in the arm64 guest (TCG), more on a loaded host
    await bindInChildAndKill(hostBdf);
    {
      using b = sysfs.bindScoped(hostBdf, { force: true });
      assert.equal(b.change.driverBefore, 'e1000e', 'the stale binding was given back before this one took the device');
      assert.equal(sysfs.readBindingRecord(hostBdf)?.owner?.pid, process.pid);
    }
    assert.equal(driverOf(hostBdf), 'e1000e');
  });

  it('leaves a live holder\'s binding alone', () => {
    using _b = sysfs.bindScoped(hostBdf, { force: true });
    assert.deepEqual(sysfs.restoreStaleBindings(), []);
    assert.equal(driverOf(hostBdf), 'vfio-pci');
  });
});
