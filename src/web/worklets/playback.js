// realtime-voice playback worklet: a bounded ring of the AI's audio (already at the context's rate:
// the core resamples), a playout delay (the core learns it from arrival jitter), silence on
// underrun (counted; the node is never torn down), short fades at gaps and on flush (no click), and
// a per-item count of the frames actually played, which the core turns into
// conversation.item.truncate's audio_end_ms. Items are small integers given by the core.
// Concealment: when an item runs dry before its end, the pitch period the core found at the end of
// the last push is repeated (full level for HOLD_MS, then fading over FADE_MS) from the frames just
// played, and crossfaded into the late audio when it comes: a concealment, not an underrun. A late
// push after the concealment faded out is an underrun. Concealed frames are not counted as played.
// Real-time safe: everything is allocated in the constructor (typed rings for the audio and the
// item segments, one reused object per outgoing message); no closure, no allocation after it.
// In:  {type:"push", item, samples: Float32Array, period} | {type:"end", item} | {type:"flush", rampMs}
//      | {type:"config", prebufferMs}: the playout delay, used from the next start
//      | {type:"duck", db}: the output turned down db dB (0: full level), in DUCK_DOWN_MS / DUCK_UP_MS
// Playing starts `prebufferMs` after the first audio arrives (or once that much arrived before the
// last push, or at once when the item has ended), again after running dry inside an item.
// Underrun = the item ran dry and then more of it arrived (a gap), never the silence after its end.
// Out: {type:"progress", item, played, at, underruns, concealed, rms, peak} about every 50 ms while audio is queued
//      or playing, and at once after a flush (at: the context frame by which `played` frames of
//      the item had been played); {type:"finished", item} when an item drained after its end
//      marker; {type:"overflow", frames} when the ring refused audio.
const SEGS = 64; // item segments queued at most (an item switch starts one)
const HOLD_MS = 40, FADE_MS = 120; // concealment: full level, then a linear fade to silence
// Ducking ramps (linear in amplitude). Down over 150 ms, not at once: a far end that falls within
// 20 ms makes the browser's echo canceller leak loud enough to interrupt the assistant.
// The echo guard takes the reference as ducked once the ramp down is over (its DUCK_RAMP_FRAMES).
const DUCK_DOWN_MS = 150, DUCK_UP_MS = 300;
class RealtimeVoicePlayback extends AudioWorkletProcessor {
  constructor(options) {
    const o = (options && options.processorOptions) || {};
    super();
    this.ring = new Float32Array(Math.max(sampleRate, (o.capacitySeconds || 30) * sampleRate) | 0);
    this.read = 0; this.size = 0;
    this.delay = this.frames(o.prebufferMs ?? 60); this.waited = 0; this.lastPush = 0;
    this.segItem = new Int32Array(SEGS); this.segLeft = new Int32Array(SEGS); this.segEnd = new Uint8Array(SEGS);
    this.segHead = 0; this.segs = 0;
    this.playing = false; this.underruns = 0; this.done = true;
    this.dry = 0; // the item that ran dry before its end: an underrun if more of it comes
    this.item = 0; this.played = 0;
    this.edge = this.frames(3); this.gain = 1; // fade in after a gap, out when running dry
    this.fade = 0; this.fadeLen = 0; this.flushLeft = 0;
    this.quanta = 0; this.sumSq = 0; this.peak = 0; this.n = 0; this.wasActive = false;
    // Concealment: the period of the last push, the one being repeated (0: none), the ring index
    // it ends at, the position in it, the gain, its fade step, and frames left at full level.
    this.period = 0; this.conc = 0; this.concAt = 0; this.concPos = 0; this.concGain = 0;
    this.concStep = 1 / this.frames(FADE_MS); this.concHold = 0; this.concealed = 0;
    this.duck = 1; this.duckTo = 1; this.duckStep = 0; // output gain while ducked, its target
    this.progress = { type: "progress", item: 0, played: 0, at: 0, underruns: 0, concealed: 0, rms: 0, peak: 0 };
    this.finished = { type: "finished", item: 0 };
    this.overflow = { type: "overflow", frames: 0 };
    this.port.onmessage = this.onMessage.bind(this);
  }
  frames(ms) { return Math.round((ms / 1000) * sampleRate); }
  onMessage(e) {
    const m = e.data;
    if (m.type === "push") this.push(m.item, m.samples, m.period | 0);
    else if (m.type === "config") this.delay = this.frames(m.prebufferMs);
    else if (m.type === "duck") {
      this.duckTo = Math.pow(10, -(m.db || 0) / 20);
      this.duckStep = Math.abs(this.duckTo - this.duck) / this.frames(this.duckTo < this.duck ? DUCK_DOWN_MS : DUCK_UP_MS);
    }
    else if (m.type === "end") {
      const k = this.lastSeg(m.item);
      if (k >= 0) this.segEnd[k] = 1;
      else if (m.item === this.item && !this.done) { this.dry = 0; this.concFadeOut(8); this.finish(); } // it had drained
    } else if (m.type === "flush") {
      this.concFadeOut(m.rampMs ?? 8);
      const ramp = Math.min(this.size, this.frames(m.rampMs ?? 8));
      if (!this.playing || ramp === 0) { this.discard(this.size); this.report(currentFrame); return; }
      // Fade what plays next, then drop the rest of what was queued at this moment (audio that
      // arrives during the fade belongs to the next answer and stays).
      this.fadeLen = this.fade = ramp;
      this.flushLeft = this.size;
    }
  }
  seg(k) { return (this.segHead + k) % SEGS; }
  lastSeg(item) { // ring index of the last queued segment of `item`, or -1
    for (let k = this.segs - 1; k >= 0; k--) if (this.segItem[this.seg(k)] === item) return this.seg(k);
    return -1;
  }
  push(item, s, period) {
    // More audio of an item that ran dry: bridged if the concealment still sounds, else that
    // silence was an underrun (a gap in its middle).
    if (item === this.dry) { if (this.conc > 0) this.concealed++; else this.underruns++; this.dry = 0; }
    this.period = period;
    const cap = this.ring.length;
    const last = this.segs > 0 ? this.seg(this.segs - 1) : -1;
    const extend = last >= 0 && this.segItem[last] === item;
    let n = s.length;
    if (!extend && this.segs === SEGS) n = 0;
    if (this.size + n > cap) n = cap - this.size;
    if (n < s.length) { // bounded: refuse what does not fit, and say so
      this.overflow.frames = s.length - n;
      this.port.postMessage(this.overflow);
      if (n <= 0) return;
    }
    let w = (this.read + this.size) % cap;
    for (let i = 0; i < n; i++) { this.ring[w] = s[i]; if (++w === cap) w = 0; }
    this.size += n; this.lastPush = n;
    if (extend) this.segLeft[last] += n;
    else { const k = this.seg(this.segs++); this.segItem[k] = item; this.segLeft[k] = n; this.segEnd[k] = 0; }
  }
  discard(n) { // drops n frames from the head, keeping the per-item accounting right
    const cap = this.ring.length;
    while (n > 0 && this.segs > 0) {
      const h = this.segHead;
      const k = Math.min(n, this.segLeft[h]);
      this.segLeft[h] -= k; n -= k; this.size -= k; this.read = (this.read + k) % cap;
      if (this.segLeft[h] === 0) { this.segHead = (h + 1) % SEGS; this.segs--; }
    }
    if (this.size === 0) { this.playing = false; this.waited = 0; }
    this.fadeLen = 0; this.flushLeft = 0; this.done = true; this.dry = 0;
  }
  concFadeOut(ms) { // a concealment still sounding fades out within `ms`
    if (this.conc > 0) { this.concHold = 0; this.concStep = Math.max(this.concStep, 1 / Math.max(1, this.frames(ms))); }
  }
  concNext() { // the next concealment frame: the repeated period, at the concealment's gain
    if (this.concHold > 0) this.concHold--;
    else if ((this.concGain -= this.concStep) <= 0) { this.conc = 0; return 0; }
    const cap = this.ring.length;
    const v = this.ring[(this.concAt - this.conc + this.concPos + cap) % cap] * this.concGain;
    if (++this.concPos === this.conc) this.concPos = 0;
    return v;
  }
  finish() {
    this.done = true;
    this.finished.item = this.item;
    this.port.postMessage(this.finished);
  }
  process(_inputs, outputs) {
    const out = outputs[0][0];
    const len = out.length;
    if (!this.playing && this.size > 0) {
      this.waited += len;
      const ended = this.segEnd[this.seg(this.segs - 1)] === 1;
      // A concealment bridging the gap hands over to its item at once: the late audio's delay
      // is spent.
      const bridged = this.conc > 0 && this.segItem[this.segHead] === this.item;
      if (bridged || ended || this.waited >= this.delay || this.size - this.lastPush >= this.delay) {
        this.playing = true; this.waited = 0; this.gain = 0;
      }
    }
    let i = 0;
    if (this.playing) {
      const cap = this.ring.length;
      while (i < len && this.size > 0) {
        const h = this.segHead;
        const item = this.segItem[h];
        if (item !== this.item) { if (this.item !== 0) this.report(currentFrame + i); this.item = item; this.played = 0; }
        this.done = false;
        // Fade out over the last frames when the ring runs dry before the item's end (unless a
        // period will be repeated); fade in when playing (re)starts, crossfaded with a
        // concealment still sounding.
        const target = this.size < this.edge && this.segs === 1 && this.segEnd[h] === 0 && this.period === 0 ? this.size / this.edge : 1;
        this.gain = Math.min(target, this.gain + 1 / this.edge);
        let v = this.ring[this.read] * this.gain;
        if (this.conc > 0) { v += this.concNext() * (1 - this.gain); if (this.gain >= 1) this.conc = 0; }
        if (this.fadeLen > 0) v *= --this.fade / this.fadeLen;
        out[i++] = v;
        this.sumSq += v * v; if (Math.abs(v) > this.peak) this.peak = Math.abs(v);
        if (++this.read === cap) this.read = 0;
        this.size--; this.played++;
        if (this.fadeLen > 0) this.flushLeft--;
        if (--this.segLeft[h] === 0) {
          const ended = this.segEnd[h] === 1;
          this.segHead = (h + 1) % SEGS; this.segs--;
          if (ended) this.finish();
        }
        if (this.fadeLen > 0 && this.fade <= 0) { this.discard(Math.max(0, this.flushLeft)); this.report(currentFrame + i); break; }
      }
      if (i < len && this.size === 0) {
        // Ran dry before the item's end: an underrun if more of it comes (counted in push), not
        // if its end marker comes next.
        if (!this.done) {
          this.dry = this.item;
          if (this.period > 0 && this.conc === 0) {
            this.conc = this.period; this.concAt = this.read; this.concPos = 0; this.concGain = 1;
            this.concHold = this.frames(HOLD_MS); this.concStep = 1 / this.frames(FADE_MS);
          }
        }
        this.playing = false;
      }
    }
    for (; i < len; i++) {
      const v = this.conc > 0 ? this.concNext() : 0;
      out[i] = v; this.sumSq += v * v; if (Math.abs(v) > this.peak) this.peak = Math.abs(v);
    }
    if (this.duck !== 1 || this.duckTo !== 1) {
      for (let k = 0; k < len; k++) {
        if (this.duck !== this.duckTo) this.duck = this.duck > this.duckTo ? Math.max(this.duckTo, this.duck - this.duckStep) : Math.min(this.duckTo, this.duck + this.duckStep);
        out[k] *= this.duck;
      }
    }
    // The opt-in echo canceller in the capture worklet (same global scope) takes what is played
    // as its reference: a ring it sets up and reads.
    const ref = globalThis.rvRef;
    if (ref) {
      const b = ref.buf, m = b.length - 1;
      for (let k = 0; k < len; k++) b[(ref.w + k) & m] = out[k];
      ref.w += len;
    }
    this.n += len;
    if (++this.quanta >= Math.round(0.05 * sampleRate / len)) {
      this.quanta = 0;
      const active = this.playing || this.size > 0 || this.conc > 0;
      // Report while audio is queued or playing, and once more when it stops (the meter falls).
      if (this.item !== 0 && (active || this.wasActive)) this.report(currentFrame + len);
      this.wasActive = active;
    }
    return true;
  }
  report(at) {
    const p = this.progress;
    p.item = this.item; p.played = this.played; p.at = at; p.underruns = this.underruns; p.concealed = this.concealed;
    p.rms = this.n > 0 ? Math.sqrt(this.sumSq / this.n) : 0; p.peak = this.peak;
    this.port.postMessage(p);
    this.sumSq = 0; this.peak = 0; this.n = 0;
  }
}
registerProcessor("realtime-voice-playback", RealtimeVoicePlayback);
