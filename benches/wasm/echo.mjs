// Times the echo guard compiled to WebAssembly (benches/wasm, exports echo_setup / echo_run) in
// node: microseconds per 10 ms frame, with the reference played and the gate running, behind a
// browser canceller, on raw capture and judging a pair.
// Usage: node benches/wasm/echo.mjs target/wasm32-unknown-unknown/release/audio_wasm_bench.wasm
import { readFileSync } from "node:fs";
import { performance } from "node:perf_hooks";

const path = process.argv[2];
if (!path) {
  console.error("usage: node echo.mjs audio_wasm_bench.wasm");
  process.exit(2);
}
const module = await WebAssembly.compile(readFileSync(path));
const imports = {};
for (const { module: m, name } of WebAssembly.Module.imports(module)) {
  (imports[m] ??= {})[name] = () => { throw new Error(`${m}.${name} called`); };
}
const { exports } = await WebAssembly.instantiate(module, imports);
const frames = exports.echo_setup();
for (const [capture, what] of [[0, ""], [1, " on raw capture"], [2, " judging a pair"]]) {
  // Warm-up (tier-up of the JIT); nothing sent means the module does not know the capture.
  if (!exports.echo_run(2, capture)) throw new Error(`echo_run: capture ${capture} unknown`);
  const perFrame = [];
  for (let i = 0; i < 5; i++) {
    const t0 = performance.now();
    exports.echo_run(10, capture);
    perFrame.push(((performance.now() - t0) * 1000) / (10 * frames));
  }
  perFrame.sort((a, b) => a - b);
  console.log(`echo guard${what} in wasm (node ${process.version}): ${perFrame[0].toFixed(2)} µs per 10 ms frame (best of 5; median ${perFrame[2].toFixed(2)})`);
}
