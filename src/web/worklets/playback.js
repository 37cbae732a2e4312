// realtime-voice playback worklet: a bounded ring buffer of the AI's audio (already resampled to
// the context's rate by the web shell) with a pre-buffer, silence on underrun (counted; the node is
// never torn down), a short fade on flush (no click), and a per-item count of the frames actually
// played, which the core turns into conversation.item.truncate's audio_end_ms.
// In:  {type:"push", item, samples: Float32Array} | {type:"end", item} | {type:"flush", rampMs}
//      | {type:"config", prebufferMs} (the core's adaptive pre-buffer, used from the next start)
// Underrun = the item ran dry and then more of it arrived (a gap), never the silence after its end.
// Out: {type:"progress", item, played, underruns, buffered, rms, peak} about every 50 ms while
//      audio is queued or playing, and at once after a flush; {type:"finished", item, played} when
//      an item drained after its end marker; {type:"overflow", item, frames} when the ring is full.
class RealtimeVoicePlayback extends AudioWorkletProcessor {
  constructor(options) {
    const o = (options && options.processorOptions) || {};
    super();
    this.ring = new Float32Array(Math.max(sampleRate, (o.capacitySeconds || 30) * sampleRate) | 0);
    this.read = 0; this.size = 0;
    this.prebuffer = this.frames(o.prebufferMs ?? 60);
    this.segs = []; // [{item, left}] in play order
    this.ended = new Set(); // queued items whose last delta has arrived
    this.playing = false; this.underruns = 0; this.done = true;
    this.dry = null; // the item that ran dry before its end: an underrun if more of it comes
    this.item = null; this.played = 0;
    this.fade = 0; this.fadeLen = 0; this.flushLeft = 0;
    this.quanta = 0; this.sumSq = 0; this.peak = 0; this.n = 0; this.wasActive = false;
    this.port.onmessage = (e) => this.onMessage(e.data);
  }
  frames(ms) { return Math.round((ms / 1000) * sampleRate); }
  onMessage(m) {
    if (m.type === "push") this.push(m.item, m.samples);
    else if (m.type === "config") this.prebuffer = this.frames(m.prebufferMs);
    else if (m.type === "end") {
      if (this.queued(m.item)) this.ended.add(m.item);
      else if (m.item === this.item && !this.done) { this.dry = null; this.finish(); } // it had drained
    } else if (m.type === "flush") {
      const ramp = Math.min(this.size, this.frames(m.rampMs ?? 8));
      if (!this.playing || ramp === 0) { this.discard(this.size); this.report(); return; }
      // Fade what plays next, then drop the rest of what was queued at this moment (audio that
      // arrives during the fade belongs to the next answer and stays).
      this.fadeLen = this.fade = ramp;
      this.flushLeft = this.size;
    }
  }
  push(item, s) {
    // More audio of an item that ran dry: that silence was an underrun (a gap in its middle).
    if (item === this.dry) { this.underruns++; this.dry = null; }
    const cap = this.ring.length;
    let n = s.length;
    if (this.size + n > cap) { // bounded: refuse what does not fit, and say so
      const over = this.size + n - cap;
      n -= over;
      this.port.postMessage({ type: "overflow", item, frames: over });
      if (n <= 0) return;
    }
    let w = (this.read + this.size) % cap;
    for (let i = 0; i < n; i++) { this.ring[w] = s[i]; if (++w === cap) w = 0; }
    this.size += n;
    const last = this.segs[this.segs.length - 1];
    if (last && last.item === item) last.left += n; else this.segs.push({ item, left: n });
  }
  discard(n) { // drops n frames from the head, keeping the per-item accounting right
    const cap = this.ring.length;
    while (n > 0 && this.segs.length > 0) {
      const seg = this.segs[0];
      const k = Math.min(n, seg.left);
      seg.left -= k; n -= k; this.size -= k; this.read = (this.read + k) % cap;
      if (seg.left === 0) { this.segs.shift(); this.ended.delete(seg.item); }
    }
    if (this.size === 0) this.playing = false;
    this.fadeLen = 0; this.flushLeft = 0; this.done = true; this.dry = null;
  }
  queued(item) { // a loop, not .some(): no closure allocated on the audio thread
    for (let k = 0; k < this.segs.length; k++) if (this.segs[k].item === item) return true;
    return false;
  }
  finish() {
    this.done = true;
    this.port.postMessage({ type: "finished", item: this.item, played: this.played });
  }
  process(_inputs, outputs) {
    const out = outputs[0][0];
    const len = out.length;
    const tail = this.segs.length > 0 && this.ended.has(this.segs[this.segs.length - 1].item);
    if (!this.playing && this.size > 0 && (this.size >= this.prebuffer || tail)) this.playing = true;
    let i = 0;
    if (this.playing) {
      const cap = this.ring.length;
      while (i < len && this.size > 0) {
        const seg = this.segs[0];
        if (seg.item !== this.item) { if (this.item !== null) this.report(); this.item = seg.item; this.played = 0; }
        this.done = false;
        let v = this.ring[this.read];
        if (this.fadeLen > 0) v *= --this.fade / this.fadeLen;
        out[i++] = v;
        this.sumSq += v * v; if (Math.abs(v) > this.peak) this.peak = Math.abs(v);
        if (++this.read === cap) this.read = 0;
        this.size--; this.played++;
        if (this.fadeLen > 0) this.flushLeft--;
        if (--seg.left === 0) {
          this.segs.shift();
          if (this.ended.delete(seg.item) && !this.queued(seg.item)) this.finish();
        }
        if (this.fadeLen > 0 && this.fade <= 0) { this.discard(Math.max(0, this.flushLeft)); this.report(); break; }
      }
      if (i < len && this.size === 0) {
        // Ran dry before the item's end: an underrun if more of it comes (counted in push), not
        // if its end marker comes next.
        if (!this.done) this.dry = this.item;
        this.playing = false;
      }
    }
    for (; i < len; i++) out[i] = 0;
    this.n += len;
    if (++this.quanta >= Math.round(0.05 * sampleRate / len)) {
      this.quanta = 0;
      const active = this.playing || this.size > 0;
      // Report while audio is queued or playing, and once more when it stops (the meter falls).
      if (this.item !== null && (active || this.wasActive)) this.report();
      this.wasActive = active;
    }
    return true;
  }
  report() {
    const rms = this.n > 0 ? Math.sqrt(this.sumSq / this.n) : 0;
    this.port.postMessage({ type: "progress", item: this.item, played: this.played, underruns: this.underruns,
      buffered: this.size, rms, peak: this.peak });
    this.sumSq = 0; this.peak = 0; this.n = 0;
  }
}
registerProcessor("realtime-voice-playback", RealtimeVoicePlayback);
