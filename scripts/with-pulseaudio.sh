#!/usr/bin/env bash
# Runs a command with a PulseAudio null sink of its own: Firefox processes no audio at all without
# a sound server, and WebKitGTK's web process crashes when a page plays audio without one
# (TOOLCHAIN.md). Each run gets a private daemon in its own runtime directory, so parallel runs
# never stop each other's sound server.
# `with-pulseaudio.sh --restart`, run under it, starts the daemon again in the same directory
# (the echo lab does after PulseAudio crashed at a room switch).
set -euo pipefail
daemon() {
  pulseaudio -D --exit-idle-time=-1 -n --use-pid-file=true \
    --load="module-native-protocol-unix socket=$PULSE_RUNTIME_PATH/native" \
    --load="module-null-sink sink_name=nullsink" 2>/dev/null
  # Polled until it answers (bounded: 5 s).
  for _ in $(seq 1 50); do pactl info >/dev/null 2>&1 && break; sleep 0.1; done
  pactl info >/dev/null 2>&1 || { echo "PulseAudio did not start" >&2; exit 1; }
}
if [ "${1:-}" = "--restart" ]; then
  # Only a daemon of this script's own (never a desktop's sound server).
  case "${PULSE_RUNTIME_PATH:-}" in
    /tmp/rv-pulse.*) ;;
    *) echo "--restart: not under with-pulseaudio.sh" >&2; exit 2 ;;
  esac
  pulseaudio -k 2>/dev/null || true
  rm -f "$PULSE_RUNTIME_PATH/native" "$PULSE_RUNTIME_PATH/pid"
  daemon
  exit 0
fi
dir=$(mktemp -d /tmp/rv-pulse.XXXXXX)
export PULSE_RUNTIME_PATH="$dir" PULSE_STATE_PATH="$dir" PULSE_SERVER="unix:$dir/native"
cleanup() { pulseaudio -k 2>/dev/null || true; rm -rf "$dir"; }
trap cleanup EXIT
daemon
"$@"
