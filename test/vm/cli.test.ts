// The vfio CLI against a real kernel, inside the test guest
// (scripts/guest/run -- npx mocha dist/test/vm/cli.test.js). Every binding
// change is read back from sysfs, and every test puts the guest's topology
// back as it found it, so other suites in the same boot see the original.

import assert from 'node:assert/strict';
import { type SpawnSyncOptions, spawnSync } from 'node:child_process';
import * as fs from 'node:fs';
import * as path from 'node:path';

const BIN = path.join(__dirname, '../../lib/cli/main.js');
const PROJECT = path.join(__dirname, '../../..');
const DEVICES = '/sys/bus/pci/devices';
const STATE = '/run/vfio-node/bindings.json';

interface GuestEnv {
  bdf: string;
  group: number;
  sharedBdf: string;
  sharedGroup: number;
  hostBdf: string;
}

function guestEnv(): GuestEnv {
  const need = ['VFIO_GUEST', 'VFIO_TEST_BDF', 'VFIO_TEST_GROUP', 'VFIO_TEST_SHARED_BDF', 'VFIO_TEST_SHARED_GROUP', 'VFIO_TEST_SHARED_HOST_BDF'];
  const missing = need.filter((n) => !process.env[n]);
  if (missing.length > 0) {
    throw new Error(
      `the CLI's real-kernel suite runs inside the test guest and needs ${missing.join(', ')}: ` +
        `run it with scripts/guest/run -- npx mocha dist/test/vm/cli.test.js`,
    );
  }
  const e = process.env as Record<string, string>;
  return {
    bdf: e.VFIO_TEST_BDF!,
    group: Number(e.VFIO_TEST_GROUP),
    sharedBdf: e.VFIO_TEST_SHARED_BDF!,
    sharedGroup: Number(e.VFIO_TEST_SHARED_GROUP),
    hostBdf: e.VFIO_TEST_SHARED_HOST_BDF!,
  };
}

// --- reading and restoring the kernel's state, without our code ------------

function driverOf(bdf: string): string | null {
  try {
    return path.basename(fs.readlinkSync(path.join(DEVICES, bdf, 'driver')));
  } catch {
    return null;
  }
}

function overrideOf(bdf: string): string | null {
  const v = fs.readFileSync(path.join(DEVICES, bdf, 'driver_override'), 'utf8').trim();
  return v === '(null)' ? null : v;
}

interface Binding {
  driver: string | null;
  override: string | null;
}

function snapshot(bdf: string): Binding {
  return { driver: driverOf(bdf), override: overrideOf(bdf) };
}

function restore(bdf: string, was: Binding): void {
  if (driverOf(bdf) === was.driver && overrideOf(bdf) === was.override) return;
  fs.writeFileSync(path.join(DEVICES, bdf, 'driver_override'), `${was.override ?? ''}\n`);
  const now = driverOf(bdf);
  if (now !== null && now !== was.driver) fs.writeFileSync(`/sys/bus/pci/drivers/${now}/unbind`, bdf);
  if (was.driver !== null && driverOf(bdf) === null) fs.writeFileSync(`/sys/bus/pci/drivers/${was.driver}/bind`, bdf);
  assert.equal(driverOf(bdf), was.driver, `could not restore ${bdf} to ${was.driver}`);
}

function isCharDevice(p: string): boolean {
  try {
    return fs.statSync(p).isCharacterDevice();
  } catch {
    return false;
  }
}

function vfio(args: string[], opts: SpawnSyncOptions = {}) {
  const r = spawnSync(process.execPath, [BIN, ...args], { encoding: 'utf8', cwd: PROJECT, ...opts });
  return { status: r.status, stdout: String(r.stdout), stderr: String(r.stderr) };
}

interface ListedGroup {
  id: number;
  viable: boolean;
  reason: string | null;
  blockers: { address: string; driver: string | null }[];
  devices: { address: string; driver: string | null }[];
  devNode: { path: string; exists: boolean };
}

function listJson(): ListedGroup[] {
  const r = vfio(['list', '--json']);
  assert.equal(r.status, 0, r.stderr);
  return (JSON.parse(r.stdout) as { groups: ListedGroup[] }).groups;
}

