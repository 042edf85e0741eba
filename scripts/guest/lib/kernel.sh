# Finds and fetches the guest kernel: Debian's current linux-image-amd64,
# downloaded and unpacked into the cache, never installed on the host.
# Sourced by setup.

# VFIO_GUEST_SUITE=trixie (for example) takes the kernel from another Debian
# suite through a private apt state under the cache, so the host's own apt
# lists and sources stay as they are. Unset: the host's apt sources.
APT_OPTS=()
use_suite() {
	use_suites "$PROJECT_ROOT/.cache/guest/apt-$1" "$1"
}

# use_suites DIR SUITE... — the private apt state in DIR, with these suites
# (scripts/guest-kernel/build searches several for linux-source).
use_suites() {
	local dir=$1 uri keyring suite
	shift
	# The Debian archive the host already uses (its own mirror, not a
	# hard-coded one).
	uri=$(apt-get indextargets --format '$(REPO_URI) $(RELEASE)' 'Origin: Debian' 'Identifier: Packages' |
		awk '$2 !~ /-security$/ { print $1; exit }')
	[ -n "$uri" ] || die "cannot tell the host's Debian mirror from its apt sources"
	keyring=/usr/share/keyrings/debian-archive-keyring.gpg
	mkdir -p "$dir"/{lists/partial,cache/archives/partial,sources.d}
	for suite in "$@"; do echo "deb [signed-by=$keyring] $uri $suite main"; done >"$dir/sources.list"
	APT_OPTS=(-o "Dir::State::Lists=$dir/lists" -o "Dir::Cache=$dir/cache"
		-o "Dir::Etc::SourceList=$dir/sources.list" -o "Dir::Etc::SourceParts=$dir/sources.d"
		-o "Dir::State::status=/dev/null")
	# A private list is fetched once; later setups reuse it (delete the
	# folder to look for a newer kernel).
	ls "$dir/lists" | grep -q '_InRelease$' || apt_retry update
}

# Root downloads as root: apt's _apt user may not write into the cache.
apt() { apt-get "${APT_OPTS[@]}" -o APT::Sandbox::User=root -q "$@"; }
apt_cache() { apt-cache "${APT_OPTS[@]}" "$@"; }

# Mirrors occasionally serve an index mid-sync ("File has unexpected size");
# a second try usually gets a consistent one.
apt_retry() {
	local n
	for n in 1 2 3; do
		apt "$@" && return 0
		say "apt-get $*: attempt $n failed"
		sleep $((n * 2))
	done
	return 1
}

# Prints "PACKAGE=VERSION" of the kernel image linux-image-amd64 points at.
# One apt-cache call (each costs ~1 s): the candidate's record names the
# image package and its exact version.
resolve_kernel() {
	# "Depends: linux-image-6.1.0-56-amd64 (= 6.1.192-2)"
	apt_cache show --no-all-versions linux-image-amd64 2>/dev/null |
		sed -n 's/^Depends: \([^ ,]*\) (= \([^)]*\)).*/\1=\2/p' | head -1 | grep .
}

# download_kernel PACKAGE=VERSION DIR — the .deb in DIR, downloaded unless
# DIR already holds that version. It is kept so that a change of the init
# script or module list rebuilds the cache without downloading 70 MB again.
download_kernel() {
	local want=$1 dir=$2
	if [ "$(cat "$dir/package" 2>/dev/null)" != "$want" ] || ! ls "$dir"/*.deb >/dev/null 2>&1; then
		rm -rf "$dir" && mkdir -p "$dir" &&
			(cd "$dir" && apt_retry download "$want" >&2) &&
			echo "$want" >"$dir/package"
	fi
}

# unpack_kernel DEBDIR ROOT — unpack the .deb into ROOT, write the module
# index that the package leaves to its postinst (depmod), print the release.
unpack_kernel() {
	local release
	# Called in an "if", where set -e is off: every step checks itself.
	rm -rf "$2" && mkdir -p "$2" &&
		dpkg -x "$1"/*.deb "$2" &&
		# Merged-/usr packages (trixie on) ship /usr/lib/modules; the host's
		# depmod -b may still look in lib/modules.
		{ [ -d "$2/lib/modules" ] || ln -s usr/lib "$2/lib"; } &&
		release=$(ls "$2/lib/modules") &&
		depmod -b "$2" "$release" &&
		echo "$release"
}
