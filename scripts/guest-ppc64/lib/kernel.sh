# The guest kernel: Debian's ppc64el image that linux-image-powerpc64le
# resolves to, downloaded and unpacked (download_kernel, unpack_kernel of
# the x86_64 guest, through apt.sh), never installed. Sourced by setup.

# bookworm's 6.1 ppc64el kernel cannot bind vfio-pci (probe fails with
# -22); bookworm-backports' 6.12 can.
KERNEL_SUITES=(${VFIO_PPC64_KERNEL_SUITE:-bookworm-backports})

# Prints "PACKAGE=VERSION" of the image the metapackage points at, in the
# suite APT_OPTS names.
resolve_ppc_kernel() {
	apt_cache show --no-all-versions linux-image-powerpc64le 2>/dev/null |
		sed -n 's/^Depends: \([^ ,]*\) (= \([^)]*\)).*/\1=\2/p' | head -1 | grep .
}
