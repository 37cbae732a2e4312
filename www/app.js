// Demo page of realtime-voice: a voice interview that uses the package exactly as an app would
// (`/pkg/realtime_voice.js`, the built npm package). Plain ES module, no bundler, no inline script
// or style (the server sends a strict CSP). Query parameters:
//   ?backend=  base URL of the backend (default: this page's origin; another origin is honoured
//              only when the server says it runs in dev mode, /demo-config.json)
//   ?interview= and ?token=  an existing interview and its JWT (default: a new interview and a dev
//              token from POST {backend}/dev/token, refreshed through a token provider)
//   ?user=     user id for the dev token (the rollout bucket depends on it)
//   ?muted=1   start with the microphone muted; ?mode=text start in text mode;
//   ?protocol=beta|ga  shape of session.update; ?auth=subprotocol  token in the subprotocol;
//   ?prebuffer=ms  playback pre-buffer (the client's prebufferMs); ?echoGuard=auto|off|raw|processed;
//   ?echoCanceller=browser|wasm|none; ?bargeInDuck=auto|off.
// Test hooks: data-testid attributes, document.body.dataset.{wasm,state,mode,saved} and
// window.__rv (counters of facts: transcripts, audible output, errors by code, statuses).
// Nothing here logs transcripts or tokens.
import init, { VoiceClient, version } from "/pkg/realtime_voice.js";

const $ = (id) => {
  const el = document.getElementById(id);
  if (!el) throw new Error(`demo page is missing #${id}`); // a bug in index.html, not user input
  return el;
};
const ui = {
  status: $("status"), error: $("error"), audioNote: $("audio-note"), version: $("version"), interview: $("interview"),
  voice: $("voice"), mute: $("mute"), interrupt: $("interrupt"), resume: $("resume"), end: $("end"),
  transcript: $("transcript"), speaking: $("speaking"),
  question: $("question"), questionText: $("question-text"),
  textForm: $("text-form"), textInput: $("text-input"), textSend: $("text-send"), textLabel: $("text-label"),
  levelIn: $("level-input"), levelInText: $("level-input-text"),
  levelOut: $("level-output"), levelOutText: $("level-output-text"),
  inputDevice: $("input-device"), outputDevice: $("output-device"), outputNote: $("output-device-note"),
  deviceNote: $("device-note"),
  inputFormat: $("input-format"),
  p50: $("m-p50"), p95: $("m-p95"), ttfa: $("m-ttfa"), underruns: $("m-underruns"),
  reconnects: $("m-reconnects"), cost: $("m-cost"),
  saved: $("saved"), savedSummary: $("saved-summary"), savedTurns: $("saved-turns"), savedHeading: $("saved-h"),
};

// ---- bounded bookkeeping --------------------------------------------------------------------
const MAX_TRANSCRIPT_ITEMS = 200; // DOM lines kept; older ones are removed (bounded memory)
const MAX_STATUSES = 64;
const MAX_ERRORS = 50;
const MAX_EVENT_TYPES = 128;
const AUDIBLE_DBFS = -60;

/** Facts for tests and the soak script; every collection in it is bounded. */
const rv = {
  ready: false,
  backend: null,
  interviewId: null,
  state: "idle",
  mode: "voice",
  modeReason: null,
  statuses: [],
  transcripts: { deltas: 0, finals: 0, user: 0, assistant: 0 },
  speech: { user: 0, assistant: 0 },
  inputLevels: 0, outputLevels: 0,
  inputHeard: 0, outputHeard: 0,
  maxInputDbfs: -Infinity, maxOutputDbfs: -Infinity,
  errors: [],
  errorCodes: {},
  eventTypes: {},
  metrics: null,
  audio: null,
  /** Device changes the client healed by itself (`audio` events with a reason; the last 20). */
  deviceChanges: [],
  saved: null,
  /** Questions the interviewer showed through the show_question tool, in order (bounded). */
  questions: [],
  client: null,
  wasmMemory: null,
  /** Wasm linear memory and (Chromium only) JS heap, bytes. */
  memory() {
    const heap = performance.memory;
    return {
      wasmBytes: rv.wasmMemory ? rv.wasmMemory.buffer.byteLength : null,
      jsHeapUsedBytes: heap ? heap.usedJSHeapSize : null,
      jsHeapTotalBytes: heap ? heap.totalJSHeapSize : null,
      transcriptItems: ui.transcript.childElementCount,
    };
  },
  /** Asks the server for another input format (the format-mismatch scenario). */
  setInputFormat: (fmt) => requestInputFormat(fmt),
};
window.__rv = rv;

