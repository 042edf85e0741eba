# Devices a caller asks for (run --device SPEC), on top of the topology:
# QEMU's arguments, and the list the guest's init binds from. Sourced by run.
#
#   SPEC = KIND[,name=NAME][,file=PATH][,size=SIZE][,serial=S][,bridge=BR][,root][,host]
#   KIND     edu | nvme | e1000e
#   name=    what the command finds it by: VFIO_GUEST_DEVICE_<NAME>=<bdf> (default KIND0, KIND1, ...)
#   file=    nvme: the raw disk image (default: a fresh sparse one of size=, 64M)
#   serial=  nvme: the serial number Identify Controller reports (default vfioN)
#   bridge=  behind the PCIe-to-PCI bridge BR (made once per name): its devices share one IOMMU group
#   root     on the root complex itself (an integrated endpoint, its own group), not behind a root port
#   host     left on its host driver (e1000e's is loaded; other kinds stay without one), not vfio-pci
# By default each device sits behind a pcie-root-port of its own: its own IOMMU group.
#
# Slots 00:14.0 to 00:1e.0 are ours; the topologies use 03.0 to 07.0 and the shares 10.0 to 12.0.

# compose_devices RUNDIR CTLDIR SPEC... — QEMU args (one per line) on stdout; "$CTLDIR/devices" for init.
compose_devices() {
	local run=$1 ctl=$2 spec kind name file size serial place bind slot=$((0x14)) n=0 i
	shift 2
	local -A bridges=() bridge_next=() names=() counts=()
	: >"$ctl/devices"
	for spec in "$@"; do
		IFS=, read -r -a parts <<<"$spec"
		kind=${parts[0]} name='' file='' size=64M serial='' place=port bind=vfio
		case $kind in edu | nvme | e1000e) ;; *) die "--device $spec: unknown kind '$kind' (edu, nvme, e1000e)" ;; esac
		for p in "${parts[@]:1}"; do
			case $p in
			name=*) name=${p#name=} ;;
			file=*) file=${p#file=} ;;
			size=*) size=${p#size=} ;;
			serial=*) serial=${p#serial=} ;;
			bridge=*) place=bridge:${p#bridge=} ;;
			root) place=root ;;
			host) bind=host ;;
			*) die "--device $spec: unknown option '$p' (name=, file=, size=, serial=, bridge=, root, host)" ;;
			esac
		done
		if [ -z "$name" ]; then
			i=${counts[$kind]:-0}
			counts[$kind]=$((i + 1))
			name=$kind$i
		fi
		[[ $name =~ ^[A-Za-z][A-Za-z0-9_]{0,31}$ ]] || die "--device $spec: name must be a letter then letters, digits or _"
		[ -z "${names[$name]:-}" ] || die "--device $spec: two devices named $name"
		names[$name]=1
		[ -z "$file" ] || [ "$kind" = nvme ] || die "--device $spec: file= is for nvme"
		[ -z "$serial" ] || [ "$kind" = nvme ] || die "--device $spec: serial= is for nvme"
		[[ $serial =~ ^[A-Za-z0-9_-]{0,20}$ ]] || die "--device $spec: serial= wants up to 20 letters, digits, - or _"
		[[ $size =~ ^[0-9]+[KMG]?$ ]] || die "--device $spec: size= wants a number with K, M or G"
		[ "$slot" -le $((0x1e)) ] || die "--device: too many devices and bridges (11 slots)"
		n=$((n + 1))
		local bus addr port dslot
		case $place in
		port)
			printf '%s\n' -device "pcie-root-port,id=vrp$n,chassis=$((0x40 + n)),slot=$((0x40 + n)),addr=$(printf %02x "$slot").0"
			bus=vrp$n addr=0.0 port=$(printf %02x "$slot") dslot=00
			slot=$((slot + 1))
			;;
		root)
			bus=pcie.0 addr=$(printf %02x "$slot").0 port=- dslot=$(printf %02x "$slot")
			slot=$((slot + 1))
			;;
		bridge:*)
			local br=${place#bridge:}
			[[ $br =~ ^[A-Za-z0-9_]{1,32}$ ]] || die "--device $spec: bridge= wants a name of letters, digits or _"
			if [ -z "${bridges[$br]:-}" ]; then
				printf '%s\n' -device "pcie-pci-bridge,id=vbr_$br,addr=$(printf %02x "$slot").0"
				bridges[$br]=$(printf %02x "$slot")
				bridge_next[$br]=1
				slot=$((slot + 1))
			fi
			i=${bridge_next[$br]}
			bridge_next[$br]=$((i + 1))
			bus=vbr_$br addr=$(printf %02x "$i").0 port=${bridges[$br]} dslot=$(printf %02x "$i")
			;;
		esac
		case $kind in
		edu) printf '%s\n' -device "edu,bus=$bus,addr=$addr" ;;
		e1000e)
			printf '%s\n' -netdev "user,id=vnet$n,restrict=on" -device "e1000e,bus=$bus,addr=$addr,netdev=vnet$n"
			;;
		nvme)
			if [ -z "$file" ]; then
				file=$run/$name.img
				truncate -s "$size" "$file" || die "--device $spec: cannot make $file"
			fi
			[ -f "$file" ] && [ -r "$file" ] || die "--device $spec: no such readable file: $file"
			file=$(cd "$(dirname "$file")" && pwd)/$(basename "$file")
			printf '%s\n' -drive "if=none,id=vdisk$n,format=raw,file=${file//,/,,}" \
				-device "nvme,bus=$bus,addr=$addr,serial=${serial:-vfio$n},drive=vdisk$n"
			;;
		esac
		echo "$name $kind $port $dslot $bind" >>"$ctl/devices"
	done
}
