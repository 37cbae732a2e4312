// `make test-faults`: every scenario of the network fault lab, in each engine, with a recovery
// table at the end (scripts/fault-lab-report.mjs → e2e/output/fault-lab.md). A report, not part of
// `make test` (it takes a while). Not named *.test.mjs on purpose: `node --test e2e/` (make
// test-e2e) must not pick it up.
import { blackhole, pathChange, offlineTokenDown, offlineOnline, tokenDown, latency, stalls, uplink, serverRestart } from "./scenarios.mjs";

const only = (process.env.FAULT_SCENARIOS ?? "").split(",").filter(Boolean);
const want = (name) => only.length === 0 || only.includes(name);

if (want("blackhole-5")) blackhole(5);
if (want("path-change")) pathChange();
if (want("offline-token-down")) offlineTokenDown();
if (want("offline-online")) offlineOnline();
if (want("token-down")) tokenDown();
if (want("server-restart")) serverRestart();
if (want("uplink")) uplink();
// FAULT_LATENCY_S: seconds of conversation at 300 ms RTT (60 by default; 600 for the gapless goal).
if (want("latency")) latency({ seconds: Number(process.env.FAULT_LATENCY_S ?? 60) });
if (want("stalls")) stalls();
if (want("blackhole-30")) blackhole(30);
if (want("blackhole-120")) blackhole(120);
