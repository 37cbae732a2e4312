#!/usr/bin/env bash
# Runs a browser test command and runs it once more only when it failed because WebKitGTK's web
# process aborted in GLib's setuid check ("getauxval () failed: Interrupted system call"): a race
# inside the engine (most likely a signal landing between GLib clearing errno and reading it),
# seen in about one WebKit suite run in five on these machines. Any other failure, including any
# other crash, fails at once.
set -uo pipefail
log=$(mktemp); trap 'rm -f "$log"' EXIT
rc=0
for attempt in 1 2; do
  "$@" 2>&1 | tee "$log"; rc=${PIPESTATUS[0]}
  [ "$rc" -eq 0 ] && exit 0
  grep -q "getauxval () failed" "$log" || exit "$rc"
  [ "$attempt" = 1 ] && echo "[retry-engine-crash] WebKit's web process aborted in GLib (getauxval): running the suite once more" >&2
done
exit "$rc"
