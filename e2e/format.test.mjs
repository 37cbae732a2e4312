// Audio format mismatch: the page asks for G.711 µ-law input (session.update through the
// client's updateSession); the server refuses it with an `invalid_audio_format` error, which the
// client surfaces as an error event and the page shows. The session itself stays up.
import assert from "node:assert/strict";
import { scenario, openPage, waitState, rvFacts, received } from "./support.mjs";

scenario("format", "audio format mismatch → the server's invalid_audio_format error is shown", async (b) => {
  await openPage(b, { muted: "1" });
  const interviewId = await b.eval(() => window.__rv.interviewId);
  // Keyboard operable: Voice Mode started with Enter on the focused button.
  await b.press("[data-testid=voice-mode]", "Enter");
  await waitState(b, "connected", 20_000);
  await b.select("[data-testid=input-format]", "pcmu");
  await b.waitFor(() => (window.__rv.errorCodes.invalid_audio_format ?? 0) >= 1, 10_000);
  const f = await rvFacts(b);
  assert.equal(f.body.lastError, "invalid_audio_format");
  assert.ok(f.errors.some((e) => e.code === "invalid_audio_format" && e.kind === "server"), JSON.stringify(f.errors));
  const shown = await b.eval(() => document.querySelector("[data-testid=error]").textContent);
  assert.match(shown, /audio format.*invalid_audio_format/);
  assert.equal(f.body.state, "connected", "a refused session.update does not end the session");
  const rec = await received(interviewId);
  assert.ok(rec.errors_sent.includes("invalid_audio_format"), `server sent: ${rec.errors_sent}`);
});
