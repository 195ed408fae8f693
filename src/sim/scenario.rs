//! Scenario files for `tessera sim` (TOML; the format is documented in `docs/sim.md`), and the
//! random scenarios `--swarm` draws from a seed.

use serde::{Deserialize, Serialize};
use tessera_systems::workload::SeedStream;

use super::Behaviour;
use super::costs::{CostFile, Costs};

/// A whole scenario.
#[derive(Clone, Debug, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Scenario {
    /// Name, used in the report and the default output directory.
    pub name: String,
    /// Virtual seconds to run.
    pub duration_s: f64,
    /// Everything random derives from this (`--seed` overrides it).
    #[serde(default = "one")]
    pub seed: u64,
    /// The validators.
    pub validators: Validators,
    /// Full (non-validating) nodes that receive finalized blocks by gossip.
    #[serde(default)]
    pub full_nodes: FullNodes,
    /// The network model.
    pub network: Network,
    /// Client load.
    #[serde(default)]
    pub workload: Workload,
    /// Partitions that start and heal on a schedule.
    #[serde(default)]
    pub partitions: Vec<PartitionSpec>,
    /// Scheduled faults.
    #[serde(default)]
    pub faults: Vec<Fault>,
    /// Crashes drawn from the seed.
    #[serde(default)]
    pub random_faults: RandomFaults,
}

fn one() -> u64 {
    1
}

fn is_false(value: &bool) -> bool {
    !*value
}

/// `[validators]`.
#[derive(Clone, Debug, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Validators {
    /// How many (n = 3f + 1 tolerates f Byzantine).
    pub count: u32,
    /// Base view timeout.
    #[serde(default = "view_timeout")]
    pub view_timeout_ms: u64,
    /// Least time from a finalization to the next proposal.
    #[serde(default = "block_interval")]
    pub block_interval_ms: u64,
    /// Most transactions per block.
    #[serde(default = "block_txn_max")]
    pub block_txn_max: usize,
    /// Virtual time a validator takes to handle what arrived (per wake-up).
    #[serde(default = "process_us")]
    pub process_us: u64,
    /// A busy validator ticks on this grid, handling everything that arrived since its last
    /// tick at once (the node's `consensus.tick_ms`).
    #[serde(default = "tick_ms")]
    pub tick_ms: u64,
    /// `real` Ed25519 (the default) or the deterministic `stand-in`, for client transactions
    /// and consensus messages alike.
    #[serde(default)]
    pub sigverify: SigverifyMode,
    /// Persist finalized blocks through the node's real storage code (in a temporary
    /// directory), so crashes can tear or corrupt what was written.
    #[serde(default)]
    pub storage: bool,
    /// Faults and latency of the simulated disk (needs `storage`).
    #[serde(default, skip_serializing_if = "DiskSpec::is_off")]
    pub disk: DiskSpec,
    /// What work costs (a file written by `tessera bench calibrate`, relative to the scenario,
    /// or the table inline). With it each tick is charged virtual CPU time for the work it did,
    /// on its host's cores, in place of `process_us` per delivery.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub costs: Option<Costs>,
    /// Cores of each host (with `costs`).
    #[serde(default = "cores", skip_serializing_if = "is_one")]
    pub cores: u32,
    /// Validators sharing one host (with `costs`): 4 with `cores = 2` is four validators on
    /// one 2-core machine.
    #[serde(default = "per_host", skip_serializing_if = "is_one")]
    pub per_host: u32,
    /// Validator sets at least this large send each vote to the view's leader, which
    /// broadcasts the certificate (O(n) messages a phase); smaller ones send votes to
    /// everyone. 1 always aggregates; left out (the default), nothing does.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub aggregate_votes_from: Option<usize>,
    /// Validator sets at least this large forward client transactions only to the leaders of
    /// the receiving validator's current view and the next two; smaller ones to everyone. 1
    /// always does; left out (the default), nothing does.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub forward_to_leaders_from: Option<usize>,
    /// When an idle validator is woken: only for what arrives and its own deadlines (the
    /// default), or also at every point of its `tick_ms` grid, as a node process's loop ticks.
    #[serde(default, skip_serializing_if = "Wake::is_default")]
    pub wake: Wake,
}

