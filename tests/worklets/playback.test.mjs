// The playback worklet, run in Node with a stand-in for the AudioWorklet scope: underruns,
// concealment of late audio (the core's pitch period repeated, then crossfaded) and the played
// counts. `node --test tests/worklets/` (part of `make test-native`).
import { test } from "node:test";
import assert from "node:assert/strict";
import { readFileSync } from "node:fs";
import vm from "node:vm";

const RATE = 48_000;
const QUANTUM = 128;
const source = readFileSync(new URL("../../src/web/worklets/playback.js", import.meta.url), "utf8");

// A fresh worklet: its messages out are collected; `send` delivers one in.
function worklet(prebufferMs = 20) {
  const sent = [];
  let Processor;
  class AudioWorkletProcessor {
    constructor() {
      this.port = { postMessage: (m) => sent.push({ ...m }), onmessage: null };
    }
  }
  // currentFrame: the context frame of the quantum being rendered.
  const scope = { sampleRate: RATE, currentFrame: 0, AudioWorkletProcessor, registerProcessor: (_n, c) => (Processor = c) };
  scope.globalThis = scope;
  vm.runInNewContext(source, scope);
  const p = new Processor({ processorOptions: { prebufferMs } });
  const out = [];
  return {
    sent,
    out,
    send: (m) => p.port.onmessage({ data: m }),
    run(ms) {
      for (let k = 0; k < Math.round((ms / 1000) * RATE / QUANTUM); k++) {
        const o = new Float32Array(QUANTUM);
        p.process([], [[o]]);
        scope.currentFrame += QUANTUM;
        out.push(...o);
      }
    },
    last: (type) => sent.filter((m) => m.type === type).at(-1),
  };
}

// A 200 Hz voice-like tone at 48 kHz: its period is 240 frames.
const PERIOD = 240;
const tone = (from, n) =>
  Float32Array.from({ length: n }, (_, i) => 0.5 * Math.sin((2 * Math.PI * (from + i)) / PERIOD));
const rms = (x) => Math.sqrt(x.reduce((s, v) => s + v * v, 0) / x.length);
// The quietest 5 ms window of `x` (from its first sound to `until`).
function quietest(x, until) {
  const first = x.findIndex((v) => Math.abs(v) > 0.01);
  let min = Infinity;
  for (let i = first; i + 240 <= until; i += 48) min = Math.min(min, rms(x.slice(i, i + 240)));
  return min;
}
// The largest step between consecutive output frames: a click shows as a jump.
const largestStep = (x) => x.reduce((m, v, i) => (i ? Math.max(m, Math.abs(v - x[i - 1])) : m), 0);

test("each progress report says by which context frame its played count was played", () => {
  const w = worklet();
  w.send({ type: "push", item: 1, samples: tone(0, 48_000), period: PERIOD });
  w.run(500);
  // Playing starts at a quantum's start (from silence, its first sample faded in from 0).
  const start = Math.floor(w.out.findIndex((v) => v !== 0) / QUANTUM) * QUANTUM;
  const reports = w.sent.filter((m) => m.type === "progress");
  assert.ok(reports.length >= 8, `${reports.length} reports`);
  for (const r of reports) assert.equal(r.at - start, r.played, JSON.stringify(r));
});

test("a late delta of a voiced answer is bridged by its last period, not a gap", () => {
  const w = worklet();
  const first = 4800; // 100 ms
  w.send({ type: "push", item: 1, samples: tone(0, first), period: PERIOD });
  w.run(200); // plays the 100 ms after the 20 ms delay, then runs dry for ~80 ms
  w.send({ type: "push", item: 1, samples: tone(first, 4800), period: PERIOD });
  w.send({ type: "end", item: 1 });
  w.run(200);
  const p = w.last("progress");
  assert.equal(p.concealed, 1, "one concealment");
  assert.equal(p.underruns, 0, "no underrun");
  assert.equal(p.played, 9600, "concealed frames are not counted as played");
  assert.ok(w.last("finished"), "the item finished");
  const end = w.out.findLastIndex((v) => Math.abs(v) > 0.01);
  assert.ok(quietest(w.out, end) > 0.2, `no gap: quietest 5 ms window ${quietest(w.out, end).toFixed(3)}`);
  // A 200 Hz tone at 0.5 moves at most 0.013 per frame; the crossfade adds little to that.
  assert.ok(largestStep(w.out) < 0.05, `no click: largest step ${largestStep(w.out).toFixed(3)}`);
});

