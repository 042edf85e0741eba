# The guest machine: QEMU's arguments, one per line. Sourced by run.

# PCI layout. Fixed addresses keep the guest's BDFs the same on every run.
#   00:03.0  edu "A"                      alone in its IOMMU group
#   00:05.0  pcie-pci-bridge              } one IOMMU group: devices behind
#   01:01.0    edu "B"  (vfio-pci)        } a PCIe-to-PCI bridge share the
#   01:02.0    e1000e   (host driver)     } bridge's requester ID
#   00:07.0  pcie-root-port               its own group
#   0N:00.0    edu "C"  (vfio-pci)        alone below the port: a secondary
#                                         bus reset resets only it
#   00:10-12 virtio-9p: root, ctl, out    each alone in its group
topology_args() {
	echo -device; echo edu,addr=03.0
	[ "$1" = standard ] || return 0
	echo -device; echo pcie-pci-bridge,id=br0,addr=05.0
	echo -device; echo edu,bus=br0,addr=01.0
	# The NIC only has to exist and keep its driver; a restricted user-mode
	# backend gives it a peer without touching any host network.
	echo -netdev; echo user,id=net0,restrict=on
	echo -device; echo e1000e,bus=br0,addr=02.0,netdev=net0
	# The bus number below the port depends on the bridges before it, so
	# the guest finds edu C as the device below 00:07.0, not by its BDF.
	echo -device; echo pcie-root-port,id=rp7,chassis=7,slot=7,addr=07.0
	echo -device; echo edu,bus=rp7,addr=00.0
}

# share TAG PATH ADDR [OPTIONS] — a 9p export of a host folder (a comma in
# PATH is doubled: QEMU reads a single one as the end of the option).
share() {
	echo -fsdev; echo "local,id=fs_$1,path=${2//,/,,},security_model=none,multidevs=remap${4:+,$4}"
	echo -device; echo "virtio-9p-pci,fsdev=fs_$1,mount_tag=$1,addr=$3"
}

# The console is a log file nobody reads unless something failed, so the
# kernel may be verbose there (quiet saved no measurable time). panic=-1 with
# -no-reboot turns a panic into QEMU exiting instead of a hang until the
# timeout. mitigations=off: a throwaway test machine; syscalls get ~15%
# cheaper under TCG.
KERNEL_CMDLINE="console=ttyS0 intel_iommu=on panic=-1 mitigations=off"

# Without an IOMMU (run --no-iommu, built kernel only): no intel-iommu, and
# VFIO's noiommu mode switched on, so vfio-pci makes /dev/vfio/noiommu-N.
NOIOMMU_CMDLINE="console=ttyS0 panic=-1 mitigations=off vfio.enable_unsafe_noiommu_mode=1"

# qemu_args TOPOLOGY RUNDIR CTLDIR OUTDIR
qemu_args() {
	local topology=$1 run=$2 ctl=$3 out=$4 kernel iommu=(-device intel-iommu,intremap=on) cmdline=$KERNEL_CMDLINE
	kernel=$CACHE_DIR/$(stamp_get kernel)
	[ "${GUEST_NOIOMMU:-0}" = 0 ] || iommu=() cmdline=$NOIOMMU_CMDLINE
	# TCG: the host's /dev/kvm cannot run a stock kernel. One CPU boots
	# faster than two under TCG (run --smp asks for more). -cpu max gives the
	# guest svm for nested KVM.
	printf '%s\n' -machine q35 -accel tcg -cpu max -smp "${GUEST_SMP:-1}" -m 2048 \
		-nodefaults -no-user-config -display none -no-reboot \
		"${iommu[@]}" \
		-kernel "$kernel" -initrd "$CACHE_DIR/initramfs.cpio" \
		-append "$cmdline" \
		-chardev "file,id=console,path=$run/console.log" -serial chardev:console \
		-chardev "file,id=stdout,path=$run/stdout" -serial chardev:stdout \
		-chardev "file,id=stderr,path=$run/stderr" -serial chardev:stderr
	topology_args "$topology"
	share root / 10.0 readonly=on
	share ctl "$ctl" 11.0
	share out "$out" 12.0
}
