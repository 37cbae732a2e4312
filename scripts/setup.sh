#!/usr/bin/env bash
# Idempotent setup of everything `make demo` and `make test` need, from package registries only
# (Debian apt, crates.io, npm). Each step is skipped when its tool is already there at the right
# version, so a warm run takes seconds. See ../shared/TOOLCHAIN.md for why each pin exists.
set -euo pipefail
cd "$(dirname "$0")/.."

WASM_BINDGEN_VERSION=0.2.130
APT_PACKAGES=(chromium chromium-driver firefox-esr pulseaudio pulseaudio-utils sox espeak-ng tap-plugins
  webkit2gtk-driver xvfb xauth gstreamer1.0-gl libgl1-mesa-dri gstreamer1.0-plugins-bad
  gstreamer1.0-alsa gstreamer1.0-libav
  # Redis and Postgres for the server's multi-instance tests (server/tests/multi_instance.rs
  # starts private instances on free ports; the Debian services themselves are not used).
  redis-server postgresql)
export PATH="$HOME/.cargo/bin:$PATH"

log() { printf '[setup] %s\n' "$*"; }

# rustup first: the cargo installs below build with the toolchain, and rust-src is for the
# release package, which rebuilds std (scripts/build-pkg.sh).
if ! rustup target list --installed | grep -q '^wasm32-unknown-unknown$'; then
  log "rustup: adding wasm32-unknown-unknown"
  rustup target add wasm32-unknown-unknown
fi
for c in rustfmt clippy rust-src; do
  rustup component list --installed | grep -q "^$c" || rustup component add "$c"
done

# The cargo installs compile (CPU) while apt downloads and unpacks (network and disk): they run
# side by side (the installs took 2.4 minutes of a clean clone's setup), and need nothing from apt.
need_bindgen=; need_gecko=
[ "$(wasm-bindgen --version 2>/dev/null | awk '{print $2}')" = "$WASM_BINDGEN_VERSION" ] || need_bindgen=1
command -v geckodriver >/dev/null || need_gecko=1
[ -z "$need_bindgen" ] || log "cargo: installing wasm-bindgen-cli $WASM_BINDGEN_VERSION (wasm-bindgen and its test runner), beside apt"
[ -z "$need_gecko" ] || log "cargo: installing geckodriver, beside apt"
# Both unoptimised and without debug info: 77 + 81 s to build on a 2-core machine instead of
# 172 + 156 s. They only translate bindings and relay WebDriver calls: wasm-bindgen takes 2.1 s
# instead of 0.45 s over a browser test binary, 0.5 s instead of 0.1 s over the package.
cargo_tools() {
  export CARGO_PROFILE_DEV_DEBUG=0
  # No --locked for wasm-bindgen-cli: its lockfile wants a webpki-roots version the index lacks
  # (TOOLCHAIN.md).
  [ -z "$need_bindgen" ] ||
    cargo install -q --debug wasm-bindgen-cli --version "$WASM_BINDGEN_VERSION" --no-default-features --force
  [ -z "$need_gecko" ] || cargo install -q --debug geckodriver --locked
}
cargo_log=$(mktemp)
trap 'rm -f "$cargo_log"' EXIT
cargo_tools >"$cargo_log" 2>&1 &
cargo_pid=$!

missing=()
for p in "${APT_PACKAGES[@]}"; do
  dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q "install ok installed" || missing+=("$p")
done
if [ ${#missing[@]} -gt 0 ]; then
  log "apt: installing ${missing[*]}"
  SUDO=""; [ "$(id -u)" = 0 ] || SUDO="sudo"
  $SUDO apt-get update -qq
  DEBIAN_FRONTEND=noninteractive $SUDO apt-get install -y -qq --no-install-recommends "${missing[@]}" >/dev/null
fi

cargo_rc=0
wait "$cargo_pid" || cargo_rc=$?
cat "$cargo_log"
[ "$cargo_rc" = 0 ] || { log "cargo install failed (exit $cargo_rc)"; exit "$cargo_rc"; }

# npm tools (playwright-core, selenium-webdriver, binaryen's wasm-opt, typescript): the lockfile
# pins them; reinstall only when the lockfile changed since the last install.
if [ ! -f node_modules/.package-lock.json ] || [ package-lock.json -nt node_modules/.package-lock.json ]; then
  log "npm: installing dev tools"
  if [ -f package-lock.json ]; then npm ci --no-audit --no-fund --loglevel=error; else npm install --no-audit --no-fund --loglevel=error; fi
fi
log "ready"
