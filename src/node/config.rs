//! The node's TOML configuration, validated at start with errors that name the key.

use std::net::SocketAddr;
use std::path::{Path, PathBuf};

use serde::{Deserialize, Serialize};
use tessera_systems::PipelineConfig;

/// `[network]`: validator-to-validator TCP.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct NetworkSection {
    /// Address the peer port listens on.
    pub listen: SocketAddr,
    /// Every validator's peer address, in validator index order (a validator's own included;
    /// a full node dials them all).
    pub peers: Vec<SocketAddr>,
    /// Network executors (one thread per core, io_uring beneath).
    #[serde(default = "one")]
    pub cores: usize,
    /// Frames a peer's outbound queue holds before the peer is considered stuck and dropped.
    #[serde(default = "outbound_queue")]
    pub outbound_queue_frames: usize,
    /// Malformed frames tolerated from a peer before it is banned.
    #[serde(default = "penalty_threshold")]
    pub penalty_threshold: u32,
    /// How long a banned peer stays banned, seconds.
    #[serde(default = "ban_secs")]
    pub ban_secs: u64,
    /// Largest frame accepted, bytes.
    #[serde(default = "frame_max")]
    pub max_frame_bytes: usize,
    /// Bytes queued per peer for its consensus lane; its bulk lane (forwarded transactions)
    /// gets a quarter. A frame that does not fit is dropped and counted.
    #[serde(default = "outbound_queue_bytes")]
    pub outbound_queue_bytes: u64,
    /// Most connections on the peer port still in their handshake; more are closed at accept
    /// and counted. A proven validator's link leaves this pool (at most two per validator), a
    /// full node's moves to the follower pool.
    #[serde(default = "peer_connections_max")]
    pub connections_max: usize,
    /// Most full nodes connected at once; more are closed after their handshake and counted.
    #[serde(default = "followers_max")]
    pub followers_max: usize,
    /// A full node that sends no frame for this long is closed, seconds.
    #[serde(default = "follower_idle_timeout")]
    pub follower_idle_timeout_secs: u64,
    /// Bytes of sync answers one full node's connection may draw per second; past it the
    /// node answers "nothing now".
    #[serde(default = "follower_sync_bytes_per_sec")]
    pub follower_sync_bytes_per_sec: u64,
    /// Most connections from one source address on the peer port (in handshake or following)
    /// and, separately, on the ingress port. Loopback is exempt (a devnet shares it).
    #[serde(default = "connections_per_address_max")]
    pub connections_per_address_max: usize,
    /// Whether loopback addresses are trusted as a validator's own address is: never charged
    /// or banned for what they send, on the peer and ingress ports, and not counted as a
    /// source of their own by the prefilter (whose one verification per source, sender and
    /// nonce at a time they escape). On by default, since a devnet's nodes and clients share
    /// loopback. Turn it off where untrusted clients reach the node through a proxy on its
    /// own host, or to attack a node from its own host as a stranger would.
    #[serde(default = "yes")]
    pub trust_loopback: bool,
}

/// `[ingress]`: the binary transaction port.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct IngressSection {
    /// Listen address.
    pub listen: SocketAddr,
    /// Most client connections open at once; more are closed at accept and counted.
    #[serde(default = "ingress_connections_max")]
    pub connections_max: usize,
    /// A client connection that completes no frame for this long is closed, seconds.
    #[serde(default = "ingress_idle_timeout")]
    pub idle_timeout_secs: u64,
}

