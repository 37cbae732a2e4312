// realtime-voice capture worklet: copies the first input's channels of each render quantum into
// one interleaved Float32Array and posts it (transferred, not copied) to the main thread, where the
// WASM core downmixes, resamples, converts to PCM16 and chunks. No DSP here, by design.
// Frames are batched (`batch` render quanta per message, default 4 ≈ 10 ms at 48 kHz) to keep
// message overhead low. Each message: {frames: Float32Array, channels, time} where `time` is the
// context's currentTime at the first frame.
class RealtimeVoiceCapture extends AudioWorkletProcessor {
  constructor(options) {
    super();
    const o = (options && options.processorOptions) || {};
    this.batch = Math.max(1, o.batch | 0 || 4);
    this.channels = 0;
    this.buf = null;
    this.used = 0;
    this.t0 = 0;
    this.port.onmessage = (e) => { if (e.data === "stop") this.stopped = true; };
  }
  process(inputs) {
    if (this.stopped) return false;
    const input = inputs[0];
    const ch = input ? input.length : 0;
    if (ch === 0) return true; // no source connected (yet): nothing to capture
    const n = input[0].length;
    if (ch !== this.channels || !this.buf) {
      this.flush();
      this.channels = ch;
      this.cap = n * ch * this.batch;
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
    this.port.postMessage({ frames, channels: this.channels, time: this.t0 }, [frames.buffer]);
    this.buf = new Float32Array(this.cap); // the posted buffer was transferred (detached) here
    this.used = 0;
  }
}
registerProcessor("realtime-voice-capture", RealtimeVoiceCapture);
