// Relay mode in Chromium: the demo page against a reference server started as a relay
// (OPENAI_API_KEY set, OPENAI_REALTIME_URL pointing at a second server process that serves the
// simulated interviewer as OpenAI's /v1/realtime). The interview runs as in the smoke test —
// Voice Mode, Connected, the greeting plays, the fake microphone speaks, the interviewer answers,
// End interview, transcript saved — and the upstream shows it saw one session, primed with the
// server's own session policy. No internet: both processes are on loopback.
//
// Chromium only (its fake microphone, tests/fixtures/mic.wav, has pauses that end a turn).
// Its own helpers live here; support.mjs is only imported from.
import assert from "node:assert/strict";
import { scenario, startServer, waitState, statusText, rvFacts, ENGINES } from "./support.mjs";

const KEY = "sk-e2e-relay-0123456789abcdef";

async function getJson(url, headers = {}) {
  const r = await fetch(url, { headers });
  const text = await r.text();
  if (!r.ok) throw new Error(`GET ${url} answered ${r.status}: ${text.slice(0, 200)}`);
  return JSON.parse(text);
}

async function postJson(url, body, headers = {}) {
  const r = await fetch(url, { method: "POST", headers: { "content-type": "application/json", ...headers }, body: JSON.stringify(body) });
  const text = await r.text();
  if (!r.ok) throw new Error(`POST ${url} answered ${r.status}: ${text.slice(0, 200)}`);
  return JSON.parse(text);
}

/** Opens the demo page served by `origin` and waits until the client is constructed. */
async function openAt(b, origin, params = {}) {
  const q = new URLSearchParams(params).toString();
  await b.goto(`${origin}/${q ? `?${q}` : ""}`);
  const ready = await b.waitFor(() => document.body.dataset.wasm !== "loading" && document.body.dataset.wasm, 20_000);
  assert.equal(ready, "ready", "the page did not get ready");
}

scenario("relay", "relay: the demo page → relay → OpenAI-compatible upstream process: a whole interview", async (b) => {
  const upstream = await startServer({ SIMULATED_OPENAI_KEY: KEY });
  let relay;
  try {
    relay = await startServer({
      OPENAI_API_KEY: KEY,
      OPENAI_REALTIME_URL: `${upstream.url.replace(/^http/, "ws")}/v1/realtime`,
    });
    await openAt(b, relay.url, { muted: "1" });
    const interviewId = await b.eval(() => window.__rv.interviewId);

    await b.click("[data-testid=voice-mode]");
    await waitState(b, "connected", 20_000);
    assert.equal(await statusText(b), "Connected");
    // The relay asked the upstream for the first response: the greeting plays.
    await b.waitFor(() => window.__rv.outputHeard >= 5, 15_000);

    // Speak; the upstream's VAD ends the turn on mic.wav's pause and transcribes it.
    await b.click("[data-testid=mute]");
    await b.waitFor(() => window.__rv.speech.user >= 1, 15_000);
    await b.waitFor(() => window.__rv.transcripts.user >= 1, 20_000);
    await b.click("[data-testid=mute]");
    await b.waitFor(() => (window.__rv.eventTypes["response.done"] ?? 0) >= 2 && window.__rv.transcripts.assistant >= 2, 30_000);
    const m = await b.eval(() => window.__rv.client.metrics());
    assert.equal(m.protocolErrors, 0);
    assert.ok(m.costUsd > 0, `cost so far ${m.costUsd}`);

    await b.click("[data-testid=end]");
    assert.equal(await b.waitFor(() => document.body.dataset.saved, 15_000), "yes");
    const f = await rvFacts(b);
    assert.equal(f.body.state, "closed");

    // The relay persisted the transcripts and booked the cost from the upstream's usage.
    const { token } = await postJson(`${relay.url}/dev/token`, { interview_id: interviewId, user_id: "dev-user" });
    const saved = await getJson(`${relay.url}/api/v1/interviews/${encodeURIComponent(interviewId)}`, { authorization: `Bearer ${token}` });
    assert.ok(saved.turns.some((t) => t.role === "user" && /s of speech/.test(t.text)), "a spoken turn was transcribed");
    assert.ok(saved.turns.some((t) => t.role === "assistant" && t.text.length > 0));
    assert.ok(saved.realtime_cost_usd > 0, `server-side cost ${saved.realtime_cost_usd}`);
    const client = (await b.eval(() => window.__rv.client.metrics())).costUsd;
    assert.ok(Math.abs(client - saved.realtime_cost_usd) <= 0.01 * saved.realtime_cost_usd + 1e-9,
      `client estimate $${client} vs relay bill $${saved.realtime_cost_usd}`);

    // The upstream saw one session, primed with the server's policy before anything else.
    const sessions = await getJson(`${upstream.url}/dev/upstream/sessions`);
    assert.equal(sessions.length, 1, JSON.stringify(sessions).slice(0, 500));
    assert.equal(sessions[0].types[0], "session.update");
    const policy = sessions[0].session_updates[0];
    assert.equal(policy.type, "realtime");
    assert.ok(policy.instructions.length > 0);
    assert.ok(sessions[0].types.includes("input_audio_buffer.append"));
  } finally {
    if (relay) await relay.stop();
    await upstream.stop();
  }
}, { engines: ENGINES.filter((e) => e === "chromium"), timeoutMs: 90_000 });