/// `[rpc]`: JSON-RPC 2.0 over HTTP.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RpcSection {
    /// Listen address.
    pub listen: SocketAddr,
    /// Largest request body accepted; larger gets HTTP 413.
    #[serde(default = "body_limit")]
    pub body_limit_bytes: usize,
    /// Most HTTP connections open at once; more are closed at accept, unread, and counted.
    /// Each holds at most one buffered request.
    #[serde(default = "rpc_connections_max")]
    pub connections_max: usize,
    /// Most HTTP connections open at once from one source address, loopback included; more
    /// wait, unread, for one of the address's slots (for at most the idle time, among at most
    /// twice `connections_max` waiting, up to 512), then are closed unread and counted.
    #[serde(default = "rpc_connections_per_address_max")]
    pub connections_per_address_max: usize,
    /// A connection must deliver each request's headers within this long of connecting or of
    /// its previous answer (so an idle keep-alive connection is closed after it), then the
    /// request's body within this long, and not stall reading a response longer; otherwise it
    /// is closed, seconds.
    #[serde(default = "http_idle_timeout")]
    pub idle_timeout_secs: u64,
}

/// `[metrics]`: Prometheus exposition at `/metrics`.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct MetricsSection {
    /// Listen address.
    pub listen: SocketAddr,
    /// Most scrape connections open at once; more are closed at accept and counted.
    #[serde(default = "metrics_connections_max")]
    pub connections_max: usize,
    /// As `rpc.connections_per_address_max`, for scrape connections.
    #[serde(default = "metrics_connections_per_address_max")]
    pub connections_per_address_max: usize,
    /// As `rpc.idle_timeout_secs`, for scrape connections, seconds.
    #[serde(default = "http_idle_timeout")]
    pub idle_timeout_secs: u64,
}

/// `[consensus]`.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ConsensusSection {
    /// Base view timeout, milliseconds (doubles per failed view).
    #[serde(default = "view_timeout")]
    pub view_timeout_ms: u64,
    /// How often the schedule ticks when idle, milliseconds.
    #[serde(default = "tick")]
    pub tick_ms: u64,
    /// Least time from one finalization to the next proposal, milliseconds (an idle chain
    /// makes one empty block per interval).
    #[serde(default = "block_interval")]
    pub block_interval_ms: u64,
    /// Validator sets at least this large send each vote to the view's leader, which
    /// broadcasts the certificate (O(n) messages a phase, one hop more); smaller ones, and
    /// every set when it is left out (the default), send votes to everyone. Every validator of
    /// a chain must use the same value.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub aggregate_votes_from: Option<usize>,
    /// Validator sets at least this large forward the client transactions a validator admits
    /// only to the leaders of its current view and the next two; smaller ones, and every set
    /// when it is left out (the default), forward them to every validator.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub forward_to_leaders_from: Option<usize>,
}

impl Default for ConsensusSection {
    fn default() -> Self {
        ConsensusSection {
            view_timeout_ms: view_timeout(),
            tick_ms: tick(),
            block_interval_ms: block_interval(),
            aggregate_votes_from: None,
            forward_to_leaders_from: None,
        }
    }
}

/// `[pipeline]`: overrides of the pipeline limits (any key left out keeps its default).
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct PipelineSection {
    /// Lowest fee accepted.
    pub fee_floor: Option<u64>,
    /// Most pending transactions.
    pub mempool_count_max: Option<usize>,
    /// Most transactions per block.
    pub block_txn_max: Option<usize>,
    /// Most bytes per block.
    pub block_bytes_max: Option<usize>,
    /// Signatures per verification chunk.
    pub sigverify_batch_size: Option<usize>,
    /// Batch verification on or off.
    pub sigverify_batch: Option<bool>,
    /// SIMD prefilter on or off.
    pub prefilter_simd: Option<bool>,
    /// Verification overlapping the tick on or off.
    pub sigverify_overlap: Option<bool>,
    /// Verification cache entries (0 = off).
    pub sigverify_cache_capacity: Option<usize>,
}

/// What a node does in the network.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Role {
    /// Votes, proposes, and serves sync to its peers.
    #[default]
    Validator,
    /// Follows the finalized chain from the validators (verifying every certificate and
    /// re-executing every block), persists it, serves it over RPC, and forwards client
    /// transactions to the validators.
    Full,
}

