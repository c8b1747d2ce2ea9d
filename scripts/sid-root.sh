#!/usr/bin/env bash
# Make (or refresh) a minimal Debian unstable root in chroot/sid with CPython 3.14 and 3.15
# (release and debug interpreters, public and internal headers), gcc, valgrind and pip, so
# that scripts/test.sh can build and test the extension on the versions pyenv does not have.
#
#   scripts/sid-root.sh          create it if missing, otherwise do nothing
#   scripts/sid-root.sh --run CMD...   run CMD inside the root (mounts /proc around it)
#
# Needs root (debootstrap and chroot). The mirror is the one the host's apt already uses, so
# no address is written into the repository. Idempotent: a finished root is marked by
# chroot/sid/.stackless-ready and is reused; a half-made one is removed and made again.
set -eu
cd "$(dirname "$0")/.."
root=$(pwd)/chroot/sid
packages="python3.14-dev python3.15-dev python3.14-venv python3.15-venv python3.14-dbg python3.15-dbg
          gcc libc6-dev valgrind ca-certificates"

host_mirror() {  # the first http(s) Debian mirror in the host's apt configuration
    local m
    m=$(sed -n 's/^URIs:[[:space:]]*\(http[^[:space:]]*debian\)\/\{0,1\}$/\1/p' \
        /etc/apt/sources.list.d/*.sources 2>/dev/null | head -1)
    if [ -z "$m" ]; then
        m=$(sed -n 's/^deb[[:space:]]\+\(http[^[:space:]]*debian\)\/\{0,1\}[[:space:]].*/\1/p' \
            /etc/apt/sources.list 2>/dev/null | head -1)
    fi
    [ -n "$m" ] || { echo "error: no Debian mirror found in the host's apt sources" >&2; return 1; }
    echo "$m"
}

# in_root CMD...: run CMD inside the root with /proc mounted and the host's CA bundle (pip
# inside the root needs the host's certificates; PIP_CERT/SSL_CERT_FILE name that path)
in_root() {
    if [ -f /etc/ssl/certs/ca-certificates.crt ]; then
        mkdir -p "$root/etc/ssl/certs"
        cp /etc/ssl/certs/ca-certificates.crt "$root/etc/ssl/certs/ca-certificates.crt"
    fi
    cp /etc/resolv.conf "$root/etc/resolv.conf" 2>/dev/null || true
    mountpoint -q "$root/proc" || mount -t proc proc "$root/proc"
    local rc=0
    chroot "$root" /usr/bin/env -i HOME=/root PATH=/usr/local/bin:/usr/bin:/bin:/usr/sbin:/sbin \
        LANG=C.UTF-8 ${PIP_CERT:+PIP_CERT=$PIP_CERT} ${SSL_CERT_FILE:+SSL_CERT_FILE=$SSL_CERT_FILE} \
        ${PIP_INDEX_URL:+PIP_INDEX_URL=$PIP_INDEX_URL} "$@" || rc=$?
    umount "$root/proc" 2>/dev/null || true
    return $rc
}

if [ "${1:-}" = --run ]; then
    shift
    in_root "$@"
    exit $?
fi

if [ -f "$root/.stackless-ready" ]; then
    exit 0
fi
if [ "$(id -u)" != 0 ]; then
    echo "error: making the Debian unstable root needs root (debootstrap, chroot)" >&2
    exit 1
fi
start=$(date +%s)
if ! command -v debootstrap >/dev/null; then
    apt-get install -y -q debootstrap >/dev/null || {
        apt-get update -q >/dev/null && apt-get install -y -q debootstrap >/dev/null
    }
fi
mirror=$(host_mirror)
umount "$root/proc" 2>/dev/null || true
rm -rf "$root"
mkdir -p "$root"
echo "debootstrap sid into chroot/sid (mirror from the host's apt sources)"
debootstrap --variant=minbase sid "$root" "$mirror" >"$root.log" 2>&1 || {
    tail -20 "$root.log" >&2
    exit 1
}
# the mirror may serve a Release file past its validity date; accept it
in_root apt-get -q -o Acquire::Check-Valid-Until=false update >>"$root.log" 2>&1
# shellcheck disable=SC2086
in_root env DEBIAN_FRONTEND=noninteractive apt-get install -y -q --no-install-recommends \
    $packages >>"$root.log" 2>&1 || {
    tail -20 "$root.log" >&2
    exit 1
}
touch "$root/.stackless-ready"
echo "Debian unstable root ready in $(($(date +%s) - start)) s"