const pushBounded = (list, item, max) => {
  list.push(item);
  if (list.length > max) list.splice(0, list.length - max);
};

// ---- words for states, reasons and codes ----------------------------------------------------
const CLOSE_WORDS = {
  1000: "closed normally", 1001: "server going away", 1006: "connection lost",
  1008: "authentication failed", 1009: "message too big", 1011: "server error",
  1013: "server busy, try again later", 4403: "voice disabled for this account",
  4409: "interview open elsewhere", 4429: "rate limit exceeded",
};
const DETAIL_WORDS = {
  connection_lost: "connection lost", handshake_rejected: "the server refused the connection",
  going_away: "server going away", session_expired: "session expired", server_error: "server error",
  try_again_later: "server busy", rate_limited: "rate limit exceeded", closed: "connection closed",
  connect_timeout: "connection timed out", token_refresh: "refreshing the token", token_rejected: "token rejected",
  token_provider_failed: "could not get a token", duplicate_connection: "interview open elsewhere",
  server_closed: "the server ended the session", client_disconnect: "you disconnected", online: "browser back online",
  offline: "browser offline", other_tab: "interview open in another tab",
};
const MODE_WORDS = {
  requested: "text mode requested", realtime_disabled: "voice is not enabled for this account",
  mic_denied: "microphone permission denied", mic_absent: "no microphone found",
  no_audio_worklet: "this browser lacks AudioWorklet", audio_context_failed: "audio could not start",
  reconnect_exhausted: "voice connection could not be restored", track_ended: "the microphone stopped",
  audio_failed: "audio could not start",
};
const words = (table, key) => (key == null ? "" : table[key] ?? String(key).replace(/_/g, " "));

/** The status badge text: what a user needs to know, in words, with the close code. */
export function describeStatus(s, modeReason) {
  const code = s.closeCode != null ? ` (${s.closeCode})` : "";
  switch (s.state) {
    case "idle": return "Ready — press Voice Mode to start";
    case "connecting": return s.attempt > 1 ? `Connecting… (attempt ${s.attempt})` : "Connecting…";
    case "connected": return "Connected";
    case "reconnecting": {
      const why = words(DETAIL_WORDS, s.detail) || words(CLOSE_WORDS, s.closeCode) || "connection lost";
      return `Reconnecting… ${why}${code}, attempt ${s.attempt}`;
    }
    case "text": return `Text mode — ${words(MODE_WORDS, modeReason ?? s.detail ?? s.reason) || "voice unavailable"}`;
    case "closed": return "Disconnected";
    case "failed":
      switch (s.reason) {
        case "auth": return `Authentication failed${s.closeCode != null ? code : ` (${words(DETAIL_WORDS, s.detail) || "token"})`}`;
        case "busy": return `This interview is open in another tab${code}`;
        case "unsupported": return "Voice is not supported in this browser";
        case "network": return `Cannot reach the server${code}`;
        case "server": return `Server error${code}${s.detail ? `: ${words(DETAIL_WORDS, s.detail)}` : ""}`;
        case "internal": return "Voice stopped after an internal error — reload the page";
        default: return `Failed: ${words(DETAIL_WORDS, s.reason ?? s.detail) || "unknown"}${code}`;
      }
    default: return s.state;
  }
}

const badgeKind = (state) => ({ connected: "ok", text: "info", reconnecting: "warn", connecting: "warn", failed: "bad" }[state] ?? "idle");

// ---- query parameters -----------------------------------------------------------------------
const params = new URLSearchParams(location.search);
/** The backend: `?backend=` only when the server runs in dev mode or the URL is this page's own
 *  origin — on a real deployment a crafted link must not send the microphone elsewhere. */