impl Role {
    /// The name the configuration file uses.
    pub fn name(self) -> &'static str {
        match self {
            Role::Validator => "validator",
            Role::Full => "full",
        }
    }
}

/// A node's configuration file.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct NodeConfig {
    /// `validator` (the default) or `full`.
    #[serde(default)]
    pub role: Role,
    /// This validator's index in the genesis validator set (validators only).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub validator_index: Option<u32>,
    /// Key file (as written by `tessera keygen`), relative to the config file (validators only).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub key_file: Option<PathBuf>,
    /// Genesis file, relative to the config file.
    pub genesis_file: PathBuf,
    /// Data directory, relative to the config file.
    pub data_dir: PathBuf,
    /// Peer network.
    pub network: NetworkSection,
    /// Client ingress.
    pub ingress: IngressSection,
    /// JSON-RPC.
    pub rpc: RpcSection,
    /// Metrics.
    pub metrics: MetricsSection,
    /// Consensus timing.
    #[serde(default)]
    pub consensus: ConsensusSection,
    /// Pipeline limits.
    #[serde(default)]
    pub pipeline: PipelineSection,
}

fn one() -> usize {
    1
}
fn yes() -> bool {
    true
}
fn outbound_queue() -> usize {
    4096
}
fn penalty_threshold() -> u32 {
    8
}
fn ban_secs() -> u64 {
    60
}
fn frame_max() -> usize {
    tessera_components::constants::FRAME_SIZE_DEFAULT
}
fn peer_connections_max() -> usize {
    256
}
fn outbound_queue_bytes() -> u64 {
    64 << 20
}
fn followers_max() -> usize {
    64
}
fn follower_idle_timeout() -> u64 {
    30
}
fn follower_sync_bytes_per_sec() -> u64 {
    8 << 20
}
fn connections_per_address_max() -> usize {
    16
}
fn ingress_connections_max() -> usize {
    1024
}
fn ingress_idle_timeout() -> u64 {
    60
}
fn body_limit() -> usize {
    1 << 20
}
fn rpc_connections_max() -> usize {
    256
}
fn metrics_connections_max() -> usize {
    16
}
fn rpc_connections_per_address_max() -> usize {
    32
}
fn metrics_connections_per_address_max() -> usize {
    4
}
fn http_idle_timeout() -> u64 {
    30
}
fn view_timeout() -> u64 {
    1000
}
fn tick() -> u64 {
    2
}
fn block_interval() -> u64 {
    50
}

/// A configuration that cannot work.
#[derive(Debug, thiserror::Error)]
pub enum ConfigError {
    /// Unreadable file.
    #[error("cannot read config {path}: {source}")]
    Read {
        /// Path.
        path: PathBuf,
        /// Cause.
        source: std::io::Error,
    },
    /// TOML or schema error (toml names the key and line).
    #[error("config {path} is not valid: {source}")]
    Parse {
        /// Path.
        path: PathBuf,
        /// Cause.
        source: toml::de::Error,
    },
    /// A semantic problem with one key.
    #[error("config {path}: {key}: {problem}")]
    Invalid {
        /// Path.
        path: PathBuf,
        /// Offending key.
        key: &'static str,
        /// What is wrong.
        problem: String,
    },
}

impl NodeConfig {
    /// Reads, parses and validates; resolves relative paths against the file's directory.
    ///
    /// # Errors
    /// See [`ConfigError`].
    pub fn load(path: &Path) -> Result<NodeConfig, ConfigError> {
        let text = crate::read_input_file(path, crate::SMALL_FILE_BYTES_MAX)
            .map_err(|source| ConfigError::Read { path: path.to_owned(), source })?;
        NodeConfig::from_toml(&text, path)
    }

