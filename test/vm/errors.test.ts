// The kernel's own errors, where we let them through, with the hint that
// says what to do; and resources back to baseline after close.

import assert from 'node:assert/strict';
import { execFileSync } from 'node:child_process';
import { chownSync, statSync } from 'node:fs';
import path from 'node:path';
import { Container, DmaBuffer, Group } from '../../lib';
import { fdCount, lockedKb, testEnv, type TestEnv, userChildEnv } from './env';

describe('kernel errors and resource release', () => {
  let env: TestEnv;
  before(() => {
    env = testEnv();
  });

  it('a second open of a group is EBUSY, and the message says it is open here', () => {
    using first = Group.open(env.group);
    assert.throws(() => Group.open(env.group), {
      code: 'EBUSY',
      errno: -16,
      syscall: 'open',
      message: new RegExp(`group ${env.group}.*already open in this process`),
    });
    assert.equal(first.closed, false);
  });

  it('an unprivileged user over RLIMIT_MEMLOCK gets ENOMEM with the limit and the fix', function () {
    this.timeout(60000);
    if (process.getuid?.() !== 0) throw new Error('this test must run as root (it switches to uid 65534): run it in the test guest');
    const node = `/dev/vfio/${env.group}`;
    const saved = statSync(node);
    chownSync(node, 65534, 65534);
    try {
      const child = path.join(__dirname, 'children', 'map-as-user.js');
      const out = execFileSync('/bin/sh', ['-c', `ulimit -l 64 && exec "${process.execPath}" "${child}" ${env.group}`], {
        uid: 65534,
        gid: 65534,
        encoding: 'utf8',
        env: userChildEnv(),
      });
      const result = JSON.parse(out);
      assert.equal(result.code, 'ENOMEM', out);
      assert.equal(result.errno, -12);
      assert.equal(result.syscall, 'ioctl(VFIO_IOMMU_MAP_DMA)');
      assert.match(result.message, /RLIMIT_MEMLOCK, which is 65536 bytes \(64 KiB\)/);
      assert.match(result.message, /ulimit -l.*CAP_IPC_LOCK/);
    } finally {
      chownSync(node, saved.uid, saved.gid);
    }
  });

  it('closing a container with live mappings releases the pinned memory and every fd', () => {
    const lockedBefore = lockedKb();
    const fdsBefore = fdCount();
    const buffer = DmaBuffer.allocate(16 << 20);
    {
      using container = Container.open();
      container.openGroup(env.group);
      const iommu = container.setIommu();
      iommu.map(buffer, { iova: 0x1000000n, size: 8 << 20 });
      iommu.map(buffer, { iova: 0x2000000n, offset: 8 << 20, size: 8 << 20 });
      assert.equal(lockedKb() - lockedBefore, 16 * 1024, 'the kernel pinned 16 MiB');
    }
    assert.equal(lockedKb(), lockedBefore, 'pinned memory is back to baseline');
    buffer.close();
    assert.equal(fdCount(), fdsBefore, 'fds are back to baseline');
  });
});
