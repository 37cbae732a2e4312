// The network fault lab in `make test` (issue 11, point 5): the short, most valuable scenarios,
// through a fault proxy between the browser and the reference server (page, /dev/token and the
// WebSocket all on the faulty path). The long ones (blackholes of 30 s and 120 s, latency, a slow
// uplink, token endpoint down alone, a server restart) are in `make test-faults`
// (e2e/fault-lab/all.mjs). Scenario bodies: e2e/fault-lab/scenarios.mjs.
import { blackhole, pathChange, offlineTokenDown } from "./fault-lab/scenarios.mjs";

blackhole(5);
pathChange();
offlineTokenDown();
