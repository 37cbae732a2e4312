// The browser calls of the web shell (src/web/*.rs), in one file: wasm-bindgen copies it into the
// package's snippets/, and one file compresses better than several. The Rust side decides what to
// call and when; these functions only do it.
// URLs are literal so that bundlers (Vite, webpack) find the worklet files and emit them as assets;
// `?no-inline` keeps Vite from inlining the small one as a data: URL (a strict CSP forbids it).
// This file sits at snippets/<crate>/src/web/ inside the package, four folders below worklets/.
export function captureWorkletUrl() {
  return new URL("../../../../worklets/capture.js?no-inline", import.meta.url).href;
}
export function playbackWorkletUrl() {
  return new URL("../../../../worklets/playback.js?no-inline", import.meta.url).href;
}
const aecWorkletUrl = () => new URL("../../../../worklets/aec.js?no-inline", import.meta.url).href;
// The opt-in echo canceller (echoCanceller: "wasm"), fetched only when asked for.
export function echoCancellerUrl() {
  return new URL("../../../../aec/realtime_voice_aec.wasm", import.meta.url).href;
}
// An exception that escapes the wasm — a trap (a Rust panic aborts) or a browser call that threw
// through it — may leave the wasm's state with borrows never given back: every later call into it
// would fail too, and the microphone and the socket would stay open behind a silent client. So
// every callback from the browser into the wasm goes through `guard`, and the first exception that
// escapes one aborts every client of the module at once: sockets closed (1000), microphones and
// audio stopped, Web Locks let go, pending promises rejected, and each app told (an `error` of
// kind `internal`, code `client_aborted`, then the status `failed` / `internal`). Nothing calls into
// the wasm after that; a new client can only come from a reloaded page. The clients' listeners
// live here for this.
const live = { c: new Set(), ws: new Set(), g: new Set(), lock: new Set() };
let aborted = false;
const ABORTED = "realtime-voice stopped after an internal error";
const refuseOnceAborted = () => {
  if (aborted) throw new Error(ABORTED + "; reload the page");
};
const guard = (f) => (...a) => {
  if (aborted) return;
  try {
    f(...a);
  } catch (e) {
    abort(e);
  }
};

// Each step on its own: one that throws (the browser call at fault, say) must not keep the others
// from running.
const safely = (f) => {
  try {
    f();
  } catch {}
};
function abort(e) {
  if (aborted) return;
  aborted = true;
  console.error("realtime-voice: " + ABORTED, e);
  for (const ws of live.ws) safely(() => socketClose(ws, 0, "", true));
  for (const g of live.g) {
    // The microphone first: the light goes off even if the rest of the graph cannot be stopped.
    safely(() => g.s && stopTracks(g.s));
    safely(() => g.r && stopTracks(g.r));
    safely(() => stop(g));
  }
  for (const release of live.lock) safely(release);
  for (const c of live.c) {
    const err = new Error(ABORTED + " (" + e + "); reload the page");
    for (const fail of c.p) fail(err);
    to(c, "error", () => ({ kind: "internal", code: "client_aborted", message: err.message }));
    const attempt = c.s ? JSON.parse(c.s).attempt : 0;
    to(c, "status", () => ({ state: "failed", reason: "internal", detail: "client_aborted", closeCode: null, attempt }));
  }
  live.c.clear();
}

// The app's calls into the wasm are guarded too: build-pkg.sh (scripts/shield-wasm-exports.mjs)
// hands the module's exports to `shield` once instantiated, and wasm-bindgen's JS calls the
// wrapped ones. An exception out of an export aborts at once, so a method the app calls that traps
// stops every client then, not at the next callback. An error the API returns (a JsError for bad
// input) is thrown by wasm-bindgen's JS after the export has returned: it aborts nothing. Once
// aborted, an export throws (reload the page), except those the finalizers call (`quiet`), which
// do nothing, and `disconnect()` resolves: everything is closed already.
export function shield(exports, quiet, Client) {
  const p = Client.prototype, disconnect = p.disconnect;
  p.disconnect = function () {
    return aborted ? Promise.resolve() : disconnect.call(this);
  };
  const out = {};
  for (const [k, f] of Object.entries(exports)) {
    out[k] = typeof f != "function" ? f : (...a) => {
      if (aborted) {
        if (quiet.includes(k)) return;
        refuseOnceAborted();
      }
      try {
        return f(...a);
      } catch (e) {
        abort(e);
        throw e;
      }
    };
  }
  return out;
}