/// When a simulated validator runs a tick besides for what arrives.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum Wake {
    /// At its next deadline (`Pipeline::next_wake_ns`): a waiting validator costs nothing per
    /// virtual second.
    #[default]
    Deadlines,
    /// At every point of the `tick_ms` grid as well, idle or not, like the node's own loop:
    /// for studying the grid's batching, at one event per validator per tick.
    Grid,
}

impl Wake {
    fn is_default(&self) -> bool {
        *self == Wake::Deadlines
    }
}

fn cores() -> u32 {
    1
}
fn per_host() -> u32 {
    1
}
fn is_one(value: &u32) -> bool {
    *value == 1
}

fn view_timeout() -> u64 {
    1000
}
fn block_interval() -> u64 {
    50
}
fn block_txn_max() -> usize {
    4096
}
fn process_us() -> u64 {
    200
}
fn tick_ms() -> u64 {
    2
}

/// How client transaction signatures are checked.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum SigverifyMode {
    /// Ed25519 under the node's rule.
    #[default]
    Real,
    /// A keyed BLAKE3 tag: deterministic and cheap, for scale runs.
    StandIn,
}

/// `[full_nodes]`.
#[derive(Clone, Debug, Default, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct FullNodes {
    /// How many.
    #[serde(default)]
    pub count: u32,
    /// Gossip neighbours each full node opens (links are both ways).
    #[serde(default = "degree")]
    pub degree: u32,
}

fn degree() -> u32 {
    8
}

/// How one-way latency varies around the matrix mean.
#[derive(Clone, Copy, Debug, Default, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum LatencyModel {
    /// Always the mean.
    #[default]
    Constant,
    /// Uniform in `mean · (1 ± jitter)`.
    Uniform,
    /// Normal with standard deviation `mean · jitter`, cut at zero.
    Normal,
    /// Pareto; see [`Network::pareto_shape`] and [`Network::pareto_shape_per_ms`].
    Pareto,
}

/// `[network]`.
#[derive(Clone, Debug, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Network {
    /// Mean one-way latency between regions, milliseconds: `latency_ms[from][to]`.
    pub latency_ms: Vec<Vec<f64>>,
    /// The distribution around the mean.
    #[serde(default)]
    pub latency: LatencyModel,
    /// Relative spread for `uniform` and `normal`.
    #[serde(default = "jitter")]
    pub jitter: f64,
    /// Pareto shape α; the scale is set so the mean is the matrix value (α > 1).
    #[serde(default = "pareto_shape")]
    pub pareto_shape: f64,
    /// SimBlock's form instead: α = this × mean (ms) and scale = mean − `pareto_scale_offset_ms`.
    #[serde(default)]
    pub pareto_shape_per_ms: Option<f64>,
    /// See `pareto_shape_per_ms`.
    #[serde(default)]
    pub pareto_scale_offset_ms: f64,
    /// Fraction of messages lost.
    #[serde(default)]
    pub loss: f64,
    /// Fraction of messages delivered twice.
    #[serde(default)]
    pub duplicate: f64,
    /// Fraction of messages held back by up to one more latency (so they overtake each other).
    #[serde(default)]
    pub reorder: f64,
    /// The regions, in the matrix's order.
    pub regions: Vec<Region>,
}

fn jitter() -> f64 {
    0.1
}
fn pareto_shape() -> f64 {
    3.0
}

/// One region.
#[derive(Clone, Debug, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Region {
    /// Name.
    pub name: String,
    /// Fraction of the nodes placed here (shares are normalised).
    pub share: f64,
    /// Per-node upload bandwidth, megabits per second.
    pub upload_mbps: f64,
    /// Per-node download bandwidth, megabits per second.
    pub download_mbps: f64,
}

/// How clients pick the validator a transaction goes to.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum Policy {
    /// Each batch to the next validator in turn.
    #[default]
    RoundRobin,
    /// Each batch to a validator drawn from the seed.
    Random,
    /// Each batch to every validator.
    All,
}

