// The prebuilt addons the package ships (scripts/prebuild.js): each needs
// nothing newer than glibc 2.28 and no libstdc++, and the x64 one really
// loads in Node on an older glibc than the build machine's.

import assert from 'node:assert/strict';
import { spawnSync } from 'node:child_process';
import * as fs from 'node:fs';
import path from 'node:path';
import { oldGlibc } from './old-glibc';

const ROOT = path.resolve(__dirname, '..', '..', '..');
const PREBUILD = path.join(ROOT, 'scripts', 'prebuild.js');
const prebuild = (arch: string) => path.join(ROOT, 'prebuilds', `linux-${arch}`, 'vfio.node');

describe('the prebuilt addons', () => {
  it('exist for x64, arm64 and ppc64 and need nothing newer than GLIBC_2.28, nor libstdc++ (prebuild.js --check)', () => {
    const files = ['x64', 'arm64', 'ppc64'].map(prebuild);
    for (const f of files) assert.ok(fs.existsSync(f), `${f} is missing: run node scripts/prebuild.js`);
    const r = spawnSync(process.execPath, [PREBUILD, '--check', ...files], { encoding: 'utf8' });
    console.log(r.stdout.replace(/^/gm, '      | '));
    assert.equal(r.status, 0, r.stderr);
    assert.equal(r.stdout.match(/needs GLIBC_2\.(1\d|2[0-8]) \(floor 2\.28\)/g)?.length, 3);
  });

  it('the check bites: a plain node-gyp build on this machine fails it (libstdc++ and newer symbols)', () => {
    const r = spawnSync(process.execPath, [PREBUILD, '--check', path.join(ROOT, 'build', 'Release', 'vfio.node')], { encoding: 'utf8' });
    assert.equal(r.status, 1);
    assert.match(r.stderr, /needs libstdc\+\+\.so\.6/);
  });

  it(`the ${process.arch} prebuild loads in Node on Debian bullseye's glibc 2.31; the local build does not`, function () {
    this.timeout(180_000);
    const { version, prefix } = oldGlibc(ROOT);
    assert.equal(version, '2.31');
    const load = (file: string) =>
      spawnSync(prefix[0]!, [...prefix.slice(1), process.execPath, '-e',
        `console.log(process.report.getReport().header.glibcVersionRuntime, Object.keys(require(${JSON.stringify(file)})).join())`], { encoding: 'utf8' });
    const ok = load(prebuild(process.arch));
    console.log(`      | glibc ${ok.stdout.trim()}`);
    assert.equal(ok.status, 0, ok.stderr);
    assert.match(ok.stdout, /^2\.31 .*openContainer.*allocDmaBuffer/);
    // The same Node, the same old glibc: the addon built against this machine's 2.36 is refused.
    const local = load(path.join(ROOT, 'build', 'Release', 'vfio.node'));
    assert.notEqual(local.status, 0);
    assert.match(local.stderr, /version `(GLIBC|GLIBCXX)_[\d.]+' not found/);
  });
});