    /// Parses and validates the text of the file at `path` (named in errors; relative paths
    /// resolve against its directory).
    ///
    /// # Errors
    /// [`ConfigError::Parse`] or [`ConfigError::Invalid`].
    pub fn from_toml(text: &str, path: &Path) -> Result<NodeConfig, ConfigError> {
        let mut config: NodeConfig =
            toml::from_str(text).map_err(|source| ConfigError::Parse { path: path.to_owned(), source })?;
        // Named before the paths resolve: an empty one resolves to the config's own directory,
        // and the store would be made beside the key file and the configs.
        for (key, file) in [
            ("data_dir", Some(&config.data_dir)),
            ("genesis_file", Some(&config.genesis_file)),
            ("key_file", config.key_file.as_ref()),
        ] {
            if file.is_some_and(|file| file.as_os_str().is_empty()) {
                return Err(ConfigError::Invalid { path: path.to_owned(), key, problem: "is empty".into() });
            }
        }
        let base = path.parent().unwrap_or(Path::new("."));
        for file in [config.key_file.as_mut(), Some(&mut config.genesis_file), Some(&mut config.data_dir)]
            .into_iter()
            .flatten()
        {
            if file.is_relative() {
                *file = base.join(&*file);
            }
        }
        config.validate().map_err(|(key, problem)| ConfigError::Invalid {
            path: path.to_owned(),
            key,
            problem,
        })?;
        Ok(config)
    }

