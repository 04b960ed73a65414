#!/bin/sh
# Installs docker-credential-gitlab: the binary, its man page and shell completions.
#
#   ./install.sh                      from a checkout: build with cargo and install;
#                                     from inside an unpacked release archive: install it
#   ./install.sh --archive FILE       install a release archive (.tar.gz), verified against
#                                     the SHA256SUMS file next to it
#   ./install.sh --archive DIR        install the archive for this machine from a directory
#                                     of release files holding SHA256SUMS
#
# Options:
#   --prefix DIR         install under DIR (default ~/.local): DIR/bin, DIR/share/man, ...
#   --arch ARCH          install for ARCH (x86_64, aarch64 or arm64) instead of this
#                        machine's architecture, e.g. when preparing an image for another one
#   --bin-dir DIR        put the binary in DIR (default $XDG_BIN_HOME, else PREFIX/bin)
#   --configure REGISTRY then point Docker's credHelpers at the helper for REGISTRY
#   --sudo               install with sudo (never used unless asked)
#   --uninstall          remove exactly what an earlier install under PREFIX put there
#   -h, --help           this text
#
# Idempotent: running it again replaces the same files. Docker finds credential helpers on
# PATH as docker-credential-<name>; the script warns when the binary's directory is not on it.
set -eu

name=docker-credential-gitlab

usage() {
  sed -n '2,21p' "$0" | sed 's/^# \{0,1\}//'
}

die() {
  echo "install.sh: $*" >&2
  exit 1
}

# Runs a command that writes into the install locations, with sudo only when asked.
as_installer() {
  if [ "$use_sudo" = 1 ]; then sudo "$@"; else "$@"; fi
}

sha256_of() {
  if command -v sha256sum >/dev/null 2>&1; then
    sha256sum "$1" | cut -d' ' -f1
  elif command -v shasum >/dev/null 2>&1; then
    shasum -a 256 "$1" | cut -d' ' -f1
  else
    die "need sha256sum or shasum to verify $1"
  fi
}

# verify SUMS_FILE DIR NAME: NAME's SHA-256 must be the one SUMS_FILE lists for it.
verify() {
  expected=$(awk -v f="$3" '{ sub(/\r$/, ""); n = $2; sub(/^\*/, "", n) }
    n == f { print tolower($1) }' "$1" | sort -u)
  [ -n "$expected" ] || die "$1 lists no checksum for $3: refusing to install it"
  case "$expected" in *"
"*) die "$1 lists different checksums for $3: refusing to install it" ;; esac
  actual=$(sha256_of "$2/$3")
  [ "$expected" = "$actual" ] ||
    die "checksum mismatch for $3 (expected $expected, got $actual): refusing to install it"
}

# absolute PATH: PATH made absolute, without trailing slashes.
absolute() {
  p=$1
  case "$p" in /*) ;; *) p="$(pwd)/$p" ;; esac
  while [ "${p%/}" != "$p" ] && [ "$p" != / ]; do p=${p%/}; done
  echo "$p"
}

# normal_arch NAME: the architecture as release archives name it (uname -m and Debian
# spellings accepted), or NAME itself when unknown.
normal_arch() {
  case "$1" in
    x86_64 | amd64) echo x86_64 ;;
    aarch64 | arm64) echo aarch64 ;;
    *) echo "$1" ;;
  esac
}

# The Rust target installed for, as release archives name it (OS and architecture only):
# this machine's OS, and --arch or else this machine's architecture.
host_target() {
  case "$(uname -s)" in
    Linux) os=unknown-linux ;;
    Darwin) os=apple-darwin ;;
    MINGW* | MSYS* | CYGWIN*) os=pc-windows ;;
    *) os=$(uname -s) ;;
  esac
  echo "$arch-$os"
}

# archive_arch NAME: the architecture in a release archive's name, or nothing.
archive_arch() {
  case "$1" in
    *-x86_64-*) echo x86_64 ;;
    *-aarch64-*) echo aarch64 ;;
  esac
}

# refuse_arch WHAT: the one line that refuses a release for another architecture, WHAT
# saying which ("FILE is for aarch64").
refuse_arch() {
  if [ -n "$forced_arch" ]; then
    die "$1; --arch asks for $arch"
  fi
  die "$1; this machine is $arch"
}

# elf_arch FILE: the architecture of an ELF executable (its e_machine), or nothing when
# FILE is not ELF.
elf_arch() {
  [ "$(od -An -tx1 -N4 "$1" | tr -d ' \n')" = 7f454c46 ] || return 0
  machine=$(od -An -tu1 -j18 -N2 "$1" | awk '{ print $1 + 256 * $2 }')
  case "$machine" in
    62) echo x86_64 ;;
    183) echo aarch64 ;;
    *) echo "ELF machine $machine" ;;
  esac
}

# check_arch STAGE: the staged binary is for the architecture installed for.
check_arch() {
  binary_arch=$(elf_arch "$1/$name")
  if [ -n "$binary_arch" ] && [ "$binary_arch" != "$arch" ]; then
    refuse_arch "$1/$name is for $binary_arch"
  fi
}

# pick_archive DIR: the release archive in DIR (as listed in DIR/SHA256SUMS) for the
# target installed for: the static musl one where there is one (it runs on any Linux).
pick_archive() {
  [ -f "$1/SHA256SUMS" ] || die "no SHA256SUMS in $1: not a directory of release files"
  listed=$(awk '{ sub(/\r$/, ""); sub(/^\*/, "", $2); print $2 }' "$1/SHA256SUMS" |
    grep "^$name-.*\.tar\.gz\$" || true)
  target=$(host_target)
  for pattern in "*-$target-musl.tar.gz" "*-$target-*.tar.gz"; do
    found="" n=0
    for f in $listed; do
      # shellcheck disable=SC2254 # the pattern is meant to match
      case "$f" in $pattern) found="$found $f" n=$((n + 1)) ;; esac
    done
    if [ "$n" -gt 1 ]; then die "$1 holds several archives for $target:$found"; fi
    if [ "$n" -eq 1 ]; then
      echo "$1/${found# }"
      return
    fi
  done
  others=""
  for f in $listed; do
    a=$(archive_arch "$f")
    [ -n "$a" ] || continue
    t="$a-${f#*-"$a"-}"
    others="${others:+$others, }${t%.tar.gz}"
  done
  [ -n "$others" ] || die "$1 holds no release archive (its SHA256SUMS lists none)"
  refuse_arch "$1 holds archives for $others only"
}

