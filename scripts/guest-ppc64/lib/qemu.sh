# The ppc64 guest machine: QEMU's arguments, one per line. Sourced by run.
#
# pseries under TCG, one POWER9 CPU. The guest kernel forms one IOMMU group
# per PCI host bridge, so edu sits alone on a second host bridge (phb1) and
# the 9p shares stay on the default one (pci.0): a share on edu's bridge
# would join its group and make it not viable (SET_CONTAINER: EPERM).
#   phb1 00:01.0  edu, 64-bit DMA mask (created windows start at 2^59)
#   pci.0         virtio-9p: ctl, usr (the ppc64el userland), project, out
# Three VTYs: hvc0 the kernel console, hvc1/hvc2 the command's
# stdout/stderr.

# x-vof: QEMU's minimal Virtual Open Firmware instead of SLOF boots the
# -kernel directly; a whole `run -- true` takes 10 s instead of 17 s here.
# The speculation caps default to values TCG cannot provide (QEMU warns at
# every start); say what TCG does.
MACHINE=pseries,x-vof=on,cap-cfpc=broken,cap-sbbc=broken,cap-ibs=broken,cap-ccf-assist=off
KERNEL_CMDLINE="console=hvc0 panic=-1 mitigations=off"

share() {
	echo -fsdev; echo "local,id=fs_$1,path=${2//,/,,},security_model=none,multidevs=remap${3:+,$3}"
	echo -device; echo "virtio-9p-pci,fsdev=fs_$1,mount_tag=$1,bus=pci.0"
}

vty() {
	echo -chardev; echo "file,id=$1,path=$2"
	echo -device; echo "spapr-vty,chardev=$1,reg=$3"
}

# qemu_args RUNDIR CTLDIR OUTDIR
qemu_args() {
	local run=$1 ctl=$2 out=$3
	printf '%s\n' -machine "$MACHINE" -accel tcg -cpu power9 -smp 1 -m 2048 \
		-nodefaults -no-user-config -display none -no-reboot \
		-kernel "$CACHE_DIR/vmlinux" -initrd "$CACHE_DIR/initramfs.cpio" \
		-append "$KERNEL_CMDLINE" \
		-device spapr-pci-host-bridge,index=1,id=phb1 \
		-device edu,bus=phb1.0,addr=1,dma_mask=0xffffffffffffffff
	vty console "$run/console.log" 0x71000010
	vty stdout "$run/stdout" 0x71000011
	vty stderr "$run/stderr" 0x71000012
	share ctl "$ctl"
	share usr "$CACHE_DIR/root/usr" readonly=on
	share project "$PROJECT_ROOT" readonly=on
	share out "$out"
}
