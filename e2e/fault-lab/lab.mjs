// The network fault lab's E2E pieces: the fault proxy's control API (fault-proxy/README.md), the
// demo page loaded THROUGH a proxy (page, /dev/token and the WebSocket share the faulty path), a
// timestamped status record kept in the page, the assertions every fault scenario makes, and the
// recovery-time rows the report prints (scripts/fault-lab-report.mjs).
//
// A scenario's shape: `lab.start()` creates an interview on the server, a proxy in front of it,
// opens the page through the proxy (the demo's token provider then fetches a fresh token from
// /dev/token through the proxy before every reconnect), connects, lets the greeting finish, opens
// the microphone and waits until the interviewer is mid-answer. Then the scenario injects its
// fault, lifts it, and `lab.recovered()` / `lab.continues()` / `lab.checkAudio()` assert the
// outcome. Every wait is a condition with a timeout; loops are bounded.
import assert from "node:assert/strict";
import { test } from "node:test";
import { appendFile, readFile } from "node:fs/promises";
import { join } from "node:path";
import { scenario, waitState, rvFacts, SERVER } from "../support.mjs";
import { OUTPUT } from "../browsers.mjs";

export const FAULT_PROXY = process.env.RV_FAULT_PROXY ?? null;
export const ROWS = join(OUTPUT, "fault-lab.jsonl");

// The client's defaults (src/session/config.rs, connection.rs) that bound recovery.
export const DEAD_LINK_MS = 10_000;
export const BACKOFF_CEILING_MS = 8_000;
export const CONNECT_TIMEOUT_MS = 10_000;
export const MAX_BACKLOG_MS = 10_000;
export const MARGIN_MS = 5_000;

// ---- the fault proxy's control API ----------------------------------------------------------
async function control(method, path, body) {
  if (!FAULT_PROXY) throw new Error("RV_FAULT_PROXY is not set: run through fault-proxy/with-fault-proxy.sh (make test-e2e / test-faults)");
  const r = await fetch(FAULT_PROXY + path, {
    method, body: body === undefined ? undefined : JSON.stringify(body),
    headers: body === undefined ? {} : { "content-type": "application/json" },
  });
  const j = await r.json().catch(() => ({}));
  if (!r.ok) throw new Error(`fault-proxy ${method} ${path}: ${r.status} ${j.error ?? ""}`);
  return j;
}

/** A proxy in front of `upstream` (an http://127.0.0.1:PORT URL). */
export async function newProxy(upstream) {
  const { id, port } = await control("POST", "/proxies", { upstream: new URL(upstream).host });
  return {
    id, port, url: `http://127.0.0.1:${port}`,
    faults: (f) => control("PUT", `/proxies/${id}/faults`, f),
    clear: () => control("PUT", `/proxies/${id}/faults`, {}),
    blackholeExisting: () => control("POST", `/proxies/${id}/blackhole-existing`),
    reset: () => control("POST", `/proxies/${id}/reset`),
    state: () => control("GET", `/proxies/${id}`),
    remove: () => control("DELETE", `/proxies/${id}`).catch(() => {}),
  };
}

/** A new interview and a dev token for it from the server at `base` (`POST /dev/token`). */
export async function tokenFrom(base, body = {}) {
  const r = await fetch(`${base}/dev/token`, { method: "POST", headers: { "content-type": "application/json" }, body: JSON.stringify(body) });
  if (!r.ok) throw new Error(`POST ${base}/dev/token answered ${r.status}`);
  return r.json();
}

