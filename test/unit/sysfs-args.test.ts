// The argument rule at lib/sysfs's public boundary: every value is checked
// (lib/args.ts codes, the argument named) before anything is read or written,
// a newline from a file never reaches sysfs, and no caller's valueOf,
// toString or getter runs.

import assert from 'node:assert/strict';
import { ArgCode } from '../../lib/args';
import * as sysfs from '../../lib/sysfs';
import { type Fixture, buildFixture, snapshotTree } from '../fixtures/sysfs-tree';
import { hostSpec } from '../fixtures/topologies';

/** Objects that count every time the library runs their code. */
function hostiles(ran: { count: number }) {
  const boom = (): never => {
    ran.count++;
    throw new Error('caller code ran');
  };
  const revoked = Proxy.revocable({}, {});
  revoked.revoke();
  // A Proxy's traps cannot be told from an object's own internals: the
  // library may trigger them, and must survive them (they are not counted).
  const trap = (): never => {
    throw new Error('trap');
  };
  const trapAll = new Proxy({}, { get: trap, getOwnPropertyDescriptor: trap, getPrototypeOf: trap, has: trap, ownKeys: trap });
  const getter = (key: string) => Object.defineProperty({}, key, { get: boom, enumerable: true });
  const sparse: unknown[] = [];
  sparse.length = 2 ** 32 - 1;
  return {
    valueOf: { valueOf: boom },
    toString: { toString: boom },
    toPrimitive: { [Symbol.toPrimitive]: boom },
    getterAddress: getter('address'),
    proxy: trapAll,
    revokedProxy: revoked.proxy,
    arrayWithGetter: Object.defineProperty(['0000:00:02.0'], 0, { get: boom }),
    hugeSparseArray: sparse,
    boxedString: new String('0000:00:02.0'),
  };
}

/** Values of every type but the right one, for any position. */
function wrongValues(ran: { count: number }): [string, unknown][] {
  return [
    ['undefined', undefined],
    ['null', null],
    ['a number', 42],
    ['a negative number', -1],
    ['NaN', NaN],
    ['a fraction', 1.5],
    ['2 ** 53', 2 ** 53],
    ['a bigint', 10n],
    ['an empty string', ''],
    ['a word', 'x'],
    ['a BDF with a newline', '0000:00:02.0\n'],
    ['a BDF with a leading space', ' 0000:00:02.0'],
    ['a NUL', '\0'],
    ['a boolean', true],
    ['a symbol', Symbol('s')],
    ['an empty array', []],
    ['an array of a BDF', ['0000:00:02.0']],
    ['an empty object', {}],
    ['a null-prototype object', Object.create(null)],
    ['a function', () => '0000:00:02.0'],
    ['a Date', new Date(0)],
    ...Object.entries(hostiles(ran)),
  ];
}

/**
 * Values in an options position: each must be refused, since an options
 * object read as empty would mean the real /sys.
 */
function wrongOptions(ran: { count: number }, f: Fixture): [string, unknown][] {
  const h = hostiles(ran);
  const base = { ...f.opts };
  const bad: [string, unknown][] = [
    ['null', null],
    ['a number', 42],
    ['a string', '/sys'],
    ['a bigint', 1n],
    ['a boolean', true],
    ['a symbol', Symbol('s')],
    ['an array', [f.opts]],
    ['a function', () => f.opts],
    ['a Proxy whose traps throw', h.proxy],
    ['a revoked Proxy', h.revokedProxy],
    ['a sysfsRoot getter', Object.defineProperty({ ...base }, 'sysfsRoot', { get: () => (ran.count++, f.sysfsRoot), enumerable: true })],
    ['an empty sysfsRoot', { ...base, sysfsRoot: '' }],
    ['a sysfsRoot with a NUL', { ...base, sysfsRoot: `${f.sysfsRoot}\0` }],
    ['credentials null', { ...base, credentials: null }],
    ['a negative uid', { ...base, credentials: { uid: -1, gids: [] } }],
    ['gids not an array', { ...base, credentials: { uid: 0, gids: h.valueOf } }],
    ['a hostile gid', { ...base, credentials: { uid: 0, gids: [h.toString] } }],
    ['force a string', { ...base, force: 'yes' }],
    ['writer a number', { ...base, writer: 5 }],
    ['mapBytes negative', { ...base, mapBytes: -1n }],
    ['mapBytes a string', { ...base, mapBytes: '1G' }],
  ];
  for (const key of ['sysfsRoot', 'devRoot', 'procRoot', 'bootRoot', 'runRoot']) {
    for (const [what, v] of Object.entries(h)) bad.push([`${key} ${what}`, { ...base, [key]: v }]);
    bad.push([`${key} a number`, { ...base, [key]: 42 }]);
  }
  return bad;
}

type Call = (...args: unknown[]) => unknown;

