#!/usr/bin/env bash
# Benchmark: `get` of docker-credential-gitlab against the Go reference helpers, in one run,
# on the same gnome-keyring, for the same entry.
#
#   benches/get_latency.sh [RUNS]
#
# Prints mean times, our ratio to each reference helper (target: <= 0.2x
# docker-credential-secretservice), peak RSS (target: <= 8 MiB) and, when strace is
# installed, the system calls and threads of one `get`. Needs the Debian packages that
# scripts/test.sh installs (hyperfine, time, jq, gnome-keyring, dbus,
# golang-docker-credential-helpers, pass, gnupg).
set -euo pipefail

runs="${1:-50}"
root="$(cd "$(dirname "$0")/.." && pwd)"
bin="$root/target/release/docker-credential-gitlab"

if [[ "${BENCH_INSIDE_SESSION:-}" != 1 ]]; then
  for tool in hyperfine /usr/bin/time jq dbus-run-session gnome-keyring-daemon \
    docker-credential-secretservice docker-credential-pass pass gpg; do
    command -v "$tool" >/dev/null || { echo "missing $tool: run scripts/test.sh first (as root on Debian) or install it" >&2; exit 1; }
  done
  (cd "$root" && cargo build --release --locked --bin docker-credential-gitlab)
  tmp="$(mktemp -d)"
  trap 'gpgconf --homedir "$tmp/gnupg" --kill gpg-agent 2>/dev/null || true; rm -rf "$tmp"' EXIT
  mkdir -p "$tmp/home" "$tmp/gnupg" && chmod 700 "$tmp/gnupg"
  # A private session: nothing of the user's keyring, docker config or pass store is touched.
  env -i PATH="$PATH" HOME="$tmp/home" XDG_RUNTIME_DIR="$tmp" XDG_DATA_HOME="$tmp/share" \
    GNUPGHOME="$tmp/gnupg" PASSWORD_STORE_DIR="$tmp/pass" \
    DOCKER_CREDENTIAL_GITLAB_DATA_DIR="$tmp/data" BENCH_INSIDE_SESSION=1 TMPDIR="$tmp" \
    dbus-run-session -- "$0" "$runs" 2> >(grep -v -e 'fd limit' -e 'discover_other_daemon' >&2)
  exit
fi

# --- inside the private D-Bus session ---------------------------------------------------
eval "$(printf 'bench-password' | gnome-keyring-daemon --unlock --components=secrets)"
host="registry.gitlab.example"
payload="{\"ServerURL\":\"$host\",\"Username\":\"bench\",\"Secret\":\"bench-secret-not-a-token\"}"
printf '%s' "$host" > "$TMPDIR/host"

# pass needs a GnuPG key; a throwaway one without passphrase.
gpg --batch --quiet --pinentry-mode loopback --passphrase '' \
  --quick-generate-key "bench@example.invalid" default default never 2>/dev/null
pass init bench@example.invalid >/dev/null

printf '%s' "$payload" | "$bin" store
# A second entry as `login` leaves it (GitLab metadata, renewable, far from expiry): `get`
# runs the refresh policy and records a lease, but must stay as cheap as the plain path.
managed="registry2.gitlab.example"
printf '%s' "$managed" > "$TMPDIR/managed"
printf '%s' "${payload/$host/$managed}" | "$bin" store
state="$DOCKER_CREDENTIAL_GITLAB_DATA_DIR/state.json"
jq --arg h "$managed" '.entries[$h].gitlab = {
    url: "https://gitlab.example", kind: "personal_access_token",
    scopes: ["read_registry", "write_registry", "self_rotate"],
    expires_at: "2099-01-01T00:00:00Z", lifetime_days: 365,
    validated_at: "2026-01-01T00:00:00Z"}' "$state" > "$state.new"
chmod 600 "$state.new" && mv "$state.new" "$state"
printf '%s' "$payload" | docker-credential-secretservice store
printf '%s' "$payload" | docker-credential-pass store
for helper in "$bin" docker-credential-secretservice docker-credential-pass; do
  got=$("$helper" get < "$TMPDIR/host")
  [[ "$got" == *bench-secret-not-a-token* ]] || { echo "$helper get returned: $got" >&2; exit 1; }
done

echo "== get latency, $runs runs each (hyperfine, shell start-up subtracted)"
hyperfine --style basic --warmup 5 --runs "$runs" --export-json "$TMPDIR/get.json" \
  -n ours "$bin get < $TMPDIR/host" \
  -n ours-managed "$bin get < $TMPDIR/managed" \
  -n secretservice "docker-credential-secretservice get < $TMPDIR/host" \
  -n pass "docker-credential-pass get < $TMPDIR/host" >/dev/null

rss() { # median peak RSS in KiB over 7 runs
  for _ in 1 2 3 4 5 6 7; do
    /usr/bin/time -f '%M' "$@" < "$TMPDIR/host" 2>&1 >/dev/null | tail -1
  done | sort -n | sed -n 4p
}
ours_rss=$(rss "$bin" get)
ss_rss=$(rss docker-credential-secretservice get)
pass_rss=$(rss docker-credential-pass get)

jq -r --argjson ours_rss "$ours_rss" --argjson ss_rss "$ss_rss" --argjson pass_rss "$pass_rss" '
  (.results | map({key: .command, value: .}) | from_entries) as $r
  | def ms(x): (x * 1000 * 10 | round) / 10;
    def mib(k): (k / 1024 * 10 | round) / 10;
  "helper                            mean ms   median ms   peak RSS MiB",
  "docker-credential-gitlab          \(ms($r.ours.mean))      \(ms($r.ours.median))        \(mib($ours_rss))",
  "  … with renewal policy (login)    \(ms($r["ours-managed"].mean))      \(ms($r["ours-managed"].median))",
  "docker-credential-secretservice   \(ms($r.secretservice.mean))      \(ms($r.secretservice.median))        \(mib($ss_rss))",
  "docker-credential-pass            \(ms($r.pass.mean))      \(ms($r.pass.median))        \(mib($pass_rss))",
  "",
  "ratio ours / secretservice (mean):  \(($r.ours.mean / $r.secretservice.mean * 100 | round) / 100)x   (target <= 0.2x)",
  "ratio ours (login entry) / secretservice: \(($r["ours-managed"].mean / $r.secretservice.mean * 100 | round) / 100)x   (must match the plain ratio)",
  "ratio ours / pass (mean):           \(($r.ours.mean / $r.pass.mean * 100 | round) / 100)x",
  "peak RSS ours:                      \(mib($ours_rss)) MiB   (target <= 8 MiB)"
' "$TMPDIR/get.json"

# One steady `get` under strace: every system call, and the threads it starts (clone).
if command -v strace >/dev/null; then
  strace -f -c -o "$TMPDIR/strace.txt" "$bin" get < "$TMPDIR/host" >/dev/null
  awk '$NF == "total" { calls = $4 } $NF ~ /^clone3?$/ { threads += $4 }
    END { printf "system calls of one get:           %d (threads started: %d)\n", calls, threads }' \
    "$TMPDIR/strace.txt"
fi
