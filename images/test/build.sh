#!/usr/bin/env bash
# Builds the tiny vmcloud test image into OUT_DIR:
#   vmlinuz      Debian 12 cloud kernel (virtio drivers, boots in seconds under TCG)
#   initrd.img   busybox + virtio modules + the static guest agent (gzip'd cpio newc)
#   disk.qcow2   small blank qcow2 base (the host puts an overlay on it)
#   cmdline      kernel command line, one line
# Kernel command line options the init script understands (besides the kernel's own):
#   vmcloud.httpd=PORT  also serve HTTP on PORT (1-65535) with busybox httpd from /www:
#                       /index.html names the image and this boot's id, /cgi-bin/echo echoes
#                       the request (method, URI, query, boot id, body) as text/plain.
# Idempotent: downloads are cached in images/test/work (or $VMCLOUD_IMAGE_CACHE) and reused;
# outputs are rebuilt every run. Works on a fresh Debian 12 (root only for apt-get update).
set -euo pipefail

usage() { echo "usage: $0 OUT_DIR" >&2; exit 2; }
[[ $# -eq 1 && -n "$1" && "$1" != -* ]] || usage

step() { echo "==> $*"; }
die() { echo "build.sh: error: $*" >&2; exit 1; }
need() { command -v "$1" >/dev/null 2>&1 || die "'$1' not found; install it: $2"; }

HERE=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)
REPO=$(cd "$HERE/../.." && pwd)
mkdir -p "$1"
OUT=$(cd "$1" && pwd)
CACHE=${VMCLOUD_IMAGE_CACHE:-$HERE/work}
# Kernel command line: serial console for the boot log, reboot (= destroy) on panic.
CMDLINE="console=ttyS0 panic=-1 quiet"
# What the guest needs; their dependencies come from modules.dep. af_packet is for udhcpc;
# evdev + virtio_input give /dev/input/event* for the virtio tablet and the PS/2 keyboard (atkbd
# and i8042 are built in), where the agent counts input events.
WANTED_MODULES="virtio_pci virtio_console virtio_net virtio_blk af_packet evdev virtio_input"

step "checking tools"
[[ -x /opt/swift/usr/bin/swift ]] && PATH="$PATH:/opt/swift/usr/bin"
need cpio "apt-get install -y cpio"
need qemu-img "apt-get install -y qemu-utils"
need dpkg "dpkg is part of every Debian system"
need dpkg-deb "dpkg is part of every Debian system"
need apt-get "apt is part of every Debian system"
need apt-cache "apt is part of every Debian system"
need gzip "apt-get install -y gzip"
need strip "apt-get install -y binutils"
need swift "install the Swift toolchain (expected in /opt/swift/usr/bin)"
mkdir -p "$CACHE/debs"

# --- guest agent ---------------------------------------------------------------------------
step "building the static guest agent (swift build -c release, scratch path $REPO/.build-guest)"
(cd "$REPO" && swift build -c release --product guest-agent --scratch-path "$REPO/.build-guest" \
    -Xswiftc -static-executable)
AGENT_BIN="$REPO/.build-guest/release/guest-agent"
[[ -x "$AGENT_BIN" ]] || die "swift build produced no $AGENT_BIN"
if ldd "$AGENT_BIN" >/dev/null 2>&1; then
    die "$AGENT_BIN is dynamically linked; it cannot run in the busybox initramfs"
fi

# --- Debian packages -----------------------------------------------------------------------
# Prints the candidate version of a package, empty when apt-cache does not know it.
candidate() { apt-cache show --no-all-versions "$1" 2>/dev/null | awk '/^Version:/ {print $2; exit}'; }

step "resolving the kernel package from linux-image-cloud-amd64"
if [[ -z "$(candidate linux-image-cloud-amd64)" ]]; then
    step "apt-cache does not know linux-image-cloud-amd64: running apt-get update"
    apt-get update -qq || die "apt-get update failed"
fi
KPKG=$(apt-cache depends linux-image-cloud-amd64 2>/dev/null \
    | awk '$1 == "Depends:" && $2 ~ /^linux-image-[0-9]/ {print $2; exit}')
[[ -n "$KPKG" ]] || die "cannot resolve the kernel package behind linux-image-cloud-amd64"
echo "    kernel package: $KPKG"

# Downloads PACKAGE's candidate .deb into the cache unless it is there; prints its path.
fetch() {
    local pkg=$1 ver file
    ver=$(candidate "$pkg")
    [[ -n "$ver" ]] || die "apt-cache knows no candidate version of $pkg"
    file="$CACHE/debs/${pkg}_${ver//:/%3a}_amd64.deb"
    if [[ -s "$file" ]]; then
        echo "    reusing $(basename "$file")" >&2
    else
        echo "    downloading $pkg $ver" >&2
        # apt-get download writes into the current directory; as root it warns that the
        # download is unsandboxed, which is harmless here.
        (cd "$CACHE/debs" && apt-get download -q "$pkg=$ver" >&2) || die "apt-get download $pkg failed"
        [[ -s "$file" ]] || die "apt-get download did not produce $file"
    fi
    echo "$file"
}

# Unpacks a .deb once into the cache (dpkg -x), keyed by the .deb's file name.
unpack() {
    local deb=$1 dir
    dir="$CACHE/root-$(basename "$deb" .deb)"
    if [[ ! -f "$dir/.unpacked" ]]; then
        echo "    unpacking $(basename "$deb")" >&2
        rm -rf "$dir"
        dpkg -x "$deb" "$dir" || die "dpkg -x $deb failed"
        touch "$dir/.unpacked"
    fi
    echo "$dir"
}

step "fetching packages"
KDEB=$(fetch "$KPKG")
BBDEB=$(fetch busybox-static)
step "unpacking packages"
KROOT=$(unpack "$KDEB")
BBROOT=$(unpack "$BBDEB")

KVER=${KPKG#linux-image-}
MODDIR="$KROOT/lib/modules/$KVER"
[[ -f "$KROOT/boot/vmlinuz-$KVER" ]] || die "no vmlinuz-$KVER in $KDEB"
[[ -d "$MODDIR" ]] || die "no modules for $KVER in $KDEB"
BUSYBOX="$BBROOT/bin/busybox"
[[ -x "$BUSYBOX" ]] || die "no bin/busybox in $BBDEB"
# The init script, udhcpc script and the httpd CGI use these applets.
APPLETS=" $("$BUSYBOX" --list | tr '\n' ' ') "
for applet in sh mount insmod ip udhcpc sleep cut cat head printf httpd; do
    [[ "$APPLETS" == *" $applet "* ]] || die "$BUSYBOX has no $applet applet"
done
if [[ ! -s "$MODDIR/modules.dep" ]]; then
    # Debian runs depmod in the package's postinst, so a dpkg -x'd tree has no modules.dep.
    # The downloaded static busybox has depmod: no kmod needed on the build host.
    step "generating modules.dep with busybox depmod"
    "$BUSYBOX" depmod -b "$KROOT" "$KVER" || die "depmod failed"
    [[ -s "$MODDIR/modules.dep" ]] || die "depmod wrote no $MODDIR/modules.dep"
fi

# --- kernel modules --------------------------------------------------------------------------
step "resolving kernel modules for $KVER"
# Normalised module name (dashes = underscores, no directory, no .ko[.xz|.zst|.gz]).
modname() { local b=${1##*/}; b=${b%%.ko*}; echo "${b//-/_}"; }
declare -A MODPATH=() LOADED=()
while IFS=: read -r path _; do MODPATH[$(modname "$path")]=$path; done < "$MODDIR/modules.dep"
declare -A BUILTIN=()
while read -r path; do BUILTIN[$(modname "$path")]=1; done < "$MODDIR/modules.builtin"
LOAD_ORDER=()
# Depth-first: dependencies before the module itself, each module once.
resolve() {
    local name=$1 path dep
    [[ -n "${LOADED[$name]:-}" ]] && return
    LOADED[$name]=1
    path=${MODPATH[$name]}
    for dep in $(awk -F': *' -v p="$path" '$1 == p {print $2; exit}' "$MODDIR/modules.dep"); do
        resolve "$(modname "$dep")"
    done
    LOAD_ORDER+=("$path")
}
for m in $WANTED_MODULES; do
    if [[ -n "${BUILTIN[$m]:-}" ]]; then
        echo "    $m: built into the kernel"
    elif [[ -n "${MODPATH[$m]:-}" ]]; then
        resolve "$m"
    else
        die "kernel $KVER has no module $m and it is not built in"
    fi
done

# --- initramfs -------------------------------------------------------------------------------
STAGE="$CACHE/initramfs"
step "staging the initramfs in $STAGE"
rm -rf "$STAGE"
mkdir -p "$STAGE"/{bin,sbin,usr/bin,usr/sbin,etc,proc,sys,dev,run,tmp,lib/modules,www/cgi-bin}
cp "$BUSYBOX" "$STAGE/bin/busybox"
# One symlink per applet, in the directory busybox itself would install it to.
for applet in $("$BUSYBOX" --list-full); do
    [[ -e "$STAGE/$applet" ]] || ln -s /bin/busybox "$STAGE/$applet"
done
strip -o "$STAGE/usr/sbin/guest-agent" "$AGENT_BIN"
: > "$STAGE/lib/modules/load.list"
for path in "${LOAD_ORDER[@]}"; do
    file=${path##*/}
    case "$file" in
        *.ko)     cp "$MODDIR/$path" "$STAGE/lib/modules/$file" ;;
        *.ko.xz)  need xz "apt-get install -y xz-utils"; xz -dc "$MODDIR/$path" > "$STAGE/lib/modules/${file%.xz}"; file=${file%.xz} ;;
        *.ko.zst) need zstd "apt-get install -y zstd"; zstd -qdc "$MODDIR/$path" > "$STAGE/lib/modules/${file%.zst}"; file=${file%.zst} ;;
        *) die "unsupported module file $file" ;;
    esac
    echo "$file" >> "$STAGE/lib/modules/load.list"
    echo "    module $file"
done

# PID 1. It must never exit (the kernel would panic), so the agent runs in a respawn loop.
cat > "$STAGE/init" <<'EOF'
#!/bin/sh
export PATH=/usr/sbin:/usr/bin:/sbin:/bin
mount -t devtmpfs devtmpfs /dev
exec </dev/console >/dev/console 2>&1
mount -t proc proc /proc
mount -t sysfs sysfs /sys
mount -t tmpfs -o mode=0755 tmpfs /run
mount -t tmpfs tmpfs /tmp
# Markers carry the guest uptime so boot phases can be timed from the console log.
mark() { echo "vmcloud-test-image: $* (uptime $(cut -d' ' -f1 /proc/uptime))"; }
mark "loading modules"
for m in $(cat /lib/modules/load.list); do
    insmod "/lib/modules/$m" || echo "vmcloud-test-image: insmod $m failed"
done
ip link set lo up
# virtio_net probes synchronously on insmod, but give it a moment if it is late.
n=0
while [ ! -e /sys/class/net/eth0 ] && [ $n -lt 50 ]; do sleep 0.1; n=$((n + 1)); done
mark "dhcp on eth0"
# -b: carry on in the background if no lease comes (the agent reports ip=null then).
udhcpc -i eth0 -s /etc/udhcpc.script -t 5 -T 1 -b
# vmcloud.httpd=PORT: an HTTP server for tests (opt-in; without it nothing else changes).
httpd_port=
for arg in $(cat /proc/cmdline); do
    case "$arg" in vmcloud.httpd=*) httpd_port=${arg#vmcloud.httpd=} ;; esac
done
if [ -n "$httpd_port" ]; then
    case "$httpd_port" in
        *[!0-9]* | 0*) httpd_ok=no ;;
        *) if [ ${#httpd_port} -le 5 ] && [ "$httpd_port" -le 65535 ]; then httpd_ok=yes; else httpd_ok=no; fi ;;
    esac
    if [ "$httpd_ok" = yes ]; then
        boot_id=$(cat /proc/sys/kernel/random/boot_id)
        cat > /www/index.html <<HTML
<!DOCTYPE html>
<html><head><meta charset="utf-8"><title>vmcloud-test-guest</title></head>
<body><h1>vmcloud-test-guest</h1>
<p>boot_id=<span id="boot-id">$boot_id</span></p></body></html>
HTML
        # Restarted like the agent if it ever exits (-f: foreground, so the loop sees that).
        (
            while true; do
                httpd -f -p "$httpd_port" -h /www
                echo "vmcloud-test-image: httpd exited with status $?, restarting"
                sleep 1
            done
        ) &
        mark "httpd on port $httpd_port (boot id $boot_id)"
    else
        mark "ignoring vmcloud.httpd=$httpd_port: not a port 1-65535; no httpd"
    fi
fi
mark "agent starting"
# The Swift runtime seeds its hashing with getrandom(), which blocks until the kernel RNG is
# initialised: about 0.7 s of jitter entropy under TCG (no RDRAND on the qemu64 CPU). Fixed
# seeds are fine here: the only input is the host's, in lines of at most 64 KiB.
export SWIFT_DETERMINISTIC_HASHING=1
while true; do
    /usr/sbin/guest-agent
    echo "vmcloud-test-image: guest-agent exited with status $?, restarting"
    sleep 1
done
EOF
chmod 0755 "$STAGE/init"

# busybox udhcpc only reports the lease; this applies it with ip(8).
cat > "$STAGE/etc/udhcpc.script" <<'EOF'
#!/bin/sh
case "$1" in
deconfig)
    ip -4 addr flush dev "$interface"
    ip link set "$interface" up
    ;;
bound|renew)
    current=$(ip -4 -o addr show dev "$interface" | awk '{print $4}')
    if [ "$current" != "$ip/${mask:-24}" ]; then
        ip -4 addr flush dev "$interface"
        ip -4 addr add "$ip/${mask:-24}" dev "$interface"
        for r in $router; do ip route add default via "$r" dev "$interface"; break; done
        : > /etc/resolv.conf
        for d in $dns; do echo "nameserver $d" >> /etc/resolv.conf; done
        echo "vmcloud-test-image: $interface has $ip/${mask:-24}"
    fi
    ;;