// ---- in-page record ---------------------------------------------------------------------------
/** Installs `window.__fl`: every status with its wall-clock time, and every error code. */
const install = () => {
  if (window.__fl) return true;
  const fl = window.__fl = { statuses: [], errors: {}, everFailed: null, frames: [] };
  window.__rv.client.on("status", (s) => {
    fl.statuses.push({ state: s.state, reason: s.reason, detail: s.detail, closeCode: s.closeCode, attempt: s.attempt, t: Date.now() });
    if (fl.statuses.length > 300) fl.statuses.splice(0, 100);
    if (s.state === "failed" && !fl.everFailed) fl.everFailed = { reason: s.reason, detail: s.detail, closeCode: s.closeCode };
  });
  window.__rv.client.on("error", (e) => { fl.errors[e.code] = (fl.errors[e.code] ?? 0) + 1; });
  // Server events with their arrival time (bounded): the evidence for a dead-link verdict.
  window.__rv.client.on("event", (e) => {
    const last = fl.frames[fl.frames.length - 1];
    if (last && last.type === e.type) { last.n += 1; last.t1 = Date.now(); } else fl.frames.push({ type: e.type, n: 1, t: Date.now(), t1: Date.now() });
    if (fl.frames.length > 200) fl.frames.splice(0, 50);
  });
  return true;
};

/**
 * Debug only (FAULT_LAB_FRAMES=1): samples every 250 ms the page's WebSocket `bufferedAmount`
 * (largest seen after a send in the window) and the client's frame and backlog counters, to show
 * why a link was declared dead. Observes `WebSocket.prototype.send`; changes nothing it passes.
 */
const traceSocket = () => {
  const fl = window.__fl;
  fl.trace = [];
  let maxBuf = 0;
  const send = WebSocket.prototype.send;
  WebSocket.prototype.send = function (d) { const r = send.call(this, d); maxBuf = Math.max(maxBuf, this.bufferedAmount); return r; };
  setInterval(() => {
    const m = window.__rv.client.metrics();
    fl.trace.push({ t: Date.now(), buf: maxBuf, fr: m.framesReceived, bl: m.bufferedAudioMs, sent: m.sentAudioMs });
    maxBuf = 0;
    if (fl.trace.length > 600) fl.trace.splice(0, 100);
  }, 250);
  return true;
};

const snapshot = () => {
  const rv = window.__rv, fl = window.__fl;
  const m = rv.client.metrics();
  const assistantLines = [...document.querySelectorAll("[data-testid=transcript] li.assistant .text")].map((e) => e.textContent);
  return {
    state: document.body.dataset.state, interviewId: rv.interviewId,
    outputHeard: rv.outputHeard, transcripts: { ...rv.transcripts }, speech: { ...rv.speech },
    created: rv.eventTypes["response.created"] ?? 0, done: rv.eventTypes["response.done"] ?? 0,
    lastAssistant: assistantLines[assistantLines.length - 1] ?? null,
    metrics: m, statuses: fl ? fl.statuses.slice() : [], errors: fl ? { ...fl.errors } : {}, everFailed: fl?.everFailed ?? null,
  };
};

const seqText = (statuses, t0 = null) => statuses.map((s) => `${t0 != null ? `[${((s.t - t0) / 1000).toFixed(1)}] ` : ""}${s.state}${s.detail ? `(${s.detail}${s.closeCode != null ? ` ${s.closeCode}` : ""})` : s.closeCode != null ? `(${s.closeCode})` : ""}`).join(" → ");

// ---- one scenario ----------------------------------------------------------------------------
/**
 * Declares a fault scenario per engine (like `scenario`), with a recovery row written whatever the
 * outcome. `body(lab, b, engine)`.
 */
export function faultScenario(name, title, body, opts = {}) {
  if (!FAULT_PROXY) {
    // Not silently green: the run says why these did not run.
    test(title, { skip: "RV_FAULT_PROXY is not set (run through fault-proxy/with-fault-proxy.sh)" }, () => {});
    return;
  }
  scenario(name, title, async (b, engine) => {
    const lab = new Lab(b, engine, name);
    let error = null;
    try {
      await body(lab, b, engine);
    } catch (e) {
      error = e;
      throw e;
    } finally {
      await lab.finish(error);
    }
  }, opts);
}

export class Lab {
  constructor(b, engine, name) {
    this.b = b; this.engine = engine; this.name = name;
    this.row = { scenario: name, engine, result: "fail", detectMs: null, recoveryMs: null, budgetMs: null, reconnects: null, deadLinks: null, droppedMs: null, sequence: "", note: "" };
    this.proxy = null; this.cleanups = [];
  }

