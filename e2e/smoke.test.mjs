// The deployment checklist's smoke test, in each engine: open the page, Voice Mode, "Connected",
// the interviewer's greeting plays and its question shows on screen (the page's show_question
// tool), speak (the fake microphone), the interviewer answers with
// audio, End interview, and the transcript is saved on the server.
//
// What each engine's fake microphone gives the server VAD (threshold -40 dBFS, 500 ms of silence
// ends a turn):
// - Chromium plays tests/fixtures/mic.wav, looped: 0.3 s of silence, ~3.7 s of speech at about
//   -20 dBFS, ~2 s of silence. The VAD starts and ends a turn on its own.
// - Firefox's fake microphone is a steady 1 kHz sine at 0.1 (-23 dBFS) and WebKit's mock a 150 Hz
//   hum at 0.1 with beeps: both are loud without pause, so the VAD detects speech but never an
//   end of turn. There the turn is started by the microphone and finished by typing, which still
//   makes the interviewer answer with audio.
// The page starts muted (?muted=1) so the greeting is heard before the microphone opens; opening
// it barges in on the greeting, as a user speaking over the interviewer does.
import assert from "node:assert/strict";
import { scenario, openPage, waitState, statusText, rvFacts, received, pcmRmsDbfs, savedInterview, recordAppendSends, appendSendsWithin } from "./support.mjs";

scenario("smoke", "smoke test: Voice Mode → Connected → speak → AI audio → End → transcript saved", async (b, engine) => {
  await openPage(b, { muted: "1" });
  await b.eval(recordAppendSends);
  const interviewId = await b.eval(() => window.__rv.interviewId);
  assert.match(interviewId, /^[A-Za-z0-9._-]+$/);

  await b.click("[data-testid=voice-mode]");
  await waitState(b, "connected", 20_000);
  assert.equal(await statusText(b), "Connected");
  assert.deepEqual(await b.eval(() => { const s = document.querySelector("[data-testid=status]"); return [s.getAttribute("role"), s.getAttribute("aria-live")]; }), ["status", "polite"]);

  // The interviewer greets at once: its audio plays (output level above -60 dBFS).
  await b.waitFor(() => window.__rv.outputHeard >= 5, 15_000);
  // Before asking, it shows the question on screen through the page's show_question tool.
  const q1 = await b.waitFor(() => document.querySelector("[data-testid=question-text]")?.textContent, 15_000);
  assert.ok(q1.length > 10, `the question card shows the question: ${q1}`);
  assert.equal(await b.eval(() => document.querySelector("[data-testid=question]").hidden), false);

  // Speak: open the microphone. The server's VAD reports speech.
  await b.click("[data-testid=mute]");
  assert.equal(await b.eval(() => document.body.dataset.muted), "false");
  await b.waitFor(() => window.__rv.speech.user >= 1, 15_000);
  const rec = await received(interviewId);
  assert.ok(rec.samples >= 2400, `server received ${rec.samples} samples of microphone audio`);
  const micDb = pcmRmsDbfs(rec.pcm16_base64);
  assert.ok(micDb > -45, `microphone audio at the server is ${micDb.toFixed(1)} dBFS (silence?)`);
  // At most 10 appends in any second as the page sent them (10 ms for whole-ms clocks).
  const sends = await b.eval(appendSendsWithin, 990);
  assert.ok(sends.count > 0, "the page sent appends");
  assert.ok(sends.most <= 10, `${sends.most} appends sent in one second (limit 10; the server counted ${rec.max_appends_per_s} on arrival)`);
  assert.equal(rec.rejected_appends, 0);

  const before = await rvFacts(b);
  if (engine === "chromium") {
    // mic.wav falls silent: the VAD ends the turn and the server transcribes it.
    await b.waitFor(() => window.__rv.transcripts.user >= 1, 20_000);
    await b.click("[data-testid=mute]"); // no barge-in on the answer from the looped file
  } else {
    await b.click("[data-testid=mute]");
    await b.type("[data-testid=text-input]", "I build realtime audio software.");
    await b.press("[data-testid=text-input]", "Enter");
  }
  // The interviewer answers with audio, to the end of its line: two responses are done (the
  // greeting, cut short by the microphone, and the answer), both with their final transcript.
  await b.waitFor((n) => window.__rv.outputHeard >= n + 5, 20_000, before.outputHeard);
  await b.waitFor(() => (window.__rv.eventTypes["response.done"] ?? 0) >= 2 && window.__rv.transcripts.assistant >= 2, 30_000);
  // The next question got its card too.
  await b.waitFor(() => window.__rv.questions.length >= 2, 30_000);
  const qs = await b.eval(() => window.__rv.questions);
  assert.notEqual(qs[1], qs[0], `questions shown: ${JSON.stringify(qs)}`);
  const m = await b.eval(() => window.__rv.client.metrics());
  assert.ok(m.timeToFirstAudioMs > 0 && m.timeToFirstAudioMs < 10_000, `time to first audio ${m.timeToFirstAudioMs} ms`);
  // The output was heard: the player reported audio played, after the first delta came.
  assert.ok(m.timeToFirstSoundMs >= m.timeToFirstAudioMs, `time to first sound ${m.timeToFirstSoundMs} ms`);
  assert.ok(m.costUsd > 0, `cost so far ${m.costUsd}`);
  assert.equal(m.protocolErrors, 0);

  // End interview: the page disconnects and shows the transcript saved on the server.
  await b.click("[data-testid=end]");
  const saved = await b.waitFor(() => document.body.dataset.saved, 15_000);
  assert.equal(saved, "yes");
  const f = await rvFacts(b);
  assert.equal(f.body.state, "closed");
  assert.ok(f.saved.user >= 1 && f.saved.assistant >= 1, `saved turns: ${JSON.stringify(f.saved)}`);
  const shown = await b.eval(() => document.querySelectorAll("[data-testid=saved-turns] li").length);
  const server = await savedInterview(interviewId);
  assert.equal(shown, server.turns.length, "the page shows every saved turn");
  assert.ok(server.turns.some((t) => t.role === "user" && t.text.length > 0));
  assert.ok(server.turns.some((t) => t.role === "assistant" && t.text.length > 0));
  assert.ok(server.realtime_cost_usd > 0, `server-side cost ${server.realtime_cost_usd}`);
  // The client's estimate comes from the same response.done usage and price table as the server's bill.
  const client = (await b.eval(() => window.__rv.client.metrics())).costUsd;
  assert.ok(Math.abs(client - server.realtime_cost_usd) <= 0.01 * server.realtime_cost_usd + 1e-9,
    `client cost estimate $${client} vs server bill $${server.realtime_cost_usd}`);
  if (engine === "chromium") assert.ok(server.turns.some((t) => t.role === "user" && /s of speech/.test(t.text)), "a spoken turn was transcribed");
}, { timeoutMs: 90_000 });
