// The one loader of the C++ addon. Where it looks, in order:
// - VFIO_NATIVE_ADDON=/path/to/vfio.node: that file (an addon built for
//   another architecture than this checkout's, as the test guests use);
// - build/Release/vfio.node: a local node-gyp build (a checkout, or the
//   install step's fallback when no prebuild loads);
// - prebuilds/linux-<arch>/vfio.node: the prebuild shipped in the package
//   (scripts/prebuild.js), so a matching platform needs no compiler.
// scripts/install.js asks this module whether the addon loads before it builds.

import bindings from 'bindings';
import path from 'node:path';
import { VfioError, RuleCode } from './errors';

/** The package folder: dist/lib/addon.js is two levels below it. */
const PACKAGE_ROOT = path.resolve(__dirname, '..', '..');

/** The platforms the published package carries a prebuild for (`${process.platform}-${process.arch}`). */
export const PREBUILT_PLATFORMS = ['linux-x64', 'linux-arm64', 'linux-ppc64'] as const;

/**
 * Loads the addon, or throws ERR_VFIO_NO_ADDON saying what was tried and what
 * to install. A file that exists but does not load (another architecture, a
 * glibc older than 2.28) is named with the loader's own message.
 */
export function loadAddon(): unknown {
  const override = process.env.VFIO_NATIVE_ADDON;
  if (override) return require(override);
  const platform = `${process.platform}-${process.arch}`;
  try {
    return bindings({
      bindings: 'vfio',
      module_root: PACKAGE_ROOT,
      platformArch: platform,
      try: [
        ['module_root', 'build', 'Release', 'bindings'],
        ['module_root', 'prebuilds', 'platformArch', 'bindings'],
      ],
    } as unknown as bindings.Options);
  } catch (e) {
    throw noAddon(platform, e);
  }
}

function noAddon(platform: string, cause: unknown): VfioError {
  const message = cause instanceof Error ? cause.message : String(cause);
  const prebuild = path.join(PACKAGE_ROOT, 'prebuilds', platform, 'vfio.node');
  const notFound = message.startsWith('Could not locate');
  const why = notFound ? `neither ${path.join(PACKAGE_ROOT, 'build', 'Release', 'vfio.node')} nor ${prebuild} exists` : message.split('\n')[0];
  const build = 'install make, g++ and python3, then `npm rebuild vfio` builds it from source';
  const hint = notFound
    ? (PREBUILT_PLATFORMS as readonly string[]).includes(platform)
      ? `this copy of the package lacks its ${platform} prebuild: reinstall it, or ${build}`
      : `the package has no prebuild for ${platform}: ${build}`
    : `the prebuilds need glibc 2.28 or newer; on musl or an older glibc, ${build}`;
  const err = new VfioError(RuleCode.NO_ADDON, `the vfio native addon did not load (${why})`, hint);
  Object.defineProperty(err, 'cause', { value: cause, enumerable: false, configurable: true, writable: true });
  return err;
}
