#!/usr/bin/env node
// The one place that builds the addon for the published package, for every
// architecture: prebuilds/linux-<arch>/vfio.node, loaded by lib/addon.ts
// through `bindings` when no local build exists. Node-API is ABI-stable, so
// one binary per architecture serves every Node version.
//
//   node scripts/prebuild.js                     x64, arm64 and ppc64 (little-endian)
//   node scripts/prebuild.js --arch arm64 ...    only these
//   node scripts/prebuild.js --force             rebuild even when up to date
//   node scripts/prebuild.js --out DIR           write DIR/linux-<arch>/vfio.node
//   node scripts/prebuild.js --check FILE...     only check these binaries' glibc floor
//
// The sources, defines and C++ flags are binding.gyp's; arm64 and ppc64le
// are cross-compiled with Debian's g++-aarch64-linux-gnu and
// g++-powerpc64le-linux-gnu (their sysroots hold the right uapi headers:
// ioctl numbers differ on powerpc). libstdc++ and libgcc are linked
// statically and every binary is checked to need nothing newer than
// glibc 2.28 (GLIBC_FLOOR): the build fails otherwise.
'use strict';

const { spawn, spawnSync } = require('node:child_process');
const fs = require('node:fs');
const os = require('node:os');
const path = require('node:path');

const root = path.resolve(__dirname, '..');
const GLIBC_FLOOR = '2.28';
// libgcc_s.so.1 (the unwinder) of GCC 8, RHEL 8's.
const LIBGCC_FLOOR = '7.0';

// process.arch → the Debian cross toolchain's triple and the ELF machine readelf names.
const ARCHES = {
  x64: { triple: 'x86_64-linux-gnu', machine: /X86-64/, endian: /little endian/ },
  arm64: { triple: 'aarch64-linux-gnu', machine: /AArch64/, endian: /little endian/ },
  ppc64: { triple: 'powerpc64le-linux-gnu', machine: /PowerPC64/, endian: /little endian/ },
};

function fail(message) {
  console.error(`prebuild: ${message}`);
  process.exit(1);
}

function parseArgs(argv) {
  const opts = { arches: [], force: false, out: path.join(root, 'prebuilds'), check: null };
  for (let i = 0; i < argv.length; i++) {
    const a = argv[i];
    if (a === '--arch') {
      const arch = argv[++i];
      if (!ARCHES[arch]) fail(`--arch ${arch}: one of ${Object.keys(ARCHES).join(', ')}`);
      opts.arches.push(arch);
    } else if (a === '--force') opts.force = true;
    else if (a === '--out') opts.out = path.resolve(argv[++i] ?? fail('--out needs a folder'));
    else if (a === '--check') opts.check = argv.slice(i + 1);
    else fail(`unknown argument ${a}; usage: node scripts/prebuild.js [--arch x64|arm64|ppc64]... [--force] [--out DIR] [--check FILE...]`);
    if (opts.check) break;
  }
  if (opts.arches.length === 0) opts.arches = Object.keys(ARCHES);
  return opts;
}

function gypTarget() {
  // binding.gyp is a Python literal that is also valid JavaScript.
  const text = fs.readFileSync(path.join(root, 'binding.gyp'), 'utf8');
  return new Function(`return (${text});`)().targets[0];
}

function nodeInclude() {
  const candidates = [
    path.join(path.dirname(path.dirname(process.execPath)), 'include', 'node'),
    '/usr/include/node',
    path.join(os.homedir(), '.cache', 'node-gyp', process.versions.node, 'include', 'node'),
  ];
  const found = candidates.find((d) => fs.existsSync(path.join(d, 'node_api.h')));
  if (found) return found;
  // node-gyp fetches Node's headers into its cache (the fallback build does the same).
  const gyp = spawnSync(process.execPath, [require.resolve('node-gyp/bin/node-gyp.js'), 'install'], { stdio: 'inherit' });
  if (gyp.status === 0 && fs.existsSync(path.join(candidates[2], 'node_api.h'))) return candidates[2];
  return fail(`no node_api.h in ${candidates.join(', ')}: install Node's headers (node-gyp install)`);
}