// A client's JS side: its listeners ([name, f]), the rejections of its pending promises and its
// last status (JSON). Throws once the module has aborted.
export function client() {
  refuseOnceAborted();
  const c = { l: [], p: new Set(), s: null };
  live.c.add(c);
  return c;
}
export function forget(c) {
  live.c.delete(c);
}
export function listen(c, name, f) {
  c.l.push([name, f]);
}
// Removes a listener; returns whether a raw `event` listener is left.
export function unlisten(c, name, f) {
  const i = c.l.findIndex((x) => x[0] == name && x[1] == f);
  if (i >= 0) c.l.splice(i, 1);
  return c.l.some((x) => x[0] == "event");
}
// Calls the listeners of `name` with one value (made only when someone listens); a listener that
// throws is logged and breaks nothing.
function to(c, name, value) {
  const fs = c.l.filter((x) => x[0] == name);
  if (!fs.length) return;
  const v = value();
  for (const [, f] of fs) {
    try {
      f(v);
    } catch (e) {
      console.error("realtime-voice: a listener threw", e);
    }
  }
}
export function emit(c, name, json) {
  if (name == "status") c.s = json;
  to(c, name, () => JSON.parse(json));
}
// A promise the shell settles: [promise, resolve, reject]. Rejected if the module aborts first;
// throws once it has.
export function pending(c) {
  refuseOnceAborted();
  let ok, fail;
  const p = new Promise((a, b) => {
    ok = a;
    fail = b;
  });
  c.p.add(fail);
  const done = (f) => (v) => {
    c.p.delete(fail);
    f(v);
  };
  return [p, done(ok), done(fail)];
}
// The shell's timer.
export function later(f, ms) {
  return setTimeout(guard(f), ms);
}

// Web Locks: one live connection per interview per browser. Calls onResult(true, release) when the
// lock is held — release() lets it go and returns a Promise that settles once it is free —,
// onResult(false) when another tab holds it, and onResult(null) where the API is absent (then
// nothing is enforced).
export function requestLock(name, onResult) {
  onResult = guard(onResult);
  const locks = globalThis.navigator && navigator.locks;
  if (!locks || typeof locks.request !== "function") { onResult(null); return; }
  let release;
  const held = new Promise((r) => { release = r; });
  const done = locks.request(name, { ifAvailable: true }, (lock) => {
    if (!lock) { onResult(false); return undefined; }
    const letGo = () => {
      live.lock.delete(letGo);
      release();
      return done.catch(() => undefined);
    };
    live.lock.add(letGo);
    onResult(true, letGo);
    return held;
  });
  done.catch(() => onResult(null));
}
// The shell's only way to wait (no futures executor in the package): calls done(true, value) once
// `p` fulfils, done(false, error) once it rejects; ok = false passes `p` on as the rejection. Never
// synchronous, so a callback never runs inside the drain that asked for it.
export function settle(ok, p, done) {
  done = guard(done);
  (ok ? Promise.resolve(p) : Promise.reject(p)).then((v) => done(true, v), (e) => done(false, e));
}