  /**
   * Interview + proxy + page through the proxy, connected, greeting over, microphone open and the
   * interviewer mid-answer. `upstream` defaults to the suite's server.
   */
  async start({ upstream = SERVER, midAnswer = true } = {}) {
    const { b } = this;
    const t = await tokenFrom(upstream);
    this.interviewId = t.interview_id;
    this.proxy = await newProxy(upstream);
    this.cleanups.push(() => this.proxy.remove());
    // No ?token=: the page's token provider fetches a fresh one from its own origin (the proxy).
    await b.goto(`${this.proxy.url}/?interview=${encodeURIComponent(t.interview_id)}&muted=1`);
    const ready = await b.waitFor(() => document.body.dataset.wasm !== "loading" && document.body.dataset.wasm, 20_000);
    assert.equal(ready, "ready", "the page loaded through the proxy got ready");
    await b.eval(install);
    if (process.env.FAULT_LAB_FRAMES) await b.eval(traceSocket);
    await b.click("[data-testid=voice-mode]");
    await waitState(b, "connected", 20_000);
    // The greeting is spoken and done: the interview has a line behind it, so a resumed
    // connection is told apart from a new interview ("Welcome back", not the greeting again).
    await b.waitFor(() => window.__rv.outputHeard >= 5 && (window.__rv.eventTypes["response.done"] ?? 0) >= 1, 30_000);
    await b.click("[data-testid=mute]"); // microphone on: the accounting has something to count
    await b.waitFor(() => window.__rv.speech.user >= 1, 15_000);
    if (midAnswer) await this.midAnswer();
    this.before = await this.snap();
  }

  /** Waits until a response is in progress and audible (Chromium's mic.wav ends turns by itself). */
  async midAnswer() {
    const { b } = this;
    const inProgress = () => (window.__rv.eventTypes["response.created"] ?? 0) > (window.__rv.eventTypes["response.done"] ?? 0);
    if (this.engine !== "chromium" || !(await b.waitFor(inProgress, 10_000).catch(() => false))) {
      await this.say("I build realtime audio software.");
    }
    const heard = await b.eval(() => window.__rv.outputHeard);
    await b.waitFor((n) => window.__rv.outputHeard >= n + 3 && (window.__rv.eventTypes["response.created"] ?? 0) > (window.__rv.eventTypes["response.done"] ?? 0), 20_000, heard);
  }

  /** Types a turn (the interviewer answers it with audio). */
  async say(text) {
    await this.b.waitFor(() => !document.querySelector("[data-testid=text-input]").disabled, 10_000);
    await this.b.type("[data-testid=text-input]", text);
    await this.b.press("[data-testid=text-input]", "Enter");
  }

  snap() { return this.b.eval(snapshot); }

  /** Marks the fault's start (times in the status sequence are relative to it); returns it. */
  mark() { this.faultT = Date.now(); return this.faultT; }

  /**
   * Keeps a fault in place for `ms` (the scenario's definition of the outage, not a stand-in for
   * synchronisation), checking the page every 250 ms so a `failed` client ends the test at once.
   */
  async hold(ms) {
    const until = Date.now() + ms;
    while (Date.now() < until) {
      const failed = await this.b.eval(() => window.__fl.everFailed);
      if (failed) throw new Error(`the client failed during the fault: ${JSON.stringify(failed)}; statuses: ${seqText((await this.snap()).statuses)}`);
      await new Promise((r) => setTimeout(r, Math.min(250, Math.max(0, until - Date.now())))); // the outage's length
    }
  }

