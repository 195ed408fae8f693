//! What a simulation records as it runs, and the deterministic report made from it: only
//! virtual-time figures and counts, so the same scenario and seed give the same bytes.

use std::collections::{HashMap, HashSet};

use hdrhistogram::Histogram;
use serde_json::{Value, json};
use tessera_components::{Hash, TxnId};
use tessera_systems::consensus::core::Agreement;

use super::scenario::Scenario;

/// Blocks whose propagation is still being followed are closed this long after their
/// proposal (nodes that have not got them by then count as never holding them); proposals
/// that were never finalized are dropped then.
const PROPAGATION_WINDOW_NS: u64 = 30_000_000_000;

struct Track {
    proposed_at: u64,
    validators: Vec<u32>,
    delays_us: Vec<u64>,
}

/// The report as JSON (keys sorted, numbers from virtual time only).
pub type Report = Value;

/// A safety or recording problem, kept for the report.
#[derive(Clone, Debug)]
struct Violation {
    at_ns: u64,
    what: String,
}

/// Everything a run records.
pub struct Recorder {
    scenario: Scenario,
    seed: u64,
    nodes: u32,
    validators: u32,
    regions: Vec<usize>,
    byzantine: Vec<bool>,
    down: Vec<bool>,
    never_restart: Vec<bool>,
    last_height: Vec<u64>,
    /// The first block an honest validator finalized at each height.
    canonical: Agreement,
    finalized_hashes: HashSet<Hash>,
    /// What each honest validator has sent signed, by (validator, message kind, height, view).
    /// The recorder's memory: it survives the validator's restarts.
    signed: HashMap<(u32, u8, u64, u64), Hash>,
    violation: Option<Violation>,
    pending: HashMap<TxnId, u64>,
    submitted_per_s: Vec<u64>,
    finalized_per_s: Vec<u64>,
    latency_per_s: Vec<Vec<u64>>,
    latency_us: Histogram<u64>,
    finality_lag_us: Histogram<u64>,
    propagation_us: Histogram<u64>,
    block_t50_us: Histogram<u64>,
    block_t90_us: Histogram<u64>,
    block_t100_us: Histogram<u64>,
    blocks_tracked: u64,
    blocks_not_everywhere: u64,
    tracks: HashMap<Hash, Track>,
    track_order: std::collections::VecDeque<(u64, Hash)>,
    sent_msgs: Vec<u64>,
    sent_bytes: Vec<u64>,
    recv_msgs: Vec<u64>,
    recv_bytes: Vec<u64>,
    submitted: u64,
    finalized_txns: u64,
    heal_ns: u64,
    mark_ns: u64,
    height_at_mark: Option<u64>,
    fault_log: Vec<Value>,
    /// Messages lost to partitions.
    pub partitioned: u64,
    /// Messages lost at random.
    pub lost: u64,
    /// Messages delivered twice.
    pub duplicated: u64,
    /// Messages that arrived at a crashed validator.
    pub to_crashed: u64,
    /// Gossip copies of a block a full node already had.
    pub gossip_duplicates: u64,
}

impl std::fmt::Debug for Recorder {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Recorder")
            .field("scenario", &self.scenario.name)
            .field("submitted", &self.submitted)
            .field("finalized_txns", &self.finalized_txns)
            .finish_non_exhaustive()
    }
}

fn histogram() -> Histogram<u64> {
    Histogram::new_with_bounds(1, 7 * 24 * 3_600_000_000, 3).expect("valid histogram bounds")
}

fn ms(us: u64) -> f64 {
    us as f64 / 1000.0
}

fn summary(h: &Histogram<u64>) -> Value {
    if h.is_empty() {
        return json!({"count": 0});
    }
    json!({
        "count": h.len(),
        "p50": ms(h.value_at_quantile(0.5)),
        "p90": ms(h.value_at_quantile(0.9)),
        "p99": ms(h.value_at_quantile(0.99)),
        "p999": ms(h.value_at_quantile(0.999)),
        "max": ms(h.max()),
    })
}