# stage_from_checkout DIR: build with cargo and lay the release files out in DIR.
stage_from_checkout() {
  command -v cargo >/dev/null 2>&1 ||
    die "cargo not found: install Rust from https://rustup.rs, or use --archive FILE"
  echo "==> building $name (release) with cargo"
  (cd "$here" && cargo build --release --locked --bin "$name")
  target_dir=$(cd "$here" && cargo metadata --format-version 1 --no-deps 2>/dev/null |
    sed -n 's/.*"target_directory":"\([^"]*\)".*/\1/p')
  cp "${target_dir:-$here/target}/release/$name" "$1/$name"
  mkdir -p "$1/man" "$1/completions"
  "$1/$name" man >"$1/man/$name.1"
  "$1/$name" completions bash >"$1/completions/$name.bash"
  "$1/$name" completions zsh >"$1/completions/_$name"
  "$1/$name" completions fish >"$1/completions/$name.fish"
}

# check_unpacked DIR: every file the archive's own SHA256SUMS lists is intact, and it lists
# every file that gets installed.
check_unpacked() {
  [ -f "$1/SHA256SUMS" ] || die "$1 has no SHA256SUMS: not a release archive"
  awk '{ sub(/\r$/, ""); sub(/^\*/, "", $2); print $2 }' "$1/SHA256SUMS" | while read -r file; do
    verify "$1/SHA256SUMS" "$1" "$file"
  done
  layout | while read -r src _; do
    verify "$1/SHA256SUMS" "$1" "$src"
  done
}

# The files of a staged release and where each goes: "SOURCE MODE DESTINATION" lines
# (the destination last, so it may hold spaces).
layout() {
  echo "$name 0755 $bindir/$name"
  echo "man/$name.1 0644 $prefix/share/man/man1/$name.1"
  echo "completions/$name.bash 0644 $prefix/share/bash-completion/completions/$name"
  echo "completions/_$name 0644 $prefix/share/zsh/site-functions/_$name"
  echo "completions/$name.fish 0644 $prefix/share/fish/vendor_completions.d/$name.fish"
}

