// The guest of the noiommu suite: the kernel we build, booted without any
// IOMMU and with VFIO's noiommu mode on (scripts/guest/run --no-iommu). These
// facts are what every other file here relies on.

import assert from 'node:assert/strict';
import { spawnSync } from 'node:child_process';
import { closeSync, existsSync, openSync, readdirSync, readFileSync, readSync, statSync } from 'node:fs';
import { DmaBuffer } from '../../lib';
import { isEdu, itSeesTheProject, testEnv } from '../vm/env';

const PAGE = 4096;
const PFN_MASK = (1n << 55n) - 1n;
const PRESENT = 1n << 63n;

/** The pagemap entries of [start, start + pages * PAGE) of this process. */
function pagemap(start: bigint, pages: number): bigint[] {
  const fd = openSync('/proc/self/pagemap', 'r');
  try {
    const buf = Buffer.alloc(pages * 8);
    assert.equal(readSync(fd, buf, 0, buf.length, Number((start / BigInt(PAGE)) * 8n)), buf.length);
    return Array.from({ length: pages }, (_, i) => buf.readBigUInt64LE(i * 8));
  } finally {
    closeSync(fd);
  }
}

/** Where this process maps the memfd named NAME (/proc/self/maps). */
function mappingOf(name: string): { start: bigint; end: bigint } {
  const line = readFileSync('/proc/self/maps', 'utf8')
    .split('\n')
    .find((l) => l.includes(`/memfd:${name} `));
  assert.ok(line, `memfd ${name} is not in /proc/self/maps`);
  const [start, end] = line.split(' ')[0].split('-').map((h) => BigInt(`0x${h}`));
  return { start, end };
}

describe('the built-kernel guest without an IOMMU (noiommu)', () => {
  const env = testEnv();

  it('runs the kernel we build, with no IOMMU and VFIO noiommu mode on', () => {
    assert.equal(process.env.VFIO_GUEST_KERNEL, 'built', 'run this suite through `node scripts/test.js vm-noiommu`');
    assert.equal(process.env.VFIO_GUEST_NOIOMMU, '1');
    assert.equal(readFileSync('/sys/module/vfio/parameters/enable_unsafe_noiommu_mode', 'utf8').trim(), 'Y');
    assert.deepEqual(readdirSync('/sys/class/iommu'), []);
    assert.equal(existsSync(`/sys/bus/pci/devices/${env.bdf}/iommu`), false, 'edu A sits behind no IOMMU');
  });

  it('binds the edu with a noiommu group: /dev/vfio/noiommu-N, no /dev/vfio/N', () => {
    assert.ok(isEdu(env.bdf));
    assert.equal(readFileSync(`/sys/bus/pci/devices/${env.bdf}/driver_override`, 'utf8').trim(), 'vfio-pci');
    assert.ok(statSync(`/dev/vfio/noiommu-${env.group}`).isCharacterDevice());
    assert.equal(existsSync(`/dev/vfio/${env.group}`), false);
    // The group is vfio's own stand-in, not one an IOMMU driver made.
    assert.equal(readFileSync(`/sys/kernel/iommu_groups/${env.group}/name`, 'utf8').trim(), 'vfio-noiommu');
    assert.deepEqual(readdirSync(`/sys/kernel/iommu_groups/${env.group}/devices`), [env.bdf]);
  });

  it('shows root the physical frame of each touched page in /proc/self/pagemap (noiommu DMA addresses come from there)', () => {
    const name = 'vfio-noiommu-pagemap';
    const buf = DmaBuffer.memfd(4 * PAGE, { name });
    try {
      const bytes = buf.bytes();
      for (let i = 0; i < 4; i++) bytes[i * PAGE] = i + 1;
      const { start, end } = mappingOf(name);
      assert.equal(end - start, BigInt(4 * PAGE));
      const entries = pagemap(start, 4);
      for (const e of entries) assert.equal(e & PRESENT, PRESENT, 'a touched page is present');
      const pfns = entries.map((e) => e & PFN_MASK);
      for (const pfn of pfns) assert.notEqual(pfn, 0n);
      assert.equal(new Set(pfns).size, 4, 'four pages, four frames');
    } finally {
      buf.close();
    }
  });

  it('hides the frame from a process without CAP_SYS_ADMIN (PFN 0): noiommu needs root', () => {
    const code = `const fs=require('fs');const b=Buffer.alloc(8);const fd=fs.openSync('/proc/self/pagemap','r');
      const m=fs.readFileSync('/proc/self/maps','utf8').split('\\n').find(l=>l.includes('[stack]'));
      const top=BigInt('0x'+m.split('-')[1].split(' ')[0])-4096n;fs.readSync(fd,b,0,8,Number(top/4096n*8n));
      const e=b.readBigUInt64LE(0);console.log(String(e>>63n), String(e&((1n<<55n)-1n)));`;
    const r = spawnSync(process.execPath, ['-e', code], { uid: 65534, gid: 65534, env: { PATH: process.env.PATH }, encoding: 'utf8' });
    assert.equal(r.status, 0, r.stderr);
    assert.equal(r.stdout.trim(), '1 0', 'the stack top is present, its frame hidden');
  });

  itSeesTheProject();
});
