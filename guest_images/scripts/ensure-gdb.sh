#!/bin/sh
# Make sure gdb exists (tests/test_gdb.py drives a real gdb); install Debian's gdb if it does not.
# Idempotent and quiet: prints nothing when gdb is already there.
set -e
command -v gdb >/dev/null 2>&1 && exit 0

if [ "$(id -u)" = 0 ]; then
    SUDO=
elif command -v sudo >/dev/null 2>&1 && sudo -n true 2>/dev/null; then
    SUDO="sudo -n"
else
    echo "guest_images: gdb is missing and installing gdb needs root (no sudo); run: apt-get install gdb" >&2
    exit 1
fi

echo "guest_images: installing gdb (apt-get)" >&2
export DEBIAN_FRONTEND=noninteractive
if ! $SUDO apt-get install -y -qq gdb >/dev/null 2>&1; then
    $SUDO apt-get update -qq >/dev/null
    $SUDO apt-get install -y -qq gdb >/dev/null
fi
command -v gdb >/dev/null 2>&1 || {
    echo "guest_images: gdb installed but gdb still not on PATH" >&2
    exit 1
}
