/** Connection state. `text` is the fallback mode; `failed` carries a reason. */
export type VoiceState = "idle" | "connecting" | "connected" | "reconnecting" | "text" | "closed" | "failed";
/** Why a session failed: rejected token, interview already connected elsewhere, the browser
 * cannot do it, the network, or the server. */
export type FailReason = "auth" | "busy" | "unsupported" | "network" | "server" | "internal";

/** Options of `new VoiceClient(options)`. Validated at construction; a bad option throws an Error
 * whose message names it. */
export interface VoiceClientOptions {
  /** Backend base URL: `https://api.example.com` (mapped to `wss://`) or `wss://...`. `http://` and
   * `ws://` only for localhost / 127.0.0.1 / [::1], unless `allowInsecureTransport` is true. */
  baseUrl: string;
  /** The interview id: the socket opens `{baseUrl}/api/v1/interviews/{interviewId}/realtime/connect`. */
  interviewId: string;
  /** A JWT. Give either `token` or `tokenProvider`. */
  token?: string;
  /** Called before every (re)connect and HTTP text request, so an expired token is refreshed. */
  tokenProvider?: () => string | Promise<string>;
  /** How the token travels: `?token=` (default) or subprotocols `["realtime", "bearer.<jwt>"]`. */
  authVia?: "query" | "subprotocol";
  /** Start in voice (default) or text mode. */
  mode?: "voice" | "text";
  /** Shape of `session.update` frames: `ga` (default) or the 2024 `beta`. Both are read. */
  protocol?: "ga" | "beta";
  /** Allow `ws://`/`http://` to a host other than localhost. Never in production. */
  allowInsecureTransport?: boolean;
  /** When the socket is unusable in text mode, POST `{baseUrl}/api/v1/interviews/{id}/messages`. */
  httpFallback?: boolean;
  /** Microphone chunk length, ms (100–1000, default 100). At most 10 chunks per second are sent. */
  chunkMs?: number;
  /** Largest chunk when catching up after a reconnect, ms (default 1000). */
  maxChunkMs?: number;
  /** Microphone audio kept while reconnecting, ms (default 10000); beyond it loss is reported. */
  maxBacklogMs?: number;
  /** "auto" (default): once the capture is shown to follow what the assistant plays (an echo
   * path), send as silence the microphone audio its echo explains while the assistant speaks,
   * so the server's VAD does not make it interrupt itself; a voice above the echo passes. With
   * the browser's canceller on desktop Chromium and on Firefox on Linux and Windows the
   * microphone is also captured raw (the browser's processing off) and the guard judges by
   * that, where the echo follows what is played even when the canceller's residue does not;
   * the processed audio is what is sent. Elsewhere (Safari, Firefox on macOS, mobile), or
   * where the browser does not give both at once, it judges the processed capture.
   * "processed": the processed capture only, never a second one.
   * "raw": the raw capture beside the processed one wherever the browser hands both over as
   * asked (not only where known to).
   * "off": the audio goes unchanged and the echo metrics are measured. */
  echoGuard?: "auto" | "off" | "raw" | "processed";
  /** "browser" (default): the browser's echo cancellation, noise suppression and gain control.
   * "wasm" (experimental): WebRTC's AEC3 in the capture worklet, with what the player plays as
   * its reference and the browser's processing off; a separate module (≈ 220 KB gzip) fetched
   * only then. The echo guard judges the microphone as it came beside the canceller's output
   * (a pair, as with the browser's canceller on desktop Chromium and Firefox): where the
   * browser gives no pair (Firefox on macOS, Safari), on speakers, a way to keep the agent from
   * interrupting itself (measured in Firefox, docs/AUDIO.md). If it cannot load or run,
   * the microphone is reopened with the browser's canceller (`error` `echo_canceller_failed`,
   * then an `audio` event with that reason). */
  echoCanceller?: "browser" | "wasm" | "none";
  /** "auto" (default): the assistant is turned down 20 dB the moment the microphone gets loud
   * over it (20 ms of voice), so that the echo canceller lets the user's barge-in through to the
   * server's VAD; back up after 500 ms of quiet (at most 3 s). "off": never. */
  bargeInDuck?: "auto" | "off";
  /** Where the "wasm" canceller's module is (default: the package's aec/realtime_voice_aec.wasm);
   * its worklet part, worklets/aec.js, is looked for beside `captureWorkletUrl` when that is given. */
  echoCancellerUrl?: string;
  /** Playout delay at the start and its floor, ms (default 60). */
  prebufferMs?: number;
  /** Ceiling of the playout delay, ms (default 300), learnt from the arrival jitter of the
   * answers' audio (p99 of its lateness + 10 ms; a late delta raises it at once, it falls by
   * 1 ms every 4 s) from `prebufferMs` up. Set it equal to `prebufferMs` for a fixed delay. */
  maxPrebufferMs?: number;
  /** Reconnect attempts before falling back to text mode (default 8). */
  maxReconnectAttempts?: number;
  /** Exponential backoff with full jitter: base and cap, ms (defaults 250 and 8000). */
  backoffBaseMs?: number;
  backoffMaxMs?: number;
  /** A connection attempt that has not opened by then is abandoned, ms (default 10000). */
  connectTimeoutMs?: number;
  /** An open link on which a server frame is due (a response in progress, a request
   * unanswered), or whose sent bytes do not drain, for this long is declared dead and
   * replaced (`dead_link`), ms (default 10000, 2000–60000). */
  deadLinkTimeoutMs?: number;
  /** After a connection, a network outage is retried at least this long before giving up,
   * beyond `maxReconnectAttempts`, ms (default 300000). */
  reconnectWindowMs?: number;
  /** A tool handler that has not answered by then gives the model a timeout error, ms
   * (default 10000). */
  toolTimeoutMs?: number;
  /** Largest server frame accepted, bytes (default 4 MiB). */
  maxFrameBytes?: number;
  /** Model name for cost estimates when the server does not say (session.created). */
  model?: string;
  /** Price override, USD per 1M tokens. */
  prices?: { textInput: number; textCachedInput: number; textOutput: number; audioInput: number; audioCachedInput: number; audioOutput: number };
  /** Responses kept for latency percentiles (default 256). */
  latencyWindow?: number;
  /** Interval of `metrics` events while connected, ms (default 1000; 0 = never). */
  metricsIntervalMs?: number;
  /** Which server events reach `event` listeners (default `no_audio`: audio deltas skipped). */
  serverEvents?: "all" | "no_audio" | "none";
  /** getUserMedia audio constraints, merged over the defaults (echoCancellation, noiseSuppression,
   * autoGainControl on; channelCount 1). Put `deviceId` here or use `setInputDevice`. */
  micConstraints?: MediaTrackConstraints;
  /** URLs of the worklet modules, when not served beside the package (`worklets/*.js`). */
  captureWorkletUrl?: string;
  playbackWorkletUrl?: string;
  /** Output device id (where `setSinkId` exists). */
  sinkId?: string;
  /** One live connection per interview per browser through the Web Locks API (default true). */
  singleTab?: boolean;
}

