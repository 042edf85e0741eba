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
  const why = message.startsWith('Could not locate')
    ? `neither ${path.join(PACKAGE_ROOT, 'build', 'Release', 'vfio.node')} nor ${path.join(PACKAGE_ROOT, 'prebuilds', platform, 'vfio.node')} exists`
    : message.split('\n')[0];
  const prebuilt = (PREBUILT_PLATFORMS as readonly string[]).includes(platform);
  const hint = prebuilt
    ? `the ${platform} prebuild needs glibc 2.28 or newer; elsewhere (musl, older glibc) reinstall with a compiler present (make, g++, python3) so npm builds the addon from source`
    : `no prebuild for ${platform}: install make, g++ and python3, then reinstall (npm rebuild vfio) so npm builds the addon from source`;
  const err = new VfioError(RuleCode.NO_ADDON, `the vfio native addon did not load (${why})`, hint);
  Object.defineProperty(err, 'cause', { value: cause, enumerable: false, configurable: true, writable: true });
  return err;
}
