#!/usr/bin/env bash
# Prints the shipped bytes of the package (wasm, JS glue, snippets, worklets), raw and gzip -9, and their
# total. With --check BYTES, fails when the gzip total exceeds BYTES (the budget in size-budget).
# With --total DIR, prints only the gzip total of the package in DIR (scripts/echo-guard-size.sh).
# Without it, also the wasm by area (core session, protocol, audio, web shell, wasm-bindgen glue,
# futures executor, std's fmt/panic/alloc/float, data) with the largest items in each: the named
# copy build-pkg.sh keeps, optimised like the shipped one (same wasm-opt flags) but with its
# names (-g), read by scripts/wasm-items.mjs.
set -euo pipefail
cd "$(dirname "$0")/.."
export PATH="$PWD/node_modules/.bin:$HOME/.cargo/bin:$PATH"
dir=pkg quiet=
if [ "${1:-}" = "--total" ]; then dir="$2" quiet=1; fi
row() { [ -n "$quiet" ] || printf "$@"; }
files=("$dir/realtime_voice_bg.wasm" "$dir/realtime_voice.js" "$dir/worklets/capture.js" "$dir/worklets/playback.js")
# The JS snippets the wasm imports (src/web/*.js, copied by wasm-bindgen) ship too.
while IFS= read -r -d '' f; do files+=("$f"); done < <(find "$dir/snippets" -name '*.js' -print0 2>/dev/null | sort -z)
total_raw=0; total_gz=0
row '%-32s %10s %10s\n' file raw gzip-9
for f in "${files[@]}"; do
  [ -f "$f" ] || { echo "missing $f: run 'make pkg' first" >&2; exit 1; }
  raw=$(wc -c < "$f"); gz=$(gzip -9 -c "$f" | wc -c)
  total_raw=$((total_raw + raw)); total_gz=$((total_gz + gz))
  name="${f#$dir/}"; name="${name#snippets/*/}"
  row '%-32s %10d %10d\n' "$name" "$raw" "$gz"
done
if [ -n "$quiet" ]; then echo "$total_gz"; exit 0; fi
printf '%-32s %10d %10d\n' total "$total_raw" "$total_gz"
# The opt-in echo canceller is fetched only by apps that ask for it: shown, not counted.
for f in worklets/aec.js aec/realtime_voice_aec.wasm; do
  [ -f "$dir/$f" ] && printf '%-32s %10d %10d  (opt-in, not in the total)\n' "$f" \
    "$(wc -c < "$dir/$f")" "$(gzip -9 -c "$dir/$f" | wc -c)"
done
if [ "${1:-}" = "--check" ]; then
  budget="$2"
  if [ "$total_gz" -gt "$budget" ]; then
    echo "size budget exceeded: $total_gz bytes gzip -9 > budget $budget (size-budget)" >&2; exit 1
  fi
  echo "size ok: $total_gz <= $budget bytes gzip -9"
  exit 0
fi
names=target/size/$dir.names.wasm
if [ -f "$names" ]; then
  wasm-opt -Os --low-memory-unused --converge -g --enable-bulk-memory --enable-mutable-globals --enable-nontrapping-float-to-int \
    --enable-sign-ext --enable-reference-types --enable-multivalue "$names" -o "target/size/$dir.named-opt.wasm"
  node scripts/wasm-items.mjs "target/size/$dir.named-opt.wasm" | node scripts/size-areas.mjs "${SIZE_TOP:-6}"
else
  echo "(no $names: run 'make pkg' for the breakdown by area; see docs/ARCHITECTURE.md)"
fi
