// An old glibc userland to load the prebuilds in: Debian bullseye's libc6
// (glibc 2.31, older than the 2.32/2.33 symbols a plain build on Debian 12
// needs), libstdc++6 and libgcc-s1, fetched with `apt-get download` through a
// private apt config (the host's apt state is untouched) and unpacked with
// `dpkg -x` into .cache/old-glibc. Node then runs on it through its ld.so.

import { spawnSync } from 'node:child_process';
import * as fs from 'node:fs';
import path from 'node:path';

const SUITE = 'bullseye';
const PACKAGES = ['libc6', 'libstdc++6', 'libgcc-s1'];

function run(cmd: string, args: string[], cwd?: string): string {
  const r = spawnSync(cmd, args, { cwd, encoding: 'utf8' });
  if (r.error || r.status !== 0) {
    throw new Error(`${cmd} ${args.join(' ')} failed (${r.error?.message ?? r.stderr.trim()}): the old-glibc test needs apt-get and dpkg (Debian or Ubuntu) and access to a Debian mirror`);
  }
  return r.stdout;
}

/** The unpacked userland and the command prefix that runs a program on its glibc. */
export function oldGlibc(root: string): { version: string; prefix: string[] } {
  const dir = path.join(root, '.cache', 'old-glibc');
  const sysroot = path.join(dir, 'root');
  if (!fs.existsSync(path.join(dir, 'done'))) {
    for (const d of ['lists/partial', 'cache/archives/partial', 'sources.d', 'debs']) fs.mkdirSync(path.join(dir, d), { recursive: true });
    // The Debian mirror the host already uses.
    const targets = run('apt-get', ['indextargets', '--format', '$(REPO_URI) $(RELEASE)', 'Origin: Debian', 'Identifier: Packages']);
    const uri = targets.split('\n').map((l) => l.split(' ')).find(([, rel]) => rel && !rel.endsWith('-security'))?.[0];
    if (!uri) throw new Error('cannot tell the host\'s Debian mirror from its apt sources');
    fs.writeFileSync(path.join(dir, 'sources.list'), `deb [signed-by=/usr/share/keyrings/debian-archive-keyring.gpg] ${uri} ${SUITE} main\n`);
    const opts = [
      ['Dir::State::Lists', 'lists'], ['Dir::Cache', 'cache'], ['Dir::Etc::SourceList', 'sources.list'], ['Dir::Etc::SourceParts', 'sources.d'],
    ].flatMap(([k, v]) => ['-o', `${k}=${path.join(dir, v!)}`]).concat(['-o', 'Dir::State::status=/dev/null', '-o', 'APT::Sandbox::User=root', '-q']);
    run('apt-get', [...opts, 'update']);
    run('apt-get', [...opts, 'download', ...PACKAGES], path.join(dir, 'debs'));
    for (const deb of fs.readdirSync(path.join(dir, 'debs'))) run('dpkg', ['-x', path.join(dir, 'debs', deb), sysroot]);
    fs.writeFileSync(path.join(dir, 'done'), '');
  }
  const triple = fs.readdirSync(path.join(sysroot, 'lib')).find((d) => d.endsWith('-linux-gnu'))!;
  const libs = [path.join(sysroot, 'lib', triple), path.join(sysroot, 'usr', 'lib', triple)];
  const ldso = fs.readdirSync(libs[0]!).find((f) => /^ld(-linux[-\w]*|64)\.so\.\d$/.test(f))!;
  const libc = fs.readdirSync(libs[0]!).find((f) => /^libc-[\d.]+\.so$/.test(f))!;
  return { version: /libc-([\d.]+)\.so/.exec(libc)![1]!, prefix: [path.join(libs[0]!, ldso), '--library-path', libs.join(':')] };
}
