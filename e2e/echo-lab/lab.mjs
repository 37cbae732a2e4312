#!/usr/bin/env node
// The echo lab (`make test-echo`): the demo page in headless Chromium (ENGINE=firefox: Firefox
// through geckodriver) on real audio devices of a private PulseAudio whose output loops back into
// its microphone through a simulated room (scripts/echo-lab/room.sh), against the reference
// server, whose VAD is the judge. A fresh browser per run. Ducks: the client's `bargeInDucks` in echo
// runs (a duck with nobody talking: an echo leak taken for the user).
//
// Per room: the loop's delay, gain and tail measured in the browser with a noise burst (and
// again before each run); then runs per guard setting (`echoGuard` "off" / "auto"; "processed",
// the guard on the processed capture alone, and "raw" too):
//   echo  — nobody talks: every `input_audio_buffer.speech_started` while the interviewer's
//           greeting plays is a self-interruption (cross-checked with the truncates the server got);
//   barge — a user voice (espeak-ng) is played into the room 1.5 s into the greeting: barge-in
//           succeeds when the server's VAD starts speech while the voice speaks (3.2 s from its
//           onset) and the greeting is truncated; latency is from the voice's onset in the room
//           to `speech_started` in the page; "first word" is where the server's received audio
//           first gets loud after the onset.
// Rows go to e2e/output/echo-lab.jsonl, the table to e2e/output/echo-lab.md.
//
// Environment: ROOMS=dry,mild,medium,harsh,speakerphone  GUARDS=off,auto  RUNS=2  KINDS=echo,barge
// DUCK=off: the client's ducking off (`bargeInDuck: "off"`; default: the client's default, on).
// DUCK=shadow: the client decides and counts its ducks, but the page never turns the output down
// (its "duck" messages to the playback worklet are dropped): leaks that would duck, unducked.
// CAPTURE=raw: the browser's echo cancellation, noise suppression and gain control off;
// CAPTURE=ec, ec+ns, ec+agc …: only the named ones on (ec echo cancellation, ns noise
// suppression, agc automatic gain control).
// VOICE_GAIN_DB=n: the barge-in voice n dB louder.
// BARGE_AFTER_MS=n: the barge-in voice n ms into the greeting (default 1500).
// ANSWERS=n: echo runs go on for n − 1 more answers in the same session (typed turns); the row's
// `ducksPerAnswer` has the client's ducks per answer, the greeting's first.
// CANCELLER=wasm: the client's opt-in echo canceller (`echoCanceller: "wasm"`, WebRTC's AEC3 in
// the capture worklet; the browser's EC/NS/AGC off). CANCELLER=none: `echoCanceller: "none"`
// (raw capture, the echo guard alone).
// CHECK=1 (the short run in `make test`) fails the run unless what holds on a loaded machine
// holds: every run completed, each room's loop was measured, in every barge-in run the user's
// voice reached the server, and where the guard found no echo path it held back no more than its
// ducks' probes can (each holds 400 ms at most and sends only what was loud in it as silence),
// and on a pair the first playback's 1.5 s.
// TRACE=1: the guard's counters (`echoHeldMs`, `echoGuardedMs`, whether it has an echo path)
// sampled every 20 ms in the page; each self-interruption's row entry `siTrace` says what the
// guard was doing in the 700 ms before it (held: guarding or probing; guarded: sent as silence).
// A barge-in row's `bargeTrace` has the same counters from 200 ms before the voice's onset on.
// RECORD=dir saves each run's received audio, the page's output and the room's microphone as
// 24 kHz WAVs (their timelines are only as good as PulseAudio's recorders: the native test
// fixtures are rendered offline instead, scripts/echo-lab/render-fixtures.sh).
// TRACE_MSGS=dir saves the worklets' messages to the page (the player's progress, each captured
// block's time and level per channel) over each run's first 30 s.
// Runs inside scripts/with-server.sh and scripts/with-pulseaudio.sh (the Makefile does both).
import { spawn, spawnSync } from "node:child_process";
import { appendFile, mkdir, readFile, rm, writeFile } from "node:fs/promises";
import { loadavg } from "node:os";
import { join } from "node:path";
import { open } from "../browsers.mjs";

const ROOT = new URL("../../", import.meta.url).pathname;
const OUT = join(ROOT, "e2e/output");
const SERVER = process.env.RV_TEST_SERVER ?? "http://127.0.0.1:18080";
const ROOM_SH = join(ROOT, "scripts/echo-lab/room.sh");
const PULSE_SH = join(ROOT, "scripts/with-pulseaudio.sh");
const list = (v, d) => (v ?? d).split(",").map((s) => s.trim()).filter(Boolean);
const ROOMS = list(process.env.ROOMS, "dry,mild,medium,harsh,speakerphone");
const GUARDS = list(process.env.GUARDS, "off,auto");
const KINDS = list(process.env.KINDS, "echo,barge");
const RUNS = Number(process.env.RUNS ?? 2);
const RATE = 48000;
const RECORD = process.env.RECORD ?? "";
const TRACE = process.env.TRACE === "1";
/** RECORD_FULL=1 also saves the whole run's page output and room microphone as the recorders
 *  took them (both started together; 24 kHz): for replaying a long session through the guard
 *  offline, where the server's first 10 s of received audio are not enough. */
const RECORD_FULL = process.env.RECORD_FULL === "1";
/** CAPTURE=raw turns the browser's echo cancellation, noise suppression and gain control off
 *  (getUserMedia's constraints rewritten in the page), so the guard alone meets the echo. */
const CAPTURE = process.env.CAPTURE ?? "";
const RAW_CAPTURE = CAPTURE === "raw";
/** The browser's processing left on: null for the client's own constraints. */
const CAPTURE_ON = CAPTURE ? (RAW_CAPTURE ? [] : CAPTURE.split("+")) : null;
const CANCELLER = process.env.CANCELLER ?? "";
const WASM_AEC = CANCELLER === "wasm";
/** VOICE_GAIN_DB=6: the barge-in voice that much louder (espeak-ng's level is −21.6 dBFS RMS,
 *  3 dB under the echo of the page's greeting at 0 dB coupling). */
