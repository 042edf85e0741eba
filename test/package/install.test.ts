// The package as a user gets it: `npm pack`, what the tarball holds, then an
// `npm install` of it into a fresh project with production dependencies only
// and no compiler on PATH (the prebuild must do), a strict TypeScript
// consumer compiled against the shipped types, and that consumer run.

import assert from 'node:assert/strict';
import { spawnSync } from 'node:child_process';
import * as fs from 'node:fs';
import * as os from 'node:os';
import path from 'node:path';

const ROOT = path.resolve(__dirname, '..', '..', '..');
const TSC = path.join(ROOT, 'node_modules', 'typescript', 'bin', 'tsc');

// Everything the tarball may hold; anything else (tests, caches, bench results, build output) fails.
const ALLOWED = [
  /^package\.json$/, /^README\.md$/, /^LICENSE$/, /^binding\.gyp$/, /^tsconfig\.json$/,
  /^native\/[\w.]+\.(cc|h)$/,
  /^native\/uapi\/(linux\/[\w]+\.h|README\.md|Linux-syscall-note)$/,
  /^prebuilds\/linux-(x64|arm64|ppc64)\/vfio\.node$/,
  /^lib\/[\w/.-]+\.(ts|md)$/,
  /^dist\/lib\/[\w/.-]+\.(js|d\.ts|js\.map)$/,
  /^scripts\/(install|uapi-include)\.js$/,
  /^scripts\/guest(-ppc64|-arm64|-cross)?\/(README\.md|run|setup|guest|arch\.sh|(lib|guest)\/[\w.-]+)$/,
];

// Compilers and build tools hidden from the install: PATH gets a folder with
// links to every other program of the system's PATH.
const COMPILER = /^(cc|c\+\+|gcc|g\+\+|cpp|make|gmake|ld|as|clang.*|[\w-]+-(gcc|g\+\+|cpp|ld|as)(-\d+)?|(gcc|g\+\+|cpp)-\d+|python[\d.]*)$/;

function pathWithoutCompilers(dir: string): string {
  fs.mkdirSync(dir);
  for (const from of (process.env.PATH ?? '').split(':').filter((d) => fs.existsSync(d))) {
    for (const name of fs.readdirSync(from)) {
      if (COMPILER.test(name) || fs.existsSync(path.join(dir, name))) continue;
      fs.symlinkSync(path.join(from, name), path.join(dir, name));
    }
  }
  return dir;
}

const CONSUMER = `
import { DmaBuffer, Kvm, VfioError, VfioSystemError, RuleCode, ArgCode, hex } from 'vfio';
import type { Iova, DmaBufferOptions } from 'vfio';

function codeOf(f: () => unknown): string {
  try {
    f();
    return 'no error';
  } catch (e) {
    return e instanceof VfioError || e instanceof VfioSystemError ? e.code : (e as { code?: string }).code ?? String(e);
  }
}

const options: DmaBufferOptions = {};
const buffer = DmaBuffer.allocate(8192, options);
const bytes: Uint8Array = buffer.bytes(0, 16);
bytes.set([1, 2, 3]);
const iova: Iova = 0x100000n;
const out = {
  addon: Object.keys(require.cache).filter((k) => k.endsWith('.node')).map((k) => k.slice(k.indexOf('node_modules'))),
  buffer: [buffer.size, buffer.bytes(0, 3).join(',')].join(' '),
  iova: hex(iova),
  kvmMissing: codeOf(() => Kvm.open('/nonexistent/kvm')),
  kvmNotKvm: codeOf(() => Kvm.open('/dev/null')),
  kvmBadArg: codeOf(() => Kvm.open(42 as unknown as string)),
  badSize: codeOf(() => DmaBuffer.allocate(-1)),
  closed: (buffer.close(), codeOf(() => buffer.bytes(0, 1))),
  codes: [RuleCode.CLOSED, ArgCode.TYPE].join(' '),
};
console.log(JSON.stringify(out));
`;

