// The same app with the --target bundler package: the bundler instantiates the wasm on import,
// so there is no init() to call.
import { VoiceClient, version } from "realtime-voice";
import { run } from "./app.js";

run(async () => {}, VoiceClient, version);