test("a delta later than the concealment lasts is an underrun after a fade", () => {
  const w = worklet();
  w.send({ type: "push", item: 1, samples: tone(0, 4800), period: PERIOD });
  w.run(400); // dry for ~280 ms: the concealment (≤ 160 ms) faded out
  const silentFrom = w.out.length - 4800;
  assert.ok(rms(w.out.slice(silentFrom)) === 0, "silence after the concealment");
  w.send({ type: "push", item: 1, samples: tone(4800, 4800), period: PERIOD });
  w.run(200);
  const p = w.last("progress");
  assert.equal(p.underruns, 1);
  assert.equal(p.concealed, 0);
  assert.ok(largestStep(w.out) < 0.05, `fades, no click: ${largestStep(w.out).toFixed(3)}`);
});

test("without a period (unvoiced end) the player fades out and a late delta is an underrun", () => {
  const w = worklet();
  w.send({ type: "push", item: 1, samples: tone(0, 4800), period: 0 });
  w.run(200);
  w.send({ type: "push", item: 1, samples: tone(4800, 4800), period: 0 });
  w.run(200);
  const p = w.last("progress");
  assert.equal(p.underruns, 1);
  assert.equal(p.concealed, 0);
});

test("a flush during a concealment fades it out and nothing more plays", () => {
  const w = worklet();
  w.send({ type: "push", item: 1, samples: tone(0, 4800), period: PERIOD });
  w.run(140); // 20 ms delay + 100 ms played, then ~20 ms of concealment
  w.send({ type: "flush", rampMs: 8 });
  const at = w.out.length;
  w.run(100);
  const after = w.out.slice(at);
  assert.ok(rms(after.slice(480)) === 0, "silent 10 ms after the flush");
  assert.ok(largestStep(w.out) < 0.05, `no click: ${largestStep(w.out).toFixed(3)}`);
  w.send({ type: "push", item: 1, samples: tone(0, 480), period: PERIOD });
  assert.equal(w.last("progress").underruns, 0, "audio after a flush is no underrun");
});

test("the end marker after running dry fades the concealment out quickly", () => {
  const w = worklet();
  w.send({ type: "push", item: 1, samples: tone(0, 4800), period: PERIOD });
  w.run(130);
  w.send({ type: "end", item: 1 });
  const at = w.out.length;
  w.run(60);
  assert.ok(w.last("finished"), "finished");
  assert.ok(rms(w.out.slice(at + 480)) === 0, "silent 10 ms after the end marker");
});

test("the next answer's audio during a fading concealment waits for its own playout delay", () => {
  const w = worklet(100);
  w.send({ type: "push", item: 1, samples: tone(0, 4800), period: PERIOD });
  w.run(210); // 100 ms delay + 100 ms played, then ~10 ms of concealment
  w.send({ type: "flush", rampMs: 8 }); // barge-in: the concealment fades out
  w.send({ type: "push", item: 2, samples: tone(0, 9600), period: PERIOD });
  const at = w.out.length;
  w.run(60);
  // Item 2 has not started: only the concealment's 8 ms fade sounded after the flush.
  assert.equal(rms(w.out.slice(at + 480)), 0, "item 2 waits for the 100 ms delay");
  w.run(100);
  assert.ok(rms(w.out.slice(-2400)) > 0.3, "then it plays");
});

test("a duck turns the output down 30 dB over 150 ms, without a click, and back up within 300 ms", () => {
  const w = worklet();
  w.send({ type: "push", item: 1, samples: tone(0, RATE * 2), period: PERIOD });
  w.run(200);
  const before = rms(w.out.slice(-4800));
  const at = w.out.length;
  w.send({ type: "duck", db: 30 });
  w.run(300);
  const ducked = rms(w.out.slice(-4800));
  assert.ok(Math.abs(20 * Math.log10(ducked / before) + 30) < 0.5, `ducked by ${(20 * Math.log10(ducked / before)).toFixed(1)} dB`);
  // Gradually (the echo canceller follows a far end that falls slowly): not halfway down in
  // amplitude 50 ms in, down within 150 ms (plus one quantum); no step larger than the tone's own.
  assert.ok(rms(w.out.slice(at + Math.round(0.04 * RATE), at + Math.round(0.05 * RATE))) > before * 0.6, "still above −4.4 dB 50 ms in");
  const settled = at + Math.round(0.15 * RATE) + QUANTUM;
  assert.ok(rms(w.out.slice(settled, settled + 480)) < before * 0.05, "down within 150 ms");
  assert.ok(largestStep(w.out.slice(at - 1)) <= largestStep(w.out.slice(0, at)) * 1.01, "no click");
  const up = w.out.length;
  w.send({ type: "duck", db: 0 });
  w.run(400);
  assert.ok(rms(w.out.slice(up, up + 2400)) < before * 0.5, "slowly up: not at full level 50 ms after");
  assert.ok(Math.abs(rms(w.out.slice(-4800)) / before - 1) < 0.01, "back at full level within 300 ms");
  // Ducking is no underrun.
  assert.equal(w.last("progress").underruns, 0);
});