async function chooseBackend(asked) {
  if (!asked) return location.origin;
  let url;
  try { url = new URL(asked, location.href); } catch { return location.origin; }
  if (url.origin === location.origin) return url.origin;
  let dev = false;
  try {
    const r = await fetch("/demo-config.json", { cache: "no-store" });
    dev = r.ok && (await r.json()).dev === true;
  } catch { dev = false; }
  return dev ? asked.replace(/\/+$/, "") : location.origin;
}
const backend = await chooseBackend(params.get("backend"));
const fixedToken = params.get("token");
let interviewId = params.get("interview");
const devUser = params.get("user");
const startMuted = params.get("muted") === "1";
const startMode = params.get("mode") === "text" ? "text" : "voice";
const protocol = params.get("protocol") === "beta" ? "beta" : "ga";
const authVia = params.get("auth") === "subprotocol" ? "subprotocol" : "query";
const prebufferMs = params.has("prebuffer") ? Number(params.get("prebuffer")) : undefined;
const echoGuard = params.get("echoGuard"); // the echo lab compares "off", "processed" and "auto"
const echoCanceller = params.get("echoCanceller"); // "wasm": the opt-in echo canceller
const bargeInDuck = params.get("bargeInDuck"); // the echo lab compares "auto" and "off"
rv.backend = backend;

// ---- tokens ---------------------------------------------------------------------------------
/** Asks the reference server (dev mode) for a token; creates the interview when none is given. */
async function devToken(forInterview) {
  const body = {};
  if (forInterview) body.interview_id = forInterview;
  if (devUser) body.user_id = devUser;
  const r = await fetch(`${backend}/dev/token`, {
    method: "POST", headers: { "content-type": "application/json" }, body: JSON.stringify(body),
  });
  if (!r.ok) throw new Error(`POST /dev/token answered ${r.status}`);
  const j = await r.json();
  if (typeof j.token !== "string" || typeof j.interview_id !== "string") throw new Error("POST /dev/token: unexpected answer");
  return j;
}

let firstToken = null;
/** The token for REST calls and for the client's provider: the fixed one, or a fresh dev token. */
async function currentToken() {
  if (fixedToken) return fixedToken;
  if (firstToken) { const t = firstToken; firstToken = null; return t; }
  return (await devToken(interviewId)).token;
}

// ---- UI helpers -----------------------------------------------------------------------------
function showError(text) {
  ui.error.textContent = text;
  ui.error.hidden = !text;
}

function setStatus(s) {
  rv.state = s.state;
  document.body.dataset.state = s.state;
  if (s.reason) document.body.dataset.reason = s.reason; else delete document.body.dataset.reason;
  if (s.closeCode != null) document.body.dataset.closeCode = String(s.closeCode); else delete document.body.dataset.closeCode;
  ui.status.textContent = describeStatus(s, rv.modeReason);
  ui.status.dataset.kind = badgeKind(s.state);
  const live = s.state === "connected" || s.state === "reconnecting" || s.state === "connecting";
  if (s.state !== "connected") {
    speaking.user = false;
    speaking.assistant = false;
    ui.speaking.textContent = "";
  }
  if (!live) {
    for (const [meter, text] of [[ui.levelIn, ui.levelInText], [ui.levelOut, ui.levelOutText]]) {
      meter.value = -90;
      text.value = "—";
    }
  }
  ui.voice.disabled = ended || live || s.state === "text";
  ui.voice.textContent = ended ? "Interview ended" : s.state === "failed" || s.state === "closed" ? "Try Voice Mode again" : "Voice Mode";
  ui.mute.disabled = ended || !live;
  ui.interrupt.disabled = ended || s.state !== "connected";
  ui.end.disabled = ended || s.state === "idle";
  ui.inputFormat.disabled = ended || s.state !== "connected" || typeof client?.updateSession !== "function";
  const canType = !ended && (s.state === "connected" || s.state === "text");
  ui.textInput.disabled = !canType;
  ui.textSend.disabled = !canType;
}

function setMode(m) {
  rv.mode = m.mode;
  rv.modeReason = m.reason;
  document.body.dataset.mode = m.mode;
  if (m.mode === "text") {
    ui.textLabel.textContent = `Text mode (${words(MODE_WORDS, m.reason)}): type your answer`;
    if (client) setStatus(client.status);
    ui.textInput.focus();
  } else {
    ui.textLabel.textContent = "Type a message";
  }
}

// Transcript lines by item id; bounded by MAX_TRANSCRIPT_ITEMS.
const lines = new Map();
const pendingLocal = [];
function transcriptLine(role, itemId) {
  let line = lines.get(itemId);
  if (line) return line;
  const li = document.createElement("li");
  li.className = `turn ${role}`;
  const who = document.createElement("span");
  who.className = "who";
  who.textContent = role === "user" ? "You" : "Interviewer";
  const text = document.createElement("span");
  text.className = "text";
  li.append(who, text);
  ui.transcript.append(li);
  line = { li, text, final: false };
  lines.set(itemId, line);
  while (lines.size > MAX_TRANSCRIPT_ITEMS) {
    const [oldest, old] = lines.entries().next().value;
    old.li.remove();
    lines.delete(oldest);
  }
  ui.transcript.scrollTop = ui.transcript.scrollHeight;
  return line;
}

