#!/usr/bin/env bash
# Boots Debian's kernel (which has the ipip module; this host's kernel has
# none) in QEMU with a tiny initramfs and runs one guest script against
# host-built tortie binaries:
#   felix (default): guest.sh, felix-apply on static inputs; the guest
#                    prints "IPIP-TEST: PASS".
#   lab:             guest-lab.sh, the whole product (`tortiectl lab up
#                    --mode ipip-crosssubnet`); prints "IPIP-LAB-TEST: PASS".
# Exit 0 only when the guest printed its PASS line.
#
# Usage: tests/ipip-vm/run.sh FELIX_APPLY_BINARY
#        IPIP_VM_GUEST=lab tests/ipip-vm/run.sh BIN_DIR
#          (BIN_DIR holds tortiectl, tortie-node, tortie and tortie-ipam)
# Env:   IPIP_VM_GUEST (felix | lab, default felix)
#        IPIP_VM_CACHE (default /var/cache/tortie-ipip-vm: the unpacked kernel)
#        QEMU_TIMEOUT (default 100 s for felix, 300 s for lab)
#        QEMU_MEM (default 512M for felix, 1536M for lab)
# Installs what it needs (qemu-system-x86, busybox-static, cpio, tcpdump) and
# downloads (never installs) the kernel package. TCG only: /dev/kvm here is a
# PVM device that hangs ordinary guests. The VM has no network card.
set -euo pipefail
HERE=$(cd "$(dirname "$0")" && pwd)
GUEST=${IPIP_VM_GUEST:-felix}
case "$GUEST" in
    felix) BIN=${1:?usage: run.sh FELIX_APPLY_BINARY}; SCRIPT=guest.sh; MARK="IPIP-TEST: PASS"
           TIMEOUT=${QEMU_TIMEOUT:-100}; MEM=${QEMU_MEM:-512M} ;;
    lab)   BIN=${1:?usage: IPIP_VM_GUEST=lab run.sh BIN_DIR}; SCRIPT=guest-lab.sh; MARK="IPIP-LAB-TEST: PASS"
           TIMEOUT=${QEMU_TIMEOUT:-300}; MEM=${QEMU_MEM:-1536M} ;;
    *) echo "ipip-vm: IPIP_VM_GUEST must be felix or lab, not $GUEST" >&2; exit 2 ;;
esac
CACHE=${IPIP_VM_CACHE:-/var/cache/tortie-ipip-vm}
MODS="ip_tunnel tunnel4 ipip veth bridge stp llc"
t0=$(date +%s)