/// `[workload]`: open-loop client load.
#[derive(Clone, Debug, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Workload {
    /// The rate curve: `[t_s, txn_per_s]` points, linear in between, flat after the last.
    #[serde(default)]
    pub rate: Vec<[f64; 2]>,
    /// Where batches go.
    #[serde(default)]
    pub policy: Policy,
    /// Clients send a batch every this many milliseconds.
    #[serde(default = "batch_ms")]
    pub batch_ms: u64,
    /// Funded client accounts.
    #[serde(default = "accounts")]
    pub accounts: u64,
}

impl Default for Workload {
    fn default() -> Self {
        Workload { rate: Vec::new(), policy: Policy::default(), batch_ms: batch_ms(), accounts: accounts() }
    }
}

fn batch_ms() -> u64 {
    10
}
fn accounts() -> u64 {
    256
}

impl Workload {
    /// The rate at `t_s` (transactions per second).
    pub fn rate_at(&self, t_s: f64) -> f64 {
        let Some(first) = self.rate.first() else { return 0.0 };
        if t_s <= first[0] {
            return first[1];
        }
        for pair in self.rate.windows(2) {
            let ([t0, r0], [t1, r1]) = (pair[0], pair[1]);
            if t_s <= t1 {
                return if t1 > t0 { r0 + (r1 - r0) * (t_s - t0) / (t1 - t0) } else { r1 };
            }
        }
        self.rate.last().map_or(0.0, |last| last[1])
    }
}

/// `[[partitions]]`: from `start_s` to `end_s`, messages between groups are lost.
#[derive(Clone, Debug, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct PartitionSpec {
    /// Start.
    pub start_s: f64,
    /// Heal.
    pub end_s: f64,
    /// Node indexes per group (validators first, then full nodes); unlisted nodes are in
    /// group 0.
    pub groups: Vec<Vec<u32>>,
}

/// `[[faults]]`.
#[derive(Clone, Debug, Serialize, Deserialize)]
#[serde(tag = "kind", rename_all = "kebab-case", deny_unknown_fields)]
pub enum Fault {
    /// The validator stops at `at_s` (state in memory lost) and, with `restart_s`, starts
    /// again from its storage (or from genesis without storage) and catches up by sync.
    Crash {
        /// Validator.
        node: u32,
        /// When it dies.
        at_s: f64,
        /// When it starts again.
        #[serde(default)]
        restart_s: Option<f64>,
        /// What the crash does to its files (needs `validators.storage`).
        #[serde(default)]
        storage: StorageFault,
        /// Crash at the validator's first tick from `at_s` on, after that tick persisted its
        /// blocks and safety state and before any of its outbox is sent: the crash point
        /// between the persist and the send.
        #[serde(default, skip_serializing_if = "is_false")]
        after_persist: bool,
    },
    /// The validator's clock runs `skew_ms` ahead (negative: behind).
    ClockSkew {
        /// Validator.
        node: u32,
        /// Offset.
        skew_ms: i64,
    },
    /// The node handles messages `factor` times slower and sends at 1/`factor` bandwidth.
    Slow {
        /// Node.
        node: u32,
        /// Slowdown.
        factor: u32,
    },
    /// The validator misbehaves in a window.
    Byzantine {
        /// Validator.
        node: u32,
        /// How.
        behaviour: ByzantineKind,
        /// From.
        #[serde(default)]
        from_s: f64,
        /// Until (default: the whole run).
        #[serde(default)]
        until_s: Option<f64>,
    },
}

/// What a crash does to a validator's simulated disk ([`super::disk::SimDisk`]). Scenario
/// files name them `none`, `torn`, `corrupt`, `lost-sync` and `misdirected`.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum StorageFault {
    /// Nothing beyond losing memory: every completed write survives, synced or not.
    #[default]
    None,
    /// The crash cuts the next commit's write in flight short.
    Torn,
    /// A bit inside a committed record flips.
    Corrupt,
    /// Power is lost in the middle of the next commit: writes not yet synced are lost, wholly
    /// or in part.
    LostSync,
    /// The next commit's record lands over an earlier record's place; recovery refuses.
    Misdirected,
}

