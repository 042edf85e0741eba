# The addon for the guest's architecture, cross-compiled on the host: the
# sources, defines and C++ flags of binding.gyp, built with CROSS_CXX (from
# the guest's arch.sh) against Node's headers (N-API is ABI-stable, so the
# host Node's headers serve) and the uapi headers of the cross toolchain's
# sysroot (ioctl numbers differ on powerpc: _IOC_WRITE is 4 there, not 1).
# build_addon is the one place that makes it. Sourced by setup.

# gyp_field EXPR — a field of the one target in binding.gyp, one per line.
gyp_field() {
	(cd "$PROJECT_ROOT" && node -e '
		const t = eval("(" + require("fs").readFileSync("binding.gyp", "utf8") + ")").targets[0];
		const v = ('"$1"') || [];
		console.log(v.join("\n"));')
}

# node_include — the directory holding node_api.h.
node_include() {
	local d
	for d in "$(dirname "$(dirname "$(command -v node)")")/include/node" /usr/include/node \
		"${HOME:-/root}/.cache/node-gyp/$(node -p process.versions.node)/include/node" \
		"$PROJECT_ROOT/node_modules/node-api-headers/include"; do
		[ -f "$d/node_api.h" ] && { echo "$d"; return 0; }
	done
	return 1
}

# build_addon OUT — compile every source (two at a time) and link OUT.
build_addon() {
	local out=$1 objdir inc napi defines flags
	objdir=$(mktemp -d)
	inc=$(node_include) || { say "no node_api.h: install Node's headers or the npm package node-api-headers"; return 1; }
	napi=$(cd "$PROJECT_ROOT" && node -p "require('node-addon-api').include_dir") || return 1
	mapfile -t defines < <(gyp_field 't.defines' | sed 's/^/-D/')
	mapfile -t flags < <(gyp_field 't.cflags_cc')
	export CROSS_CXX objdir inc napi
	export CROSS_FLAGS="${defines[*]} ${flags[*]}"
	# shellcheck disable=SC2016
	if ! (cd "$PROJECT_ROOT" && gyp_field 't.sources' | xargs -P "$(nproc)" -I{} sh -c \
		'exec $CROSS_CXX -c -fPIC -O2 $CROSS_FLAGS -I"$inc" -I"$napi" -o "$objdir/$(basename {} .cc).o" {}'); then
		rm -rf "$objdir"
		return 1
	fi
	$CROSS_CXX -shared -o "$out.tmp" "$objdir"/*.o && mv "$out.tmp" "$out"
	local status=$?
	rm -rf "$objdir"
	return $status
}
