// Serves a Vite production build (dist/) over HTTP and runs it in Chromium (playwright-core), then
// checks what tests/package/vite-app/main.js recorded on document.body.dataset:
//   - the wasm initialised (version() answered);
//   - with a server: connect() reached `connected` in voice mode, input level events arrived (the
//     capture worklet runs), and disconnect() closed the session;
//   - both worklets loaded: each either emitted by Vite as a file and fetched with 200, or inlined
//     by Vite as a data: URL (reported, since a Content-Security-Policy without data: refuses it);
//     a package whose glue asks Vite not to inline (`?no-inline`) must get files, and then the
//     page is served with a strict Content-Security-Policy (no data:, blob: or inline script).
// Usage: node run.mjs <dist-dir> <label> [server-url]
// Prints one JSON summary line and exits 1 with the reasons when a check fails.
import { createServer } from "node:http";
import { readFile, readdir } from "node:fs/promises";
import { extname, join, normalize, sep } from "node:path";
import { chromium } from "playwright-core";

const [dist, label, server] = process.argv.slice(2);
if (!dist || !label) {
  console.error("usage: node run.mjs <dist-dir> <label> [server-url]");
  process.exit(2);
}
const TIMEOUT_MS = 30000;
const MIME = {
  ".html": "text/html; charset=utf-8",
  ".js": "text/javascript; charset=utf-8",
  ".wasm": "application/wasm",
  ".css": "text/css; charset=utf-8",
};

// A package whose glue asks Vite not to inline the worklets (`?no-inline`) must also work under a
// strict Content-Security-Policy: no data:, no blob:, no inline script (DESIGN.md).
const glueAsksNoInline = (await packageGlue()).includes("no-inline");
const csp = [
  "default-src 'self'",
  "script-src 'self' 'wasm-unsafe-eval'",
  `connect-src 'self'${server ? ` ${server} ${server.replace(/^http/, "ws")}` : ""}`,
  "img-src 'self' data:",
].join("; ");

// A static server for dist/ on a free port; it records every path it served and with what status.
const served = [];
const http = createServer(async (req, res) => {
  const path = decodeURIComponent(new URL(req.url, "http://x").pathname);
  const file = normalize(join(dist, path === "/" ? "index.html" : path));
  let status = 200;
  try {
    if (!file.startsWith(normalize(dist) + sep)) throw new Error("outside dist");
    const body = await readFile(file);
    const headers = { "content-type": MIME[extname(file)] ?? "application/octet-stream" };
    if (glueAsksNoInline) headers["content-security-policy"] = csp;
    res.writeHead(200, headers);
    res.end(body);
  } catch {
    status = 404;
    res.writeHead(404).end();
  }
  served.push({ path, status });
});
await new Promise((resolve) => http.listen(0, "127.0.0.1", resolve));
const origin = `http://127.0.0.1:${http.address().port}`;

const browser = await chromium.launch({
  executablePath: process.env.CHROMIUM ?? "/usr/bin/chromium",
  args: [
    "--no-sandbox", "--headless", "--disable-gpu", "--disable-background-networking",
    "--disable-component-update", "--disable-sync", "--no-first-run",
    "--use-fake-ui-for-media-stream", "--use-fake-device-for-media-stream",
    "--autoplay-policy=no-user-gesture-required",
  ],
});
const failures = [];
const pageErrors = [];
let data = {};
try {
  const page = await browser.newPage();
  page.on("pageerror", (e) => pageErrors.push(String(e.message)));
  page.on("console", (m) => {
    if (m.type() === "error") pageErrors.push(m.text());
  });
  const query = server ? `?server=${encodeURIComponent(server)}` : "";
  await page.goto(`${origin}/${query}`);
  try {
    await page.waitForSelector("body[data-done]", { timeout: TIMEOUT_MS });
  } catch {
    failures.push(`the page did not finish within ${TIMEOUT_MS / 1000} s`);
  }
  data = await page.evaluate(() => ({ ...document.body.dataset }));
} finally {
  await browser.close();
  http.close();
}

// What Vite made of the worklets: an emitted file in assets/, or a data: URL inside the JS.
const assets = await readdir(join(dist, "assets"));
const js = (await Promise.all(
  assets.filter((f) => f.endsWith(".js")).map((f) => readFile(join(dist, "assets", f), "utf8")),
)).join("\n");
const worklets = {};
for (const name of ["capture", "playback"]) {
  const file = assets.find((f) => f.startsWith(`${name}-`) && f.endsWith(".js"));
  const hit = file && served.find((s) => s.path === `/assets/${file}`);
  if (file) {
    worklets[name] = hit ? `file:${hit.status}` : "file:not-requested";
  } else {
    const inlined = [...js.matchAll(/data:text\/javascript;base64,([A-Za-z0-9+/=]+)/g)]
      .some((m) => Buffer.from(m[1], "base64").toString().includes(`realtime-voice-${name}`));
    worklets[name] = inlined ? "inline" : "missing";
  }
}

const wasmServed = served.find((s) => s.path.endsWith(".wasm"));
if (data.wasm !== "ready" || !data.version) failures.push(`the wasm did not initialise (version: ${data.version ?? "none"})`);
if (!wasmServed || wasmServed.status !== 200) failures.push(`the .wasm asset was not served (${JSON.stringify(wasmServed ?? null)})`);
if (pageErrors.length) failures.push(`page errors: ${pageErrors.join(" | ")}`);
if (data.failure) failures.push(`the app failed: ${data.failure}`);
if (server) {
  if (data.connected !== "connected") failures.push(`connect() resolved with ${data.connected ?? "nothing"} (states: ${data.states ?? "none"})`);
  if (data.clientMode !== "voice" || data.mode) failures.push(`not in voice mode (mode: ${data.clientMode}, mode event: ${data.mode ?? "none"})`);
  if (!(Number(data.inputLevels) >= 3)) failures.push(`input level events: ${data.inputLevels ?? 0} (the capture worklet did not run)`);
  if (data.finalState !== "closed") failures.push(`after disconnect() the state is ${data.finalState ?? "unknown"}`);
  if (data.errors) failures.push(`error events: ${data.errors}`);
}
for (const [name, how] of Object.entries(worklets)) {
  const ok = how === "file:200" || (how === "inline" && !glueAsksNoInline);
  // Without a server the worklets are never requested; only their presence in the build counts.
  const okUnused = !server && (how === "file:not-requested" || how === "inline");
  if (!ok && !okUnused) failures.push(`worklet ${name}: ${how}`);
}

console.log(JSON.stringify({ label, ...data, worklets, csp: glueAsksNoInline, served: served.length, failures: failures.length }));
for (const [name, how] of Object.entries(worklets)) {
  if (how === "inline") {
    console.log(`note [${label}]: Vite inlined the ${name} worklet as a data: URL (below build.assetsInlineLimit);` +
      " a Content-Security-Policy without data: in script-src would refuse it (run without one)");
  }
}
if (failures.length) {
  for (const f of failures) console.error(`FAIL [${label}]: ${f}`);
  process.exit(1);
}

// The package's glue.js as installed in the app, to know whether it opts out of inlining.
async function packageGlue() {
  const base = join(dist, "..", "node_modules", "realtime-voice", "snippets");
  try {
    const [crate] = await readdir(base);
    return await readFile(join(base, crate, "src", "web", "glue.js"), "utf8");
  } catch {
    return "";
  }
}
