// Shared pieces of the E2E scenarios: the reference server's dev routes (tokens, faults, what a
// connection received, the saved interview), a wrapper that runs one scenario in one engine with
// a screenshot of its final state and the page's facts attached to any failure, and small
// predicates evaluated in the page. Every wait is on a condition with a timeout, never a sleep.
import { test } from "node:test";
import { rm } from "node:fs/promises";
import { join } from "node:path";
import { open, ENGINES, SERVER, OUTPUT } from "./browsers.mjs";

export { ENGINES, SERVER };

async function json(method, path, body, headers = {}) {
  const r = await fetch(`${SERVER}${path}`, {
    method,
    headers: body === undefined ? headers : { "content-type": "application/json", ...headers },
    body: body === undefined ? undefined : JSON.stringify(body),
  });
  const text = await r.text();
  let parsed = null;
  try { parsed = JSON.parse(text); } catch { /* not JSON: kept as text below */ }
  if (!r.ok) throw new Error(`${method} ${path} answered ${r.status}: ${text.slice(0, 200)}`);
  return parsed;
}

/** A new interview and a dev token for it: `{token, interview_id, user_id}`. */
export const devToken = (body = {}) => json("POST", "/dev/token", body);
/** Arms a fault for the interview's next connection (see server/src/faults.rs). */
export const armFault = (fault) => json("POST", "/dev/faults", fault);
/** What the interview's current or last connection received (appends, PCM, errors sent). */
export const received = (interviewId) => json("GET", `/dev/interviews/${encodeURIComponent(interviewId)}/received`);
/** The interview as the REST API returns it (turns, cost), read with a fresh token of its user. */
export async function savedInterview(interviewId, userId = "dev-user") {
  const { token } = await devToken({ interview_id: interviewId, user_id: userId });
  return json("GET", `/api/v1/interviews/${encodeURIComponent(interviewId)}`, undefined, { authorization: `Bearer ${token}` });
}

/** RMS in dBFS of base64 PCM16 LE (what the server received from the microphone). */
export function pcmRmsDbfs(b64) {
  const buf = Buffer.from(b64 ?? "", "base64");
  const n = Math.floor(buf.length / 2);
  if (n === 0) return -Infinity;
  let sum = 0;
  for (let i = 0; i < n; i++) { const s = buf.readInt16LE(2 * i) / 32768; sum += s * s; }
  return 10 * Math.log10(sum / n + 1e-20);
}

/** The demo page URL with query parameters. */
export function pageUrl(params = {}) {
  const q = new URLSearchParams(Object.entries(params).filter(([, v]) => v != null)).toString();
  return `${SERVER}/${q ? `?${q}` : ""}`;
}

/** In the page: records when each `input_audio_buffer.append` is handed to a WebSocket, on
 *  `performance.now()` (the clock the client paces its chunks on), into `window.__rvAppendSends`.
 *  The pacing rule is the sender's; what the server counts on arrival carries the machine's
 *  jitter. Evaluate before the client connects. */
export const recordAppendSends = () => {
  const p = WebSocket.prototype;
  if (!p.__rvSend) p.__rvSend = p.send;
  const log = (window.__rvAppendSends = []);
  p.send = function (data) {
    if (typeof data === "string" && data.startsWith('{"type":"input_audio_buffer.append"')) log.push(performance.now());
    return p.__rvSend.call(this, data);
  };
};

/** In the page: the most appends `recordAppendSends` saw sent within any `windowMs`, and how
 *  many in all. */
export const appendSendsWithin = (windowMs) => {
  const t = window.__rvAppendSends ?? [];
  let most = 0;
  for (let first = 0, last = 0; last < t.length; last++) {
    while (t[last] - t[first] >= windowMs) first++;
    most = Math.max(most, last + 1 - first);
  }
  return { most, count: t.length };
};

/** A summary of the page's facts, attached to failures. */
export const facts = () => {
  const rv = window.__rv;
  if (!rv) return { noHooks: true, body: { ...document.body.dataset } };
  return {
    body: { ...document.body.dataset },
    status: document.querySelector("[data-testid=status]")?.textContent,
    error: document.querySelector("[data-testid=error]")?.textContent,
    statuses: rv.statuses.slice(-12),
    transcripts: rv.transcripts, speech: rv.speech,
    outputHeard: rv.outputHeard, inputHeard: rv.inputHeard, outputLevels: rv.outputLevels, inputLevels: rv.inputLevels,
    maxInputDbfs: rv.maxInputDbfs, maxOutputDbfs: rv.maxOutputDbfs,
    errors: rv.errors.slice(-10), eventTypes: rv.eventTypes, saved: rv.saved,
    metrics: rv.metrics && { attempts: rv.metrics.connectionAttempts, successes: rv.metrics.connectionSuccesses, reconnects: rv.metrics.reconnects, lastCloseCode: rv.metrics.lastCloseCode },
  };
};

/**
 * Declares one test per engine running `body(b, engine)` on a fresh browser. The final state is
 * screenshotted as e2e/output/<name>-<engine>.png whatever the outcome; on failure the page's
 * facts, its console and the engine's own stderr are added to the error. `browser` is passed to
 * `open` (e.g. `realDevices`).
 *
 * A WebKit run whose web process crashed (MiniBrowser reports "WebProcess CRASHED": GLib's setuid
 * race that scripts/retry-engine-crash.sh describes, or another crash inside the engine) runs once
 * more on a fresh browser, the crash's stderr printed as a diagnostic; a second crash, and any
 * other failure, fails at once: a crash is the engine's fault, but one the page sets off every
 * time still fails the scenario.
 */
