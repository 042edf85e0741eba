# The guest kernel: Debian's image that KERNEL_META (arch.sh) resolves to,
# downloaded and unpacked (download_kernel, unpack_kernel of the x86_64
# guest, through apt.sh), never installed. Sourced by setup.

# Prints "PACKAGE=VERSION" of the image the metapackage points at, in the
# suite APT_OPTS names.
resolve_cross_kernel() {
	apt_cache show --no-all-versions "$KERNEL_META" 2>/dev/null |
		sed -n 's/^Depends: \([^ ,]*\) (= \([^)]*\)).*/\1=\2/p' | head -1 | grep .
}
