//! Prometheus exposition at `/metrics` on its own port, served by tiny_http.
//!
//! Hot-path figures are plain atomics and HDR histograms owned by the node; a scrape renders
//! the text format from them. Names follow Prometheus conventions: a `tessera_` prefix, units
//! in the name, `_total` for counters, and a HELP line for every metric.

use std::fmt::Write;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};

use hdrhistogram::Histogram;

use super::net::NetCounters;

/// Latency histogram bucket bounds, seconds.
const BUCKETS_S: [f64; 14] =
    [0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0, 30.0];

/// Everything the node exposes. Written by the node loop and the network; read by scrapes.
#[derive(Debug)]
pub struct Metrics {
    /// Network counters.
    pub net: Arc<NetCounters>,
    /// Gauges and counters published by the node loop after each tick.
    pub gauges: Mutex<Vec<(&'static str, &'static str, &'static str, f64)>>,
    /// Submit → commit latency, microseconds.
    pub commit_latency_us: Mutex<Histogram<u64>>,
    /// Proposal timestamp → local finalization, microseconds.
    pub propagation_us: Mutex<Histogram<u64>>,
    /// Duration of one schedule tick, microseconds.
    pub tick_us: Mutex<Histogram<u64>>,
    /// Duration of one signature verification job (all cores), microseconds.
    pub verify_batch_us: Mutex<Histogram<u64>>,
    /// Scrapes served.
    pub scrapes: AtomicU64,
}

fn histogram() -> Mutex<Histogram<u64>> {
    Mutex::new(Histogram::new_with_bounds(1, 120_000_000, 3).expect("valid histogram bounds"))
}

impl Metrics {
    /// Empty metrics over the network's counters.
    pub fn new(net: Arc<NetCounters>) -> Metrics {
        Metrics {
            net,
            gauges: Mutex::new(Vec::new()),
            commit_latency_us: histogram(),
            propagation_us: histogram(),
            tick_us: histogram(),
            verify_batch_us: histogram(),
            scrapes: AtomicU64::new(0),
        }
    }

    /// Records a value (microseconds), saturating at the histogram's top.
    pub fn record(histogram: &Mutex<Histogram<u64>>, micros: u64) {
        if let Ok(mut h) = histogram.lock() {
            h.saturating_record(micros.max(1));
        }
    }

