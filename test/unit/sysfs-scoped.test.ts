// Scoped binding on the sysfs fixture: the device comes back after the
// scope; a record whose owner process is gone is replayed; a live owner's
// is left alone. (The real kernel, and a real SIGKILL: test/vm/scoped-bind.)

import assert from 'node:assert/strict';
import * as fs from 'node:fs';
import * as path from 'node:path';
import { bindScoped, readBindingRecord, readPciDevice, restoreStaleBindings, withBinding } from '../../lib/sysfs';
import { type Fixture, buildFixture } from '../fixtures/sysfs-tree';
import { hostSpec } from '../fixtures/topologies';

const NIC = '0000:00:04.1';

describe('sysfs scoped binding', () => {
  let f: Fixture;
  beforeEach(() => (f = buildFixture(hostSpec())));
  afterEach(() => f.remove());

  /** This process, as the fixture's /proc shows it (alive) or not (gone). */
  const showUs = () => {
    const own = fs.readFileSync('/proc/self/stat', 'utf8');
    fs.mkdirSync(path.join(f.procRoot, String(process.pid)), { recursive: true });
    fs.writeFileSync(path.join(f.procRoot, String(process.pid), 'stat'), own);
  };

  it('binds for the scope, records this process as the owner, and gives the device back after', () => {
    {
      using b = bindScoped(NIC, f.opts);
      assert.equal(readPciDevice(NIC, f.opts).driver, 'vfio-pci');
      assert.equal(readBindingRecord(NIC, f.opts)?.owner?.pid, process.pid);
      assert.ok(b.active);
    }
    assert.equal(readPciDevice(NIC, f.opts).driver, 'e1000e');
    assert.equal(readBindingRecord(NIC, f.opts), null);
  });

  it('withBinding gives it back when the function rejects', async () => {
    await assert.rejects(withBinding(NIC, () => Promise.reject(new Error('no')), f.opts), /no/);
    assert.equal(readPciDevice(NIC, f.opts).driver, 'e1000e');
  });

  it('replays a binding whose owner is gone, and leaves a live owner\'s alone', () => {
    showUs();
    const b = bindScoped(NIC, f.opts);
    assert.deepEqual(restoreStaleBindings(f.opts), [], 'the owner is alive');
    assert.equal(readPciDevice(NIC, f.opts).driver, 'vfio-pci');
    fs.rmSync(path.join(f.procRoot, String(process.pid)), { recursive: true });
    const restored = restoreStaleBindings(f.opts);
    assert.deepEqual(restored.map((c) => [c.address, c.driverBefore, c.driverAfter]), [[NIC, 'vfio-pci', 'e1000e']]);
    assert.equal(b.restore(), null, 'the scope finds nothing of its own left to give back');
  });

  it('leaves a device that was on vfio-pci before the scope on vfio-pci after it', () => {
    {
      using b = bindScoped('0000:00:02.0', f.opts);
      assert.equal(b.change.changed, false);
    }
    assert.equal(readPciDevice('0000:00:02.0', f.opts).driver, 'vfio-pci');
  });
});