    fn validate(&self) -> Result<(), (&'static str, String)> {
        if self.network.peers.is_empty() {
            return Err(("network.peers", "lists no validator".into()));
        }
        match (self.role, self.validator_index, &self.key_file) {
            (Role::Validator, None, _) => {
                return Err(("validator_index", "a validator needs its index in the genesis set".into()));
            }
            (Role::Validator, _, None) => {
                return Err(("key_file", "a validator needs its key file".into()));
            }
            (Role::Validator, Some(index), Some(_)) if index as usize >= self.network.peers.len() => {
                return Err((
                    "validator_index",
                    format!("{index} is past network.peers ({} entries)", self.network.peers.len()),
                ));
            }
            (Role::Full, Some(_), _) => {
                return Err(("validator_index", "only a validator has one (role is \"full\")".into()));
            }
            (Role::Full, _, Some(_)) => {
                // Ignored, it read as if the node signed with it.
                return Err((
                    "key_file",
                    "only a validator has one (role is \"full\"): a full node signs nothing".into(),
                ));
            }
            _ => {}
        }
        let mut listed = std::collections::HashSet::new();
        if let Some(twice) = self.network.peers.iter().find(|peer| !listed.insert(**peer)) {
            return Err((
                "network.peers",
                format!("{twice} is listed twice: each validator has its own address"),
            ));
        }
        if let (Role::Validator, Some(index)) = (self.role, self.validator_index)
            && let Some(own) = self.network.peers.get(index as usize)
        {
            // The others dial this validator at its entry in `peers`: it must listen there (or on
            // that port of every interface), or it is never reached.
            let listen = self.network.listen;
            let reached = listen == *own || (listen.ip().is_unspecified() && listen.port() == own.port());
            if !reached {
                return Err((
                    "network.listen",
                    format!(
                        "{listen} is not this validator's entry in network.peers ({own}), where the others dial it"
                    ),
                ));
            }
        }
        if self.network.cores == 0 || self.network.cores > 64 {
            return Err(("network.cores", "must be between 1 and 64".into()));
        }
        if self.network.outbound_queue_frames == 0 {
            return Err(("network.outbound_queue_frames", "must be positive".into()));
        }
        if self.network.outbound_queue_bytes / 4 < self.network.max_frame_bytes as u64 {
            return Err((
                "network.outbound_queue_bytes",
                "must be at least four frames of max_frame_bytes (the bulk lane gets a quarter)".into(),
            ));
        }
        if self.network.max_frame_bytes < 1024
            || self.network.max_frame_bytes > tessera_components::constants::FRAME_SIZE_LIMIT
        {
            return Err(("network.max_frame_bytes", "must be between 1 KiB and 16 MiB".into()));
        }
        if self.network.connections_max < self.network.peers.len() {
            return Err((
                "network.connections_max",
                format!("must be at least the {} validators in network.peers", self.network.peers.len()),
            ));
        }
        if self.network.followers_max == 0 {
            return Err(("network.followers_max", "must be positive".into()));
        }
        if self.network.follower_idle_timeout_secs == 0 || self.network.follower_idle_timeout_secs > 3600 {
            return Err(("network.follower_idle_timeout_secs", "must be between 1 and 3600".into()));
        }
        // A full node that has caught up asks about fifty times a second, each answer charged at
        // least 16 KiB (`net::SYNC_ANSWER_CHARGE_MIN`): 0.8 MiB/s. At the old floor, 64 KiB/s,
        // it was refused three times in four (found in review).
        if self.network.follower_sync_bytes_per_sec < 1 << 20 {
            return Err((
                "network.follower_sync_bytes_per_sec",
                "must be at least 1048576 (a caught-up full node's asking is charged about 0.8 MiB/s)".into(),
            ));
        }
        if self.network.connections_per_address_max == 0 {
            return Err(("network.connections_per_address_max", "must be positive".into()));
        }
        if self.ingress.connections_max == 0 {
            return Err(("ingress.connections_max", "must be positive".into()));
        }
        if self.ingress.idle_timeout_secs == 0 || self.ingress.idle_timeout_secs > 3600 {
            return Err(("ingress.idle_timeout_secs", "must be between 1 and 3600".into()));
        }
        if self.rpc.body_limit_bytes < 64 {
            return Err(("rpc.body_limit_bytes", "must be at least 64".into()));
        }
        let http = [
            (
                ("rpc.connections_max", self.rpc.connections_max),
                ("rpc.connections_per_address_max", self.rpc.connections_per_address_max),
                ("rpc.idle_timeout_secs", self.rpc.idle_timeout_secs),
            ),
            (
                ("metrics.connections_max", self.metrics.connections_max),
                ("metrics.connections_per_address_max", self.metrics.connections_per_address_max),
                ("metrics.idle_timeout_secs", self.metrics.idle_timeout_secs),
            ),
        ];
        for ((max_key, max), (per_address_key, per_address), (timeout_key, timeout)) in http {
            if max == 0 || max > 65_536 {
                return Err((max_key, "must be between 1 and 65536".into()));
            }
            if per_address == 0 || per_address > 65_536 {
                return Err((per_address_key, "must be between 1 and 65536".into()));
            }
            if timeout == 0 || timeout > 3600 {
                return Err((timeout_key, "must be between 1 and 3600".into()));
            }
        }
        // Bounded so that the nanosecond arithmetic built on them (a view timeout backs off to
        // 30×) cannot overflow, and so a deadline is never further off than an operator means.
        const HOUR_MS: u64 = 3_600_000;
        if self.consensus.view_timeout_ms == 0 || self.consensus.view_timeout_ms > HOUR_MS {
            return Err(("consensus.view_timeout_ms", format!("must be between 1 and {HOUR_MS} (an hour)")));
        }
        if self.consensus.block_interval_ms > HOUR_MS {
            return Err(("consensus.block_interval_ms", format!("must be at most {HOUR_MS} (an hour)")));
        }
        // `Instant + Duration` panics past the clock's range; a year of ban is plenty.
        if self.network.ban_secs > 366 * 86_400 {
            return Err(("network.ban_secs", "must be at most 31622400 (a year)".into()));
        }
        if self.consensus.tick_ms == 0 || self.consensus.tick_ms > 1000 {
            return Err(("consensus.tick_ms", "must be between 1 and 1000".into()));
        }
        let ports = [self.network.listen, self.ingress.listen, self.rpc.listen, self.metrics.listen];
        for (i, a) in ports.iter().enumerate() {
            if ports[i + 1..].contains(a) && a.port() != 0 {
                return Err((
                    "network.listen / ingress.listen / rpc.listen / metrics.listen",
                    format!("{a} is used twice"),
                ));
            }
        }
        self.pipeline_config().validate().map_err(|error| ("pipeline", error.to_string()))?;
        Ok(())
    }

