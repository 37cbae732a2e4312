// The glue's raw capture beside the processed one (`echoGuard: "raw"`, src/web/glue.js `start`)
// in Node, with stand-ins for the browser: kept only where both tracks say their canceller is as
// asked, fed to the capture worklet as the second channel of a merger, and every track stopped
// when the module aborts while the second capture opens. `node --test tests/glue/`.
import { test } from "node:test";
import assert from "node:assert/strict";

const track = (settings) => ({ stopped: false, onended: null, settings, getSettings() { return this.settings; }, stop() { this.stopped = true; } });
const stream = (t) => ({ t, getTracks: () => [t], getAudioTracks: () => [t] });
class Node {
  connected = [];
  port = { postMessage() {}, onmessage: null };
  connect(to, _o, input = 0) {
    this.connected.push([to, input]);
    return to;
  }
  disconnect() {}
}
class FakeContext {
  audioWorklet = { addModule: () => Promise.resolve() };
  state = "running";
  sampleRate = 48000;
  destination = new Node();
  sources = [];
  resume() { return Promise.resolve(); }
  close() { this.state = "closed"; return Promise.resolve(); }
  createMediaStreamSource(s) { const n = new Node(); n.stream = s; this.sources.push(n); return n; }
  createChannelMerger() { return (this.merger = new Node()); }
  createMediaStreamDestination() { return Object.assign(new Node(), { stream: {} }); }
}
globalThis.AudioContext = FakeContext;
globalThis.AudioWorkletNode = class extends Node {};
globalThis.Audio = class { pause() {} play() { return Promise.resolve(); } };
globalThis.WebSocket = class { close() {} };
// Each getUserMedia answers with the next of `answers` (a function of the constraints).
let answers = [];
const asked = [];
const md = { getUserMedia: (c) => (asked.push(c.audio), answers.shift()(c.audio)), addEventListener() {}, removeEventListener() {} };
Object.defineProperty(globalThis, "navigator", { value: { mediaDevices: md }, configurable: true });

const glue = await import("../../src/web/glue.js");
const start = (g) => glue.start(g, "capture.js", "playback.js", { echoCancellation: true }, null, 60, null, true, () => {});

test("the raw capture is kept where both tracks say their canceller is as asked", async () => {
  const p = track({ deviceId: "mic1", echoCancellation: true });
  const r = track({ deviceId: "mic1", echoCancellation: false });
  answers = [async () => stream(p), async () => stream(r)];
  asked.length = 0;
  const g = glue.unlock();
  await start(g);
  assert.equal(asked[1].echoCancellation, false);
  assert.deepEqual(asked[1].deviceId, { exact: "mic1" }, "the same microphone");
  assert.equal(g.r.t, r, "kept");
  const [ps, rs] = g.c.sources;
  assert.deepEqual(ps.connected[0][1], 0, "the processed capture is channel 0");
  assert.deepEqual(rs.connected[0][1], 1, "the raw one channel 1");
  assert.equal(g.c.merger.connected[0][0], g.cap, "the merger feeds the capture worklet");
  glue.stop(g);
  assert.equal(p.stopped && r.stopped, true, "both stopped with the graph");
});

test("a browser that turns the processed track's canceller off for the second request loses the raw capture", async () => {
  const p = track({ deviceId: "mic1", echoCancellation: true });
  const r = track({ deviceId: "mic1", echoCancellation: false });
  answers = [async () => stream(p), async () => ((p.settings = { ...p.settings, echoCancellation: false }), stream(r))];
  const g = glue.unlock();
  await start(g);
  assert.equal(g.r, null, "not kept");
  assert.equal(r.stopped, true, "and stopped");
  assert.equal(p.stopped, false, "the processed capture runs on");
  assert.equal(g.c.merger, undefined, "no merger: the capture as before");
  glue.stop(g);
});

test("a refused raw capture leaves the processed one running alone", async () => {
  const p = track({ deviceId: "mic1", echoCancellation: true });
  answers = [async () => stream(p), async () => { throw Object.assign(new Error("busy"), { name: "NotReadableError" }); }];
  const g = glue.unlock();
  await start(g);
  assert.equal(g.r, null);
  assert.equal(p.stopped, false);
  glue.stop(g);
});

// Last: the abort is for the life of the module.
test("the module aborting while the raw capture opens stops both captures", async () => {
  const p = track({ deviceId: "mic1", echoCancellation: true });
  const r = track({ deviceId: "mic1", echoCancellation: false });
  const ws = glue.socketOpen("wss://example.test/x", [], () => {
    throw new WebAssembly.RuntimeError("unreachable");
  });
  const err = console.error;
  console.error = () => {};
  answers = [async () => stream(p), async () => (ws.onopen(), stream(r))];
  const g = glue.unlock();
  await assert.rejects(start(g));
  console.error = err;
  assert.equal(r.stopped, true, "the raw capture is stopped");
  assert.equal(p.stopped, true, "and the processed one");
});
