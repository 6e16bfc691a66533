#!/usr/bin/env bash
# run.sh runs Mercure's own conformance suite (the Playwright tests of
# dunglas/mercure's conformance-tests/ folder, draft-07 version) against a
# fresh `ssehub serve`, unchanged, and exits with the suite's status.
#
# Usage: compat/mercure/run.sh [SUITE_DIR] [PLAYWRIGHT_ARGS...]
#   SUITE_DIR: the directory holding the suite's files (mercure.spec.ts,
#   playwright.config.ts, package.json, package-lock.json, .env); default
#   $MERCURE_CONFORMANCE_DIR. The suite is not in this repository: see
#   README.md beside this script. Its node_modules are installed with
#   `npm ci` when missing.
#   PLAYWRIGHT_ARGS: more arguments for `playwright test`, such as
#   -g 'URI template' to run one test.
# Environment: CHROMIUM, the browser (default: chromium on the PATH, as
# Debian's package installs it); GO (default go).
#
# What it does: builds ./cmd/ssehub; starts `ssehub serve` on a free
# loopback port with the bolt store in a temporary directory (never the
# shared Redis or NATS: every SSEHUB_* variable is dropped), the suite's
# HS256 key in a --jwt-secret-file, and --mercure-allow-no-exp, since the
# suite's publisher token has no exp; runs the suite's chromium project in
# Debian's Chromium through playwright.config.js beside this script, which
# wraps the suite's config without editing it; stops the hub by its PID.
set -euo pipefail

here=$(cd "$(dirname "$0")" && pwd)
repo=$(cd "$here/../.." && pwd)

die() { echo "run.sh: $*" >&2; exit 2; }

