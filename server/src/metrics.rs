//! Prometheus metrics in the text exposition format: open WebSocket gauge, connection outcomes,
//! AI response latency histogram, errors by code and cost per interview. Label sets are bounded
//! (close codes and error codes come from fixed lists; cost is a histogram, not a per-id label).

use std::collections::BTreeMap;
use std::fmt::Write as _;
use std::sync::atomic::{AtomicI64, AtomicU64, Ordering};
use std::sync::Mutex;

/// Response latency bucket bounds, seconds.
const LATENCY_BUCKETS: [f64; 10] = [0.05, 0.1, 0.2, 0.3, 0.5, 0.75, 1.0, 1.5, 2.0, 3.0];
/// Cost per interview bucket bounds, USD.
const COST_BUCKETS: [f64; 8] = [0.01, 0.05, 0.1, 0.5, 1.0, 2.0, 5.0, 10.0];
/// Most distinct label values kept per labelled counter; more are folded into "other".
const MAX_LABELS: usize = 64;

/// A cumulative histogram with fixed bounds.
#[derive(Debug)]
struct Histogram {
    bounds: &'static [f64],
    counts: Vec<u64>,
    sum: f64,
    count: u64,
}

impl Histogram {
    fn new(bounds: &'static [f64]) -> Self {
        Self {
            bounds,
            counts: vec![0; bounds.len()],
            sum: 0.0,
            count: 0,
        }
    }

    fn observe(&mut self, v: f64) {
        for (i, b) in self.bounds.iter().enumerate() {
            if v <= *b {
                self.counts[i] += 1;
            }
        }
        self.sum += v;
        self.count += 1;
    }

    fn render(&self, out: &mut String, name: &str) {
        for (b, c) in self.bounds.iter().zip(&self.counts) {
            let _ = writeln!(out, "{name}_bucket{{le=\"{b}\"}} {c}");
        }
        let _ = writeln!(out, "{name}_bucket{{le=\"+Inf\"}} {}", self.count);
        let _ = writeln!(out, "{name}_sum {}", self.sum);
        let _ = writeln!(out, "{name}_count {}", self.count);
    }
}

#[derive(Debug)]
struct Inner {
    latency: Histogram,
    cost: Histogram,
    errors: BTreeMap<String, u64>,
    closes: BTreeMap<u16, u64>,
    connections: BTreeMap<&'static str, u64>,
}

/// The server's metrics registry (shared through `Arc`).
#[derive(Debug)]
pub struct Metrics {
    open_ws: AtomicI64,
    responses: AtomicU64,
    inner: Mutex<Inner>,
}

impl Default for Metrics {
    fn default() -> Self {
        Self {
            open_ws: AtomicI64::new(0),
            responses: AtomicU64::new(0),
            inner: Mutex::new(Inner {
                latency: Histogram::new(&LATENCY_BUCKETS),
                cost: Histogram::new(&COST_BUCKETS),
                errors: BTreeMap::new(),
                closes: BTreeMap::new(),
                connections: BTreeMap::new(),
            }),
        }
    }
}

