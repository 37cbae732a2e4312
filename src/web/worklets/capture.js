// realtime-voice capture worklet: copies the first input's channels of each render quantum into
// one interleaved Float32Array and posts it (transferred, not copied) to the main thread, where the
// WASM core downmixes, resamples, converts to PCM16 and chunks. No DSP here, by design.
// Frames are batched (`batch` render quanta per message, default 4 ≈ 10 ms at 48 kHz) to keep
// message overhead low. Each message: {frames: Float32Array, channels, time, pair} where `time` is
// the context's currentTime at the first frame and `pair` says the echo canceller
// (worklets/aec.js) made the frames: its output and the microphone as it came. Real-time safe:
// the main thread hands each buffer back ({type: "recycle", buffer}) and process() takes the next
// one from that pool, so it allocates only while the pool fills (the first few batches, or a main
// thread that falls behind).
class RealtimeVoiceCapture extends AudioWorkletProcessor {
  constructor(options) {
    super();
    const o = (options && options.processorOptions) || {};
    this.batch = Math.max(1, o.batch | 0 || 4);
    this.channels = 0;
    this.buf = null;
    this.used = 0;
    this.t0 = 0;
    this.free = []; // buffers handed back, each of `cap` samples
    this.port.onmessage = (e) => {
      const m = e.data;
      if (m === "stop") this.stopped = true;
      else if (m && m.type === "aec") {
        if (this.aecStart) this.aecStart(m.module);
        else this.port.postMessage({ type: "aec", error: "worklets/aec.js is not loaded" });
      }
      else if (m && m.type === "recycle" && m.buffer && this.free.length < 8
        && m.buffer.byteLength === this.cap * 4) this.free.push(new Float32Array(m.buffer));
    };
  }
  process(inputs) {
    if (this.stopped) return false;
    const input = inputs[0];
    const ch = input ? input.length : 0;
    if (ch === 0) return true; // no source connected (yet): nothing to capture
    if (this.aec) return this.cancel(input, ch);
    const n = input[0].length;
    if (ch !== this.channels || !this.buf) {
      this.flush();
      this.channels = ch;
      this.cap = n * ch * this.batch;
      this.free.length = 0; // buffers of the old size
      this.buf = new Float32Array(this.cap);
      this.used = 0;
    }
    if (this.used === 0) this.t0 = currentTime;
    const b = this.buf;
    let w = this.used * ch;
    for (let i = 0; i < n; i++) for (let c = 0; c < ch; c++) b[w++] = input[c][i];
    this.used += n;
    if (this.used * ch >= b.length) this.flush();
    return true;
  }
  flush() {
    if (!this.buf || this.used === 0) return;
    const frames = this.used * this.channels === this.cap ? this.buf : this.buf.slice(0, this.used * this.channels);
    this.port.postMessage({ frames, channels: this.channels, time: this.t0, pair: !!this.aec }, [frames.buffer]);
    // The posted buffer was transferred (detached) here: take a recycled one.
    this.buf = this.free.pop() || new Float32Array(this.cap);
    this.used = 0;
  }
}
registerProcessor("realtime-voice-capture", RealtimeVoiceCapture);
// worklets/aec.js (loaded only for echoCanceller: "wasm") adds the echo canceller's methods.
globalThis.RealtimeVoiceCapture = RealtimeVoiceCapture;