function compilerFor(arch) {
  const native = arch === process.arch;
  const cxx = native ? 'g++' : `${ARCHES[arch].triple}-g++`;
  if (spawnSync(cxx, ['--version'], { stdio: 'ignore' }).status === 0) return cxx;
  const pkg = native ? 'g++' : `g++-${ARCHES[arch].triple}`;
  if (process.getuid?.() === 0 && spawnSync('sh', ['-c', 'command -v apt-get'], { stdio: 'ignore' }).status === 0) {
    console.log(`prebuild: installing ${pkg} (apt-get)`);
    const ok =
      spawnSync('apt-get', ['update', '-qq'], { stdio: 'inherit' }).status === 0 &&
      spawnSync('apt-get', ['install', '-y', '-qq', '--no-install-recommends', pkg], { stdio: 'inherit', env: { ...process.env, DEBIAN_FRONTEND: 'noninteractive' } }).status === 0;
    if (ok) return cxx;
  }
  return fail(`${cxx} is missing: install ${pkg} (as root: apt-get install ${pkg}) to build the ${arch} prebuild`);
}

function newestInput() {
  const files = [path.join(root, 'binding.gyp'), __filename, ...fs.readdirSync(path.join(root, 'native')).map((f) => path.join(root, 'native', f))];
  return Math.max(...files.map((f) => fs.statSync(f).mtimeMs));
}

function run(cmd, args) {
  return new Promise((resolve, reject) => {
    const child = spawn(cmd, args, { cwd: root, stdio: ['ignore', 'inherit', 'inherit'] });
    child.on('error', reject);
    child.on('close', (status) => (status === 0 ? resolve() : reject(new Error(`${cmd} ${args.at(-1)} exited with ${status}`))));
  });
}

async function build(arch, out) {
  const cxx = compilerFor(arch);
  const target = gypTarget();
  const napi = require('node-addon-api').include_dir;
  // node-gyp's own defaults (common.gypi) first, then binding.gyp's.
  const flags = ['-fPIC', '-pthread', '-O2', '-fvisibility=hidden', '-D_LARGEFILE_SOURCE', '-D_FILE_OFFSET_BITS=64', ...target.defines.map((d) => `-D${d}`), ...target.cflags_cc];
  const includes = [`-I${nodeInclude()}`, `-I${path.resolve(root, napi)}`];
  // The vendored uapi headers where this compiler's lack iommufd (binding.gyp asks the same script).
  const uapi = spawnSync(process.execPath, [path.join(root, 'scripts', 'uapi-include.js')], { env: { ...process.env, CXX: cxx }, encoding: 'utf8' }).stdout.trim();
  if (uapi) includes.push(`-I${path.resolve(root, uapi)}`);
  const objdir = fs.mkdtempSync(path.join(os.tmpdir(), `vfio-prebuild-${arch}-`));
  try {
    // Two at a time: CI machines and the test guests' hosts have few cores.
    const queue = [...target.sources];
    const worker = async () => {
      for (let src; (src = queue.shift()); ) {
        await run(cxx, ['-c', ...flags, ...includes, '-o', path.join(objdir, `${path.basename(src, '.cc')}.o`), src]);
      }
    };
    await Promise.all([worker(), worker()]);
    fs.mkdirSync(path.dirname(out), { recursive: true });
    const objects = target.sources.map((s) => path.join(objdir, `${path.basename(s, '.cc')}.o`));
    // Static libstdc++: the target's may be older than ours (RHEL 8 has GCC
    // 8's); --exclude-libs keeps its symbols out of the addon's exports.
    // libgcc_s stays shared: its static unwinder needs glibc 2.35.
    await run(cxx, ['-shared', '-pthread', '-s', '-static-libstdc++', '-Wl,--exclude-libs,ALL', '-o', `${out}.tmp`, ...objects]);
    fs.renameSync(`${out}.tmp`, out);
  } finally {
    fs.rmSync(objdir, { recursive: true, force: true });
  }
}

const newer = (a, b) => {
  const [x, y] = [a, b].map((v) => v.split('.').map(Number));
  return x[0] !== y[0] ? x[0] > y[0] : x[1] > y[1];
};