// The WebSocket the core asked for (src/web/socket.rs). Every event goes to
// on(kind, text, n, wasOpen): 0 open, 1 text frame (text), 2 binary frame (n = its bytes),
// 3 error, 4 close (text = reason, n = code, wasOpen). Throws on a malformed URL or subprotocol.
export function socketOpen(url, protocols, on) {
  const ws = protocols.length ? new WebSocket(url, protocols) : new WebSocket(url);
  let opened = false;
  // Every argument, typed: wasm-bindgen's debug builds check them.
  const tell = guard((kind, text = null, n = 0) => on(kind, text, n, opened));
  live.ws.add(ws);
  ws.binaryType = "arraybuffer";
  ws.onopen = () => {
    opened = true;
    tell(0);
  };
  ws.onmessage = ({ data }) => (typeof data == "string" ? tell(1, data) : tell(2, null, data.byteLength | 0));
  ws.onerror = () => tell(3);
  ws.onclose = (e) => {
    live.ws.delete(ws);
    tell(4, e.reason, e.code);
  };
  return ws;
}

// Sends a text frame: the bytes queued since (bufferedAmount), or -1 when the socket is not open.
export function socketSend(ws, frame) {
  try {
    ws.send(frame);
    return ws.bufferedAmount;
  } catch {
    return -1;
  }
}

export function socketBuffered(ws) {
  return ws.bufferedAmount;
}

// Closes with `code` and `reason`; detach = true also detaches the handlers first (no event
// after this) and closes with 1000 when `code` is 0.
export function socketClose(ws, code, reason, detach) {
  live.ws.delete(ws);
  if (detach) ws.onopen = ws.onmessage = ws.onerror = ws.onclose = null;
  try {
    if (code) ws.close(code, reason);
    else if (ws.readyState <= 1) ws.close(1000);
  } catch {}
}

// The page's online / offline (on(0, online)) and visibility (on(1, visible)) changes, and
// navigator.onLine now when it is false. Returns the function that stops listening.
export function listenWindow(on) {
  on = guard(on);
  const online = () => on(0, true);
  const offline = () => on(0, false);
  const visibility = () => on(1, document.visibilityState == "visible");
  const pairs = [["online", online], ["offline", offline], ["visibilitychange", visibility]];
  for (const [n, f] of pairs) addEventListener(n, f);
  if (!navigator.onLine) offline();
  return () => pairs.forEach(([n, f]) => removeEventListener(n, f));
}

// Calls f on the next click, tap or key press. Returns the function that stops listening.
export function onGesture(f) {
  f = guard(f);
  const names = ["pointerdown", "keydown", "touchend"];
  for (const n of names) document.addEventListener(n, f);
  return () => names.forEach((n) => document.removeEventListener(n, f));
}

// POSTs `body` (JSON) with the bearer `token`: the response text; rejects with the HTTP status
// (a number) or fetch's error.
export function postJson(url, token, body) {
  const headers = { "Content-Type": "application/json", Authorization: "Bearer " + token };
  return fetch(url, { method: "POST", headers, body }).then((r) => (r.ok ? r.text() : Promise.reject(r.status)));
}

// The audio graph (src/web/audio.rs drives it):
// getUserMedia → MediaStreamSource → capture worklet ──port──► on(0, frames, channels)
// play(…) ──port──► playback worklet → MediaStreamDestination → <audio> (the echo canceller sees
// it; setSinkId picks the device). One AudioContext at the device's native rate. Nothing here
// decides: each function does what the core's output asked for, and failures go back as
// 1 (no AudioWorklet), 2 (the context failed) or getUserMedia's error, for the core to judge.
// Events, all through g.on(kind, x, a, b, c, d, e, f): 0 frames (x, a = channels, b = pair,
// c = the context frame of the first), 1 progress (x concealed, a item, b played, c underruns,
// d rms, e peak, f = the context frame by which b was played), 2 overflow (a frames), 3 finished (a item),
// 4 track ended, 5 devices changed, 6 context state (x), 7 echo canceller (x = its failure, or
// a = attenuation dB, b = delay ms).

const quiet = (p) => p && p.catch && p.catch(() => {});
const devices = () => navigator.mediaDevices;

