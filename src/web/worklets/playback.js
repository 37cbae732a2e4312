// realtime-voice playback worklet: a bounded ring buffer of the AI's audio (already resampled to
// the context's rate by the WASM core) with a pre-buffer, silence on underrun (counted; the node is
// never torn down), a short fade on flush (no click), and a per-item count of the frames actually
// played, which the core turns into conversation.item.truncate's audio_end_ms.
// In:  {type:"push", item, samples: Float32Array} | {type:"end", item} | {type:"flush", rampMs}
//      | {type:"config", prebufferMs} (the core's adaptive pre-buffer, used from the next start)
// Out: {type:"progress", item, played, underruns, buffered, rms, peak} about every 50 ms while
//      audio plays, and at once after a flush or when an item finishes; {type:"overflow", frames}.
class RealtimeVoicePlayback extends AudioWorkletProcessor {
  constructor(options) {
    const o = (options && options.processorOptions) || {};
    super();
    this.ring = new Float32Array(Math.max(sampleRate, (o.capacitySeconds || 30) * sampleRate) | 0);
    this.read = 0; this.size = 0;
    this.prebuffer = Math.round(((o.prebufferMs ?? 60) / 1000) * sampleRate);
    this.segs = []; // [{item, left}] in play order; one entry per item (pushes merge)
    this.ended = new Set(); // items whose last delta arrived: play their tail below the pre-buffer
    this.playing = false; this.underruns = 0; this.done = true;
    this.item = null; this.played = 0; this.fade = 0; this.fadeLen = 0;
    this.quanta = 0; this.sumSq = 0; this.peak = 0; this.n = 0;
    this.port.onmessage = (e) => this.onMessage(e.data);
  }
  onMessage(m) {
    if (m.type === "push") this.push(m.item, m.samples);
    else if (m.type === "end") this.ended.add(m.item);
    else if (m.type === "config") this.prebuffer = Math.round((m.prebufferMs / 1000) * sampleRate);
    else if (m.type === "flush") {
      this.fadeLen = this.fade = Math.min(this.size, Math.round(((m.rampMs ?? 8) / 1000) * sampleRate));
      if (this.fade === 0) this.drop();
    }
  }
  push(item, s) {
    const cap = this.ring.length;
    let n = s.length;
    if (this.size + n > cap) { // bounded: refuse what does not fit, and say so
      const over = this.size + n - cap;
      n -= over;
      this.port.postMessage({ type: "overflow", item, frames: over });
    }
    let w = (this.read + this.size) % cap;
    for (let i = 0; i < n; i++) { this.ring[w] = s[i]; if (++w === cap) w = 0; }
    this.size += n;
    const last = this.segs[this.segs.length - 1];
    if (last && last.item === item) last.left += n; else this.segs.push({ item, left: n });
  }
  drop() { // after a flush: discard everything queued, report where the current item stopped
    this.size = 0; this.segs = []; this.ended.clear(); this.playing = false; this.fadeLen = 0; this.done = true;
    this.report();
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
        if (this.fadeLen > 0) { v *= this.fade / this.fadeLen; if (--this.fade <= 0) { out[i++] = v; this.played++; this.drop(); break; } }
        out[i++] = v;
        this.sumSq += v * v; if (Math.abs(v) > this.peak) this.peak = Math.abs(v);
        if (++this.read === cap) this.read = 0;
        this.size--; this.played++;
        if (--seg.left === 0) {
          this.segs.shift();
          if (this.segs.length === 0) { this.done = this.ended.delete(seg.item); this.report(); }
        }
      }
      if (i < len && this.size === 0) {
        // Ran dry: mid-item (more audio is due) that is an underrun; after an item's end it is not.
        if (!this.done) this.underruns++;
        this.playing = false;
      }
    }
    for (; i < len; i++) out[i] = 0;
    this.n += len;
    if (++this.quanta >= Math.round(0.05 * sampleRate / len)) { this.quanta = 0; if (this.item !== null) this.report(); }
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