function onTranscript(t) {
  if (t.final) {
    rv.transcripts.finals += 1;
    rv.transcripts[t.role] = (rv.transcripts[t.role] ?? 0) + 1;
    // A line typed here and echoed back by the server as a user item: keep one copy.
    const i = t.role === "user" ? pendingLocal.findIndex((p) => p.text === t.text) : -1;
    if (i >= 0) {
      const [local] = pendingLocal.splice(i, 1);
      local.li.remove();
      lines.delete(local.id);
    }
  } else {
    rv.transcripts.deltas += 1;
  }
  const line = transcriptLine(t.role, t.itemId);
  if (t.final) {
    line.text.textContent = t.text;
    line.final = true;
    line.li.classList.remove("partial");
  } else {
    line.text.textContent += t.text;
    line.li.classList.add("partial");
  }
}

const speaking = { user: false, assistant: false };
function onSpeech(s) {
  speaking[s.who] = s.speaking;
  if (s.speaking) rv.speech[s.who] = (rv.speech[s.who] ?? 0) + 1;
  ui.speaking.textContent = speaking.assistant ? "The interviewer is speaking…" : speaking.user ? "Listening to you…" : "";
}

function onLevel(l) {
  const db = Number.isFinite(l.rmsDbfs) ? Math.max(-90, Math.min(0, l.rmsDbfs)) : -90;
  const text = Number.isFinite(l.rmsDbfs) ? `${Math.round(l.rmsDbfs)} dBFS` : "silent";
  if (l.source === "output") {
    rv.outputLevels += 1;
    if (l.rmsDbfs > AUDIBLE_DBFS) rv.outputHeard += 1;
    if (l.rmsDbfs > rv.maxOutputDbfs) rv.maxOutputDbfs = l.rmsDbfs;
    ui.levelOut.value = db;
    ui.levelOutText.value = text;
  } else {
    rv.inputLevels += 1;
    if (l.rmsDbfs > AUDIBLE_DBFS) rv.inputHeard += 1;
    if (l.rmsDbfs > rv.maxInputDbfs) rv.maxInputDbfs = l.rmsDbfs;
    ui.levelIn.value = db;
    ui.levelInText.value = text;
  }
}

const ms = (v) => (v == null ? "—" : `${Math.round(v)} ms`);
function onMetrics(m) {
  rv.metrics = m;
  ui.p50.textContent = ms(m.latencyP50Ms);
  ui.p95.textContent = ms(m.latencyP95Ms);
  ui.ttfa.textContent = ms(m.timeToFirstAudioMs);
  ui.underruns.textContent = String(m.underruns);
  ui.reconnects.textContent = String(m.reconnects);
  ui.cost.textContent = `${m.costIsUpperBound ? "≤ " : ""}$${m.costUsd.toFixed(4)}${m.costUnknownModel ? " (unknown model)" : ""}`;
}

const ERROR_WORDS = {
  invalid_audio_format: "The server refused the audio format",
  rate_limit_exceeded: "Too much audio sent too fast",
  audio_overflow: "Audio was dropped while reconnecting",
  invalid_json: "The server sent a malformed message",
};
function onError(e) {
  pushBounded(rv.errors, { kind: e.kind, code: e.code }, MAX_ERRORS);
  if (Object.keys(rv.errorCodes).length < MAX_EVENT_TYPES || e.code in rv.errorCodes) {
    rv.errorCodes[e.code] = (rv.errorCodes[e.code] ?? 0) + 1;
  }
  document.body.dataset.lastError = e.code;
  const head = ERROR_WORDS[e.code] ?? `Error (${e.kind})`;
  showError(`${head} [${e.code}]: ${e.message}`);
}

// Why the client changed devices by itself, as the demo says it.
const DEVICE_REASONS = {
  track_ended: "the microphone stopped",
  device_removed: "the device was unplugged",
  device_returned: "the chosen device is back",
  format_changed: "the device changed its format",
  sink_failed: "the browser refused the chosen speaker",
};