    /// The pipeline configuration with this file's overrides applied.
    pub fn pipeline_config(&self) -> PipelineConfig {
        let mut config = PipelineConfig::default();
        let p = &self.pipeline;
        if let Some(v) = p.fee_floor {
            config.fee_floor = v;
        }
        if let Some(v) = p.mempool_count_max {
            config.mempool_count_max = v;
        }
        if let Some(v) = p.block_txn_max {
            config.block_txn_max = v;
        }
        if let Some(v) = p.block_bytes_max {
            config.block_bytes_max = v;
        }
        if let Some(v) = p.sigverify_batch_size {
            config.sigverify_batch_size = v;
        }
        if let Some(v) = p.sigverify_batch {
            config.sigverify_batch = v;
        }
        if let Some(v) = p.prefilter_simd {
            config.prefilter_simd = v;
        }
        if let Some(v) = p.sigverify_overlap {
            config.sigverify_overlap = v;
        }
        if let Some(v) = p.sigverify_cache_capacity {
            config.sigverify_cache_capacity = v;
        }
        config
    }

    /// A validator preset with the given addresses, for `tessera genesis` and `tessera devnet`.
    pub fn validator_preset(
        index: u32,
        peers: Vec<SocketAddr>,
        ingress: SocketAddr,
        rpc: SocketAddr,
        metrics: SocketAddr,
    ) -> NodeConfig {
        NodeConfig {
            role: Role::Validator,
            validator_index: Some(index),
            key_file: Some(PathBuf::from(format!("validator-{index}.key"))),
            genesis_file: PathBuf::from("genesis.toml"),
            data_dir: PathBuf::from(format!("data-{index}")),
            network: NetworkSection {
                listen: peers[index as usize],
                peers,
                cores: 1,
                outbound_queue_frames: outbound_queue(),
                outbound_queue_bytes: outbound_queue_bytes(),
                penalty_threshold: penalty_threshold(),
                ban_secs: ban_secs(),
                max_frame_bytes: frame_max(),
                connections_max: peer_connections_max(),
                followers_max: followers_max(),
                follower_idle_timeout_secs: follower_idle_timeout(),
                follower_sync_bytes_per_sec: follower_sync_bytes_per_sec(),
                connections_per_address_max: connections_per_address_max(),
                trust_loopback: true,
            },
            ingress: IngressSection {
                listen: ingress,
                connections_max: ingress_connections_max(),
                idle_timeout_secs: ingress_idle_timeout(),
            },
            rpc: RpcSection {
                listen: rpc,
                body_limit_bytes: body_limit(),
                connections_max: rpc_connections_max(),
                connections_per_address_max: rpc_connections_per_address_max(),
                idle_timeout_secs: http_idle_timeout(),
            },
            metrics: MetricsSection {
                listen: metrics,
                connections_max: metrics_connections_max(),
                connections_per_address_max: metrics_connections_per_address_max(),
                idle_timeout_secs: http_idle_timeout(),
            },
            consensus: ConsensusSection::default(),
            // Blocks of at most 4096 transfers (655 KB) keep proposals quick to send, validate
            // and execute within a view; at the default 50 ms interval that is still far above
            // what one machine can verify.
            pipeline: PipelineSection { block_txn_max: Some(4096), ..PipelineSection::default() },
        }
    }