# mkdirs DIR: create DIR and its missing parents (0755), noting each one created.
mkdirs() {
  [ -d "$1" ] && return 0
  mkdirs "$(dirname -- "$1")"
  as_installer mkdir -m 0755 "$1"
  echo "$1/" >>"$work/created"
}

# Adds what mkdirs created, and PATH if given, to the manifest: before a file is copied, so
# that an install that fails or is interrupted half way can still be undone.
record() {
  [ $# -eq 0 ] || echo "$1" >>"$work/created"
  as_installer tee -a "$manifest" <"$work/created" >/dev/null
  : >"$work/created"
}

install_staged() {
  stage=$1
  [ -x "$stage/$name" ] || die "$stage/$name is missing or not executable"
  : >"$work/created"
  mkdirs "$(dirname -- "$manifest")"
  record "$manifest"
  layout | while read -r src mode dest; do
    [ -f "$stage/$src" ] || die "the release has no $src"
    mkdirs "$(dirname -- "$dest")"
    record "$dest"
    # Copy beside the old file and rename, so a running docker never sees half a binary;
    # the EXIT trap removes the copy if we are stopped in between.
    echo "$dest.new.$$" >>"$work/partial"
    as_installer cp "$stage/$src" "$dest.new.$$"
    as_installer chmod "$mode" "$dest.new.$$"
    as_installer mv -f "$dest.new.$$" "$dest"
  done
  # One line per path (an earlier install's lines kept: a binary it put elsewhere is ours).
  sort -u "$manifest" >"$work/manifest"
  as_installer cp "$work/manifest" "$manifest"
  as_installer chmod 0644 "$manifest"
  if [ "$arch" = "$machine_arch" ]; then
    echo "==> installed $bindir/$name ($("$bindir/$name" version))"
  else
    echo "==> installed $bindir/$name (for $arch: not run on this $machine_arch machine)"
  fi
  echo "    man page, bash/zsh/fish completions under $prefix/share; list in $manifest"
}

# Whether PATH is one of the files install.sh installs (by name): --uninstall removes
# nothing else, whatever the manifest says.
ours() {
  case "$(basename -- "$1")" in
    "$name" | "$name.1" | "_$name" | "$name.fish" | installed-files) return 0 ;;
    *) return 1 ;;
  esac
}

uninstall() {
  [ -f "$manifest" ] || die "nothing to uninstall: no $manifest (was it installed with --prefix?)"
  # Files first (the manifest among them), then the directories this script created,
  # deepest first, and only if empty.
  listed=$(cat "$manifest")
  printf '%s\n' "$listed" | grep -v '/$' | while IFS= read -r file; do
    if ! ours "$file"; then
      echo "skipped $file: install.sh does not install such a file"
    elif [ -e "$file" ] || [ -L "$file" ]; then
      as_installer rm -f "$file"
      echo "removed $file"
    else
      echo "already gone: $file"
    fi
  done
  printf '%s\n' "$listed" | grep '/$' | sort -r | while IFS= read -r d; do
    if as_installer rmdir "$d" 2>/dev/null; then echo "removed $d"; fi
  done
}

# On exit: no half-copied file is left beside an installed one, and no temporary directory.
cleanup() {
  while IFS= read -r copy; do as_installer rm -f "$copy"; done <"$work/partial"
  rm -rf "$work"
}