const VOICE_GAIN_DB = Number(process.env.VOICE_GAIN_DB ?? 0);
/** DUCK_DB=n: in barge-in runs, the page's output turned down n dB DUCK_AT_MS (default 60) after
 * the voice's onset, as a client that ducked its playback on a barge-in detector would (an
 * experiment: the library has no such detector). Chromium's canceller only: the wasm canceller
 * plays through the AudioContext, not the element. */
const DUCK_DB = Number(process.env.DUCK_DB ?? 0);
const DUCK_AT_MS = Number(process.env.DUCK_AT_MS ?? 60);
/** DUCK=off: the client's own ducking (`bargeInDuck`) off. */
const DUCK_MODE = process.env.DUCK ?? "";
const SHADOW_DUCK = DUCK_MODE === "shadow";
const CLIENT_DUCK = SHADOW_DUCK ? "" : DUCK_MODE;
/**
 * Logs the page's "duck" messages to the playback worklet (time, dB) in `__labDuckMsgs`, and drops
 * them with `drop` (DUCK=shadow).
 */
const WATCH_DUCKS = (drop) => {
  const post = MessagePort.prototype.postMessage;
  window.__labDuckMsgs = [];
  MessagePort.prototype.postMessage = function (m, ...rest) {
    if (m && m.type === "duck") {
      window.__labDuckMsgs.push([Date.now(), m.db]);
      if (drop) return undefined;
    }
    return post.call(this, m, ...rest);
  };
  return true;
};
const KEEP_AUDIO_ELEMENTS = () => {
  const A = window.Audio;
  window.Audio = function (...a) { const e = new A(...a); (window.__labAudio ??= []).push(e); return e; };
};
/** PAIR_RECORD=dir: the page also records the microphone as the browser's processing gives it
 *  (the client's own constraints: the same source) and raw, side by side at 24 kHz, for the
 *  whole run: `<room>-<guard>-<kind>-<n>-pair-{processed,raw}.wav` in dir (with RECORD=dir,
 *  RECORD_FULL=1 the page's output and the room's microphone beside them). */
const PAIR_RECORD = process.env.PAIR_RECORD ?? "";
/** DELAY_TIMELINE=1 (with TRACE=1): each row also gets the guard's path lag every 500 ms
 *  (`delayTimeline`) and the room's loop measured again after the run (`roomDelayAfterMs`). */
const DELAY_TIMELINE = process.env.DELAY_TIMELINE === "1";
/** TRACE_MSGS=dir: the worklets' messages to the page over a run's first 30 s, as the page took
 *  them, saved as `<room>-<guard>-<kind>-<n>-msgs.json` in dir: `[page ms, "p", item, played,
 *  at]` for the player's progress, `[page ms, "c", time s, samples, dBFS per channel…]` for a
 *  captured block (on a pair channel 0 is the processed capture, 1 the raw one: a pair whose
 *  two levels match is no pair). */
const TRACE_MSGS = process.env.TRACE_MSGS ?? "";
const WATCH_WORKLETS = () => {
  const desc = Object.getOwnPropertyDescriptor(MessagePort.prototype, "onmessage");
  const log = (window.__labMsgs = []);
  const t0 = performance.now();
  const db = (f, ch, c) => {
    let e = 0;
    for (let i = c; i < f.length; i += ch) e += f[i] * f[i];
    return Math.round(10 * Math.log10(e / Math.max(1, f.length / ch) + 1e-12));
  };
  Object.defineProperty(MessagePort.prototype, "onmessage", {
    configurable: true,
    get() { return desc.get.call(this); },
    set(h) {
      desc.set.call(this, h && ((e) => {
        const m = e.data, t = Math.round(performance.now() - t0);
        if (t < 30000 && m) {
          if (m.type === "progress") log.push([t, "p", m.item, m.played, m.at]);
          else if (m.frames) {
            const ch = m.channels || 1, f = m.frames;
            log.push([t, "c", m.time, f.length / ch, ...Array.from({ length: ch }, (_, c) => db(f, ch, c))]);
          }
        }
        return h.call(this, e);
      }));
    },
  });
  return true;
};
const PAIR_START = async () => {
  const gum = (c) => navigator.mediaDevices.getUserMedia({ audio: { channelCount: 1, ...c } });
  const p = await gum({ echoCancellation: true, noiseSuppression: true, autoGainControl: true });
  const r = await gum({ echoCancellation: false, noiseSuppression: false, autoGainControl: false });
  const ctx = new AudioContext({ sampleRate: 24000 });
  const m = ctx.createChannelMerger(2);
  ctx.createMediaStreamSource(p).connect(m, 0, 0);
  ctx.createMediaStreamSource(r).connect(m, 0, 1);
  const sp = ctx.createScriptProcessor(4096, 2, 1);
  const rec = (window.__labPair = { p: [], r: [], ctx, streams: [p, r] });
  sp.onaudioprocess = (e) => {
    // The page's clock at the recording's first sample (the first buffer ends about now).
    rec.t0 ??= Date.now() - (1000 * e.inputBuffer.length) / ctx.sampleRate;
    rec.p.push(new Float32Array(e.inputBuffer.getChannelData(0)));
    rec.r.push(new Float32Array(e.inputBuffer.getChannelData(1)));
  };
  m.connect(sp);
  sp.connect(ctx.destination);
  await ctx.resume();
};
/** The pair recorded, as base64 of 16-bit PCM per channel, and the page's clock at its first
 *  sample; the recorder stopped. */
