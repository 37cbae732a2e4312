// Invalid JWT: the server accepts the socket and closes it with 1008; the page says
// "Authentication failed (1008)" and the client does not retry in a loop.
import assert from "node:assert/strict";
import { scenario, openPage, waitState, statusText, rvFacts, devToken } from "./support.mjs";

scenario("auth", "invalid JWT → closed 1008 → Authentication failed, no retry loop", async (b) => {
  const t = await devToken();
  // A well-formed JWT whose signature does not verify.
  const [h, p, sig] = t.token.split(".");
  const forged = `${h}.${p}.${sig.slice(0, -4)}${sig.slice(-4) === "AAAA" ? "BBBB" : "AAAA"}`;
  await openPage(b, { interview: t.interview_id, token: forged });
  await b.click("[data-testid=voice-mode]");
  await waitState(b, "failed", 20_000);
  const f = await rvFacts(b);
  assert.equal(f.body.reason, "auth");
  assert.equal(f.body.closeCode, "1008");
  assert.equal(await statusText(b), "Authentication failed (1008)");
  const attempts = (await b.eval(() => window.__rv.client.metrics())).connectionAttempts;
  assert.ok(attempts >= 1 && attempts <= 2, `${attempts} connection attempts (one retry at most)`);
  // No retry loop: no further attempt within the longest backoff step a loop would use.
  await assert.rejects(
    b.waitFor((n) => window.__rv.client.metrics().connectionAttempts > n || document.body.dataset.state !== "failed", 3_000, attempts),
    /timed out/,
  );
  assert.equal(f.statuses.filter((s) => s.state === "reconnecting").length, 0, "a fixed token is not retried");
});
