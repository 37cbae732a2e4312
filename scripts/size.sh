#!/usr/bin/env bash
# Prints the shipped bytes of the package (wasm, JS glue, worklets), raw and gzip -9, and their
# total. With --check BYTES, fails when the gzip total exceeds BYTES (the budget in size-budget).
set -euo pipefail
cd "$(dirname "$0")/.."
dir=pkg
files=("$dir/realtime_voice_bg.wasm" "$dir/realtime_voice.js" "$dir/worklets/capture.js" "$dir/worklets/playback.js")
total_raw=0; total_gz=0
printf '%-32s %10s %10s\n' file raw gzip-9
for f in "${files[@]}"; do
  [ -f "$f" ] || { echo "missing $f: run 'make pkg' first" >&2; exit 1; }
  raw=$(wc -c < "$f"); gz=$(gzip -9 -c "$f" | wc -c)
  total_raw=$((total_raw + raw)); total_gz=$((total_gz + gz))
  printf '%-32s %10d %10d\n' "${f#$dir/}" "$raw" "$gz"
done
printf '%-32s %10d %10d\n' total "$total_raw" "$total_gz"
if [ "${1:-}" = "--check" ]; then
  budget="$2"
  if [ "$total_gz" -gt "$budget" ]; then
    echo "size budget exceeded: $total_gz bytes gzip -9 > budget $budget (size-budget)" >&2; exit 1
  fi
  echo "size ok: $total_gz <= $budget bytes gzip -9"
fi
