#!/usr/bin/env bash
# Checks the npm package as a user gets it (issue 6, items 1 and 6):
#   1. `npm pack` of pkg/ (built by `make pkg`), installed from the tarball into a tiny Vite app
#      (tests/package/vite-app, its own lockfile);
#   2. `tsc --strict --noEmit` of tests/package/vite-app/typecheck.ts against the installed types
#      (bundler and NodeNext module resolution; typecheck-bundler.ts for the bundler flavour):
#      the typed event map accepts `client.on('status', s => s.state)` and its @ts-expect-error
#      lines (wrong event name, wrong field, ...) must really be errors;
#   3. `vite build` (default config) and a run in Chromium (playwright-core): the wasm initialises
#      and, with RV_TEST_SERVER set (scripts/with-server.sh), connect() reaches `connected` in voice
#      mode with both worklets loaded from what Vite emitted;
#   4. the --target bundler flavour, built into pkg-bundler/ when its sources changed, packed and
#      installed the same way and run through Vite with vite-plugin-wasm.
# Prints one PASS/FAIL line; exits non-zero on failure. Run: make pkg server &&
#   TEST_PORT=18090 scripts/with-server.sh scripts/test-package.sh
set -euo pipefail
cd "$(dirname "$0")/.."
root=$PWD
app=tests/package/vite-app
work=target/package-test
export PATH="$root/node_modules/.bin:$HOME/.cargo/bin:$PATH"
export npm_config_audit=false npm_config_fund=false npm_config_update_notifier=false NO_COLOR=1
start=$(date +%s)
step=setup

log() { printf '[test-package] %s\n' "$*"; }
# A failed check is recorded and the next ones still run; a failure the others depend on (a
# missing tool, a failed install) stops at once. Either way the run ends with one FAIL line.
failed=()
trap 'rc=$?; [ $rc -eq 0 ] || echo "test-package: FAIL (step: $step${failed:+; also failed: ${failed[*]}})" >&2' EXIT
die() { echo "[test-package] $*" >&2; exit 1; }
check() { "$@" || failed+=("$step"); }

[ -f pkg/realtime_voice_bg.wasm ] && [ -f pkg/package.json ] || die "no package in pkg/: run make pkg"
[ -x node_modules/.bin/tsc ] && [ -d node_modules/playwright-core ] || die "no dev tools in node_modules/: run make setup"
[ -n "${RV_TEST_SERVER:-}" ] || log "RV_TEST_SERVER unset: no connect() check (run under scripts/with-server.sh)"

step="vite app dependencies"
# Reinstall only when the lockfile changed since the last install (as scripts/setup.sh does).
if [ ! -f "$app/node_modules/.package-lock.json" ] || [ "$app/package-lock.json" -nt "$app/node_modules/.package-lock.json" ]; then
  log "npm ci in $app"
  (cd "$app" && npm ci --loglevel=error)
fi

step="bundler build"
# pkg-bundler/ is rebuilt only when what goes into it changed (a stamp of the inputs' contents).
stamp=$(find src aec Cargo.toml Cargo.lock pkg.json.template scripts/build-pkg.sh -type f -print0 2>/dev/null |
  sort -z | xargs -0 sha256sum | sha256sum | cut -c1-16)
mkdir -p "$work"
if [ "$(cat "$work/pkg-bundler.stamp" 2>/dev/null)" != "$stamp" ] || [ ! -f pkg-bundler/realtime_voice_bg.wasm ]; then
  log "building pkg-bundler/ (--target bundler)"
  bash scripts/build-pkg.sh pkg-bundler bundler
  echo "$stamp" > "$work/pkg-bundler.stamp"
fi
for f in package.json realtime_voice.js realtime_voice_bg.js realtime_voice_bg.wasm realtime_voice.d.ts \
  worklets/capture.js worklets/playback.js; do
  [ -f "pkg-bundler/$f" ] || die "pkg-bundler/$f is missing"
done

# Packs $1 (a package folder) into $work/$2/ and installs the tarball into the Vite app without
# touching its package.json or lockfile; checks that what got installed is what was built.
install_tarball() {
  local dir=$1 flavour=$2 tgz
  rm -rf "${work:?}/$flavour" && mkdir -p "$work/$flavour"
  tgz=$(npm pack "./$dir" --pack-destination "$work/$flavour" --loglevel=error | tail -n 1)
  [ -f "$work/$flavour/$tgz" ] || die "npm pack $dir gave no tarball"
  # Removed first: npm may keep an installed copy of the same name and version ("up to date").
  rm -rf "$app/node_modules/realtime-voice"
  (cd "$app" && npm install --no-save --loglevel=error "$root/$work/$flavour/$tgz" >/dev/null)
  cmp -s "$dir/realtime_voice_bg.wasm" "$app/node_modules/realtime-voice/realtime_voice_bg.wasm" ||
    die "the installed package is not the $dir/ build"
  for f in realtime_voice.js realtime_voice.d.ts worklets/capture.js worklets/playback.js; do
    [ -f "$app/node_modules/realtime-voice/$f" ] || die "the $flavour tarball lacks $f (package.json files?)"
  done
  log "$flavour: installed $tgz ($(du -k "$work/$flavour/$tgz" | cut -f1) KB packed)"
}

# Builds the app with Vite into dist-$1 (extra vite arguments follow) and runs it in Chromium.
build_and_run() {
  local flavour=$1
  shift
  step="vite build ($flavour)"
  (cd "$app" && vite_out=$(./node_modules/.bin/vite build --outDir "dist-$flavour" --emptyOutDir "$@" 2>&1) ||
    { echo "$vite_out" >&2; exit 1; })
  step="chromium run ($flavour)"
  check node tests/package/run.mjs "$app/dist-$flavour" "$flavour" "${RV_TEST_SERVER:-}"
}

step="pack web"
install_tarball pkg web
step="tsc --strict"
# Module resolution as bundlers do it, and as Node does it (package.json "exports" either way).
if tsc -p "$app/tsconfig.json" --strict --noEmit && tsc -p "$app/tsconfig.nodenext.json" --strict --noEmit; then
  log "web: tsc --strict (bundler and nodenext resolution): typed API accepted, every @ts-expect-error line refused"
else
  failed+=("$step")
fi
build_and_run web

step="pack bundler"
install_tarball pkg-bundler bundler
step="tsc --strict (bundler)"
if tsc -p "$app/tsconfig.bundler.json" --strict --noEmit; then
  log "bundler: tsc --strict: types resolve and the event map is typed"
else
  failed+=("$step")
fi
build_and_run bundler --config vite.bundler.config.js

if [ ${#failed[@]} -gt 0 ]; then
  echo "test-package: FAIL (${failed[*]})" >&2
  trap - EXIT
  exit 1
fi
step=done
echo "test-package: PASS (types, Vite + Chromium for --target web and bundler$([ -n "${RV_TEST_SERVER:-}" ] && echo ", connect() to $RV_TEST_SERVER"); $(($(date +%s) - start)) s)"
