#!/usr/bin/env bash
# Runs a command with the reference server up on 127.0.0.1:$TEST_PORT (default 18080), in dev mode
# with fault injection, serving this checkout's www/ and pkg/; stops the server afterwards, whatever
# the command's outcome. Readiness is /health answering, not a fixed sleep.
set -euo pipefail
cd "$(dirname "$0")/.."
port="${TEST_PORT:-18080}"
bin="${SERVER_BIN:-target/debug/realtime-voice-server}"
[ -x "$bin" ] || { echo "no server binary at $bin (make builds it)" >&2; exit 1; }
if curl -fsS "http://127.0.0.1:$port/health" >/dev/null 2>&1; then
  echo "port $port already answers /health: stop that server or set TEST_PORT" >&2; exit 1
fi
log="target/test-server-$port.log"
mkdir -p target
# A 50 % rollout, as in the checklist's week 3: user "dev-user" (md5 bucket 34) has realtime,
# "rollout-out" (bucket 64) gets 4403 — the tests use both.
REALTIME_ROLLOUT_PERCENT="${REALTIME_ROLLOUT_PERCENT:-50}" PORT="$port" STATIC_ROOT="$PWD" DATABASE_PATH="${DATABASE_PATH:-}" "$bin" --dev --faults ${SERVER_ARGS:-} >"$log" 2>&1 &
pid=$!
trap 'kill "$pid" 2>/dev/null; wait "$pid" 2>/dev/null || true' EXIT
for _ in $(seq 1 300); do
  curl -fsS "http://127.0.0.1:$port/health" >/dev/null 2>&1 && break
  kill -0 "$pid" 2>/dev/null || { echo "server exited; its log:" >&2; cat "$log" >&2; exit 1; }
  sleep 0.1
done
curl -fsS "http://127.0.0.1:$port/health" >/dev/null || { echo "server not ready after 30 s" >&2; cat "$log" >&2; exit 1; }
export RV_TEST_SERVER="http://127.0.0.1:$port"
"$@"
