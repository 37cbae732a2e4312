// The --target bundler flavour's types (no init(): the bundler instantiates the wasm on import),
// compiled with `tsc --strict --noEmit` by scripts/test-package.sh once that flavour is installed.
import { VoiceClient, version, type StatusEvent } from "realtime-voice";

export function typedUse(): string {
  const client = new VoiceClient({ baseUrl: "https://api.example.com", interviewId: "iv-1", token: "jwt" });
  const off = client.on("status", (s) => s.state);
  const status: StatusEvent = client.status;
  // @ts-expect-error: no such event
  client.on("stauts", (s) => s);
  // @ts-expect-error: StatusEvent has no field `status`
  client.on("status", (s) => s.status);
  off();
  return `${version()} ${status.state}`;
}
