# Builds the guest's initramfs: static busybox, the init script, and the
# kernel modules the guest needs, already in load order (the guest has no
# modprobe or depmod of its own). Sourced by setup.

# What the guest loads at every boot, and what --kvm adds. Names as modprobe
# takes them; "-" and "_" are the same.
BASE_MODULES=(vfio vfio_iommu_type1 vfio-pci virtio_pci 9pnet_virtio 9p e1000e)
# The guest CPU (-cpu max under TCG) has svm, not vmx: only kvm_amd loads.
KVM_MODULES=(kvm ccp kvm_amd)

# module_order MODDIR NAME... — relative .ko paths in load order, each once,
# dependencies first. modules.dep lists a module's full dependency closure
# with the deepest dependency last, so loading it reversed is a valid order.
# Modules built into the kernel (modules.builtin) need no loading.
module_order() {
	local dir=$1 name path deps i
	shift
	declare -A seen=()
	for name in "$@"; do
		name=${name//-/_}
		if sed 's,.*/,,; s,\.ko.*,,; s,-,_,g' "$dir/modules.builtin" | grep -qx "$name"; then
			continue
		fi
		# "kernel/x/vfio-pci.ko.xz: dep1.ko dep2.ko" — match on the file name.
		path=$(awk -F: -v want="$name" '{ f = $1; sub(".*/", "", f); sub("\\.ko.*", "", f);
			gsub("-", "_", f); if (f == want) { print; exit } }' "$dir/modules.dep")
		[ -n "$path" ] || { say "module $name: not in $dir/modules.dep"; return 1; }
		read -ra deps <<<"${path#*:}"
		local order=() m
		for ((i = ${#deps[@]} - 1; i >= 0; i--)); do order+=("${deps[i]}"); done
		order+=("${path%%:*}")
		for m in "${order[@]}"; do
			[ -n "${seen[$m]:-}" ] && continue
			seen[$m]=1
			echo "$m"
		done
	done
}

# copy_module MODDIR REL DEST — copy one module into DEST under its plain
# .ko name; busybox insmod cannot read compressed modules.
copy_module() {
	local src=$1/$2 dest=$3/$(basename "${2%.ko*}").ko
	case $src in
	*.ko) cp "$src" "$dest" ;;
	*.ko.xz) xz -dc "$src" >"$dest" ;;
	*.ko.zst) zstd -dcq "$src" >"$dest" ;;
	*.ko.gz) gzip -dc "$src" >"$dest" ;;
	*) say "unknown module format: $src"; return 1 ;;
	esac
	basename "$dest"
}

# build_initramfs MODDIR OUT — write an uncompressed newc cpio to OUT. An
# empty MODDIR: a kernel with everything built in, empty module lists.
# Uncompressed because unpacking is then a copy; decompressing a few MB
# under TCG costs more than QEMU loading the larger file.
build_initramfs() {
	local moddir=$1 out=$2 root rel
	root=$(mktemp -d)
	mkdir -p "$root"/{bin,dev,proc,sys,run,mnt/root,mnt/ctl,modules}
	cp /bin/busybox "$root/bin/busybox"
	local applet
	for applet in $(/bin/busybox --list); do
		[ "$applet" = busybox ] || ln -s busybox "$root/bin/$applet"
	done
	install -m 0755 "$GUEST_DIR/guest/init" "$root/init"

	# Each list holds file names in load order; the kvm list leaves out what
	# the base list already loads.
	local base='' kvm=''
	[ -z "$moddir" ] || base=$(module_order "$moddir" "${BASE_MODULES[@]}") || return 1
	[ -z "$moddir" ] || kvm=$(module_order "$moddir" "${BASE_MODULES[@]}" "${KVM_MODULES[@]}" | grep -vxF "$base") || return 1
	for rel in $base; do copy_module "$moddir" "$rel" "$root/modules"; done >"$root/modules/base.order"
	for rel in $kvm; do copy_module "$moddir" "$rel" "$root/modules"; done >"$root/modules/kvm.order"

	(cd "$root" && find . -print0 | LC_ALL=C sort -z | cpio --null -o -H newc --quiet -R 0:0) >"$out.tmp"
	mv "$out.tmp" "$out"
	rm -rf "$root"
}
