// Where discovery looks. Every reader takes the roots as parameters so the
// unit tests can point it at a fixture tree; the defaults are the real system.

import * as fs from 'node:fs';
import * as path from 'node:path';
import { argArray, argBool, argInt, argOptions, optionField, typeError, valueError } from '../args';
import { argByteCount } from './size';

/** Where sysfs, /dev and /proc are: the real ones by default, a fixture tree in tests. */
export interface SysfsOptions {
  /** Default '/sys'. */
  sysfsRoot?: string;
  /** Default '/dev'. */
  devRoot?: string;
  /** Default '/proc'. */
  procRoot?: string;
  /** Where the kernel's config-<release> file is (`vfio doctor` reads it when present). Default '/boot'. */
  bootRoot?: string;
}

/** The identity access is judged for (defaults to this process). */
export interface Credentials {
  uid: number;
  gids: number[];
}

/** Whose access to /dev/vfio nodes is judged (default: this process's). */
export interface AccessOptions {
  /**
   * Judge R/W access for this identity from the node's mode bits instead of
   * asking the kernel (access(2), which also honours ACLs). Used by tests and
   * by callers asking on behalf of another user.
   */
  credentials?: Credentials;
}

export interface Roots {
  sys: string;
  dev: string;
  proc: string;
  boot: string;
}

/** Every option a lib/sysfs function takes, checked: what checkOptions returns. */
export interface CheckedOptions extends SysfsOptions, AccessOptions {
  runRoot?: string;
  force?: boolean;
  writer?: (file: string, value: string) => void;
  mapBytes?: bigint;
}

const ROOTS = ['sysfsRoot', 'devRoot', 'procRoot', 'bootRoot', 'runRoot'] as const;
const UID_MAX = 0xffffffff;

/**
 * Reads an options argument once, field by field (lib/args.ts): a fresh
 * object with the known fields checked and nothing else. Every public
 * function of lib/sysfs calls it first, so a bad option is refused before
 * anything is read or written, and a caller's object is never consulted again.
 */
export function checkOptions(value: unknown, argument = 'options'): CheckedOptions {
  const o = argOptions(value, argument);
  const out: CheckedOptions = {};
  for (const key of ROOTS) {
    const v = optionField(o, key, `${argument}.${key}`);
    if (v !== undefined) out[key] = argRootPath(v, `${argument}.${key}`);
  }
  const credentials = optionField(o, 'credentials', `${argument}.credentials`);
  if (credentials !== undefined) out.credentials = argCredentials(credentials, `${argument}.credentials`);
  const force = optionField(o, 'force', `${argument}.force`);
  if (force !== undefined) out.force = argBool(force, `${argument}.force`);
  const writer = optionField(o, 'writer', `${argument}.writer`);
  if (writer !== undefined) {
    if (typeof writer !== 'function') throw typeError(`${argument}.writer`, 'a function', writer);
    out.writer = writer as CheckedOptions['writer'];
  }
  const mapBytes = optionField(o, 'mapBytes', `${argument}.mapBytes`);
  if (mapBytes !== undefined) out.mapBytes = argByteCount(mapBytes, `${argument}.mapBytes`);
  return out;
}

function argRootPath(value: unknown, argument: string): string {
  if (typeof value !== 'string') throw typeError(argument, 'of type string', value);
  if (value === '' || value.includes('\0')) throw valueError(argument, 'must be a non-empty path without NUL bytes', value);
  return value;
}

function argCredentials(value: unknown, argument: string): Credentials {
  const c = argOptions(value, argument);
  const uid = argInt(optionField(c, 'uid', `${argument}.uid`), `${argument}.uid`, 0, UID_MAX);
  const gids = argArray(optionField(c, 'gids', `${argument}.gids`), `${argument}.gids`).map((g, i) => argInt(g, `${argument}.gids[${i}]`, 0, UID_MAX));
  return { uid, gids };
}

export function roots(opts: SysfsOptions = {}): Roots {
  return { sys: opts.sysfsRoot ?? '/sys', dev: opts.devRoot ?? '/dev', proc: opts.procRoot ?? '/proc', boot: opts.bootRoot ?? '/boot' };
}

/** A sysfs attribute's text without the trailing newline, or null if the file is absent. */
export function readAttr(file: string): string | null {
  try {
    return fs.readFileSync(file, 'utf8').replace(/\n$/, '');
  } catch (e) {
    if (isMissing(e)) return null;
    throw e;
  }
}

/** The last component of a symlink's target (a driver's or group's name), or null if absent. */
export function linkName(link: string): string | null {
  try {
    return path.basename(fs.readlinkSync(link));
  } catch (e) {
    if (isMissing(e)) return null;
    throw e;
  }
}

export function listDir(dir: string): string[] {
  try {
    return fs.readdirSync(dir);
  } catch (e) {
    if (isMissing(e)) return [];
    throw e;
  }
}

export function exists(p: string): boolean {
  return fs.existsSync(p);
}

export function isMissing(e: unknown): boolean {
  const code = (e as NodeJS.ErrnoException | null)?.code;
  return code === 'ENOENT' || code === 'ENOTDIR';
}

/** Mode, owner and whether `who` (or this process) may open it read-write. */
export interface NodeAccess {
  path: string;
  exists: boolean;
  mode: number | null;
  uid: number | null;
  gid: number | null;
  accessible: boolean;
}

export function nodeAccess(p: string, opts: AccessOptions = {}): NodeAccess {
  let st: fs.Stats;
  try {
    st = fs.statSync(p);
  } catch (e) {
    if (isMissing(e)) return { path: p, exists: false, mode: null, uid: null, gid: null, accessible: false };
    throw e;
  }
  const mode = st.mode & 0o7777;
  let accessible: boolean;
  if (opts.credentials) {
    accessible = modeGrantsRW(mode, st.uid, st.gid, opts.credentials);
  } else {
    try {
      fs.accessSync(p, fs.constants.R_OK | fs.constants.W_OK);
      accessible = true;
    } catch {
      accessible = false;
    }
  }
  return { path: p, exists: true, mode, uid: st.uid, gid: st.gid, accessible };
}

/** The classic permission check: the owner class, else the group class, else other. */
export function modeGrantsRW(mode: number, uid: number, gid: number, who: Credentials): boolean {
  if (who.uid === 0) return true; // CAP_DAC_OVERRIDE
  const rw = (shift: number): boolean => ((mode >> shift) & 0o6) === 0o6;
  if (who.uid === uid) return rw(6);
  if (who.gids.includes(gid)) return rw(3);
  return rw(0);
}

/** This process's identity, for messages and for the default access check. */
export function currentCredentials(): Credentials {
  const uid = process.getuid?.() ?? -1;
  const gids = process.getgroups?.() ?? [];
  const gid = process.getgid?.();
  if (gid !== undefined && !gids.includes(gid)) gids.push(gid);
  return { uid, gids };
}
