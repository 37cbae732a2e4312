#!/usr/bin/env node
// Prints the network fault lab's recovery table (scenario × engine) from the rows the scenarios
// wrote to e2e/output/fault-lab.jsonl, and writes it to e2e/output/fault-lab.md. Recovery is the
// time from the fault being lifted (or detected, when later; `online` for the offline scenario;
// the backlog drained for the slow uplink) to `connected` again / frames flowing.
import { mkdir, readFile, writeFile } from "node:fs/promises";

const out = new URL("../e2e/output/", import.meta.url).pathname;
let rows = [];
try {
  rows = (await readFile(`${out}fault-lab.jsonl`, "utf8")).split("\n").filter(Boolean).map((l) => JSON.parse(l));
} catch { /* no scenario ran */ }
const sec = (ms) => (ms == null ? "—" : (ms / 1000).toFixed(1));
const cell = (v) => String(v ?? "—").replace(/\|/g, "\\|").replace(/\n/g, " ");
const lines = [
  "# Network fault lab: recovery per scenario and engine",
  "",
  `Run ${new Date().toISOString()}. Detect: fault → \`reconnecting\`; recovery: fault lifted (or detected, when later) → \`connected\` / frames again; budget: the bound asserted.`,
  "",
  "| scenario | engine | result | detect s | recovery s | budget s | reconnects | dead links | dropped ms | last close | notes |",
  "|---|---|---|---|---|---|---|---|---|---|---|",
  ...rows.map((r) => `| ${r.scenario.replace(/^fault-/, "")} | ${r.engine} | ${r.result.toUpperCase()} | ${sec(r.detectMs)} | ${sec(r.recoveryMs)} | ${sec(r.budgetMs)} | ${r.reconnects ?? "—"} | ${r.deadLinks ?? "—"} | ${r.droppedMs ?? "—"} | ${r.closeCode ?? "—"} | ${cell([r.note, r.error].filter(Boolean).join("; "))} |`),
  "",
  "Status sequences:",
  "",
  ...rows.map((r) => `- ${r.scenario} / ${r.engine}: ${cell(r.sequence)}`),
  "",
  // What a failure leaves for the next engineer, when CI shows it only once.
  ...rows.filter((r) => r.result === "fail").flatMap((r) => [
    `Failed: ${r.scenario} / ${r.engine}`,
    `- the server's connection ends (s from the fault): ${r.serverEnds || "none logged"}`,
    ...(r.frames ? [`- frames: ${r.frames}`, `- socket trace: ${r.trace}`, `- last close reason: ${r.lastCloseReason ?? "—"}`] : []),
    "",
  ]),
];
const md = lines.join("\n");
await mkdir(out, { recursive: true });
await writeFile(`${out}fault-lab.md`, md);
console.log(rows.length ? md : "fault lab: no scenario rows recorded");
