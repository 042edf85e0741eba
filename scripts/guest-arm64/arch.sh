# What the arm64 (SMMUv3) guest is made of; the rest is shared with the
# ppc64 guest (scripts/guest-cross/). Sourced by its setup and run.

GUEST_ARCH=arm64
GUEST_TITLE="arm64 (SMMUv3)"
DEB_ARCH=arm64
QEMU=qemu-system-aarch64
HOST_PACKAGES=(qemu-system-arm g++-aarch64-linux-gnu cpio kmod xz-utils)
CROSS_CXX=aarch64-linux-gnu-g++
# bookworm's 6.1 binds vfio-pci behind QEMU's SMMUv3 and maps through it.
KERNEL_SUITES=(${VFIO_ARM64_KERNEL_SUITE:-bookworm})
KERNEL_META=linux-image-arm64
USERLAND_SUITES=(${VFIO_ARM64_USERLAND_SUITE:-trixie testing unstable})
NODE_LOADER=lib/ld-linux-aarch64.so.1
# Names as modprobe takes them; those built into the kernel are skipped.
GUEST_MODULES=(vfio vfio_iommu_type1 vfio-pci virtio_pci virtio_console 9pnet_virtio 9p e1000e)
# The command's stdout and stderr in the guest: the two virtconsoles.
GUEST_STDOUT=/dev/hvc0 GUEST_STDERR=/dev/hvc1

# kernel_image ROOT RELEASE — the file QEMU boots: the package's vmlinuz is
# a gzip'd Image, which QEMU's virt loader unpacks itself.
kernel_image() { echo "$1/boot/vmlinuz-$2"; }

# The machine: QEMU's arguments, one per line.
#
# virt under TCG, one CPU, QEMU's SMMUv3 in front of the PCIe host bridge.
# GICv3 is required: with the default GICv2 there is no MSI isolation and
# VFIO_SET_IOMMU refuses (EPERM) unless allow_unsafe_interrupts is set.
# Every device on pcie.0 gets its own IOMMU group:
#   00:01.0  virtio-serial: the command's stdout/stderr (hvc0, hvc1)
#   00:02.0  edu A, alone on the root bus
#   00:03-6  virtio-9p: ctl, usr (the arm64 userland), project, out
#   00:08.0  a PCIe root port: edu C at 01:00.0, alone below it but for the
#            port (bus resets, peer DMA), as the x86_64 guest's edu C
#   00:09.0  a PCIe root port: edu B at 02:00.0 and an e1000e on its driver
#            at 02:00.1, two functions of one device: one group, not
#            viable, as the x86_64 guest's edu B and e1000e. Not behind a
#            PCI bridge as there: 6.1's SMMUv3 driver refuses the second
#            device of an aliased stream ID ("stream 256 already in tree",
#            vfio-pci probe -22). Not on the root bus: there the e1000e, an
#            Intel root-complex integrated endpoint, gets a group of its own
#            (the kernel's ACS quirk for those).
# These root ports have no ACS here: each shares its devices' group (vfio
# accepts a bridge on pcieport in a group).
# The kernel console is the PL011 (ttyAMA0).
# cortex-a72: under TCG, max's pointer authentication and SVE cost time and
# nothing here needs them.
MACHINE=virt,iommu=smmuv3,gic-version=3
KERNEL_CMDLINE="console=ttyAMA0 panic=-1 mitigations=off"

share() {
	echo -fsdev; echo "local,id=fs_$1,path=${2//,/,,},security_model=none,multidevs=remap${3:+,$3}"
	echo -device; echo "virtio-9p-pci,fsdev=fs_$1,mount_tag=$1,bus=pcie.0,addr=$4"
}

# qemu_args RUNDIR CTLDIR OUTDIR
qemu_args() {
	local run=$1 ctl=$2 out=$3
	printf '%s\n' -machine "$MACHINE" -accel tcg -cpu cortex-a72 -smp 1 -m 2048 \
		-nodefaults -no-user-config -display none -no-reboot \
		-kernel "$CACHE_DIR/kernel.img" -initrd "$CACHE_DIR/initramfs.cpio" \
		-append "$KERNEL_CMDLINE" \
		-chardev "file,id=console,path=$run/console.log" -serial chardev:console \
		-device virtio-serial-pci,id=vser,bus=pcie.0,addr=1 \
		-chardev "file,id=stdout,path=$run/stdout" -device virtconsole,chardev=stdout,bus=vser.0 \
		-chardev "file,id=stderr,path=$run/stderr" -device virtconsole,chardev=stderr,bus=vser.0 \
		-device edu,bus=pcie.0,addr=2 \
		-device pcie-root-port,id=rp,bus=pcie.0,addr=8,chassis=1,slot=1 \
		-device edu,bus=rp,addr=0 \
		-device pcie-root-port,id=rpb,bus=pcie.0,addr=9,chassis=2,slot=2 \
		-device edu,bus=rpb,addr=0.0,multifunction=on \
		-netdev user,id=net0,restrict=on -device e1000e,bus=rpb,addr=0.1,netdev=net0
	share ctl "$ctl" '' 3
	share usr "$CACHE_DIR/root/usr" readonly=on 4
	share project "$PROJECT_ROOT" readonly=on 5
	share out "$out" '' 6
}
