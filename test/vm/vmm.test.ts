// A VM manager passing edu through to a real KVM guest (nested KVM in the
// test guest): the guest's own code drives the device through a BAR memory
// slot, edu DMAs into guest RAM through the IOMMU, and its interrupts reach
// the guest through irqfds, with no exit and no JavaScript on the way.

import assert from 'node:assert/strict';
import { existsSync } from 'node:fs';
import { runIntxPassthrough, runMsiPassthrough, DONE_PORT } from '../../examples/vmm/passthrough';
import { isEdu, testEnv, type TestEnv } from './env';

describe('VM manager: edu passed through to a KVM guest', function () {
  this.timeout(120000);
  let env: TestEnv;

  before(() => {
    env = testEnv();
    if (!existsSync('/dev/kvm')) throw new Error('/dev/kvm is missing: the guest must load kvm (scripts/guest/run --kvm)');
    if (!isEdu(env.bdf)) throw new Error(`${env.bdf} is not QEMU's edu: the guest code drives edu's registers`);
  });

  it('MSI: the guest drives edu through its BAR slot with no exit, DMA lands in guest RAM, the MSI reaches the guest through an irqfd', async () => {
    const r = await runMsiPassthrough({ group: env.group, bdf: env.bdf });
    assert.equal(r.exit.reason, 'io', `the guest ended with its port write (got ${JSON.stringify(r.exit, (_k, v) => (typeof v === 'bigint' ? v.toString(16) : v))})`);
    assert.equal(r.exit.port, DONE_PORT);
    assert.equal(r.exit.exits.mmio, 0, 'edu register accesses made no MMIO exit');
    assert.equal(r.exit.exits.io, 1, 'the only exit was the final port write');
    assert.equal(r.liveness, 0xedcba987, 'edu inverted what the guest wrote: the writes reached the device');
    assert.equal(r.dmaMatches, true, 'edu copied 64 bytes of guest RAM back into guest RAM');
    assert.equal(r.interrupts, 1, 'the guest handled one MSI');
    assert.equal(r.statuses[0] & 0x100, 0x100, 'the guest saw edu\'s DMA-completion status');
    assert.equal(r.jsEvents, 0, 'nothing came up to JavaScript');
  });

  it('INTx with resample: the guest EOIs, KVM signals the resample fd, VFIO unmasks, and a second interrupt arrives', async () => {
    const r = await runIntxPassthrough({ group: env.group, bdf: env.bdf });
    assert.equal(r.exit.reason, 'io', `the guest ended with its port write (got ${JSON.stringify(r.exit, (_k, v) => (typeof v === 'bigint' ? v.toString(16) : v))})`);
    assert.equal(r.exit.value, 2);
    assert.equal(r.interrupts, 2, 'two level-triggered interrupts reached the guest');
    assert.deepEqual(r.statuses, [1, 2], 'each with the status the guest raised');
    assert.equal(r.exit.exits.mmio, 0);
    assert.equal(r.jsEvents, 0, 'nothing came up to JavaScript');
  });
});
