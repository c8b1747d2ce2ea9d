#!/usr/bin/env bash
# Compile and link the extension for AArch64 (AAPCS64) with a cross compiler, so that the
# aarch64 switch and every C file keep building even though the tests run on x86-64.
#   scripts/cross-check-aarch64.sh PYTHON   (PYTHON: any supported CPython, for its headers)
# Installs Debian's gcc-aarch64-linux-gnu when it is missing and we are root.
set -eu
cd "$(dirname "$0")/.."
py=$1
cc=aarch64-linux-gnu-gcc
if ! command -v $cc >/dev/null && command -v apt-get >/dev/null && [ "$(id -u)" = 0 ]; then
    apt-get install -y -q gcc-aarch64-linux-gnu >/dev/null 2>&1 || true
fi
command -v $cc >/dev/null || { echo "error: $cc not found (Debian: gcc-aarch64-linux-gnu)" >&2; exit 1; }
inc=$("$py" -c 'import sysconfig; print(sysconfig.get_paths()["include"])')
out=$(mktemp -d)
trap 'rm -rf "$out"' EXIT
for src in src/_stackless/*.c src/_stackless/switch/*.S; do
    $cc -std=c11 -O2 -fPIC -fvisibility=hidden -Werror -Wall -Wextra -Wno-unused-parameter \
        -Wno-missing-field-initializers -Wno-cast-function-type -I"$inc" -Isrc/_stackless \
        -c "$src" -o "$out/$(basename "$src").o"
done
$cc -shared -o "$out/_stackless.so" "$out"/*.o
aarch64-linux-gnu-nm -D --defined-only "$out/_stackless.so" | grep -q " T PyInit__stackless$"
aarch64-linux-gnu-nm "$out/_stackless.so" | grep -q " t sl_switch$"
echo "aarch64 cross build: $(file -b "$out/_stackless.so" | cut -d, -f1-2)"