esac
exit 0
EOF
chmod 0755 "$STAGE/etc/udhcpc.script"

# vmcloud.httpd's CGI (busybox httpd runs /www/cgi-bin/*): echoes the request back.
cat > "$STAGE/www/cgi-bin/echo" <<'EOF'
#!/bin/sh
# Lines method=, uri=, query=, boot_id=, then the request body (CONTENT_LENGTH bytes, at most 1 MiB).
export PATH=/usr/sbin:/usr/bin:/sbin:/bin
len=${CONTENT_LENGTH:-0}
case "$len" in '' | *[!0-9]*) len=0 ;; esac
if [ ${#len} -gt 7 ] || [ "$len" -gt 1048576 ]; then len=1048576; fi
printf 'Content-Type: text/plain\r\n\r\n'
printf 'method=%s\nuri=%s\nquery=%s\nboot_id=%s\n' "$REQUEST_METHOD" "$REQUEST_URI" "$QUERY_STRING" \
    "$(cat /proc/sys/kernel/random/boot_id)"
if [ "$len" -gt 0 ]; then head -c "$len"; fi
exit 0
EOF
chmod 0755 "$STAGE/www" "$STAGE/www/cgi-bin" "$STAGE/www/cgi-bin/echo"

step "writing $OUT/initrd.img (cpio newc, gzip)"
(cd "$STAGE" && find . -mindepth 1 | LC_ALL=C sort | cpio -o -H newc -R 0:0 --quiet) \
    | gzip -9 > "$OUT/initrd.img.tmp"
mv "$OUT/initrd.img.tmp" "$OUT/initrd.img"

step "writing $OUT/vmlinuz, $OUT/cmdline, $OUT/disk.qcow2"
cp "$KROOT/boot/vmlinuz-$KVER" "$OUT/vmlinuz"
echo "$CMDLINE" > "$OUT/cmdline"
rm -f "$OUT/disk.qcow2"
qemu-img create -q -f qcow2 "$OUT/disk.qcow2" 64M
# QEMU runs as libvirt-qemu: the image must be readable by others.
chmod 0644 "$OUT/vmlinuz" "$OUT/initrd.img" "$OUT/cmdline" "$OUT/disk.qcow2"

step "done: kernel $KVER"
ls -l "$OUT/vmlinuz" "$OUT/initrd.img" "$OUT/disk.qcow2" "$OUT/cmdline"
