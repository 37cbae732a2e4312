#!/usr/bin/env bash
# Runs a command with the fault lab's control server up on 127.0.0.1:$FAULT_PROXY_PORT (default
# 18099) and RV_FAULT_PROXY exported to its URL; stops it afterwards, whatever the command's
# outcome. Readiness is /health answering, not a fixed sleep. Composes with scripts/with-server.sh:
#   scripts/with-server.sh fault-proxy/with-fault-proxy.sh npx playwright test
set -euo pipefail
cd "$(dirname "$0")/.."
port="${FAULT_PROXY_PORT:-18099}"
bin="${FAULT_PROXY_BIN:-target/debug/fault-proxy}"
[ -x "$bin" ] || { echo "no fault-proxy binary at $bin (cargo build -p fault-proxy builds it)" >&2; exit 1; }
if curl -fsS "http://127.0.0.1:$port/health" >/dev/null 2>&1; then
  echo "port $port already answers /health: stop that fault-proxy or set FAULT_PROXY_PORT" >&2; exit 1
fi
log="target/fault-proxy-$port.log"
mkdir -p target
"$bin" --control "127.0.0.1:$port" >"$log" 2>&1 &
pid=$!
trap 'kill "$pid" 2>/dev/null; wait "$pid" 2>/dev/null || true' EXIT
for _ in $(seq 1 300); do
  curl -fsS "http://127.0.0.1:$port/health" >/dev/null 2>&1 && break
  kill -0 "$pid" 2>/dev/null || { echo "fault-proxy exited; its log:" >&2; cat "$log" >&2; exit 1; }
  sleep 0.1
done
curl -fsS "http://127.0.0.1:$port/health" >/dev/null || { echo "fault-proxy not ready after 30 s" >&2; cat "$log" >&2; exit 1; }
export RV_FAULT_PROXY="http://127.0.0.1:$port"
"$@"
