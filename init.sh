#!/usr/bin/env bash
# Provisions a Debian 12 root file system as the vmcloud browser image.
#
# Run as root inside a chroot of a `debootstrap --variant=minbase bookworm` tree (that is what
# `appliance image build` does, with /proc, /sys, /dev and a tmpfs /run mounted) or in a fresh
# Debian 12 VM. Idempotent: every step checks or overwrites, so running it twice is harmless.
#
#   GUEST_AGENT=/path/to/guest-agent init.sh      or      init.sh /path/to/guest-agent
#   MIRROR=http://... (optional) is the Debian archive apt uses (default deb.debian.org).
#
# The result boots with direct kernel boot (root=/dev/vda) and runs, without a display manager:
#   vmcloud-xorg.service     Xorg on :0 (the VM's VGA through the bochs DRM driver), Restart=always
#   vmcloud-audio.service    unmutes the HDA card's Master at 90 % (ALSA starts muted)
#   pulseaudio-system.service  one system-wide PulseAudio the browser user talks to
#   systemd-networkd         DHCP on the virtio NIC, systemd-resolved for DNS
#   vmcloud-agent.service    /usr/local/sbin/guest-agent --browser chromium, Restart=always
#   vmcloud-clipboard.service  spice-vdagent on :0: X's CLIPBOARD <-> QEMU's vdagent <-> VNC
# Chromium is installed and configured here but started, stopped and reset by the guest agent.
set -euo pipefail
export DEBIAN_FRONTEND=noninteractive LC_ALL=C.UTF-8 PATH=/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin

step() { printf '[init.sh] ==> %s\n' "$*"; }
note() { printf '[init.sh]     %s\n' "$*"; }
die() { printf '[init.sh] error: %s\n' "$*" >&2; exit 1; }

# Writes stdin to FILE only when the content differs; prints whether it changed. Returns 0 when
# the file changed, so callers can react (daemon reloads, initramfs rebuilds) only when needed.
put() {
    local file=$1 mode=${2:-0644} tmp
    tmp=$(mktemp)
    cat > "$tmp"
    if [[ -f "$file" ]] && cmp -s "$tmp" "$file"; then
        rm -f "$tmp"; chmod "$mode" "$file"; return 1
    fi
    mkdir -p "$(dirname "$file")"
    mv "$tmp" "$file"; chmod "$mode" "$file"
    note "wrote $file"
    return 0
}

AGENT_SRC=${1:-${GUEST_AGENT:-}}
BROWSER_USER=browser

step "checking the environment"
[[ $(id -u) -eq 0 ]] || die "must run as root"
grep -q '^VERSION_CODENAME=bookworm' /etc/os-release || die "expects Debian 12 (bookworm)"
if [[ -n "$AGENT_SRC" ]]; then
    [[ -f "$AGENT_SRC" && -x "$AGENT_SRC" ]] || die "guest agent '$AGENT_SRC' is not an executable file"
elif [[ ! -x /usr/local/sbin/guest-agent ]]; then
    die "no guest agent: pass its path as GUEST_AGENT=... or as the first argument"
fi

