// lib/'s rethrow(): a kernel failure leaves the library as one
// VfioSystemError, the native error itself with the message and hint added
// (one Error built per failure, not two).
import assert from 'node:assert/strict';
import { rethrow, VfioSystemError } from '../../lib/errors';
import { native as loadNative } from '../../lib/native';

const native = loadNative();

function caught(f: () => void): unknown {
  try {
    f();
  } catch (e) {
    return e;
  }
  assert.fail('nothing was thrown');
}

describe('rethrow', () => {
  it('makes the native error the VfioSystemError: code, errno, syscall, message, hint', () => {
    const c = native.openContainer('/dev/null');
    try {
      const first = caught(() => c.getApiVersion()) as Error;
      const thrown = caught(() => rethrow(first, 'querying VFIO container /dev/null', (code) => `hint for ${code}`));
      assert.equal(thrown, first, 'the same object');
      assert.ok(thrown instanceof VfioSystemError);
      assert.ok(thrown instanceof Error);
      assert.deepEqual(
        { name: thrown.name, code: thrown.code, errno: thrown.errno, syscall: thrown.syscall, hint: thrown.hint, message: thrown.message },
        {
          name: 'VfioSystemError',
          code: 'ENOTTY',
          errno: -25,
          syscall: 'ioctl(VFIO_GET_API_VERSION)',
          hint: 'hint for ENOTTY',
          message: 'querying VFIO container /dev/null: ENOTTY: inappropriate ioctl for device, ioctl(VFIO_GET_API_VERSION); hint for ENOTTY',
        },
      );
      assert.ok(!('path' in thrown));
      assert.match(thrown.stack!, /^VfioSystemError: querying VFIO container \/dev\/null: ENOTTY/);
      assert.match(thrown.stack!.split('\n')[1], /rethrow\.test/, 'the stack starts at the call into the addon');
    } finally {
      c.close();
    }
  });

  it('keeps a path only when this rethrow names one, and no hint of an earlier rethrow', () => {
    const open = caught(() => native.openGroup('/nonexistent/vfio/7')) as Error & { path?: string };
    assert.equal(open.path, '/nonexistent/vfio/7');
    const inner = caught(() => rethrow(open, 'opening group 7', () => 'check the group number')) as VfioSystemError;
    assert.equal(inner.hint, 'check the group number');
    assert.ok(!('path' in inner), 'no path given, none kept (as a new error had none)');
    const outer = caught(() => rethrow(inner, 'attaching group 7', undefined, '/dev/vfio/7')) as VfioSystemError;
    assert.equal(outer.path, '/dev/vfio/7');
    assert.ok(!('hint' in outer));
    assert.equal(outer.message, 'attaching group 7: ENOENT: no such file or directory, open');
    assert.equal(outer.code, 'ENOENT');
  });

  it('wraps an error it cannot change in a new VfioSystemError', () => {
    const frozen = Object.freeze(Object.assign(new Error('EBUSY: busy, write'), { code: 'EBUSY', errno: -16, syscall: 'write' }));
    const thrown = caught(() => rethrow(frozen, 'writing x', undefined, '/sys/x')) as VfioSystemError;
    assert.notEqual(thrown, frozen);
    assert.ok(thrown instanceof VfioSystemError);
    assert.deepEqual(
      { code: thrown.code, errno: thrown.errno, syscall: thrown.syscall, path: thrown.path, message: thrown.message, cause: thrown.cause },
      { code: 'EBUSY', errno: -16, syscall: 'write', path: '/sys/x', message: 'writing x: EBUSY: resource busy or locked, write', cause: frozen },
    );
  });

  it('re-throws anything that is not a system error unchanged', () => {
    const plain = new TypeError('nope');
    assert.equal(caught(() => rethrow(plain, 'x')), plain);
    assert.equal(Object.getPrototypeOf(plain), TypeError.prototype);
  });
});
