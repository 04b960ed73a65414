#!/usr/bin/env bash
# Benchmark: `get` on a CI runner / headless box, against the floor.
#
#   benches/ci_get.sh [RUNS]
#
# In one hyperfine run, in one clean environment (a GitLab CI job: GITLAB_CI, CI_REGISTRY,
# CI_JOB_TOKEN; no D-Bus, no keychain):
#   - ours, GitLab CI mode: `get` of $CI_REGISTRY, served from the job's variables;
#   - ours, file store: `get` of a registry stored with DOCKER_CREDENTIAL_GITLAB_STORE=file
#     (a `docker login` inside the job);
#   - cat: the floor, one process that reads the same stdin and writes stdout.
# Both modes run twice: the static musl binary (scripts/build-static.sh: what CI images
# carry) and the ordinary glibc release build (what install.sh builds). Prints the mean
# times and each ratio to `cat` (target: <= 1.5x). Needs hyperfine and jq (scripts/test.sh
# installs them).
set -euo pipefail

runs="${1:-100}"
root="$(cd "$(dirname "$0")/.." && pwd)"
bin="$root/target/release/docker-credential-gitlab"
for tool in hyperfine jq; do
  command -v "$tool" >/dev/null || { echo "missing $tool: run scripts/test.sh first (as root on Debian) or install it" >&2; exit 1; }
done
(cd "$root" && cargo build --release --locked --bin docker-credential-gitlab)
static="$("$root/scripts/build-static.sh" | tail -1)"

tmp="$(mktemp -d)"
trap 'rm -rf "$tmp"' EXIT
mkdir -p "$tmp/home"
printf 'registry.ci.example' > "$tmp/ci-host"
printf 'registry.file.example' > "$tmp/file-host"

# The job's environment, and nothing else.
job=(env -i PATH="$PATH" HOME="$tmp/home" GITLAB_CI=true CI=true
  CI_REGISTRY=registry.ci.example CI_REGISTRY_USER=gitlab-ci-token
  CI_REGISTRY_PASSWORD=bench-job-token-not-a-secret CI_JOB_TOKEN=bench-job-token-not-a-secret
  DOCKER_CREDENTIAL_GITLAB_STORE=file)

printf '%s' '{"ServerURL":"registry.file.example","Username":"gitlab+deploy-token-1","Secret":"bench-deploy-token"}' \
  | "${job[@]}" "$bin" store
for b in "$bin" "$static"; do
  for host in ci-host file-host; do
    got=$("${job[@]}" "$b" get < "$tmp/$host")
    [[ "$got" == *'"Secret":"bench-'* ]] || { echo "$b get $host returned: $got" >&2; exit 1; }
  done
done

echo "== get in a CI job, $runs runs each (hyperfine, shell start-up subtracted)"
"${job[@]}" hyperfine --style basic --warmup 10 --runs "$runs" --export-json "$tmp/ci.json" \
  -n cat "cat < $tmp/ci-host" \
  -n static-gitlab-ci "$static get < $tmp/ci-host" \
  -n static-file-store "$static get < $tmp/file-host" \
  -n glibc-gitlab-ci "$bin get < $tmp/ci-host" \
  -n glibc-file-store "$bin get < $tmp/file-host" >/dev/null

jq -r '
  (.results | map({key: .command, value: .}) | from_entries) as $r
  | def ms(x): (x * 1000 * 100 | round) / 100;
    def ratio(a): ((a.mean / $r.cat.mean) * 100 | round) / 100;
  "command                             mean ms   median ms   ratio to cat (target <= 1.5x)",
  "cat (the floor)                     \(ms($r.cat.mean))      \(ms($r.cat.median))",
  (["static-gitlab-ci", "static-file-store", "glibc-gitlab-ci", "glibc-file-store"][] as $n
   | "\($n | . + "                              " | .[0:34])  \(ms($r[$n].mean))      \(ms($r[$n].median))        \(ratio($r[$n]))x")
' "$tmp/ci.json"