need=()
command -v qemu-system-x86_64 >/dev/null || need+=(qemu-system-x86)
{ [ -x /bin/busybox ] && ! ldd /bin/busybox >/dev/null 2>&1; } || need+=(busybox-static)
command -v cpio >/dev/null || need+=(cpio)
command -v tcpdump >/dev/null || need+=(tcpdump)
command -v ping >/dev/null || need+=(iputils-ping)
if ((${#need[@]})); then
    echo "ipip-vm: installing ${need[*]}"
    export DEBIAN_FRONTEND=noninteractive
    apt-get update -qq
    apt-get install -y -qq -o DPkg::Lock::Timeout=600 --no-install-recommends "${need[@]}" >/dev/null
fi

# Kernel: the newest linux-image-*-amd64 Debian offers, unpacked once into the cache.
pkg=$(apt-cache depends linux-image-amd64 2>/dev/null | awk '/Depends: linux-image-[0-9]/{print $2; exit}')
if [ -z "$pkg" ]; then apt-get update -qq; pkg=$(apt-cache depends linux-image-amd64 | awk '/Depends: linux-image-[0-9]/{print $2; exit}'); fi
kver=${pkg#linux-image-}
kroot=$CACHE/$kver
if [ ! -r "$kroot/boot/vmlinuz-$kver" ]; then
    echo "ipip-vm: downloading $pkg"
    mkdir -p "$kroot"
    (cd "$CACHE" && apt-get download -q "$pkg" >/dev/null 2>&1)
    deb=$(ls "$CACHE/${pkg}_"*.deb | tail -1)
    pats=("./boot/vmlinuz-*")
    for m in $MODS; do pats+=("./lib/modules/*/$m.ko*"); done
    dpkg-deb --fsys-tarfile "$deb" | tar -x -C "$kroot" --wildcards "${pats[@]}"
    rm -f "$deb"
fi

work=$(mktemp -d /tmp/tortie-ipipvm.XXXXXX)
trap 'rm -rf "$work"' EXIT
root=$work/root
mkdir -p "$root"/{bin,sbin,usr/bin,usr/sbin,lib,lib64,etc,proc,sys,dev,run,tmp,mods,felix,opt/tortie,var/lib}
ln -s ../run "$root/var/run"   # CNI_NETNS is /var/run/netns/...
cp /bin/busybox "$root/bin/busybox"
for a in $(/bin/busybox --list); do [ -e "$root/bin/$a" ] || ln -s busybox "$root/bin/$a"; done
put() { # copy a binary and the libraries ldd lists, keeping paths
    mkdir -p "$(dirname "$root$2")"; cp -L "$1" "$root$2"
    { ldd "$1" 2>/dev/null || true; } | { grep -oE '/[^ ]+' || true; } | while read -r lib; do
        [ -e "$root$lib" ] || { mkdir -p "$(dirname "$root$lib")"; cp -L "$lib" "$root$lib"; }
    done
}
# Debian's busybox runs its own applets for ip/ping whatever PATH says: dash is /bin/sh.
rm -f "$root/bin/sh"; put "$(command -v dash)" /bin/sh
put "$(command -v ip)" /usr/sbin/ip
put "$(command -v tcpdump)" /usr/bin/tcpdump
put "$(command -v ping)" /usr/bin/ping
put_stripped() { # debug info would triple the initramfs (or more)
    strip -o "$work/${1##*/}" "$1" && put "$work/${1##*/}" "$2"
}
if [ "$GUEST" = felix ]; then
    put_stripped "$BIN" /felix/felix-apply
    GUEST_ENV="FELIX_BIN=/felix/felix-apply"
else
    # tortiectl finds tortie-node, tortie (CNI) and tortie-ipam in its own directory.
    for b in tortiectl tortie-node tortie tortie-ipam; do
        [ -x "$BIN/$b" ] || { echo "ipip-vm: $BIN/$b missing" >&2; exit 2; }
        put_stripped "$BIN/$b" "/opt/tortie/$b"
    done
    GUEST_ENV="TORTIECTL=/opt/tortie/tortiectl"
fi
cp "$HERE/$SCRIPT" "$root/guest.sh"
printf 'root:x:0:0:root:/root:/bin/sh\n' >"$root/etc/passwd"
printf '127.0.0.1 localhost\n' >"$root/etc/hosts"
printf 'root:x:0:\n' >"$root/etc/group"
for m in $MODS; do
    ko=$(find "$kroot/lib/modules" -name "$m.ko*" | head -1)
    [ -n "$ko" ] || { echo "ipip-vm: module $m missing from $pkg" >&2; exit 2; }
    case "$ko" in
        *.xz) xz -dc "$ko" >"$root/mods/$m.ko" ;;
        *.zst) zstd -qdc "$ko" >"$root/mods/$m.ko" ;;
        *) cp "$ko" "$root/mods/$m.ko" ;;
    esac
done
cat >"$root/init" <<INIT
#!/bin/sh
export PATH=/usr/sbin:/usr/bin:/sbin:/bin
mount -t proc proc /proc; mount -t sysfs sys /sys; mount -t devtmpfs dev /dev
mount -t tmpfs tmp /tmp; mount -t tmpfs run /run
hostname tortie-vm
for m in ip_tunnel tunnel4 ipip veth llc stp bridge; do insmod /mods/\$m.ko 2>/dev/null || echo "insmod \$m failed"; done
$GUEST_ENV /bin/sh /guest.sh
poweroff -f
INIT
chmod +x "$root/init"
(cd "$root" && find . | cpio -o -H newc --quiet) >"$work/initrd"
echo "ipip-vm: guest $GUEST, kernel $kver, initramfs $(du -h "$work/initrd" | cut -f1), setup $(( $(date +%s) - t0 )) s"

log=$work/console.log
timeout "$TIMEOUT" qemu-system-x86_64 -accel tcg -M pc -cpu max -smp 2 -m "$MEM" \
    -nodefaults -no-user-config -display none -serial stdio -no-reboot \
    -kernel "$kroot/boot/vmlinuz-$kver" -initrd "$work/initrd" \
    -append "console=ttyS0 panic=-1 quiet loglevel=3 rdinit=/init" </dev/null 2>&1 | tee "$log" || true
echo "ipip-vm: total $(( $(date +%s) - t0 )) s"
grep -q "^$MARK" "$log"