    /// The text exposition.
    pub fn render(&self) -> String {
        let mut out = String::with_capacity(8192);
        let net = &self.net;
        let counters: [(&str, &str, &AtomicU64); 13] = [
            ("tessera_net_frames_received_total", "Frames received from peers and clients.", &net.frames_in),
            ("tessera_net_frames_sent_total", "Frames written to peers.", &net.frames_out),
            ("tessera_net_received_bytes_total", "Bytes received from peers and clients.", &net.bytes_in),
            ("tessera_net_sent_bytes_total", "Bytes written to peers.", &net.bytes_out),
            (
                "tessera_net_malformed_frames_total",
                "Frames that did not decode or were not allowed on their port.",
                &net.malformed_frames,
            ),
            ("tessera_net_handshake_failures_total", "Peer handshakes refused.", &net.handshake_failures),
            ("tessera_net_peers_banned_total", "Peers banned for malformed frames.", &net.peers_banned),
            (
                "tessera_net_banned_refusals_total",
                "Connections refused from banned addresses.",
                &net.banned_refusals,
            ),
            ("tessera_net_disconnects_total", "Peer connections closed or lost.", &net.disconnects),
            (
                "tessera_net_outbound_dropped_total",
                "Outbound frames dropped on a full peer queue.",
                &net.outbound_dropped,
            ),
            (
                "tessera_ingress_transactions_total",
                "Transactions received on the ingress port.",
                &net.ingress_txns,
            ),
            (
                "tessera_net_sync_requests_served_total",
                "Sync requests from full nodes answered from storage.",
                &net.sync_requests_served,
            ),
            (
                "tessera_ingress_batches_refused_total",
                "Transaction batches refused, with their connection, for a spot-checked signature that did not verify.",
                &net.batches_refused,
            ),
        ];
        for (name, help, value) in counters {
            let _ = writeln!(
                out,
                "# HELP {name} {help}\n# TYPE {name} counter\n{name} {}",
                value.load(Ordering::Relaxed)
            );
        }
        let _ = writeln!(
            out,
            "# HELP tessera_net_peers_connected Peers with an established outbound connection.\n# TYPE tessera_net_peers_connected gauge\ntessera_net_peers_connected {}",
            net.peers_connected.load(Ordering::Relaxed)
        );
        let _ = writeln!(
            out,
            "# HELP tessera_net_followers_connected Full nodes connected to this node's peer port.\n# TYPE tessera_net_followers_connected gauge\ntessera_net_followers_connected {}",
            net.followers_connected.load(Ordering::Relaxed)
        );
        if let Ok(gauges) = self.gauges.lock() {
            let mut last = "";
            for (name, kind, help, value) in gauges.iter() {
                // Several samples of one labelled family share one HELP/TYPE header.
                let family = name.split('{').next().unwrap_or(name);
                if family != last {
                    let _ = writeln!(out, "# HELP {family} {help}\n# TYPE {family} {kind}");
                    last = family;
                }
                let _ = writeln!(out, "{name} {value}");
            }
        }
        let histograms: [(&str, &str, &Mutex<Histogram<u64>>); 4] = [
            (
                "tessera_commit_latency_seconds",
                "Transaction submit to commit, as seen by this node.",
                &self.commit_latency_us,
            ),
            (
                "tessera_block_propagation_seconds",
                "Block proposal timestamp to finalization on this node.",
                &self.propagation_us,
            ),
            ("tessera_tick_duration_seconds", "Duration of one schedule tick.", &self.tick_us),
            (
                "tessera_verify_batch_duration_seconds",
                "Duration of one signature verification job over the pending transactions.",
                &self.verify_batch_us,
            ),
        ];
        for (name, help, histogram) in histograms {
            let Ok(h) = histogram.lock() else { continue };
            let _ = writeln!(out, "# HELP {name} {help}\n# TYPE {name} histogram");
            for bound in BUCKETS_S {
                let micros = (bound * 1e6) as u64;
                let count: u64 = h
                    .iter_recorded()
                    .filter(|v| v.value_iterated_to() <= micros)
                    .map(|v| v.count_at_value())
                    .sum();
                let _ = writeln!(out, "{name}_bucket{{le=\"{bound}\"}} {count}");
            }
            let _ = writeln!(out, "{name}_bucket{{le=\"+Inf\"}} {}", h.len());
            let sum: f64 = h
                .iter_recorded()
                .map(|v| v.value_iterated_to() as f64 * v.count_at_value() as f64)
                .sum::<f64>()
                / 1e6;
            let _ = writeln!(out, "{name}_sum {sum}\n{name}_count {}", h.len());
        }
        let _ = writeln!(
            out,
            "# HELP tessera_metrics_scrapes_total Scrapes of this endpoint.\n# TYPE tessera_metrics_scrapes_total counter\ntessera_metrics_scrapes_total {}",
            self.scrapes.fetch_add(1, Ordering::Relaxed) + 1
        );
        out
    }
}

/// Serves `/metrics` until the process ends.
///
/// # Errors
/// The port cannot be bound.
pub fn serve(
    address: std::net::SocketAddr,
    metrics: Arc<Metrics>,
) -> Result<std::thread::JoinHandle<()>, String> {
    let server =
        tiny_http::Server::http(address).map_err(|error| format!("cannot listen on {address}: {error}"))?;
    Ok(std::thread::Builder::new()
        .name("tessera-metrics".into())
        .spawn(move || {
            for request in server.incoming_requests() {
                let response = if request.url() == "/metrics" {
                    let header = tiny_http::Header::from_bytes(
                        "Content-Type",
                        "text/plain; version=0.0.4; charset=utf-8",
                    )
                    .expect("static header");
                    tiny_http::Response::from_string(metrics.render()).with_header(header)
                } else {
                    tiny_http::Response::from_string("not found; try /metrics\n").with_status_code(404)
                };
                let _ = request.respond(response);
            }
        })
        .expect("spawn metrics thread"))
}
