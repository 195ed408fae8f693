//! The deterministic in-process cluster: n validators, one `World` each, exchanging consensus
//! messages through a simulated network in virtual time. Everything derives from one seed.
//!
//! Bird's eye view: [`Cluster::step`] advances virtual time by one tick: due messages are
//! delivered into each node's consensus inbox, each node runs one schedule tick at the virtual
//! time, and each node's outbound messages pass through its [`Behaviour`] (honest, or one of
//! the Byzantine ones) and the [`network::Network`] (delay, loss, reordering, partitions)
//! into the delivery queue. After every tick the cluster checks the consensus invariants over
//! the honest nodes and panics, printing the seed, on a violation.

pub mod byzantine;
pub mod engine;
pub mod network;
pub mod plot;
pub mod report;
pub mod scenario;
pub mod swarm;

use std::collections::BTreeMap;

use ed25519_dalek::SigningKey;
use tessera_components::{ConsensusMessage, Hash, Txn, TxnBody};
use tessera_systems::consensus::core::{
    ConsensusConfig, Core, Destination, FinalizedChain, ValidatorSet, check_agreement,
};
use tessera_systems::workload::{SeedStream, sign, signing_key};
use tessera_systems::{ChainTip, Ledger, Pipeline, PipelineConfig, Stages};

use self::network::{Network, NetworkConfig};

/// How a validator behaves while its fault window is open.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Behaviour {
    /// Follows the protocol.
    Honest,
    /// As leader, sends one proposal to half the validators and a conflicting one to the rest.
    EquivocatingProposer,
    /// Sends every vote twice: as cast to half the validators, for a different block to the rest.
    DoubleVoter,
    /// Sends no votes.
    VoteWithholder,
    /// As leader, proposes blocks with a wrong state root.
    InvalidProposer,
    /// As leader, proposes blocks whose proposal signature does not verify.
    BadSignatureProposer,
    /// As leader, proposes blocks with more transactions than any block may hold.
    OverLimitProposer,
    /// Sends every message again; with [`byzantine::Adversary`], also messages from the past.
    Replayer,
    /// Sends every message many times over.
    Flooder,
    /// Honest messages, but reads slowly on its connections (transport level: see
    /// [`byzantine::Transport`]).
    SlowReader,
    /// Completes the handshake, then sends bytes that are not frames (transport level).
    GarbageAfterHandshake,
}

/// A cluster scenario.
#[derive(Clone, Debug)]
pub struct ClusterConfig {
    /// Everything random derives from this.
    pub seed: u64,
    /// Number of validators.
    pub validators: usize,
    /// Virtual nanoseconds per tick.
    pub tick_ns: u64,
    /// The network model.
    pub network: NetworkConfig,
    /// Byzantine validators and their behaviour.
    pub byzantine: Vec<(u32, Behaviour)>,
    /// Byzantine behaviour is active from this virtual time...
    pub fault_from_ns: u64,
    /// ...until this one; afterwards every validator is honest.
    pub fault_until_ns: u64,
    /// Client transfers submitted per tick, to validators in turn.
    pub txns_per_tick: usize,
    /// Base view timeout.
    pub view_timeout_ns: u64,
}

impl ClusterConfig {
    /// A scenario with honest validators on a mildly lossy network.
    pub fn new(seed: u64, validators: usize) -> ClusterConfig {
        ClusterConfig {
            seed,
            validators,
            tick_ns: 5_000_000,
            network: NetworkConfig::default(),
            byzantine: Vec::new(),
            fault_from_ns: 0,
            fault_until_ns: u64::MAX,
            txns_per_tick: 2,
            view_timeout_ns: 200_000_000,
        }
    }
}

struct Node {
    pipeline: Pipeline,
    behaviour: Behaviour,
    key: SigningKey,
    chain: FinalizedChain,
}

/// The cluster.
pub struct Cluster {
    config: ClusterConfig,
    nodes: Vec<Node>,
    network: Network,
    now_ns: u64,
    clients: Vec<SigningKey>,
    client_nonces: Vec<u64>,
    stream: SeedStream,
}

impl std::fmt::Debug for Cluster {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Cluster")
            .field("seed", &self.config.seed)
            .field("now_ns", &self.now_ns)
            .finish_non_exhaustive()
    }
}