suite=${MERCURE_CONFORMANCE_DIR:-}
if [ $# -gt 0 ] && [ "${1#-}" = "$1" ]; then
  suite=$1
  shift
fi
[ -n "$suite" ] || die "no suite directory: pass it as the first argument or in MERCURE_CONFORMANCE_DIR (see $here/README.md)"
abs=$(cd "$suite" 2>/dev/null && pwd) || die "suite directory $suite does not exist"
suite=$abs
for f in mercure.spec.ts playwright.config.ts package.json; do
  [ -f "$suite/$f" ] || die "$suite has no $f: is it the suite's conformance-tests folder?"
done

# The suite as README.md names it (draft-07, topic= and the mercure
# claim). Another version may still run, but what it checks differs.
while read -r sum f; do
  got=$(sha256sum "$suite/$f" | cut -d' ' -f1)
  [ "$got" = "$sum" ] ||
    echo "run.sh: WARNING: $suite/$f is not the version README.md names (sha256 $got); running it anyway" >&2
done <<'SUMS'
fa59a0c731ca0b395628c33f7df09535da811ea6822b9034e936b8287072e58a mercure.spec.ts
2efc776c93e6f1ec00e26069cd7d5ef825972f58f1d6011700627eb51697742b playwright.config.ts
SUMS

chromium=${CHROMIUM:-$(command -v chromium || true)}
[ -n "$chromium" ] && [ -x "$chromium" ] ||
  die "no Chromium: install Debian's package (apt-get install -y chromium) or set CHROMIUM"

# The suite's dependencies, as its lock file pins them. Playwright's own
# browsers are never downloaded: Debian's Chromium runs the tests.
export PLAYWRIGHT_SKIP_BROWSER_DOWNLOAD=1
if [ ! -x "$suite/node_modules/.bin/playwright" ]; then
  echo "run.sh: installing the suite's npm dependencies (npm ci in $suite)"
  (cd "$suite" && npm ci --no-audit --no-fund)
fi

# Nothing from the caller's environment may point the hub elsewhere (a
# shared Redis or NATS, another data directory) or change the suite's
# settings: the hub gets only the flags below, the suite only its .env and
# BASE_URL.
while IFS= read -r v; do unset "$v"; done < <(compgen -e | grep '^SSEHUB_' || true)
unset BASE_URL CUSTOM_ID

tmp=$(mktemp -d "${TMPDIR:-/tmp}/ssehub-mercure.XXXXXX")
hub=""
stop_hub() {
  [ -n "$hub" ] || return 0
  if kill -0 "$hub" 2>/dev/null; then
    kill -TERM "$hub" 2>/dev/null || true
    for _ in $(seq 100); do
      kill -0 "$hub" 2>/dev/null || break
      sleep 0.1
    done
    if kill -0 "$hub" 2>/dev/null; then
      echo "run.sh: the hub (pid $hub) did not stop in 10s; killing it" >&2
      kill -KILL "$hub" 2>/dev/null || true
    fi
  fi
  wait "$hub" 2>/dev/null || true
  hub=""
}
cleanup() {
  stop_hub
  rm -rf "$tmp"
}
trap cleanup EXIT
trap 'exit 130' INT
trap 'exit 143' TERM

echo "run.sh: building ssehub"
(cd "$repo" && "${GO:-go}" build -o "$tmp/ssehub" ./cmd/ssehub)

# The key the suite's hard-coded publisher token is signed with (HS256,
# 34 bytes, no trailing newline).
printf '%s' '!ChangeThisMercureHubJWTSecretKey!' >"$tmp/jwt-secret"
chmod 600 "$tmp/jwt-secret"

flags=(serve
  --addr 127.0.0.1:0
  --store bolt
  --data-dir "$tmp/data"
  --jwt-secret-file "$tmp/jwt-secret"
  --log-level debug)
# The suite's token has no exp, which ssehub refuses by default; the
# Mercure-only switch accepts it. A build from before the switch existed
# would refuse the unknown flag and not start, so it is left out there,
# loudly: every publish is then refused.
help=$("$tmp/ssehub" serve -h 2>&1 || true)
if [[ $help == *-mercure-allow-no-exp* ]]; then
  flags+=(--mercure-allow-no-exp)
else
  echo "run.sh: WARNING: this ssehub has no --mercure-allow-no-exp flag; starting without it, so the suite's token (no exp) will be refused" >&2
fi

"$tmp/ssehub" "${flags[@]}" >"$tmp/hub.out" 2>"$tmp/hub.log" &
hub=$!

# The hub listens on port 0 and logs the address it got.
base=""
for _ in $(seq 300); do
  if ! kill -0 "$hub" 2>/dev/null; then
    wait "$hub" 2>/dev/null || true
    hub=""
    cat "$tmp/hub.log" >&2
    die "ssehub serve exited at start (log above)"
  fi
  base=$(sed -n 's/.*msg="ssehub serving".* addr=\(http:\/\/[^ ]*\).*/\1/p' "$tmp/hub.log" | head -1)
  [ -n "$base" ] && break
  sleep 0.1
done
[ -n "$base" ] || { cat "$tmp/hub.log" >&2; die "ssehub serve did not say where it listens within 30s"; }
ready=false
for _ in $(seq 100); do
  if curl -fsS -o /dev/null --max-time 2 "$base/readyz"; then ready=true; break; fi
  sleep 0.1
done
$ready || { cat "$tmp/hub.log" >&2; die "$base/readyz did not answer 200 within 10s"; }
echo "run.sh: ssehub (pid $hub) serving at $base; suite in $suite; browser $chromium"

# BASE_URL is the hub's URL, as the suite's README describes it; the tests
# open its origin's "/" first, then use /.well-known/mercure there.
# Playwright colours its output even into a file or pipe; not then.
[ -t 1 ] || export FORCE_COLOR=${FORCE_COLOR:-0}
status=0
(
  cd "$suite" # the suite's config reads .env from the working directory
  BASE_URL="$base/.well-known/mercure" \
    MERCURE_SUITE_DIR="$suite" \
    PLAYWRIGHT_CHROMIUM_PATH="$chromium" \
    PLAYWRIGHT_OUTPUT_DIR="$tmp/playwright" \
    "$suite/node_modules/.bin/playwright" test \
    --config "$here/playwright.config.js" \
    --project chromium \
    --reporter list \
    --retries 0 \
    "$@"
) || status=$?

stop_hub
if [ "$status" -ne 0 ]; then
  echo "run.sh: the suite failed (status $status); the hub's last log lines:" >&2
  tail -n 40 "$tmp/hub.log" >&2
fi
echo "run.sh: suite status $status"
exit "$status"
