#!/bin/sh
# Make sure musl-gcc exists; install Debian's musl-tools if it does not.
# Idempotent and quiet: prints nothing when musl-gcc is already there.
set -e
command -v musl-gcc >/dev/null 2>&1 && exit 0

if [ "$(id -u)" = 0 ]; then
    SUDO=
elif command -v sudo >/dev/null 2>&1 && sudo -n true 2>/dev/null; then
    SUDO="sudo -n"
else
    echo "guest_images: musl-gcc is missing and installing musl-tools needs root (no sudo); run: apt-get install musl-tools" >&2
    exit 1
fi

echo "guest_images: installing musl-tools (apt-get)" >&2
export DEBIAN_FRONTEND=noninteractive
if ! $SUDO apt-get install -y -qq musl-tools >/dev/null 2>&1; then
    $SUDO apt-get update -qq >/dev/null
    $SUDO apt-get install -y -qq musl-tools >/dev/null
fi
command -v musl-gcc >/dev/null 2>&1 || {
    echo "guest_images: musl-tools installed but musl-gcc still not on PATH" >&2
    exit 1
}