main() {
  prefix=""
  bindir=""
  archive=""
  forced_arch=""
  registry=""
  use_sudo=0
  action=install
  while [ $# -gt 0 ]; do
    case "$1" in
      --prefix | --bin-dir | --archive | --arch | --configure)
        if [ $# -lt 2 ] || [ -z "$2" ]; then die "$1 needs a value"; fi
        case "$1" in
          --prefix) prefix=$2 ;;
          --bin-dir) bindir=$2 ;;
          --archive) archive=$2 ;;
          --arch) forced_arch=$2 ;;
          --configure) registry=$2 ;;
        esac
        shift 2
        ;;
      --prefix=*) prefix=${1#*=}; shift ;;
      --bin-dir=*) bindir=${1#*=}; shift ;;
      --archive=*) archive=${1#*=}; shift ;;
      --arch=*) forced_arch=${1#*=}; shift ;;
      --configure=*) registry=${1#*=}; shift ;;
      --sudo) use_sudo=1; shift ;;
      --uninstall) action=uninstall; shift ;;
      -h | --help) usage; exit 0 ;;
      *) die "unknown option $1 (see ./install.sh --help)" ;;
    esac
  done
  for value in "$prefix" "$bindir" "$archive"; do
    case "$value" in "~"*) die "$value: ~ is not expanded here; write \$HOME instead" ;; esac
  done
  machine_arch=$(normal_arch "$(uname -m)")
  arch=$machine_arch
  if [ -n "$forced_arch" ]; then
    case "$(normal_arch "$forced_arch")" in
      x86_64 | aarch64) arch=$(normal_arch "$forced_arch") ;;
      *) die "--arch $forced_arch: not an architecture of the releases (x86_64, aarch64, arm64)" ;;
    esac
  fi
  if [ "$arch" != "$machine_arch" ] && [ -n "$registry" ]; then
    die "--configure runs the installed $arch binary, which cannot run on this $machine_arch machine"
  fi
  if [ "$use_sudo" = 1 ] && ! command -v sudo >/dev/null 2>&1; then
    die "--sudo: sudo is not installed"
  fi
  if [ -z "$prefix" ]; then
    [ -n "${HOME:-}" ] || die "HOME is not set: pass --prefix DIR"
    prefix="$HOME/.local"
  fi
  prefix=$(absolute "$prefix")
  # The binary goes to --bin-dir, else $XDG_BIN_HOME, else PREFIX/bin.
  [ -n "$bindir" ] || bindir=${XDG_BIN_HOME:-$prefix/bin}
  bindir=$(absolute "$bindir")
  manifest="$prefix/share/$name/installed-files"
  here=$(cd "$(dirname "$0")" && pwd)

  if [ "$action" = uninstall ]; then
    uninstall
    return
  fi

  work=$(mktemp -d)
  : >"$work/partial"
  trap cleanup EXIT
  trap 'exit 1' INT TERM
  if [ -n "$archive" ]; then
    [ ! -d "$archive" ] || archive=$(pick_archive "$archive")
    [ -f "$archive" ] || die "no such file: $archive"
    file=$(basename -- "$archive")
    dir=$(cd -- "$(dirname -- "$archive")" && pwd)
    [ -f "$dir/SHA256SUMS" ] || die "no SHA256SUMS next to $archive: cannot verify it"
    verify "$dir/SHA256SUMS" "$dir" "$file"
    echo "==> $file: checksum verified against SHA256SUMS"
    file_arch=$(archive_arch "$file")
    if [ -n "$file_arch" ] && [ "$file_arch" != "$arch" ]; then
      refuse_arch "$file is not built for this machine: it is for $file_arch"
    fi
    case "$file" in
      "$name"-*-"$(host_target)"*.tar.gz) ;;
      *) die "$file is not built for this machine ($(host_target))" ;;
    esac
    tar -xzf "$archive" -C "$work"
    stage="$work/${file%.tar.gz}"
    [ -d "$stage" ] || die "$file does not hold ${file%.tar.gz}/"
    check_unpacked "$stage"
    check_arch "$stage"
  elif [ -f "$here/Cargo.toml" ]; then
    [ "$arch" = "$machine_arch" ] ||
      die "--arch $arch: a checkout builds for this $machine_arch machine; use --archive"
    stage="$work"
    stage_from_checkout "$stage"
  elif [ -f "$here/$name" ]; then
    stage="$here"
    check_unpacked "$stage"
    check_arch "$stage"
    echo "==> unpacked release verified against its SHA256SUMS"
  else
    die "run me from a checkout or an unpacked release, or pass --archive FILE"
  fi

  install_staged "$stage"

  case ":$PATH:" in
    *":$bindir:"*) ;;
    *)
      echo
      echo "WARNING: $bindir is not on your PATH, so Docker cannot find the helper."
      echo "         Add it, e.g.:  echo 'export PATH=\"$bindir:\$PATH\"' >> ~/.profile"
      ;;
  esac

  if [ -n "$registry" ]; then
    "$bindir/$name" configure-docker "$registry"
    return
  fi
  cat <<EOF

Next: log in to your GitLab registry. This validates the token, stores it in your keychain
and adds the helper to ~/.docker/config.json:

    $name login registry.gitlab.com

Or wire Docker up by hand and keep using 'docker login' ("credHelpers" in
\${DOCKER_CONFIG:-~/.docker}/config.json):

    { "credHelpers": { "registry.gitlab.com": "gitlab" } }
EOF
}

main "$@"
