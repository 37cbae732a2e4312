// The audio graph (src/web/audio.rs drives it; wasm-bindgen copies this file into snippets/):
// getUserMedia → MediaStreamSource → capture worklet ──port──► on(0, frames, channels)
// play(…) ──port──► playback worklet → MediaStreamDestination → <audio> (the echo canceller sees
// it; setSinkId picks the device). One AudioContext at the device's native rate. Nothing here
// decides: each function does what the core's output asked for, and failures go back as
// 1 (no AudioWorklet), 2 (the context failed) or getUserMedia's error, for the core to judge.
// Events, all through g.on(kind, x, a, b, c, d, e): 0 frames (x, a = channels), 1 progress
// (a item, b played, c underruns, d rms, e peak), 2 overflow (a frames), 3 finished (a item),
// 4 track ended, 5 devices changed, 6 context state (x).

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
  return { c, e: new Audio() };
}

// The app's constraints with deviceId {exact: id}, or without any deviceId for null.
const withDevice = (c, id) => {
  c = { ...c };
  if (id == null) delete c.deviceId;
  else c.deviceId = { exact: id };
  return c;
};
const gum = (c) => devices().getUserMedia({ audio: c });

// Opens the microphone `id` (null: the default).
export async function openMic(c, id) {
  return gum(withDevice(c, id));
}

// Every track of `s` stopped (the microphone light goes off).
export function stopTracks(s) {
  for (const t of s.getTracks()) t.stop();
}

// Loads both worklets, opens the microphone (`id`, or the constraints as they are), connects
// everything and starts reporting to `on`. Resolves with [sampleRate, state]; rejects (after
// closing the context) with 1, 2 or getUserMedia's error.
export async function start(g, captureUrl, playbackUrl, c, id, prebufferMs, report) {
  const ctx = g.c;
  // Every argument, typed: wasm-bindgen's debug builds check them.
  const on = (kind, x = null, a = 0, b = 0, c = 0, d = 0, e = 0) => report(kind, x, a, b, c, d, e);
  try {
    try {
      await ctx.audioWorklet.addModule(captureUrl);
      await ctx.audioWorklet.addModule(playbackUrl);
    } catch {
      throw 1;
    }
    const s = await gum(id == null ? c : withDevice(c, id));
    let failure = 1;
    try {
      const cap = new AudioWorkletNode(ctx, "realtime-voice-capture");
      const play = new AudioWorkletNode(ctx, "realtime-voice-playback", {
        numberOfInputs: 0,
        outputChannelCount: [1],
        processorOptions: { prebufferMs },
      });
      failure = 2;
      const dest = ctx.createMediaStreamDestination();
      play.connect(dest);
      g.e.srcObject = dest.stream;
      quiet(g.e.play());
      // The capture node outputs silence; connecting it keeps it pulled in every engine.
      cap.connect(ctx.destination);
      g.cap = cap;
      g.play = play;
      attach(g, s);
    } catch {
      stopTracks(s);
      throw failure;
    }
    g.on = on;
    g.cap.port.onmessage = ({ data: d }) => {
      const f = d.frames;
      if (!f) return;
      on(0, f, d.channels);
      // Copied out by now: the buffer goes back to the worklet's pool (transferred).
      g.cap.port.postMessage({ type: "recycle", buffer: f.buffer }, [f.buffer]);
    };
    g.play.port.onmessage = ({ data: d }) => {
      const t = d.type;
      if (t == "progress") on(1, null, d.item, d.played, d.underruns, d.rms, d.peak);
      else if (t == "overflow") on(2, null, d.frames);
      else if (t == "finished") on(3, null, d.item);
    };
    ctx.onstatechange = () => on(6, ctx.state);
    // A listener, not `ondevicechange`: the app's own handler stays.
    g.dc = () => on(5);
    devices().addEventListener("devicechange", g.dc);
    quiet(ctx.resume());
    return [ctx.sampleRate, ctx.state];
  } catch (e) {
    quiet(ctx.close());
    throw e;
  }
}

// Connects the stream `s` to the capture worklet, then retires the previous one; throws (with
// `s` stopped, the previous stream still running) when it cannot be connected.
export function attach(g, s) {
  let src;
  try {
    src = g.c.createMediaStreamSource(s);
    src.connect(g.cap);
  } catch (e) {
    stopTracks(s);
    throw e;
  }
  if (g.src) g.src.disconnect();
  if (g.s) {
    // Detached first: a late `ended` of the old tracks must not be reported.
    for (const t of g.s.getAudioTracks()) t.onended = null;
    stopTracks(g.s);
  }
  for (const t of s.getAudioTracks()) t.onended = () => g.on && g.on(4);
  g.src = src;
  g.s = s;
}

// Queues AI audio (context rate, mono) for `item`; the samples are copied, then transferred.
export function play(g, item, samples) {
  const a = new Float32Array(samples);
  g.play.port.postMessage({ type: "push", item, samples: a }, [a.buffer]);
}

// The playback worklet's other messages: "end" (item), "config" (prebufferMs), "flush" (rampMs).
const KEY = { end: "item", config: "prebufferMs", flush: "rampMs" };
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
  return g.e.setSinkId(id);
}

// Stops the microphone, the worklets, the output element and the context (also of a graph
// object that was never started).
export function stop(g) {
  g.on = null;
  if (g.cap) {
    g.cap.port.postMessage("stop");
    g.cap.port.onmessage = null;
    g.play.port.onmessage = null;
  }
  if (g.s) {
    for (const t of g.s.getAudioTracks()) t.onended = null;
    stopTracks(g.s);
  }
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