/**
 * What a binary needs from the system, and whether that fits the floor:
 * only glibc's libraries (no libstdc++, no libgcc_s), no symbol version newer
 * than GLIBC_FLOOR, and the machine of `arch` when given. Returns the problems.
 */
function checkFloor(file, arch) {
  const problems = [];
  const readelf = (flag) => {
    const r = spawnSync('readelf', [flag, '-W', file], { encoding: 'utf8' });
    if (r.status !== 0) fail(`readelf ${flag} ${file}: ${r.stderr.trim() || 'failed'} (install binutils)`);
    return r.stdout;
  };
  const header = readelf('-h');
  if (arch && !(ARCHES[arch].machine.test(header) && ARCHES[arch].endian.test(header))) problems.push(`not a little-endian ${arch} ELF`);
  const needed = [...readelf('-d').matchAll(/\(NEEDED\)\s+Shared library: \[([^\]]+)\]/g)].map((m) => m[1]);
  for (const lib of needed) {
    if (!/^(libc|libm|libdl|libpthread|librt|libgcc_s|ld-linux[-\w]*|ld64)\.so/.test(lib)) problems.push(`needs ${lib} (link it statically)`);
  }
  const versions = [...new Set([...readelf('-V').matchAll(/Name: (\w+)_([\d.]+)/g)].map((m) => `${m[1]}_${m[2]}`))];
  let glibc = '2.0';
  for (const v of versions) {
    const [, lib, num] = /^(\w+?)_([\d.]+)$/.exec(v);
    if (lib === 'GCC') {
      if (newer(num, LIBGCC_FLOOR)) problems.push(`needs ${v}, newer than libgcc_s's GCC_${LIBGCC_FLOOR}`);
    } else if (lib !== 'GLIBC') problems.push(`needs ${v} (not glibc: link its library statically)`);
    else if (newer(num, GLIBC_FLOOR)) problems.push(`needs ${v}, newer than the floor GLIBC_${GLIBC_FLOOR}: ${symbolsOf(readelf('--dyn-syms'), v)}`);
    else if (newer(num, glibc)) glibc = num;
  }
  return { problems, needed, glibc };
}

function symbolsOf(dynsyms, version) {
  return [...new Set([...dynsyms.matchAll(new RegExp(`\\s(\\w+)@${version}\\b`, 'g'))].map((m) => m[1]))].join(', ') || '?';
}

function report(file, arch, started) {
  const { problems, needed, glibc } = checkFloor(file, arch);
  const size = Math.round(fs.statSync(file).size / 1024);
  const took = started === undefined ? '' : `, built in ${((Date.now() - started) / 1000).toFixed(1)} s`;
  if (problems.length > 0) {
    console.error(`prebuild: ${path.relative(process.cwd(), file)} does not fit glibc ${GLIBC_FLOOR}:\n  ${problems.join('\n  ')}`);
    return false;
  }
  console.log(`prebuild: ${path.relative(process.cwd(), file)}: ${size} KiB, needs GLIBC_${glibc} (floor ${GLIBC_FLOOR}) and ${needed.join(', ')}${took}`);
  return true;
}

async function main() {
  const opts = parseArgs(process.argv.slice(2));
  if (opts.check) {
    if (opts.check.length === 0) fail('--check needs files');
    // prebuilds/linux-<arch>/vfio.node is also checked to be that architecture's.
    const archOf = (f) => /^linux-(\w+)$/.exec(path.basename(path.dirname(f)))?.[1];
    process.exit(opts.check.map((f) => report(path.resolve(f), ARCHES[archOf(f)] ? archOf(f) : undefined)).every(Boolean) ? 0 : 1);
  }
  let ok = true;
  const inputs = newestInput();
  for (const arch of opts.arches) {
    const out = path.join(opts.out, `linux-${arch}`, 'vfio.node');
    if (!opts.force && fs.existsSync(out) && fs.statSync(out).mtimeMs > inputs) {
      ok = report(out, arch) && ok;
      continue;
    }
    const started = Date.now();
    try {
      await build(arch, out);
    } catch (e) {
      fail(`the ${arch} build failed: ${e.message}`);
    }
    if (!report(out, arch, started)) {
      fs.rmSync(out);
      ok = false;
    }
  }
  process.exit(ok ? 0 : 1);
}

main();