    /// A full-node preset: follows the validators at `peers`, serves the chain on its own RPC,
    /// and forwards transactions from its ingress to the validators. `name` names its data
    /// directory.
    pub fn full_preset(
        name: &str,
        peers: Vec<SocketAddr>,
        listen: SocketAddr,
        ingress: SocketAddr,
        rpc: SocketAddr,
        metrics: SocketAddr,
    ) -> NodeConfig {
        let mut config = NodeConfig::validator_preset(0, peers, ingress, rpc, metrics);
        config.role = Role::Full;
        config.validator_index = None;
        config.key_file = None;
        config.data_dir = PathBuf::from(format!("data-{name}"));
        config.network.listen = listen;
        config
    }
}

/// Fuzz harness for configuration files: byte 0 picks a node config or a genesis file, the rest
/// is the file's text. Parsing and validation never panic; a semantic refusal names a key and
/// says so in its message; an accepted file builds what the node builds from it (the mempool,
/// the frame codec, the validator keys and balances) and survives a write and re-read
/// unchanged: the value read back equals the value written, field by field. Run by `cargo test`
/// on seeded inputs and by `fuzz/fuzz_targets/config.rs`.
pub fn fuzz_config(data: &[u8]) {
    fuzz_config_with(data, |config| toml::to_string(config).expect("a loaded config serialises"));
}