/// Validator `index`'s key in a cluster seeded with `seed`.
pub fn validator_key(seed: u64, index: u64) -> SigningKey {
    signing_key(seed ^ 0x7661_6c69_6461_746f, index)
}

impl Cluster {
    /// Builds the cluster: keys, genesis (funded clients), one pipeline per validator.
    ///
    /// # Errors
    /// A pipeline that does not build.
    pub fn new(config: ClusterConfig) -> Result<Cluster, Box<dyn std::error::Error>> {
        let keys: Vec<SigningKey> =
            (0..config.validators as u64).map(|i| validator_key(config.seed, i)).collect();
        let set = ValidatorSet::new(keys.iter().map(|key| key.verifying_key().to_bytes()).collect());
        let clients: Vec<SigningKey> = (0..16).map(|i| signing_key(config.seed ^ 0xc11e, i)).collect();
        let genesis: Vec<([u8; 32], u64)> =
            clients.iter().map(|key| (key.verifying_key().to_bytes(), 1_000_000_000)).collect();
        let consensus_config = ConsensusConfig {
            view_timeout_ns: config.view_timeout_ns,
            view_timeout_max_ns: config.view_timeout_ns * 16,
            ..ConsensusConfig::default()
        };
        let mut nodes = Vec::with_capacity(keys.len());
        for (index, key) in keys.iter().enumerate() {
            let ledger = Ledger::from_genesis(&genesis)?;
            let tip = ChainTip::genesis(&ledger);
            let core =
                Core::new(index as u32, key.clone(), set.clone(), consensus_config.clone(), 0, Hash::ZERO);
            let pipeline_config = PipelineConfig { block_txn_max: 64, ..PipelineConfig::default() };
            let stages = Stages::Validator { core: Box::new(core), history_bytes_max: 64 << 20 };
            let pipeline = Pipeline::with_stages(pipeline_config, ledger, tip, stages)?;
            let behaviour = config
                .byzantine
                .iter()
                .find(|(who, _)| *who as usize == index)
                .map_or(Behaviour::Honest, |(_, behaviour)| *behaviour);
            nodes.push(Node { pipeline, behaviour, key: key.clone(), chain: FinalizedChain::new() });
        }
        let network = Network::new(config.network.clone(), config.seed, keys.len());
        let stream = SeedStream::new("tessera sim cluster", config.seed);
        let client_nonces = vec![0; clients.len()];
        Ok(Cluster { config, nodes, network, now_ns: 0, clients, client_nonces, stream })
    }

    /// Virtual time now.
    pub fn now_ns(&self) -> u64 {
        self.now_ns
    }

    /// The seed, for reproduction.
    pub fn seed(&self) -> u64 {
        self.config.seed
    }

    /// Whether validator `index` is honest for the whole run.
    pub fn is_honest(&self, index: usize) -> bool {
        self.nodes[index].behaviour == Behaviour::Honest
    }

    /// Finalized height of validator `index`.
    pub fn finalized_height(&self, index: usize) -> u64 {
        self.nodes[index].chain.keys().next_back().copied().unwrap_or(0)
    }

    /// The network, for scheduling partitions.
    pub fn network_mut(&mut self) -> &mut Network {
        &mut self.network
    }

    /// Validator `index`'s pipeline.
    pub fn pipeline(&self, index: usize) -> &Pipeline {
        &self.nodes[index].pipeline
    }

    fn faulty_now(&self) -> bool {
        self.now_ns >= self.config.fault_from_ns && self.now_ns < self.config.fault_until_ns
    }

    fn submit_client_load(&mut self) {
        for _ in 0..self.config.txns_per_tick {
            let client = self.stream.below(self.clients.len() as u64) as usize;
            let key = &self.clients[client];
            let body = TxnBody {
                chain_id: 1,
                reserved: 0,
                sender: key.verifying_key().to_bytes(),
                recipient: [client as u8 + 1; 32],
                amount: 1 + self.stream.below(100),
                fee: 1 + self.stream.below(10),
                nonce: self.client_nonces[client],
            };
            self.client_nonces[client] += 1;
            let txn: Txn = sign(key, body);
            // Clients broadcast to every validator, as wallets do; the mempool deduplicates.
            for node in &mut self.nodes {
                node.pipeline.submit(txn);
            }
        }
    }

