// The app's logic, shared by both package flavours (main.js: --target web, which needs init();
// main-bundler.js: --target bundler, where the bundler instantiates the wasm on import).
// Results go on document.body.dataset for the Playwright runner (tests/package/run.mjs) to read.
const out = document.body.dataset;

/** Initialises the package, then (with `?server=`) connects to the reference server and back. */
export async function run(init, VoiceClient, version) {
  try {
    await runChecks(init, VoiceClient, version);
    out.done = "ok";
  } catch (e) {
    out.failure = String(e && e.message ? e.message : e);
    out.done = "error";
  }
}

async function runChecks(init, VoiceClient, version) {
  await init();
  out.version = version();
  out.wasm = "ready";

  const server = new URLSearchParams(location.search).get("server");
  if (!server) return;
  // The reference server's dev endpoint mints a token for a new interview (it wants JSON, and
  // answers loopback origins in dev mode).
  const res = await fetch(`${server}/dev/token`, {
    method: "POST", headers: { "content-type": "application/json" }, body: "{}",
  });
  if (!res.ok) throw new Error(`POST /dev/token: HTTP ${res.status}`);
  const { token, interview_id: interviewId } = await res.json();

  const client = new VoiceClient({ baseUrl: server, interviewId, token });
  const states = [];
  const errors = [];
  let inputLevels = 0;
  client.on("status", (s) => {
    states.push(s.state);
    out.states = states.join(",");
  });
  client.on("mode", (m) => {
    out.mode = `${m.mode}:${m.reason}`;
  });
  client.on("level", (l) => {
    if (l.source === "input") out.inputLevels = String(++inputLevels);
  });
  client.on("error", (e) => {
    errors.push(`${e.kind}/${e.code}`);
    out.errors = errors.join(",");
  });

  const status = await client.connect();
  out.connected = status.state;
  out.clientMode = client.mode;
  // The capture worklet runs once input level events arrive (~20 Hz): wait for a few.
  const t0 = performance.now();
  while (inputLevels < 3) {
    if (performance.now() - t0 > 10000) throw new Error("no input level events within 10 s");
    await new Promise((resolve) => setTimeout(resolve, 50));
  }
  await client.disconnect();
  out.finalState = client.status.state;
}