const PAIR_STOP = () => {
  const rec = window.__labPair;
  rec.ctx.close();
  for (const s of rec.streams) for (const t of s.getTracks()) t.stop();
  const b64 = (chunks) => {
    const n = chunks.reduce((a, c) => a + c.length, 0), out = new Int16Array(n);
    let k = 0;
    for (const c of chunks) for (const v of c) out[k++] = Math.max(-32768, Math.min(32767, Math.round(v * 32768)));
    let s = "";
    const u8 = new Uint8Array(out.buffer);
    for (let i = 0; i < u8.length; i += 0x8000) s += String.fromCharCode(...u8.subarray(i, i + 0x8000));
    return btoa(s);
  };
  return [b64(rec.p), b64(rec.r), rec.t0];
};
const CAPTURE_GUM = (on) => {
  const md = navigator.mediaDevices;
  const gum = md.getUserMedia.bind(md);
  md.getUserMedia = (c) => {
    const off = { echoCancellation: on.includes("ec"), noiseSuppression: on.includes("ns"), autoGainControl: on.includes("agc") };
    const audio = c?.audio && typeof c.audio === "object" ? { ...c.audio, ...off } : off;
    return gum({ ...c, audio });
  };
};
/** The greeting is ~7 s; a run watches this long after the interviewer starts speaking. */
const ECHO_WATCH_MS = 12_000;
/** ANSWERS=n (echo runs): the greeting and n − 1 more answers in one session (moreAnswers). */
const ANSWERS = Number(process.env.ANSWERS ?? 1);
/** BARGE_AFTER_MS=n: the barge-in voice n ms into the greeting (default 1500, where the ducker's
 *  1.5 s warm-up ends). */
const BARGE_AFTER_MS = Number(process.env.BARGE_AFTER_MS ?? 1_500);
const BARGE_WATCH_MS = 5_000;

const sleep = (ms) => new Promise((r) => setTimeout(r, ms)); // lab pacing (audio plays in real time)
const room = (...args) => {
  let r = spawnSync("bash", [ROOM_SH, ...args], { encoding: "utf8" });
  // PulseAudio has crashed at a room switch (a segfault in a null sink's thread, after several
  // sessions with a browser): the daemon is started again once, and the room built anew.
  if (r.status !== 0 && args[0] === "start" && /Connection (refused|failure)/.test(r.stderr)) {
    console.log(`room.sh start ${args[1]}: PulseAudio is gone; restarting it`);
    const restart = spawnSync("bash", [PULSE_SH, "--restart"], { encoding: "utf8" });
    if (restart.status !== 0) throw new Error(`PulseAudio restart: ${restart.stderr}`);
    r = spawnSync("bash", [ROOM_SH, ...args], { encoding: "utf8" });
  }
  if (r.status !== 0) throw new Error(`room.sh ${args.join(" ")}: ${r.stderr}`);
};

// ---- audio files ----------------------------------------------------------------------------
function s16(buf) {
  const a = new Float32Array(buf.length >> 1);
  for (let i = 0; i < a.length; i++) a[i] = buf.readInt16LE(2 * i) / 32768;
  return a;
}
const energy = (a, from = 0, to = a.length) => { let s = 0; for (let i = from; i < to; i++) s += a[i] * a[i]; return s; };
const onsetOf = (a, thr = 0.02) => a.findIndex((x) => Math.abs(x) > thr);

/** Records `source` as raw mono s16 at 48 kHz until `stop()`. */
function record(source) {
  const p = spawn("parec", ["-d", source, "--raw", "--format=s16le", `--rate=${RATE}`, "--channels=1", "--latency-msec=10"]);
  const chunks = [];
  p.stdout.on("data", (d) => chunks.push(d));
  const done = new Promise((r) => p.once("exit", r));
  return { async stop() { p.kill("SIGTERM"); await done; return s16(Buffer.concat(chunks)); } };
}
// paplay, not pacat: pacat plays a file as raw samples in its default format (s16le, 2 channels,
// 44.1 kHz) whatever the file's header says, so espeak-ng's 22.05 kHz mono voice came out four
// times too fast (0.9 s of chirp instead of 3.6 s of speech). paplay reads the header.
const play = (sink, file) => new Promise((res, rej) => {
  const p = spawn("paplay", ["-d", sink, "--latency-msec=20", file], { stdio: "ignore" });
  p.once("exit", (c) => (c === 0 ? res() : rej(new Error(`paplay ${file} exited ${c}`))));
});

// The room's loop as the page meets it: in a page of its own, a noise burst played through an
// AudioContext and the raw microphone recorded by a worklet of the same context, so both are on
// one clock and the delay includes the browser's output and input buffers. Delay of the first
// arrival, energy gain, and the tail's level 300 ms after the burst against its peak.
const LOOP_PROBE = async (bursts) => {
  const stream = await navigator.mediaDevices.getUserMedia({
    audio: { echoCancellation: false, noiseSuppression: false, autoGainControl: false } });
  const ctx = new AudioContext({ sampleRate: 48000 });
  const len = 96000, burstLen = 4800, lead = 0.3;
  const code = `registerProcessor("loop-probe", class extends AudioWorkletProcessor {
    constructor() { super(); this.mic = new Float32Array(${len}); this.ref = new Float32Array(${len}); this.n = 0; }
    process(inputs) {
      const k = Math.min(128, ${len} - this.n), m = inputs[0][0], r = inputs[1][0];
      if (m) this.mic.set(m.subarray(0, k), this.n);
      if (r) this.ref.set(r.subarray(0, k), this.n);
      this.n += k;
      if (this.n < ${len}) return true;
      this.port.postMessage({ mic: this.mic, ref: this.ref });
      return false;
    }
  });`;
  await ctx.audioWorklet.addModule(URL.createObjectURL(new Blob([code], { type: "text/javascript" })));
  await ctx.resume();
  const mic = ctx.createMediaStreamSource(stream);
  const noise = ctx.createBuffer(1, burstLen, 48000);
  const d = noise.getChannelData(0);
  for (let i = 0; i < burstLen; i++) d[i] = (Math.random() * 2 - 1) * 0.3;
  const onset = (a) => a.findIndex((x) => Math.abs(x) > 0.02);
  const energy = (a, from = 0, to = a.length) => { let s = 0; for (let i = from; i < to; i++) s += a[i] * a[i]; return s; };
  const results = [];
  for (let b = 0; b < bursts; b++) {
    const node = new AudioWorkletNode(ctx, "loop-probe", { numberOfInputs: 2, numberOfOutputs: 0 });
    const done = new Promise((r) => { node.port.onmessage = (e) => r(e.data); });
    mic.connect(node, 0, 0);
    const src = ctx.createBufferSource();
    src.buffer = noise;
    src.connect(ctx.destination);
    src.connect(node, 0, 1);
    src.start(ctx.currentTime + lead);
    const { mic: m, ref: r } = await done;
    mic.disconnect(node);
    // The mic's onset: the first sample after the burst's start above the louder of 0.02 and
    // 10× the RMS before it (a long room still rings from the previous run).
    const or = onset(r);
    if (or < 0) continue;
    const floor = Math.sqrt(energy(m, 0, or) / Math.max(1, or));
    const thr = Math.max(0.02, 10 * floor);
    const om = m.findIndex((x, i) => i >= or && Math.abs(x) > thr);
    if (om < 0) continue;
    const peak = energy(m, om, om + burstLen) / burstLen;
    const at = om + burstLen + 14400;
    const tail = at + 4800 <= len ? energy(m, at, at + 4800) / 4800 : 0;
    results.push({ delayMs: (om - or) / 48, gainDb: 10 * Math.log10(energy(m) / energy(r)),
      tailDb: tail > 0 ? 10 * Math.log10(tail / peak) : null });
  }
  stream.getTracks().forEach((t) => t.stop());
  await ctx.close();
  const med = (k) => results.map((x) => x[k]).filter((x) => x != null).sort((x, y) => x - y)[Math.floor(results.length / 2)] ?? null;
  return results.length
    ? { delayMs: med("delayMs"), gainDb: med("gainDb"), tailDb: med("tailDb"), bursts: results.length }
    : { delayMs: null, gainDb: null, tailDb: null, bursts: 0 };
};

