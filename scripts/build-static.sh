#!/usr/bin/env bash
# Builds a fully static Linux x86_64 docker-credential-gitlab (musl libc, no PT_INTERP, no
# shared libraries): the binary that runs in a `FROM scratch` image or any CI image.
#
#   ./scripts/build-static.sh            # the binary's path is the last line of stdout
#
# Needs the rustup target x86_64-unknown-linux-musl (added when missing) and a musl C
# compiler for ring's C and assembly code (Debian/Ubuntu: musl-tools, installed when
# missing and running as root with apt-get). Honours CARGO_TARGET_DIR.
set -euo pipefail
cd "$(dirname "$0")/.."

target=x86_64-unknown-linux-musl

# 1. The Rust standard library for the musl target.
if ! rustup target list --installed | grep -qx "$target"; then
  echo "==> rustup target add $target" >&2
  rustup target add "$target" >&2
fi

# 2. A musl C compiler for ring (cc-rs looks for x86_64-linux-musl-gcc, then musl-gcc).
if ! command -v musl-gcc >/dev/null && ! command -v x86_64-linux-musl-gcc >/dev/null; then
  if [[ $(id -u) == 0 ]] && command -v apt-get >/dev/null; then
    echo "==> installing musl-tools (musl-gcc)" >&2
    export DEBIAN_FRONTEND=noninteractive
    apt-get update -qq >&2
    apt-get install -y -qq --no-install-recommends musl-tools >&2
  else
    echo "error: no musl C compiler; install musl-tools (Debian/Ubuntu), musl-dev + gcc" \
      "(Alpine) or musl-gcc (Fedora), or set CC_x86_64_unknown_linux_musl" >&2
    exit 1
  fi
fi

# 3. The release build. Cargo's own output goes to stderr, so stdout stays just the path.
cargo build --release --locked --target "$target" --bin docker-credential-gitlab >&2
bin="${CARGO_TARGET_DIR:-target}/$target/release/docker-credential-gitlab"
[[ $bin == /* ]] || bin="$PWD/$bin"

# 4. Static means no program interpreter: ELF program headers are 56 bytes each, from
#    e_phoff (offset 32), e_phnum of them (offset 56); p_type 3 is PT_INTERP. Read with od
#    only (coreutils), since `file` is often missing and ldd's wording varies by libc.
u() { od -An -t "u$2" -j "$1" -N "$2" "$bin" | tr -d ' '; }
[[ $(od -An -c -j 1 -N 3 "$bin" | tr -d ' ') == ELF ]] || { echo "error: $bin is not ELF" >&2; exit 1; }
phoff=$(u 32 8) phnum=$(u 56 2)
for ((i = 0; i < phnum; i++)); do
  if [[ $(u $((phoff + i * 56)) 4) == 3 ]]; then
    echo "error: $bin has a program interpreter (PT_INTERP): it is not static" >&2
    exit 1
  fi
done
echo "==> static: no PT_INTERP in $phnum program headers" >&2

echo "$bin"
