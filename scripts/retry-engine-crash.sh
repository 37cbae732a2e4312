#!/usr/bin/env bash
# Runs a browser test command and runs it once more only when it failed because WebKitGTK's web
# process crashed: it aborted in GLib's setuid check ("getauxval () failed: Interrupted system
# call", a race inside the engine seen in about one WebKit suite run in five on these machines),
# or MiniBrowser reported "WebProcess CRASHED" for another reason (seen in the E2E suite and in
# this layer, never reproduced on demand; e2e/support.mjs reruns a scenario on either). A second
# crash, and any other failure, fails.
set -uo pipefail
log=$(mktemp); trap 'rm -f "$log"' EXIT
rc=0
for attempt in 1 2; do
  "$@" 2>&1 | tee "$log"; rc=${PIPESTATUS[0]}
  [ "$rc" -eq 0 ] && exit 0
  grep -qE "getauxval \(\) failed|WebProcess CRASHED" "$log" || exit "$rc"
  [ "$attempt" = 1 ] && echo "[retry-engine-crash] WebKit's web process crashed: running the suite once more" >&2
done
exit "$rc"
