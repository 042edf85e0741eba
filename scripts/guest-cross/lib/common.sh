# Shared by setup and run of the cross-architecture guests (ppc64, arm64):
# where things live, and how to complain. Sourced, never executed.
#
# GUEST_ARCH_DIR names the guest's own folder (scripts/guest-ppc64, ...):
# its arch.sh says what differs between the guests (packages, kernel,
# modules, the QEMU machine); everything else is here, once.

CROSS_DIR=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
PROJECT_ROOT=$(cd "$CROSS_DIR/../.." && pwd)
# The x86_64 guest's helpers (module order, .ko decompression, apt) are
# reused as they are; its folder belongs to that guest.
X86_GUEST_DIR=$PROJECT_ROOT/scripts/guest
: "${GUEST_ARCH_DIR:?run this through scripts/guest-ppc64/ or scripts/guest-arm64/}"
source "$GUEST_ARCH_DIR/arch.sh"
CACHE_DIR=$PROJECT_ROOT/.cache/guest/$GUEST_ARCH
# key=value lines, one per finished stage; setup writes a stage's line only
# after the stage is complete, so a half-built cache is never taken as good.
STAMP=$CACHE_DIR/ready

say() { printf '%s\n' "$*" >&2; }
die() { say "$GUEST_ARCH $(basename "$0"): $*"; exit 1; }

stamp_get() {
	sed -n "s/^$1=//p" "$STAMP" 2>/dev/null
}

stamp_set() {
	local tmp=$STAMP.tmp
	{ grep -v "^$1=" "$STAMP" 2>/dev/null || true; echo "$1=$2"; } >"$tmp"
	mv "$tmp" "$STAMP"
}

# Hash of what goes into the initramfs besides the kernel.
initramfs_hash() {
	cat "$CROSS_DIR"/guest/* "$CROSS_DIR"/lib/initramfs.sh "$X86_GUEST_DIR"/lib/initramfs.sh "$GUEST_ARCH_DIR/arch.sh" |
		sha256sum | cut -c1-16
}

# Hash of what the cross-compiled addon is made of.
addon_hash() {
	(cd "$PROJECT_ROOT" && cat binding.gyp native/* scripts/prebuild.js "$CROSS_DIR"/lib/addon.sh && echo "$CROSS_CXX") | sha256sum | cut -c1-16
}

# Seconds since $1 (a `date +%s%N` value), as "1.23s".
elapsed() {
	local ms=$((($(date +%s%N) - $1) / 1000000))
	printf '%d.%02ds' $((ms / 1000)) $((ms % 1000 / 10))
}