/** A device id as the user knows it: the label from the device lists, or "the default …". */
function deviceName(id, select, fallback) {
  if (!id || id === "default") return fallback;
  const o = [...select.options].find((x) => x.value === id);
  return o ? o.textContent : "another device";
}

/** Until then a microphone's `format_changed` is its first format settling, not a change. */
let micSettlesAt = 0;
const MIC_SETTLE_MS = 3000;

/** The `audio` event's device fields (a healed microphone or speaker), shown in the Audio panel. */
function showDeviceChange(a) {
  rv.deviceChanges.push({ recovering: a.recovering ?? null, recovered: a.recovered ?? null, reason: a.reason, attempt: a.attempt });
  if (rv.deviceChanges.length > 20) rv.deviceChanges.shift();
  const why = DEVICE_REASONS[a.reason] ?? a.reason;
  let text;
  if (a.recovering === "mic") {
    text = `Microphone lost (${why}): reopening ${deviceName(a.device, ui.inputDevice, "the default microphone")}, try ${a.attempt}…`;
  } else if (a.recovered === "mic" && a.reason === "format_changed") {
    // A microphone may settle its format just after it opens (WebKit's does): not news then.
    if (performance.now() < micSettlesAt) return;
    text = `Microphone format changed: audio continues on ${deviceName(a.device, ui.inputDevice, "the default microphone")}.`;
  } else if (a.recovered === "mic") {
    text = `Microphone back (${why}): now on ${deviceName(a.device, ui.inputDevice, "the default microphone")}.`;
  } else if (a.recovered === "output") {
    text = `Speaker changed (${why}): now on ${deviceName(a.device, ui.outputDevice, "the default speaker")}.`;
  } else {
    return;
  }
  ui.deviceNote.textContent = text;
  ui.deviceNote.hidden = false;
  // The lists may have changed with the devices.
  if (a.recovered) fillDevices();
  if (a.recovered === "mic" && a.reason !== "format_changed") micSettlesAt = performance.now() + MIC_SETTLE_MS;
}

function onAudio(a) {
  if (a.reason) showDeviceChange(a);
  // A list read before the microphone opened has no ids or labels (Firefox): read it again
  // once audio runs.
  if (a.state === "running" && client && [...ui.inputDevice.options].every((o) => !o.value)) fillDevices();
  rv.audio = a.state;
  document.body.dataset.audio = a.state;
  ui.resume.hidden = !a.needsGesture;
  ui.audioNote.hidden = !a.needsGesture;
  ui.audioNote.textContent = a.needsGesture
    ? `Audio is ${a.state === "interrupted" ? "interrupted" : "paused"} by the browser: press Resume audio (or any key) to hear the interviewer.`
    : "";
}

function onEvent(e) {
  if (Object.keys(rv.eventTypes).length < MAX_EVENT_TYPES || e.type in rv.eventTypes) {
    rv.eventTypes[e.type] = (rv.eventTypes[e.type] ?? 0) + 1;
  }
}

// ---- commands -------------------------------------------------------------------------------
let client = null;
let ended = false;

async function connectVoice() {
  showError("");
  ui.voice.disabled = true;
  try {
    micSettlesAt = performance.now() + MIC_SETTLE_MS;
    await client.connect();
    micSettlesAt = performance.now() + MIC_SETTLE_MS;
    fillDevices();
  } catch (e) {
    // The status event already says why; keep the message for details.
    showError(`Could not start voice mode: ${e?.message ?? e}`);
  } finally {
    setStatus(client.status);
  }
}

function toggleMute() {
  const muted = ui.mute.getAttribute("aria-pressed") !== "true";
  client.setMuted(muted);
  ui.mute.setAttribute("aria-pressed", String(muted));
  ui.mute.textContent = muted ? "Unmute" : "Mute";
  document.body.dataset.muted = String(muted);
}

async function sendText(ev) {
  ev.preventDefault();
  const text = ui.textInput.value.trim();
  if (!text) return;
  try {
    client.sendText(text);
  } catch (e) {
    showError(`Could not send the message: ${e?.message ?? e}`);
    return;
  }
  const id = `local-${Date.now()}-${pendingLocal.length}`;
  const line = transcriptLine("user", id);
  line.text.textContent = text;
  pendingLocal.push({ id, text, li: line.li });
  if (pendingLocal.length > 20) pendingLocal.shift();
  ui.textInput.value = "";
}

