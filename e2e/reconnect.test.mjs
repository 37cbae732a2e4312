// Connection drop and reconnection: the server drops the TCP connection without a close frame
// (fault drop_after_ms); the page says "Reconnecting…", the client reconnects by itself and the
// conversation goes on (the interviewer speaks again on the new connection).
import assert from "node:assert/strict";
import { scenario, openPage, waitState, statusText, rvFacts, devToken, armFault } from "./support.mjs";

scenario("reconnect", "connection drop → Reconnecting… → Connected again", async (b) => {
  const t = await devToken();
  await armFault({ interview_id: t.interview_id, drop_after_ms: 1500 });
  await openPage(b, { interview: t.interview_id, token: t.token, muted: "1" });
  await b.click("[data-testid=voice-mode]");
  await waitState(b, "connected", 20_000);
  // The reconnect may take only a few ms: wait for its status in the page's record, then check the
  // badge text that status produced.
  const shown = await b.waitFor(() => window.__rv.statuses.find((s) => s.state === "reconnecting")?.shown, 10_000);
  assert.equal(shown, "Reconnecting… connection lost (1006), attempt 1");
  await waitState(b, "connected", 20_000);
  assert.equal(await statusText(b), "Connected");
  const heard = await b.eval(() => window.__rv.outputHeard);
  await b.waitFor((n) => window.__rv.outputHeard >= n + 5, 15_000, heard);

  const f = await rvFacts(b);
  const seq = f.statuses.map((s) => s.state);
  const drop = seq.indexOf("reconnecting");
  assert.ok(seq.indexOf("connected") < drop && seq.lastIndexOf("connected") > drop, `states: ${seq.join(" → ")}`);
  const m = await b.eval(() => window.__rv.client.metrics());
  assert.equal(m.reconnects, 1, `reconnects ${m.reconnects}`);
  assert.ok(m.connectionSuccesses >= 2, `successes ${m.connectionSuccesses}`);
  assert.ok(!seq.includes("failed"));
});
