// The network fault lab in `make test` (issue 11, point 5): the short, most valuable scenarios,
// through a fault proxy between the browser and the reference server (page, /dev/token and the
// WebSocket all on the faulty path). The long ones (blackholes of 30 s and 120 s, latency, a slow
// uplink, token endpoint down alone, a server restart) and WebKit's offline run are in
// `make test-faults` (e2e/fault-lab/all.mjs). Scenario bodies: e2e/fault-lab/scenarios.mjs.
//
// Budget: about 25-30 s per scenario and engine once they pass (most of it the page, the greeting
// and the reconnect itself). The offline → online scenario runs in Chromium (real network
// emulation) and Firefox (window events) here; WebKit's window events take the same path as
// Firefox's, so it runs in `make test-faults` only.
import { ENGINES } from "./support.mjs";
import { blackhole, pathChange, offlineTokenDown } from "./fault-lab/scenarios.mjs";

blackhole(5);
pathChange();
offlineTokenDown({ engines: ENGINES.filter((e) => e !== "webkit") });