async function fillDevices() {
  try {
    const inputs = await client.listInputDevices();
    ui.inputDevice.replaceChildren(new Option("Default microphone", ""));
    for (const d of inputs) ui.inputDevice.append(new Option(d.label || `Microphone ${ui.inputDevice.length}`, d.deviceId));
    ui.inputDevice.disabled = inputs.length === 0;
  } catch (e) {
    ui.inputDevice.disabled = true;
  }
  const canSink = typeof HTMLMediaElement !== "undefined" && "setSinkId" in HTMLMediaElement.prototype;
  if (!canSink) {
    ui.outputDevice.disabled = true;
    ui.outputNote.textContent = "This browser cannot choose the speaker (no setSinkId); the system default is used.";
    ui.outputNote.hidden = false;
    return;
  }
  try {
    const outs = (await client.listOutputDevices()).filter((d) => d.deviceId !== "default");
    ui.outputDevice.replaceChildren(new Option("Default speaker", ""));
    for (const d of outs) ui.outputDevice.append(new Option(d.label || `Speaker ${ui.outputDevice.length}`, d.deviceId));
    ui.outputDevice.disabled = outs.length === 0;
  } catch {
    ui.outputDevice.disabled = true;
  }
}

async function changeInput() {
  try { await client.setInputDevice(ui.inputDevice.value); showError(""); }
  catch (e) { showError(`Could not switch the microphone: ${e?.message ?? e}`); }
}

async function changeOutput() {
  try { await client.setOutputDevice(ui.outputDevice.value); ui.outputNote.hidden = true; }
  catch (e) { ui.outputNote.textContent = `Could not switch the speaker: ${e?.message ?? e}`; ui.outputNote.hidden = false; }
}

const FORMATS = {
  pcm16: { ga: { audio: { input: { format: { type: "audio/pcm", rate: 24000 } } } }, beta: { input_audio_format: "pcm16" } },
  pcmu: { ga: { audio: { input: { format: { type: "audio/pcmu" } } } }, beta: { input_audio_format: "g711_ulaw" } },
  pcm16k: { ga: { audio: { input: { format: { type: "audio/pcm", rate: 16000 } } } }, beta: { input_audio_format: "pcm16_16k" } },
};
/** Sends session.update asking for an input format (the server accepts only 24 kHz PCM16). */
function requestInputFormat(fmt) {
  const f = FORMATS[fmt];
  if (!f) throw new Error(`unknown format ${fmt}`);
  if (typeof client?.updateSession !== "function") throw new Error("this build of the client has no updateSession()");
  client.updateSession(f[protocol]);
  return true;
}

async function endInterview() {
  ended = true;
  try { await client.disconnect(); } catch { /* already closed */ }
  setStatus(client.status);
  onMetrics(client.metrics());
  ui.saved.hidden = false;
  ui.savedSummary.textContent = "Loading the transcript saved on the server…";
  try {
    const token = await currentToken();
    const r = await fetch(`${backend}/api/v1/interviews/${encodeURIComponent(interviewId)}`, {
      headers: { authorization: `Bearer ${token}` },
    });
    if (!r.ok) throw new Error(`the server answered ${r.status}`);
    const iv = await r.json();
    const turns = Array.isArray(iv.turns) ? iv.turns : [];
    ui.savedTurns.replaceChildren(...turns.map((t) => {
      const li = document.createElement("li");
      li.className = `turn ${t.role === "user" ? "user" : "assistant"}`;
      const who = document.createElement("span");
      who.className = "who";
      who.textContent = t.role === "user" ? "You" : "Interviewer";
      const text = document.createElement("span");
      text.className = "text";
      text.textContent = t.text;
      li.append(who, text);
      return li;
    }));
    const cost = typeof iv.realtime_cost_usd === "number" ? `$${iv.realtime_cost_usd.toFixed(4)}` : "unknown";
    ui.savedSummary.textContent = `${turns.length} turns saved; ${iv.questions_asked ?? "?"} questions asked; realtime cost ${cost}.`;
    rv.saved = {
      turns: turns.length,
      user: turns.filter((t) => t.role === "user").length,
      assistant: turns.filter((t) => t.role === "assistant").length,
      sources: [...new Set(turns.map((t) => t.source))],
      costUsd: iv.realtime_cost_usd ?? null,
    };
    document.body.dataset.saved = "yes";
  } catch (e) {
    ui.savedSummary.textContent = `Could not load the saved transcript: ${e?.message ?? e}`;
    rv.saved = { error: String(e?.message ?? e) };
    document.body.dataset.saved = "error";
  }
  ui.savedHeading.focus();
}

