// Lists a wasm module's items with their bytes in the binary, as CSV lines `name,bytes`: each
// function body (named from the module's "name" section), each data segment (`data[i]`), each
// import and export entry, and every other section as one item. What `make size` groups by
// area (scripts/size-areas.mjs); a reader of the binary format instead of a tool to install.
// Usage: node scripts/wasm-items.mjs FILE.wasm | node scripts/size-areas.mjs [TOP]
import { readFileSync } from "node:fs";

const bytes = readFileSync(process.argv[2]);
let pos = 8; // magic and version
const u32 = () => {
  let v = 0;
  for (let shift = 0; ; shift += 7) {
    const b = bytes[pos++];
    v += (b & 0x7f) * 2 ** shift;
    if (b < 0x80) return v;
  }
};
const skipLeb = () => {
  while (bytes[pos++] >= 0x80);
};
const name = () => {
  const n = u32();
  pos += n;
  return bytes.subarray(pos - n, pos).toString("utf8");
};
// A constant expression (a data segment's offset): instructions with LEB immediates up to `end`.
const skipConstExpr = () => {
  for (;;) {
    const op = bytes[pos++];
    if (op === 0x0b) return;
    skipLeb();
  }
};

const SECTIONS = ["custom", "type", "import", "function", "table", "memory", "global", "export", "start", "elem", "code", "data", "datacount", "tag"];
const items = [];
const functionNames = new Map();
let importedFunctions = 0;
const bodies = [];
while (pos < bytes.length) {
  const id = bytes[pos++];
  const size = u32();
  const start = pos;
  const end = start + size;
  if (id === 0) {
    const custom = name();
    if (custom === "name") {
      while (pos < end) {
        const sub = bytes[pos++];
        const subEnd = u32() + pos;
        if (sub === 1) {
          for (let n = u32(); n > 0; n--) functionNames.set(u32(), name());
        }
        pos = subEnd;
      }
    }
    items.push([`custom section "${custom}"`, size]);
  } else if (id === 2) {
    for (let n = u32(); n > 0; n--) {
      const at = pos;
      const entry = `import ${name()}::${name()}`;
      const kind = bytes[pos++];
      if (kind === 0) importedFunctions++;
      if (kind === 0 || kind === 4) skipLeb(); // type index (a tag: attribute first, then index)
      if (kind === 4) skipLeb();
      if (kind === 1) { pos++; const lim = bytes[pos++]; skipLeb(); if (lim & 1) skipLeb(); } // table
      if (kind === 2) { const lim = bytes[pos++]; skipLeb(); if (lim & 1) skipLeb(); } // memory
      if (kind === 3) pos += 2; // global: value type, mutability
      items.push([entry, pos - at]);
    }
  } else if (id === 7) {
    for (let n = u32(); n > 0; n--) {
      const at = pos;
      const entry = `export ${name()}`;
      pos++;
      skipLeb();
      items.push([entry, pos - at]);
    }
  } else if (id === 10) {
    for (let n = u32(); n > 0; n--) {
      const at = pos;
      const len = u32(); // read before `pos +=` reads `pos`
      pos += len;
      bodies.push(pos - at);
    }
  } else if (id === 11) {
    let i = 0;
    for (let n = u32(); n > 0; n--, i++) {
      const at = pos;
      const flags = u32();
      if (flags === 2) skipLeb();
      if (flags !== 1) skipConstExpr();
      const len = u32();
      pos += len;
      items.push([`data[${i}]`, pos - at]);
    }
  } else {
    items.push([`${SECTIONS[id] ?? `section ${id}`} section`, size]);
  }
  pos = end;
}
bodies.forEach((n, i) => {
  const index = importedFunctions + i;
  items.push([functionNames.get(index) ?? `code[${index}]`, n]);
});
const csv = (s) => (/[",\n]/.test(s) ? `"${s.replace(/"/g, '""')}"` : s);
console.log("Name,ShallowSize");
for (const [n, b] of items.sort((x, y) => y[1] - x[1])) console.log(`${csv(n)},${b}`);
