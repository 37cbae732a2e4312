#!/usr/bin/env bash
# What the echo guard costs in the package (issue 16's goal: ≤ 3 KB gzip): pkg/ as built against
# a package built without the guard into pkg-no-echo-guard/ (scripts/size/no-echo-guard.patch,
# applied for the build and taken back after it: the guard's entry points return at once, the
# gate hands the microphone's block on, the `echoGuard` option and the five echo metrics are
# gone; the guard's construction and the duck's hand-over stay, tens of bytes). gzip -9 totals of
# the files that ship, as scripts/size.sh counts them.
set -euo pipefail
cd "$(dirname "$0")/.."
patch=scripts/size/no-echo-guard.patch
total() {
  local t=0 f
  for f in "$1/realtime_voice_bg.wasm" "$1/realtime_voice.js" "$1/worklets/capture.js" "$1/worklets/playback.js" \
    $(find "$1/snippets" -name '*.js'); do
    t=$((t + $(gzip -9 -c "$f" | wc -c)))
  done
  echo "$t"
}
git apply "$patch"
trap 'git apply -R "$patch"' EXIT
bash scripts/build-pkg.sh pkg-no-echo-guard >/dev/null
git apply -R "$patch"
trap - EXIT
with=$(total pkg) without=$(total pkg-no-echo-guard)
echo "package $with B gzip -9, without the echo guard $without B: the guard costs $((with - without)) B"
