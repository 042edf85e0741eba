# A cross guest's initramfs: Debian's static busybox of DEB_ARCH, the init
# script and the kernel modules (GUEST_MODULES of arch.sh) in load order.
# Node and its libraries are not in it: they come over 9p (see guest/init).
# Sourced by setup.

# module_order and copy_module, as the x86_64 guest uses them.
source "$X86_GUEST_DIR/lib/initramfs.sh"

# build_cross_initramfs MODDIR BUSYBOX OUT — an uncompressed newc cpio.
build_cross_initramfs() {
	local moddir=$1 busybox=$2 out=$3 root rel order
	root=$(mktemp -d)
	# mktemp's 0700 would become the guest's / and keep every other uid out
	# (the suite runs children as uid 65534).
	chmod 0755 "$root"
	mkdir -p "$root"/{bin,dev,proc,sys,run,tmp,usr,mnt/ctl,modules}
	cp "$busybox" "$root/bin/busybox"
	# The host cannot run a foreign busybox to list its applets: init
	# installs the other links itself (busybox --install).
	ln -s busybox "$root/bin/sh"
	# Node's loader (/lib64/ld64.so.2, /lib/ld-linux-aarch64.so.1) and its
	# libraries live under /usr (9p).
	ln -s usr/lib "$root/lib"
	ln -s usr/lib64 "$root/lib64"
	install -m 0755 "$CROSS_DIR/guest/init" "$root/init"
	order=$(module_order "$moddir" "${GUEST_MODULES[@]}") || return 1
	for rel in $order; do copy_module "$moddir" "$rel" "$root/modules"; done >"$root/modules/order"
	(cd "$root" && find . -print0 | LC_ALL=C sort -z | cpio --null -o -H newc --quiet -R 0:0) >"$out.tmp"
	mv "$out.tmp" "$out"
	rm -rf "$root"
}