/// [`fuzz_config`] with `write` in place of the node config's serialiser, so tests can run
/// the oracle against a wrong one.
pub fn fuzz_config_with(data: &[u8], write: fn(&NodeConfig) -> String) {
    use super::genesis::{Genesis, GenesisError};

    let Some((&which, text)) = data.split_first() else {
        return;
    };
    let text = String::from_utf8_lossy(text);
    let path = Path::new("fuzz.toml");
    if which % 2 == 0 {
        match NodeConfig::from_toml(&text, path) {
            Err(ConfigError::Read { .. }) => unreachable!("no file is read"),
            Err(ConfigError::Parse { .. }) => {}
            Err(error @ ConfigError::Invalid { key, .. }) => {
                assert!(
                    !key.is_empty() && error.to_string().contains(key),
                    "error does not name its key: {error}"
                );
            }
            Ok(config) => {
                let pipeline = config.pipeline_config();
                let mempool = tessera_systems::mempool::Mempool::new(
                    pipeline.mempool_count_max,
                    pipeline.mempool_bytes_max,
                );
                assert!(mempool.capacity() > 0);
                let codec = tessera_components::wire::Codec::new(config.network.max_frame_bytes);
                assert_eq!(codec.max_frame_size(), config.network.max_frame_bytes);
                if let Some(index) = config.validator_index {
                    assert!(index < config.network.peers.len() as u32);
                }
                let written = write(&config);
                let again = NodeConfig::from_toml(&written, path).expect("a written config loads");
                assert_eq!(again, config, "config does not round-trip");
            }
        }
    } else {
        match Genesis::from_toml(&text, path) {
            Err(GenesisError::Read { .. }) => unreachable!("no file is read"),
            Err(GenesisError::Parse { .. }) => {}
            Err(error @ GenesisError::Invalid { .. }) => {
                let GenesisError::Invalid { key, .. } = &error else { unreachable!() };
                assert!(
                    !key.is_empty() && error.to_string().contains(key.as_str()),
                    "error does not name its key: {error}"
                );
            }
            Ok(genesis) => {
                assert_eq!(genesis.validator_keys().len(), genesis.validators.len());
                // Derived accounts run to the millions: build the ledger of a small genesis only.
                if genesis.account_count() <= 4096 {
                    let balances = genesis.balances();
                    assert_eq!(balances.len() as u64, genesis.account_count());
                    // A derived address equal to a listed one is refused here, as a duplicate.
                    match tessera_systems::Ledger::from_genesis(&balances) {
                        Ok(ledger) => assert_eq!(ledger.len() as u64, genesis.account_count()),
                        Err(error) => assert!(
                            genesis.load_accounts + genesis.filler_accounts > 0
                                && matches!(error, tessera_systems::GenesisError::DuplicateAccount(_)),
                            "checked genesis builds no ledger: {error}"
                        ),
                    }
                }
                let written = toml::to_string(&genesis).expect("a loaded genesis serialises");
                assert_eq!(Genesis::from_toml(&written, path).expect("a written genesis loads"), genesis);
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use tessera_components::fuzz::{FuzzSeeds, fuzz_corpus};

    use super::*;

    /// A node config and a genesis file, each behind its selector byte.
    pub(crate) fn sample_files() -> Vec<Vec<u8>> {
        let addr = |port: u16| SocketAddr::from(([127, 0, 0, 1], port));
        let preset =
            NodeConfig::validator_preset(1, vec![addr(7000), addr(7001)], addr(8000), addr(8001), addr(8002));
        let mut config = vec![0];
        config.extend_from_slice(toml::to_string(&preset).unwrap().as_bytes());
        let key = "11".repeat(32);
        let validator =
            hex::encode(ed25519_dalek::SigningKey::from_bytes(&[7; 32]).verifying_key().to_bytes());
        let mut genesis = vec![1];
        genesis.extend_from_slice(
            format!(
                "chain_id = 7\nload_seed = 3\n[[validators]]\npublic_key = \"{validator}\"\n\
                 [[accounts]]\naddress = \"{key}\"\nbalance = 100\n"
            )
            .as_bytes(),
        );
        vec![config, genesis]
    }

    #[test]
    fn samples_load_and_refusals_name_the_key() {
        for sample in sample_files() {
            fuzz_config(&sample);
        }
        let [config, _] = &sample_files()[..] else { unreachable!() };
        let text = String::from_utf8_lossy(&config[1..]).replace("cores = 1", "cores = 0");
        let error = NodeConfig::from_toml(&text, Path::new("x.toml")).unwrap_err();
        assert!(error.to_string().contains("network.cores"), "{error}");
    }

    #[test]
    fn fuzz_config_survives_seeded_inputs() {
        let samples = sample_files();
        let refs: Vec<&[u8]> = samples.iter().map(Vec::as_slice).collect();
        tessera_components::fuzz::fuzz_write_seeds("config", &refs);
        let mut seeds = FuzzSeeds::new(0xc0f9);
        for round in 0..2000 {
            fuzz_config(&seeds.mutate(&samples[round % samples.len()]));
        }
        for input in fuzz_corpus("config") {
            fuzz_config(&input);
        }
    }

    #[test]
    fn the_config_oracle_catches_a_writer_that_drops_a_section() {
        // A writer that leaves `[consensus]` out: reading its output back gives the defaults.
        fn write(config: &NodeConfig) -> String {
            let mut value = toml::Value::try_from(config).expect("serialises");
            value.as_table_mut().expect("a table").remove("consensus");
            toml::to_string(&value).expect("serialises")
        }
        let [config, _] = &sample_files()[..] else { unreachable!() };
        let text =
            String::from_utf8_lossy(&config[1..]).replace("view_timeout_ms = 1000", "view_timeout_ms = 1500");
        assert_ne!(text, String::from_utf8_lossy(&config[1..]), "the sample names the view timeout");
        let mut input = vec![0];
        input.extend_from_slice(text.as_bytes());
        fuzz_config(&input);
        // The comparison of texts this oracle replaced passes: writing what was read back
        // gives the same text, since both lack the section.
        let loaded = NodeConfig::from_toml(&text, Path::new("fuzz.toml")).unwrap();
        let again = NodeConfig::from_toml(&write(&loaded), Path::new("fuzz.toml")).unwrap();
        assert_eq!(write(&again), write(&loaded));
        let failure = std::panic::catch_unwind(|| fuzz_config_with(&input, write)).expect_err("missed");
        let failure = failure.downcast_ref::<String>().cloned().unwrap_or_default();
        eprintln!("the oracle reported: {failure}");
        assert!(failure.contains("config does not round-trip"), "{failure}");
    }
}

#[cfg(test)]
#[path = "config_tests.rs"]
mod preset_tests;