fn nearest_rank(sorted: &[u64], q: f64) -> u64 {
    if sorted.is_empty() {
        return 0;
    }
    let rank = ((q * sorted.len() as f64).ceil() as usize).clamp(1, sorted.len());
    sorted[rank - 1]
}

impl Recorder {
    /// A recorder for `scenario`, nodes placed in `regions`.
    pub fn new(scenario: &Scenario, seed: u64, regions: &[usize]) -> Recorder {
        let nodes = scenario.node_count();
        let n = nodes as usize;
        let v = scenario.validators.count as usize;
        let seconds = scenario.duration_s.ceil() as usize + 1;
        Recorder {
            scenario: scenario.clone(),
            seed,
            nodes,
            validators: scenario.validators.count,
            regions: regions.to_vec(),
            byzantine: vec![false; v],
            down: vec![false; v],
            never_restart: vec![false; v],
            last_height: vec![0; v],
            canonical: Agreement::new(),
            finalized_hashes: HashSet::new(),
            signed: HashMap::new(),
            violation: None,
            pending: HashMap::new(),
            submitted_per_s: vec![0; seconds],
            finalized_per_s: vec![0; seconds],
            latency_per_s: vec![Vec::new(); seconds],
            latency_us: histogram(),
            finality_lag_us: histogram(),
            propagation_us: histogram(),
            block_t50_us: histogram(),
            block_t90_us: histogram(),
            block_t100_us: histogram(),
            blocks_tracked: 0,
            blocks_not_everywhere: 0,
            tracks: HashMap::new(),
            track_order: std::collections::VecDeque::new(),
            sent_msgs: vec![0; n],
            sent_bytes: vec![0; n],
            recv_msgs: vec![0; n],
            recv_bytes: vec![0; n],
            submitted: 0,
            finalized_txns: 0,
            heal_ns: 0,
            mark_ns: u64::MAX,
            height_at_mark: None,
            fault_log: Vec::new(),
            partitioned: 0,
            lost: 0,
            duplicated: 0,
            to_crashed: 0,
            gossip_duplicates: 0,
        }
    }

    fn second(&self, at_ns: u64) -> usize {
        ((at_ns / 1_000_000_000) as usize).min(self.submitted_per_s.len() - 1)
    }

    /// Whether validator `node` is Byzantine at any time in the run.
    pub fn is_byzantine(&self, node: u32) -> bool {
        self.byzantine.get(node as usize).copied().unwrap_or(false)
    }

    /// Marks a Byzantine validator (excluded from the honest invariants).
    pub fn mark_byzantine(&mut self, node: u32) {
        self.byzantine[node as usize] = true;
    }

    /// A validator that crashes for good.
    pub fn never_restarts(&mut self, node: u32) {
        self.never_restart[node as usize] = true;
    }

    /// When the last fault heals and when liveness is measured from.
    pub fn set_heal(&mut self, heal_ns: u64, mark_ns: u64) {
        self.heal_ns = heal_ns;
        self.mark_ns = mark_ns;
    }

    fn honest_up_min_height(&self) -> Option<u64> {
        (0..self.validators as usize)
            .filter(|i| !self.byzantine[*i] && !self.down[*i] && !self.never_restart[*i])
            .map(|i| self.last_height[i])
            .min()
    }

    /// The liveness reference point: the lowest honest height after faults healed.
    pub fn liveness_mark(&mut self) {
        self.height_at_mark = self.honest_up_min_height();
    }

    /// A validator crashed.
    pub fn crashed(&mut self, node: u32, at_ns: u64) {
        self.down[node as usize] = true;
        self.fault_log.push(json!({"at_ms": at_ns / 1_000_000, "node": node, "event": "crash"}));
    }

    /// A validator (re)started at `height`.
    pub fn restarted(&mut self, node: u32, at_ns: u64, height: u64) {
        if self.down[node as usize] {
            self.fault_log.push(
                json!({"at_ms": at_ns / 1_000_000, "node": node, "event": "restart", "height": height}),
            );
        }
        self.down[node as usize] = false;
        self.last_height[node as usize] = height;
    }