/** Every function lib/sysfs exports, with arguments that work (and change nothing) on the host fixture. */
function exported(f: Fixture): { name: string; fn: Call; args: unknown[]; options: number[] }[] {
  const o = f.opts;
  const group2 = sysfs.readIommuGroup(2, o);
  const dev = group2.devices[0]!;
  const list: [keyof typeof sysfs, unknown[], number[]][] = [
    ['readPciDevice', ['0000:00:02.0', o], [1]],
    ['listPciDevices', [o], [0]],
    ['normalizeAddress', ['0000:00:02.0'], []],
    ['parseVendorDevice', ['1234:11e8'], []],
    ['resolveDeviceSpec', ['1234:11e8', o], [1]],
    ['isBridge', ['0000:00:01.0', o], [1]],
    ['formatId', [dev], []],
    ['describeClass', [0x020000], []],
    ['listIommuGroups', [o], [0]],
    ['listIommuGroupIds', [o], [0]],
    ['readIommuGroup', [2, o], [1]],
    ['iommuGroupOf', ['0000:00:02.0', o], [1]],
    ['groupOfDevice', ['0000:00:02.0', o], [1]],
    ['explainNotViable', [group2], []],
    ['viabilityFix', [group2], []],
    ['assertViable', [group2], []],
    ['isVfioDriver', ['vfio-pci'], []],
    ['keepsGroupViable', [dev, 'dma-owner', false], []],
    ['viabilityRule', [o], [0]],
    ['deviceUses', ['0000:00:02.0', o], [1]],
    ['groupUsers', [2, o], [1]],
    ['bindToVfio', ['0000:00:02.0', o], [1]], // already on vfio-pci: a no-op
    ['unbindFromVfio', ['0000:00:04.1', o], [1]], // not on vfio: a no-op
    ['bindAllToVfio', [['0000:00:02.0'], o], [1]],
    ['bindGroupToVfio', ['0000:00:02.0', o], [1]],
    ['unbindGroupFromVfio', ['0000:00:05.0', o], [1]],
    ['readBindingRecord', ['0000:00:02.0', o], [1]],
    ['bindScoped', ['0000:00:02.0', o], [1]], // already on vfio-pci: nothing bound, nothing to give back
    ['withBinding', ['0000:00:02.0', () => 1, o], [2]],
    ['restoreStaleBindings', [o], [0]],
    ['stateFile', [o], [0]],
    ['runDoctor', [o], [0]],
    ['readMemlockLimit', [o], [0]],
    ['hasIpcLock', [o], [0]],
    ['detectInterfaces', [o], [0]],
    ['deviceInterfaces', ['0000:00:02.0', o], [1]],
    ['listDeviceInterfaces', [o], [0]],
    ['parseSize', ['1G'], []],
    ['formatSize', [1n << 30n], []],
  ];
  return list.map(([name, args, options]) => ({ name, fn: sysfs[name] as Call, args, options }));
}

function codeOf(e: unknown): unknown {
  return (e as { code?: unknown } | null)?.code;
}

