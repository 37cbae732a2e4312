#!/usr/bin/env bash
# What the echo guard costs in the package (issue 16's goal: ≤ 3 KB gzip): pkg/ as built against
# a package built without the guard into pkg-no-echo-guard/ (scripts/size/no-echo-guard.patch,
# applied for the build and taken back after it: the guard's entry points return at once, the
# gate hands the microphone's block on, the `echoGuard` option and the five echo metrics are
# gone; the guard's construction and the duck's hand-over stay, tens of bytes). gzip -9 totals of
# the files that ship, counted by scripts/size.sh.
set -euo pipefail
cd "$(dirname "$0")/.."
patch=scripts/size/no-echo-guard.patch
git apply "$patch"
trap 'git apply -R "$patch"' EXIT
bash scripts/build-pkg.sh pkg-no-echo-guard >/dev/null
git apply -R "$patch"
trap - EXIT
with=$(bash scripts/size.sh --total pkg) without=$(bash scripts/size.sh --total pkg-no-echo-guard)
echo "package $with B gzip -9, without the echo guard $without B: the guard costs $((with - without)) B"
