#!/usr/bin/env bash
# The echo lab's simulated room, inside the private PulseAudio of scripts/with-pulseaudio.sh,
# made of PulseAudio modules only (no processes or pipes in the audio path):
#   page output → null sink "page_out" (the default sink, what the browser plays into)
#   page_out.monitor → module-loopback (the room's delay) → LADSPA sink "room_fx" (TAP
#   Reverberator: the room's reverb and coupling) → null sink "room"
#   room.monitor → module-remap-source "mic" (the default source: browsers offer no monitor
#   sources as microphones)
# A user voice is mixed into the room by playing it into the "room" sink (paplay -d room).
# module-loopback holds its latency at the target by adapting its rate, so the loop cannot drift
# or fall behind under CPU contention the way a `parec | sox | pacat` pipe did (its Unix pipes
# held up to 1.4 s of audio that never drained).
# Usage: room.sh start ROOM | stop | list | spec ROOM. ROOM: dry, mild, medium, harsh, speakerphone.
set -euo pipefail
cmd="${1:-}"; room="${2:-}"
state="${PULSE_RUNTIME_PATH:-}/echo-room"
[ "$cmd" = spec ] || [ "$cmd" = list ] || [ -n "${PULSE_RUNTIME_PATH:-}" ] || { echo "run inside scripts/with-pulseaudio.sh" >&2; exit 1; }
RATE=48000
RAW=(--raw --format=s16le --rate=$RATE --channels=1 --latency-msec=10)
PLUGIN=/usr/lib/ladspa/tap_reverb.so

# Per room: the loopback's latency (ms, the loop's delay before the browser's own buffers) and
# the TAP Reverberator's controls (decay ms, dry dB, wet dB; comb, allpass and bandpass filters
# on, enhanced stereo off, preset 0), or "none" for a dry echo. The decays were chosen so that the
# tail's level 100/300/600 ms after a burst is close to the sox rooms of the first lab
# (docs/AUDIO.md): mild −34/−78, medium −14/−30/−53, harsh −7/−13/−18 dB.
spec() {
  case "$1" in
    dry)          echo "30 none" ;;
    mild)         echo "30 450,0,-1,1,1,1,0,0" ;;
    medium)       echo "40 1500,0,-5,1,1,1,0,0" ;;
    harsh)        echo "50 6000,-1,-5,1,1,1,0,0" ;;
    speakerphone) echo "150 1200,0,-2,1,1,1,0,0" ;;
    *) echo "unknown room $1 (dry, mild, medium, harsh, speakerphone)" >&2; return 1 ;;
  esac
}

load() { pactl load-module "$@" >>"$state/modules"; }

case "$cmd" in
  list) echo "dry mild medium harsh speakerphone" ;;
  spec) spec "$room" ;;
  start)
    read -r latency controls < <(spec "$room")
    [ "$controls" = none ] || [ -f "$PLUGIN" ] || { echo "no $PLUGIN (apt: tap-plugins; make setup installs it)" >&2; exit 1; }
    mkdir -p "$state"; : >"$state/modules"
    load module-null-sink sink_name=page_out rate=$RATE channels=1
    load module-null-sink sink_name=room rate=$RATE channels=1
    load module-remap-source master=room.monitor source_name=mic rate=$RATE channels=1
    target=room
    if [ "$controls" != none ]; then
      # The plugin is stereo (two inputs, two outputs): a 2-channel sink runs one instance, and
      # PulseAudio up- and downmixes the mono streams around it.
      load module-ladspa-sink sink_name=room_fx sink_master=room plugin="$PLUGIN" label=tap_reverb \
        control="$controls" channels=2 rate=$RATE
      target=room_fx
    fi
    # The loopback keeps its rate (adjust_time=0): every sink here runs on the daemon's one
    # clock, as a sound card's output and input do, and its rate adaptation makes the echo path
    # drift (an offline AEC3 run on a recorded dry room removed 54 dB through second 5 without
    # it, 17 dB by then with it). LOOP_ADJUST=s restores adaptation every s seconds (PulseAudio's
    # default is 10).
    load module-loopback source=page_out.monitor sink=$target latency_msec="$latency" \
      adjust_time="${LOOP_ADJUST:-0}" source_dont_move=true sink_dont_move=true
    pactl set-default-sink page_out
    pactl set-default-source mic
    # Silence played into both sinks keeps them running, so recorders of their monitors get a
    # continuous stream between the page's sounds.
    ( pacat -d page_out "${RAW[@]}" </dev/zero &
      pacat -d room "${RAW[@]}" </dev/zero &
      wait ) >/dev/null 2>&1 &
    echo $! >"$state/pid"
    ;;
  stop)
    [ -f "$state/pid" ] && { pid=$(cat "$state/pid"); pkill -P "$pid" 2>/dev/null || true; kill "$pid" 2>/dev/null || true; }
    [ -f "$state/modules" ] && tac "$state/modules" | while read -r m; do pactl unload-module "$m" 2>/dev/null || true; done
    rm -rf "$state"
    ;;
  *) echo "usage: $0 start ROOM | stop | list | spec ROOM" >&2; exit 2 ;;
esac