// The context and the output element, created synchronously (inside the user gesture: Safari
// and iOS start audio only there): the graph object, or 1 / 2 on failure.
export function unlock() {
  let c;
  try {
    c = new AudioContext();
  } catch {
    return 2;
  }
  if (!c.audioWorklet) {
    quiet(c.close());
    return 1;
  }
  quiet(c.resume());
  const g = { c, e: new Audio() };
  live.g.add(g);
  return g;
}

// The app's constraints with deviceId {exact: id}, or without any deviceId for null.
const withDevice = (c, id) => {
  c = { ...c };
  if (id == null) delete c.deviceId;
  else c.deviceId = { exact: id };
  return c;
};
const gum = (c) => devices().getUserMedia({ audio: c });

// Opens the microphone `id` (null: the default); stopped again if the module aborted meanwhile.
export async function openMic(c, id) {
  return unlessAborted(await gum(withDevice(c, id)));
}
const unlessAborted = (s) => {
  if (!aborted) return s;
  stopTracks(s);
  throw 2;
};

// Every track of `s` stopped (the microphone light goes off).
export function stopTracks(s) {
  for (const t of s.getTracks()) t.stop();
}

// Loads both worklets, opens the microphone (`id`, or the constraints as they are), connects
// everything and starts reporting to `on`. With `aecUrl`, compiles the echo canceller meanwhile
// and hands it to the capture worklet, which reports whether it runs (event 7). Resolves with
// [sampleRate, state]; rejects (after closing the context) with 1, 2 or getUserMedia's error.
// With `raw` (1: where the browser is known to keep two captures apart, `pairsApart`; 2:
// wherever it hands both over as asked), the same microphone is also opened with the browser's
// processing off and the capture worklet gets the two as one stereo input (processed, raw);
// elsewhere the processed one alone.
export async function start(g, captureUrl, playbackUrl, c, id, prebufferMs, aecUrl, raw, report) {
  const ctx = g.c;
  // Every argument, typed: wasm-bindgen's debug builds check them.
  const on = guard((kind, x = null, a = 0, b = 0, c = 0, d = 0, e = 0, f = 0) => report(kind, x, a, b, c, d, e, f));
  // A server without the wasm MIME type fails compileStreaming: compiled from the bytes then.
  const get = () => fetch(aecUrl).then((r) => (r.ok ? r.arrayBuffer() : Promise.reject(r.status)));
  const aec = aecUrl && WebAssembly.compileStreaming(fetch(aecUrl))
    .catch(() => get().then((b) => WebAssembly.compile(b)))
    .catch(() => null);
  try {
    try {
      await ctx.audioWorklet.addModule(captureUrl);
      await ctx.audioWorklet.addModule(playbackUrl);
    } catch {
      throw 1;
    }
    // The echo canceller's worklet part sits beside capture.js (the package's, or the app's own
    // captureWorkletUrl). Not loaded: the capture worklet says so once handed the module.
    if (aec) {
      const u = captureUrl == captureWorkletUrl() ? aecWorkletUrl() : new URL("aec.js", captureUrl).href;
      await ctx.audioWorklet.addModule(u).catch(() => {});
    }
    const s = unlessAborted(await gum(id == null ? c : withDevice(c, id)));
    let r = null;
    try {
      if (raw == 2 || (raw == 1 && pairsApart())) r = await rawBeside(s);
    } catch (e) {
      // Aborted meanwhile: the processed capture goes too.
      stopTracks(s);
      throw e;
    }
    let failure = 1;
    try {
      const cap = new AudioWorkletNode(ctx, "realtime-voice-capture");
      const play = new AudioWorkletNode(ctx, "realtime-voice-playback", {
        numberOfInputs: 0,
        outputChannelCount: [1],
        processorOptions: { prebufferMs },
      });
      failure = 2;
      g.play = play;
      route(g, !!aec);
      // The capture node outputs silence; connecting it keeps it pulled in every engine.
      cap.connect(ctx.destination);
      g.cap = cap;
      attach(g, s, r);
    } catch {
      stopTracks(s);
      if (r) stopTracks(r);
      throw failure;
    }
    g.on = on;
    g.cap.port.onmessage = ({ data: d }) => {
      const f = d.frames;
      if (!f) {
        if (d.type != "aec") return;
        on(7, d.error ?? null, d.attenuation || 0, d.delay || 0);
        return;
      }
      on(0, f, d.channels, g.r || d.pair ? 1 : 0, Math.round(d.time * ctx.sampleRate));
      // Copied out by now: the buffer goes back to the worklet's pool (transferred).
      g.cap.port.postMessage({ type: "recycle", buffer: f.buffer }, [f.buffer]);
    };
    g.play.port.onmessage = ({ data: d }) => {
      const t = d.type;
      if (t == "progress") on(1, d.concealed, d.item, d.played, d.underruns, d.rms, d.peak, d.at);
      else if (t == "overflow") on(2, null, d.frames);
      else if (t == "finished") on(3, null, d.item);
    };
    ctx.onstatechange = () => on(6, ctx.state);
    // A listener, not `ondevicechange`: the app's own handler stays.
    g.dc = () => on(5);
    devices().addEventListener("devicechange", g.dc);
    // null when it could not be loaded: the worklet reports that like any other failure.
    if (aec) g.cap.port.postMessage({ type: "aec", module: await aec });
    quiet(ctx.resume());
    return [ctx.sampleRate, ctx.state];
  } catch (e) {
    quiet(ctx.close());
    throw e;
  }
}