/// `[validators.disk]`: faults and latency of the simulated disk while validators run. Every
/// default is off.
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct DiskSpec {
    /// Probability that a block record write lands at an earlier record's place.
    #[serde(default)]
    pub misdirect: f64,
    /// Probability that a block read returns a flipped bit.
    #[serde(default)]
    pub read_corrupt: f64,
    /// Virtual duration of one write, drawn uniformly from `[low, high]` microseconds.
    #[serde(default)]
    pub write_us: [u64; 2],
    /// Virtual duration of one sync, `[low, high]` microseconds.
    #[serde(default)]
    pub sync_us: [u64; 2],
    /// Virtual duration of one read, `[low, high]` microseconds.
    #[serde(default)]
    pub read_us: [u64; 2],
}

impl DiskSpec {
    /// True when nothing is configured.
    pub fn is_off(&self) -> bool {
        *self == DiskSpec::default()
    }

    fn validate(&self) -> Result<(), ScenarioError> {
        let probability = |p: f64| p.is_finite() && (0.0..=1.0).contains(&p);
        if !probability(self.misdirect) || !probability(self.read_corrupt) {
            return Err(bad("validators.disk", "misdirect and read_corrupt must be between 0 and 1"));
        }
        for [low, high] in [self.write_us, self.sync_us, self.read_us] {
            if low > high || high > 10_000_000 {
                return Err(bad("validators.disk", "latency ranges need low ≤ high ≤ 10 s"));
            }
        }
        Ok(())
    }
}

/// Byzantine behaviours, as scenario files name them.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum ByzantineKind {
    /// Two proposals per view.
    Equivocate,
    /// Two votes per phase.
    DoubleVote,
    /// No votes.
    Withhold,
    /// Proposals with a wrong state root.
    InvalidProposal,
    /// Proposals whose signature does not verify.
    BadSignatureProposal,
    /// Proposals with more transactions than a block may hold.
    OverLimitProposal,
    /// Every message sent twice.
    Replay,
    /// Every message sent many times.
    Flood,
}

impl ByzantineKind {
    /// The harness behaviour.
    pub fn behaviour(self) -> Behaviour {
        match self {
            ByzantineKind::Equivocate => Behaviour::EquivocatingProposer,
            ByzantineKind::DoubleVote => Behaviour::DoubleVoter,
            ByzantineKind::Withhold => Behaviour::VoteWithholder,
            ByzantineKind::InvalidProposal => Behaviour::InvalidProposer,
            ByzantineKind::BadSignatureProposal => Behaviour::BadSignatureProposer,
            ByzantineKind::OverLimitProposal => Behaviour::OverLimitProposer,
            ByzantineKind::Replay => Behaviour::Replayer,
            ByzantineKind::Flood => Behaviour::Flooder,
        }
    }
}

/// `[random_faults]`.
#[derive(Clone, Debug, Default, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RandomFaults {
    /// Validator crashes at times drawn from the seed (each restarts after `down_s`).
    #[serde(default)]
    pub crashes: u32,
    /// Downtime of each.
    #[serde(default)]
    pub down_s: f64,
}

/// A scenario that cannot run, naming the key.
#[derive(Debug, thiserror::Error)]
#[error("scenario: {key}: {problem}")]
pub struct ScenarioError {
    /// The key.
    pub key: String,
    /// What is wrong.
    pub problem: String,
}

fn bad(key: &str, problem: impl Into<String>) -> ScenarioError {
    ScenarioError { key: key.into(), problem: problem.into() }
}

/// Most client accounts a workload funds (as `tessera genesis --accounts` allows).
pub const ACCOUNTS_MAX: u64 = 100_000_000;
/// Most client accounts with real keys (`validators.sigverify` other than stand-in).
pub const SIGNING_ACCOUNTS_MAX: u64 = 1 << 20;

/// Most nodes one run simulates.
pub const NODES_MAX: u32 = 100_000;

/// Most peers a full node links to.
pub const FULL_NODE_DEGREE_MAX: u32 = 64;

/// Most validator crashes drawn at random in one run.
pub const RANDOM_CRASHES_MAX: u32 = 10_000;

