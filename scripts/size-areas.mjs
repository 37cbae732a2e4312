// Groups a wasm's item list (CSV `name,bytes` on stdin: scripts/wasm-items.mjs, or twiggy's
// `top -n 100000 --format csv`) into the package's areas and prints each area's raw bytes with
// its largest items. Functions are sized after inlining: a core function the shell inlines counts
// for the shell.
// Usage: node scripts/wasm-items.mjs FILE.wasm | node scripts/size-areas.mjs [TOP]
import { readFileSync } from "node:fs";

const top = Number(process.argv[2] ?? 5);
// First match wins: the machinery (fmt, panic, alloc, float) before the crate's own modules, so
// `<JsonError as Display>::fmt` counts for fmt, the lever that removes it.
const areas = [
  ["names (stripped)", /^"?"?(function|local|global|type|table|memory|elem|data) names"?"? subsection|custom section/],
  ["std: panic", /panic|unwrap_failed|expect_failed|slice_error_fail|slice_index_fail|index_fail|bounds_check|unreachable|lazy::panic|abort|rust_begin_unwind|__rust_start_panic/],
  ["std: fmt", /fmt|Formatter|Display|Debug|escape_debug|ToString|to_string|PadAdapter|printable|count_chars/],
  ["std: float", /dec2flt|flt2dec|grisu|dragon|log10|powf|pow\b|exp\b|expf|sinf?\b|cosf?\b|sqrt|libm|compiler_builtins::math|fmod/],
  ["std: alloc", /dlmalloc|__rdl_|__rust_alloc|__rust_dealloc|__rust_realloc|raw_vec|RawVec|finish_grow|alloc::alloc|handle_alloc_error|memalign|rlsf|talc/],
  ["futures executor", /futures|Waker|spawn_local|JsFuture|Promise/],
  ["web shell", /realtime_voice::web::|^"?voiceclient_|VoiceClient|__wbg_voiceclient|Shell/],
  ["protocol/JSON", /realtime_voice::protocol::/],
  ["audio", /realtime_voice::audio::/],
  ["core session", /realtime_voice::session::|realtime_voice::/],
  ["wasm-bindgen/js-sys/web-sys glue", /wasm_bindgen|js_sys|web_sys|__wbindgen|__wbg_|externref|closure|import |export |^"?table\[|^"?elem\[|__externref/],
  ["data (.rodata: strings, tables)", /data segment|^"?data\[/],
  ["std: other", /core|alloc|std|memcpy|memset|memmove|memcmp|memchr|compiler_builtins|__stack_pointer|str::|slice::/],
];

const lines = readFileSync(0, "utf8").trim().split("\n").slice(1);
const parse = (line) => {
  // Name,ShallowSize,... where Name may be a quoted CSV field with doubled quotes.
  const m = line.match(/^("(?:[^"]|"")*"|[^,]*),(\d+)(?:,|$)/);
  // v0-mangled names (the lean-std build) carry a crate hash: `realtime_voice[0123abcd…]::web`.
  const name = m && m[1].replace(/^"|"$/g, "").replace(/""/g, '"').replace(/\[[0-9a-f]{16}\]/g, "");
  return m ? { name, bytes: Number(m[2]) } : null;
};
const groups = new Map(areas.map(([a]) => [a, []]));
groups.set("other", []);
for (const item of lines.map(parse).filter(Boolean)) {
  const area = areas.find(([, re]) => re.test(item.name))?.[0] ?? "other";
  groups.get(area).push(item);
}
const short = (n) => n.replace(/::h[0-9a-f]{16}/g, "").replace(/\[[0-9a-f]{16}\]/g, "").slice(0, 100);
let total = 0;
const rows = [...groups].map(([a, items]) => [a, items, items.reduce((s, i) => s + i.bytes, 0)]);
for (const [a, , sum] of rows) if (a !== "names (stripped)") total += sum;
console.log(`\nwasm by area (raw bytes after wasm-opt, before the import/export renaming, names stripped: ${total} B; top ${top} per area)`);
for (const [a, items, sum] of rows.sort((x, y) => y[2] - x[2])) {
  if (a === "names (stripped)" || items.length === 0) continue;
  console.log(`  ${a.padEnd(34)} ${String(sum).padStart(7)} B  ${((100 * sum) / total).toFixed(1).padStart(5)} %  (${items.length} items)`);
  for (const i of items.sort((x, y) => y.bytes - x.bytes).slice(0, top)) {
    console.log(`      ${String(i.bytes).padStart(6)}  ${short(i.name)}`);
  }
}