describe('sysfs: arguments at the public boundary', () => {
  let f: Fixture;
  beforeEach(() => (f = buildFixture(hostSpec())));
  afterEach(() => f.remove());

  describe('a PCI address with whitespace or a control character', () => {
    const BAD = ['0000:00:04.1\n', '0000:00:04.1\r\n', ' 0000:00:04.1', '0000:00:04.1 ', '00:04.1\t', '0000:00:04.1\0', '0000:00:04.1\x7f'];

    it('is not an address to normalizeAddress, nor an id to parseVendorDevice', () => {
      for (const bad of BAD) assert.equal(sysfs.normalizeAddress(bad), null, JSON.stringify(bad));
      assert.equal(sysfs.parseVendorDevice('8086:10d3\n'), null);
      assert.equal(sysfs.normalizeAddress('0000:00:04.1'), '0000:00:04.1');
    });

    it('is refused by bind and unbind with ERR_INVALID_ARG_VALUE, before any sysfs write: the tree is unchanged', () => {
      const before = snapshotTree(f.root);
      for (const bad of BAD) {
        for (const call of [
          () => sysfs.bindToVfio(bad, f.opts),
          () => sysfs.unbindFromVfio(bad, f.opts),
          () => sysfs.bindGroupToVfio(bad, f.opts),
          () => sysfs.unbindGroupFromVfio(bad, f.opts),
        ]) {
          assert.throws(call, { code: ArgCode.VALUE, argument: 'address', message: /must be a PCI address without whitespace or control characters/ }, JSON.stringify(bad));
        }
        assert.throws(() => sysfs.bindAllToVfio(['0000:00:03.0', bad], f.opts), { code: ArgCode.VALUE, argument: 'addresses[1]' });
      }
      assert.deepEqual(f.kernel.writes, []);
      assert.equal(snapshotTree(f.root), before);
    });

    it('is refused by every reader that takes an address, naming it', () => {
      const bad = '0000:00:04.1\n';
      for (const call of [
        () => sysfs.readPciDevice(bad, f.opts),
        () => sysfs.iommuGroupOf(bad, f.opts),
        () => sysfs.groupOfDevice(bad, f.opts),
        () => sysfs.isBridge(bad, f.opts),
        () => sysfs.deviceUses(bad, f.opts),
        () => sysfs.readBindingRecord(bad, f.opts),
      ]) {
        assert.throws(call, { code: ArgCode.VALUE, argument: 'address' });
      }
      assert.throws(() => sysfs.resolveDeviceSpec('8086:10d3\n', f.opts), { code: ArgCode.VALUE, argument: 'spec', message: /without whitespace/ });
    });

    it('shows the newline in the message, escaped', () => {
      assert.throws(() => sysfs.readPciDevice('0000:00:04.1\n', f.opts), { message: /Received type string \("0000:00:04\.1\\n"\)$/ });
    });
  });

  describe('wrong types are ERR_INVALID_ARG_TYPE naming the argument, never a TypeError from inside', () => {
    it('parseSize of a non-string (it used to throw "text.trim is not a function")', () => {
      for (const v of [42, 42n, null, undefined, ['1G'], { toString: () => '1G' }]) {
        assert.throws(() => sysfs.parseSize(v as never), { name: 'VfioArgumentError', code: ArgCode.TYPE, argument: 'size' });
      }
    });

    it('parseSize refuses whitespace around a size but keeps one space inside', () => {
      for (const bad of ['1G\n', ' 1G', '1\tG', '1  G']) assert.throws(() => sysfs.parseSize(bad), { code: ArgCode.VALUE, argument: 'size' }, JSON.stringify(bad));
      assert.equal(sysfs.parseSize('16 MiB'), 16n << 20n);
    });

    it('a group id must be a number: a string is a type error, a negative or fractional one out of range', () => {
      assert.throws(() => sysfs.readIommuGroup('2' as never, f.opts), { code: ArgCode.TYPE, argument: 'id' });
      assert.throws(() => sysfs.readIommuGroup(-1, f.opts), { code: ArgCode.RANGE, argument: 'id' });
      assert.throws(() => sysfs.readIommuGroup(1.5, f.opts), { code: ArgCode.RANGE, argument: 'id' });
      assert.throws(() => sysfs.groupUsers('2' as never, f.opts), { code: ArgCode.TYPE, argument: 'group' });
    });

    it('an address must be a string', () => {
      assert.throws(() => sysfs.bindToVfio(0x0004 as never, f.opts), { code: ArgCode.TYPE, argument: 'address' });
      assert.throws(() => sysfs.bindAllToVfio('0000:00:03.0' as never, f.opts), { code: ArgCode.TYPE, argument: 'addresses' });
      assert.deepEqual(f.kernel.writes, []);
    });

    it('options are checked field by field, and a getter is refused without running', () => {
      let ran = 0;
      const opts = Object.defineProperty({ ...f.opts }, 'sysfsRoot', { get: () => (ran++, f.sysfsRoot), enumerable: true });
      assert.throws(() => sysfs.listIommuGroups(opts), { code: ArgCode.TYPE, argument: 'options.sysfsRoot' });
      assert.throws(() => sysfs.readPciDevice('0000:00:02.0', null as never), { code: ArgCode.TYPE, argument: 'options' });
      assert.throws(() => sysfs.runDoctor({ ...f.opts, mapBytes: '1G' as never }), { code: ArgCode.TYPE, argument: 'options.mapBytes' });
      assert.equal(ran, 0);
    });
  });

  describe('a hostile caller', () => {
    it('every exported function works with the sweep’s valid arguments', () => {
      const before = snapshotTree(f.root);
      for (const { name, fn, args } of exported(f)) assert.doesNotThrow(() => fn(...args), name);
      assert.deepEqual(f.kernel.writes, []);
      assert.equal(snapshotTree(f.root), before);
    });

    it('gets an error with a string code from every exported function, for any value in any position; nothing runs, nothing changes', () => {
      const ran = { count: 0 };
      const fns = exported(f);
      const before = snapshotTree(f.root);
      assert.equal(fns.length, Object.values(sysfs).filter((v) => typeof v === 'function').length, 'the sweep covers every exported function');
      let calls = 0;
      for (const { name, fn, args, options } of fns) {
        for (let i = 0; i < args.length; i++) {
          const values = options.includes(i) ? wrongOptions(ran, f) : wrongValues(ran);
          for (const [what, v] of values) {
            const call = [...args];
            call[i] = v;
            calls++;
            let threw = false;
            try {
              fn(...call);
            } catch (e) {
              threw = true;
              assert.equal(typeof codeOf(e), 'string', `${name} argument ${i} = ${what}: ${String((e as Error)?.message)}`);
              assert.match(codeOf(e) as string, /^(ERR_|E[A-Z]+$)/, `${name} argument ${i} = ${what}`);
            }
            // An options value that were read as "no options" would mean the real /sys.
            if (options.includes(i)) assert.ok(threw, `${name} options = ${what} must be refused`);
          }
        }
      }
      assert.ok(calls > 1000, `${calls} calls`);
      assert.equal(ran.count, 0, "a caller's valueOf, toString or getter ran");
      assert.deepEqual(f.kernel.writes, []);
      assert.equal(snapshotTree(f.root), before);
    });
  });
});
