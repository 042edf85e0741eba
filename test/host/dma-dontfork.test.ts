// Every DMA buffer's mapping is MADV_DONTFORK ('dc' in smaps VmFlags), as
// QEMU marks guest RAM: a forked child never shares pinned pages. The addon
// shows JS no address, so a buffer's mapping is found as the one mapping of
// its (unusual) size that was not there before it was made.
import assert from 'node:assert/strict';
import { spawn, spawnSync } from 'node:child_process';
import { once } from 'node:events';
import fs from 'node:fs';
import { DmaBuffer } from '../../lib';
import { native } from '../../lib/native';

const page = native().pageSize;
const size = 37 * page; // no other mapping of the process has this size

interface Vma {
  range: string;
  name: string;
  kb: number;
  flags: string[];
}

function smaps(): Vma[] {
  const vmas: Vma[] = [];
  for (const line of fs.readFileSync('/proc/self/smaps', 'utf8').split('\n')) {
    const head = /^([0-9a-f]+-[0-9a-f]+) \S+ \S+ \S+ \S+\s*(.*)$/.exec(line);
    if (head) vmas.push({ range: head[1], name: head[2], kb: 0, flags: [] });
    else if (line.startsWith('Size:')) vmas[vmas.length - 1].kb = Number(/(\d+) kB/.exec(line)![1]);
    else if (line.startsWith('VmFlags:')) vmas[vmas.length - 1].flags = line.slice(8).trim().split(/\s+/);
  }
  return vmas;
}

/** The mappings of `bytes` that `make` added. */
function mappingsMadeBy(bytes: number, make: () => void): Vma[] {
  const before = new Set(smaps().map((v) => v.range));
  make();
  return smaps().filter((v) => !before.has(v.range) && v.kb * 1024 === bytes);
}

const freeHugePages = (): number => Number(/HugePages_Free:\s+(\d+)/.exec(fs.readFileSync('/proc/meminfo', 'utf8'))![1]);

describe('DMA buffers are not inherited by child processes (MADV_DONTFORK)', () => {
  const buffers: DmaBuffer[] = [];
  afterEach(() => {
    for (const b of buffers.splice(0)) b.close();
  });

  it('smaps parsing sees flags: the stack is not dc', () => {
    const stack = smaps().find((v) => v.name === '[stack]');
    assert.ok(stack && stack.flags.includes('rd') && !stack.flags.includes('dc'));
  });

  it('DmaBuffer.allocate: the anonymous mapping is dc', () => {
    const made = mappingsMadeBy(size, () => buffers.push(DmaBuffer.allocate(size)));
    assert.equal(made.length, 1, JSON.stringify(made));
    assert.ok(made[0].flags.includes('dc'), made[0].flags.join(' '));
  });

  it('DmaBuffer.memfd: the memfd mapping is dc', () => {
    const made = mappingsMadeBy(size, () => buffers.push(DmaBuffer.memfd(size, { name: 'vfio-dontfork-memfd' })));
    assert.equal(made.length, 1, JSON.stringify(made));
    assert.match(made[0].name, /^\/memfd:vfio-dontfork-memfd/);
    assert.ok(made[0].flags.includes('dc'), made[0].flags.join(' '));
  });

  it('DmaBuffer.fromFd: the second mapping of a memfd is dc too', () => {
    const m = DmaBuffer.memfd(size, { name: 'vfio-dontfork-fromfd' });
    buffers.push(m);
    const made = mappingsMadeBy(size, () => buffers.push(DmaBuffer.fromFd(m.fd, { size })));
    assert.equal(made.length, 1, JSON.stringify(made));
    assert.match(made[0].name, /^\/memfd:vfio-dontfork-fromfd/);
    assert.ok(made[0].flags.includes('dc'), made[0].flags.join(' '));
  });

  it('huge-page buffers are dc (or the pool is empty: ENOMEM, nothing mapped)', () => {
    const huge = 2 * 1024 * 1024;
    if (freeHugePages() === 0) {
      const made = mappingsMadeBy(huge, () => assert.throws(() => DmaBuffer.allocate(huge, { hugePageSize: huge }), { code: 'ENOMEM' }));
      assert.equal(made.length, 0);
      return;
    }
    const made = mappingsMadeBy(huge, () => buffers.push(DmaBuffer.allocate(huge, { hugePageSize: huge })));
    assert.equal(made.length, 1, JSON.stringify(made));
    assert.ok(made[0].flags.includes('dc') && made[0].flags.includes('ht'), made[0].flags.join(' '));
  });

  it('child processes still spawn while buffers are alive, and the buffers keep their bytes', async () => {
    const anon = DmaBuffer.allocate(size);
    const shared = DmaBuffer.memfd(size, { name: 'vfio-dontfork-spawn' });
    buffers.push(anon, shared);
    anon.bytes().fill(0xa5);
    shared.bytes().fill(0x5a);
    const sync = spawnSync(process.execPath, ['-e', 'process.exit(7)']);
    assert.equal(sync.status, 7);
    const child = spawn(process.execPath, ['-e', 'process.exit(9)']);
    const [code] = (await once(child, 'exit')) as [number];
    assert.equal(code, 9);
    assert.ok(anon.bytes().every((b) => b === 0xa5));
    assert.ok(shared.bytes().every((b) => b === 0x5a));
    anon.bytes()[0] = 1;
    assert.equal(anon.bytes()[0], 1);
  });
});
