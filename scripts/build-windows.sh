#!/usr/bin/env bash
# Cross-builds the Windows docker-credential-gitlab.exe (x86_64-pc-windows-gnu, MinGW-w64)
# and lays it out for tests/e2e/windows.rs, which runs it under wine:
#
#   ./scripts/build-windows.sh        # the .exe's path is the last line of stdout
#
# Beside the .exe go two test-only helpers built from tests/windows/: bcryptprimitives.dll
# (wine 8 lacks it; see the C file) and credread.exe (reads the Credential Manager). Needs
# the rustup target (added when missing) and Debian's gcc-mingw-w64-x86-64 (installed when
# missing and running as root with apt-get). Honours CARGO_TARGET_DIR.
set -euo pipefail
cd "$(dirname "$0")/.."

target=x86_64-pc-windows-gnu
cc=x86_64-w64-mingw32-gcc

if ! rustup target list --installed | grep -qx "$target"; then
  echo "==> rustup target add $target" >&2
  rustup target add "$target" >&2
fi
if ! command -v "$cc" >/dev/null; then
  if [[ $(id -u) == 0 ]] && command -v apt-get >/dev/null; then
    echo "==> installing gcc-mingw-w64-x86-64" >&2
    export DEBIAN_FRONTEND=noninteractive
    apt-get update -qq >&2
    apt-get install -y -qq --no-install-recommends gcc-mingw-w64-x86-64 >&2
  else
    echo "error: no $cc; install MinGW-w64 (Debian/Ubuntu: gcc-mingw-w64-x86-64)" >&2
    exit 1
  fi
fi

# ring's C code and the final link both use MinGW's gcc.
export CARGO_TARGET_X86_64_PC_WINDOWS_GNU_LINKER="$cc" CC_x86_64_pc_windows_gnu="$cc"
cargo build --release --locked --target "$target" --bin docker-credential-gitlab >&2
target_dir=$(cargo metadata --format-version 1 --no-deps | jq -r .target_directory)

out="$target_dir/wine"
mkdir -p "$out"
cp "$target_dir/$target/release/docker-credential-gitlab.exe" "$out/"
"$cc" -O2 -shared -s -o "$out/bcryptprimitives.dll" tests/windows/bcryptprimitives.c -ladvapi32
"$cc" -O2 -s -municode -o "$out/credread.exe" tests/windows/credread.c -ladvapi32
echo "$out/docker-credential-gitlab.exe"
