// Demo page: uses the package exactly as a user would, from /pkg (the built npm package).
import init, { version } from "/pkg/realtime_voice.js";

const status = document.getElementById("status");
try {
  await init();
  document.getElementById("version").textContent = version();
  document.body.dataset.wasm = "ready";
  status.textContent = "Ready.";
} catch (e) {
  document.body.dataset.wasm = "failed";
  status.textContent = `The voice client failed to load: ${e}`;
}
