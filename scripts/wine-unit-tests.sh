#!/usr/bin/env bash
# Runs the library's and the binary's unit tests as Windows programs, under wine: the
# wincred-side code paths (paths, file modes, PATH lookup with .exe) on the platform they are
# written for. Needs what scripts/build-windows.sh needs, plus Debian's wine64.
set -euo pipefail
cd "$(dirname "$0")/.."

# The build script lays out the test-only bcryptprimitives.dll (wine 8 lacks it).
exe=$(./scripts/build-windows.sh | tail -1)
export WINEPREFIX WINEARCH=win64 WINEDEBUG=-all WINEDLLOVERRIDES="mscoree,mshtml=;winemenubuilder.exe=d"
WINEPREFIX=$(mktemp -d)
trap '/usr/lib/wine/wineserver64 -k >/dev/null 2>&1 || true; rm -rf "$WINEPREFIX"' EXIT
unset DISPLAY CI GITLAB_CI
/usr/lib/wine/wineserver64 -p
/usr/lib/wine/wine64 wineboot -i >/dev/null 2>&1
cp "$(dirname "$exe")/bcryptprimitives.dll" "$WINEPREFIX/drive_c/windows/system32/"

export CARGO_TARGET_X86_64_PC_WINDOWS_GNU_LINKER=x86_64-w64-mingw32-gcc
export CC_x86_64_pc_windows_gnu=x86_64-w64-mingw32-gcc
export CARGO_TARGET_X86_64_PC_WINDOWS_GNU_RUNNER=/usr/lib/wine/wine64
cargo test --locked --target x86_64-pc-windows-gnu --lib --bins </dev/null
