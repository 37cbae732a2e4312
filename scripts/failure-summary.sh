#!/usr/bin/env bash
# Runs a test command; when it fails, prints at the very end which tests failed and the first
# panics with their messages. A failing wasm-bindgen-test page can print thousands of lines after
# the first panic (a trap leaves RefCell borrows taken, so every later callback panics too), and
# CI shows only the tail of the output.
set -uo pipefail
log=$(mktemp); trap 'rm -f "$log"' EXIT
"$@" 2>&1 | tee "$log"; rc=${PIPESTATUS[0]}
if [ "$rc" -ne 0 ]; then
  echo "[failure-summary] exit $rc; failed tests:"
  grep -E "^test .* (FAIL|FAILED)$" "$log" | head -20 || true
  echo "[failure-summary] the first panics:"
  grep -m 6 -A 1 "panicked at" "$log" | grep -v "^--$" || true
fi
exit "$rc"
