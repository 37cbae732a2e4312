// What a user's Vite app writes with the --target web package: init the wasm, then use the API.
import init, { VoiceClient, version } from "realtime-voice";
import { run } from "./app.js";

run(init, VoiceClient, version);
