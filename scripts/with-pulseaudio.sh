#!/usr/bin/env bash
# Runs a command with a PulseAudio null sink up: Firefox processes no audio at all without a sound
# server (TOOLCHAIN.md). Starts one only if none answers, and stops only the one it started.
set -euo pipefail
started=0
if ! pactl info >/dev/null 2>&1; then
  pulseaudio -D --exit-idle-time=-1 -n --load=module-native-protocol-unix \
    --load="module-null-sink sink_name=nullsink" --load="module-null-source source_name=nullsource" 2>/dev/null \
    || pulseaudio -D --exit-idle-time=-1 -n --load=module-native-protocol-unix --load="module-null-sink sink_name=nullsink"
  started=1
  for _ in $(seq 1 50); do pactl info >/dev/null 2>&1 && break; sleep 0.1; done
fi
trap '[ "$started" = 1 ] && pulseaudio -k 2>/dev/null || true' EXIT
"$@"