    /// Storage refused to open (and was wiped) or to write.
    pub fn storage_refused(&mut self, node: u32, at_ns: u64, error: &str) {
        self.fault_log.push(
            json!({"at_ms": at_ns / 1_000_000, "node": node, "event": "storage_refused", "error": error}),
        );
    }

    /// Storage dropped a torn tail at open.
    pub fn storage_torn(&mut self, node: u32, at_ns: u64, bytes: u64) {
        self.fault_log.push(
            json!({"at_ms": at_ns / 1_000_000, "node": node, "event": "torn_tail_dropped", "bytes": bytes}),
        );
    }

    /// A crash damaged a data directory.
    pub fn storage_damaged(&mut self, node: u32, at_ns: u64, what: &str) {
        self.fault_log.push(
            json!({"at_ms": at_ns / 1_000_000, "node": node, "event": "storage_damaged", "what": what}),
        );
    }

    /// A message left `node`.
    pub fn sent(&mut self, node: u32, bytes: u64) {
        self.sent_msgs[node as usize] += 1;
        self.sent_bytes[node as usize] += bytes;
    }

    /// A message reached `node`.
    pub fn received(&mut self, node: u32, bytes: u64) {
        self.recv_msgs[node as usize] += 1;
        self.recv_bytes[node as usize] += bytes;
    }

    /// A client submitted `id`.
    pub fn submitted(&mut self, id: TxnId, at_ns: u64) {
        self.submitted += 1;
        let s = self.second(at_ns);
        self.submitted_per_s[s] += 1;
        self.pending.insert(id, at_ns);
    }

    /// A leader proposed `hash`.
    pub fn proposed(&mut self, hash: Hash, node: u32, at_ns: u64) {
        self.close_old_tracks(at_ns);
        if self.tracks.contains_key(&hash) {
            return;
        }
        self.tracks.insert(hash, Track { proposed_at: at_ns, validators: vec![node], delays_us: vec![0] });
        self.track_order.push_back((at_ns, hash));
    }

    /// `node` now holds block `hash`.
    pub fn holds(&mut self, hash: Hash, node: u32, at_ns: u64) {
        let Some(track) = self.tracks.get_mut(&hash) else { return };
        if node < self.validators {
            if track.validators.contains(&node) {
                return;
            }
            track.validators.push(node);
        }
        track.delays_us.push(at_ns.saturating_sub(track.proposed_at) / 1000);
    }

    fn close_old_tracks(&mut self, now_ns: u64) {
        while let Some((at, hash)) = self.track_order.front().copied() {
            if now_ns.saturating_sub(at) < PROPAGATION_WINDOW_NS {
                break;
            }
            self.track_order.pop_front();
            self.close_track(hash);
        }
    }

    fn close_track(&mut self, hash: Hash) {
        let Some(mut track) = self.tracks.remove(&hash) else { return };
        if !self.finalized_hashes.contains(&hash) {
            return;
        }
        track.delays_us.sort_unstable();
        self.blocks_tracked += 1;
        for delay in &track.delays_us {
            self.propagation_us.saturating_record((*delay).max(1));
        }
        let n = self.nodes as usize;
        let at = |fraction: f64| -> Option<u64> {
            let needed = ((fraction * n as f64).ceil() as usize).max(1);
            track.delays_us.get(needed - 1).copied()
        };
        if let Some(t) = at(0.5) {
            self.block_t50_us.saturating_record(t.max(1));
        }
        if let Some(t) = at(0.9) {
            self.block_t90_us.saturating_record(t.max(1));
        }
        match at(1.0) {
            Some(t) => self.block_t100_us.saturating_record(t.max(1)),
            None => self.blocks_not_everywhere += 1,
        }
    }

    /// The last height validator `node` finalized.
    pub fn finalized_height(&self, node: u32) -> u64 {
        self.last_height[node as usize]
    }

    /// Submit → finalized latency of every transaction finalized, in microseconds.
    pub fn latency_us(&self) -> &Histogram<u64> {
        &self.latency_us
    }

