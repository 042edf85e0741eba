// The minimal vCPU on a real /dev/kvm, no VFIO needed: real-mode code in a
// memfd slot runs until the exit userspace must handle, and a guest that
// never exits is stopped by the run's timeout (a signal to this thread).

import assert from 'node:assert/strict';
import { existsSync } from 'node:fs';
import { DmaBuffer, Kvm, type Vm } from '../../lib';

describe('a vCPU on a real /dev/kvm', () => {
  let vm: Vm;
  let ram: DmaBuffer;

  before(() => {
    if (!existsSync('/dev/kvm')) throw new Error('/dev/kvm is missing: npm test runs these in the test guest when the host has none');
    if (process.arch !== 'x64') throw new Error(`the guest code here is x86 real mode; ${process.arch} needs its own`);
  });
  beforeEach(() => {
    using kvm = Kvm.open();
    vm = kvm.createVm();
    ram = DmaBuffer.memfd(0x10000);
    vm.mapMemory({ guestPhys: 0n, memory: ram });
  });
  afterEach(() => {
    vm.close();
    ram.close();
  });

  function start(code: number[]) {
    ram.bytes().set(code, 0x1000);
    const vcpu = vm.createVcpu(0);
    vcpu.setSegment('cs', 0);
    vcpu.setRegs({ rip: 0x1000n, rflags: 2n });
    return vcpu;
  }

  it('runs to a port write, then to HLT (no in-kernel irqchip: HLT exits to us)', () => {
    // mov al, 0x5a; out 0x10, al; hlt
    const vcpu = start([0xb0, 0x5a, 0xe6, 0x10, 0xf4]);
    const io = vcpu.run({ timeoutMs: 10000 });
    assert.deepEqual([io.reason, io.port, io.write, io.value, io.size], ['io', 0x10, true, 0x5a, 1]);
    const hlt = vcpu.run({ timeoutMs: 10000 });
    assert.equal(hlt.reason, 'hlt');
    assert.deepEqual(hlt.exits, { io: 1, mmio: 0, hlt: 1, intr: hlt.exits.intr, other: 0 });
    assert.equal(vcpu.getRegs().rip, 0x1005n);
  });

  it('an MMIO access outside every slot exits with its address', () => {
    // mov ax, 0x3000; mov es, ax; mov byte es:[0], 1  (guest physical 0x30000: no slot)
    const vcpu = start([0xb8, 0x00, 0x30, 0x8e, 0xc0, 0x26, 0xc6, 0x06, 0x00, 0x00, 0x01]);
    const e = vcpu.run({ timeoutMs: 10000 });
    assert.deepEqual([e.reason, e.address, e.write], ['mmio', 0x30000n, true]);
  });

  it('a guest that never exits is stopped by the timeout, and runs on after it', () => {
    const vcpu = start([0xeb, 0xfe]); // jmp $
    const t0 = Date.now();
    assert.equal(vcpu.run({ timeoutMs: 200 }).reason, 'timeout');
    assert.ok(Date.now() - t0 >= 150, 'it ran until the timeout');
    assert.equal(vcpu.run({ timeoutMs: 200 }).reason, 'timeout', 'the vCPU is usable again');
    assert.equal(vcpu.getRegs().rip, 0x1000n, 'still spinning at its jmp');
  });
});
