// The glue's raw capture beside the processed one (`echoGuard` "auto" and "raw", src/web/glue.js
// `start`) in Node, with stand-ins for the browser: asked for by "auto" only on desktop Chromium
// and on Firefox on Linux and Windows, kept only where the processed track runs on unmuted and
// both tracks say their canceller is as asked, fed to the capture worklet as the second channel
// of a merger, and every track stopped when the module aborts while the second capture opens;
// the worklets' messages reported with every field. `node --test tests/glue/`.
import { test } from "node:test";
import assert from "node:assert/strict";

const track = (settings) => ({ stopped: false, onended: null, readyState: "live", muted: false, settings, getSettings() { return this.settings; }, stop() { this.stopped = true; } });
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
const nav = { mediaDevices: md };
Object.defineProperty(globalThis, "navigator", { value: nav, configurable: true });

const glue = await import("../../src/web/glue.js");
// `raw`: 2 ("raw") wherever the browser gives both, 1 ("auto") where it is known to.
const start = (g, raw = 2) => glue.start(g, "capture.js", "playback.js", { echoCancellation: true }, null, 60, null, raw, () => {});

test("\"auto\" asks for the raw capture on desktop Chromium and Firefox on Linux and Windows only", async () => {
  const safari = "Mozilla/5.0 (Macintosh; Intel Mac OS X 10_15_7) AppleWebKit/605.1.15 (KHTML, like Gecko) Version/18.0 Safari/605.1.15";
  const ios = "Mozilla/5.0 (iPhone; CPU iPhone OS 18_0 like Mac OS X) AppleWebKit/605.1.15 (KHTML, like Gecko) FxiOS/140.0 Mobile/15E148 Safari/605.1.15";
  const webkitLinux = "Mozilla/5.0 (X11; Linux x86_64) AppleWebKit/605.1.15 (KHTML, like Gecko) Version/18.0 Safari/605.1.15";
  const firefox = (os) => `Mozilla/5.0 (${os}; rv:153.0) Gecko/20100101 Firefox/153.0`;
  const cases = [
    [undefined, safari, false, "Safari"],
    [undefined, webkitLinux, false, "WebKitGTK"],
    [undefined, ios, false, "Firefox on iOS (WebKit)"],
    [undefined, firefox("X11; Linux x86_64"), true, "Firefox on Linux"],
    [undefined, firefox("Windows NT 10.0; Win64; x64"), true, "Firefox on Windows"],
    [undefined, firefox("Macintosh; Intel Mac OS X 10.15"), false, "Firefox on macOS"],
    [undefined, "Mozilla/5.0 (Android 15; Mobile; rv:153.0) Gecko/153.0 Firefox/153.0", false, "Firefox on Android"],
    [undefined, "Mozilla/5.0 (X11; Linux aarch64; Android 15; rv:153.0) Gecko/153.0 Firefox/153.0", false, "an Android that says Linux"],
    [{ mobile: true, platform: "Android" }, "", false, "a phone"],
    [{ mobile: false, platform: "Android" }, "", false, "a tablet"],
    [{ mobile: false, platform: "Chrome OS" }, "", false, "ChromeOS"],
    [{ mobile: false, platform: "Linux" }, "", true, "desktop Linux"],
    [{ mobile: false, platform: "macOS" }, "", true, "desktop macOS"],
    [{ mobile: false, platform: "Windows" }, "", true, "desktop Windows"],
  ];
  for (const [uad, ua, pairs, what] of cases) {
    nav.userAgentData = uad;
    nav.userAgent = ua;
    const p = track({ deviceId: "mic1", echoCancellation: true });
    const r = track({ deviceId: "mic1", echoCancellation: false });
    answers = [async () => stream(p), async () => stream(r)];
    asked.length = 0;
    const g = glue.unlock();
    await start(g, 1);
    assert.equal(asked.length, pairs ? 2 : 1, what);
    assert.equal(g.r?.t ?? null, pairs ? r : null, what);
    glue.stop(g);
    answers = [];
  }
  delete nav.userAgentData;
  delete nav.userAgent;
});

test("without `raw` the microphone is opened once", async () => {
  nav.userAgentData = { mobile: false, platform: "Linux" };
  const p = track({ deviceId: "mic1", echoCancellation: true });
  answers = [async () => stream(p)];
  asked.length = 0;
  const g = glue.unlock();
  await start(g, 0);
  assert.equal(asked.length, 1);
  assert.equal(g.r, null);
  glue.stop(g);
  delete nav.userAgentData;
});

test("a browser that mutes or ends the processed track for the second request loses the raw capture", async () => {
  for (const change of [{ muted: true }, { readyState: "ended" }]) {
    const p = track({ deviceId: "mic1", echoCancellation: true });
    const r = track({ deviceId: "mic1", echoCancellation: false });
    answers = [async () => stream(p), async () => (Object.assign(p, change), stream(r))];
    const g = glue.unlock();
    await start(g);
    assert.equal(g.r, null, JSON.stringify(change));
    assert.equal(r.stopped, true, "and stopped");
    glue.stop(g);
  }
});

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

test("the raw capture ending alone leaves the processed one feeding the worklet by itself", async () => {
  const p = track({ deviceId: "mic1", echoCancellation: true });
  const r = track({ deviceId: "mic1", echoCancellation: false });
  answers = [async () => stream(p), async () => stream(r)];
  const g = glue.unlock();
  const reported = [];
  await glue.start(g, "capture.js", "playback.js", { echoCancellation: true }, null, 60, null, 2, (k) => reported.push(k));
  assert.equal(g.r.t, r);
  r.onended();
  assert.equal(g.r, null, "the pair is let go");
  assert.equal(r.stopped, true);
  assert.equal(p.stopped, false, "the processed capture runs on");
  const last = g.c.sources.at(-1);
  assert.equal(last.stream.t, p, "a new source of the processed capture");
  assert.deepEqual(last.connected, [[g.cap, 0]], "straight into the capture worklet");
  assert.equal(g.src, last);
  assert.ok(!reported.includes(4), "not reported as a lost microphone");
  glue.stop(g);
  assert.equal(p.stopped, true);
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

test("the worklets' messages reach the core whole, each with its audio-context frame", async () => {
  const p = track({ deviceId: "mic1", echoCancellation: true });
  answers = [async () => stream(p)];
  const g = glue.unlock();
  const got = [];
  await glue.start(g, "capture.js", "playback.js", { echoCancellation: true }, null, 60, null, 0, (...a) => got.push(a));
  const frames = new Float32Array(4);
  g.cap.port.onmessage({ data: { frames, channels: 1, time: 1.5 } });
  g.play.port.onmessage({ data: { type: "progress", item: 3, played: 4800, at: 72_128, underruns: 1, concealed: 2, rms: 0.25, peak: 0.5 } });
  const [capture, progress] = [got.find((a) => a[0] === 0), got.find((a) => a[0] === 1)];
  assert.deepEqual(capture, [0, frames, 1, 0, 72_000, 0, 0, 0], "the capture block's first frame (1.5 s at 48 kHz)");
  assert.deepEqual(progress, [1, 2, 3, 4800, 1, 0.25, 0.5, 72_128], "what played, by which frame");
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