impl Scenario {
    /// Parses and validates a scenario file's text.
    ///
    /// # Errors
    /// TOML that does not parse or fit the schema, or values that cannot work.
    pub fn parse(text: &str) -> Result<Scenario, Box<dyn std::error::Error>> {
        let scenario: Scenario = toml::from_str(text)?;
        scenario.validate()?;
        Ok(scenario)
    }

    /// Reads a scenario file, loads the cost table it names (a path relative to the scenario's
    /// directory), and validates it.
    ///
    /// # Errors
    /// An unreadable file, or what [`Scenario::parse`] refuses.
    pub fn load(path: &std::path::Path) -> Result<Scenario, String> {
        let text = crate::read_input_file(path, crate::SMALL_FILE_BYTES_MAX)
            .map_err(|error| format!("cannot read {}: {error}", path.display()))?;
        let mut scenario: Scenario =
            toml::from_str(&text).map_err(|error| format!("{}: {error}", path.display()))?;
        if let Some(Costs::File(file)) = &scenario.validators.costs {
            let file = path.parent().unwrap_or(std::path::Path::new(".")).join(file);
            let table = CostFile::load(&file)
                .map_err(|error| format!("{}: validators.costs: {error}", path.display()))?;
            scenario.validators.costs = Some(Costs::Table(table.costs));
        }
        scenario.validate().map_err(|error| format!("{}: {error}", path.display()))?;
        Ok(scenario)
    }

    /// Whether a validator can start again from genesis during the run: one without storage
    /// that a scheduled or random crash restarts.
    pub fn restarts_from_genesis(&self) -> bool {
        !self.validators.storage
            && (self.random_faults.crashes > 0
                || self.faults.iter().any(|fault| matches!(fault, Fault::Crash { restart_s: Some(_), .. })))
    }

    /// Every node: validators first, then full nodes.
    pub fn node_count(&self) -> u32 {
        self.validators.count + self.full_nodes.count
    }