    /// Validator `node` finalized `hash` at `height`.
    pub fn finalized(
        &mut self,
        node: u32,
        height: u64,
        hash: Hash,
        txns: &[TxnId],
        at_ns: u64,
        honest: bool,
    ) {
        let i = node as usize;
        if height != self.last_height[i] + 1 && self.violation.is_none() && honest {
            self.violation = Some(Violation {
                at_ns,
                what: format!("validator {node} finalized height {height} after {}", self.last_height[i]),
            });
        }
        self.last_height[i] = height;
        if !honest {
            return;
        }
        self.finalized_hashes.insert(hash);
        if let Err(conflict) = self.canonical.record(node, height, hash)
            && self.violation.is_none()
        {
            self.violation = Some(Violation {
                at_ns,
                what: format!(
                    "validator {node} finalized {} at height {height}, another honest validator {}",
                    hash.to_hex(),
                    conflict.first.to_hex()
                ),
            });
        }
        if let Some(track) = self.tracks.get(&hash) {
            let lag = at_ns.saturating_sub(track.proposed_at) / 1000;
            self.finality_lag_us.saturating_record(lag.max(1));
        }
        let s = self.second(at_ns);
        for id in txns {
            if let Some(submitted) = self.pending.remove(id) {
                let latency = (at_ns - submitted) / 1000;
                self.latency_us.saturating_record(latency.max(1));
                self.latency_per_s[s].push(latency);
                self.finalized_per_s[s] += 1;
                self.finalized_txns += 1;
            }
        }
    }

    /// An honest validator sends `message`. A second, different block signed for one kind,
    /// height and view, even across a restart, is a safety violation: it is what a saved
    /// safety state prevents, and the first step of every fork a forgetful restart allows.
    pub fn signed(&mut self, node: u32, message: &tessera_components::ConsensusMessage, at_ns: u64) {
        use tessera_components::ConsensusMessage;
        let (kind, height, view, hash) = match message {
            ConsensusMessage::Proposal(proposal) => {
                (0u8, proposal.block.header.height, proposal.view, proposal.block.header.hash())
            }
            ConsensusMessage::Vote(vote) => (vote.kind as u8, vote.height, vote.view, vote.block),
            _ => return,
        };
        let first = *self.signed.entry((node, kind, height, view)).or_insert(hash);
        if first != hash && self.violation.is_none() {
            let what = ["proposal", "prepare vote", "commit vote"][usize::from(kind).min(2)];
            self.violation = Some(Violation {
                at_ns,
                what: format!(
                    "honest validator {node} signed a second {what} at height {height} view {view}: {} after {}",
                    hash.to_hex(),
                    first.to_hex()
                ),
            });
        }
    }

    /// The audit of vouched signatures found one that does not verify
    /// ([`super::audit`]): the run acted on a verdict verification would not give, so its
    /// results stand for nothing, and it fails as a safety violation would.
    pub fn audit_failed(&mut self, at_ns: u64, what: String) {
        // It takes precedence: a violation found before it may be its consequence.
        let what = match self.violation.take() {
            Some(earlier) if earlier.what.contains(&what) => earlier.what,
            Some(earlier) => {
                format!("{what} (and before it, at {} ms: {})", earlier.at_ns / 1_000_000, earlier.what)
            }
            None => what,
        };
        self.violation = Some(Violation { at_ns, what });
    }

    /// Safety violation, if any.
    pub fn violation(&self) -> Option<String> {
        self.violation.as_ref().map(|v| format!("at {} ms: {}", v.at_ns / 1_000_000, v.what))
    }

    /// Liveness: `Some(true)` if honest validators finalized at least two more blocks after
    /// faults healed, `Some(false)` if not, `None` if the run ended before it could be judged.
    pub fn liveness(&self) -> Option<bool> {
        let mark = self.height_at_mark?;
        Some(self.honest_up_min_height().is_some_and(|end| end >= mark + 2))
    }

    /// Closes every block still followed, in proposal order (so the result is deterministic).
    /// Call once, at the end of the run, before [`Recorder::report`].
    pub fn finish(&mut self) {
        while let Some((_, hash)) = self.track_order.pop_front() {
            self.close_track(hash);
        }
    }

