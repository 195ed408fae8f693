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
    /// Duration of one hand-back of free heap pages to the kernel, microseconds.
    pub trim_us: Mutex<Histogram<u64>>,
    /// Scrapes served.
    pub scrapes: AtomicU64,
    /// Connections held by the JSON-RPC server.
    pub rpc_connections: Arc<tiny_http::ConnectionStats>,
    /// Connections held by this exposition's server.
    pub metrics_connections: Arc<tiny_http::ConnectionStats>,
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
            trim_us: histogram(),
            scrapes: AtomicU64::new(0),
            rpc_connections: Arc::default(),
            metrics_connections: Arc::default(),
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
        let counters: [(&str, &str, &AtomicU64); 19] = [
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
                "tessera_net_connections_refused_total",
                "Connections closed at accept because their port held its maximum.",
                &net.connections_refused,
            ),
            (
                "tessera_net_connections_timed_out_total",
                "Connections closed for a handshake past its deadline or an idle ingress client.",
                &net.connections_timed_out,
            ),
            (
                "tessera_ingress_batches_refused_total",
                "Transaction batches refused, with their connection, for a spot-checked signature that did not verify.",
                &net.batches_refused,
            ),
            (
                "tessera_rpc_connections_refused_total",
                "JSON-RPC connections closed at accept because rpc.connections_max were open.",
                &self.rpc_connections.refused,
            ),
            (
                "tessera_metrics_connections_refused_total",
                "Metrics connections closed at accept because metrics.connections_max were open.",
                &self.metrics_connections.refused,
            ),
            (
                "tessera_rpc_connections_timed_out_total",
                "JSON-RPC connections closed for a request not delivered within rpc.idle_timeout_secs.",
                &self.rpc_connections.timed_out,
            ),
            (
                "tessera_metrics_connections_timed_out_total",
                "Metrics connections closed for a request not delivered within metrics.idle_timeout_secs.",
                &self.metrics_connections.timed_out,
            ),
        ];
        write_atomics(&mut out, "counter", &counters);
        let gauges: [(&str, &str, &AtomicU64); 6] = [
            (
                "tessera_net_peers_connected",
                "Peers with an established outbound connection.",
                &net.peers_connected,
            ),
            (
                "tessera_net_followers_connected",
                "Full nodes connected to this node's peer port.",
                &net.followers_connected,
            ),
            (
                "tessera_net_peer_connections_open",
                "Connections open on the peer port, handshaken or not.",
                &net.peer_connections_open,
            ),
            (
                "tessera_ingress_connections_open",
                "Connections open on the ingress port.",
                &net.ingress_connections_open,
            ),
            (
                "tessera_rpc_connections_open",
                "Connections open on the JSON-RPC port.",
                &self.rpc_connections.open,
            ),
            (
                "tessera_metrics_connections_open",
                "Connections open on the metrics port.",
                &self.metrics_connections.open,
            ),
        ];
        write_atomics(&mut out, "gauge", &gauges);
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
        let histograms: [(&str, &str, &Mutex<Histogram<u64>>); 5] = [
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
            (
                "tessera_allocator_trim_duration_seconds",
                "Duration of one hand-back of free heap pages to the kernel (malloc_trim).",
                &self.trim_us,
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
        for (name, help, value) in memory_gauges() {
            let _ = writeln!(out, "# HELP {name} {help}\n# TYPE {name} gauge\n{name} {value}");
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
    connections_max: usize,
    idle_timeout: std::time::Duration,
    metrics: Arc<Metrics>,
) -> Result<std::thread::JoinHandle<()>, String> {
    let limits = tiny_http::ConnectionLimits {
        max_open: connections_max,
        idle_timeout,
        stats: metrics.metrics_connections.clone(),
    };
    let server = tiny_http::Server::http_limited(address, limits)
        .map_err(|error| format!("cannot listen on {address}: {error}"))?;
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

/// One HELP/TYPE header and sample per atomic, all of metric type `kind`.
fn write_atomics(out: &mut String, kind: &str, metrics: &[(&str, &str, &AtomicU64)]) {
    for (name, help, value) in metrics {
        let _ = writeln!(
            out,
            "# HELP {name} {help}\n# TYPE {name} {kind}\n{name} {}",
            value.load(Ordering::Relaxed)
        );
    }
}

/// The process's memory as the kernel and the allocator see it, read at scrape time.
///
/// Resident anonymous memory is what the heap costs the machine (file pages of the mapped data
/// directory are left out). The allocator's in-use figure is what the program holds; its free
/// figure is what the allocator keeps without returning it to the kernel. Growth of the first
/// with the second flat is fragmentation or retention inside the allocator; growth of the
/// second is memory the node holds on to.
fn memory_gauges() -> Vec<(&'static str, &'static str, u64)> {
    let mut gauges = Vec::with_capacity(3);
    if let Some(bytes) = std::fs::read_to_string("/proc/self/status").ok().as_deref().and_then(rss_anon_bytes)
    {
        gauges.push((
            "tessera_process_resident_anonymous_bytes",
            "Resident anonymous memory (RssAnon) of the process.",
            bytes,
        ));
    }
    #[cfg(all(target_os = "linux", target_env = "gnu"))]
    {
        #[allow(unsafe_code)]
        // SAFETY: mallinfo2 has no arguments or preconditions and returns a plain struct by
        // value; glibc locks each arena while summing it, so other threads may allocate.
        let info = unsafe { libc::mallinfo2() };
        gauges.push((
            "tessera_allocator_in_use_bytes",
            "Heap bytes in use as the allocator counts them (arenas plus mapped chunks).",
            (info.uordblks + info.hblkhd) as u64,
        ));
        gauges.push((
            "tessera_allocator_free_bytes",
            "Heap bytes the allocator holds free without returning them to the kernel.",
            info.fordblks as u64,
        ));
    }
    gauges
}

/// `RssAnon` of a `/proc/PID/status` text, in bytes.
fn rss_anon_bytes(status: &str) -> Option<u64> {
    let line = status.lines().find(|line| line.starts_with("RssAnon:"))?;
    let kib: u64 = line.split_whitespace().nth(1)?.parse().ok()?;
    kib.checked_mul(1024)
}

#[cfg(test)]
mod memory_tests {
    use super::{memory_gauges, rss_anon_bytes};

    #[test]
    fn rss_anon_is_read_from_the_status_text() {
        assert_eq!(rss_anon_bytes("Name:\ttessera\nRssAnon:\t   2048 kB\nRssFile: 1 kB\n"), Some(2 << 20));
        assert_eq!(rss_anon_bytes("Name:\ttessera\n"), None);
        assert_eq!(rss_anon_bytes("RssAnon: lots kB\n"), None);
    }

    #[test]
    fn the_allocator_counts_a_live_allocation() {
        let before = memory_gauges();
        let in_use = |gauges: &[(&str, &str, u64)]| {
            gauges.iter().find(|(name, ..)| *name == "tessera_allocator_in_use_bytes").map(|g| g.2)
        };
        assert!(before.iter().any(|(name, ..)| *name == "tessera_process_resident_anonymous_bytes"));
        // 256 MiB is mapped on its own (untouched, so it costs no memory), far above what the
        // other test threads allocate and free meanwhile.
        let held = std::hint::black_box(vec![0u8; 256 << 20]);
        let during = memory_gauges();
        assert!(in_use(&during).unwrap() >= in_use(&before).unwrap() + (200 << 20));
        drop(held);
    }
}
