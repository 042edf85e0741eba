# The addon for the guest's architecture: the package's own prebuild
# (scripts/prebuild.js, the one place that cross-compiles it, with the glibc
# floor checked), so the guest suites test exactly what the package ships.
# Sourced by setup.

# build_addon OUT — the prebuild for $GUEST_ARCH, made or refreshed, copied to OUT.
build_addon() {
	local out=$1
	(cd "$PROJECT_ROOT" && node scripts/prebuild.js --arch "$GUEST_ARCH") || return 1
	cp "$PROJECT_ROOT/prebuilds/linux-$GUEST_ARCH/vfio.node" "$out.tmp" && mv "$out.tmp" "$out"
}
