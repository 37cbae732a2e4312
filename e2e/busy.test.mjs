// Two tabs on one interview: the first stays connected, the second says the interview is open in
// another tab (Web Locks in one browser, or the server's 4409 for a second connection).
import assert from "node:assert/strict";
import { scenario, openPage, waitState, statusText, rvFacts, devToken } from "./support.mjs";

scenario("busy", "two tabs on one interview → the second shows busy", async (b, engine) => {
  const t = await devToken();
  const params = { interview: t.interview_id, token: t.token, muted: "1" };
  await openPage(b, params);
  await b.click("[data-testid=voice-mode]");
  await waitState(b, "connected", 20_000);

  await b.newTab();
  await openPage(b, params);
  await b.click("[data-testid=voice-mode]");
  await waitState(b, "failed", 20_000);
  const f = await rvFacts(b);
  assert.equal(f.body.reason, "busy");
  assert.match(await statusText(b), /^This interview is open in another tab( \(4409\))?$/);
  assert.equal(f.statuses.filter((s) => s.state === "reconnecting").length, 0, "busy is not retried");

  // The busy tab's final state. (WebKitGTK cannot screenshot a tab it switched away from.)
  await b.screenshot(`busy-${engine}`);
  b.finalShot = false;
  await b.switchTab(0);
  assert.equal(await b.eval(() => document.body.dataset.state), "connected", "the first tab keeps its session");
});
