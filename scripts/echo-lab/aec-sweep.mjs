// Offline barge-in check of AEC3 settings (the opt-in wasm canceller's engine) on a recorded
// room: mic = an echo-only room recording + the user's voice mixed in at ONSET s (VOICE_GAIN_DB
// louder), run through `run_files` once per setting, and the reference server's VAD emulated on
// each output (10 ms frames above -40 dBFS for 150 ms in a row). Prints, per setting, the VAD
// triggers before the onset (self-interruptions) and the time from the onset to the first one
// after it (barge-in), with the output level before and after.
//
//   node scripts/echo-lab/aec-sweep.mjs ROOM.wav REF.wav VOICE.wav   (48 kHz mono 16-bit)
//   CONFIGS="default:;nearend:NE_ENR=4,NE_TRIGGER=2,NE_SNR=5;mask3:MASK=3" ONSET=4 WARM=1
//
// ROOM/REF: an echo-lab run with RECORD=dir KINDS=echo (its -room and -ref WAVs, 24 kHz, taken
// to 48 kHz with `sox in.wav -r 48000 out.wav`); VOICE: e2e/output/echo-lab-user.wav likewise.
// The settings are run_files' environment knobs (aec/examples/run_files.rs).
import { readFileSync, writeFileSync } from "node:fs";
import { execFileSync } from "node:child_process";

const read = (p) => {
  const b = readFileSync(p);
  const n = (b.length - 44) >> 1;
  return Float32Array.from({ length: n }, (_, i) => b.readInt16LE(44 + 2 * i) / 32768);
};
const write = (p, x) => {
  const h = Buffer.alloc(44);
  h.write("RIFF", 0); h.writeUInt32LE(36 + 2 * x.length, 4); h.write("WAVEfmt ", 8);
  h.writeUInt32LE(16, 16); h.writeUInt16LE(1, 20); h.writeUInt16LE(1, 22); h.writeUInt32LE(48000, 24);
  h.writeUInt32LE(96000, 28); h.writeUInt16LE(2, 32); h.writeUInt16LE(16, 34); h.write("data", 36);
  h.writeUInt32LE(2 * x.length, 40);
  const d = Buffer.alloc(2 * x.length);
  x.forEach((v, i) => d.writeInt16LE(Math.max(-32768, Math.min(32767, Math.round(v * 32767))), 2 * i));
  writeFileSync(p, Buffer.concat([h, d]));
};

const [room, ref, voiceFile] = process.argv.slice(2);
if (!voiceFile) { console.error("usage: aec-sweep.mjs ROOM.wav REF.wav VOICE.wav (48 kHz mono 16-bit)"); process.exit(2); }
const RATE = 48000, HOP = 480;
const onset = Math.round(Number(process.env.ONSET ?? 2) * RATE);
const warm = Math.round(Number(process.env.WARM ?? 0.5) * RATE);
const gain = 10 ** (Number(process.env.VOICE_GAIN_DB ?? 0) / 20);
const bin = process.env.RUN_FILES ?? new URL("../../target/release/examples/run_files", import.meta.url).pathname;

const mic = read(room), voice = read(voiceFile);
const v0 = voice.findIndex((v) => Math.abs(v) > 0.05);
for (let i = v0; i < voice.length && onset + i - v0 < mic.length; i++) mic[onset + i - v0] += voice[i] * gain;
write("/tmp/aec-sweep-mic.wav", mic);

const dbOf = (x, a, b) => { let e = 0; for (let i = a; i < b; i++) e += x[i] * x[i]; return 10 * Math.log10(e / (b - a) + 1e-12); };
const vad = (x, from, to) => {
  const t = [];
  for (let k = Math.floor(from / HOP), run = 0; (k + 1) * HOP <= to; k++) {
    run = dbOf(x, k * HOP, (k + 1) * HOP) > -40 ? run + 1 : 0;
    if (run === 15) t.push(((k + 1) * HOP) / RATE);
  }
  return t;
};
// The voice alone: how late this VAD fires on it without any echo (the floor for barge-in).
const alone = vad(voice, v0, voice.length)[0];
console.log(`the voice alone: VAD at ${alone == null ? "never" : `${Math.round((alone - v0 / RATE) * 1000)} ms`}`);
for (const c of (process.env.CONFIGS ?? "default:").split(";")) {
  const [name, knobs = ""] = c.split(":");
  const env = { ...process.env, OUT: "/tmp/aec-sweep-out.wav" };
  for (const kv of knobs.split(",").filter(Boolean)) { const [k, v] = kv.split("="); env[k] = v; }
  execFileSync(bin, ["/tmp/aec-sweep-mic.wav", ref], { env, stdio: ["ignore", "ignore", "inherit"] });
  const out = read("/tmp/aec-sweep-out.wav");
  const pre = vad(out, warm, onset), post = vad(out, onset, Math.min(out.length, onset + 1.5 * RATE));
  const barge = post.length ? `${Math.round((post[0] - onset / RATE) * 1000)} ms` : "none";
  console.log(`${name.padEnd(16)} self-interruptions ${pre.length}${pre.length ? ` (${pre.slice(0, 3).map((t) => t.toFixed(2)).join(", ")} s)` : ""}  barge-in ${barge.padStart(7)}  output ${dbOf(out, warm, onset).toFixed(1)} dB before, ${dbOf(out, onset, Math.min(out.length, onset + RATE)).toFixed(1)} dB after`);
}
