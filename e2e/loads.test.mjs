// E2E foundation: the demo page, served by the real reference server under its strict CSP, loads
// the wasm module in every engine.
import { test } from "node:test";
import assert from "node:assert/strict";
import { open, ENGINES, SERVER } from "./browsers.mjs";

for (const engine of ENGINES) {
  test(`${engine}: the demo page initialises the wasm module`, async () => {
    const b = await open(engine);
    try {
      await b.goto(`${SERVER}/`);
      const state = await b.waitFor(() => document.body.dataset.wasm !== "loading" && document.body.dataset.wasm, 20000);
      const version = await b.eval(() => document.getElementById("version").textContent);
      await b.screenshot(`loads-${engine}`);
      assert.equal(state, "ready", `wasm state: ${state}; logs: ${b.logs.join("\n")}`);
      assert.match(version, /^\d+\.\d+\.\d+/);
    } finally {
      await b.close();
    }
  });
}
