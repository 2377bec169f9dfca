#!/usr/bin/env bash
# Builds the ProcessPrng stand-in (see processprng.c) and installs it into the wine prefix.
set -euo pipefail
here=$(cd "$(dirname "$0")" && pwd)
out=$(mktemp -d)
x86_64-w64-mingw32-gcc -shared -O2 -o "$out/bcryptprimitives.dll" \
    "$here/processprng.c" "$here/bcryptprimitives.def" -ladvapi32
export WINEDEBUG=-all
# First start creates the prefix (~/.wine); wait for it to settle before copying into it.
wine64 cmd /c exit >/dev/null 2>&1 || wine cmd /c exit >/dev/null 2>&1 || true
wineserver -w || true
prefix=${WINEPREFIX:-$HOME/.wine}
cp "$out/bcryptprimitives.dll" "$prefix/drive_c/windows/system32/bcryptprimitives.dll"
rm -rf "$out"
echo "installed bcryptprimitives.dll shim into $prefix"