# --- packages --------------------------------------------------------------------------------
step "configuring apt and dpkg (no recommends, no docs/man/translations, no unused drivers)"
put /etc/apt/apt.conf.d/90vmcloud <<'EOF' || true
// The image stays lean: only hard dependencies.
APT::Install-Recommends "false";
APT::Install-Suggests "false";
Acquire::Languages "none";
EOF
# path-exclude keeps these out at unpack time, so package upgrades stay consistent with dpkg's
# view. The kernel drivers excluded here are hardware a QEMU guest never has.
put /etc/dpkg/dpkg.cfg.d/90vmcloud-exclude <<'EOF' || true
path-exclude /usr/share/doc/*
path-include /usr/share/doc/*/copyright
path-exclude /usr/share/man/*
path-exclude /usr/share/info/*
path-exclude /usr/share/locale/*
path-include /usr/share/locale/locale.alias
path-exclude /lib/modules/*/kernel/drivers/gpu/drm/amd/*
path-exclude /lib/modules/*/kernel/drivers/gpu/drm/nouveau/*
path-exclude /lib/modules/*/kernel/drivers/gpu/drm/radeon/*
path-exclude /lib/modules/*/kernel/drivers/gpu/drm/i915/*
path-exclude /lib/modules/*/kernel/drivers/net/wireless/*
path-exclude /lib/modules/*/kernel/drivers/net/ethernet/*
path-exclude /lib/modules/*/kernel/drivers/media/*
path-exclude /lib/modules/*/kernel/drivers/infiniband/*
path-exclude /lib/modules/*/kernel/drivers/staging/*
path-exclude /lib/modules/*/kernel/drivers/bluetooth/*
path-exclude /lib/modules/*/kernel/drivers/isdn/*
path-exclude /lib/modules/*/kernel/net/wireless/*
path-exclude /lib/modules/*/kernel/net/mac80211/*
path-exclude /lib/modules/*/kernel/net/bluetooth/*
path-exclude /lib/modules/*/kernel/sound/soc/*
EOF
# Chromium gets its security updates through bookworm-security. MIRROR (the builder's --mirror)
# replaces the main archive; security updates always come from Debian's security archive.
put /etc/apt/sources.list <<EOF || true
deb ${MIRROR:-http://deb.debian.org/debian} bookworm main
deb ${MIRROR:-http://deb.debian.org/debian} bookworm-updates main
deb http://deb.debian.org/debian-security bookworm-security main
EOF
# Small initramfs: only what mounting root=/dev/vda needs (MODULES=most would pull in every
# storage driver and slow the unpacking under TCG). Written before the kernel is installed so
# its postinst builds the right one straight away.
initramfs_changed=0
put /etc/initramfs-tools/conf.d/90vmcloud <<'EOF' && initramfs_changed=1
MODULES=list
COMPRESS=zstd
EOF
put /etc/initramfs-tools/modules <<'EOF' && initramfs_changed=1
# root=/dev/vda on ext4 (virtio-blk over virtio-pci)
virtio_pci
virtio_blk
ext4
crc32c_generic
EOF
# Services must not start inside a chroot during installation; removed again on exit.
if [[ ! -e /usr/sbin/policy-rc.d ]]; then
    printf '#!/bin/sh\nexit 101\n' > /usr/sbin/policy-rc.d
    chmod 0755 /usr/sbin/policy-rc.d
    trap 'rm -f /usr/sbin/policy-rc.d' EXIT
fi

PACKAGES=(
    # boot: systemd as init, device nodes and module loading, the kernel and its initramfs
    systemd-sysv udev kmod dbus linux-image-amd64 initramfs-tools zstd
    # network: DHCP by systemd-networkd, DNS by systemd-resolved
    iproute2 systemd-resolved
    # display: Xorg on the bochs DRM device (modesetting is part of xserver-xorg-core)
    xserver-xorg-core xserver-xorg-video-fbdev xserver-xorg-input-libinput xinit
    # sound and the browser
    pulseaudio alsa-utils chromium fonts-dejavu-core
    # TLS roots for https homepages
    ca-certificates
    # clipboard: X's CLIPBOARD <-> QEMU's qemu-vdagent channel (see "clipboard" below)
    spice-vdagent
)
missing=()
for p in "${PACKAGES[@]}"; do
    dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q "install ok installed" || missing+=("$p")
done
if [[ ${#missing[@]} -gt 0 ]]; then
    step "installing ${#missing[@]} packages: ${missing[*]}"
    apt-get update -q
    apt-get install -y -q -o Dpkg::Use-Pty=0 "${missing[@]}"
    initramfs_changed=1
else
    step "packages already installed"
fi
step "cleaning the apt cache"
apt-get clean
rm -rf /var/lib/apt/lists/* /usr/share/doc/*/changelog* /usr/share/man/* /usr/share/info/*

# --- initramfs -------------------------------------------------------------------------------
step "checking the initramfs (virtio_blk + ext4 for root=/dev/vda)"
for initrd in /boot/initrd.img-*; do
    [[ -f "$initrd" ]] || die "no /boot/initrd.img-* after installing linux-image-amd64"
    contents=$(lsinitramfs "$initrd")
    if [[ $initramfs_changed -eq 1 ]] || ! grep -q '/virtio_blk\.ko' <<<"$contents" \
        || ! grep -q '/ext4\.ko' <<<"$contents"; then
        note "regenerating $initrd"
        update-initramfs -u -k "${initrd#/boot/initrd.img-}"
        contents=$(lsinitramfs "$initrd")
    fi
    grep -q '/virtio_blk\.ko' <<<"$contents" || die "$initrd lacks virtio_blk"
    grep -q '/ext4\.ko' <<<"$contents" || die "$initrd lacks ext4"
    note "$initrd: $(du -h "$initrd" | cut -f1), has virtio_blk and ext4"
done

# --- base system -----------------------------------------------------------------------------
step "base system: hostname, fstab, locale"
put /etc/hostname <<<"vmcloud-browser" || true
put /etc/hosts <<'EOF' || true
127.0.0.1 localhost
127.0.1.1 vmcloud-browser
::1 localhost ip6-localhost ip6-loopback
EOF
# Every VM boots from a fresh overlay of a cleanly unmounted file system: no fsck pass.
put /etc/fstab <<'EOF' || true
/dev/vda / ext4 rw,noatime 0 0
EOF
put /etc/default/locale <<<"LANG=C.UTF-8" || true
# A machine-id is generated per boot (the overlay is thrown away); an empty file means "not set".
: > /etc/machine-id
# The console on ttyS0 (console=ttyS0) gets a root shell for debugging. On the appliance the
# serial port is a log file on the host, so nobody can type into it.
put /etc/systemd/system/serial-getty@ttyS0.service.d/autologin.conf <<'EOF' || true
[Service]
ExecStart=
ExecStart=-/sbin/agetty --autologin root --noclear --keep-baud 115200,57600,38400,9600 %I $TERM
EOF
# Nothing uses these in a throwaway VM; each costs boot time under TCG.
for unit in apt-daily.timer apt-daily-upgrade.timer e2scrub_all.timer e2scrub_reap.service \
    fstrim.timer systemd-timesyncd.service; do
    systemctl mask -q "$unit" 2>/dev/null || true
done

step "user $BROWSER_USER (audio, video, pulse-access)"
id -u "$BROWSER_USER" >/dev/null 2>&1 || useradd --create-home --shell /bin/bash "$BROWSER_USER"
usermod -a -G audio,video,pulse-access "$BROWSER_USER"

# --- network ---------------------------------------------------------------------------------
step "network: DHCP on the virtio NIC (systemd-networkd), DNS (systemd-resolved)"
put /etc/systemd/network/20-vmcloud-dhcp.network <<'EOF' || true
# The virtio NIC is enp1s0 on the pc machine type; match every wired name to be safe.
[Match]
Name=en* eth*

[Network]
DHCP=ipv4
LinkLocalAddressing=no
IPv6AcceptRA=no

# Every clone of this image shares its files, so an identity derived from them (networkd's
# default DUID comes from the machine-id) would give every VM on the NAT network one lease.
# The MAC is the one thing libvirt makes unique per VM.
[DHCPv4]
ClientIdentifier=mac
EOF
# network-online.target (the agent waits for it so its hello carries the IP) must not hang
# the boot when no lease comes: any one link, 20 s at most.
put /etc/systemd/system/systemd-networkd-wait-online.service.d/vmcloud.conf <<'EOF' || true
[Service]
ExecStart=
ExecStart=/lib/systemd/systemd-networkd-wait-online --any --timeout=20
EOF
systemctl enable -q systemd-networkd.service systemd-resolved.service systemd-networkd-wait-online.service
# resolved's stub. Inside the build chroot /run is a tmpfs the builder fills with the host's
# resolv.conf under this path, so apt keeps resolving names on later runs.
ln -sfn ../run/systemd/resolve/stub-resolv.conf /etc/resolv.conf

# --- display ---------------------------------------------------------------------------------
step "display: Xorg on :0 via modesetting on the bochs DRM device, started by systemd"
# QEMU's std VGA (<video><model type='vga'/>) is driven by the bochs DRM driver; load it early.
put /etc/modules-load.d/vmcloud.conf <<'EOF' || true
bochs
snd_hda_intel
EOF
put /etc/X11/xorg.conf.d/10-vmcloud.conf <<'EOF' || true
# No GPU in the VM: plain modesetting with a shadow framebuffer. Glamor would render with
# llvmpipe on the CPU, which is slower than no acceleration at all.
Section "Device"
    Identifier "vga"
    Driver "modesetting"
    Option "AccelMethod" "none"
EndSection

Section "ServerFlags"
    Option "BlankTime" "0"
    Option "StandbyTime" "0"
    Option "SuspendTime" "0"
    Option "OffTime" "0"
    Option "DontVTSwitch" "true"
EndSection
EOF
# Plain Xorg, no display manager and no session: the guest agent starts Chromium as
# $BROWSER_USER with DISPLAY=:0. Without -auth the server accepts every local client, which is
# what a single-purpose VM wants (no XAUTHORITY to pass around).
put /etc/systemd/system/vmcloud-xorg.service <<'EOF' || true
[Unit]
Description=vmcloud Xorg on :0 (VM display)
After=systemd-udev-settle.service systemd-modules-load.service
Before=vmcloud-agent.service

[Service]
# Xorg needs the DRM device; udev creates it once the bochs module has probed.
ExecStartPre=/bin/sh -c 'for i in $(seq 100); do [ -e /dev/dri/card0 ] && exit 0; sleep 0.2; done; echo "no /dev/dri/card0" >&2; exit 1'
ExecStart=/usr/lib/xorg/Xorg :0 vt7 -nolisten tcp -noreset -novtswitch -s 0 -dpms -logfile /var/log/Xorg.0.log
Restart=always
RestartSec=1

[Install]
WantedBy=multi-user.target
EOF
systemctl enable -q vmcloud-xorg.service

# --- audio -----------------------------------------------------------------------------------
step "audio: HDA unmuted at 90 % at boot, one system-wide PulseAudio"
# ALSA leaves the HDA mixer muted; a VM without a sound device just logs and succeeds.
put /usr/local/sbin/vmcloud-unmute 0755 <<'EOF' || true
#!/bin/sh
# Waits up to 10 s for card 0 (snd_hda_intel probes asynchronously), then unmutes Master.
for i in $(seq 50); do [ -e /proc/asound/card0 ] && break; sleep 0.2; done
if [ ! -e /proc/asound/card0 ]; then echo "vmcloud-unmute: no sound card"; exit 0; fi
amixer -q -c0 sset Master 90% unmute || echo "vmcloud-unmute: no Master control on card 0"
amixer -q -c0 sset PCM 100% unmute 2>/dev/null || true
amixer -c0 sget Master
EOF
put /etc/systemd/system/vmcloud-audio.service <<'EOF' || true
[Unit]
Description=vmcloud: unmute the sound card
After=alsa-restore.service systemd-modules-load.service
Before=pulseaudio-system.service

[Service]
Type=oneshot
RemainAfterExit=yes
ExecStart=/usr/local/sbin/vmcloud-unmute

[Install]
WantedBy=multi-user.target
EOF
# System mode: one daemon from boot, independent of the browser's profile (which the agent
# wipes on reset) and of any login session. Clients find it through client.conf below.
put /etc/systemd/system/pulseaudio-system.service <<'EOF' || true
[Unit]
Description=PulseAudio (system-wide, for the browser)
After=vmcloud-audio.service sound.target

[Service]
ExecStart=/usr/bin/pulseaudio --system --daemonize=no --disallow-exit --disallow-module-loading --realtime=no --log-target=journal
Restart=always
RestartSec=1

[Install]
WantedBy=multi-user.target
EOF
put /etc/pulse/client.conf.d/90-vmcloud.conf <<'EOF' || true
default-server = unix:/var/run/pulse/native
autospawn = no
EOF
# Per-user daemons would compete with the system one for the card.
systemctl --global mask -q pulseaudio.service pulseaudio.socket 2>/dev/null || true
systemctl enable -q vmcloud-audio.service pulseaudio-system.service

# --- clipboard -------------------------------------------------------------------------------
step "clipboard: spice-vdagentd + spice-vdagent on :0 (QEMU's qemu-vdagent channel)"
# QEMU's VNC server shares its clipboard with the guest only through the qemu-vdagent chardev
# (virtio port com.redhat.spice.0). spice-vdagentd owns that port (started by the package's
# socket when a client connects); spice-vdagent is the X client that owns X's CLIPBOARD.
# There is no login session (no display manager), so the daemon must not ask logind which
# agent belongs to the active session (-X): it serves the one agent that connects.
put /etc/default/spice-vdagentd <<'EOF' || true
SPICE_VDAGENTD_EXTRA_ARGS="-X"
EOF
put /usr/local/sbin/vmcloud-clipboard 0755 <<'EOF' || true
#!/bin/sh
# Waits for the vdagent port and for Xorg, then runs the X session agent in the foreground.
# A VM defined without the channel (no screen) has no port: nothing to do, exit cleanly.
for i in $(seq 100); do [ -e /dev/virtio-ports/com.redhat.spice.0 ] && break; sleep 0.2; done
if [ ! -e /dev/virtio-ports/com.redhat.spice.0 ]; then echo "vmcloud-clipboard: no vdagent port"; exit 0; fi
for i in $(seq 100); do [ -e /tmp/.X11-unix/X0 ] && break; sleep 0.2; done
exec /usr/bin/spice-vdagent -x
EOF
put /etc/systemd/system/vmcloud-clipboard.service <<EOF || true
[Unit]
Description=vmcloud clipboard: spice-vdagent on :0
After=vmcloud-xorg.service spice-vdagentd.socket
Wants=spice-vdagentd.socket

[Service]
User=$BROWSER_USER
Environment=DISPLAY=:0
ExecStart=/usr/local/sbin/vmcloud-clipboard
# It exits when Xorg restarts or the daemon goes away; a clean exit means "no channel".
Restart=on-failure
RestartSec=1

[Install]
WantedBy=multi-user.target
EOF
# The package's desktop autostart and user unit are for desktop sessions; this image has none.
systemctl enable -q spice-vdagentd.socket vmcloud-clipboard.service

# --- chromium --------------------------------------------------------------------------------
step "chromium: managed policies and default flags"
put /etc/chromium/policies/managed/vmcloud.json <<'EOF' || true
{
  "DefaultBrowserSettingEnabled": false,
  "TranslateEnabled": false,
  "PasswordManagerEnabled": false,
  "AutofillAddressEnabled": false,
  "AutofillCreditCardEnabled": false,
  "BrowserSignin": 0,
  "SyncDisabled": true,
  "MetricsReportingEnabled": false,
  "BackgroundModeEnabled": false,
  "PromotionalTabsEnabled": false,
  "BrowserAddPersonEnabled": false,
  "BrowserGuestModeEnabled": false,
  "ComponentUpdatesEnabled": false,
  "SpellcheckEnabled": false
}
EOF
# /usr/bin/chromium sources /etc/chromium.d/* and appends CHROMIUM_FLAGS to every start.
# --disable-gpu: the VM has no GPU, software compositing beats SwiftShader emulation.
put /etc/chromium.d/90-vmcloud <<'EOF' || true
# vmcloud browser image defaults (the guest agent adds the profile, the debugging port, and --kiosk for a kiosk batch).
export CHROMIUM_FLAGS="$CHROMIUM_FLAGS --no-first-run --no-default-browser-check --disable-translate --disable-features=Translate,MediaRouter --password-store=basic --hide-crash-restore-bubble --noerrdialogs --disable-gpu --disable-background-networking"
# No window manager: a window would open default-sized at 10,10. Cover the display,
# whose mode Xorg took from the DRM connector's preferred (first) mode.
vmcloud_mode=$(head -qn1 /sys/class/drm/card*-*/modes 2>/dev/null | head -n1)
case "$vmcloud_mode" in
    [0-9]*x[0-9]*) CHROMIUM_FLAGS="$CHROMIUM_FLAGS --window-position=0,0 --window-size=${vmcloud_mode%%x*},${vmcloud_mode#*x}" ;;
