# Debian packages of the guest's architecture (DEB_ARCH), fetched through a
# private apt state per suite under the cache (own lists, archive cache and
# sources, an empty dpkg status, APT::Architecture DEB_ARCH). The host's apt state, sources and
# architecture list are never touched; nothing is installed on the host.
# Sourced by setup.

# apt, apt_cache, apt_retry (retries an index served mid-sync),
# download_kernel and unpack_kernel, as the x86_64 guest uses them: they
# take the apt state from APT_OPTS, which deb_suite sets.
source "$X86_GUEST_DIR/lib/kernel.sh"

KEYRING=/usr/share/keyrings/debian-archive-keyring.gpg

# The Debian mirror the host already uses (not a hard-coded one).
debian_mirror() {
	apt-get indextargets --format '$(REPO_URI) $(RELEASE)' 'Origin: Debian' 'Identifier: Packages' |
		awk '$2 !~ /-security$/ { print $1; exit }'
}

# deb_suite SUITE — point APT_OPTS at the suite's private state, creating
# it; fetch its package list unless it has one (delete
# .cache/guest/ARCH/apt/SUITE to refresh). Fails without a list.
deb_suite() {
	local suite=$1 dir=$CACHE_DIR/apt/$1 uri
	APT_OPTS=(-o "Dir::State::Lists=$dir/lists" -o "Dir::Cache=$dir/cache"
		-o "Dir::Etc::SourceList=$dir/sources.list" -o "Dir::Etc::SourceParts=$dir/sources.d"
		-o "Dir::State::status=/dev/null" -o "APT::Architecture=$DEB_ARCH" -o "APT::Architectures=$DEB_ARCH")
	has_packages_list "$dir" && return 0
	uri=$(debian_mirror)
	[ -n "$uri" ] || die "cannot tell the host's Debian mirror from its apt sources"
	mkdir -p "$dir"/{lists/partial,cache/archives/partial,sources.d}
	echo "deb [signed-by=$KEYRING] $uri $suite main" >"$dir/sources.list"
	apt_retry update >&2 || true
	has_packages_list "$dir"
}

has_packages_list() {
	ls "$1/lists" 2>/dev/null | grep -q '_Packages'
}

# first_suite SUITE... — prints the first suite whose DEB_ARCH package list
# is there or can be fetched. A suite fetched before wins: no network, and
# no retries of a suite the mirror served badly.
first_suite() {
	local s
	for s in "$@"; do
		if has_packages_list "$CACHE_DIR/apt/$s"; then
			echo "$s"
			return 0
		fi
	done
	for s in "$@"; do
		if deb_suite "$s" 2>/dev/null; then
			echo "$s"
			return 0
		fi
		say "setup: no $DEB_ARCH package list for $s, trying the next suite"
	done
	return 1
}
