#!/usr/bin/env bash
# Whether a change to the echo guard keeps every decision, bit for bit: `save` before the change,
# `check` after it. Runs every native test of the crate with the `guard-hash` feature (proptest
# seeded) and compares, per test thread, the hash of what the guard sent and of its state after
# each frame (src/audio/echo_guard_hash.rs). For refactors and size trims; a change meant to move
# decisions fails it by design.
set -euo pipefail
cd "$(dirname "$0")/.."
case "${1:-}" in
  save) dir=target/guard-hash/base ;;
  check) dir=target/guard-hash/now ;;
  *) echo "usage: $0 save|check" >&2; exit 2 ;;
esac
rm -rf "$dir"
mkdir -p "$dir"
log=$(mktemp)
trap 'rm -f "$log"' EXIT
if ! GUARD_HASH_DIR="$PWD/$dir" PROPTEST_RNG_SEED=7 cargo test -q --features guard-hash --lib --tests >"$log" 2>&1; then
  cat "$log"
  echo "guard-bit-exact: the tests failed" >&2
  exit 1
fi
n=$(find "$dir" -type f | wc -l)
if [ "$1" = save ]; then
  echo "guard-bit-exact: $n test threads hashed into $dir"
  exit 0
fi
if diff -r target/guard-hash/base "$dir"; then
  echo "guard-bit-exact: the same in all $n test threads"
else
  echo "guard-bit-exact: the decisions moved in the threads above" >&2
  exit 1
fi
