#!/bin/sh
# Installs docker-credential-gitlab for the current user (no sudo).
#
#   ./install.sh                  build from this checkout with cargo, install to ~/.local/bin
#   ./install.sh --prefix DIR     install to DIR/bin instead
#   ./install.sh --binary FILE    install a prebuilt binary (release archive); FILE.sha256
#                                 next to it is verified when present
#
# Docker finds credential helpers on PATH as docker-credential-<name>; the script warns when
# the install directory is not on PATH, and prints how to point Docker at the helper.
set -eu

name=docker-credential-gitlab

usage() {
  sed -n '2,9p' "$0" | sed 's/^# \{0,1\}//'
}

die() {
  echo "install.sh: $*" >&2
  exit 1
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

main() {
  prefix="${XDG_BIN_HOME:+${XDG_BIN_HOME%/bin}}"
  prefix="${prefix:-$HOME/.local}"
  binary=""
  while [ $# -gt 0 ]; do
    case "$1" in
      --prefix) [ $# -ge 2 ] || die "--prefix needs a directory"; prefix="$2"; shift 2 ;;
      --prefix=*) prefix="${1#--prefix=}"; shift ;;
      --binary) [ $# -ge 2 ] || die "--binary needs a file"; binary="$2"; shift 2 ;;
      -h|--help) usage; exit 0 ;;
      *) die "unknown option $1 (see ./install.sh --help)" ;;
    esac
  done
  bindir="$prefix/bin"

  if [ -z "$binary" ]; then
    here=$(cd "$(dirname "$0")" && pwd)
    [ -f "$here/Cargo.toml" ] || die "run me from a checkout, or pass --binary FILE"
    command -v cargo >/dev/null 2>&1 || die "cargo not found: install Rust from https://rustup.rs, or pass --binary FILE"
    echo "==> building $name (release) with cargo"
    (cd "$here" && cargo build --release --locked --bin "$name")
    binary="$here/target/release/$name"
  elif [ -f "$binary.sha256" ]; then
    expected=$(cut -d' ' -f1 < "$binary.sha256")
    actual=$(sha256_of "$binary")
    [ "$expected" = "$actual" ] || die "checksum mismatch for $binary (expected $expected, got $actual)"
    echo "==> checksum verified"
  fi
  [ -f "$binary" ] || die "no such file: $binary"

  mkdir -p "$bindir"
  # Install next to the old binary and rename, so a running docker never sees half a file.
  install -m 0755 "$binary" "$bindir/.$name.new"
  mv -f "$bindir/.$name.new" "$bindir/$name"
  echo "==> installed $bindir/$name ($("$bindir/$name" version))"

  case ":$PATH:" in
    *":$bindir:"*) ;;
    *)
      echo
      echo "WARNING: $bindir is not on your PATH, so Docker cannot find the helper."
      echo "         Add it, e.g.:  echo 'export PATH=\"$bindir:\$PATH\"' >> ~/.profile"
      ;;
  esac

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
