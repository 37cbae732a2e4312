// The suite's own driver after an engine crash: WebKit's web process dies now and then on these
// machines, and a MiniBrowser left running kept `node --test` from ever exiting. Closing a
// browser whose web process was killed returns at once and leaves no browser process behind.
import assert from "node:assert/strict";
import { test } from "node:test";
import { readFileSync } from "node:fs";
import { execFileSync } from "node:child_process";
import { open, ENGINES } from "./browsers.mjs";

/** Pids of running (not zombie) processes whose command line contains `needle`. */
function running(needle) {
  const out = execFileSync("pgrep", ["-f", needle], { encoding: "utf8" }).trim();
  return out.split("\n").filter(Boolean).map(Number).filter((pid) => {
    try { return !/^\d+ \(.*\) Z/.test(readFileSync(`/proc/${pid}/stat`, "utf8")); } catch { return false; }
  });
}
const pgrepOr = (needle) => { try { return running(needle); } catch { return []; } }; // pgrep exits 1 on no match
const parent = (pid) => { try { return Number(readFileSync(`/proc/${pid}/stat`, "utf8").split(") ")[1].split(" ")[1]); } catch { return 0; } };

test("webkit: closing after the web process crashed leaves no browser running", { skip: !ENGINES.includes("webkit"), timeout: 60_000 }, async () => {
  const before = new Set(pgrepOr("webkit2gtk-4.1/MiniBrowser"));
  const b = await open("webkit");
  await b.goto("about:blank");
  const mine = pgrepOr("webkit2gtk-4.1/MiniBrowser").filter((p) => !before.has(p));
  assert.equal(mine.length, 1, "one MiniBrowser started");
  const web = pgrepOr("webkit2gtk-4.1/WebKitWebProcess").filter((p) => parent(p) === mine[0]);
  assert.ok(web.length > 0, "a web process runs");
  for (const pid of web) process.kill(pid, "SIGKILL");
  await assert.rejects(b.eval(() => 1), "the page is gone");
  await b.close();
  // The kill is delivered; the kernel takes a moment to end the process.
  const left = () => pgrepOr("webkit2gtk-4.1/MiniBrowser").filter((p) => mine.includes(p));
  for (const end = Date.now() + 5000; left().length > 0 && Date.now() < end;) await new Promise((r) => setTimeout(r, 50));
  assert.deepEqual(left(), [], "its MiniBrowser was killed");
});