// Where the player's output goes: through an <audio> element, so that the browser's echo
// canceller sees it; or, while the wasm canceller runs (the browser's is off), straight to the
// context's destination, where its latency to the loudspeaker is the context's own and fixed.
// Nothing happens when it already goes there.
export function route(g, direct) {
  const play = g.play;
  if (g.direct === direct) return;
  play.disconnect();
  g.direct = direct;
  if (direct) {
    g.e.pause();
    play.connect(g.c.destination);
  } else {
    const dest = g.dest || (g.dest = g.c.createMediaStreamDestination());
    play.connect(dest);
    g.e.srcObject = dest.stream;
    quiet(g.e.play());
  }
}

// Whether this is a browser known to give one page the same microphone twice, each with its own
// processing: desktop Chromium (it alone has userAgentData), and Firefox on Linux and Windows,
// whose own processing runs per track (measured in Firefox 153 on Linux: the processed track
// stays cancelled beside a raw one). WebKit on iOS mutes the first capture when a second one
// opens; Android and ChromeOS may hand both to one system canceller; Firefox on macOS may use
// the system's voice processing, and was not measured.
function pairsApart() {
  const u = navigator.userAgentData;
  const a = navigator.userAgent || "";
  return u ? !u.mobile && ["Windows", "macOS", "Linux"].includes(u.platform)
    : /Firefox\//.test(a) && /Linux|Windows/.test(a) && !/Android/.test(a);
}

// The microphone of `s` opened again with the browser's processing off, if the browser gives
// both at once: the processed track must still be live, unmuted and say its canceller is on,
// and the new one that its is off (a browser that reconfigures or mutes the device for the
// second request would otherwise take the user's voice or canceller away). null when not.
async function rawBeside(s) {
  const t = s.getAudioTracks()[0];
  let r = null;
  try {
    const id = t.getSettings().deviceId;
    r = await gum({ ...(id ? { deviceId: { exact: id } } : {}), echoCancellation: false,
      noiseSuppression: false, autoGainControl: false, channelCount: 1 });
    const u = r.getAudioTracks()[0];
    if (t.readyState == "live" && !t.muted && t.getSettings().echoCancellation && u
      && u.getSettings().echoCancellation === false) return unlessAborted(r);
  } catch (e) {
    if (e === 2) throw e;
  }
  if (r) stopTracks(r);
  return null;
}

