# The ppc64 guest's initramfs: Debian's ppc64el static busybox, the init
# script and the kernel modules in load order. Node and its libraries are
# not in it: they come over 9p (see guest/init). Sourced by setup.

# module_order and copy_module, as the x86_64 guest uses them.
source "$X86_GUEST_DIR/lib/initramfs.sh"

# Names as modprobe takes them. virtio_pci is built into this kernel.
PPC_MODULES=(vfio vfio_iommu_spapr_tce vfio-pci virtio_pci 9pnet_virtio 9p)

# build_ppc_initramfs MODDIR BUSYBOX OUT — an uncompressed newc cpio.
build_ppc_initramfs() {
	local moddir=$1 busybox=$2 out=$3 root rel applet order
	root=$(mktemp -d)
	mkdir -p "$root"/{bin,dev,proc,sys,run,tmp,usr,mnt/ctl,modules}
	cp "$busybox" "$root/bin/busybox"
	# The host cannot run a ppc64el busybox to list its applets: init
	# installs the other links itself (busybox --install).
	ln -s busybox "$root/bin/sh"
	# Node's loader is /lib64/ld64.so.2; the libraries live under /usr (9p).
	ln -s usr/lib "$root/lib"
	ln -s usr/lib64 "$root/lib64"
	install -m 0755 "$PPC_DIR/guest/init" "$root/init"
	order=$(module_order "$moddir" "${PPC_MODULES[@]}") || return 1
	for rel in $order; do copy_module "$moddir" "$rel" "$root/modules"; done >"$root/modules/order"
	(cd "$root" && find . -print0 | LC_ALL=C sort -z | cpio --null -o -H newc --quiet -R 0:0) >"$out.tmp"
	mv "$out.tmp" "$out"
	rm -rf "$root"
}
