// The web shell's glue (src/web/glue.js) in Node, with stand-ins for the browser objects it
// touches: the app's listeners and promises, and the abort when an exception escapes the wasm
// (every client stopped and told; nothing calls into the wasm after). `node --test tests/glue/`
// (part of `make test-native`). The browsers' own run of the abort is e2e/abort.test.mjs.
import { test } from "node:test";
import assert from "node:assert/strict";

class FakeSocket {
  static all = [];
  constructor(url) {
    this.url = url;
    this.readyState = 1;
    this.closed = null;
    FakeSocket.all.push(this);
  }
  close(code) {
    this.closed = code;
    this.readyState = 3;
  }
}
class FakeContext {
  audioWorklet = {};
  state = "running";
  resume() {
    return Promise.resolve();
  }
  close() {
    this.state = "closed";
    return Promise.resolve();
  }
}
class FakeAudio {
  pause() {}
}
const track = () => ({ stopped: false, onended: null, stop() { this.stopped = true; } });
globalThis.WebSocket = FakeSocket;
globalThis.AudioContext = FakeContext;
globalThis.Audio = FakeAudio;
const errors = [];
console.error = (...a) => errors.push(a);

// One module for the whole file: the abort is for the life of the module, as in a page.
const glue = await import("../../src/web/glue.js");

const status = (over = {}) => JSON.stringify({ state: "connected", reason: null, detail: "connected", closeCode: null, attempt: 2, ...over });

test("listeners: one parsed value per event, removal, raw listeners, a throwing listener", () => {
  const c = glue.client();
  const got = [];
  const a = (v) => got.push(["a", v]);
  const b = () => {
    throw new Error("app bug");
  };
  glue.listen(c, "status", a);
  glue.listen(c, "status", b);
  glue.listen(c, "event", a);
  glue.emit(c, "status", status());
  glue.emit(c, "mode", '{"mode":"text"}'); // nobody listens: not even parsed
  assert.deepEqual(got, [["a", JSON.parse(status())]]);
  assert.equal(errors.length, 1, "the throwing listener is logged");
  assert.equal(glue.unlisten(c, "status", b), true, "a raw event listener is left");
  assert.equal(glue.unlisten(c, "event", a), false);
  glue.emit(c, "event", '{"type":"x"}');
  assert.equal(got.length, 1);
  glue.forget(c);
});

test("pending promises settle through the functions the shell keeps", async () => {
  const c = glue.client();
  const [p, resolve] = glue.pending(c);
  resolve(7);
  assert.equal(await p, 7);
  assert.equal(c.p.size, 0, "a settled promise is not kept for the abort");
  glue.forget(c);
});

test("an exception out of the wasm stops every client, tells each app, and nothing calls in again", async () => {
  errors.length = 0;
  const c = glue.client();
  const other = glue.client();
  const seen = [];
  glue.emit(c, "status", status());
  glue.listen(c, "status", (s) => seen.push(["status", s]));
  glue.listen(c, "error", (e) => seen.push(["error", e]));
  const [connecting] = glue.pending(c);
  const [deviceChoice] = glue.pending(other);

  const calls = [];
  const ws = glue.socketOpen("wss://example.test/x", [], (kind) => {
    calls.push(kind);
    if (kind == 1) throw new WebAssembly.RuntimeError("unreachable");
  });
  const g = glue.unlock();
  const mic = track();
  g.s = { getTracks: () => [mic], getAudioTracks: () => [mic] };
  // A graph that cannot be stopped (the browser call at fault) keeps nothing else from stopping.
  const broken = glue.unlock();
  const mic2 = track();
  broken.s = { getTracks: () => [mic2], getAudioTracks: () => [mic2] };
  broken.e.pause = () => {
    throw new Error("broken");
  };
  let timerRan = false;
  glue.later(() => (timerRan = true), 0);
  let settled = false;
  glue.settle(true, 1, () => (settled = true));

  ws.onopen();
  ws.onmessage({ data: "{}" }); // the wasm traps here

  assert.deepEqual(calls, [0, 1]);
  assert.equal(ws.closed, 1000, "the socket is closed");
  assert.equal(ws.onmessage, null, "and detached");
  assert.equal(mic.stopped, true, "the microphone is stopped");
  assert.equal(mic2.stopped, true, "also the broken graph's");
  assert.equal(g.c.state, "closed", "the audio context is closed");
  assert.equal(errors.length, 1, "the abort is logged once");
  assert.deepEqual(seen.map(([k, v]) => [k, v.code ?? v.state]), [["error", "client_aborted"], ["status", "failed"]]);
  const [, st] = seen[1];
  assert.deepEqual({ ...st }, { state: "failed", reason: "internal", detail: "client_aborted", closeCode: null, attempt: 2 });
  assert.equal(seen[0][1].kind, "internal");
  await assert.rejects(connecting, /internal error/);
  await assert.rejects(deviceChoice, /internal error/);

  // Nothing reaches the wasm any more: socket events, timers, settled promises.
  ws.onclose?.({ code: 1006, reason: "" });
  await new Promise((r) => setTimeout(r, 5));
  assert.deepEqual(calls, [0, 1]);
  assert.equal(timerRan, false);
  assert.equal(settled, false);
  // And no new client or promise can start.
  assert.throws(() => glue.client(), /reload the page/);
  assert.throws(() => glue.pending(c), /reload the page/);
});
