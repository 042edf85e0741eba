// Every native system error's `code` is a name wherever <errno.h> has one,
// from the addon's own table (native/errno_name.cc): glibc's
// strerrorname_np, used before, is 2.32+ only and musl has none.
import assert from 'node:assert/strict';
import { spawnSync } from 'node:child_process';
import fs from 'node:fs';
import { constants as osConstants } from 'node:os';
import os from 'node:os';
import path from 'node:path';
import { rethrow } from '../../lib/errors';

const root = path.resolve(__dirname, '../../..');

// Linux leaves these two numbers unused on the asm-generic architectures
// (x86, arm, riscv...); elsewhere (EDEADLOCK is 58 on powerpc) they may have a name.
const UNUSED = [41, 58];

describe('native: errno names without glibc extensions', () => {
  let names: Map<number, string>;

  before(function () {
    this.timeout(60_000);
    // Built as the addon's sources are, but strictly POSIX: no _GNU_SOURCE.
    const dir = fs.mkdtempSync(path.join(os.tmpdir(), 'vfio-errno-'));
    const exe = path.join(dir, 'errno-names');
    const cxx = process.env.CXX || 'c++';
    const build = spawnSync(
      cxx,
      ['-std=c++17', '-Wall', '-Wextra', '-Werror', '-U_GNU_SOURCE', '-D_POSIX_C_SOURCE=200809L', '-Inative', '-o', exe, 'native/errno_name.cc', 'test/native/errno_names_check.cc'],
      { cwd: root, encoding: 'utf8' },
    );
    assert.equal(build.status, 0, `${cxx} failed:\n${build.stderr}`);
    const run = spawnSync(exe, { encoding: 'utf8' });
    fs.rmSync(dir, { recursive: true });
    assert.equal(run.status, 0, run.stderr);
    names = new Map(
      run.stdout
        .trim()
        .split('\n')
        .map((l) => l.split(' '))
        .map(([n, name]) => [Number(n), name]),
    );
  });

  it('every errno 1..133 Linux defines has its macro name', () => {
    assert.equal(names.size, 133);
    const unnamed: number[] = [];
    for (const [n, name] of names) {
      if (name === '-') unnamed.push(n);
      else assert.match(name, /^E[A-Z0-9]+$/, `errno ${n}`);
    }
    assert.ok(unnamed.every((n) => UNUSED.includes(n)), `unnamed: ${unnamed.join(', ')}`);
    // The ones Node's own table (libuv) does not know, which the addon names alone.
    assert.equal(names.get(123), 'ENOMEDIUM');
    assert.equal(names.get(128), 'EKEYREVOKED');
    assert.equal(names.get(133), 'EHWPOISON');
    assert.equal(names.get(8), 'ENOEXEC');
  });

  it("agrees with Node's os.constants.errno, aliases resolved to the primary name", () => {
    const aliases: Record<string, string> = { EWOULDBLOCK: 'EAGAIN', EDEADLOCK: 'EDEADLK', ENOTSUP: 'EOPNOTSUPP' };
    let checked = 0;
    for (const [name, n] of Object.entries(osConstants.errno)) {
      if (n > 133) continue;
      const primary = n === osConstants.errno[aliases[name] as keyof typeof osConstants.errno] ? aliases[name] : name;
      assert.equal(names.get(n), primary, `${name} = ${n}`);
      checked++;
    }
    assert.ok(checked > 70, `only ${checked} names compared`);
  });

  it('lib/ keeps the native code even where Node has no name for the errno', () => {
    const native = Object.assign(new Error('ENOMEDIUM: No medium found, open'), { code: 'ENOMEDIUM', errno: -123, syscall: 'open' });
    assert.throws(() => rethrow(native, 'opening /dev/sr0'), { name: 'VfioSystemError', code: 'ENOMEDIUM', errno: -123, syscall: 'open' });
  });
});
