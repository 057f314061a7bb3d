#!/bin/sh
# Fetch Debian's busybox-static and bash-static .debs (without installing them system-wide),
# unpack them under BUILD/third_party and copy the binaries to BUILD/busybox and BUILD/bash.
# Usage: fetch-third-party.sh BUILD_DIR
# Skips the download when the .debs are already in BUILD/debs.
set -e
BUILD=${1:?usage: fetch-third-party.sh BUILD_DIR}
mkdir -p "$BUILD/debs" "$BUILD/third_party"
BUILD=$(cd "$BUILD" && pwd)
PKGS="busybox-static bash-static"

have_deb() { ls "$BUILD/debs/$1"_*.deb >/dev/null 2>&1; }

missing=
for p in $PKGS; do have_deb "$p" || missing="$missing $p"; done

if [ -n "$missing" ]; then
    if [ "$(id -u)" = 0 ]; then SUDO=; else SUDO="sudo -n"; fi
    # apt-get download as root warns that _apt cannot write the target dir; drop privileges
    # for the download itself via the sandbox user setting.
    dl() { (cd "$BUILD/debs" && apt-get download -qq -o APT::Sandbox::User=root $missing) >/dev/null 2>&1; }
    if ! dl; then
        $SUDO apt-get update -qq >/dev/null 2>&1 || true
        if ! dl; then
            echo "guest_images: 'apt-get download$missing' failed (no Debian package lists or no network?)" >&2
            exit 1
        fi
    fi
fi

for p in $PKGS; do
    deb=$(ls "$BUILD/debs/$p"_*.deb | sort | tail -n 1)
    dpkg-deb -x "$deb" "$BUILD/third_party"
done

cp -f "$BUILD/third_party/bin/busybox" "$BUILD/busybox"
cp -f "$BUILD/third_party/bin/bash-static" "$BUILD/bash"
chmod 755 "$BUILD/busybox" "$BUILD/bash"