    /// Builds the report.
    pub fn report(&self, end_ns: u64, events: u64) -> Report {
        let r = self;
        let seconds = end_ns as f64 / 1e9;
        let per_node: Vec<Value> = (0..self.nodes as usize)
            .map(|i| {
                json!({
                    "node": i,
                    "role": if (i as u32) < self.validators { "validator" } else { "full" },
                    "region": self.scenario.network.regions[self.regions[i]].name,
                    "messages_sent": self.sent_msgs[i],
                    "bytes_sent": self.sent_bytes[i],
                    "messages_received": self.recv_msgs[i],
                    "bytes_received": self.recv_bytes[i],
                })
            })
            .collect();
        let series: Vec<Value> = (0..self.submitted_per_s.len())
            .filter(|s| (*s as f64) < seconds)
            .map(|s| {
                let mut sorted = self.latency_per_s[s].clone();
                sorted.sort_unstable();
                json!({
                    "t_s": s,
                    "submitted": self.submitted_per_s[s],
                    "finalized": self.finalized_per_s[s],
                    "latency_p50_ms": ms(nearest_rank(&sorted, 0.5)),
                    "latency_p99_ms": ms(nearest_rank(&sorted, 0.99)),
                })
            })
            .collect();
        let heights: Vec<u64> = (0..self.validators as usize)
            .filter(|i| !self.byzantine[*i])
            .map(|i| self.last_height[i])
            .collect();
        let liveness = match self.liveness() {
            Some(ok) => json!({
                "checked": true,
                "ok": ok,
                "faults_healed_ms": self.heal_ns / 1_000_000,
                "measured_from_ms": self.mark_ns / 1_000_000,
                "height_then": self.height_at_mark,
                "height_at_end": self.honest_up_min_height(),
            }),
            None => json!({
                "checked": false,
                "why": "the run ends before the faults heal plus a grace of four view timeouts",
            }),
        };
        let messages_total: u64 = self.sent_msgs.iter().sum();
        let bytes_total: u64 = self.sent_bytes.iter().sum();
        json!({
            "scenario": self.scenario.name,
            "seed": self.seed,
            "virtual_s": seconds,
            "events": events,
            "validators": self.validators,
            "full_nodes": self.nodes - self.validators,
            "transactions": {
                "submitted": self.submitted,
                "finalized": self.finalized_txns,
                "pending_at_end": self.pending.len(),
                "submitted_tps": self.submitted as f64 / seconds,
                "finalized_tps": self.finalized_txns as f64 / seconds,
            },
            "latency_ms": summary(&self.latency_us),
            "finality_lag_ms": summary(&self.finality_lag_us),
            "block_propagation_ms": {
                "blocks": r.blocks_tracked,
                "blocks_not_reaching_every_node": r.blocks_not_everywhere,
                "t50": summary(&r.block_t50_us),
                "t90": summary(&r.block_t90_us),
                "t100": summary(&r.block_t100_us),
                "every_node_and_block": summary(&r.propagation_us),
            },
            "chain": {
                "height_max": self.canonical.height_max().unwrap_or(0),
                "honest_heights": heights,
            },
            "network": {
                "messages_sent": messages_total,
                "bytes_sent": bytes_total,
                "lost": self.lost,
                "lost_to_partitions": self.partitioned,
                "duplicated": self.duplicated,
                "to_crashed_nodes": self.to_crashed,
                "gossip_duplicates": self.gossip_duplicates,
            },
            "per_node": per_node,
            "faults": self.fault_log,
            "invariants": {
                "safety": match self.violation() {
                    None => json!({"ok": true}),
                    Some(what) => json!({"ok": false, "violation": what}),
                },
                "liveness": liveness,
            },
            "series": series,
        })
    }

    /// The CDF of block arrival delays over every (block, node): (ms, fraction) points.
    pub fn propagation_cdf(&self) -> Vec<(f64, f64)> {
        let h = &self.propagation_us;
        if h.is_empty() {
            return Vec::new();
        }
        let total = h.len() as f64;
        let mut seen = 0u64;
        h.iter_recorded()
            .map(|v| {
                seen += v.count_at_value();
                (ms(v.value_iterated_to()), seen as f64 / total)
            })
            .collect()
    }
}
