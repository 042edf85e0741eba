# How the test kernel is configured and built from an unpacked source tree.
# Sourced by build. The cache key hashes this file and vfio.config: an edit
# here or there builds a new kernel; build's own plumbing (download, cache,
# locking) does not.

# kernel_configure SRC OBJ FRAGMENT — tinyconfig, the fragment merged over
# it, olddefconfig; then every line of the fragment must have survived
# (a dependency we missed turns an option off silently otherwise).
kernel_configure() {
	local src=$1 obj=$2 fragment=$3 lost
	mkdir -p "$obj"
	make -s -C "$src" O="$obj" ARCH=x86_64 tinyconfig >/dev/null &&
		(cd "$src" && scripts/kconfig/merge_config.sh -m -O "$obj" "$obj/.config" "$fragment" >/dev/null) &&
		make -s -C "$src" O="$obj" ARCH=x86_64 olddefconfig >/dev/null || return 1
	lost=$(grep -E '^CONFIG_[A-Za-z0-9_]+=' "$fragment" | grep -vxF -f "$obj/.config")
	if [ -n "$lost" ]; then
		say "these lines of $fragment did not survive olddefconfig (a dependency is missing, or the option is gone in this kernel):"
		say "$lost"
		return 1
	fi
}

# kernel_build SRC OBJ JOBS — the ELF vmlinux only: QEMU boots it through
# its PVH entry, no bzImage, no modules.
kernel_build() {
	make -s -C "$1" O="$2" ARCH=x86_64 -j"$3" vmlinux
}
