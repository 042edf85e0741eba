# What the ppc64 (sPAPR TCE IOMMU) guest is made of; the rest is shared
# with the arm64 guest (scripts/guest-cross/). Sourced by its setup and run.

GUEST_ARCH=ppc64
GUEST_TITLE="ppc64 (sPAPR TCE IOMMU)"
DEB_ARCH=ppc64el
QEMU=qemu-system-ppc64
HOST_PACKAGES=(qemu-system-ppc g++-powerpc64le-linux-gnu cpio kmod xz-utils)
CROSS_CXX=powerpc64le-linux-gnu-g++
# bookworm's 6.1 ppc64el kernel cannot bind vfio-pci (probe fails with
# -22); bookworm-backports' 6.12 can.
KERNEL_SUITES=(${VFIO_PPC64_KERNEL_SUITE:-bookworm-backports})
KERNEL_META=linux-image-powerpc64le
USERLAND_SUITES=(${VFIO_PPC64_USERLAND_SUITE:-trixie testing unstable})
NODE_LOADER=lib64/ld64.so.2
# Names as modprobe takes them. virtio_pci is built into this kernel.
GUEST_MODULES=(vfio vfio_iommu_spapr_tce vfio-pci virtio_pci 9pnet_virtio 9p)
# The command's stdout and stderr in the guest (see qemu_args).
GUEST_STDOUT=/dev/hvc1 GUEST_STDERR=/dev/hvc2

# kernel_image ROOT RELEASE — the file QEMU boots: pseries boots the ELF
# vmlinux the package ships.
kernel_image() { echo "$1/boot/vmlinux-$2"; }

# The machine: QEMU's arguments, one per line.
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
		-kernel "$CACHE_DIR/kernel.img" -initrd "$CACHE_DIR/initramfs.cpio" \
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