    /// Checks that the scenario can run.
    ///
    /// # Errors
    /// The first problem, naming its key.
    pub fn validate(&self) -> Result<(), ScenarioError> {
        let finite_nonneg = |v: f64| v.is_finite() && v >= 0.0;
        // The name is a directory's (`sim-out/NAME` when no --out is given): a name with a
        // slash or `..` wrote the report wherever it pointed.
        let name_char = |c: char| c.is_ascii_alphanumeric() || matches!(c, '-' | '_' | '.');
        if self.name.is_empty()
            || self.name.len() > 64
            || self.name.starts_with('.')
            || !self.name.chars().all(name_char)
        {
            return Err(bad(
                "name",
                "must be 1 to 64 letters, digits, '-', '_' or '.', not starting with '.'",
            ));
        }
        if !(self.duration_s.is_finite() && self.duration_s > 0.0 && self.duration_s <= 86_400.0 * 7.0) {
            return Err(bad("duration_s", "must be positive and at most a week"));
        }
        let v = &self.validators;
        if v.count == 0 || v.count > 1000 {
            return Err(bad("validators.count", "must be between 1 and 1000"));
        }
        if self.node_count() > NODES_MAX {
            return Err(bad("full_nodes.count", format!("at most {NODES_MAX} nodes in all")));
        }
        if v.view_timeout_ms == 0 || v.block_txn_max == 0 || v.tick_ms == 0 || v.tick_ms > 1000 {
            return Err(bad(
                "validators",
                "view_timeout_ms and block_txn_max must be positive, tick_ms in 1..=1000",
            ));
        }
        // Times in milliseconds and microseconds become nanoseconds by multiplication, which
        // wraps past 2^64 in a release build: a batch interval of 2^58 ms became 0, and the
        // client event requeued itself at the same instant until memory ran out.
        const HOUR_MS: u64 = 3_600_000;
        for (key, ms) in [
            ("validators.view_timeout_ms", v.view_timeout_ms),
            ("validators.block_interval_ms", v.block_interval_ms),
            ("workload.batch_ms", self.workload.batch_ms),
        ] {
            if ms > HOUR_MS {
                return Err(bad(key, "must be at most an hour (3600000)"));
            }
        }
        if v.process_us > HOUR_MS * 1000 {
            return Err(bad("validators.process_us", "must be at most an hour (3600000000)"));
        }
        v.disk.validate()?;
        match &v.costs {
            Some(Costs::Table(table)) => {
                table.validate().map_err(|problem| bad("validators.costs", problem))?
            }
            Some(Costs::File(path)) => {
                return Err(bad(
                    "validators.costs",
                    format!("the file {path} was not loaded (load the scenario from its file)"),
                ));
            }
            None => {}
        }
        if !(1..=1024).contains(&v.cores) || !(1..=1000).contains(&v.per_host) {
            return Err(bad("validators", "cores must be in 1..=1024 and per_host in 1..=1000"));
        }
        if !v.disk.is_off() && !v.storage {
            return Err(bad("validators.disk", "needs validators.storage = true"));
        }
        if self.full_nodes.count > 0 && !(1..=FULL_NODE_DEGREE_MAX).contains(&self.full_nodes.degree) {
            // Wiring the topology costs nodes × degree²: 99,000 nodes of degree 4 billion ran
            // for days before the first event.
            return Err(bad("full_nodes.degree", format!("must be in 1..={FULL_NODE_DEGREE_MAX}")));
        }
        let n = &self.network;
        let regions = n.regions.len();
        if regions == 0 {
            return Err(bad("network.regions", "name at least one region"));
        }
        if n.latency_ms.len() != regions || n.latency_ms.iter().any(|row| row.len() != regions) {
            return Err(bad("network.latency_ms", format!("must be a {regions}×{regions} matrix")));
        }
        if n.latency_ms.iter().flatten().any(|ms| !finite_nonneg(*ms) || *ms > 60_000.0) {
            return Err(bad("network.latency_ms", "entries must be between 0 and 60000"));
        }
        for (key, p) in
            [("network.loss", n.loss), ("network.duplicate", n.duplicate), ("network.reorder", n.reorder)]
        {
            if !(finite_nonneg(p) && p < 1.0) {
                return Err(bad(key, "must be in [0, 1)"));
            }
        }
        if !(finite_nonneg(n.jitter) && n.jitter <= 10.0) {
            return Err(bad("network.jitter", "must be in [0, 10]"));
        }
        if !(n.pareto_shape.is_finite() && n.pareto_shape > 1.0) {
            return Err(bad("network.pareto_shape", "must be above 1"));
        }
        if n.pareto_shape_per_ms.is_some_and(|k| !(k.is_finite() && k > 0.0)) {
            return Err(bad("network.pareto_shape_per_ms", "must be positive"));
        }
        if !finite_nonneg(n.pareto_scale_offset_ms) {
            return Err(bad("network.pareto_scale_offset_ms", "must be non-negative"));
        }
        for region in &n.regions {
            if !(finite_nonneg(region.share)
                && region.upload_mbps.is_finite()
                && region.upload_mbps > 0.0
                && region.download_mbps.is_finite()
                && region.download_mbps > 0.0)
            {
                return Err(bad(
                    "network.regions",
                    format!("{}: share must be non-negative, bandwidths positive", region.name),
                ));
            }
        }
        if n.regions.iter().map(|r| r.share).sum::<f64>() <= 0.0 {
            return Err(bad("network.regions", "shares sum to zero"));
        }
        let w = &self.workload;
        if w.batch_ms == 0 {
            return Err(bad("workload.batch_ms", "must be positive"));
        }
        if w.accounts == 0 || w.accounts > ACCOUNTS_MAX {
            return Err(bad("workload.accounts", format!("must be in 1..={ACCOUNTS_MAX}")));
        }
        // Real signatures need each client's key, a scalar multiplication to derive; stand-in
        // tags need only an address, a hash.
        if w.accounts > SIGNING_ACCOUNTS_MAX && self.validators.sigverify != SigverifyMode::StandIn {
            return Err(bad(
                "workload.accounts",
                format!(
                    "more than {SIGNING_ACCOUNTS_MAX} needs validators.sigverify = \"stand-in\" (deriving a key per \
                     account would cost more than the run)"
                ),
            ));
        }
        if w.rate.iter().any(|[t, r]| !finite_nonneg(*t) || !finite_nonneg(*r) || *r > 10_000_000.0) {
            return Err(bad("workload.rate", "points are [t_s ≥ 0, rate in 0..=1e7]"));
        }
        if w.rate.windows(2).any(|pair| pair[1][0] < pair[0][0]) {
            return Err(bad("workload.rate", "times must not decrease"));
        }
        let nodes = self.node_count();
        for p in &self.partitions {
            if !(finite_nonneg(p.start_s) && p.end_s.is_finite() && p.end_s >= p.start_s) {
                return Err(bad("partitions", "need 0 ≤ start_s ≤ end_s"));
            }
            if p.groups.iter().flatten().any(|node| *node >= nodes) {
                return Err(bad("partitions.groups", format!("node indexes must be below {nodes}")));
            }
        }
        for fault in &self.faults {
            let (node, validator_only) = match fault {
                Fault::Crash { node, at_s, restart_s, storage, .. } => {
                    if !finite_nonneg(*at_s) || restart_s.is_some_and(|r| !(r.is_finite() && r >= *at_s)) {
                        return Err(bad("faults.crash", "need 0 ≤ at_s ≤ restart_s"));
                    }
                    if *storage != StorageFault::None && !self.validators.storage {
                        return Err(bad("faults.crash.storage", "needs validators.storage = true"));
                    }
                    (*node, true)
                }
                Fault::ClockSkew { node, skew_ms } => {
                    if skew_ms.unsigned_abs() > 3_600_000 {
                        return Err(bad("faults.clock-skew.skew_ms", "at most an hour either way"));
                    }
                    (*node, true)
                }
                Fault::Slow { node, factor } => {
                    if *factor == 0 || *factor > 1000 {
                        return Err(bad("faults.slow.factor", "must be between 1 and 1000"));
                    }
                    (*node, false)
                }
                Fault::Byzantine { node, from_s, until_s, .. } => {
                    if !finite_nonneg(*from_s) || until_s.is_some_and(|u| !(u.is_finite() && u >= *from_s)) {
                        return Err(bad("faults.byzantine", "need 0 ≤ from_s ≤ until_s"));
                    }
                    (*node, true)
                }
            };
            let bound = if validator_only { self.validators.count } else { nodes };
            if node >= bound {
                return Err(bad(
                    "faults.node",
                    format!("{node} is not a node this fault applies to (< {bound})"),
                ));
            }
        }
        if !(finite_nonneg(self.random_faults.down_s) && self.random_faults.down_s <= self.duration_s) {
            // Past the run (1e300 overflowed the restart's time below the crash's), a validator
            // crashed at random never came back.
            return Err(bad("random_faults.down_s", "must be non-negative and at most duration_s"));
        }
        if self.random_faults.crashes > RANDOM_CRASHES_MAX {
            // Each is an event planned up front: four billion took gigabytes before the first.
            return Err(bad("random_faults.crashes", format!("must be at most {RANDOM_CRASHES_MAX}")));
        }
        Ok(())
    }

