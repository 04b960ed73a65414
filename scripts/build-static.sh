#!/usr/bin/env bash
# Builds a fully static Linux docker-credential-gitlab (musl libc, no PT_INTERP, no shared
# libraries): the binary that runs in a `FROM scratch` image or any CI image.
#
#   ./scripts/build-static.sh [TARGET]   # the binary's path is the last line of stdout
#
# TARGET is x86_64-unknown-linux-musl (the default) or aarch64-unknown-linux-musl (arm64).
# Needs the rustup target (added when missing) and a C compiler for ring's C and assembly
# code (installed when missing and running as root with apt-get):
#   - for the machine's own architecture, musl-gcc (Debian/Ubuntu: musl-tools);
#   - for the other one, Debian's cross compiler (gcc-aarch64-linux-gnu on x86_64,
#     gcc-x86-64-linux-gnu on arm64), which also links: rustc brings the musl target's own
#     C runtime and libc.a (self-contained), so the compiler's glibc is never linked in,
#     and ring is compiled freestanding, so no glibc header is read either.
# CC_<target> and CARGO_TARGET_<TARGET>_LINKER, when set, win. Honours CARGO_TARGET_DIR.
set -euo pipefail
cd "$(dirname "$0")/.."

target=${1:-x86_64-unknown-linux-musl}
case "$target" in
  x86_64-unknown-linux-musl) arch=x86_64 e_machine=62 ;;
  aarch64-unknown-linux-musl) arch=aarch64 e_machine=183 ;;
  *) echo "error: unsupported target $target (x86_64- or aarch64-unknown-linux-musl)" >&2; exit 1 ;;
esac
target_env=${target//-/_}            # aarch64_unknown_linux_musl, as cc-rs spells it
target_upper=${target_env^^}         # AARCH64_UNKNOWN_LINUX_MUSL, as cargo spells it

# apt_install PACKAGE COMMAND: installs PACKAGE (for COMMAND) when root with apt-get.
apt_install() {
  if [[ $(id -u) == 0 ]] && command -v apt-get >/dev/null; then
    echo "==> installing $1 ($2)" >&2
    export DEBIAN_FRONTEND=noninteractive
    apt-get update -qq >&2
    apt-get install -y -qq --no-install-recommends "$1" >&2
  else
    echo "error: no $2 for $target; install $1 (Debian/Ubuntu) or set CC_$target_env" >&2
    exit 1
  fi
}

# 1. The Rust standard library for the musl target.
if ! rustup target list --installed | grep -qx "$target"; then
  echo "==> rustup target add $target" >&2
  rustup target add "$target" >&2
fi

# 2. A C compiler for ring.
cc_var=CC_$target_env linker_var=CARGO_TARGET_${target_upper}_LINKER
if [[ $(uname -m) == "$arch" || ($(uname -m) == arm64 && $arch == aarch64) ]]; then
  # Native: cc-rs looks for ARCH-linux-musl-gcc, then musl-gcc; rustc links with cc.
  if [[ -z ${!cc_var:-} ]] && ! command -v musl-gcc >/dev/null &&
    ! command -v "$arch-linux-musl-gcc" >/dev/null; then
    apt_install musl-tools musl-gcc
  fi
else
  # Cross: Debian's ARCH-linux-gnu-gcc compiles ring and drives the link, with rustc's
  # self-contained musl crt1.o and libc.a. ring (the only C code) is compiled freestanding,
  # its mode for targets without libc headers: the cross compiler's glibc headers (or,
  # without libc6-dev-*-cross, the host's /usr/include) are never read.
  cross=$arch-linux-gnu-gcc
  if [[ -z ${!cc_var:-} ]] && ! command -v "$cross" >/dev/null; then
    apt_install "gcc-${arch//_/-}-linux-gnu" "$cross"
  fi
  export "$cc_var=${!cc_var:-$cross}"
  ar_var=AR_$target_env
  [[ -n ${!ar_var:-} || ${!cc_var} != *-gcc ]] || export "$ar_var=${!cc_var%gcc}ar"
  export "$linker_var=${!linker_var:-${!cc_var}}"
  cflags_var=CFLAGS_$target_env
  export "$cflags_var=-ffreestanding -DRING_CORE_NOSTDLIBINC=1 ${!cflags_var:-}"
fi

# 3. The release build. Cargo's own output goes to stderr, so stdout stays just the path.
cargo build --release --locked --target "$target" --bin docker-credential-gitlab >&2
bin="${CARGO_TARGET_DIR:-target}/$target/release/docker-credential-gitlab"
[[ $bin == /* ]] || bin="$PWD/$bin"

# 4. The right machine, and static: no program interpreter. ELF64 little-endian: e_machine
#    at offset 18; program headers are 56 bytes each, from e_phoff (offset 32), e_phnum of
#    them (offset 56); p_type 3 is PT_INTERP. Read with od only (coreutils), since `file`
#    is often missing and ldd's wording varies by libc.
u() { od -An -t "u$2" -j "$1" -N "$2" "$bin" | tr -d ' '; }
[[ $(od -An -c -j 1 -N 3 "$bin" | tr -d ' ') == ELF ]] || { echo "error: $bin is not ELF" >&2; exit 1; }
if [[ $(u 18 2) != "$e_machine" ]]; then
  echo "error: $bin is for ELF machine $(u 18 2), not $arch ($e_machine)" >&2
  exit 1
fi
phoff=$(u 32 8) phnum=$(u 56 2)
for ((i = 0; i < phnum; i++)); do
  if [[ $(u $((phoff + i * 56)) 4) == 3 ]]; then
    echo "error: $bin has a program interpreter (PT_INTERP): it is not static" >&2
    exit 1
  fi
done
echo "==> static $arch: no PT_INTERP in $phnum program headers" >&2

echo "$bin"