  /**
   * After a short outage (lifted at `liftT`, before the dead-link timeout): either the link held
   * (no `reconnecting` since `faultT`) and server frames flow again within `budgetMs` of the lift,
   * or the client reconnected within it. Then the mic backlog drains. `frames0` is the count of
   * frames received before the lift: read after it, the frames the outage held back may already
   * be in, and an answer that ended meanwhile sends no more.
   */
  async resumed({ faultT, liftT, budgetMs, frames0 }) {
    const t = await this.b.waitFor((f0, since) => {
      if (window.__fl.everFailed) return { failed: window.__fl.everFailed };
      if (window.__fl.statuses.some((s) => s.state === "reconnecting" && s.t >= since)) return { reconnected: true };
      return window.__rv.client.metrics().framesReceived > f0 && { t: Date.now() };
    }, budgetMs + 2_000, frames0, faultT);
    if (t.failed) throw new Error(`the client failed: ${JSON.stringify(t.failed)}`);
    if (t.reconnected) {
      this.row.note = "reconnected (link not held)";
      return this.reconnected({ faultT, liftT, budgetMs: BACKOFF_CEILING_MS + MARGIN_MS });
    }
    this.row.note = "link held";
    this.row.recoveryMs = t.t - liftT;
    this.row.budgetMs = budgetMs;
    assert.ok(this.row.recoveryMs <= budgetMs, `frames flow again ${this.row.recoveryMs} ms after the lift (budget ${budgetMs} ms)`);
    return t.t;
  }

  /** Waits until the mic backlog is sent (bufferedAudioMs ≤ 300) and returns when, node time. */
  async drained(timeoutMs = 20_000) {
    await this.b.waitFor(() => window.__rv.client.metrics().bufferedAudioMs <= 300, timeoutMs);
    return Date.now();
  }

  /** The browser goes offline / online: Chromium emulates it; elsewhere the window's events. */
  async setOffline(offline) {
    if (this.b.setOffline) return this.b.setOffline(offline);
    return this.b.eval((off) => { window.dispatchEvent(new Event(off ? "offline" : "online")); return true; }, offline);
  }

  /** No `reconnecting` (or worse) since `sinceT`: the link held through the condition. */
  async assertHeld(sinceT, what) {
    const s = await this.snap();
    const bad = s.statuses.filter((x) => x.t >= sinceT && x.state !== "connected");
    assert.equal(bad.length, 0, `the link held through ${what}: ${seqText(s.statuses, this.faultT ?? null)}; errors ${JSON.stringify(s.errors)}`);
  }

  /** Waits for `state` and returns the page's wall-clock time it was first entered after `sinceT`. */
  async stateAfter(state, sinceT, timeoutMs) {
    return this.b.waitFor((st, since) => window.__fl.statuses.find((s) => s.state === st && s.t >= since)?.t
      ?? (window.__fl.everFailed ? -1 : 0), timeoutMs, state, sinceT).then((t) => {
      if (t === -1) return this.snap().then((s) => { throw new Error(`the client failed: ${JSON.stringify(s.everFailed)}; statuses: ${seqText(s.statuses)}`); });
      return t;
    });
  }

  /**
   * The client went `reconnecting` after `faultT` and is `connected` again within `budgetMs` of
   * `fromT` (when the fault was lifted; the detection time when later). Records the times.
   */
  async reconnected({ faultT, liftT = null, budgetMs, detectBudgetMs = DEAD_LINK_MS + MARGIN_MS }) {
    const detectT = await this.stateAfter("reconnecting", faultT, liftT ? Math.max(detectBudgetMs, liftT - Date.now() + detectBudgetMs) : detectBudgetMs);
    this.row.detectMs = detectT - faultT;
    if (liftT === null) liftT = detectT;
    const waitLift = Math.max(0, liftT - Date.now());
    const from = Math.max(liftT, detectT);
    const connectedT = await this.stateAfter("connected", detectT, waitLift + budgetMs + 2_000);
    this.row.recoveryMs = connectedT - from;
    this.row.budgetMs = budgetMs;
    assert.ok(this.row.recoveryMs <= budgetMs, `connected again ${this.row.recoveryMs} ms after the fault was lifted/detected (budget ${budgetMs} ms)`);
    return connectedT;
  }

