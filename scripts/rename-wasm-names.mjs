// Applies wasm-opt's --minify-imports-and-exports mapping (JSON on stdin) to the package's JS
// files, which name the same imports and exports: wasm-bindgen's import names carry a 16-digit
// hash (`__wbg_set_onmessage_5e09c5c5df17fb8b`), ~8 KB in the wasm and as much again in the glue.
// Imports are the glue's own functions (object keys in the web flavour, exported functions of
// realtime_voice_bg.js in the bundler flavour): each occurrence of the whole name is renamed.
// Exports are only ever read as `wasm.NAME`. The import module ("./realtime_voice_bg.js") stays,
// because bundlers resolve it as a file.
// Usage: wasm-opt … --minify-imports-and-exports … | node scripts/rename-wasm-names.mjs FILE.js…
import { readFileSync, writeFileSync } from "node:fs";

const text = readFileSync(0, "utf8");
// wasm-opt prints the mapping as JSON, possibly after other output.
const map = JSON.parse(text.slice(text.indexOf("{")));
const files = process.argv.slice(2);
const escape = (s) => s.replace(/[$]/g, "\\$");
const rules = [];
// A snippet function that needs no glue (only JS values and numbers) is imported by the wasm
// straight from its snippet module under its own name. wasm-opt moves every import into the one
// module "a" (the glue's import0): such functions join import0 under their new name instead.
const direct = [];
for (const [module, from, to] of map.imports) {
  if (module.startsWith("./snippets/")) {
    direct.push([module, from, to]);
    continue;
  }
  // Import names are wasm-bindgen's own (`__wbg_…`, `__wbindgen_…`): unique words in the glue.
  if (!/^__wb(g|indgen)_/.test(from)) throw new Error(`unexpected import name ${from}`);
  rules.push([new RegExp(`(?<![\\w$])${escape(from)}(?![\\w$])`, "g"), to, from]);
}
for (const [from, to] of map.exports) {
  rules.push([new RegExp(`(?<=\\bwasm\\.)${escape(from)}(?![\\w$])`, "g"), to, from]);
}
const seen = new Set();
for (const file of files) {
  let js = readFileSync(file, "utf8");
  for (const [re, to, from] of rules) {
    js = js.replace(re, () => {
      seen.add(from);
      return to;
    });
  }
  js = joinDirect(js);
  writeFileSync(file, js);
}
// The direct snippet imports as entries of import0 (`to: importN.from`), each snippet module
// imported once, and no longer listed as modules of their own in the imports object.
function joinDirect(js) {
  if (direct.length === 0) return js;
  const space = new Map();
  for (const [module, from, to] of direct) {
    const quoted = JSON.stringify(module).replace(/[.*+?^${}()|[\]\\]/g, "\\$&");
    if (!space.has(module)) {
      const re = new RegExp(`^import \\* as (import\\d+) from ${quoted};?$`, "m");
      const m = js.match(re);
      if (!m) throw new Error(`rename-wasm-names: no namespace import of ${module}`);
      space.set(module, m[1]);
      // Later namespace imports of the same module and its entries in the imports object go.
      js = js.replace(new RegExp(`^import \\* as import\\d+ from ${quoted};?\\n`, "gm"), (line) =>
        line.includes(`${m[1]} `) ? line : "");
      js = js.replace(new RegExp(`^\\s*${quoted}: import\\d+,?\\n`, "gm"), "");
    }
    const entry = `${JSON.stringify(to)}: ${space.get(module)}.${from},`;
    if (!js.includes("__proto__: null,")) throw new Error("rename-wasm-names: import0 has changed shape");
    js = js.replace("__proto__: null,", `__proto__: null,\n        ${entry}`);
    seen.add(from);
  }
  return js;
}

// Every import must have been found in the glue, else the module would not link: fail the build
// rather than ship that. (An export the glue never reads, such as `__abort_handler`, is fine.)
const bad = map.imports.map(([, from]) => from).filter((n) => !seen.has(n));
if (bad.length > 0) {
  console.error(`rename-wasm-names: not found in ${files.join(", ")}: ${bad.join(", ")}`);
  process.exit(1);
}
