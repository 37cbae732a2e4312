#!/usr/bin/env bash
# Builds the npm package into pkg/ (or $1): cargo (release profile, for size), then wasm-bindgen
# --target web (or $2, e.g. `bundler` into pkg-bundler/, whose package.json then lists the
# entry's side effects), wasm-opt -Os from the npm binaryen (never Debian's 108, which breaks the
# module), the worklet files beside the glue, and package.json from pkg.json.template with the
# crate's version.
set -euo pipefail
cd "$(dirname "$0")/.."
out="${1:-pkg}"
target="${2:-web}"
export PATH="$PWD/node_modules/.bin:$HOME/.cargo/bin:$PATH"

# wasm-bindgen adds snippet files but never removes one the crate no longer has.
rm -rf "$out/snippets"
# The opt-in echo canceller (echoCanceller: "wasm", aec/): a module of its own, fetched only by
# apps that ask for it, built for speed (profile `aec`, wasm-opt -O3) with the prebuilt std.
cargo build --quiet -p realtime-voice-aec --profile aec --target wasm32-unknown-unknown
mkdir -p "$out/aec"
wasm-opt -O3 --enable-bulk-memory --enable-mutable-globals --enable-nontrapping-float-to-int \
  --enable-sign-ext --enable-reference-types --enable-multivalue --strip-debug --strip-producers \
  target/wasm32-unknown-unknown/aec/realtime_voice_aec.wasm -o "$out/aec/realtime_voice_aec.wasm"

# The release flavour rebuilds std with panics that trap at once (`-Cpanic=immediate-abort`) and
# no source locations (`-Zlocation-detail=none`): std's panic machinery and most of core::fmt drop
# out (−5.1 KB gzip, docs/ARCHITECTURE.md). It needs rust-src and unstable flags, which
# RUSTC_BOOTSTRAP=1 allows on stable rustc (1.95 here); LEAN_STD=0 builds with the prebuilt std
# instead. Its own target dir keeps both builds cached. FEATURES=debug-panics builds the debug
# flavour (panics printed with their location, prebuilt std).
cargo_args=()
if [ -z "${FEATURES:-}" ] && [ "${LEAN_STD:-1}" = 1 ]; then
  export RUSTC_BOOTSTRAP=1 RUSTFLAGS="-Zunstable-options -Cpanic=immediate-abort -Zlocation-detail=none" CARGO_TARGET_DIR="$PWD/target/lean-std"
  cargo_args=(-Z build-std=std,panic_abort)
fi
[ -n "${FEATURES:-}" ] && cargo_args+=(--features "$FEATURES")
cargo build --quiet --lib --release --target wasm32-unknown-unknown ${cargo_args[@]+"${cargo_args[@]}"}
# The bindings, as wasm-pack would write them (its defaults for a release build), by the pinned
# wasm-bindgen that setup.sh installs: wasm-pack itself is not needed.
wasm-bindgen "${CARGO_TARGET_DIR:-$PWD/target}/wasm32-unknown-unknown/release/realtime_voice.wasm" \
  --out-dir "$out" --out-name realtime_voice --typescript --target "$target"
wasm="$out/realtime_voice_bg.wasm"
# wasm-bindgen's output still has its function names: `make size` groups its items by area
# from this copy (scripts/size.sh).
mkdir -p target/size
cp "$wasm" "target/size/$out.names.wasm"
# Features the Rust wasm32 target enables by default; wasm-opt must accept them, and adds none.
features=(--enable-bulk-memory --enable-mutable-globals --enable-nontrapping-float-to-int
  --enable-sign-ext --enable-reference-types --enable-multivalue)
# -Os rather than -Oz: 0.4 KB more raw bytes, but 0.4 KB less gzip; --low-memory-unused lets
# constant offsets fold into loads and stores (the first 1 KB of memory is the bottom of Rust's
# 1 MB stack, never reached): −0.5 KB gzip; --converge repeats the passes until the module stops
# shrinking: −0.5 KB gzip for ≈ 20 s more. All measured in docs/ARCHITECTURE.md.
opt=(-Os --low-memory-unused --converge)
wasm-opt "${opt[@]}" "${features[@]}" --strip-debug --strip-producers "$wasm" -o "$wasm.opt"
mv "$wasm.opt" "$wasm"
if [ "$target" = web ]; then
  # wasm-bindgen's import names carry a 16-digit hash each (`__wbg_set_onmessage_5e09c5c5df17fb8b`,
  # 137 of them) and are spelt out in the wasm and in the glue: one- or two-letter names instead,
  # in both (−4.3 KB gzip). Binaryen renames imports only together with their module, which
  # becomes "a": the web flavour's glue hands the imports object over itself, whereas a bundler
  # resolves the module as the file realtime_voice_bg.js, so the bundler flavour keeps its names.
  wasm-opt "${features[@]}" --minify-imports-and-exports-and-modules "$wasm" -o "$wasm.opt" |
    node scripts/rename-wasm-names.mjs "$out/realtime_voice.js"
  mv "$wasm.opt" "$wasm"
  grep -q '"./realtime_voice_bg.js": import0' "$out/realtime_voice.js" ||
    { echo "build-pkg: the glue's import object has changed shape; update the module rename" >&2; exit 1; }
  sed -i 's|"./realtime_voice_bg.js": import0|a: import0|' "$out/realtime_voice.js"
fi
# Every call into the wasm, the app's method calls too, goes through the glue's `shield`: an
# exception out of one aborts the client at once (glue.js, docs/ARCHITECTURE.md).
if [ "$target" = bundler ]; then entry="$out/realtime_voice_bg.js"; else entry="$out/realtime_voice.js"; fi
node scripts/shield-wasm-exports.mjs "$entry"
mkdir -p "$out/worklets"
cp src/web/worklets/capture.js src/web/worklets/playback.js src/web/worklets/aec.js "$out/worklets/"
# Minify every shipped JS file in place, one by one (no bundling: imports, exports, literal
# `new URL(…, import.meta.url)` worklet URLs and wasm-bindgen's import names stay as they are).
# -4.5 KB gzip on the glue and worklets; the readable sources are in src/web/.
find "$out" -name '*.js' -print0 | while IFS= read -r -d '' js; do
  esbuild "$js" --minify --format=esm --target=es2020 --log-level=warning --outfile="$js.min" --allow-overwrite
  mv "$js.min" "$js"
done
version=$(sed -n 's/^version = "\(.*\)"/\1/p' Cargo.toml | head -n 1)
sed "s/@VERSION@/$version/" pkg.json.template > "$out/package.json"
if [ "$target" = bundler ]; then
  # The bundler flavour's entry hands the wasm module to realtime_voice_bg.js at import time, and
  # the snippets are imported by the wasm: both have side effects a bundler must keep (as
  # wasm-bindgen's own package.json says), or a tree-shaker may skip the entry and never set the wasm.
  node -e '
    const fs = require("fs"), p = process.argv[1], j = JSON.parse(fs.readFileSync(p, "utf8"));
    j.sideEffects = ["./realtime_voice.js", "./snippets/*"];
    fs.writeFileSync(p, JSON.stringify(j, null, 2) + "\n");' "$out/package.json"
fi
echo "built $out/ (realtime-voice $version, target $target)"