  /**
   * The interview goes on after recovery: the same interview, the interviewer speaks again (audio
   * heard, a new final assistant line), which is the resumed interview's next line, not a new
   * interview's greeting.
   */
  async continues({ resumed = true } = {}) {
    const { b } = this;
    const s0 = await this.snap();
    assert.equal(s0.interviewId, this.interviewId);
    const newLine = (n, heard) => window.__rv.transcripts.assistant > n && window.__rv.outputHeard >= heard + 5;
    let ok = await b.waitFor(newLine, 15_000, s0.transcripts.assistant, s0.outputHeard).catch(() => false);
    if (!ok) {
      await this.say("Sorry, the line dropped. Could you repeat that?");
      ok = await b.waitFor(newLine, 25_000, s0.transcripts.assistant, s0.outputHeard);
    }
    const s = await this.snap();
    if (resumed) {
      assert.ok(s.lastAssistant && !/^Hello, I am your interviewer/.test(s.lastAssistant),
        `the interviewer's line after recovery is the resumed interview's, not a new greeting: "${s.lastAssistant}"`);
    }
    this.row.note ||= s.lastAssistant ? `then: "${s.lastAssistant.slice(0, 40)}"` : "";
    return s;
  }

  /**
   * Mic accounting: captured = sent + buffered + dropped (each figure floored to ms apart), and no
   * audio dropped, by the client or the server's rate limit, when `lossless` (the outage fit within
   * maxBacklogMs).
   */
  async checkAudio({ lossless }) {
    const { metrics: m, errors: errs } = await this.snap();
    const gap = m.capturedAudioMs - (m.sentAudioMs + m.bufferedAudioMs + m.droppedAudioMs + (m.discardedAudioMs ?? 0));
    assert.ok(m.capturedAudioMs > 1000, `microphone audio was captured (${m.capturedAudioMs} ms)`);
    assert.ok(Math.abs(gap) <= 3, `captured ${m.capturedAudioMs} = sent ${m.sentAudioMs} + buffered ${m.bufferedAudioMs} + dropped ${m.droppedAudioMs} (off by ${gap} ms)`);
    if (lossless) {
      assert.equal(m.droppedAudioMs, 0, `no audio dropped within maxBacklogMs (dropped ${m.droppedAudioMs} ms)`);
      // Nor by the server: the appends a stalled path held arrive at once when it recovers.
      assert.ok(!errs.rate_limit_exceeded, `the server refused none of the audio (errors: ${JSON.stringify(errs)})`);
    } else if (m.droppedAudioMs > 0) {
      assert.ok(errs.audio_overflow >= 1, `dropped audio (${m.droppedAudioMs} ms) was reported (errors: ${JSON.stringify(errs)})`);
    }
    return m;
  }

  async finish(error) {
    try {
      const s = await this.snap();
      this.row.sequence = seqText(s.statuses, this.faultT ?? null);
      this.row.socketBufferedMaxBytes = s.metrics.socketBufferedMaxBytes;
      if (process.env.FAULT_LAB_FRAMES && this.faultT) {
        const frames = await this.b.eval(() => window.__fl.frames);
        this.row.frames = frames.filter((f) => f.t1 >= this.faultT - 8000 && f.t <= this.faultT + 30000)
          .map((f) => `[${((f.t - this.faultT) / 1000).toFixed(1)}..${((f.t1 - this.faultT) / 1000).toFixed(1)}] ${f.type}×${f.n}`).join(" ");
        const trace = await this.b.eval(() => window.__fl.trace ?? []);
        this.row.trace = trace.filter((x) => x.t >= this.faultT - 8000 && x.t <= this.faultT + 30000)
          .map((x) => `${((x.t - this.faultT) / 1000).toFixed(1)}:buf${x.buf}/fr${x.fr}/bl${x.bl}`).join(" ");
        this.row.errors = s.errors;
        this.row.lastCloseReason = s.metrics.lastCloseReason;
      }
      this.row.reconnects = s.metrics.reconnects;
      this.row.deadLinks = s.metrics.deadLinks;
      this.row.droppedMs = s.metrics.droppedAudioMs;
      this.row.closeCode = s.metrics.lastCloseCode;
      if (error === null && s.everFailed) error = new Error(`the client was failed at some point: ${JSON.stringify(s.everFailed)}`);
      if (error === null) assert.ok(!s.statuses.some((x) => x.state === "failed"), `no failed state: ${this.row.sequence}`);
      // Which side ended a connection, and why, for a failure that CI shows only once.
      if (error !== null) this.row.serverEnds = await serverEnds(this.interviewId, this.faultT ?? Date.now());
    } catch (e) {
      error ??= e;
      this.row.note = `${this.row.note} (facts unavailable: ${String(e).slice(0, 80)})`;
    }
    for (const c of this.cleanups.reverse()) { try { await c(); } catch { /* best effort */ } }
    this.row.result = error ? "fail" : "pass";
    if (error) this.row.error = String(error.message ?? error).split("\n")[0].slice(0, 300);
    await appendFile(ROWS, `${JSON.stringify(this.row)}\n`);
    if (error) throw error;
  }
}