/** The loop measured in `d`'s current tab (left on /health: a same-origin page with no CSP, as
 *  the probe's worklet is a blob: module). */
async function measureRoom(d, bursts = 3) {
  try {
    await d.goto(`${SERVER}/health`);
    return await d.eval(LOOP_PROBE, bursts);
  } catch (e) {
    return { delayMs: null, gainDb: null, tailDb: null, bursts: 0, error: String(e?.message ?? e).slice(0, 200) };
  }
}

/** The user's voice for double talk (espeak-ng), and the offset of its first sound. */
async function userVoice() {
  const wav = join(OUT, "echo-lab-user.wav");
  spawnSync("espeak-ng", ["-s", "160", "-w", wav, "Excuse me, can I ask something about that question?"]);
  const buf = await readFile(wav);
  const pcm = s16(buf.subarray(44));
  const onsetMs = (onsetOf(pcm, 0.05) / 22050) * 1000;
  // How long the voice speaks from its onset: a barge-in is the server starting speech on it.
  const speaksMs = (pcm.findLastIndex((x) => Math.abs(x) > 0.05) / 22050) * 1000 - onsetMs;
  if (!VOICE_GAIN_DB) return { wav, onsetMs, speaksMs };
  // Louder (a talker nearer the microphone than the loudspeaker is): sox's gain with its limiter.
  const louder = join(OUT, "echo-lab-user-louder.wav");
  spawnSync("sox", [wav, louder, "gain", "-l", String(VOICE_GAIN_DB)]);
  return { wav: louder, onsetMs, speaksMs };
}

// ---- the browser ----------------------------------------------------------------------------
// One fresh browser per run, through e2e/browsers.mjs on the sound server's real devices (no fake
// capture; Chromium unmuted). ENGINE=chromium (default) or firefox.
const ENGINE = process.env.ENGINE ?? "chromium";
const openBrowser = () => open(ENGINE, { realDevices: true });

// Installed in the page: timestamps (Date.now(), the same clock as this process) of the
// interviewer's speech and of the server VAD's speech_started.
const WATCH = (trace) => {
  const lab = { speech: [], started: [], assistant: false, pathSeen: false, pathAt: null, trace: [] };
  window.__lab = lab;
  window.__rv.client.on("speech", (s) => {
    if (s.who !== "assistant") return;
    const m = window.__rv.client.metrics();
    lab.assistant = s.speaking;
    lab.speech.push({ t: Date.now(), speaking: s.speaking, micMs: m.capturedAudioMs + (m.echoHeldMs ?? 0) });
  });
  window.__rv.client.on("event", (e) => {
    if (e.type === "input_audio_buffer.speech_started") lab.started.push({ t: Date.now(), assistant: lab.assistant });
  });
  // Whether the guard ever had an echo path: it can find one and give it up within a run, and
  // the metrics read at the end show only the last state.
  setInterval(() => {
    const m = window.__rv.client.metrics();
    if (m.echoDelayMs != null && !lab.pathSeen) {
      lab.pathSeen = true;
      lab.pathAt = Date.now();
    }
  }, 100);
  // TRACE=1: [t, held ms, guarded ms, path] every 20 ms, the last 60 s.
  if (trace) setInterval(() => {
    const m = window.__rv.client.metrics();
    lab.trace.push([Date.now(), m.echoHeldMs ?? 0, m.echoGuardedMs ?? 0, m.echoDelayMs != null,
      m.echoDelayMs ?? null, m.echoReturnLossDb ?? null]);
    if (lab.trace.length > 3000) lab.trace.shift();
  }, 20);
  return true;
};

/** What the guard did in the 700 ms before `t` (TRACE=1): the most it held, how much it sent as
 *  silence, whether it had an echo path, and how long before it the last duck was (`atMs` and
 *  `duckAtMs`: ms after the greeting's start). */
function traceBefore(trace, t, atMs, duckAtMs) {
  const w = trace.filter(([s]) => s >= t - 700 && s <= t);
  if (!w.length) return null;
  const duck = duckAtMs.filter((d) => d <= atMs).at(-1);
  return { heldMaxMs: Math.max(...w.map((x) => x[1])), guardedMs: w.at(-1)[2] - w[0][2],
    path: w.some((x) => x[3]), sinceDuckMs: duck == null ? null : atMs - duck,
    // The path's delay and return loss over those 700 ms, every 100 ms.
    delayMs: w.filter((_, i) => i % 5 === 0).map((x) => x[4]),
    returnLossDb: w.filter((_, i) => i % 5 === 0).map((x) => x[5]) };
}

async function received(id) {
  const r = await fetch(`${SERVER}/dev/interviews/${encodeURIComponent(id)}/received`);
  return r.ok ? r.json() : null;
}

/** The received audio (24 kHz PCM16 base64) per 10 ms frame: whether it is above −40 dBFS, the
 *  VAD's threshold, and (`.db`) its level in dBFS. */