// Connects the stream `s` (and the raw capture `r` beside it, as the second channel) to the
// capture worklet, then retires the previous ones; throws (with `s` and `r` stopped, the
// previous streams still running) when they cannot be connected.
export function attach(g, s, r = null) {
  let src;
  try {
    src = source(g, s, r);
  } catch (e) {
    stopTracks(s);
    if (r) stopTracks(r);
    throw e;
  }
  if (g.src) g.src.disconnect();
  retire(g);
  for (const t of s.getAudioTracks()) t.onended = () => g.on && g.on(4);
  // The raw capture ending alone: the processed one goes on by itself (the core sees blocks
  // come alone and judges them), so the guard never judges a silent raw channel.
  if (r) for (const t of r.getAudioTracks()) t.onended = () => g.r === r && alone(g, s);
  g.src = src;
  g.s = s;
  g.r = r;
}

// The stream `s` (and `r` as the second channel) connected to the capture worklet: the node
// that feeds it. Throws when the context cannot make the nodes.
function source(g, s, r) {
  let src = g.c.createMediaStreamSource(s);
  if (r) {
    const m = g.c.createChannelMerger(2);
    src.connect(m, 0, 0);
    g.c.createMediaStreamSource(r).connect(m, 0, 1);
    src = m;
  }
  src.connect(g.cap);
  return src;
}

// The processed capture `s` fed to the capture worklet by itself, the raw one let go.
function alone(g, s) {
  try {
    const src = source(g, s, null);
    g.src.disconnect();
    g.src = src;
  } catch {
    // A context closing meanwhile: nothing is captured any more.
  }
  stopTracks(g.r);
  g.r = null;
}

// The current streams' tracks stopped, detached first: a late `ended` must not be reported.
function retire(g) {
  for (const x of [g.s, g.r]) {
    if (!x) continue;
    for (const t of x.getAudioTracks()) t.onended = null;
    stopTracks(x);
  }
}

// Queues AI audio (context rate, mono) for `item`, with the pitch period to repeat if the player
// runs dry after it; the samples are copied, then transferred.
export function play(g, item, samples, period) {
  const a = new Float32Array(samples);
  g.play.port.postMessage({ type: "push", item, samples: a, period }, [a.buffer]);
}

// The playback worklet's other messages: "end" (item), "config" (prebufferMs), "flush" (rampMs),
// "duck" (db).
const KEY = { end: "item", config: "prebufferMs", flush: "rampMs", duck: "db" };
export function post(g, type, n) {
  g.play.port.postMessage({ type, [KEY[type]]: n });
}

// Asks the context and the output element to run (from a user gesture).
export function resume(g) {
  quiet(g.c.resume());
  quiet(g.e.play());
}

// Whether media elements can choose their output device here (setSinkId).
export function hasSetSinkId() {
  return !!(globalThis.HTMLMediaElement && "setSinkId" in HTMLMediaElement.prototype);
}

// Routes the output to `id` ("" is the default device).
export async function setSink(g, id) {
  // Played straight to the destination: the context's own setSinkId (Chromium 110+).
  return g.direct ? g.c.setSinkId(id) : g.e.setSinkId(id);
}

// Stops the microphone, the worklets, the output element and the context (also of a graph
// object that was never started).
export function stop(g) {
  live.g.delete(g);
  g.on = null;
  if (g.cap) {
    g.cap.port.postMessage("stop");
    g.cap.port.onmessage = null;
    g.play.port.onmessage = null;
  }
  retire(g);
  if (g.dc) devices().removeEventListener("devicechange", g.dc);
  g.c.onstatechange = null;
  g.e.pause();
  g.e.srcObject = null;
  quiet(g.c.close());
}

// The devices of `kind` ("audioinput" or "audiooutput") as [{deviceId, label}].
export async function listDevices(kind) {
  return (await devices().enumerateDevices())
    .filter((d) => d.kind == kind)
    .map((d) => ({ deviceId: d.deviceId, label: d.label }));
}

// The ids of the microphones and of the output devices: [inputs, outputs].
export async function deviceIds() {
  const l = await devices().enumerateDevices();
  const ids = (k) => l.filter((d) => d.kind == k).map((d) => d.deviceId);
  return [ids("audioinput"), ids("audiooutput")];
}