/**
 * The suite's server's "connection ended" log lines for `interviewId` (scripts/with-server.sh
 * logs to target/test-server-PORT.log), as "t: conn N reason" with t in s from `t0`: whether the
 * server ended a connection (a send timeout, the idle timeout) or saw the client go.
 */
async function serverEnds(interviewId, t0) {
  const log = await readFile(`target/test-server-${new URL(SERVER).port}.log`, "utf8").catch(() => "");
  return log.split("\n").flatMap((line) => {
    let e;
    try { e = JSON.parse(line); } catch { return []; }
    if (e.interview_id !== interviewId || e.msg !== "connection ended") return [];
    return [`${((e.ts_ms - t0) / 1000).toFixed(1)}: conn ${e.conn} ${e.end}`];
  }).join("; ");
}

/** True until the client has been `failed` (for a final check in long waits). */
export const neverFailed = (b) => b.eval(() => !window.__fl.everFailed);
export { rvFacts };

// ---- a server of the test's own (the restart scenario) ----------------------------------------
/** A free loopback port. */
export async function freePort() {
  const net = await import("node:net");
  return new Promise((res, rej) => {
    const srv = net.createServer();
    srv.on("error", rej);
    srv.listen(0, "127.0.0.1", () => { const p = srv.address().port; srv.close(() => res(p)); });
  });
}

/**
 * Starts the reference server (`--dev`) on `port` with its own DATABASE_PATH; resolves when
 * /health answers. `kill()` ends it with SIGKILL (a crash: no close frames); restart it with the
 * same arguments to get the same database back.
 */
export async function ownServer({ port, databasePath }) {
  const { spawn } = await import("node:child_process");
  const root = new URL("../../", import.meta.url).pathname;
  const bin = process.env.SERVER_BIN ?? `${root}target/debug/realtime-voice-server`;
  const child = spawn(bin, ["--dev"], {
    env: { ...process.env, PORT: String(port), STATIC_ROOT: root, DATABASE_PATH: databasePath },
    stdio: ["ignore", "ignore", "pipe"],
  });
  let stderr = "";
  child.stderr.on("data", (d) => { stderr = (stderr + d).slice(-4000); });
  const exited = new Promise((res) => { child.once("exit", (c, sig) => res(c ?? sig)); child.once("error", (e) => { stderr += String(e); res(-1); }); });
  const url = `http://127.0.0.1:${port}`;
  const deadline = Date.now() + 15_000;
  for (;;) {
    const code = await Promise.race([exited, new Promise((r) => setTimeout(() => r(undefined), 100))]); // readiness poll interval
    if (code !== undefined) throw new Error(`server on ${port} exited with ${code}: ${stderr}`);
    try { if ((await fetch(`${url}/health`)).ok) break; } catch { /* not listening yet */ }
    if (Date.now() > deadline) { child.kill("SIGKILL"); throw new Error(`server on ${port} not ready after 15 s: ${stderr}`); }
  }
  return {
    url,
    async kill() { if (child.exitCode === null && child.signalCode === null) { child.kill("SIGKILL"); await exited; } },
  };
}
