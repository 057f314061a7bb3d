#!/bin/sh
# ensure-package.sh COMMAND PACKAGE: make sure COMMAND exists; install Debian's PACKAGE if it does
# not (musl-gcc from musl-tools for the musl builds, gdb for tests/test_gdb.py).
# Idempotent and quiet: prints nothing when COMMAND is already there.
set -e
cmd=$1 pkg=$2
command -v "$cmd" >/dev/null 2>&1 && exit 0

if [ "$(id -u)" = 0 ]; then
    SUDO=
elif command -v sudo >/dev/null 2>&1 && sudo -n true 2>/dev/null; then
    SUDO="sudo -n"
else
    echo "guest_images: $cmd is missing and installing $pkg needs root (no sudo); run: apt-get install $pkg" >&2
    exit 1
fi

echo "guest_images: installing $pkg (apt-get)" >&2
export DEBIAN_FRONTEND=noninteractive
if ! $SUDO apt-get install -y -qq "$pkg" >/dev/null 2>&1; then
    $SUDO apt-get update -qq >/dev/null
    $SUDO apt-get install -y -qq "$pkg" >/dev/null
fi
command -v "$cmd" >/dev/null 2>&1 || {
    echo "guest_images: $pkg installed but $cmd still not on PATH" >&2
    exit 1
}
