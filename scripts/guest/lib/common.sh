# Shared by setup and run: where things live, and how to complain.
# Sourced, never executed.

GUEST_DIR=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
PROJECT_ROOT=$(cd "$GUEST_DIR/../.." && pwd)
# Which kernel the guest boots: Debian's stock one (debian), or the one
# scripts/guest-kernel/build makes (built: iommufd, device cdev, noiommu; all
# built in, so its initramfs holds no modules). Each has its own cache.
GUEST_KERNEL=${VFIO_GUEST_KERNEL:-debian}
case $GUEST_KERNEL in
debian) CACHE_DIR=$PROJECT_ROOT/.cache/guest/x86_64 ;;
built) CACHE_DIR=$PROJECT_ROOT/.cache/guest/x86_64-built ;;
*) printf '%s\n' "VFIO_GUEST_KERNEL is debian or built, not '$GUEST_KERNEL'" >&2; exit 1 ;;
esac
# One file names the finished cache; setup writes it last, so a half-built
# cache (interrupted setup) is never taken for a good one.
STAMP=$CACHE_DIR/ready

say() { printf '%s\n' "$*" >&2; }
die() { say "$(basename "$0"): $*"; exit 1; }

# Hash of everything that goes into the initramfs besides the kernel, so an
# edited init script or module list rebuilds the cache without a re-download;
# for the built kernel also what its cache key hashes, so an edited config
# builds it anew.
inputs_hash() {
	local more=()
	[ "$GUEST_KERNEL" = debian ] || more=("$GUEST_DIR"/../guest-kernel/{vfio.config,recipe.sh})
	cat "$GUEST_DIR"/guest/* "$GUEST_DIR"/lib/initramfs.sh "${more[@]}" | sha256sum | cut -c1-16
}

# Read one "key=value" line of the stamp.
stamp_get() {
	sed -n "s/^$1=//p" "$STAMP" 2>/dev/null
}

# Seconds since $1 (a `date +%s%N` value), as "1.23s".
elapsed() {
	local ms=$((($(date +%s%N) - $1) / 1000000))
	printf '%d.%02ds' $((ms / 1000)) $((ms % 1000 / 10))
}