function loudness(b64) {
  const buf = Buffer.from(b64 ?? "", "base64");
  const loud = [];
  for (let f = 0; (f + 1) * 480 <= buf.length; f++) {
    let s = 0;
    for (let i = f * 240; i < (f + 1) * 240; i++) { const v = buf.readInt16LE(2 * i); s += v * v; }
    loud.push(10 * Math.log10(s / 240 / 32768 ** 2 + 1e-12));
  }
  return Object.assign(loud.map((db) => db > -40), { db: loud });
}

/** Where the received audio first has a loud frame at or after `fromMs`, in ms of input audio. */
function firstLoudMs(loud, fromMs) {
  const f = loud.indexOf(true, Math.max(0, Math.floor(fromMs / 10)));
  return f < 0 ? null : f * 10;
}

/**
 * Where the judge's rule (15 frames of 10 ms above −40 dBFS within the last 20) is first met in
 * the received audio from `fromMs` on: the end of that frame, ms of received audio. Against
 * `latencyMs` it splits a barge-in's latency into the voice (until the judge could fire) and the
 * delivery (the chunk waiting to fill, the socket, the event back).
 */
function judgeFiresMs(loud, fromMs) {
  let recent = 0;
  for (let f = Math.max(0, Math.floor(fromMs / 10)); f < loud.length; f++) {
    recent = ((recent << 1) | (loud[f] ? 1 : 0)) & 0xfffff;
    let n = 0;
    for (let b = recent; b; b &= b - 1) n++;
    if (n >= 15) return (f + 1) * 10;
  }
  return null;
}

/** The received audio's 10 ms frames from `fromMs` for `spanMs`: `#` loud, `.` not. */
function loudFrames(loud, fromMs, spanMs) {
  const from = Math.max(0, Math.floor(fromMs / 10));
  return loud.slice(from, Math.floor((fromMs + spanMs) / 10)).map((l) => (l ? "#" : ".")).join("");
}

/**
 * The same frames by level: `#` above −40 dBFS, `+` −45 to −40, `-` −50 to −45, `:` −60 to −50,
 * `.` below: whether a voice the canceller holds under the judge's threshold is still there.
 */
function levelFrames(loud, fromMs, spanMs) {
  const from = Math.max(0, Math.floor(fromMs / 10));
  const mark = (db) => (db > -40 ? "#" : db > -45 ? "+" : db > -50 ? "-" : db > -60 ? ":" : ".");
  return loud.db.slice(from, Math.floor((fromMs + spanMs) / 10)).map(mark).join("");
}

/**
 * ANSWERS=n: after the greeting's watch, n − 1 more answers in the same session, each asked for
 * with a typed turn and watched until the assistant stopped and its tail died down. Returns the
 * client's ducks during each answer, the greeting's first (shorter when a typed turn got no
 * answer): whether the ducker's learnt threshold settles over a session (a fresh browser per
 * run shows only the first greeting).
 */
async function moreAnswers(d) {
  const ducks = () => d.eval(() => window.__rv.client.metrics().bargeInDucks ?? 0);
  const counts = [await ducks()];
  for (let i = 1; i < ANSWERS; i++) {
    const before = await ducks();
    const askedAt = await d.eval(() => { window.__rv.client.sendText("Tell me more about that."); return Date.now(); });
    try {
      await d.waitFor((t) => window.__lab.speech.some((s) => s.speaking && s.t > t), 20_000, askedAt);
      await d.waitFor((t) => { const l = window.__lab.speech.at(-1); return l.t > t && !l.speaking; }, 60_000, askedAt);
    } catch (e) {
      // No answer to the typed turn (seen after a phantom user turn made from echo): the row
      // keeps the answers heard so far, and its self-interruption and phantom-turn counts. Any
      // other failure (the browser gone) fails the row.
      if (!/^timed out/.test(e?.message ?? "")) throw e;
      break;
    }
    await sleep(1_500);
    counts.push((await ducks()) - before);
  }
  return counts;
}

