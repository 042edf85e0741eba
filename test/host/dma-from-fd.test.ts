// DmaBuffer.fromFd: memory the library hands out cannot shrink under it.
// A file that can still be truncated is refused unless the caller opts in,
// and the arguments follow lib/args before anything is opened.
import assert from 'node:assert/strict';
import { spawn, spawnSync } from 'node:child_process';
import { once } from 'node:events';
import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { inspect } from 'node:util';
import { DmaBuffer, VfioError } from '../../lib';
import { native } from '../../lib/native';

const page = native().pageSize;
const lib = path.resolve(__dirname, '../../lib');
const openFds = (): number => fs.readdirSync('/proc/self/fd').length;
const mappingsOf = (needle: string): number =>
  fs.readFileSync('/proc/self/maps', 'utf8').split('\n').filter((l) => l.includes(needle)).length;

// Node cannot make a memfd of its own: python3 (which node-gyp needs anyway)
// makes them, and we open each through /proc before it exits. Seals belong
// to the file, so the reopened fds carry them.
type MemfdKind = 'sealed' | 'unsealed' | 'no-sealing';
const MEMFD_PY = `
import fcntl, os, sys
for spec in sys.argv[1:]:
    name, size, kind = spec.split(':')
    fd = os.memfd_create(name, 0 if kind == 'no-sealing' else os.MFD_ALLOW_SEALING)
    os.ftruncate(fd, int(size))
    if kind == 'sealed':
        fcntl.fcntl(fd, fcntl.F_ADD_SEALS, fcntl.F_SEAL_SHRINK)
    sys.stdout.write(f'{name} /proc/{os.getpid()}/fd/{fd}\\n')
sys.stdout.write('done\\n')
sys.stdout.flush()
sys.stdin.read()
`;

/** memfds named `name`, of `size` bytes, sealed or not: name -> our fd. */
async function memfds(specs: [name: string, size: number, kind: MemfdKind][]): Promise<Map<string, number>> {
  const py = spawn('python3', ['-c', MEMFD_PY, ...specs.map(([n, size, kind]) => `${n}:${size}:${kind}`)], { stdio: ['pipe', 'pipe', 'inherit'] });
  const exited = once(py, 'exit') as Promise<[number | null]>;
  const fds = new Map<string, number>();
  try {
    let out = '';
    for await (const chunk of py.stdout) {
      out += String(chunk);
      if (out.endsWith('done\n')) break;
    }
    for (const line of out.trim().split('\n').slice(0, -1)) {
      const [name, proc] = line.split(' ');
      fds.set(name, fs.openSync(proc, 'r+'));
    }
    return fds;
  } finally {
    py.stdin.end();
    const [status] = await exited;
    assert.equal(status, 0, 'python3 could not make the memfds');
  }
}

function tempFile(dir: string, size: number): { fd: number; file: string } {
  const file = path.join(fs.mkdtempSync(path.join(dir, 'vfio-fromfd-')), 'ram');
  fs.writeFileSync(file, Buffer.alloc(size, 0x11));
  return { fd: fs.openSync(file, 'r+'), file };
}

function unsealedRefusal(fd: number, fix: RegExp): (e: unknown) => boolean {
  return (e) => {
    assert.ok(e instanceof VfioError);
    assert.equal(e.code, 'ERR_VFIO_UNSEALED');
    assert.match(e.message, new RegExp(`^fd ${fd} `));
    assert.match(e.message, fix);
    assert.match(e.message, /\{ allowShrink: true \}.*SIGBUS/);
    return true;
  };
}

let memfd: Map<string, number>;

