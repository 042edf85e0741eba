// How a call finds its native object: an instance's own methods are bound
// to it (no unwrap per call), an argument is looked up in the addon's
// registry of live objects. Neither may ever act on another object, a
// closed one, or one that was collected.
import assert from 'node:assert/strict';
import { spawnSync } from 'node:child_process';
import fs from 'node:fs';
import path from 'node:path';
import { collectUntil } from '../fixtures/gc';
import { native as loadNative, type NativeEventFd } from '../../lib/native';

const native = loadNative();
const nativeModule = path.resolve(__dirname, '../../lib/native.js');
const fdTarget = (fd: number): string | null => {
  try {
    return fs.readlinkSync(`/proc/self/fd/${fd}`);
  } catch {
    return null;
  }
};

describe('native: own methods', () => {
  it('an instance carries its methods; the prototype keeps the receiver-checked ones', () => {
    const e = native.createEventFd();
    try {
      const proto = Object.getPrototypeOf(e);
      for (const name of ['read', 'signal', 'start', 'stop', 'ref', 'unref', 'close']) {
        assert.ok(Object.hasOwn(e, name), name);
        assert.notEqual((e as unknown as Record<string, unknown>)[name], proto[name], name);
      }
      assert.deepEqual(Object.keys(e), [], 'not enumerable');
      e.signal(2);
      assert.equal(proto.read.call(e), 2, 'the prototype method still works on its own object');
    } finally {
      e.close();
    }
  });

  it('a method acts on its own object whatever `this` it is called with', () => {
    const a = native.createEventFd();
    const b = native.createEventFd();
    try {
      a.signal.call(b, 5);
      assert.equal(b.read(), 0, 'nothing reached b');
      assert.equal(a.read.call(b), 5);
      assert.equal(a.read.call({}), 0);
      const { signal } = b;
      signal(7);
      assert.equal(b.read(), 7, 'a detached method keeps its object');
      assert.equal(a.read(), 0);
    } finally {
      a.close();
      b.close();
    }
  });

  it('a method called with new is a TypeError', () => {
    const e = native.createEventFd();
    try {
      const Read = e.read as unknown as new () => unknown;
      assert.throws(() => new Read(), { name: 'TypeError', code: 'ERR_INVALID_ARG_TYPE', message: /Illegal invocation/ });
    } finally {
      e.close();
    }
  });

  it('a method taken off a closed object is ERR_VFIO_CLOSED', () => {
    const c = native.openContainer('/dev/null');
    const { getApiVersion, mapDma } = c;
    c.close();
    assert.throws(() => getApiVersion(), { code: 'ERR_VFIO_CLOSED', message: 'Container is closed' });
    const buffer = native.allocDmaBuffer(4096, 0);
    try {
      assert.throws(() => mapDma(buffer, 0, 4096, 0n, 3), { code: 'ERR_VFIO_CLOSED' });
    } finally {
      buffer.close();
    }
  });

  it('a method that outlives its collected object is ERR_VFIO_CLOSED and never reaches the fd number reused since', async () => {
    let weak: WeakRef<NativeEventFd>;
    let fd: number;
    const methods = (() => {
      const e = native.createEventFd();
      weak = new WeakRef(e);
      fd = e.fd;
      return { read: e.read, signal: e.signal };
    })();
    // Not weak.deref() in the loop: it would keep the object alive for the job.
    await collectUntil(() => fdTarget(fd) === null);
    assert.equal(fdTarget(fd!), null, "the object's finalizer closed the fd");
    assert.equal(weak!.deref(), undefined, 'the object was collected');
    // New eventfds take the lowest free numbers (the old one among them)
    // and, most likely, the freed slot of the old object's methods.
    const fresh: NativeEventFd[] = [];
    try {
      while (fresh.length < 64 && fresh.at(-1)?.fd !== fd!) fresh.push(native.createEventFd());
      assert.equal(fresh.at(-1)!.fd, fd!, 'the fd number was reused');
      assert.throws(() => methods.signal(9), { code: 'ERR_VFIO_CLOSED', message: 'EventFd is closed' });
      assert.throws(() => methods.read(), { code: 'ERR_VFIO_CLOSED' });
      assert.deepEqual(
        fresh.map((e) => e.read()),
        fresh.map(() => 0),
        'nothing was written to the new eventfds',
      );
    } finally {
      for (const e of fresh) e.close();
    }
  });

  it('a replaced Function.prototype.bind cannot make a method act on another class or a forged receiver', () => {
    // The spy sees every shared method and every token external the addon
    // binds; calling a Container method with an EventFd's token, or with
    // anything else, must be refused before any cast.
    const script = `
      const { isExternal } = require('node:util').types;
      const realBind = Function.prototype.bind;
      const seen = [];
      Function.prototype.bind = function (self, ...rest) {
        if (isExternal(self)) seen.push([this, self]);
        return realBind.call(this, self, ...rest);
      };
      const native = require(${JSON.stringify(nativeModule)}).native();
      const c = native.openContainer('/dev/null');
      const containerCalls = seen.length;
      const e = native.createEventFd();
      const getApiVersion = seen[0][0];
      const containerToken = seen[0][1];
      const eventfdToken = seen[containerCalls][1];
      const out = [];
      for (const self of [eventfdToken, {}, undefined, 42]) {
        try { getApiVersion.call(self); out.push('called'); } catch (err) { out.push(err.name + ' ' + err.code); }
      }
      try { getApiVersion.call(containerToken); } catch (err) { out.push(err.code); }
      c.close();
      try { getApiVersion.call(containerToken); } catch (err) { out.push(err.code); }
      e.close();
      console.log(JSON.stringify(out));
    `;
    const r = spawnSync(process.execPath, ['-e', script], { encoding: 'utf8', timeout: 15000 });
    assert.equal(r.status, 0, r.stderr);
    assert.deepEqual(JSON.parse(r.stdout), [
      'TypeError ERR_INVALID_ARG_TYPE',
      'TypeError ERR_INVALID_ARG_TYPE',
      'TypeError ERR_INVALID_ARG_TYPE',
      'TypeError ERR_INVALID_ARG_TYPE',
      'ENOTTY',
      'ERR_VFIO_CLOSED',
    ]);
  });
});

