# The guest's userland: Debian's nodejs of DEB_ARCH with its dependency
# closure (libc6, libnode, the small node-* packages libnode loads), unpacked
# with dpkg -x into one tree that the guest mounts as its /usr. Sourced by
# setup.

# Node >= 20.19 (mocha 12, Symbol.dispose): trixie has 20.19; bookworm's 18
# is too old. A mirror mid-sync can serve an index whose versions its pool
# does not have yet (seen: trixie's libc6 +deb13u5 listed, 404 on download):
# "stable" is the same pool under another name, so the fallbacks are testing
# and unstable (Node 24), whose pools are their own.
USERLAND_PACKAGES=(nodejs busybox-static)

# userland_plan — "package version" lines of what an install of
# USERLAND_PACKAGES into an empty system would unpack (suite: APT_OPTS).
userland_plan() {
	apt install -s --no-install-recommends "${USERLAND_PACKAGES[@]}" 2>/dev/null |
		sed -n 's/^Inst \([^ ]*\) (\([^ ]*\) .*/\1 \2/p' | sort
}

# fetch_userland DIR — the .debs of the plan in DIR.
fetch_userland() {
	local dir=$1
	mkdir -p "$dir/partial"
	apt install -y -d --no-install-recommends \
		-o "Dir::Cache::archives=$dir" "${USERLAND_PACKAGES[@]}" >&2
}

# unpack_userland DEBDIR ROOT — every .deb into ROOT; the guest mounts
# ROOT/usr as /usr, so everything must live under usr/ (merged /usr).
unpack_userland() {
	local deb
	rm -rf "$2" && mkdir -p "$2" || return 1
	for deb in "$1"/*.deb; do dpkg -x "$deb" "$2" || return 1; done
	local d
	for d in bin sbin lib lib64; do
		[ ! -d "$2/$d" ] || [ -L "$2/$d" ] || { mkdir -p "$2/usr/$d" && cp -a "$2/$d/." "$2/usr/$d/" && rm -rf "${2:?}/$d"; }
	done
	[ -x "$2/usr/bin/node" ] && [ -e "$2/usr/$NODE_LOADER" ]
}
