// Compiled with `tsc --strict --noEmit` against the installed package (scripts/test-package.sh):
// the typed API must accept what an app writes and refuse what it gets wrong. Every
// `@ts-expect-error` line must really be an error, so types that are too loose (any) fail the check.
import init, {
  VoiceClient,
  version,
  type FailReason,
  type MetricsSnapshot,
  type StatusEvent,
  type VoiceClientOptions,
  type VoiceState,
} from "realtime-voice";

/** Exact type equality, so an `any` does not pass for the real type. */
type Equal<A, B> = (<T>() => T extends A ? 1 : 2) extends <T>() => T extends B ? 1 : 2 ? true : false;
function assertType<T extends true>(): T | undefined {
  return undefined;
}

export async function typedUse(): Promise<void> {
  await init();
  const v: string = version();

  const options: VoiceClientOptions = {
    baseUrl: "https://api.example.com",
    interviewId: "iv-1",
    tokenProvider: async () => "jwt",
    authVia: "subprotocol",
    prebufferMs: 60,
  };
  const client = new VoiceClient(options);

  // The line: `s` is a StatusEvent, `s.state` a VoiceState.
  const off = client.on("status", (s) => s.state);
  client.on("status", (s) => {
    assertType<Equal<typeof s, StatusEvent>>();
    assertType<Equal<typeof s.state, VoiceState>>();
    const code: number | null = s.closeCode;
    const attempt: number = s.attempt;
    if (s.state === "failed") {
      const reason = s.reason as FailReason;
      void reason;
    }
    void code;
    void attempt;
  });
  client.on("transcript", (t) => {
    const role: "user" | "assistant" = t.role;
    const text: string = t.text;
    const done: boolean = t.final;
    void role;
    void text;
    void done;
  });
  client.on("mode", (m) => m.mode === "text" && m.reason.length > 0);
  client.on("level", (l) => l.source === "input" && l.rmsDbfs < 0);
  client.on("speech", (e) => e.who === "assistant" && e.speaking);
  client.on("error", (e) => e.kind === "protocol" && e.code.length > 0);
  client.on("event", (e) => e.type.startsWith("response."));
  client.on("metrics", (m) => {
    assertType<Equal<typeof m, MetricsSnapshot>>();
    const p95: number | null = m.latencyP95Ms;
    void p95;
  });
  off();
  const listener = (s: StatusEvent): void => void s.attempt;
  client.on("status", listener);
  client.off("status", listener);

  const status: StatusEvent = client.status;
  const snapshot: MetricsSnapshot = client.metrics();
  assertType<Equal<typeof client.status, StatusEvent>>();
  assertType<Equal<ReturnType<typeof client.metrics>, MetricsSnapshot>>();
  await client.connect();
  client.setMuted(true);
  client.sendText("hello");
  client.interrupt();
  client.updateSession({ instructions: "Be brief." });
  const mode: "voice" | "text" = client.mode;
  void mode;
  const mics = await client.listInputDevices();
  const firstId: string | undefined = mics[0]?.deviceId;
  if (firstId) await client.setInputDevice(firstId);
  await client.disconnect();
  void v;
  void status;
  void snapshot;

  // --- what must not type-check -------------------------------------------------------------
  // @ts-expect-error: no such event
  client.on("stauts", (s) => s);
  // @ts-expect-error: StatusEvent has no field `status`
  client.on("status", (s) => s.status);
  // @ts-expect-error: `state` is a union of state names, not a number
  client.on("status", (s) => s.state === 3);
  // @ts-expect-error: a transcript listener is not a status listener
  client.on("status", (t: { role: string; text: string }) => t.text);
  // @ts-expect-error: StatusEvent has no `latencyP50Ms`
  void status.latencyP50Ms;
  // @ts-expect-error: setMuted takes a boolean
  client.setMuted("yes");
  // @ts-expect-error: baseUrl is required
  const noBase: VoiceClientOptions = { interviewId: "iv-1", token: "jwt" };
  // @ts-expect-error: authVia is "query" or "subprotocol"
  const badAuth: VoiceClientOptions = { baseUrl: "wss://x", interviewId: "i", authVia: "cookie" };
  // @ts-expect-error: the constructor takes VoiceClientOptions, not a URL string
  new VoiceClient("wss://api.example.com");
  // @ts-expect-error: connect() resolves with a StatusEvent, which has no `foo`
  void (await client.connect()).foo;
  // @ts-expect-error: the mode is "voice" or "text", never "video"
  void (client.mode === "video");
  // @ts-expect-error: updateSession takes a session object, not a string
  client.updateSession("{}");
  // Tools: the handler's argument type comes from the generic; the result may be a Promise.
  const unregister: () => void = client.registerTool<{ text: string }>(
    { name: "show_question", parameters: { type: "object" } },
    async (args) => args.text.length,
  );
  unregister();
  // @ts-expect-error: the handler's args have no `txt`
  client.registerTool<{ text: string }>({ name: "q" }, (args) => args.txt);
  // @ts-expect-error: a tool definition needs a name
  client.registerTool({ description: "x" }, () => 1);
  client.sendEvent({ type: "input_audio_buffer.clear" });
  // @ts-expect-error: a client event needs a string type
  client.sendEvent({ kind: "x" });
  void noBase;
  void badAuth;
}
