#!/usr/bin/env bash
# The echo lab's simulated room, inside the private PulseAudio of scripts/with-pulseaudio.sh:
#   page output → null sink "page_out" (the default sink, what Chromium plays into)
#   page_out.monitor → parec | sox <room effects> | pacat → null sink "room"
#   room.monitor → module-remap-source "mic" (the default source: Chromium offers no monitor
#   sources as microphones)
# A user voice is mixed into the room by playing it into the "room" sink (pacat -d room).
# Usage: room.sh start ROOM | pipe ROOM | stop | list | effects ROOM. ROOM: dry, mild, medium, harsh, speakerphone.
# `pipe` restarts only the parec | sox | pacat pipe: a pipe that fell behind under CPU contention
# never catches up (its delay only grows), so the lab restarts it before each run.
set -euo pipefail
cmd="${1:-}"; room="${2:-}"
state="${PULSE_RUNTIME_PATH:-}/echo-room"
[ "$cmd" = effects ] || [ "$cmd" = list ] || [ -n "${PULSE_RUNTIME_PATH:-}" ] || { echo "run inside scripts/with-pulseaudio.sh" >&2; exit 1; }
RATE=48000
RAW=(--raw --format=s16le --rate=$RATE --channels=1 --latency-msec=10)
SOXRAW=(-t raw -r $RATE -e signed -b 16 -c 1)

# sox effects per room: gain (the loudspeaker-to-microphone coupling), pre-delay and reverb
# (reverberance %, HF damping %, room scale %, stereo depth %, pre-delay ms, wet gain dB).
effects() {
  case "$1" in
    dry)          echo "vol 1" ;;
    mild)         echo "reverb 20 50 40 0 0 -2" ;;
    medium)       echo "reverb 50 50 70 0 10 0" ;;
    harsh)        echo "reverb 95 20 100 0 30 3 gain -1" ;;
    speakerphone) echo "delay 0.1 reverb 60 40 80 0 0 0" ;;
    *) echo "unknown room $1 (dry, mild, medium, harsh, speakerphone)" >&2; return 1 ;;
  esac
}

case "$cmd" in
  list) echo "dry mild medium harsh speakerphone" ;;
  effects) effects "$room" ;;
  start)
    fx=$(effects "$room")
    mkdir -p "$state"
    pactl load-module module-null-sink sink_name=page_out rate=$RATE channels=1 >"$state/m1"
    pactl load-module module-null-sink sink_name=room rate=$RATE channels=1 >"$state/m2"
    pactl load-module module-remap-source master=room.monitor source_name=mic rate=$RATE channels=1 >"$state/m3"
    pactl set-default-sink page_out
    pactl set-default-source mic
    exec "$0" pipe "$room"
    ;;
  pipe)
    fx=$(effects "$room")
    [ -f "$state/pid" ] && { pid=$(cat "$state/pid"); pkill -P "$pid" 2>/dev/null || true; kill "$pid" 2>/dev/null || true; }
    # shellcheck disable=SC2086
    # Silence played into both sinks keeps them running: an idle null sink's monitor delivers
    # nothing, which would stall the pipe and the recorders between the page's sounds.
    ( pacat -d page_out "${RAW[@]}" </dev/zero &
      pacat -d room "${RAW[@]}" </dev/zero &
      parec -d page_out.monitor "${RAW[@]}" \
        | sox -q --buffer 1024 "${SOXRAW[@]}" - "${SOXRAW[@]}" - $fx \
        | pacat -d room "${RAW[@]}" ) >/dev/null 2>"$state/pipe.log" &
    echo $! >"$state/pid"
    ;;
  stop)
    [ -f "$state/pid" ] && { pid=$(cat "$state/pid"); pkill -P "$pid" 2>/dev/null || true; kill "$pid" 2>/dev/null || true; }
    for m in m3 m2 m1; do [ -f "$state/$m" ] && pactl unload-module "$(cat "$state/$m")" 2>/dev/null || true; done
    rm -rf "$state"
    ;;
  *) echo "usage: $0 start ROOM | stop | list" >&2; exit 2 ;;
esac
