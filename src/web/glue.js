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