async function run(roomName, guard, kind, voice) {
  const row = { room: roomName, guard, kind, engine: ENGINE, load1: loadavg()[0], ...(CAPTURE ? { capture: CAPTURE } : {}),
    ...(VOICE_GAIN_DB ? { voiceGainDb: VOICE_GAIN_DB } : {}), ...(BARGE_AFTER_MS !== 1_500 ? { bargeAfterMs: BARGE_AFTER_MS } : {}),
    ...(CANCELLER ? { canceller: CANCELLER } : {}), ...(DUCK_MODE ? { duck: DUCK_MODE } : {}) };
  let d = null;
  try {
    d = await openBrowser();
    const before = await measureRoom(d, 1);
    row.roomDelayMs = before.delayMs;
    await d.goto(`${SERVER}/?echoGuard=${guard}${CANCELLER ? `&echoCanceller=${CANCELLER}` : ""}${CLIENT_DUCK ? `&bargeInDuck=${CLIENT_DUCK}` : ""}`);
    await d.waitFor(() => document.body.dataset.wasm === "ready", 20_000);
    // Before the click: the client asks for the microphone when voice mode starts.
    if (CAPTURE_ON) await d.eval(CAPTURE_GUM, CAPTURE_ON);
    if (DUCK_DB) await d.eval(KEEP_AUDIO_ELEMENTS);
    await d.eval(WATCH_DUCKS, SHADOW_DUCK);
    if (TRACE_MSGS) await d.eval(WATCH_WORKLETS);
    await d.eval(WATCH, TRACE);
    const id = await d.eval(() => window.__rv.interviewId);
    const mon = RECORD ? record("page_out.monitor") : null;
    const raw = RECORD ? record("mic") : null;
    const recordedFrom = Date.now();
    if (PAIR_RECORD) await d.eval(PAIR_START);
    await d.click("[data-testid=voice-mode]");
    await d.waitFor(() => document.body.dataset.state === "connected", 20_000);
    const speakAt = await d.waitFor(() => window.__lab.speech.find((s) => s.speaking)?.t, 15_000);
    let onset = null;
    if (kind === "barge") {
      await sleep(Math.max(0, speakAt + BARGE_AFTER_MS - Date.now()));
      const capturedMs = await d.eval(() => window.__rv.client.metrics());
      const t0 = Date.now();
      const played = play("room", voice.wav);
      onset = t0 + voice.onsetMs + 20; // paplay's requested latency
      row.onsetCapturedMs = capturedMs.capturedAudioMs + (capturedMs.echoHeldMs ?? 0) + (onset - t0);
      if (DUCK_DB) {
        await sleep(Math.max(0, onset + DUCK_AT_MS - Date.now()));
        row.ducked = await d.eval((g) => (window.__labAudio ?? []).map((e) => (e.volume = g)).length, 10 ** (-DUCK_DB / 20));
      }
      await sleep(Math.max(0, t0 + BARGE_WATCH_MS - Date.now()));
      await played;
    } else {
      await sleep(ECHO_WATCH_MS);
      if (ANSWERS > 1) row.ducksPerAnswer = await moreAnswers(d);
    }
    if (PAIR_RECORD) {
      const [p, r, t0] = await d.eval(PAIR_STOP);
      await mkdir(PAIR_RECORD, { recursive: true });
      const base = join(PAIR_RECORD, `${roomName}-${guard}-${kind}-${Date.now() % 100000}-pair`);
      await writeFile(`${base}-processed.wav`, wavFile(Buffer.from(p, "base64")));
      await writeFile(`${base}-raw.wav`, wavFile(Buffer.from(r, "base64")));
      row.recordedPair = base;
      // The voice's onset on the pair's timeline (as the clocks allow: ±50 ms).
      if (onset) row.pairOnsetMs = Math.round(onset - t0);
      // The pair's first sample, ms after the greeting's start (as `duckMsgs` and
      // `selfInterruptAtMs` are): a duck at t is at t − pairStartMs on the pair's timeline
      // (±10 ms: the recorder's first buffer).
      row.pairStartMs = Math.round(t0 - speakAt);
    }
    if (TRACE_MSGS) {
      await mkdir(TRACE_MSGS, { recursive: true });
      row.tracedMsgs = join(TRACE_MSGS, `${roomName}-${guard}-${kind}-${Date.now() % 100000}-msgs.json`);
      await writeFile(row.tracedMsgs, JSON.stringify(await d.eval(() => window.__labMsgs)));
    }
    const lab = await d.eval(() => window.__lab);
    const duckMsgs = await d.eval(() => window.__labDuckMsgs ?? []);
    const m = await d.eval(() => window.__rv.client.metrics());
    const anchor = { t: Date.now(), micMs: m.capturedAudioMs + (m.echoHeldMs ?? 0) };
    const rec = await received(id);
    // The capture counter runs ahead of what the server received by what never left the page.
    row.unsentMs = Math.round(m.capturedAudioMs - m.sentAudioMs);
    row.receivedLagMs = Math.round(m.sentAudioMs - (rec?.samples ?? 0) / 24);
    if (mon) {
      const [out, room] = [await mon.stop(), await raw.stop()];
      if (RECORD_FULL) await saveWhole(roomName, guard, kind, out, room, row);
      await saveRecording(roomName, guard, kind, out, recordedFrom, lab.speech.find((s) => s.speaking), anchor, rec, row, room);
    }
    row.truncates = rec?.truncates?.length ?? null;
    row.echoReturnLossDb = m.echoReturnLossDb ?? null;
    row.echoDelayMs = m.echoDelayMs ?? null;
    row.guardedMs = m.echoGuardedMs ?? null;
    // Whether the guard judged a raw capture beside the processed one at the end.
    row.guardRaw = m.echoGuardRaw ?? null;
    row.suspected = m.suspectedSelfInterruptions ?? null;
    row.ducks = m.bargeInDucks ?? null;
    row.pathSeen = lab.pathSeen;
    // When the guard first had an echo path, and when each answer started (ms after the
    // greeting's start): a self-interruption before the path is one the guard could not stop.
    row.pathAtMs = lab.pathAt && lab.pathAt - speakAt;
    row.answerAtMs = lab.speech.filter((s) => s.speaking).map((s) => s.t - speakAt);
    // The page's duck messages to the player: [ms after the greeting's start, dB]; the ducks
    // among them (dB > 0), ms after the greeting's start.
    row.duckMsgs = duckMsgs.map(([t, db]) => [t - speakAt, db]);
    row.duckAtMs = row.duckMsgs.filter(([, db]) => db > 0).map(([t]) => t);
    if (WASM_AEC) {
      row.cancellerInUse = m.echoCanceller;
      row.aecAttenuationDb = m.aecAttenuationDb ?? null;
      row.aecDelayMs = m.aecDelayMs ?? null;
    }
    if (TRACE && DELAY_TIMELINE) {
      // The guard's path lag every 500 ms (ms after the greeting's start, ms), and the room's
      // loop measured again after the run: a lag that grows while the loop stays is the guard's.
      row.delayTimeline = lab.trace.filter((_, i) => i % 25 === 0).map(([t, , , , lag]) => [t - speakAt, lag]);
      row.roomDelayAfterMs = (await measureRoom(d, 1)).delayMs;
    }
    if (kind === "echo") {
      const self = lab.started.filter((s) => s.t >= speakAt && s.assistant);
      row.selfInterruptions = self.length;
      // When, ms after the greeting's start (beside duckAtMs: does a self-interruption follow a duck?).
      row.selfInterruptAtMs = self.map((s) => s.t - speakAt);
      if (TRACE) row.siTrace = self.map((s, i) => traceBefore(lab.trace, s.t, row.selfInterruptAtMs[i], row.duckAtMs));
      // After the greeting ended: its tail or a leak made a phantom user turn.
      row.phantomTurns = lab.started.filter((s) => s.t >= speakAt && !s.assistant).length;
    } else {
      const before = lab.started.filter((s) => s.t < onset);
      // Speech started on the voice: after its onset, before it ends (a start later than that
      // was set off by something else, the echo of a later answer).
      const after = lab.started.filter((s) => s.t >= onset && s.t <= onset + voice.speaksMs);
      row.selfInterruptions = before.filter((s) => s.assistant).length;
      row.phantomTurns = before.filter((s) => !s.assistant).length;
      row.bargeIn = after.length > 0 && (row.truncates ?? 0) > 0;
      row.latencyMs = after.length ? after[0].t - onset : null;
      const at = row.onsetCapturedMs - row.receivedLagMs;
      const frames = loudness(rec?.pcm16_base64);
      const loud = firstLoudMs(frames, at - 100);
      row.firstWordMs = loud == null ? null : loud - at;
      const fires = judgeFiresMs(frames, at - 100);
      row.judgeMs = fires == null ? null : fires - at;
      row.loudFrames = loudFrames(frames, at, 1000);
      row.levelFrames = levelFrames(frames, at - 300, 1300);
      // TRACE=1: what the guard held and sent as silence from 200 ms before the voice's onset
      // to 1.6 s after it, every 40 ms ([ms from the onset, held ms, guarded ms so far]).
      if (TRACE) row.bargeTrace = lab.trace.filter(([t], i) => t >= onset - 200 && t <= onset + 1600 && i % 2 === 0)
        .map(([t, held, guarded]) => [t - onset, held, guarded]);
    }
  } catch (e) {
    row.error = String(e?.message ?? e).slice(0, 300);
  } finally {
    await d?.close();
  }
  return row;
}