esac
EOF

# --- guest agent -----------------------------------------------------------------------------
step "guest agent: /usr/local/sbin/guest-agent and vmcloud-agent.service"
if [[ -n "$AGENT_SRC" ]]; then
    if ! cmp -s "$AGENT_SRC" /usr/local/sbin/guest-agent; then
        install -m 0755 "$AGENT_SRC" /usr/local/sbin/guest-agent
        note "installed $AGENT_SRC"
    else
        note "unchanged"
    fi
fi
# Runs as root: it opens the virtio-serial port and starts Chromium as $BROWSER_USER.
put /etc/systemd/system/vmcloud-agent.service <<'EOF' || true
[Unit]
Description=vmcloud guest agent (virtio-serial org.vmcloud.agent.0)
Wants=network-online.target
After=network-online.target vmcloud-xorg.service pulseaudio-system.service

[Service]
# The Swift runtime seeds hashing with getrandom(), which blocks until the kernel RNG is
# ready (seconds under TCG). The agent's only input is the host's bounded lines.
Environment=SWIFT_DETERMINISTIC_HASHING=1
ExecStart=/usr/local/sbin/guest-agent --browser chromium
Restart=always
RestartSec=1

[Install]
WantedBy=multi-user.target
EOF
systemctl enable -q vmcloud-agent.service

# Package scripts may have written a machine-id since the top of this file; every clone must
# generate its own at boot (systemd takes the VM's SMBIOS UUID, unique per libvirt domain).
: > /etc/machine-id
rm -f /var/lib/dbus/machine-id /var/lib/systemd/random-seed

step "done: $(du -sxh / 2>/dev/null | cut -f1) in /; kernel $(ls /boot/vmlinuz-* | sed 's|/boot/vmlinuz-||' | tr '\n' ' ')"
