//! Prometheus exposition at `/metrics` on its own port, served by [`super::http`].
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

/// Declares a struct of series, one `AtomicU64` field per series, whose doc comments are the
/// HELP text of the exposition: the name, the type and the description of a metric are
/// written once, beside each other. The struct gets `render`, which writes every series in
/// declaration order (samples of one labelled family share one HELP/TYPE header, so keep
/// them adjacent), and `Default`.
///
/// ```text
/// series! {
///     /// Counters of the network layer.
///     pub struct NetCounters {
///         /// Frames written to peers.
///         counter frames_out = "tessera_net_frames_sent_total",
///     }
/// }
/// ```
///
/// A struct declared `prefixed` is one set of series that several owners keep each of their
/// own (the two HTTP ports): its names are written after a prefix given to `render`.
macro_rules! series {
    (
        $(#[$meta:meta])*
        $vis:vis struct $name:ident {
            $($body:tt)*
        }
    ) => {
        $crate::node::metrics::series!(@struct $(#[$meta])* $vis struct $name { $($body)* });
        impl $name {
            /// Every series, as exposition text.
            pub fn render(&self, out: &mut String) {
                self.render_series(out, "");
            }
        }
    };
    (
        $(#[$meta:meta])*
        $vis:vis prefixed struct $name:ident {
            $($body:tt)*
        }
    ) => {
        $crate::node::metrics::series!(@struct $(#[$meta])* $vis struct $name { $($body)* });
        impl $name {
            /// Every series, as exposition text, each name after `prefix`.
            pub fn render(&self, out: &mut String, prefix: &str) {
                self.render_series(out, prefix);
            }
        }
    };
    (
        @struct
        $(#[$meta:meta])*
        $vis:vis struct $name:ident {
            $(
                #[doc = $help:literal]
                $(#[doc = $more:literal])*
                $kind:ident $field:ident = $metric:literal,
            )*
        }
    ) => {
        $(#[$meta])*
        #[derive(Debug, Default)]
        $vis struct $name {
            $(
                #[doc = $help]
                $(#[doc = $more])*
                pub $field: std::sync::atomic::AtomicU64,
            )*
        }

        impl $name {
            fn render_series(&self, out: &mut String, prefix: &str) {
                let mut family = String::new();
                $(
                    $crate::node::metrics::write_sample(
                        out,
                        &mut family,
                        prefix,
                        $metric,
                        stringify!($kind),
                        concat!($help $(, $more)*),
                        self.$field.load(std::sync::atomic::Ordering::Relaxed),
                    );
                )*
            }
        }
    };
}
pub(crate) use series;

/// Writes one sample named `prefix` then `metric`, preceded by its family's HELP and TYPE
/// lines unless the previous sample (named in `family`) was of the same family.
pub fn write_sample(
    out: &mut String,
    family: &mut String,
    prefix: &str,
    metric: &str,
    kind: &str,
    help: &str,
    value: u64,
) {
    let name = metric.split('{').next().unwrap_or(metric);
    if family.strip_prefix(prefix) != Some(name) {
        // Doc comments arrive as lines with a leading space each: one line of HELP.
        let help = help.split_whitespace().collect::<Vec<_>>().join(" ");
        let _ = writeln!(out, "# HELP {prefix}{name} {help}\n# TYPE {prefix}{name} {kind}");
        family.clear();
        family.push_str(prefix);
        family.push_str(name);
    }
    let _ = writeln!(out, "{prefix}{metric} {value}");
}

series! {
    /// What the node loop publishes after each tick (read by scrapes). Written only by
    /// [`crate::node`]'s loop.
    pub struct NodeSeries {
        /// Height of the last finalized block.
        gauge chain_height = "tessera_chain_height",
        /// Transactions pending in the mempool.
        gauge mempool_transactions = "tessera_mempool_transactions",
        /// Most transactions the mempool holds (`pipeline.mempool_count_max`).
        gauge mempool_capacity = "tessera_mempool_capacity_transactions",
        /// Validators in the set this node follows.
        gauge consensus_validators = "tessera_consensus_validators",
        /// Validators a certificate needs (n - f): with fewer than this many reachable,
        /// including itself, a validator cannot finalize.
        gauge consensus_quorum = "tessera_consensus_quorum",
        /// Transactions ingested into the pipeline.
        counter ingested = "tessera_pipeline_ingested_total",
        /// Signatures verified (cache misses).
        counter verified = "tessera_pipeline_verified_total",
        /// Signatures found in the verification cache.
        counter verify_cache_hits = "tessera_pipeline_verify_cache_hits_total",
        /// Transactions admitted to the mempool.
        counter admitted = "tessera_pipeline_admitted_total",
        /// Transactions executed successfully.
        counter executed = "tessera_pipeline_executed_total",
        /// Transactions in blocks that failed at execution.
        counter failed = "tessera_pipeline_failed_total",
        /// Entries in each of the node's bounded id windows.
        gauge window_duplicate_ids = "tessera_node_window_entries{window=\"duplicate_ids\"}",
        /// Entries in each of the node's bounded id windows.
        gauge window_fates = "tessera_node_window_entries{window=\"fates\"}",
        /// Entries in each of the node's bounded id windows.
        gauge window_submit_times = "tessera_node_window_entries{window=\"submit_times\"}",
        /// Entries in each of the node's bounded id windows.
        gauge window_submit_order = "tessera_node_window_entries{window=\"submit_order\"}",
        /// Finalized blocks kept in memory for peers that sync.
        gauge sync_history_blocks = "tessera_node_sync_history_blocks",
        /// Cost of the sync history as counted against its bound (transaction bytes plus 512
        /// per block).
        gauge sync_history_bytes = "tessera_node_sync_history_bytes",
        /// Executed deltas held for validated or built blocks not yet finalized (one each, in
        /// proportion to the accounts the block touches; the name is kept for dashboards).
        gauge speculative_ledgers = "tessera_node_speculative_ledgers",
        /// Current consensus view.
        gauge consensus_view = "tessera_consensus_view",
        /// Blocks finalized.
        counter finalized_blocks = "tessera_consensus_finalized_blocks_total",
        /// Blocks finalized through block sync.
        counter synced_blocks = "tessera_consensus_synced_blocks_total",
        /// Views abandoned on timeout.
        counter timeouts = "tessera_consensus_timeouts_total",
        /// Equivocations detected.
        counter equivocations = "tessera_consensus_equivocations_total",
        /// Proposals refused for a wrong state root.
        counter rejected_state_root = "tessera_consensus_rejected_state_root_total",
        /// Proposals refused for an invalid transaction.
        counter rejected_invalid_transaction = "tessera_consensus_rejected_invalid_transaction_total",
        /// Proposals refused for exceeding limits.
        counter rejected_over_limit = "tessera_consensus_rejected_over_limit_total",
        /// Proposals dropped unchecked for a view this node has left.
        counter stale_proposals = "tessera_consensus_stale_proposals_total",
        /// Consensus messages, and blocks cut from sync responses, dropped before any signature
        /// check because the state machine would ignore them.
        counter dropped_unverified = "tessera_consensus_dropped_unverified_total",
        /// Of those, messages dropped because their sender's messages in the same tick already
        /// carried its share of signatures to verify.
        counter over_signature_budget = "tessera_consensus_over_signature_budget_total",
        /// Sync requests from validators left unanswered because the same validator was
        /// answered less than an eighth of the view timeout ago.
        counter sync_refused = "tessera_consensus_sync_requests_refused_total",
        /// Distinct signatures verified on consensus messages (a copy is verified once).
        counter signatures_verified = "tessera_consensus_signatures_verified_total",
    }
}

series! {
    /// The figures of one HTTP port (JSON-RPC or metrics), written by its server
    /// ([`super::http`]), rendered after the prefix `tessera_rpc_` or `tessera_metrics_`.
    pub prefixed struct HttpSeries {
        /// Connections open on the port.
        gauge connections_open = "connections_open",
        /// Connections accepted while their source address held connections_per_address_max,
        /// waiting unread for one of its slots (for at most the idle time).
        gauge connections_waiting = "connections_waiting",
        /// Connections closed unread, by reason: the port's connections_max was reached (closed
        /// at accept), or connections_per_address_max for the source address (closed when no
        /// slot of the address came free within the idle time, or at accept when 512
        /// connections already waited).
        counter refused_connections_max = "connections_refused_total{reason=\"connections_max\"}",
        /// Connections closed unread, by reason: the port's connections_max was reached (closed
        /// at accept), or connections_per_address_max for the source address (closed when no
        /// slot of the address came free within the idle time, or at accept when 512
        /// connections already waited).
        counter refused_per_address = "connections_refused_total{reason=\"per_address\"}",
        /// Connections asked to close, at the port's connections_max, so that a newcomer whose
        /// address held at least two fewer connections could have their slots (an idle one
        /// closes at once, a busy one after its answer).
        counter evicted = "connections_evicted_total",
        /// Connections closed for a deadline missed, by phase: request headers (which includes
        /// an idle keep-alive connection waiting for its next request), request body, or a
        /// response the client stopped reading.
        counter timed_out_header = "connections_timed_out_total{phase=\"header\"}",
        /// Connections closed for a deadline missed, by phase: request headers (which includes
        /// an idle keep-alive connection waiting for its next request), request body, or a
        /// response the client stopped reading.
        counter timed_out_body = "connections_timed_out_total{phase=\"body\"}",
        /// Connections closed for a deadline missed, by phase: request headers (which includes
        /// an idle keep-alive connection waiting for its next request), request body, or a
        /// response the client stopped reading.
        counter timed_out_write = "connections_timed_out_total{phase=\"write\"}",
        /// Failed accepts (such as running out of file descriptors); each pauses the port
        /// briefly.
        counter accept_errors = "accept_errors_total",
        /// Requests answered.
        counter requests = "requests_total",
        /// Requests refused before their body was used, by reason: wrong path, wrong method,
        /// body over the limit, wrong content type, or a body that broke off.
        counter refused_not_found = "requests_refused_total{reason=\"not_found\"}",
        /// Requests refused before their body was used, by reason: wrong path, wrong method,
        /// body over the limit, wrong content type, or a body that broke off.
        counter refused_method = "requests_refused_total{reason=\"method\"}",
        /// Requests refused before their body was used, by reason: wrong path, wrong method,
        /// body over the limit, wrong content type, or a body that broke off.
        counter refused_too_large = "requests_refused_total{reason=\"body_too_large\"}",
        /// Requests refused before their body was used, by reason: wrong path, wrong method,
        /// body over the limit, wrong content type, or a body that broke off.
        counter refused_content_type = "requests_refused_total{reason=\"content_type\"}",
        /// Requests refused before their body was used, by reason: wrong path, wrong method,
        /// body over the limit, wrong content type, or a body that broke off.
        counter refused_bad_body = "requests_refused_total{reason=\"bad_body\"}",
        /// WebSocket subscription sessions open (JSON-RPC port only); each also holds one of
        /// the port's open connections.
        gauge websocket_sessions = "websocket_sessions_open",
        /// WebSocket sessions the node closed, by reason: the subscriber fell behind the feed,
        /// or it went quiet (no message within the idle time, or no answer to a ping).
        counter websocket_closed_behind = "websocket_sessions_closed_total{reason=\"behind\"}",
        /// WebSocket sessions the node closed, by reason: the subscriber fell behind the feed,
        /// or it went quiet (no message within the idle time, or no answer to a ping).
        counter websocket_closed_idle = "websocket_sessions_closed_total{reason=\"idle\"}",
        /// Subscription notifications written to WebSocket sessions.
        counter websocket_notifications = "websocket_notifications_total",
    }
}

/// Everything the node exposes. Written by the node loop and the network; read by scrapes.
#[derive(Debug)]
pub struct Metrics {
    /// Network counters.
    pub net: Arc<NetCounters>,
    /// Gauges and counters published by the node loop after each tick.
    pub node: NodeSeries,
    /// Transactions refused, by reason: (labelled series, count), published with `node`.
    pub rejected: Mutex<Vec<(String, u64)>>,
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
    /// The JSON-RPC port's connections and requests.
    pub rpc_http: Arc<HttpSeries>,
    /// This exposition's port: connections and requests.
    pub metrics_http: Arc<HttpSeries>,
}

fn histogram() -> Mutex<Histogram<u64>> {
    Mutex::new(Histogram::new_with_bounds(1, 120_000_000, 3).expect("valid histogram bounds"))
}

impl Metrics {
    /// Empty metrics over the network's counters.
    pub fn new(net: Arc<NetCounters>) -> Metrics {
        Metrics {
            net,
            node: NodeSeries::default(),
            rejected: Mutex::new(Vec::new()),
            commit_latency_us: histogram(),
            propagation_us: histogram(),
            tick_us: histogram(),
            verify_batch_us: histogram(),
            trim_us: histogram(),
            scrapes: AtomicU64::new(0),
            rpc_http: Arc::default(),
            metrics_http: Arc::default(),
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
        self.net.render(&mut out);
        self.rpc_http.render(&mut out, "tessera_rpc_");
        self.metrics_http.render(&mut out, "tessera_metrics_");
        self.node.render(&mut out);
        if let Ok(rejected) = self.rejected.lock()
            && !rejected.is_empty()
        {
            let name = "tessera_rejected_transactions_total";
            let _ = writeln!(out, "# HELP {name} Transactions refused, by reason.\n# TYPE {name} counter");
            for (labelled, count) in rejected.iter() {
                let _ = writeln!(out, "{labelled} {count}");
            }
        }
        let backend = tessera_systems::kernels::sigverify::curve_backend();
        let backend = if matches!(backend, "avx512" | "avx2") { backend } else { "serial" };
        let _ = writeln!(
            out,
            "# HELP tessera_sigverify_backend_info The curve arithmetic backend in use (value 1).\n\
             # TYPE tessera_sigverify_backend_info gauge\ntessera_sigverify_backend_info{{backend=\"{backend}\"}} 1"
        );
        #[cfg(feature = "dhat-heap")]
        {
            let heap = dhat::HeapStats::get();
            for (name, kind, help, value) in [
                (
                    "tessera_heap_allocations_total",
                    "counter",
                    "Heap allocations since start.",
                    heap.total_blocks,
                ),
                (
                    "tessera_heap_allocated_bytes_total",
                    "counter",
                    "Bytes allocated since start.",
                    heap.total_bytes,
                ),
                (
                    "tessera_heap_live_bytes",
                    "gauge",
                    "Bytes allocated and not yet freed.",
                    heap.curr_bytes as u64,
                ),
                (
                    "tessera_heap_live_allocations",
                    "gauge",
                    "Allocations not yet freed.",
                    heap.curr_blocks as u64,
                ),
            ] {
                let _ = writeln!(out, "# HELP {name} {help}\n# TYPE {name} {kind}\n{name} {value}");
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

/// Serves `/metrics` (GET and HEAD) on its own port until the returned server is stopped.
///
/// # Errors
/// The port cannot be bound.
pub fn serve(
    address: std::net::SocketAddr,
    limits: super::http::Limits,
    metrics: Arc<Metrics>,
) -> Result<super::http::Server, String> {
    use hyper::{Method, Response, StatusCode, header};

    let series = metrics.metrics_http.clone();
    super::http::serve("metrics", address, limits, series, move |port, request| {
        let response = if request.uri().path() != "/metrics" {
            port.not_found(&request, "not found; try /metrics\n")
        } else if request.method() != Method::GET && request.method() != Method::HEAD {
            port.method_not_allowed(&request, "GET, HEAD")
        } else {
            let mut response = Response::new(super::http::Body::from(metrics.render()));
            response.headers_mut().insert(
                header::CONTENT_TYPE,
                header::HeaderValue::from_static("text/plain; version=0.0.4; charset=utf-8"),
            );
            *response.status_mut() = StatusCode::OK;
            response
        };
        std::future::ready(response)
    })
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
/// The `RssAnon` figure of a `/proc/<pid>/status` text, in bytes.
pub(crate) fn rss_anon_bytes(status: &str) -> Option<u64> {
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

#[cfg(test)]
mod serve_tests {
    use std::io::{Read, Write};
    use std::net::{SocketAddr, TcpStream};
    use std::sync::Arc;
    use std::time::Duration;

    use super::{Metrics, serve};
    use crate::node::http::Limits;

    fn exchange(addr: SocketAddr, request: &str) -> String {
        let mut stream = TcpStream::connect(addr).unwrap();
        stream.set_read_timeout(Some(Duration::from_secs(5))).unwrap();
        stream.write_all(request.as_bytes()).unwrap();
        let mut response = String::new();
        let _ = stream.read_to_string(&mut response);
        response
    }

    /// `/metrics` takes GET and HEAD (405 naming them otherwise), every other path is 404,
    /// and the exposition carries the HTTP ports' series, each family with one HELP and TYPE.
    #[test]
    fn metrics_are_served_by_get_and_head_only() {
        let metrics = Arc::new(Metrics::new(Arc::default()));
        let limits = Limits {
            connections_max: 4,
            connections_per_address_max: 4,
            header_timeout: Duration::from_secs(5),
            body_timeout: Duration::from_secs(5),
            write_timeout: Duration::from_secs(5),
        };
        let server = serve(SocketAddr::from(([127, 0, 0, 1], 0)), limits, metrics.clone()).unwrap();
        let addr = server.local_addr();
        let get = exchange(addr, "GET /metrics HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n");
        assert!(get.starts_with("HTTP/1.1 200"), "{get}");
        assert!(get.contains("content-type: text/plain; version=0.0.4"), "{get}");
        for family in [
            "tessera_metrics_connections_open 1",
            "tessera_rpc_connections_open 0",
            "tessera_rpc_connections_refused_total{reason=\"per_address\"} 0",
            "tessera_metrics_requests_refused_total{reason=\"method\"} 0",
        ] {
            assert!(get.contains(family), "{family} missing: {get}");
        }
        assert_eq!(get.matches("# TYPE tessera_rpc_connections_timed_out_total counter").count(), 1);
        let head = exchange(addr, "HEAD /metrics HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n");
        assert!(head.starts_with("HTTP/1.1 200") && head.ends_with("\r\n\r\n"), "{head}");
        let post = exchange(
            addr,
            "POST /metrics HTTP/1.1\r\nHost: x\r\nContent-Length: 0\r\nConnection: close\r\n\r\n",
        );
        assert!(post.starts_with("HTTP/1.1 405"), "{post}");
        assert!(post.to_ascii_lowercase().contains("allow: get, head\r\n"), "{post}");
        let elsewhere = exchange(addr, "GET / HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n");
        assert!(elsewhere.starts_with("HTTP/1.1 404"), "{elsewhere}");
        let counted = exchange(addr, "GET /metrics HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n");
        assert!(counted.contains("tessera_metrics_requests_refused_total{reason=\"method\"} 1"), "{counted}");
        assert!(
            counted.contains("tessera_metrics_requests_refused_total{reason=\"not_found\"} 1"),
            "{counted}"
        );
    }
}