export interface StatusEvent {
  state: VoiceState;
  /** For `failed`, the FailReason; otherwise the detail of the transition, or null. */
  reason: string | null;
  /** What happened, in snake_case (`connect`, `connected`, `reconnected`, `connection_lost`,
   * `token_refresh`, `token_rejected`, `duplicate_connection`, `other_tab`, ...). */
  detail: string | null;
  /** The WebSocket close code that caused it, if any. */
  closeCode: number | null;
  /** Reconnect attempt number: 0 for the first connect, counting up while reconnecting (reset
   * after a connection stayed up 5 s). */
  attempt: number;
}
export interface ModeEvent {
  mode: "voice" | "text";
  /** Why: `connect` (the mode asked for), `mic_denied`, `mic_absent`, `no_audio_worklet`, `audio_context_failed`,
   * `realtime_disabled`, `reconnect_exhausted`, ... */
  reason: string;
}
export interface TranscriptEvent {
  role: "user" | "assistant";
  itemId: string;
  /** A delta when `final` is false; the item's whole text when true. */
  text: string;
  final: boolean;
}
export interface SpeechEvent { who: "user" | "assistant"; speaking: boolean }
export interface LevelEvent {
  /** `input`: the microphone; `output`: the AI's voice as played. */
  source: "input" | "output";
  rmsDbfs: number;
  peakDbfs: number;
}
export interface MetricsSnapshot {
  latencyP50Ms: number | null; latencyP95Ms: number | null; latencyP99Ms: number | null;
  latencySamples: number;
  timeToFirstAudioMs: number | null;
  /** `connect()` → the player's first report of AI audio played (the audio devices' start-up
   * included, the device's output latency not). */
  timeToFirstSoundMs: number | null;
  captureToSendLastMs: number | null; captureToSendMaxMs: number; captureToSendAvgMs: number | null;
  underruns: number; audioInterruptions: number; capturedAudioMs: number; sentAudioMs: number; droppedPlaybackMs: number; prebufferMs: number;
  echoReturnLossDb: number | null; echoDelayMs: number | null; echoGuardedMs: number; echoHeldMs: number; suspectedSelfInterruptions: number;
  /** Whether the echo guard judges the raw microphone: `echoCanceller` "none", or `echoGuard`
   * "auto" or "raw" while the browser captures it beside the processed one. */
  echoGuardRaw: boolean;
  /** The echo canceller in use ("browser" again after the "wasm" one failed), and the wasm one's
   * figures: how much quieter its output was than the microphone over the last second (dB) and
   * its estimate of the echo path's delay (ms). */
  echoCanceller: "browser" | "wasm" | "none"; aecAttenuationDb: number | null; aecDelayMs: number | null;
  /** The playout delay at answer starts (the latency playback adds), p50 / p95 over 256 answers. */
  prebufferP50Ms: number | null; prebufferP95Ms: number | null;
  /** Late deltas bridged by repeating the last pitch period instead of a gap (not underruns). */
  concealments: number;
  /** Times the assistant was turned down because the microphone got loud over it (`bargeInDuck`). */
  bargeInDucks: number;
  /** The p99 lateness of the answers' audio the delay covers, ms; underruns per minute of playback. */
  arrivalJitterMs: number; underrunsPerMin: number;
  bufferedAudioMs: number; droppedAudioMs: number;
  /** Mic audio still buffered when audio stopped (disconnect, failure, text mode): thrown away on purpose. */
  discardedAudioMs: number;
  connectionAttempts: number; connectionSuccesses: number; reconnects: number;
  lastCloseCode: number | null; lastCloseReason: string | null;
  bytesSent: number; framesSent: number; framesReceived: number;
  socketBackpressureEvents: number; socketBufferedMaxBytes: number; deadLinks: number; protocolErrors: number;
  eventsDropped: number;
  model: string | null; costUsd: number; costIsUpperBound: boolean; costUnknownModel: boolean;
  inputTokens: number; outputTokens: number;
}
export interface VoiceErrorEvent {
  kind: "protocol" | "server" | "audio" | "http" | "token" | "tool" | "socket" | "internal";
  /** Stable code: `invalid_json`, `rate_limit_exceeded`, `invalid_audio_format`, `audio_overflow`, ... */
  code: string;
  message: string;
}
/** The browser's audio state. `needsGesture`: audio is stopped until the user clicks, taps or
 * presses a key (Safari, iOS, a background tab); the client resumes it on that gesture by itself —
 * prompt the user for one. A device change the client acted on adds the fields of
 * {@link AudioDeviceChange}. */