describe('vfio CLI on a real kernel (test guest)', function () {
  this.timeout(120_000);
  let env: GuestEnv;
  const original = new Map<string, Binding>();

  before(() => {
    env = guestEnv();
    for (const bdf of [env.bdf, env.sharedBdf, env.hostBdf]) original.set(bdf, snapshot(bdf));
    assert.deepEqual(original.get(env.bdf), { driver: 'vfio-pci', override: 'vfio-pci' }, 'edu A starts on vfio-pci');
    assert.equal(original.get(env.hostBdf)!.driver, 'e1000e', 'the shared group starts with the e1000e on its driver');
  });

  afterEach(() => {
    for (const [bdf, was] of original) restore(bdf, was);
    fs.rmSync(STATE, { force: true });
  });

  describe('list', () => {
    it('shows edu A alone and viable in its group, with its node', () => {
      const g = listJson().find((x) => x.id === env.group)!;
      assert.deepEqual(
        [g.viable, g.devices.map((d) => [d.address, d.driver]), g.devNode.path, g.devNode.exists],
        [true, [[env.bdf, 'vfio-pci']], `/dev/vfio/${env.group}`, true],
      );
    });

    it('shows the shared group not viable, naming the e1000e as the blocker', () => {
      const g = listJson().find((x) => x.id === env.sharedGroup)!;
      assert.equal(g.viable, false);
      assert.deepEqual(g.blockers.map((b) => [b.address, b.driver]), [[env.hostBdf, 'e1000e']]);
      assert.ok(g.devices.some((d) => d.address === env.sharedBdf && d.driver === 'vfio-pci'));
    });

    it('explains it in the table output', () => {
      const r = vfio(['list']);
      assert.equal(r.status, 0, r.stderr);
      assert.ok(
        r.stdout.includes(
          `group ${env.sharedGroup} is not viable: ${env.hostBdf} is bound to e1000e; bind it to vfio-pci (vfio bind ${env.hostBdf}) or unbind it`,
        ),
        r.stdout,
      );
    });
  });

  describe('bind and unbind edu A', () => {
    it('unbind leaves edu (no kernel driver) driverless, clears the override, and the group node goes away', () => {
      const r = vfio(['unbind', env.bdf]);
      assert.equal(r.status, 0, r.stderr);
      assert.deepEqual(snapshot(env.bdf), { driver: null, override: null });
      assert.equal(fs.existsSync(`/dev/vfio/${env.group}`), false);
    });

    it('bind puts it back on vfio-pci, the group node appears, and the output names it', () => {
      assert.equal(vfio(['unbind', env.bdf]).status, 0);
      const r = vfio(['bind', env.bdf]);
      assert.equal(r.status, 0, r.stderr);
      assert.deepEqual(snapshot(env.bdf), { driver: 'vfio-pci', override: 'vfio-pci' });
      assert.ok(isCharDevice(`/dev/vfio/${env.group}`));
      assert.equal(r.stdout, `${env.bdf}: no driver -> vfio-pci, group ${env.group}\ngroup ${env.group}: viable, /dev/vfio/${env.group}\n`);
    });

    it('bind remembers "no driver", so unbind gives it back to no driver', () => {
      assert.equal(vfio(['unbind', env.bdf]).status, 0);
      assert.equal(vfio(['bind', env.bdf]).status, 0);
      const state = JSON.parse(fs.readFileSync(STATE, 'utf8')) as { devices: Record<string, { previousDriver: string | null }> };
      assert.equal(state.devices[env.bdf]!.previousDriver, null);
      assert.equal(vfio(['unbind', env.bdf]).status, 0);
      assert.equal(driverOf(env.bdf), null);
    });

    it('binding a device already on vfio-pci changes nothing', () => {
      const r = vfio(['bind', env.bdf]);
      assert.equal(r.status, 0, r.stderr);
      assert.match(r.stdout, /already bound to vfio-pci/);
      assert.equal(driverOf(env.bdf), 'vfio-pci');
    });
  });

  describe('bind and unbind the e1000e', () => {
    it('bind moves it to vfio-pci and its group becomes viable', () => {
      const r = vfio(['bind', env.hostBdf]);
      assert.equal(r.status, 0, r.stderr);
      assert.deepEqual(snapshot(env.hostBdf), { driver: 'vfio-pci', override: 'vfio-pci' });
      assert.equal(listJson().find((g) => g.id === env.sharedGroup)!.viable, true);
      assert.ok(r.stdout.includes(`group ${env.sharedGroup}: viable, /dev/vfio/${env.sharedGroup}`), r.stdout);
    });

    it('unbind gives it back to e1000e and the group is not viable again', () => {
      assert.equal(vfio(['bind', env.hostBdf]).status, 0);
      const r = vfio(['unbind', env.hostBdf]);
      assert.equal(r.status, 0, r.stderr);
      assert.deepEqual(snapshot(env.hostBdf), { driver: 'e1000e', override: null });
      assert.equal(listJson().find((g) => g.id === env.sharedGroup)!.viable, false);
    });

    it('bind refuses while its network interface is up, and --force takes it', () => {
      const [ifname] = fs.readdirSync(path.join(DEVICES, env.hostBdf, 'net'));
      const flags = `/sys/class/net/${ifname}/flags`;
      const before = fs.readFileSync(flags, 'utf8').trim();
      fs.writeFileSync(flags, `0x${(parseInt(before, 16) | 1).toString(16)}`);
      try {
        const r = vfio(['bind', env.hostBdf]);
        assert.equal(r.status, 1);
        assert.equal(r.stderr, `vfio: refusing to take ${env.hostBdf} from e1000e: network interface ${ifname} is up; use --force (force: true) if you really mean it\n`);
        const j = vfio(['bind', '--json', env.hostBdf]);
        assert.equal(j.status, 1);
        assert.deepEqual(JSON.parse(j.stdout), {
          error: {
            code: 'ERR_VFIO_DEVICE_IN_USE',
            message: `refusing to take ${env.hostBdf} from e1000e: network interface ${ifname} is up; use --force (force: true) if you really mean it`,
            fix: 'use --force (force: true) if you really mean it',
          },
        });
        assert.equal(driverOf(env.hostBdf), 'e1000e');
        const forced = vfio(['bind', '--force', env.hostBdf]);
        assert.equal(forced.status, 0, forced.stderr);
        assert.equal(driverOf(env.hostBdf), 'vfio-pci');
      } finally {
        restore(env.hostBdf, original.get(env.hostBdf)!);
        const [now] = fs.readdirSync(path.join(DEVICES, env.hostBdf, 'net'));
        fs.writeFileSync(`/sys/class/net/${now}/flags`, before);
      }
    });

    it('bind --group on the shared edu binds the e1000e too and leaves the bridge alone', () => {
      const r = vfio(['bind', '--group', '--json', env.sharedBdf]);
      assert.equal(r.status, 0, r.stderr);
      const j = JSON.parse(r.stdout) as { changes: { address: string; driverAfter: string | null; changed: boolean }[]; groups: { viable: boolean }[] };
      assert.deepEqual(j.groups.map((g) => g.viable), [true]);
      assert.equal(driverOf(env.hostBdf), 'vfio-pci');
      const bridge = j.changes.find((c) => c.address !== env.sharedBdf && c.address !== env.hostBdf)!;
      assert.deepEqual([bridge.changed, bridge.driverAfter, driverOf(bridge.address)], [false, null, null]);
    });
  });

  describe('failures under --json', () => {
    it('a BDF with a trailing newline is refused before sysfs: exit 2, one error object, the device untouched', () => {
      const r = vfio(['bind', '--json', `${env.hostBdf}\n`]);
      assert.equal(r.status, 2, r.stderr);
      const e = (JSON.parse(r.stdout) as { error: { code: string; argument: string; message: string } }).error;
      assert.deepEqual([e.code, e.argument], ['ERR_INVALID_ARG_VALUE', 'device']);
      assert.equal(r.stderr.split('\n')[0], `vfio: ${e.message}`);
      assert.deepEqual(snapshot(env.hostBdf), { driver: 'e1000e', override: null });
      assert.equal(fs.existsSync(STATE), false);
    });

    it("the kernel's EACCES for an unprivileged user: errno name as code, errno, syscall, path, and the fix", () => {
      const r = asNobody(process.execPath, [BIN, 'unbind', '--json', env.bdf]);
      assert.equal(r.status, 1, r.stderr);
      const file = `${DEVICES}/${env.bdf}/driver_override`;
      const e = (JSON.parse(r.stdout) as { error: Record<string, unknown> }).error;
      assert.deepEqual(e, {
        code: 'EACCES',
        message: `cannot write '' to ${file}: EACCES: permission denied, open; changing driver bindings needs root (sudo)`,
        fix: 'changing driver bindings needs root (sudo)',
        errno: -13,
        syscall: 'open',
        path: file,
      });
      assert.equal(r.stderr, `vfio: ${String(e.message)}\n`);
      assert.deepEqual(snapshot(env.bdf), { driver: 'vfio-pci', override: 'vfio-pci' });
    });
  });

  describe('the VFIO interfaces of this kernel', () => {
    // What the kernel shows, read here without the library.
    const release = (): string => fs.readFileSync('/proc/sys/kernel/osrelease', 'utf8').trim();
    const olderThan = (major: number, minor: number): boolean => {
      const [a, b] = release().split('.').map(Number) as [number, number];
      return a < major || (a === major && b < minor);
    };
    const NOIOMMU_PARAM = '/sys/module/vfio/parameters/enable_unsafe_noiommu_mode';
    const kernel = () => ({
      iommufd: isCharDevice('/dev/iommu'),
      cdev: /^\s*\d+ vfio-dev$/m.test(fs.readFileSync('/proc/devices', 'utf8').split('Block devices:')[0]!),
      noiommu: fs.existsSync(NOIOMMU_PARAM) ? fs.readFileSync(NOIOMMU_PARAM, 'utf8').trim() === 'Y' : false,
    });
    interface Iface {
      available: boolean;
      detail: string;
      fix: string | null;
      evidence: string[];
    }
    interface Check {
      name: string;
      status: string;
      detail: string;
      fix?: string;
    }
    const doctorJson = () => {
      const r = vfio(['doctor', '--json']);
      assert.equal(r.status, 0, r.stdout);
      return JSON.parse(r.stdout) as { checks: Check[]; interfaces: { release: string; group: Iface & { backends: string[] }; iommufd: Iface; cdev: Iface; noiommu: Iface } };
    };

    it('doctor finds what the kernel has: group/container always, iommufd, cdev and noiommu exactly when the kernel shows them', () => {
      const j = doctorJson();
      const k = kernel();
      const i = j.interfaces;
      assert.equal(i.release, release());
      assert.deepEqual([i.group.available, i.iommufd.available, i.cdev.available, i.noiommu.available], [true, k.iommufd, k.cdev, k.noiommu]);
      assert.ok(i.group.backends.includes('vfio_iommu_type1'), i.group.detail);
      const status = (name: string) => j.checks.find((c) => c.name === name)!;
      assert.deepEqual(
        ['vfio-container', 'iommufd', 'vfio-cdev'].map((n) => status(n).status),
        ['ok', k.iommufd ? 'ok' : 'warn', k.cdev ? 'ok' : 'warn'],
      );
      for (const absent of [i.iommufd, i.cdev, i.noiommu].filter((x) => !x.available)) {
        assert.ok(absent.fix !== null && absent.fix.length > 0, `${absent.detail}: a fix`);
        assert.ok(absent.evidence.length > 0, `${absent.detail}: evidence`);
      }
    });

    it('says why iommufd and the cdev are absent on a kernel older than them, naming the version; otherwise the config option', () => {
      const { checks, interfaces: i } = doctorJson();
      const iommufd = checks.find((x) => x.name === 'iommufd')!;
      if (kernel().iommufd) assert.deepEqual([iommufd.status, iommufd.detail.startsWith('/dev/iommu')], ['ok', true], iommufd.detail);
      else if (olderThan(6, 2)) {
        assert.equal(iommufd.detail, `no iommufd: Linux ${release()} has no iommufd (it came in 6.2)`);
        assert.match(iommufd.fix!, /^boot Linux 6\.2 or later built with CONFIG_IOMMUFD=y/);
      } else assert.match(`${i.iommufd.detail} ${i.iommufd.fix}`, /CONFIG_IOMMUFD/);
      const cdev = checks.find((x) => x.name === 'vfio-cdev')!;
      if (kernel().cdev) assert.equal(cdev.status, 'ok', cdev.detail);
      else if (olderThan(6, 6)) assert.equal(cdev.detail, `no device cdevs: Linux ${release()} has no VFIO device cdev (it came in 6.6)`);
      else assert.match(`${i.cdev.detail} ${i.cdev.fix}`, /CONFIG_VFIO_DEVICE_CDEV/);
    });

    it('says whether no-IOMMU mode is in the kernel: without the vfio parameter, built without CONFIG_VFIO_NOIOMMU', () => {
      const { checks, interfaces: i } = doctorJson();
      const c = checks.find((x) => x.name === 'noiommu')!;
      if (fs.existsSync(NOIOMMU_PARAM)) {
        assert.equal(i.noiommu.available, kernel().noiommu);
        assert.equal(c.status, kernel().noiommu ? 'warn' : 'ok');
      } else {
        assert.deepEqual(
          [c.status, i.noiommu.detail, i.noiommu.fix],
          ['ok', 'this kernel is built without no-IOMMU mode (CONFIG_VFIO_NOIOMMU: vfio has no enable_unsafe_noiommu_mode parameter)', 'boot a kernel built with CONFIG_VFIO_NOIOMMU=y'],
        );
      }
    });

    it('list shows edu A opening through its group, and through its cdev exactly when the kernel made one', () => {
      const dir = `${DEVICES}/${env.bdf}/vfio-dev`;
      const name = fs.existsSync(dir) ? fs.readdirSync(dir)[0]! : null;
      const cdev = name !== null && fs.existsSync(`${dir}/${name}/dev`) ? `/dev/vfio/devices/${name}` : null;
      const r = vfio(['list', '--json']);
      assert.equal(r.status, 0, r.stderr);
      const j = JSON.parse(r.stdout) as { groups: { id: number; devices: { address: string; vfio: Record<string, unknown> }[] }[] };
      const a = j.groups.find((g) => g.id === env.group)!.devices.find((d) => d.address === env.bdf)!.vfio;
      assert.deepEqual(a, {
        address: env.bdf,
        group: env.group,
        noiommu: false,
        groupNode: `/dev/vfio/${env.group}`,
        vfioDevice: name,
        cdev,
        openWith: cdev === null ? ['group'] : ['group', 'cdev'],
      });
      const table = vfio(['list']).stdout;
      const open = cdev === null ? `group ${env.group}` : `group ${env.group}, cdev ${name}`;
      assert.ok(table.split('\n').some((l) => l.includes(env.bdf) && l.endsWith(open)), table);
      const k = kernel();
      const no = [!k.iommufd && 'iommufd', !k.cdev && 'cdev', !k.noiommu && 'noiommu'].filter(Boolean);
      const yes = ['group/container', k.iommufd && 'iommufd', k.cdev && 'cdev', k.noiommu && 'noiommu'].filter(Boolean);
      assert.ok(table.endsWith(`\ninterfaces: ${yes.join(', ')}${no.length > 0 ? `; not offered: ${no.join(', ')} (vfio doctor says why)` : ''}\n`), table);
    });
  });

  describe('doctor', () => {
    it('passes on the guest as root: exit 0, IOMMU, modules, container and group nodes ok', () => {
      const r = vfio(['doctor', '--json', '--map', '1G']);
      assert.equal(r.status, 0, r.stdout);
      const j = JSON.parse(r.stdout) as { ok: boolean; checks: { name: string; status: string; group?: number; detail: string }[] };
      const status = (name: string, group?: number) => j.checks.find((c) => c.name === name && c.group === group)?.status;
      assert.deepEqual(
        [j.ok, status('iommu'), status('vfio-modules'), status('vfio-container'), status('group-node', env.group), status('memlock')],
        [true, 'ok', 'ok', 'ok', 'ok', 'ok'],
      );
      assert.match(j.checks.find((c) => c.name === 'memlock')!.detail, /CAP_IPC_LOCK/);
    });

    it('fails for an unprivileged user with a 64 KiB memlock limit: memlock fails with a fix, group nodes are not theirs', () => {
      const r = asNobody('/bin/sh', ['-c', `ulimit -l 64; exec "${process.execPath}" "${BIN}" doctor --json --map 1G`]);
      assert.equal(r.status, 1, r.stderr);
      const j = JSON.parse(r.stdout) as { ok: boolean; checks: { name: string; status: string; group?: number; detail: string; fix?: string }[] };
      const memlock = j.checks.find((c) => c.name === 'memlock')!;
      assert.equal(memlock.status, 'fail');
      assert.equal(memlock.detail, 'RLIMIT_MEMLOCK 64 KiB is less than the 1 GiB to map: MAP_DMA will fail with ENOMEM');
      assert.match(memlock.fix!, /ulimit -l 1048576/);
      assert.equal(j.checks.find((c) => c.name === 'group-node' && c.group === env.group)!.status, 'fail');
      assert.equal(j.checks.find((c) => c.name === 'vfio-container')!.status, 'ok');
    });

    it('prints the failing check and its fix for people', () => {
      const r = spawnSync('/bin/sh', ['-c', `ulimit -l 64; exec "${process.execPath}" "${BIN}" doctor --map 1G`], {
        encoding: 'utf8',
        cwd: PROJECT,
        uid: 65534,
        gid: 65534,
        env: { PATH: process.env.PATH, HOME: '/tmp' },
      });
      assert.equal(r.status, 1);
      assert.match(r.stdout, /\nfail  memlock +RLIMIT_MEMLOCK 64 KiB is less than the 1 GiB to map: MAP_DMA will fail with ENOMEM\n +fix: /);
    });
  });
});

/** Runs a command as the unprivileged uid 65534 in the project, with a minimal environment. */
function asNobody(cmd: string, args: string[]) {
  return spawnSync(cmd, args, { encoding: 'utf8', cwd: PROJECT, uid: 65534, gid: 65534, env: { PATH: process.env.PATH, HOME: '/tmp' } });
}