describe('DmaBuffer.fromFd', () => {
  before(async function () {
    this.timeout(60_000);
    memfd = await memfds([
      ['vfio-fromfd-sealed', 2 * page, 'sealed'],
      ['vfio-fromfd-unsealed', 2 * page, 'unsealed'],
      ['vfio-fromfd-nosealing', page, 'no-sealing'],
      ['vfio-fromfd-optin', page, 'unsealed'],
      ['vfio-fromfd-args', page, 'sealed'],
      ['vfio-fromfd-child-sealed', 2 * page, 'sealed'],
      ['vfio-fromfd-child-optin', 2 * page, 'unsealed'],
    ]);
  });
  after(() => {
    for (const fd of memfd.values()) fs.closeSync(fd);
  });

  describe('only memory that cannot shrink', () => {
    const fds: number[] = [];
    const dirs: string[] = [];
    afterEach(() => {
      for (const fd of fds.splice(0)) fs.closeSync(fd);
      for (const dir of dirs.splice(0)) fs.rmSync(dir, { recursive: true });
    });
    const own = (fd: number): number => (fds.push(fd), fd);
    const file = (dir: string, size: number): { fd: number; file: string } => {
      const f = tempFile(dir, size);
      fds.push(f.fd);
      dirs.push(path.dirname(f.file));
      return f;
    };

    it('a memfd sealed with F_SEAL_SHRINK maps, and its bytes are the file', () => {
      const fd = memfd.get('vfio-fromfd-sealed')!;
      fs.writeSync(fd, Buffer.from([1, 2, 3]), 0, 3, page + 5);
      using b = DmaBuffer.fromFd(fd, { offset: BigInt(page), size: BigInt(page) });
      assert.equal(b.size, page);
      assert.deepEqual([...b.bytes(5, 3)], [1, 2, 3]);
      b.bytes()[0] = 9;
      const back = Buffer.alloc(1);
      fs.readSync(fd, back, 0, 1, page);
      assert.equal(back[0], 9);
    });

    it("the library's own memfd (sealed at creation) maps through fromFd", () => {
      using m = DmaBuffer.memfd(2 * page, { name: 'vfio-fromfd-own' });
      using b = DmaBuffer.fromFd(m.fd, { size: 2 * page });
      m.bytes()[page] = 0x5a;
      assert.equal(b.bytes()[page], 0x5a);
    });

    it('an unsealed memfd is refused with ERR_VFIO_UNSEALED naming the fd and the seal to add; nothing leaks', () => {
      const fd = memfd.get('vfio-fromfd-unsealed')!;
      const before = openFds();
      assert.throws(() => DmaBuffer.fromFd(fd, { size: 2 * page }), unsealedRefusal(fd, /seal it first with fcntl\(fd, F_ADD_SEALS, F_SEAL_SHRINK\)/));
      assert.equal(openFds(), before);
      assert.equal(mappingsOf('memfd:vfio-fromfd-unsealed'), 0);
    });

    it('a memfd made without MFD_ALLOW_SEALING is refused: it can never be sealed', () => {
      const fd = memfd.get('vfio-fromfd-nosealing')!;
      const before = openFds();
      assert.throws(() => DmaBuffer.fromFd(fd, { size: page }), unsealedRefusal(fd, /F_SEAL_SEAL; a memfd needs MFD_ALLOW_SEALING/));
      assert.equal(openFds(), before);
      assert.equal(mappingsOf('memfd:vfio-fromfd-nosealing'), 0);
    });

    it('a regular file in the temp directory is refused, and so is one on tmpfs (/dev/shm)', () => {
      for (const dir of [os.tmpdir(), '/dev/shm']) {
        const f = file(dir, 2 * page);
        const before = openFds();
        assert.throws(() => DmaBuffer.fromFd(f.fd, { size: 2 * page }), unsealedRefusal(f.fd, /F_ADD_SEALS, F_SEAL_SHRINK/), dir);
        assert.equal(openFds(), before, dir);
        assert.equal(mappingsOf(f.file), 0, dir);
      }
    });

    it('with allowShrink: true an unsealed file maps, and its bytes are the file', () => {
      const f = file(os.tmpdir(), 2 * page);
      using b = DmaBuffer.fromFd(f.fd, { size: 2 * page, allowShrink: true });
      assert.equal(b.bytes()[page + 1], 0x11);
      assert.equal(mappingsOf(f.file), 1);
      const fd = memfd.get('vfio-fromfd-optin')!;
      using m = DmaBuffer.fromFd(fd, { size: page, allowShrink: true });
      assert.equal(m.size, page);
    });

    it('a device file has no length to cut: /dev/zero maps without the opt-in', () => {
      const fd = own(fs.openSync('/dev/zero', 'r+'));
      using b = DmaBuffer.fromFd(fd, { size: page });
      assert.equal(b.bytes()[0], 0);
    });
  });

  describe('arguments are checked first, without coercion', () => {
    let fd: number;
    before(() => {
      fd = memfd.get('vfio-fromfd-args')!;
    });

    it('a wrong fd, options or field is refused with the lib/args code and nothing is opened or mapped', () => {
      let ran = false;
      const hostile = {
        valueOf(): number {
          ran = true;
          return page;
        },
      };
      const getter = Object.defineProperty({}, 'size', {
        enumerable: true,
        get(): number {
          ran = true;
          return page;
        },
      });
      const cases: [unknown, unknown, string, string][] = [
        ['3', { size: page }, 'ERR_INVALID_ARG_TYPE', 'fd'],
        [3.5, { size: page }, 'ERR_OUT_OF_RANGE', 'fd'],
        [-1, { size: page }, 'ERR_OUT_OF_RANGE', 'fd'],
        [2 ** 31, { size: page }, 'ERR_OUT_OF_RANGE', 'fd'],
        [hostile, { size: page }, 'ERR_INVALID_ARG_TYPE', 'fd'],
        [null, { size: page }, 'ERR_INVALID_ARG_TYPE', 'fd'],
        [fd, null, 'ERR_INVALID_ARG_TYPE', 'options'],
        [fd, 'size', 'ERR_INVALID_ARG_TYPE', 'options'],
        [fd, [page], 'ERR_INVALID_ARG_TYPE', 'options'],
        [fd, undefined, 'ERR_INVALID_ARG_TYPE', 'options.size'],
        [fd, {}, 'ERR_INVALID_ARG_TYPE', 'options.size'],
        [fd, { size: hostile }, 'ERR_INVALID_ARG_TYPE', 'options.size'],
        [fd, getter, 'ERR_INVALID_ARG_TYPE', 'options.size'],
        [fd, { size: String(page) }, 'ERR_INVALID_ARG_TYPE', 'options.size'],
        [fd, { size: -page }, 'ERR_OUT_OF_RANGE', 'options.size'],
        [fd, { size: -1n }, 'ERR_OUT_OF_RANGE', 'options.size'],
        [fd, { size: page, offset: hostile }, 'ERR_INVALID_ARG_TYPE', 'options.offset'],
        [fd, { size: page, offset: 0.5 }, 'ERR_OUT_OF_RANGE', 'options.offset'],
        [fd, { size: page, allowShrink: 'yes' }, 'ERR_INVALID_ARG_TYPE', 'options.allowShrink'],
        [fd, { size: page, allowShrink: 1 }, 'ERR_INVALID_ARG_TYPE', 'options.allowShrink'],
      ];
      const before = openFds();
      for (const [f, options, code, argument] of cases) {
        assert.throws(
          () => DmaBuffer.fromFd(f as number, options as { size: number }),
          (e: NodeJS.ErrnoException & { argument?: string }) => e.code === code && e.argument === argument && e.message.includes(`"${argument}"`),
          `${inspect(f)} ${inspect(options)}`,
        );
      }
      assert.equal(ran, false, 'a valueOf or getter of the caller ran');
      assert.equal(openFds(), before);
      assert.equal(mappingsOf('memfd:vfio-fromfd-args'), 0);
    });

    it('a size of 0 or a misaligned range is a rule error, before the kernel is asked', () => {
      const before = openFds();
      assert.throws(() => DmaBuffer.fromFd(fd, { size: 0 }), { code: 'ERR_VFIO_BAD_RANGE' });
      assert.throws(() => DmaBuffer.fromFd(fd, { size: page, offset: 1 }), { code: 'ERR_VFIO_MISALIGNED' });
      assert.throws(() => DmaBuffer.fromFd(fd, { size: page + 1 }), { code: 'ERR_VFIO_MISALIGNED' });
      assert.equal(openFds(), before);
    });
  });

  describe('truncating the file under a live buffer (child processes)', () => {
    // The child gets the memfd as its fd 3, maps it, truncates it to 0 and
    // then reads the buffer's last byte. No core file: a SIGBUS would dump one.
    function truncateUnder(fd: number, options: string): ReturnType<typeof spawnSync> {
      const script = `
        const fs = require('node:fs');
        const { DmaBuffer } = require(${JSON.stringify(lib)});
        const b = DmaBuffer.fromFd(3, ${options});
        b.bytes()[b.size - 1] = 42;
        try { fs.ftruncateSync(3, 0); console.log('truncated'); } catch (e) { console.log(e.code); }
        console.log(b.bytes()[b.size - 1]);
      `;
      return spawnSync('/bin/sh', ['-c', 'ulimit -c 0; exec "$0" -e "$1"', process.execPath, script], {
        stdio: ['ignore', 'pipe', 'pipe', fd],
        encoding: 'utf8',
        timeout: 15000,
      });
    }

    it('a sealed memfd: the kernel refuses the truncate (EPERM) and the bytes stay readable', () => {
      const fd = memfd.get('vfio-fromfd-child-sealed')!;
      const r = truncateUnder(fd, `{ size: ${2 * page} }`);
      assert.equal(r.signal, null, String(r.stderr));
      assert.equal(r.status, 0, String(r.stderr));
      assert.equal(r.stdout, 'EPERM\n42\n');
      assert.equal(fs.fstatSync(fd).size, 2 * page);
    });

    it('with allowShrink the truncate goes through and the next touch kills the process with SIGBUS, as documented', () => {
      const fd = memfd.get('vfio-fromfd-child-optin')!;
      const r = truncateUnder(fd, `{ size: ${2 * page}, allowShrink: true }`);
      assert.equal(r.signal, 'SIGBUS', `status ${r.status}: ${String(r.stdout)} ${String(r.stderr)}`);
      assert.equal(r.stdout, 'truncated\n');
      assert.equal(fs.fstatSync(fd).size, 0);
    });
  });
});