impl Metrics {
    fn inner(&self) -> std::sync::MutexGuard<'_, Inner> {
        self.inner.lock().unwrap_or_else(|p| p.into_inner())
    }

    /// A WebSocket was accepted into a session (+1) or ended (-1).
    pub fn ws_opened(&self) {
        self.open_ws.fetch_add(1, Ordering::Relaxed);
    }

    /// See [`Metrics::ws_opened`].
    pub fn ws_closed(&self) {
        self.open_ws.fetch_sub(1, Ordering::Relaxed);
    }

    /// Open sockets now.
    pub fn open_ws(&self) -> i64 {
        self.open_ws.load(Ordering::Relaxed)
    }

    /// Outcome of a connection attempt: `accepted`, `auth`, `busy`, `disabled`.
    pub fn connection(&self, outcome: &'static str) {
        *self.inner().connections.entry(outcome).or_default() += 1;
    }

    /// The server closed a socket with `code`.
    pub fn close(&self, code: u16) {
        *self.inner().closes.entry(code).or_default() += 1;
    }

    /// An `error` event with `code` was sent.
    pub fn error(&self, code: &str) {
        let mut i = self.inner();
        let key = if i.errors.len() < MAX_LABELS || i.errors.contains_key(code) {
            code.to_string()
        } else {
            "other".to_string()
        };
        *i.errors.entry(key).or_default() += 1;
    }

    /// End of user speech (or commit) → first audio delta, in milliseconds.
    pub fn response_latency_ms(&self, ms: u64) {
        self.responses.fetch_add(1, Ordering::Relaxed);
        self.inner().latency.observe(ms as f64 / 1000.0);
    }

    /// An interview's accumulated realtime cost when one of its connections ends.
    pub fn interview_cost_usd(&self, usd: f64) {
        self.inner().cost.observe(usd);
    }

    /// Renders everything in the Prometheus text format.
    pub fn render(&self) -> String {
        let mut out = String::new();
        let i = self.inner();
        out.push_str("# HELP realtime_open_websockets Realtime WebSocket sessions open now.\n");
        out.push_str("# TYPE realtime_open_websockets gauge\n");
        let _ = writeln!(out, "realtime_open_websockets {}", self.open_ws());
        out.push_str(
            "# HELP realtime_connections_total Realtime connection attempts by outcome.\n",
        );
        out.push_str("# TYPE realtime_connections_total counter\n");
        for (k, v) in &i.connections {
            let _ = writeln!(out, "realtime_connections_total{{outcome=\"{k}\"}} {v}");
        }
        out.push_str(
            "# HELP realtime_server_closes_total Close frames sent by the server, by code.\n",
        );
        out.push_str("# TYPE realtime_server_closes_total counter\n");
        for (k, v) in &i.closes {
            let _ = writeln!(out, "realtime_server_closes_total{{code=\"{k}\"}} {v}");
        }
        out.push_str("# HELP realtime_errors_total Error events sent to clients, by code.\n");
        out.push_str("# TYPE realtime_errors_total counter\n");
        for (k, v) in &i.errors {
            let _ = writeln!(out, "realtime_errors_total{{code=\"{}\"}} {v}", escape(k));
        }
        out.push_str(
            "# HELP realtime_response_latency_seconds End of user speech to first audio delta.\n",
        );
        out.push_str("# TYPE realtime_response_latency_seconds histogram\n");
        i.latency
            .render(&mut out, "realtime_response_latency_seconds");
        out.push_str(
            "# HELP realtime_interview_cost_usd Accumulated realtime cost of an interview, observed when its connection ends.\n",
        );
        out.push_str("# TYPE realtime_interview_cost_usd histogram\n");
        i.cost.render(&mut out, "realtime_interview_cost_usd");
        out
    }
}

fn escape(s: &str) -> String {
    s.replace('\\', "\\\\")
        .replace('"', "\\\"")
        .replace('\n', "\\n")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn renders_prometheus_text() {
        let m = Metrics::default();
        m.ws_opened();
        m.ws_opened();
        m.ws_closed();
        m.error("rate_limit_exceeded");
        m.response_latency_ms(150);
        m.response_latency_ms(2500);
        m.interview_cost_usd(0.02);
        let t = m.render();
        assert!(t.contains("realtime_open_websockets 1\n"));
        assert!(t.contains("realtime_errors_total{code=\"rate_limit_exceeded\"} 1\n"));
        assert!(t.contains("realtime_response_latency_seconds_bucket{le=\"0.2\"} 1\n"));
        assert!(t.contains("realtime_response_latency_seconds_bucket{le=\"3\"} 2\n"));
        assert!(t.contains("realtime_response_latency_seconds_count 2\n"));
        assert!(t.contains("realtime_interview_cost_usd_bucket{le=\"0.05\"} 1\n"));
    }

    #[test]
    fn error_labels_are_bounded() {
        let m = Metrics::default();
        for i in 0..200 {
            m.error(&format!("code_{i}"));
        }
        assert!(m.inner().errors.len() <= MAX_LABELS + 1);
        assert!(m.render().contains("code=\"other\""));
    }
}
