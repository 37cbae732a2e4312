// Routes every call from JS into the wasm through the glue's `shield` (src/web/glue.js): in the
// file wasm-bindgen generated that holds the module's exports (FILE.js: realtime_voice.js in the
// web flavour, realtime_voice_bg.js in the bundler flavour), the assignment of the exports
// becomes `wasm = shield(exports, quiet, Client)`, where `quiet` are the exports its
// FinalizationRegistry callbacks call and `Client` its one exported class. wasm-bindgen is pinned
// (docs/TOOLCHAIN): any other shape of its output fails the build here rather than ship unshielded.
// Usage: node scripts/shield-wasm-exports.mjs FILE.js
import { readFileSync, writeFileSync } from "node:fs";

const file = process.argv[2];
let js = readFileSync(file, "utf8");
const fail = (what) => {
  throw new Error(`shield-wasm-exports: ${file}: ${what}; wasm-bindgen's output has changed shape`);
};
const glue = js.match(/from '(\.\/snippets\/[^']+\/src\/web\/glue\.js)'/)?.[1] ?? fail("no import of the glue");
const quiet = [...js.matchAll(/new FinalizationRegistry\(\w+ => wasm\.(\w+)\(/g)].map((m) => m[1]);
if (quiet.length === 0) fail("no FinalizationRegistry calling an export");
const classes = [...js.matchAll(/^export class (\w+) \{/gm)].map((m) => m[1]);
if (classes.length !== 1) fail(`${classes.length} exported classes, not one`);
// The web flavour assigns `instance.exports`, the bundler flavour `val`.
const assignments = [
  [/^( *)wasm = instance\.exports;$/m, "instance.exports"],
  [/^( *)wasm = val;$/m, "val"],
].filter(([re]) => re.test(js));
if (assignments.length !== 1) fail("no single assignment of the exports");
const [[assignment, exportsExpr]] = assignments;
js = js.replace(assignment, `$1wasm = shield(${exportsExpr}, ${JSON.stringify(quiet)}, ${classes[0]});`);
// Into wasm-bindgen's own named import of the glue.
const named = new RegExp(`^import \\{ (.*) \\} from '${glue.replace(/[.]/g, "\\.")}';$`, "m");
if (!named.test(js)) fail("no named import of the glue");
js = js.replace(named, (line, names) => line.replace(names, `shield, ${names}`));
writeFileSync(file, js);
