// Audio that heals itself, as the demo shows it (issue 14, point 2): mid-interview the
// microphone's track ends (a headset unplugged); the client reopens a microphone by itself, the
// interview stays in voice mode and connected, the demo's Audio panel says what happened, and
// microphone audio reaches the server again. The healing itself is tested per engine in
// tests/web/devices.rs; this is the page a user sees.
import assert from "node:assert/strict";
import { scenario, openPage, waitState, rvFacts, received, ENGINES } from "./support.mjs";

/** Keeps every stream getUserMedia gives (on the prototype: WebKit may swap the wrapper). */
const spyOnGetUserMedia = () => {
  const p = MediaDevices.prototype;
  const spy = { streams: [], gum: p.getUserMedia };
  globalThis.__e2eSpy = spy;
  p.getUserMedia = function (c) {
    return spy.gum.call(this, c).then((s) => { spy.streams.push(s); return s; });
  };
  return true;
};

/** Ends the microphone in use as an unplug does: the track stops and fires `ended`. */
const endLatestTrack = () => {
  const s = globalThis.__e2eSpy.streams;
  const t = s[s.length - 1].getAudioTracks()[0];
  t.stop();
  t.dispatchEvent(new Event("ended"));
  return s.length;
};

scenario("devices", "a microphone unplugged mid-interview is reopened; the page says so and stays in voice mode", async (b) => {
  await openPage(b);
  const interviewId = await b.eval(() => window.__rv.interviewId);
  await b.eval(spyOnGetUserMedia);
  await b.click("[data-testid=voice-mode]");
  await waitState(b, "connected", 20_000);
  await b.waitFor(() => globalThis.__e2eSpy.streams.length >= 1 && window.__rv.inputLevels > 0, 15_000);
  const before = (await received(interviewId)).samples;

  // Only what follows the unplug counts.
  const seen = await b.eval(() => window.__rv.deviceChanges.length);
  const opened = await b.eval(endLatestTrack);
  const changes = await b.waitFor((n) => {
    const c = window.__rv.deviceChanges.slice(n);
    return c.some((x) => x.recovered === "mic" && x.reason !== "format_changed") && c;
  }, 15_000, seen);
  // (WebKit's mock reports its settled format at any point around this: left out.)
  assert.deepEqual(changes.filter((c) => c.reason !== "format_changed").slice(0, 2).map((c) => [c.recovering, c.recovered, c.reason]),
    [["mic", null, "track_ended"], [null, "mic", "track_ended"]], JSON.stringify(changes));
  const facts = await rvFacts(b);
  assert.ok(facts.statuses.every((s) => s.state !== "failed"), `no failure: ${JSON.stringify(facts.statuses)}`);
  assert.equal(await b.eval(() => document.body.dataset.mode), "voice", "the interview stays in voice mode");
  assert.equal(await b.eval(() => document.body.dataset.state), "connected");
  assert.ok(await b.eval((n) => globalThis.__e2eSpy.streams.length > n, opened), "a new microphone stream was opened");
  const note = await b.eval(() => { const n = document.querySelector("[data-testid=device-note]"); return n.hidden ? "" : n.textContent; });
  assert.match(note, /^Microphone back \(the microphone stopped\): now on /, `the Audio panel says what happened: ${note}`);

  // Microphone audio reaches the server again from the new stream: a second of it.
  const now = await until(async () => {
    const n = (await received(interviewId)).samples;
    return n >= before + 24_000 && n;
  }, 20_000);
  assert.ok(now, "the server receives microphone audio again after the new microphone opened");
// Firefox: geckodriver runs scripts in a sandbox whose patch of `getUserMedia` the page never
// sees, so the track cannot be reached from here; tests/web/devices.rs covers Firefox's healing.
}, { engines: ENGINES.filter((e) => e !== "firefox") });

/** Polls `check` (every 200 ms) until it returns a truthy value, or `false` after `timeoutMs`. */
async function until(check, timeoutMs) {
  const end = Date.now() + timeoutMs;
  for (;;) {
    const v = await check();
    if (v || Date.now() > end) return v;
    await new Promise((r) => setTimeout(r, 200));
  }
}