describe('native: argument look-up', () => {
  it('each call finds the buffer it was given, the last one found or not', () => {
    const c = native.openContainer('/dev/null');
    const big = native.allocDmaBuffer(8192, 0);
    const small = native.allocDmaBuffer(4096, 0);
    try {
      // The range check runs on the buffer found: ENOTTY means it passed.
      assert.throws(() => c.mapDma(big, 0, 8192, 0n, 3), { code: 'ENOTTY' });
      assert.throws(() => c.mapDma(small, 0, 8192, 0n, 3), { code: 'ERR_OUT_OF_RANGE', message: /inside the buffer \(4096 bytes\)/ });
      assert.throws(() => c.mapDma(big, 0, 8192, 0n, 3), { code: 'ENOTTY' });
      small.close();
      assert.throws(() => c.mapDma(small, 0, 4096, 0n, 3), { code: 'ERR_VFIO_CLOSED', message: 'DmaBuffer is closed' });
      assert.throws(() => c.mapDma(big, 0, 8192, 0n, 3), { code: 'ENOTTY' });
    } finally {
      small.close();
      big.close();
      c.close();
    }
  });

  it('an object of another class or a look-alike is refused right after a buffer was found', () => {
    const c = native.openContainer('/dev/null');
    const buffer = native.allocDmaBuffer(4096, 0);
    const e = native.createEventFd();
    try {
      const getSize = Object.getOwnPropertyDescriptor(Object.getPrototypeOf(buffer), 'size')!.get!;
      for (const other of [e, c, Object.create(Object.getPrototypeOf(buffer)), { size: 4096 }]) {
        assert.equal(getSize.call(buffer), 4096);
        assert.throws(() => getSize.call(other), { name: 'TypeError', message: /receiver is not a DmaBuffer/ });
        assert.throws(() => c.mapDma(buffer, 0, 4096, 0n, 3), { code: 'ENOTTY' });
        assert.throws(() => c.mapDma(other as never, 0, 4096, 0n, 3), { code: 'ERR_INVALID_ARG_TYPE' });
      }
    } finally {
      e.close();
      buffer.close();
      c.close();
    }
  });

  it('any fd owner is found as one, whatever was found before', () => {
    const g = native.openGroup('/dev/null');
    const c = native.openContainer('/dev/null');
    const buffer = native.allocDmaBuffer(4096, 0);
    try {
      assert.throws(() => c.mapDma(buffer, 0, 4096, 0n, 3), { code: 'ENOTTY' });
      // setContainer takes a Container: the cached buffer must not pass for one.
      assert.throws(() => g.setContainer(buffer as never), { code: 'ERR_INVALID_ARG_TYPE', message: /must be a Container/ });
      assert.throws(() => g.setContainer(c), { code: 'ENOTTY', syscall: 'ioctl(VFIO_GROUP_SET_CONTAINER)' });
      c.close();
      assert.throws(() => g.setContainer(c), { code: 'ERR_VFIO_CLOSED' });
    } finally {
      buffer.close();
      c.close();
      g.close();
    }
  });
});
