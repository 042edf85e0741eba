// noiommu's native half on the host's own kernel: mlock/munlock of a DMA
// buffer's own memory (VmLck counts it), and its /proc/self/pagemap entries,
// which carry frame numbers only for CAP_SYS_ADMIN, as lib/noiommu.ts's
// refusal assumes.
import assert from 'node:assert/strict';
import { spawnSync } from 'node:child_process';
import fs from 'node:fs';
import path from 'node:path';
import { native as loadNative } from '../../lib/native';

const native = loadNative();
const page = native.pageSize;
const PRESENT = 1n << 63n;
const PFN = (1n << 55n) - 1n;

const lockedKb = (): number => Number(/VmLck:\s+(\d+) kB/.exec(fs.readFileSync('/proc/self/status', 'utf8'))![1]);
const CAP_SYS_ADMIN = 21n;
const hasSysAdmin = (): boolean => ((BigInt(`0x${/CapEff:\s+([0-9a-f]+)/.exec(fs.readFileSync('/proc/self/status', 'utf8'))![1]}`) >> CAP_SYS_ADMIN) & 1n) === 1n;

describe('native: locking a DMA buffer for noiommu DMA', () => {
  it('mlock locks exactly the buffer (VmLck grows by its size) and munlock gives it back', () => {
    const buffer = native.allocDmaBuffer(16 * page, 0);
    try {
      const before = lockedKb();
      buffer.mlock();
      assert.equal(lockedKb() - before, (16 * page) / 1024);
      buffer.munlock();
      assert.equal(lockedKb(), before);
    } finally {
      buffer.close();
    }
  });

  it('pagemap gives one entry per page, each present once locked', () => {
    const buffer = native.allocDmaBuffer(8 * page, 0);
    try {
      buffer.mlock();
      const entries = buffer.pagemap();
      assert.ok(entries instanceof BigUint64Array);
      assert.equal(entries.length, 8);
      for (const e of entries) assert.equal(e & PRESENT, PRESENT);
    } finally {
      buffer.close();
    }
  });

  it('the frame numbers are real with CAP_SYS_ADMIN (non-zero, one per page) and hidden (0) without it', () => {
    const buffer = native.allocDmaBuffer(8 * page, 0);
    try {
      buffer.mlock();
      const pfns = [...buffer.pagemap()].map((e) => e & PFN);
      if (hasSysAdmin()) {
        assert.ok(pfns.every((p) => p !== 0n));
        assert.equal(new Set(pfns).size, 8, 'eight pages, eight frames');
      } else {
        assert.deepEqual(pfns, new Array(8).fill(0n));
      }
    } finally {
      buffer.close();
    }
  });

  it('a process without CAP_SYS_ADMIN (root drops to uid 65534) sees frame numbers 0, and a small RLIMIT_MEMLOCK makes mlock ENOMEM', () => {
    const root = process.getuid?.() === 0;
    const addon = path.join(__dirname, '..', '..', '..', 'build', 'Release', 'vfio.node');
    const script = `
      const fs = require('fs');
      const a = require(${JSON.stringify(addon)});
      const cap = (BigInt('0x' + /CapEff:\\s+([0-9a-f]+)/.exec(fs.readFileSync('/proc/self/status', 'utf8'))[1]) >> 21n) & 1n;
      const b = a.allocDmaBuffer(4 * a.pageSize, 0);
      b.mlock();
      const e = b.pagemap();
      let big;
      try { a.allocDmaBuffer(1 << 20, 0).mlock(); } catch (err) { big = err.code + ' ' + err.syscall; }
      console.log(JSON.stringify({ sysAdmin: cap === 1n, present: e.every((x) => x >> 63n === 1n), pfns: [...e].map((x) => String(x & ((1n << 55n) - 1n))), big }));`;
    const r = spawnSync('sh', ['-c', 'ulimit -l 64 && exec "$0" -e "$1"', process.execPath, script], {
      encoding: 'utf8',
      ...(root ? { uid: 65534, gid: 65534 } : {}),
    });
    assert.equal(r.status, 0, r.stderr);
    const out = JSON.parse(r.stdout) as { sysAdmin: boolean; present: boolean; pfns: string[]; big?: string };
    assert.equal(out.present, true);
    if (root) assert.equal(out.sysAdmin, false, 'uid 65534 has no CAP_SYS_ADMIN');
    if (!out.sysAdmin) assert.deepEqual(out.pfns, ['0', '0', '0', '0']);
    else assert.ok(out.pfns.every((p) => p !== '0'));
    if (!out.sysAdmin) assert.equal(out.big, 'ENOMEM mlock');
  });

  it('after close every call is ERR_VFIO_CLOSED', () => {
    const buffer = native.allocDmaBuffer(page, 0);
    buffer.close();
    assert.throws(() => buffer.mlock(), { code: 'ERR_VFIO_CLOSED' });
    assert.throws(() => buffer.munlock(), { code: 'ERR_VFIO_CLOSED' });
    assert.throws(() => buffer.pagemap(), { code: 'ERR_VFIO_CLOSED' });
  });
});
