#!/usr/bin/env bash
# Proves that no test depends on the time of day: every GitLab world of the end-to-end
# suite starts at a pinned time of day (noon UTC by default, on the helper's and the GitLab
# emulator's test clock), and this runs the suite pinned just before and just after
# midnight UTC, where date-granular token expiries (access tokens die at 00:00 UTC) used to
# turn a 2-day token into a 1-day one. The unit tests run under faketime at both moments
# too (the library's real clock).
#
# Why the end-to-end suite uses the test clock and not faketime: the real docker-registry
# and dockerd are Go programs that read the time without libc, so faketime cannot move
# them, and they check the registry tokens' times against their own clocks.
#
# Usage: scripts/test-time-of-day.sh [E2E-FILTER...]   (e.g. renewal busy_host::)
set -euo pipefail
cd "$(dirname "$0")/.."
export CI="${CI:-true}"
command -v faketime >/dev/null || { echo "faketime is missing (apt-get install faketime)" >&2; exit 1; }
today=$(date -u +%F)
# Built without faketime (rustc's own waits can hang under it); only the tests run faked.
unit_tests=$(cargo test --all-features --locked --lib --no-run --message-format=json 2>/dev/null |
  jq -r 'select(.profile.test and (.target.kind | index("lib"))) | .executable // empty' | tail -1)
[[ -x "$unit_tests" ]] || { echo "could not build the unit tests" >&2; exit 1; }
for at in 23:59:30 00:00:30; do
  echo "==> unit tests under faketime at $today $at UTC"
  # Skipped there: OpenBao mints its dev TLS certificate on the real clock, so a clock faked
  # to earlier today finds it not valid yet (rightly; the test is not about the time).
  faketime -f "@$today $at" "$unit_tests" --quiet --skip vault::tests::https_with_vault_cacert
  echo "==> end-to-end tests with the test clock at $at UTC"
  DOCKER_CREDENTIAL_GITLAB_TEST_TIME_OF_DAY="$at" \
    cargo test --all-features --locked --test e2e -- "$@"
done