export function scenario(name, title, body, { engines = ENGINES, timeoutMs = 60_000, browser = {} } = {}) {
  for (const engine of engines) {
    test(`${engine}: ${title}`, { timeout: engine === "webkit" ? 2 * timeoutMs : timeoutMs }, async (t) => {
      for (let attempt = 1; ; attempt++) {
        try {
          return await runScenario(name, engine, body, timeoutMs, browser);
        } catch (e) {
          if (attempt > 1 || !ENGINE_CRASH.test(e.engineLog ?? "")) throw e;
          t.diagnostic(`WebKit's web process crashed: the scenario runs once more; the engine's stderr (tail): ${e.engineLog.trim().split("\n").filter(Boolean).slice(-8).join(" | ")}`);
        }
      }
    });
  }
}

const ENGINE_CRASH = /WebProcess CRASHED|getauxval \(\) failed/;

async function runScenario(name, engine, body, timeoutMs, browser) {
  const b = await open(engine, browser);
  try {
    await rm(join(OUTPUT, `${name}-${engine}-FAILED.png`), { force: true });
    // Give up a little before the test's own timeout, so the browser is still closed below.
    let timer;
    const giveUp = new Promise((_, reject) => {
      timer = setTimeout(() => reject(new Error(`scenario still running after ${timeoutMs - 5000} ms`)), timeoutMs - 5000);
    });
    try { await Promise.race([body(b, engine), giveUp]); } finally { clearTimeout(timer); }
    if (b.finalShot !== false) await b.screenshot(`${name}-${engine}`);
  } catch (e) {
    let page = "";
    try { page = JSON.stringify(await b.eval(facts), null, 1); } catch (f) { page = `(facts unavailable: ${f})`; }
    try {
      await Promise.race([b.screenshot(`${name}-${engine}-FAILED`), new Promise((r) => setTimeout(r, 5000))]);
    } catch { /* the browser may be gone */ }
    const engineLog = b.engineLog();
    e.message += `\npage facts: ${page}\nconsole:\n${b.logs.slice(-30).join("\n")}`;
    if (engineLog) e.message += `\nengine stderr (tail):\n${engineLog.slice(-2000)}`;
    if (e && typeof e === "object") e.engineLog = engineLog;
    throw e;
  } finally {
    await b.close();
  }
}

/**
 * For `b.eval`: keeps every stream getUserMedia gives in `__e2eSpy.streams` (on the prototype:
 * WebKit may swap the wrapper). Firefox: geckodriver's sandbox patches nothing the page sees.
 */
export const spyOnGetUserMedia = () => {
  const p = MediaDevices.prototype;
  const spy = { streams: [], gum: p.getUserMedia };
  globalThis.__e2eSpy = spy;
  p.getUserMedia = function (c) {
    return spy.gum.call(this, c).then((s) => { spy.streams.push(s); return s; });
  };
  return true;
};

/** Opens the page and waits until the client is constructed (`__rv.ready`). */
export async function openPage(b, params = {}) {
  await b.goto(pageUrl(params));
  const ready = await b.waitFor(() => document.body.dataset.wasm !== "loading" && document.body.dataset.wasm, 20_000);
  if (ready !== "ready") {
    const why = await b.eval(() => `${document.querySelector("[data-testid=status]")?.textContent} ${document.querySelector("[data-testid=error]")?.textContent}`);
    throw new Error(`the page did not get ready (${ready}): ${why}`);
  }
}

/** Waits until the page's client state is `state` (any of them when an array), returns it. */
export function waitState(b, state, timeoutMs = 15_000) {
  const states = Array.isArray(state) ? state : [state];
  return b.waitFor((s) => s.includes(document.body.dataset.state) && document.body.dataset.state, timeoutMs, states);
}

/** The status badge's text. */
export const statusText = (b) => b.eval(() => document.querySelector("[data-testid=status]").textContent);
/** A copy of `window.__rv`'s plain facts. */
export const rvFacts = (b) => b.eval(facts);

/**
 * Starts a second reference server (`--dev`) with extra environment, e.g. the realtime feature
 * flag off, on a free port; resolves once /health answers. Returns `{url, stop}`.
 */
export async function startServer(env = {}) {
  const { spawn } = await import("node:child_process");
  const net = await import("node:net");
  const root = new URL("../", import.meta.url).pathname;
  const bin = process.env.SERVER_BIN ?? `${root}target/debug/realtime-voice-server`;
  const port = await new Promise((res, rej) => {
    const s = net.createServer();
    s.on("error", rej);
    s.listen(0, "127.0.0.1", () => { const p = s.address().port; s.close(() => res(p)); });
  });
  const child = spawn(bin, ["--dev"], {
    env: { ...process.env, PORT: String(port), STATIC_ROOT: root, DATABASE_PATH: "", ...env },
    stdio: ["ignore", "ignore", "pipe"],
  });
  let stderr = "";
  child.stderr.on("data", (d) => { stderr = (stderr + d).slice(-4000); });
  const exited = new Promise((res) => {
    child.once("exit", (code) => res(code));
    child.once("error", (e) => { stderr += String(e); res(-1); }); // e.g. no binary: make server builds it
  });
  const url = `http://127.0.0.1:${port}`;
  const deadline = Date.now() + 15_000;
  for (;;) {
    const code = await Promise.race([exited, new Promise((r) => setTimeout(() => r(undefined), 100))]); // readiness poll interval
    if (code !== undefined) throw new Error(`second server exited with ${code}: ${stderr}`);
    try { if ((await fetch(`${url}/health`)).ok) break; } catch { /* not listening yet */ }
    if (Date.now() > deadline) { child.kill(); throw new Error(`second server not ready after 15 s: ${stderr}`); }
  }
  return {
    url,
    async stop() { if (child.exitCode === null) { child.kill("SIGTERM"); await exited; } },
  };
}