    /// Advances one tick.
    ///
    /// # Panics
    /// On an invariant violation, naming the seed.
    pub fn step(&mut self) {
        self.now_ns += self.config.tick_ns;
        self.submit_client_load();
        for (to, from, message) in self.network.due(self.now_ns) {
            self.nodes[to as usize].pipeline.deliver(from, message);
        }
        let faulty = self.faulty_now();
        let n = self.nodes.len();
        for index in 0..n {
            let committed = self.nodes[index].pipeline.tick(self.now_ns);
            for block in committed {
                let node = &mut self.nodes[index];
                let height = block.block.header.height;
                let last = node.chain.keys().next_back().copied().unwrap_or(0);
                assert_eq!(
                    height,
                    last + 1,
                    "seed {}: node {index} finalized height {height} after {last}",
                    self.config.seed
                );
                node.chain.insert(height, block.hash);
            }
            self.nodes[index].pipeline.drain_certified();
            self.nodes[index].pipeline.drain_rejections();
            let outbound = self.nodes[index].pipeline.drain_outbound();
            let behaviour = if faulty { self.nodes[index].behaviour } else { Behaviour::Honest };
            for (destination, message) in outbound {
                self.send(index as u32, behaviour, destination, message);
            }
        }
        self.check_invariants();
    }

    fn send(&mut self, from: u32, behaviour: Behaviour, destination: Destination, message: ConsensusMessage) {
        let n = self.nodes.len() as u32;
        let targets: Vec<u32> = match destination {
            Destination::All => (0..n).filter(|to| *to != from).collect(),
            Destination::One(to) => vec![to],
        };
        let key = &self.nodes[from as usize].key;
        let sign = |message: &[u8]| ed25519_dalek::Signer::sign(key, message).to_bytes();
        for (to, message) in byzantine::outbound(behaviour, &sign, &targets, message) {
            self.network.send(self.now_ns, from, to, message);
        }
    }

    /// Safety over the honest nodes: no two finalize different blocks at one height, and every
    /// chain is gap-free from height 1 (so each is a prefix of the longest). Height
    /// monotonicity is asserted as blocks arrive in [`Cluster::step`].
    ///
    /// # Panics
    /// On a violation, naming the seed and the command that reproduces it.
    pub fn check_invariants(&self) {
        let honest: Vec<&FinalizedChain> = self
            .nodes
            .iter()
            .filter(|node| node.behaviour == Behaviour::Honest)
            .map(|node| &node.chain)
            .collect();
        if let Err(violation) = check_agreement(&honest) {
            panic!(
                "{violation}\nreproduce with seed={}: TESSERA_SEED={} cargo test --lib sim",
                self.config.seed, self.config.seed
            );
        }
    }

    /// Runs until `until_ns` of virtual time.
    pub fn run_until(&mut self, until_ns: u64) {
        while self.now_ns < until_ns {
            self.step();
        }
    }

    /// Equivocations counted by honest validators.
    pub fn equivocations_seen(&self) -> u64 {
        self.nodes
            .iter()
            .filter(|node| node.behaviour == Behaviour::Honest)
            .filter_map(|node| node.pipeline.consensus())
            .map(|consensus| consensus.core.counters().equivocations)
            .sum()
    }

    /// Proposals refused for a wrong state root, counted by honest validators.
    pub fn wrong_state_roots_seen(&self) -> u64 {
        self.nodes
            .iter()
            .filter(|node| node.behaviour == Behaviour::Honest)
            .filter_map(|node| node.pipeline.consensus())
            .map(|consensus| consensus.core.counters().rejected_state_root)
            .sum()
    }

    /// The lowest finalized height among honest validators.
    pub fn honest_min_height(&self) -> u64 {
        (0..self.nodes.len())
            .filter(|i| self.is_honest(*i))
            .map(|i| self.finalized_height(i))
            .min()
            .unwrap_or(0)
    }

    /// Per-validator finalized chains (height → hash).
    pub fn chains(&self) -> BTreeMap<usize, &FinalizedChain> {
        self.nodes.iter().enumerate().map(|(i, node)| (i, &node.chain)).collect()
    }
}

#[cfg(test)]
mod tests;

#[cfg(test)]
mod engine_tests;
