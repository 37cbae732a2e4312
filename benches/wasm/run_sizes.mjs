// Lists the largest functions of a wasm module built with its name section
// (CARGO_PROFILE_RELEASE_STRIP=false), to see what the audio core weighs.
// Usage: node run_sizes.mjs module.wasm [count]
import { readFileSync } from "node:fs";

const b = readFileSync(process.argv[2]);
const count = Number(process.argv[3] ?? 25);
let p = 8;
const leb = () => {
  let r = 0, s = 0, x;
  do { x = b[p++]; r |= (x & 0x7f) << s; s += 7; } while (x & 0x80);
  return r >>> 0;
};
const code = [], names = {};
let imports = 0;
while (p < b.length) {
  const id = b[p++], len = leb(), end = p + len;
  if (id === 2) {
    const n = leb();
    for (let i = 0; i < n; i++) {
      p += leb(); p += leb();
      const kind = b[p++];
      if (kind === 0) { leb(); imports++; }
      else if (kind === 1) { p++; const f = b[p++]; leb(); if (f & 1) leb(); }
      else if (kind === 2) { const f = b[p++]; leb(); if (f & 1) leb(); }
      else p += 2;
    }
  } else if (id === 10) {
    const n = leb();
    for (let i = 0; i < n; i++) { const l = leb(); code.push(l); p += l; }
  } else if (id === 0) {
    const nl = leb(), name = b.subarray(p, p + nl).toString(); p += nl;
    if (name === "name") {
      while (p < end) {
        const sid = b[p++], sl = leb(), se = p + sl;
        if (sid === 1) {
          const c = leb();
          for (let i = 0; i < c; i++) { const idx = leb(), l = leb(); names[idx] = b.subarray(p, p + l).toString(); p += l; }
        }
        p = se;
      }
    }
  }
  p = end;
}
const rows = code.map((s, i) => [s, names[i + imports] ?? `f${i + imports}`]).sort((x, y) => y[0] - x[0]);
console.log(`code section: ${code.reduce((x, y) => x + y, 0)} bytes in ${code.length} functions`);
for (const [s, n] of rows.slice(0, count)) console.log(String(s).padStart(6), n.slice(0, 100));
