// Small browser glue the web shell imports (wasm-bindgen copies it into the package's snippets/).
// URLs are literal so that bundlers (Vite, webpack) find the worklet files and emit them as assets;
// `?no-inline` keeps Vite from inlining the small one as a data: URL (a strict CSP forbids it).
// This file sits at snippets/<crate>/src/web/ inside the package, four folders below worklets/.
export function captureWorkletUrl() {
  return new URL("../../../../worklets/capture.js?no-inline", import.meta.url).href;
}
export function playbackWorkletUrl() {
  return new URL("../../../../worklets/playback.js?no-inline", import.meta.url).href;
}
// Web Locks: one live connection per interview per browser. Calls onResult(true, release) when the
// lock is held — release() lets it go and returns a Promise that settles once it is free —,
// onResult(false) when another tab holds it, and onResult(null) where the API is absent (then
// nothing is enforced).
export function requestLock(name, onResult) {
  const locks = globalThis.navigator && navigator.locks;
  if (!locks || typeof locks.request !== "function") { onResult(null); return; }
  let release;
  const held = new Promise((r) => { release = r; });
  const done = locks.request(name, { ifAvailable: true }, (lock) => {
    if (!lock) { onResult(false); return undefined; }
    onResult(true, () => { release(); return done.catch(() => undefined); });
    return held;
  });
  done.catch(() => onResult(null));
}
// The shell's only way to wait (no futures executor in the package): calls done(true, value) once
// `p` fulfils, done(false, error) once it rejects; ok = false passes `p` on as the rejection. Never
// synchronous, so a callback never runs inside the drain that asked for it.
export function settle(ok, p, done) {
  (ok ? Promise.resolve(p) : Promise.reject(p)).then((v) => done(true, v), (e) => done(false, e));
}

// The WebSocket the core asked for (src/web/socket.rs). Every event goes to
// on(kind, text, n, wasOpen): 0 open, 1 text frame (text), 2 binary frame (n = its bytes),
// 3 error, 4 close (text = reason, n = code, wasOpen). Throws on a malformed URL or subprotocol.
export function socketOpen(url, protocols, on) {
  const ws = protocols.length ? new WebSocket(url, protocols) : new WebSocket(url);
  let opened = false;
  // Every argument, typed: wasm-bindgen's debug builds check them.
  const emit = (kind, text = null, n = 0) => on(kind, text, n, opened);
  ws.binaryType = "arraybuffer";
  ws.onopen = () => {
    opened = true;
    emit(0);
  };
  ws.onmessage = ({ data }) => (typeof data == "string" ? emit(1, data) : emit(2, null, data.byteLength | 0));
  ws.onerror = () => emit(3);
  ws.onclose = (e) => emit(4, e.reason, e.code);
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
  if (detach) ws.onopen = ws.onmessage = ws.onerror = ws.onclose = null;
  try {
    if (code) ws.close(code, reason);
    else if (ws.readyState <= 1) ws.close(1000);
  } catch {}
}

// The page's online / offline (on(0, online)) and visibility (on(1, visible)) changes, and
// navigator.onLine now when it is false. Returns the function that stops listening.
export function listenWindow(on) {
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
