// An exception out of the wasm mid-interview (here a browser call that throws inside it: the
// playback worklet's port refuses the AI's audio; a Rust panic traps the same way). The wasm's
// state can no longer be trusted, so the client stops everything at once: the socket closes, the
// microphone goes off, and the page is told (an `error` `client_aborted`, the status `failed` /
// `internal`) instead of sitting silent with the microphone open. The abort's bookkeeping is
// tested in Node (tests/glue/abort.test.mjs); this is the page in each engine.
import assert from "node:assert/strict";
import { scenario, openPage, waitState, statusText, rvFacts, spyOnGetUserMedia, ENGINES } from "./support.mjs";

/** Keeps every WebSocket the client opens in `__e2eSpy.sockets` (after spyOnGetUserMedia). */
const spyOnSockets = () => {
  const s = (globalThis.__e2eSpy.sockets = []);
  const W = WebSocket;
  globalThis.WebSocket = class extends W {
    constructor(...a) {
      super(...a);
      s.push(this);
    }
  };
  return true;
};

/** Opens the demo in voice mode with the microphone and socket spies, and waits for capture. */
async function connectWithSpies(b, params = {}) {
  await openPage(b, params);
  await b.eval(spyOnGetUserMedia);
  await b.eval(spyOnSockets);
  await b.click("[data-testid=voice-mode]");
  await waitState(b, "connected", 20_000);
  await b.waitFor(() => globalThis.__e2eSpy.streams.length >= 1 && window.__rv.inputLevels > 0, 15_000);
}

/** Waits until every microphone track has ended and every socket is closed (at least one of each). */
async function assertAllClosed(b) {
  const left = await b.waitFor(() => {
    const s = globalThis.__e2eSpy;
    const live = s.streams.flatMap((m) => m.getTracks()).filter((t) => t.readyState !== "ended").length
      + s.sockets.filter((w) => w.readyState < 2).length;
    return live === 0 && { streams: s.streams.length, sockets: s.sockets.length };
  }, 5_000);
  assert.ok(left.streams >= 1 && left.sockets >= 1, `every microphone track ended and every socket closed: ${JSON.stringify(left)}`);
}

scenario("abort", "an exception out of the wasm stops the client: socket closed, microphone off, the page told", async (b) => {
  // Muted (the microphone open, its audio not sent): the server's VAD hears nothing, so no speech
  // of the fake microphone cuts the greeting short or holds the next answer, and the AI's audio
  // keeps coming until the injected exception.
  await connectWithSpies(b, { muted: "1" });

  // From now on the playback worklet's port throws on the AI's audio, inside the wasm's call.
  await b.eval(() => {
    const p = MessagePort.prototype, post = p.postMessage;
    p.postMessage = function (m, t) {
      if (m && m.type === "push") throw new DOMException("injected by the test", "DataCloneError");
      return post.call(this, m, t);
    };
    // The greeting's audio may still be coming; this turn brings an answer with audio anyway.
    window.__rv.client.sendText("Tell me more.");
    return true;
  });

  await waitState(b, "failed", 20_000);
  const f = await rvFacts(b);
  assert.equal(await b.eval(() => document.body.dataset.reason), "internal");
  assert.deepEqual(f.statuses.at(-1).detail, "client_aborted");
  assert.ok(f.errors.some((e) => e.kind === "internal" && e.code === "client_aborted"), `errors: ${JSON.stringify(f.errors)}`);
  assert.match(await statusText(b), /internal error/);
  await assertAllClosed(b);
// Firefox: geckodriver runs scripts in a sandbox whose patches the page never sees; the abort
// itself is engine-independent JS (tests/glue/abort.test.mjs).
}, { engines: ENGINES.filter((e) => e !== "firefox") });

// The same from a method the app calls (here `resume()`, whose browser call throws inside the
// wasm): the client stops inside that call, not at the next callback, and the app still gets the
// exception. An error the API returns for bad input aborts nothing; after the abort the client's
// methods throw, but `disconnect()` resolves.
scenario("abort-call", "an exception out of the wasm in a method the app calls stops the client inside the call", async (b) => {
  await connectWithSpies(b);

  const r = await b.eval(() => {
    const c = window.__rv.client;
    const last = () => window.__rv.statuses.at(-1);
    const threw = (f) => {
      try {
        f();
        return null;
      } catch (e) {
        return String(e);
      }
    };
    const badInput = threw(() => c.on("no-such-event", () => {}));
    const afterBadInput = last().state;
    AudioContext.prototype.resume = function () {
      throw new DOMException("injected by the test", "InvalidStateError");
    };
    const trapped = threw(() => c.resume());
    const inTheCall = { state: last().state, detail: last().detail };
    return { badInput, afterBadInput, trapped, inTheCall, later: threw(() => c.setMuted(true)) };
  });
  assert.ok(r.badInput, "an unknown event name throws");
  assert.equal(r.afterBadInput, "connected", "and aborts nothing");
  assert.match(r.trapped ?? "", /injected by the test/);
  assert.deepEqual(r.inTheCall, { state: "failed", detail: "client_aborted" });
  assert.match(r.later ?? "", /reload the page/);
  assert.equal(await b.eval(() => window.__rv.client.disconnect().then(() => "resolved")), "resolved");
  await assertAllClosed(b);
}, { engines: ENGINES.filter((e) => e !== "firefox") });
