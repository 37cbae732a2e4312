// Times the resampler compiled to WebAssembly (examples/resample_wasm_bench.rs) in node.
// Usage: node benches/wasm/run.mjs path/to/resample_wasm_bench.wasm
import { readFileSync } from "node:fs";
import { performance } from "node:perf_hooks";

const path = process.argv[2];
if (!path) {
  console.error("usage: node run.mjs resample_wasm_bench.wasm");
  process.exit(2);
}
const bytes = readFileSync(path);
const module = await WebAssembly.compile(bytes);
// The library may carry wasm-bindgen imports this bench never calls: stub them.
const imports = {};
for (const { module: m, name, kind } of WebAssembly.Module.imports(module)) {
  if (kind !== "function") throw new Error(`unexpected ${kind} import ${m}.${name}`);
  (imports[m] ??= {})[name] = () => {
    throw new Error(`${m}.${name} called`);
  };
}
const { exports } = await WebAssembly.instantiate(module, imports);
console.log(`wasm size ${bytes.length} bytes, node ${process.version}`);
for (const rate of [48000, 44100]) {
  const taps = exports.setup(rate);
  exports.run(2); // warm-up (tier-up of the JIT)
  const results = [];
  const cpu0 = process.cpuUsage();
  for (let i = 0; i < 5; i++) {
    const t0 = performance.now();
    const n = exports.run(10);
    const ms = performance.now() - t0;
    if (n === 0) throw new Error("no output");
    results.push(10000 / ms);
  }
  // CPU time of the process (user + system), which does not count waiting for a busy core.
  const cpu = process.cpuUsage(cpu0);
  const cpuRealtime = 50 / ((cpu.user + cpu.system) / 1e6);
  results.sort((a, b) => a - b);
  console.log(
    `wasm ${rate} -> 24000 (${taps} taps): wall-clock median ${results[2].toFixed(0)}x realtime ` +
      `(min ${results[0].toFixed(0)}, max ${results[4].toFixed(0)}); ` +
      `by CPU time ${cpuRealtime.toFixed(0)}x`,
  );
}