    /// The scenario `--swarm` runs for `seed`: small, with a random network, and faults that
    /// stay within what the protocol tolerates (at most f Byzantine validators, partitions and
    /// crashes that heal before the end).
    pub fn random(seed: u64) -> Scenario {
        let mut s = SeedStream::new("tessera sim swarm", seed);
        let validators = [4u32, 4, 4, 5, 7][s.below(5) as usize];
        let full = [0u32, 0, 3, 8][s.below(4) as usize];
        let f = (validators - 1) / 3;
        let latency =
            [LatencyModel::Constant, LatencyModel::Uniform, LatencyModel::Normal, LatencyModel::Pareto]
                [s.below(4) as usize];
        let regions = 1 + s.below(3) as usize;
        let latency_ms: Vec<Vec<f64>> = (0..regions)
            .map(|i| (0..regions).map(|j| if i == j { 1.0 } else { 5.0 + s.below(60) as f64 }).collect())
            .collect();
        let regions: Vec<Region> = (0..regions)
            .map(|i| Region {
                name: format!("r{i}"),
                share: 1.0,
                upload_mbps: [10.0, 100.0, 1000.0][s.below(3) as usize],
                download_mbps: [10.0, 100.0, 1000.0][s.below(3) as usize],
            })
            .collect();
        let duration_s = 8.0;
        let mut faults = Vec::new();
        let mut partitions = Vec::new();
        // Up to f Byzantine validators, then crash-restarts of honest ones and a partition, in
        // any combination: together they never exceed what the protocol tolerates for safety,
        // and everything heals by 3.5 s, so liveness is judged after that.
        let byzantine = s.below(u64::from(f) + 1) as u32;
        let kinds = [
            ByzantineKind::Equivocate,
            ByzantineKind::DoubleVote,
            ByzantineKind::Withhold,
            ByzantineKind::InvalidProposal,
        ];
        let liar = |i: u32| (seed as u32).wrapping_add(i) % validators;
        for i in 0..byzantine {
            faults.push(Fault::Byzantine {
                node: liar(i),
                behaviour: kinds[s.below(4) as usize],
                from_s: 0.0,
                until_s: Some(3.0),
            });
        }
        let mut isolated = None;
        if s.below(2) == 0 {
            let node = s.below(u64::from(validators)) as u32;
            isolated = Some(node);
            partitions.push(PartitionSpec { start_s: 0.5, end_s: 3.0, groups: vec![vec![], vec![node]] });
        }
        // Crash-restarts of honest validators at random instants, some of them between the
        // safety state's persist and the send, down from nothing to a few views. One honest
        // validator outside the partition never crashes: sync history is held in memory, so a
        // validator that fell behind catches up only from a peer that has not restarted since
        // (see docs/sim.md).
        let mut honest: Vec<u32> =
            (0..validators).filter(|node| (0..byzantine).all(|i| liar(i) != *node)).collect();
        if let Some(keeper) = honest.iter().position(|node| Some(*node) != isolated) {
            honest.remove(keeper);
        }
        for _ in 0..if honest.is_empty() { 0 } else { s.below(4) } {
            let node = honest[s.below(honest.len() as u64) as usize];
            let at_s = 0.1 + s.below(2900) as f64 / 1000.0;
            let down_s = [0.0, 0.001, 0.02, 0.3][s.below(4) as usize];
            faults.push(Fault::Crash {
                node,
                at_s,
                restart_s: Some(at_s + down_s),
                storage: StorageFault::None,
                after_persist: s.below(2) == 0,
            });
        }
        let storage = s.below(2) == 0;
        let mut scenario = Scenario {
            name: format!("swarm-{seed}"),
            duration_s,
            seed,
            validators: Validators {
                count: validators,
                view_timeout_ms: 300,
                block_interval_ms: 50,
                block_txn_max: 256,
                process_us: 100 + s.below(400),
                tick_ms: 1 + s.below(4),
                sigverify: SigverifyMode::StandIn,
                storage,
                disk: DiskSpec::default(),
                costs: None,
                cores: 1,
                per_host: 1,
                aggregate_votes_from: None,
                forward_to_leaders_from: None,
                wake: Wake::Deadlines,
            },
            full_nodes: FullNodes { count: full, degree: 3 },
            network: Network {
                latency_ms,
                latency,
                jitter: 0.2,
                pareto_shape: 3.0,
                pareto_shape_per_ms: None,
                pareto_scale_offset_ms: 0.0,
                loss: [0.0, 0.01, 0.05][s.below(3) as usize],
                duplicate: [0.0, 0.01][s.below(2) as usize],
                reorder: [0.0, 0.05][s.below(2) as usize],
                regions,
            },
            workload: Workload {
                rate: vec![[0.0, 50.0 + s.below(200) as f64]],
                policy: [Policy::RoundRobin, Policy::Random, Policy::All][s.below(3) as usize],
                batch_ms: 20,
                accounts: 32,
            },
            partitions,
            faults,
            random_faults: RandomFaults::default(),
        };
        // Drawn last, so the draws above, and every earlier seed's network, faults and load,
        // are as before: half the seeds send votes to the leader, which broadcasts certificates.
        if s.below(2) == 0 {
            scenario.validators.aggregate_votes_from = Some(1);
        }
        // And after that: half the seeds forward client transactions to the next leaders only.
        if s.below(2) == 0 {
            scenario.validators.forward_to_leaders_from = Some(1);
        }
        scenario
    }
}