/**
 * Saves a run's captured audio (what the server received, 24 kHz) and the played audio (the
 * page's output sink, and the room's microphone before the browser's processing, decimated to
 * 24 kHz) on the capture's timeline, as WAVs in RECORD: the capture position read at the end of
 * the run maps wall time to capture position (ms), the recorders' start maps wall time to their
 * samples. RECORD_MS (default 4000) from 300 ms before the greeting.
 */
async function saveRecording(roomName, guard, kind, mon, recordedFrom, speech, anchor, rec, row, rawMic) {
  if (!speech || !rec?.pcm16_base64) return;
  const mic = Buffer.from(rec.pcm16_base64, "base64");
  // Capture position → received position: minus what was sent but not received (before the
  // server's record began).
  const shift = row.receivedLagMs ?? 0;
  // The greeting's start on the capture timeline (the first speech event may come before the
  // microphone runs: the end-of-run anchor maps wall time to capture position).
  const speechMicMs = anchor.micMs - (anchor.t - speech.t);
  const from = Math.max(0, Math.round((speechMicMs - shift - 300) * 24));
  const len = Math.min(Number(process.env.RECORD_MS ?? 4000) * 24, (mic.length >> 1) - from);
  // The page's output and the room's microphone (before the browser's processing), decimated.
  const aligned = (src) => {
    const pcm = Buffer.alloc(len * 2);
    for (let n = 0; n < len; n++) {
      const wallMs = anchor.t + ((from + n) / 24 - (anchor.micMs - shift));
      const i = Math.round((wallMs - recordedFrom) * (RATE / 1000));
      const v = i >= 0 && i < src.length ? src[i] : 0;
      pcm.writeInt16LE(Math.max(-32768, Math.min(32767, Math.round(v * 32768))), 2 * n);
    }
    return pcm;
  };
  const ref = aligned(mon);
  await mkdir(RECORD, { recursive: true });
  const base = join(RECORD, `${roomName}-${guard}-${kind}-${Date.now() % 100000}`);
  await writeFile(`${base}-mic.wav`, wavFile(mic.subarray(from * 2, (from + len) * 2)));
  await writeFile(`${base}-ref.wav`, wavFile(ref));
  if (rawMic) await writeFile(`${base}-room.wav`, wavFile(aligned(rawMic)));
  if (row.onsetCapturedMs != null) row.recordedOnsetMs = row.onsetCapturedMs - shift - from / 24;
  row.recorded = base;
}

/** The page's output and the room's microphone of the whole run, decimated to 24 kHz, as WAVs
 *  `<room>-<guard>-<kind>-<n>-full-{ref,room}.wav` in RECORD. */
async function saveWhole(roomName, guard, kind, out, room, row) {
  const pcm = (src) => {
    const n = src.length >> 1, b = Buffer.alloc(n * 2);
    for (let i = 0; i < n; i++) {
      const v = Math.round(((src[2 * i] + src[2 * i + 1]) / 2) * 32768);
      b.writeInt16LE(Math.max(-32768, Math.min(32767, v)), 2 * i);
    }
    return b;
  };
  await mkdir(RECORD, { recursive: true });
  const base = join(RECORD, `${roomName}-${guard}-${kind}-${Date.now() % 100000}-full`);
  await writeFile(`${base}-ref.wav`, wavFile(pcm(out)));
  await writeFile(`${base}-room.wav`, wavFile(pcm(room)));
  row.recordedFull = base;
}

/** A 24 kHz mono PCM16 WAV of `pcm`. */
function wavFile(pcm) {
  const h = Buffer.alloc(44);
  h.write("RIFF", 0); h.writeUInt32LE(36 + pcm.length, 4); h.write("WAVEfmt ", 8);
  h.writeUInt32LE(16, 16); h.writeUInt16LE(1, 20); h.writeUInt16LE(1, 22); h.writeUInt32LE(24000, 24);
  h.writeUInt32LE(48000, 28); h.writeUInt16LE(2, 32); h.writeUInt16LE(16, 34); h.write("data", 36); h.writeUInt32LE(pcm.length, 40);
  return Buffer.concat([h, pcm]);
}

