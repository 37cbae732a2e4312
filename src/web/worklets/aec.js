// realtime-voice's opt-in echo canceller (echoCanceller: "wasm"), loaded into the capture
// worklet's scope after worklets/capture.js: WebRTC's AEC3 compiled to wasm (aec/src/lib.rs),
// fed 10 ms frames of the microphone (downmixed) and of what the playback worklet played
// (globalThis.rvRef, a ring it writes). Frames then go out as a pair, one message per 10 ms:
// channel 0 cancelled, channel 1 the microphone as it came (downmixed), for the echo guard to
// judge by. Any failure turns it off and is reported ({type: "aec", error}); its figures go out
// once a second ({type: "aec", attenuation, delay}). No allocation per frame: the views over
// the module's memory are made again only if the memory grew.
const methods = {
  aecStart(module) {
    try {
      if (!module) throw "the module could not be loaded";
      const x = new WebAssembly.Instance(module, {}).exports;
      const n = x.rv_aec_init(sampleRate);
      if (n <= 0) throw "unsupported rate " + sampleRate;
      this.aec = { x, n, mic: new Float32Array(n), ref: new Float32Array(n), used: 0, frames: 0 };
      this.views();
      globalThis.rvRef = { buf: new Float32Array(8192), w: 0 };
      this.r = 0;
      this.flush();
      this.channels = 2; this.cap = 2 * n; this.free.length = 0; this.buf = new Float32Array(2 * n); this.used = 0;
    } catch (e) {
      this.aecFail(e);
    }
  },
  views() {
    // Over the module's memory; made again only if the memory grew (which detaches them).
    const a = this.aec, x = a.x;
    a.rb = new Float32Array(x.memory.buffer, x.rv_aec_render_buffer(), a.n);
    a.cb = new Float32Array(x.memory.buffer, x.rv_aec_capture_buffer(), a.n);
  },
  aecFail(e) {
    this.aec = null;
    globalThis.rvRef = null;
    this.port.postMessage({ type: "aec", error: String(e) });
  },
  cancel(input, ch) {
    const a = this.aec, n = input[0].length, ref = globalThis.rvRef, b = ref.buf, m = b.length - 1;
    // Played samples not read yet: none while nothing plays; too many (a stall) → the latest.
    if (ref.w - this.r > b.length / 2) this.r = ref.w - n;
    const have = ref.w - this.r >= n;
    for (let i = 0; i < n; i++) {
      let s = 0;
      for (let c = 0; c < ch; c++) s += input[c][i];
      a.mic[a.used] = s / ch;
      a.ref[a.used] = have ? b[(this.r + i) & m] : 0;
      if (++a.used === a.n && !this.frame()) return true;
    }
    if (have) this.r += n;
    return true;
  },
  frame() {
    const a = this.aec, x = a.x;
    a.used = 0;
    try {
      if (a.rb.length === 0) this.views();
      a.rb.set(a.ref);
      a.cb.set(a.mic);
      const r = x.rv_aec_render(), c = x.rv_aec_capture();
      if (r < 0 || c < 0) throw "error " + Math.min(r, c);
      if (a.cb.length === 0) this.views();
      for (let i = 0, b = this.buf; i < a.n; i++) { b[2 * i] = a.cb[i]; b[2 * i + 1] = a.mic[i]; }
      this.used = a.n;
      this.t0 = currentTime;
      this.flush();
      if (++a.frames % 100 === 0) this.port.postMessage({ type: "aec", attenuation: x.rv_aec_attenuation_db(), delay: x.rv_aec_delay_ms() });
      return true;
    } catch (e) {
      this.aecFail(e);
      return false;
    }
  },
};
Object.assign(globalThis.RealtimeVoiceCapture.prototype, methods);
