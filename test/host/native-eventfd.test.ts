// Eventfds: the counter semantics of eventfd(2), delivered on the libuv loop.
import assert from 'node:assert/strict';
import { spawnSync } from 'node:child_process';
import fs from 'node:fs';
import path from 'node:path';
import { native as loadNative } from '../../lib/native';

const native = loadNative();
const openFds = (): number => fs.readdirSync('/proc/self/fd').length;
const nativeModule = path.resolve(__dirname, '../../lib/native.js');

// Runs `body` in a fresh node with `native` bound to the addon.
function runNode(body: string): { status: number | null; stdout: string; stderr: string } {
  const script = `const native = require(${JSON.stringify(nativeModule)}).native();\n${body}`;
  const r = spawnSync(process.execPath, ['-e', script], { encoding: 'utf8', timeout: 15000 });
  return { status: r.status, stdout: r.stdout, stderr: r.stderr };
}

describe('native: eventfd', () => {
  it('read() returns the summed counter and resets it; 0 when nothing is pending', () => {
    const e = native.createEventFd();
    try {
      assert.equal(e.read(), 0);
      e.signal(3);
      e.signal(4);
      assert.equal(e.read(), 7);
      assert.equal(e.read(), 0);
    } finally {
      e.close();
    }
  });

  it('a signal reaches the callback through the loop, with the count', async () => {
    const e = native.createEventFd();
    try {
      const counts: number[] = [];
      const delivered = new Promise<void>((resolve) => {
        e.start((count) => {
          counts.push(count);
          resolve();
        });
      });
      e.signal(2);
      e.signal(5);
      assert.deepEqual(counts, [], 'delivery is asynchronous');
      await delivered;
      assert.deepEqual(counts, [7]);
      assert.equal(e.read(), 0, 'the watcher consumed the counter');
    } finally {
      e.close();
    }
  });

  it('stop() ends delivery; the counter then accumulates for read()', async () => {
    const e = native.createEventFd();
    try {
      let calls = 0;
      e.start(() => calls++);
      e.stop();
      e.signal(9);
      await new Promise((resolve) => setTimeout(resolve, 20));
      assert.equal(calls, 0);
      assert.equal(e.read(), 9);
    } finally {
      e.close();
    }
  });

  it('close() from inside the callback is safe and releases the fd', async () => {
    const before = openFds();
    const e = native.createEventFd();
    const seen = await new Promise<number>((resolve) => {
      e.start((count) => {
        e.close();
        resolve(count);
      });
      e.signal(1);
    });
    assert.equal(seen, 1);
    assert.equal(e.fd, -1);
    assert.throws(() => e.signal(1), { code: 'ERR_VFIO_CLOSED' });
    assert.equal(openFds(), before);
  });

  it('close() while watching stops the watch, exactly once', () => {
    const before = openFds();
    const e = native.createEventFd();
    e.start(() => assert.fail('no delivery after close'));
    e.signal(1);
    e.close();
    e.close();
    assert.equal(openFds(), before);
  });

  it('signal() beyond the counter limit is the kernel error EAGAIN (non-blocking)', () => {
    const e = native.createEventFd();
    try {
      e.signal(Number.MAX_SAFE_INTEGER);
      // The counter tops out at 2^64 - 2: keep adding until the kernel refuses.
      assert.throws(() => {
        for (let i = 0; i < 4096; i++) e.signal(Number.MAX_SAFE_INTEGER);
      }, { code: 'EAGAIN', syscall: 'write' });
    } finally {
      e.close();
    }
  });

  it('an active watch keeps the process alive; unref() lets it exit', () => {
    const unref = runNode(`const e = native.createEventFd(); e.start(() => {}); e.unref(); console.log('done');`);
    assert.equal(unref.status, 0);
    assert.equal(unref.stdout.trim(), 'done');
    const kept = runNode(`const e = native.createEventFd(); e.start((n) => { console.log('got', n); process.exit(4); });
      setTimeout(() => e.signal(6), 100);`);
    assert.equal(kept.stdout.trim(), 'got 6');
    assert.equal(kept.status, 4);
  });

  it('an exception thrown by the callback is an uncaught exception of the process', () => {
    const handled = runNode(`process.on('uncaughtException', (e) => { console.log('caught', e.message); process.exit(0); });
      const e = native.createEventFd(); e.start(() => { throw new Error('from callback'); }); e.signal(1);`);
    assert.equal(handled.status, 0);
    assert.equal(handled.stdout.trim(), 'caught from callback');
    const unhandled = runNode(`const e = native.createEventFd(); e.start(() => { throw new Error('boom'); }); e.signal(1);`);
    assert.equal(unhandled.status, 1);
    assert.match(unhandled.stderr, /Error: boom/);
  });

  it('microtasks queued by the callback run right after it', () => {
    const r = runNode(`const e = native.createEventFd();
      e.start(() => { Promise.resolve().then(() => console.log('microtask')); setImmediate(() => { console.log('immediate'); e.close(); }); });
      e.signal(1);`);
    assert.equal(r.status, 0);
    assert.deepEqual(r.stdout.trim().split('\n'), ['microtask', 'immediate']);
  });

  it('a worker thread exiting with an active, unref()ed watch tears down cleanly', () => {
    const r = runNode(`const { Worker } = require('node:worker_threads');
      const w = new Worker('const n = require(' + JSON.stringify(${JSON.stringify(nativeModule)}) + ').native();' +
        'const e = n.createEventFd(); e.start(() => {}); e.unref(); const s = n.createEventFd(); s.start(() => {}); s.stop();',
        { eval: true });
      w.on('exit', (code) => console.log('worker exit', code));`);
    assert.equal(r.status, 0, r.stderr);
    assert.equal(r.stdout.trim(), 'worker exit 0');
  });
});