describe('the package as a user installs it', () => {
  let dir: string;
  let files: string[];
  let tarball: string;
  let project: string;
  before(function () {
    this.timeout(120_000);
    dir = fs.mkdtempSync(path.join(os.tmpdir(), 'vfio-package-'));
    // --ignore-scripts: the suite built the prebuilds and dist/ already (scripts/test.js).
    const pack = spawnSync('npm', ['pack', '--ignore-scripts', '--json', '--pack-destination', dir], { cwd: ROOT, encoding: 'utf8' });
    assert.equal(pack.status, 0, pack.stderr);
    const info = (JSON.parse(pack.stdout) as { filename: string; size: number; files: { path: string }[] }[])[0]!;
    files = info.files.map((f) => f.path);
    tarball = path.join(dir, info.filename);
    console.log(`      | ${info.filename}: ${files.length} files, ${Math.round(info.size / 1024)} KiB packed`);
    project = path.join(dir, 'my-app');
    fs.mkdirSync(project);
  });
  after(() => fs.rmSync(dir, { recursive: true, force: true }));

  it('the tarball holds the allow-listed files only, with the three prebuilds, the types and the install script', () => {
    const stray = files.filter((f) => !ALLOWED.some((re) => re.test(f)));
    assert.deepEqual(stray, []);
    for (const f of ['prebuilds/linux-x64/vfio.node', 'prebuilds/linux-arm64/vfio.node', 'prebuilds/linux-ppc64/vfio.node', 'dist/lib/index.d.ts', 'dist/lib/testing/index.d.ts', 'scripts/install.js', 'binding.gyp']) {
      assert.ok(files.includes(f), `${f} is in the tarball`);
    }
    assert.ok(!files.some((f) => /(^|\/)(test|\.cache|bench|out|build)\//.test(f)), 'no tests, caches, bench results or build output');
  });

  it('installs with production dependencies only and no compiler on PATH: the prebuild loads, nothing is built', function () {
    this.timeout(300_000);
    const bin = pathWithoutCompilers(path.join(dir, 'bin'));
    const env = { ...process.env, PATH: bin, npm_config_update_notifier: 'false' };
    const which = spawnSync('sh', ['-c', 'command -v g++ || command -v gcc || command -v cc || command -v make'], { env, encoding: 'utf8' });
    assert.notEqual(which.status, 0, `a compiler is still on PATH: ${which.stdout}`);
    fs.writeFileSync(path.join(project, 'package.json'), JSON.stringify({ name: 'my-app', private: true }));
    const r = spawnSync('npm', ['install', '--omit=dev', '--prefer-offline', '--no-audit', '--no-fund', '--foreground-scripts', tarball], { cwd: project, env, encoding: 'utf8' });
    console.log(`${r.stdout}${r.stderr}`.trim().replace(/^/gm, '      | '));
    assert.equal(r.status, 0, r.stderr);
    assert.match(r.stdout, /vfio: the native addon loads \(linux-x64\); nothing to build/);
    assert.ok(!fs.existsSync(path.join(project, 'node_modules', 'vfio', 'build')), 'no build/ folder: nothing was compiled');
    assert.ok(!fs.existsSync(path.join(project, 'node_modules', 'typescript')), 'no dev dependency installed');
  });

  it('the installed package (no compiler on PATH) runs the edu demo inside vfio guest: DMA through the IOMMU, MSIs', function () {
    this.timeout(600_000);
    const pkg = path.join(project, 'node_modules', 'vfio');
    assert.ok(fs.existsSync(pkg), 'installed by the test before');
    // The example as a user copies it: the library by its package name.
    const demo = path.join(project, 'demo');
    fs.mkdirSync(demo, { recursive: true });
    for (const f of ['demo.js', 'edu.js']) {
      const js = fs.readFileSync(path.join(ROOT, 'dist', 'examples', 'edu', f), 'utf8').replace(/require\("\.\.\/\.\.\/lib"\)/g, 'require("vfio")');
      fs.writeFileSync(path.join(demo, f), js);
    }
    // The guest's kernel and initramfs are the checkout's (fetched once), not the tarball's.
    if (!fs.existsSync(path.join(pkg, '.cache'))) fs.symlinkSync(path.join(ROOT, '.cache'), path.join(pkg, '.cache'));
    const env = { ...process.env, PATH: path.join(dir, 'bin') };
    const cli = path.join(pkg, 'dist', 'lib', 'cli', 'main.js');
    const r = spawnSync(process.execPath, [cli, 'guest', '--device', 'edu', '--', 'sh', '-c', 'exec node demo/demo.js "$VFIO_GUEST_DEVICE_EDU0"'], { cwd: project, env, encoding: 'utf8' });
    console.log(`      $ vfio guest --device edu -- node demo/demo.js   (exit ${r.status})`);
    console.log(r.stdout.trim().replace(/^/gm, '      | '));
    assert.equal(r.status, 0, r.stderr);
    assert.match(r.stdout, /bytes match|all match/i);
  });

  it('a strict TypeScript consumer compiles against the shipped types and runs: DmaBuffer, Kvm and error codes', function () {
    this.timeout(120_000);
    fs.writeFileSync(path.join(project, 'main.ts'), CONSUMER);
    fs.writeFileSync(path.join(project, 'tsconfig.json'), JSON.stringify({
      compilerOptions: { target: 'ES2022', module: 'node16', strict: true, noEmitOnError: true, outDir: 'out', types: ['node'], typeRoots: [path.join(ROOT, 'node_modules', '@types')] },
      files: ['main.ts'],
    }));
    const tsc = spawnSync(process.execPath, [TSC, '-p', project], { cwd: project, encoding: 'utf8' });
    assert.equal(tsc.status, 0, tsc.stdout);
    const run = spawnSync(process.execPath, ['out/main.js'], { cwd: project, encoding: 'utf8' });
    assert.equal(run.status, 0, run.stderr);
    console.log(`      | ${run.stdout.trim()}`);
    assert.deepEqual(JSON.parse(run.stdout), {
      addon: ['node_modules/vfio/prebuilds/linux-x64/vfio.node'],
      buffer: '8192 1,2,3',
      iova: '0x100000',
      kvmMissing: 'ENOENT',
      kvmNotKvm: 'ENOTTY',
      kvmBadArg: 'ERR_INVALID_ARG_TYPE',
      badSize: 'ERR_OUT_OF_RANGE',
      closed: 'ERR_VFIO_CLOSED',
      codes: 'ERR_VFIO_CLOSED ERR_INVALID_ARG_TYPE',
    });
  });

  it('works without its install script too (npm install --ignore-scripts, as a policy that blocks scripts has it)', function () {
    this.timeout(120_000);
    const bare = path.join(dir, 'no-scripts');
    fs.mkdirSync(bare);
    fs.writeFileSync(path.join(bare, 'package.json'), JSON.stringify({ name: 'no-scripts', private: true }));
    const i = spawnSync('npm', ['install', '--omit=dev', '--ignore-scripts', '--prefer-offline', '--no-audit', '--no-fund', tarball], { cwd: bare, encoding: 'utf8' });
    assert.equal(i.status, 0, i.stderr);
    const r = spawnSync(process.execPath, ['-e', "const b = require('vfio').DmaBuffer.allocate(4096); console.log(b.size); b.close()"], { cwd: bare, encoding: 'utf8' });
    assert.equal(r.status, 0, r.stderr);
    assert.equal(r.stdout.trim(), '4096');
  });

  it('with no addon to load, the first kernel call throws ERR_VFIO_NO_ADDON naming the files tried and what to install', () => {
    const pkg = path.join(dir, 'no-scripts', 'node_modules', 'vfio');
    fs.rmSync(path.join(pkg, 'prebuilds'), { recursive: true });
    const r = spawnSync(process.execPath, ['-e', "try { require('vfio').DmaBuffer.allocate(4096) } catch (e) { console.log(e.code + ': ' + e.message) }"], { cwd: path.join(dir, 'no-scripts'), encoding: 'utf8' });
    assert.equal(r.status, 0, r.stderr);
    assert.equal(
      r.stdout.trim(),
      `ERR_VFIO_NO_ADDON: the vfio native addon did not load (neither ${path.join(pkg, 'build', 'Release', 'vfio.node')} nor ${path.join(pkg, 'prebuilds', `linux-${process.arch}`, 'vfio.node')} exists); ` +
        `this copy of the package lacks its linux-${process.arch} prebuild: reinstall it, or install make, g++ and python3, then \`npm rebuild vfio\` builds it from source`,
    );
  });

  it('internals stay out of the typings: the addon loader and the native surface are not exported', () => {
    const index = fs.readFileSync(path.join(project, 'node_modules', 'vfio', 'dist', 'lib', 'index.d.ts'), 'utf8');
    assert.doesNotMatch(index, /loadAddon|setNativeBackend|NativeBinding/);
  });
});