// ---- the report -----------------------------------------------------------------------------
function report(rooms, rows) {
  const by = (r, g, k) => rows.filter((x) => x.room === r && x.guard === g && x.kind === k && !x.error);
  const fmt = (v, d = 0) => (v == null || Number.isNaN(v) ? "—" : Number(v).toFixed(d));
  const lines = [
    `# Echo lab: self-interruptions and barge-in per room (headless ${ENGINE}, real PulseAudio loop${RAW_CAPTURE ? "; capture raw: the browser's EC/NS/AGC off" : CAPTURE ? `; capture: only ${CAPTURE} of the browser's EC/NS/AGC on` : ""}${WASM_AEC ? "; echo canceller: wasm (AEC3 in the capture worklet, the browser's EC/NS/AGC off)" : CANCELLER === "none" ? "; echo canceller: none (raw capture, the guard alone)" : ""})`,
    "",
    `Run ${new Date().toISOString()}. Judge: the reference server's VAD (15 frames of 10 ms above −40 dBFS within 20). Self-interruption: \`speech_started\` while the greeting plays with no user voice in the room (truncates: how many \`conversation.item.truncate\` the server got, the cross-check); phantom turn: \`speech_started\` after the greeting ended, with nobody talking (its tail or a leak). Barge-in: a user voice (espeak-ng) into the room ${BARGE_AFTER_MS} ms into the greeting; OK when \`speech_started\` comes while the voice speaks (its onset to its last sound) and the greeting is truncated; latency from the voice's onset; first word: where the server's audio first exceeds −40 dBFS, relative to the onset (negative: the echo already was there). Delay: the room's loop as the page meets it (an AudioContext's output → PulseAudio's room → the raw microphone in the same context), by a noise burst when the room starts and before each run; tail: the echo's level 300 ms after the burst against its peak. Load: 1-minute load average of this 2-core machine during the runs.`,
    "",
    "| room | delay ms | gain dB | tail dB | guard | echo runs | runs self-interrupted (events) | truncates | phantom turns | barge-in OK | latency ms (median, max) | first word ms (max) | ERLE est. dB | guarded ms (mean) | echo runs ducked (ducks) | load |",
    "|---|---|---|---|---|---|---|---|---|---|---|---|---|---|---|---|",
  ];
  for (const [name, m] of rooms) {
    for (const g of GUARDS) {
      const e = by(name, g, "echo"), b = by(name, g, "barge");
      const lat = b.map((x) => x.latencyMs).filter((x) => x != null).sort((x, y) => x - y);
      const fw = b.map((x) => x.firstWordMs).filter((x) => x != null);
      const all = [...e, ...b];
      const erl = all.map((x) => x.echoReturnLossDb).filter((x) => x != null);
      const guarded = all.map((x) => x.guardedMs).filter((x) => x != null);
      const errs = rows.filter((x) => x.room === name && x.guard === g && x.error).length;
      const rd = (m.runDelays ?? []).filter((x) => x != null);
      const delays = rd.length ? `${fmt(m.delayMs)} (runs ${fmt(Math.min(...rd))}–${fmt(Math.max(...rd))})` : fmt(m.delayMs);
      lines.push(`| ${name} | ${delays} | ${fmt(m.gainDb, 1)} | ${fmt(m.tailDb, 1)} | ${g} | ${e.length}${errs ? ` (+${errs} failed)` : ""} | ${e.filter((x) => x.selfInterruptions > 0).length} of ${e.length} (${e.reduce((s, x) => s + x.selfInterruptions, 0)}) | ${e.reduce((s, x) => s + (x.truncates ?? 0), 0)} | ${all.reduce((s, x) => s + (x.phantomTurns ?? 0), 0)} | ${b.filter((x) => x.bargeIn).length} of ${b.length} | ${lat.length ? `${fmt(lat[Math.floor(lat.length / 2)])}, ${fmt(lat[lat.length - 1])}` : "—"} | ${fw.length ? fmt(Math.max(...fw)) : "—"} | ${erl.length ? fmt(erl.reduce((s, x) => s + x, 0) / erl.length, 1) : "—"} | ${guarded.length ? fmt(guarded.reduce((s, x) => s + x, 0) / guarded.length) : "—"} | ${e.filter((x) => x.ducks > 0).length} of ${e.length} (${e.reduce((s, x) => s + (x.ducks ?? 0), 0)}) | ${fmt(all.reduce((s, x) => s + x.load1, 0) / Math.max(1, all.length), 1)} |`);
    }
  }
  const failed = rows.filter((x) => x.error);
  if (failed.length) lines.push("", "Failed runs:", "", ...failed.map((x) => `- ${x.room} / ${x.guard} / ${x.kind}: ${x.error}`));
  lines.push("");
  return lines.join("\n");
}

await mkdir(OUT, { recursive: true });
await rm(join(OUT, "echo-lab.jsonl"), { force: true });
const voice = await userVoice();
const rooms = [];
const rows = [];
for (const name of ROOMS) {
  room("start", name);
  try {
    const d = await openBrowser();
    const m = await measureRoom(d).finally(() => d.close());
    rooms.push([name, m]);
    console.log(`room ${name}: delay ${m.delayMs?.toFixed(0)} ms, gain ${m.gainDb?.toFixed(1)} dB, tail ${m.tailDb?.toFixed(1)} dB${m.error ? `, ${m.error}` : ""}`);
    m.runDelays = [];
    for (let i = 0; i < RUNS; i++) {
      for (const guard of GUARDS) {
        for (const kind of KINDS) {
          const row = await run(name, guard, kind, voice);
          rows.push(row);
          if (row.roomDelayMs != null) m.runDelays.push(row.roomDelayMs);
          await appendFile(join(OUT, "echo-lab.jsonl"), `${JSON.stringify(row)}\n`);
          console.log(JSON.stringify(row));
        }
      }
    }
  } finally {
    room("stop");
  }
}
const md = report(rooms, rows);
await writeFile(join(OUT, "echo-lab.md"), md);
console.log(md);
if (process.env.CHECK) {
  const failed = [
    ...rows.filter((r) => r.error).map((r) => `${r.room}/${r.guard}/${r.kind}: ${r.error}`),
    ...rooms.filter(([, m]) => m.delayMs == null).map(([n]) => `${n}: the loop's delay was not measured`),
    ...rows.filter((r) => r.kind === "barge" && !r.error && r.firstWordMs == null)
      .map((r) => `${r.room}/${r.guard}: the user's voice never reached the server`),
    // A pair also guards the first 1.5 s of playback before a path can be known.
    ...rows.filter((r) => r.guard !== "off" && !r.error && !r.pathSeen && r.guardedMs > 400 * (r.ducks ?? 0) + (r.guardRaw ? 1800 : 0))
      .map((r) => `${r.room}/${r.guard}/${r.kind}: ${r.guardedMs} ms held back without an echo path, more than ${r.ducks ?? 0} duck probes${r.guardRaw ? " and a pair's first playback" : ""} hold`),
  ];
  if (failed.length) {
    console.error(`echo lab check failed:\n${failed.join("\n")}`);
    process.exit(1);
  }
  console.log(`echo lab check: ${rows.length} runs passed`);
}
