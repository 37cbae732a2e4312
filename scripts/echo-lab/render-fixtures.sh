#!/usr/bin/env bash
# Renders the echo guard's native test fixtures (tests/fixtures/echo/) through the lab's rooms:
# the interviewer's voice as the page played it in the lab (assistant.wav, 24 kHz mono, taken
# from the page's output sink) through each room's sox effects (the first lab's rooms, before
# room.sh moved to PulseAudio modules) plus the loop delay measured in the lab (<room>-echo.wav), and the same with a user's voice (espeak-ng) mixed in at 1.2 s
# 10 dB above its default level, as a person close to the microphone (<room>-talk.wav). Offline, so sample n of a
# fixture is exactly what the room made of assistant.wav up to sample n: recorders on
# PulseAudio monitors start and stop with unknown buffering, the rendering has none.
# The assistant plays 3 s; the echo fixtures run 1.5 s longer (the room's tail).
# Usage: scripts/echo-lab/render-fixtures.sh [rooms]   (default: harsh speakerphone mild)
set -euo pipefail
cd "$(dirname "$0")/../.."
dir=tests/fixtures/echo
rooms="${1:-harsh speakerphone mild}"
# sox effects per room: gain, pre-delay and reverb (reverberance %, HF damping %, room scale %,
# stereo depth %, pre-delay ms, wet gain dB).
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
# The loop delay of each room (page output → microphone) as measured in the lab (ms).
delay_of() { case "$1" in speakerphone) echo 0.24 ;; *) echo 0.08 ;; esac; }
tmp=$(mktemp -d); trap 'rm -rf "$tmp"' EXIT
espeak-ng -s 170 -w "$tmp/user22.wav" "Sorry, can I ask something?"
# The voice as a 24 kHz mono WAV, 1.2 s of silence first, 4.5 s long.
sox "$tmp/user22.wav" -r 24000 -c 1 -b 16 "$tmp/user.wav" pad 1.2 trim 0 4.5
for room in $rooms; do
  fx=$(effects "$room")
  # shellcheck disable=SC2086
  # 3 s of the assistant, then 1.5 s of silence in which the room's echo rings out.
  sox "$dir/assistant.wav" -r 24000 -c 1 -b 16 "$dir/$room-echo.wav" pad 0 1.5 delay "$(delay_of "$room")" $fx trim 0 4.5
  sox -m -v 1 "$dir/$room-echo.wav" -v 3.16 "$tmp/user.wav" -b 16 "$dir/$room-talk.wav" trim 0 4.5
done
ls -l "$dir"
