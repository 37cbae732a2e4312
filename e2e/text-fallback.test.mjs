// Fallback to text mode: a second reference server runs with the feature flag off
// (ENABLE_REALTIME_API=false), so the realtime socket is closed with 4403. The client switches to
// text mode by itself, the page makes the text box its main UI, and a typed answer gets the
// interviewer's reply (over HTTP, the socket being unusable), saved on the server.
import assert from "node:assert/strict";
import { after, before } from "node:test";
import { scenario, waitState, statusText, rvFacts, startServer } from "./support.mjs";

let server;
before(async () => { server = await startServer({ ENABLE_REALTIME_API: "false" }); });
after(async () => { await server?.stop(); });

scenario("text-fallback", "realtime disabled (4403) → text mode → typed answer gets a reply", async (b) => {
  await b.goto(`${server.url}/`);
  assert.equal(await b.waitFor(() => document.body.dataset.wasm !== "loading" && document.body.dataset.wasm, 20_000), "ready");
  await b.click("[data-testid=voice-mode]");
  await waitState(b, "text", 20_000);
  const f0 = await rvFacts(b);
  assert.equal(f0.body.mode, "text");
  assert.match(await statusText(b), /^Text mode — voice is not enabled for this account$/);
  assert.ok(f0.statuses.some((s) => s.closeCode === 4403), JSON.stringify(f0.statuses));
  assert.equal(await b.eval(() => document.activeElement?.dataset.testid), "text-input", "the text box has the focus");

  await b.type("[data-testid=text-input]", "I write Rust for audio.");
  await b.click("[data-testid=text-send]");
  await b.waitFor(() => window.__rv.transcripts.assistant >= 1, 15_000);
  const reply = await b.eval(() => [...document.querySelectorAll("[data-testid=transcript] li.assistant .text")].map((e) => e.textContent).join(" "));
  assert.ok(reply.length > 10, `reply shown: ${reply}`);
  const mine = await b.eval(() => [...document.querySelectorAll("[data-testid=transcript] li.user .text")].map((e) => e.textContent));
  assert.deepEqual(mine, ["I write Rust for audio."]);

  await b.click("[data-testid=end]");
  assert.equal(await b.waitFor(() => document.body.dataset.saved, 15_000), "yes");
  const f = await rvFacts(b);
  assert.ok(f.saved.user >= 1 && f.saved.assistant >= 1, JSON.stringify(f.saved));
  assert.deepEqual(f.saved.sources, ["text"]);
});
