#!/usr/bin/env bash
# Makes this host ready to build, test and serve: installs missing Debian packages and starts
# virtlogd and libvirtd when they are not running. Safe to run again and again.
set -euo pipefail

log() { printf '[setup] %s\n' "$*"; }

if [ "$(id -u)" -ne 0 ]; then
    echo "[setup] must run as root (installs packages, starts libvirtd)" >&2
    exit 1
fi

packages=(
    # hypervisor
    libvirt-daemon-system libvirt-clients libvirt-dev qemu-system-x86 qemu-utils
    # libvirt's NAT network for the guests (--network nat, the default), and always for smart
    # proxy resources' VMs: the host reaches their ports there (see README, "Smart proxy")
    dnsmasq-base
    # dhcp_release: a destroyed VM hands its NAT lease back (Hypervisor/DomainTeardown.swift)
    dnsmasq-utils
    # the smart proxy benchmark (bench/proxy_bench.sh)
    wrk
    # building the test image
    cpio busybox-static
    # building the browser image (`appliance image build`): debootstrap, mkfs.ext4 -d, strip
    debootstrap e2fsprogs binutils
    # building the appliance
    pkg-config libsqlite3-dev zlib1g-dev
    # the guest agent's browser tests (headless Chromium on the host)
    chromium
    # the VNC viewer page (noVNC, served from /usr/share/novnc), its browser test and the
    # bridge benchmark's baseline (websockify)
    novnc websockify chromium-driver python3-selenium python3-pil
    # /metrics in the tests is parsed by Prometheus' own client library (its text parser)
    python3-prometheus-client
    # the audio relay's encoder (libopus, libogg); opus-tools' opusdec decodes its streams in tests
    libopus-dev libogg-dev opus-tools
    # VM audio: the PulseAudio daemon the sinks live in, libpulse for capture, paplay/pacat in tests
    pulseaudio pulseaudio-utils libpulse-dev
    # QEMU's PulseAudio backend (audio-pa.so) lives in qemu-system-gui
    qemu-system-gui
    # the Python tools of the tests (schemathesis, from PyPI) live in a venv
    python3-venv curl
    # systemd-analyze verifies the unit `appliance install` writes (InstallTests)
    systemd
)
missing=()
for p in "${packages[@]}"; do
    dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q "install ok installed" || missing+=("$p")
done
if [ ${#missing[@]} -gt 0 ]; then
    log "installing: ${missing[*]}"
    export DEBIAN_FRONTEND=noninteractive
    apt-get update -qq
    apt-get install -y -qq --no-install-recommends "${missing[@]}" >/dev/null
else
    log "packages present"
fi

# Python tools from PyPI, in the repository's own venv (never in the system's Python).
repo=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
if [ ! -x "$repo/.venv-tools/bin/schemathesis" ]; then
    log "installing schemathesis into $repo/.venv-tools"
    /usr/bin/python3 -m venv "$repo/.venv-tools"
    "$repo/.venv-tools/bin/pip" install -q 'schemathesis>=4,<5'
fi

# Without udev, /dev/kvm keeps the kernel's root:root 0600 instead of Debian's root:kvm 0660.
# libvirt then finds KVM "enabled when probing but not available now" for the qemu user and
# re-probes QEMU's capabilities on every call, so domain starts hang. Restore Debian's mode.
if [ -c /dev/kvm ] && [ "$(stat -c '%G:%a' /dev/kvm)" != "kvm:660" ] && getent group kvm >/dev/null; then
    log "setting /dev/kvm to root:kvm 0660 (as Debian's udev rule would)"
    chgrp kvm /dev/kvm
    chmod 0660 /dev/kvm
fi

# No init system starts the daemons on these machines; start what is missing.
if ! pgrep -x virtlogd >/dev/null; then
    log "starting virtlogd"
    virtlogd -d
fi
if ! pgrep -x libvirtd >/dev/null; then
    log "starting libvirtd"
    libvirtd -d
fi
for _ in $(seq 1 50); do
    virsh -c qemu:///system version >/dev/null 2>&1 && break
    sleep 0.2
done
virsh -c qemu:///system version >/dev/null || { echo "[setup] libvirtd does not answer on qemu:///system" >&2; exit 1; }
log "libvirt ready: libvirt $(virsh -c qemu:///system version | awk '/Using library/{print $NF}'), QEMU $(qemu-system-x86_64 --version | awk 'NR==1{print $4}')"
