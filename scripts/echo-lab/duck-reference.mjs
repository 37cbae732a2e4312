// Would the ducker's triggers be told apart by what the page played? For each echo-lab row
// recorded with RECORD=dir (lab.mjs, DUCK=off), finds the 10 ms frames where the ducker would
// duck (2 of the last 4 frames above −40 dBFS, after the 1.5 s warm-up from the output's first
// sound) and prints the frame's level against the output's: the loudest output frame of the
// last LAGS (30) frames, or with NEAR=1 the loudest within ±30 ms of the room's measured loop
// delay. Frames at or after a barge run's voice onset are VOICE, the others leaks. Only the
// first trigger of each 250 ms cluster is printed.
// Usage: node scripts/echo-lab/duck-reference.mjs e2e/output/echo-lab.jsonl
import { readFileSync } from "node:fs";

const FRAME = 240; // 10 ms at 24 kHz
const LAGS = Number(process.env.LAGS ?? 30);
const NEAR = Boolean(process.env.NEAR);

/** Per-frame level (dBFS, mean square) of a 24 kHz mono PCM16 WAV with a 44-byte header. */
function levels(path) {
  const b = readFileSync(path);
  const n = (b.length - 44) >> 1;
  const out = [];
  for (let f = 0; (f + 1) * FRAME <= n; f++) {
    let s = 0;
    for (let i = 0; i < FRAME; i++) {
      const x = b.readInt16LE(44 + 2 * (f * FRAME + i)) / 32768;
      s += x * x;
    }
    out.push(10 * Math.log10(s / FRAME + 1e-12));
  }
  return out;
}

const rows = readFileSync(process.argv[2], "utf8").trim().split("\n").map((l) => JSON.parse(l)).filter((r) => r.recorded);
for (const r of rows) {
  const mic = levels(`${r.recorded}-mic.wav`);
  const ref = levels(`${r.recorded}-ref.wav`);
  const start = ref.findIndex((x) => x > -50);
  const onset = r.kind === "barge" && r.recordedOnsetMs != null ? Math.floor(r.recordedOnsetMs / 10) : Infinity;
  const lo = NEAR ? Math.max(0, Math.round(r.roomDelayMs / 10) - 3) : 0;
  const hi = NEAR ? lo + 6 : LAGS;
  console.log(`== ${r.room} ${r.kind}${onset === Infinity ? "" : ` onset ${(onset - start) * 10} ms`}`);
  let recent = 0;
  let last = -Infinity;
  for (let f = 0; f < mic.length; f++) {
    const loud = mic[f] > -40;
    recent = ((recent << 1) | (loud ? 1 : 0)) & 15;
    const hits = [0, 1, 2, 3].filter((k) => (recent >> k) & 1).length;
    if (start < 0 || f < start + 150 || !loud || hits < 2) continue;
    let out = -120;
    for (let d = lo; d <= hi && d <= f; d++) out = Math.max(out, ref[f - d]);
    const t = (f - start) * 10;
    if (t - last > 250) {
      const what = f >= onset ? "VOICE" : "leak";
      console.log(`  ${what} at ${t} ms: mic ${mic[f].toFixed(1)} dBFS, output ${out.toFixed(1)} dBFS, ${(mic[f] - out).toFixed(1)} dB`);
    }
    last = t;
  }
}