// ---- start ----------------------------------------------------------------------------------
async function main() {
  let wasm;
  try {
    wasm = await init();
    // The package's export names are minified: the linear memory is the export that is one.
    rv.wasmMemory = Object.values(wasm ?? {}).find((v) => v instanceof WebAssembly.Memory) ?? null;
    ui.version.textContent = version();
  } catch (e) {
    document.body.dataset.wasm = "failed";
    ui.status.textContent = `The voice client failed to load: ${e?.message ?? e}`;
    return;
  }
  try {
    if (fixedToken && !interviewId) throw new Error("?token= needs ?interview= (the token names one interview)");
    if (!fixedToken) {
      const t = await devToken(interviewId);
      interviewId = t.interview_id;
      firstToken = t.token;
    }
    rv.interviewId = interviewId;
    ui.interview.textContent = interviewId;
    const options = {
      baseUrl: backend, interviewId, httpFallback: true, protocol, authVia, mode: startMode,
      ...(prebufferMs !== undefined ? { prebufferMs } : {}),
      ...(echoGuard ? { echoGuard } : {}),
      ...(bargeInDuck ? { bargeInDuck } : {}),
      ...(echoCanceller ? { echoCanceller } : {}),
      ...(fixedToken ? { token: fixedToken } : { tokenProvider: currentToken }),
    };
    client = new VoiceClient(options);
  } catch (e) {
    document.body.dataset.wasm = "failed";
    ui.status.textContent = "Cannot start a session";
    showError(`${e?.message ?? e}. Run the reference server with --dev, or pass ?interview= and ?token=.`);
    return;
  }
  rv.client = client;
  client.on("status", (s) => {
    console.info(`realtime-voice status: ${s.state} reason=${s.reason} detail=${s.detail} code=${s.closeCode} attempt=${s.attempt}`);
    setStatus(s);
    // With the badge text it produced, so a test can check what a short-lived state showed.
    pushBounded(rv.statuses, { state: s.state, reason: s.reason, detail: s.detail, closeCode: s.closeCode, attempt: s.attempt, shown: ui.status.textContent }, MAX_STATUSES);
  });
  // A tool the interviewer calls before each question: the question appears on screen.
  client.registerTool(
    {
      name: "show_question",
      description: "Shows the interview question being asked on the candidate's screen.",
      parameters: { type: "object", properties: { text: { type: "string" } }, required: ["text"] },
    },
    ({ text }) => {
      if (typeof text !== "string" || !text) throw new Error("show_question needs a text");
      ui.questionText.textContent = text;
      ui.question.hidden = false;
      pushBounded(rv.questions, text, 64);
      return { shown: true };
    },
  );
  client.on("mode", setMode);
  client.on("transcript", onTranscript);
  client.on("speech", onSpeech);
  client.on("level", onLevel);
  client.on("metrics", onMetrics);
  client.on("error", onError);
  client.on("event", onEvent);
  client.on("audio", onAudio);

  ui.voice.addEventListener("click", connectVoice);
  ui.mute.addEventListener("click", toggleMute);
  ui.interrupt.addEventListener("click", () => client.interrupt());
  ui.end.addEventListener("click", endInterview);
  ui.textForm.addEventListener("submit", sendText);
  ui.inputDevice.addEventListener("change", changeInput);
  ui.outputDevice.addEventListener("change", changeOutput);
  ui.inputFormat.addEventListener("change", () => {
    try { requestInputFormat(ui.inputFormat.value); } catch (e) { showError(String(e?.message ?? e)); }
  });
  // Browsers (Safari above all) may suspend audio until a user gesture. The client resumes it on
  // the next click or key press by itself; the page only asks for one.
  ui.resume.addEventListener("click", () => {
    try { client.resume(); } catch (e) { showError(`Could not resume audio: ${e?.message ?? e}`); }
  });

  if (startMuted) toggleMute();
  if (startMode === "text") setMode({ mode: "text", reason: "requested" });
  setStatus(client.status);
  onMetrics(client.metrics());
  rv.ready = true;
  document.body.dataset.wasm = "ready";
}

main();
