// The glue's `shield` (src/web/glue.js) in Node: the wrapper every call from JS into the wasm goes
// through (build-pkg.sh hands it the module's exports). An exception out of an export — a method
// the app calls that traps — aborts every client at once, not at the next callback; an error the
// API returns does not; after the abort the exports refuse, but for the finalizers' (quiet) and
// `disconnect()`. Its own file: the abort is for the life of the module. The browsers' run of it
// is e2e/abort.test.mjs.
import { test } from "node:test";
import assert from "node:assert/strict";

const errors = [];
console.error = (...a) => errors.push(a);
const glue = await import("../../src/web/glue.js");

test("an export that throws aborts at once; a returned error does not; afterwards the exports refuse", async () => {
  const c = glue.client();
  const seen = [];
  glue.emit(c, "status", JSON.stringify({ state: "connected", reason: null, detail: "connected", closeCode: null, attempt: 1 }));
  glue.listen(c, "status", (s) => seen.push(s.state));
  glue.listen(c, "error", (e) => seen.push(e.code));
  const [connecting] = glue.pending(c);

  const calls = [];
  const memory = { buffer: "the module's memory" };
  class Client {
    disconnect() {
      calls.push("disconnect");
      return "disconnecting";
    }
  }
  const wasm = glue.shield({
    memory,
    metrics: (ptr) => (calls.push(["metrics", ptr]), 7),
    // wasm-bindgen returns an Err as values ([_, error, isErr]) and throws it in JS afterwards.
    on: () => (calls.push("on"), [0, "unknown event", 1]),
    resume: () => {
      calls.push("resume");
      throw new WebAssembly.RuntimeError("unreachable");
    },
    free: (ptr) => calls.push(["free", ptr]),
  }, ["free"], Client);

  assert.equal(wasm.memory, memory, "what is not a function passes as it is");
  assert.equal(wasm.metrics(5), 7);
  assert.deepEqual(wasm.on(), [0, "unknown event", 1]);
  assert.equal(new Client().disconnect(), "disconnecting");
  assert.deepEqual(seen, [], "a returned error aborts nothing");

  assert.throws(() => wasm.resume(), WebAssembly.RuntimeError, "the app still gets the exception");
  assert.deepEqual(seen, ["client_aborted", "failed"], "told at once, inside the call");
  assert.equal(errors.length, 1, "the abort is logged once");
  await assert.rejects(connecting, /internal error/);

  calls.length = 0;
  assert.throws(() => wasm.metrics(5), /stopped after an internal error; reload the page/);
  assert.equal(wasm.free(5), undefined, "a finalizer's export does nothing");
  assert.equal(await new Client().disconnect(), undefined, "disconnect() resolves: all is closed already");
  assert.deepEqual(calls, [], "nothing reached the wasm after the abort");
  assert.equal(errors.length, 1);
});