export interface AudioStateEvent extends Partial<AudioDeviceChange> {
  state: "running" | "suspended" | "interrupted" | "closed";
  needsGesture: boolean;
}
/** A device came or went and the client healed audio by itself (the session stays in voice
 * mode): a microphone being reopened (`recovering`), then audio flowing again (`recovered`).
 * Only when every try fails does a `mode` event switch to text (`track_ended`, `mic_absent`,
 * `mic_denied`). */
export interface AudioDeviceChange {
  /** Set while the microphone is being reopened. */
  recovering?: "mic";
  /** Set once audio flows again: on a new microphone, or on another output device. */
  recovered?: "mic" | "output";
  /** `track_ended` (unplugged, taken by the system), `device_removed` (no longer listed),
   * `device_returned` (the chosen device is back), `format_changed` (e.g. a headset switching
   * to two channels), `sink_failed` (the browser refused the chosen output device),
   * `echo_canceller_failed` (the "wasm" echo canceller stopped: reopened with the browser's). */
  reason: "track_ended" | "device_removed" | "device_returned" | "format_changed" | "sink_failed" | "echo_canceller_failed";
  /** The device tried or now in use: a `deviceId`, or `"default"`. */
  device: string;
  /** The try (1 for the first; 0 for a change that needed none). */
  attempt: number;
}
/** Every server event, raw. */
export interface ServerEventMessage { type: string; event: any }

export interface VoiceClientEventMap {
  status: StatusEvent;
  mode: ModeEvent;
  transcript: TranscriptEvent;
  speech: SpeechEvent;
  level: LevelEvent;
  metrics: MetricsSnapshot;
  error: VoiceErrorEvent;
  event: ServerEventMessage;
  audio: AudioStateEvent;
}
export interface AudioDevice { deviceId: string; label: string }
/** A tool the model may call: a function with a JSON Schema for its arguments. */
export interface ToolDefinition {
  /** 1–64 letters, digits, `_` or `-`. */
  name: string;
  description?: string;
  /** JSON Schema of the arguments object. */
  parameters?: Record<string, unknown>;
}
/** Runs a tool call: returns (or resolves to) any JSON-serialisable result. A throw, a
 * rejection, a result that is not JSON or no answer within `toolTimeoutMs` still gives the model
 * an error object it can read, and the app an `error` event of kind `tool`. */
export type ToolHandler<A = any> = (args: A) => unknown | Promise<unknown>;

export interface VoiceClient {
  /** Adds a listener; returns a function that removes it. */
  on<K extends keyof VoiceClientEventMap>(event: K, listener: (e: VoiceClientEventMap[K]) => void): () => void;
  /** Removes a listener added with `on`. */
  off<K extends keyof VoiceClientEventMap>(event: K, listener: (e: VoiceClientEventMap[K]) => void): void;
  /** The current status. */
  readonly status: StatusEvent;
  /** A snapshot of the metrics. */
  metrics(): MetricsSnapshot;
  /** Gives the model a tool that runs in the page (sent in `session.update` now and after
   * every reconnect); returns a function that unregisters it. */
  registerTool<A = any>(definition: ToolDefinition, handler: ToolHandler<A>): () => void;
  /** Sends any client event the API does not wrap, on the open connection (throws otherwise). */
  sendEvent(event: { type: string; [key: string]: unknown }): void;
}
