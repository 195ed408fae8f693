//! Fuzz harness over a cluster's fault schedule: four validators' [`Core`]s in one process,
//! and input bytes that decide everything the network, the disks and one Byzantine validator
//! do to them. The oracle is safety: no two validators ever finalize different blocks at one
//! height, whatever the schedule.
//!
//! Validators 0–2 are honest cores, each with a host whose finalized chain is durable and a
//! saved [`SafetyState`] that is written, as the node's driver writes it, before anything a
//! step produced is sent. Validator 3 is an adversary that holds its key and no core: it
//! proposes either of two twin blocks, in any view it leads, to whichever validator the input
//! names, votes for any block it has seen in any phase, and announces views. The input also
//! delivers, drops and duplicates messages in flight, advances the clock, crashes an honest
//! validator (immediately, or right after its next persist and before that step's messages
//! leave) and restarts it from its durable chain and saved safety state.
//!
//! Two oracles, checked after every step: no honest validator ever sends two different
//! blocks signed for one kind, height and view (what the saved safety state guarantees, and
//! the first step of every amnesia fork), and no two validators finalize different blocks at
//! one height.
//!
//! With `amnesia` set, a restart skips the saved safety state (the planted bug the checker must
//! catch: [`fuzz_cluster_schedule_amnesia`]). Signatures are the simulator's stand-ins, so an
//! execution costs hashing, not curve arithmetic; the protocol logic is the node's own.

use std::collections::BTreeMap;
use std::sync::OnceLock;

use arbitrary::Unstructured;
use ed25519_dalek::SigningKey;
use tessera_components::ChainTag;
use tessera_components::consensus::{new_view_signing_bytes, proposal_signing_bytes};
use tessera_components::{
    Block, BlockHeader, CertifiedBlock, ConsensusMessage, Hash, NewView, Proposal, QuorumCertificate,
    SafetyState, Signature, Vote, VoteKind, merkle_root, vote_signing_bytes,
};

use super::core::{BlockFault, ConsensusConfig, Core, Host, ValidatorSet};
use crate::kernels::sigverify::stand_in_sign;

/// Validators in the cluster (f = 1).
const VALIDATORS: u32 = 4;
/// The Byzantine validator.
const BYZANTINE: u32 = 3;
/// Messages in flight at most; a send past it is lost (the network is allowed to lose).
const FLIGHT_MAX: usize = 256;
/// Steps in one schedule.
const STEPS_MAX: usize = 400;

fn keys() -> &'static [SigningKey] {
    static KEYS: OnceLock<Vec<SigningKey>> = OnceLock::new();
    KEYS.get_or_init(|| (0..u64::from(VALIDATORS)).map(|i| crate::workload::signing_key(0xc105, i)).collect())
}

fn public(index: u32) -> [u8; 32] {
    keys()[index as usize].verifying_key().to_bytes()
}

fn validator_set() -> ValidatorSet {
    ValidatorSet::new((0..VALIDATORS).map(public).collect())
}

/// The cluster's consensus settings; `aggregate` sends votes to the view's leader, which
/// broadcasts certificates, instead of to everyone.
fn config(aggregate: bool) -> ConsensusConfig {
    ConsensusConfig {
        view_timeout_ns: 4_000,
        view_timeout_max_ns: 32_000,
        sync_batch_max: 4,
        view_window: 8,
        evidence_max: 16,
        block_interval_ns: 0,
        sync_bytes_max: 1 << 20,
        stand_in_signatures: true,
        aggregate_votes_from: if aggregate { 1 } else { usize::MAX },
        forward_to_leaders_from: usize::MAX,
    }
}

fn state_root(height: u64) -> Hash {
    Hash::in_domain("tessera 2026 cluster state root", &[&height.to_le_bytes()])
}

/// A block for `height` on `parent` in `view` by `proposer`; `twin` tells two blocks of one
/// proposer and view apart.
fn block(height: u64, view: u64, parent: Hash, proposer: u32, twin: u64) -> Block {
    let header = BlockHeader {
        height,
        view,
        timestamp_ms: twin,
        proposer,
        txn_count: 0,
        parent,
        txn_root: merkle_root(&[]),
        state_root: state_root(height),
    };
    Block { header, txns: Vec::new().into() }
}

/// An honest validator's host: its finalized chain is its durable storage.
#[derive(Debug, Default)]
struct ClusterHost {
    chain: Vec<CertifiedBlock>,
    /// Starts so far: a restarted leader builds a different block (a real one's timestamp
    /// differs), which is what makes a forgotten proposal dangerous.
    boots: u64,
}

impl ClusterHost {
    fn last_hash(&self) -> Hash {
        self.chain.last().map_or(Hash::ZERO, |last| last.certificate.block)
    }
}

impl Host for ClusterHost {
    fn build_block(&mut self, height: u64, view: u64, parent: Hash, proposer: u32) -> Block {
        block(height, view, parent, proposer, self.boots)
    }

    fn validate_block(&mut self, block: &Block) -> Result<(), BlockFault> {
        if block.header.state_root == state_root(block.header.height) {
            Ok(())
        } else {
            Err(BlockFault::WrongStateRoot)
        }
    }

    fn commit_block(&mut self, block: &Block, certificate: &QuorumCertificate) {
        self.chain.push(CertifiedBlock { block: block.clone(), certificate: certificate.clone() });
    }

    fn finalized_block(&self, height: u64) -> Option<CertifiedBlock> {
        self.chain.get(usize::try_from(height.checked_sub(1)?).ok()?).cloned()
    }
}

/// One honest validator: a running core (or none while crashed), its durable chain and its
/// saved safety state.
struct Honest {
    core: Option<Core>,
    host: ClusterHost,
    saved: Option<SafetyState>,
    /// Crash right after the next persist, before that step's messages leave.
    crash_after_persist: bool,
}

/// A conflicting finalization: two validators finalized different blocks at one height.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SafetyViolation {
    /// The height.
    pub height: u64,
    /// What each side finalized there, and who finalized the second.
    pub detail: String,
}

/// The cluster under one schedule.
struct Cluster {
    honest: Vec<Honest>,
    set: ValidatorSet,
    now_ns: u64,
    /// (from, to, message).
    flight: Vec<(u32, u32, ConsensusMessage)>,
    /// The block finalized at each height, and by whom first.
    finalized: BTreeMap<u64, (Hash, u32)>,
    /// Blocks seen in proposals, newest last, for the adversary's votes.
    known: Vec<Block>,
    /// What each honest validator has sent signed, by (message kind, height, view): the
    /// oracle's memory, which survives the validator's restarts.
    signed: Vec<BTreeMap<(u8, u64, u64), Hash>>,
    /// An honest validator that signed two different blocks for one kind, height and view.
    equivocation: Option<SafetyViolation>,
    amnesia: bool,
    /// Votes go to the leader, which broadcasts certificates.
    aggregate: bool,
    /// Votes the adversary received (an aggregating leader's, when it leads), by what they
    /// sign: it may bundle them, with its own, into certificates for whom it likes.
    votes_seen: BTreeMap<(VoteKind, u64, u64, Hash), BTreeMap<u32, Signature>>,
    restarts: u64,
}

impl Cluster {
    /// A cluster that sends votes to everyone.
    #[cfg(test)]
    fn new(amnesia: bool) -> Cluster {
        Cluster::with(amnesia, false)
    }

    fn with(amnesia: bool, aggregate: bool) -> Cluster {
        let mut cluster = Cluster {
            honest: Vec::new(),
            set: validator_set(),
            now_ns: 0,
            flight: Vec::new(),
            finalized: BTreeMap::new(),
            known: Vec::new(),
            signed: vec![BTreeMap::new(); BYZANTINE as usize],
            equivocation: None,
            amnesia,
            aggregate,
            votes_seen: BTreeMap::new(),
            restarts: 0,
        };
        for index in 0..BYZANTINE {
            cluster.honest.push(Honest {
                core: None,
                host: ClusterHost::default(),
                saved: None,
                crash_after_persist: false,
            });
            cluster.boot(index);
        }
        cluster
    }

    /// Starts validator `index` from its durable chain and (unless the planted amnesia is on)
    /// its saved safety state.
    fn boot(&mut self, index: u32) {
        let node = &mut self.honest[index as usize];
        node.host.boots += 1;
        let height = node.host.chain.len() as u64;
        let mut core = Core::new(
            index,
            keys()[index as usize].clone(),
            self.set.clone(),
            config(self.aggregate),
            height,
            node.host.last_hash(),
        );
        if let Some(saved) = node.saved.as_ref().filter(|_| !self.amnesia) {
            core = core.with_safety_state(saved);
        }
        core.start(self.now_ns, &mut node.host);
        node.core = Some(core);
        self.settle(index);
    }

    fn learn(&mut self, block: &Block) {
        if !self.known.iter().any(|known| known.header == block.header) {
            if self.known.len() >= 16 {
                self.known.remove(0);
            }
            self.known.push(block.clone());
        }
    }

    fn send(&mut self, from: u32, to: u32, message: ConsensusMessage) {
        if let ConsensusMessage::Proposal(proposal) = &message {
            self.learn(&proposal.block);
        }
        if self.flight.len() < FLIGHT_MAX {
            self.flight.push((from, to, message));
        }
    }

    /// After a core ran: persist its safety state, then send what it produced (unless it
    /// crashes in between), and record what it finalized.
    fn settle(&mut self, index: u32) {
        let node = &mut self.honest[index as usize];
        let Some(core) = node.core.as_mut() else { return };
        if let Some(state) = core.take_safety_update() {
            node.saved = Some(state);
        }
        let outbox = core.drain_outbox();
        let finalized = core.drain_finalized();
        if std::mem::take(&mut node.crash_after_persist) {
            node.core = None;
        } else {
            for (destination, message) in outbox {
                self.witness(index, &message);
                for to in destination.recipients(index, VALIDATORS) {
                    self.send(index, to, message.clone());
                }
            }
        }
        for certified in finalized {
            let (height, hash) = (certified.block.header.height, certified.certificate.block);
            self.finalized.entry(height).or_insert((hash, index));
        }
    }

    /// Records what honest validator `index` signed and sends; a second, different block for
    /// the same kind, height and view is an honest equivocation, the first step of every
    /// amnesia fork, caught before any conflicting block gathers a quorum.
    fn witness(&mut self, index: u32, message: &ConsensusMessage) {
        let (kind, height, view, hash) = match message {
            ConsensusMessage::Proposal(proposal) => {
                (0, proposal.block.header.height, proposal.view, proposal.block.header.hash())
            }
            ConsensusMessage::Vote(vote) => (vote.kind as u8, vote.height, vote.view, vote.block),
            _ => return,
        };
        let first = *self.signed[index as usize].entry((kind, height, view)).or_insert(hash);
        if first != hash && self.equivocation.is_none() {
            let what =
                ["proposal", "prepare vote", "commit vote"].get(usize::from(kind)).copied().unwrap_or("vote");
            self.equivocation = Some(SafetyViolation {
                height,
                detail: format!(
                    "honest validator {index} signed a second {what} at height {height} view {view}: {} after {}",
                    hash.to_hex(),
                    first.to_hex()
                ),
            });
        }
    }

    /// Checks that no honest validator equivocated, and every honest validator's durable
    /// chain against the first finalization seen at each height.
    fn check(&self) -> Result<(), SafetyViolation> {
        if let Some(equivocation) = &self.equivocation {
            return Err(equivocation.clone());
        }
        self.forks()
    }

    /// The safety invariant itself: no honest validator's durable chain disagrees with the
    /// first finalization seen at any height.
    fn forks(&self) -> Result<(), SafetyViolation> {
        for (index, node) in self.honest.iter().enumerate() {
            for certified in &node.host.chain {
                let height = certified.block.header.height;
                let hash = certified.certificate.block;
                if let Some((first, by)) = self.finalized.get(&height)
                    && *first != hash
                {
                    return Err(SafetyViolation {
                        height,
                        detail: format!(
                            "validator {by} finalized {} and validator {index} finalized {} at height {height}",
                            first.to_hex(),
                            hash.to_hex()
                        ),
                    });
                }
            }
        }
        Ok(())
    }

    fn deliver(&mut self, from: u32, to: u32, message: ConsensusMessage) {
        if to == BYZANTINE {
            // The adversary reads everything; it remembers the blocks, and the votes.
            match &message {
                ConsensusMessage::Proposal(proposal) => self.learn(&proposal.block),
                ConsensusMessage::Vote(vote) if self.votes_seen.len() < 64 => {
                    self.votes_seen
                        .entry((vote.kind, vote.view, vote.height, vote.block))
                        .or_default()
                        .insert(vote.voter, Signature(vote.signature));
                }
                _ => {}
            }
            return;
        }
        let node = &mut self.honest[to as usize];
        let Some(core) = node.core.as_mut() else { return };
        core.on_message(from, message, &mut node.host);
        self.settle(to);
    }

    fn tick(&mut self, index: u32) {
        let node = &mut self.honest[index as usize];
        let Some(core) = node.core.as_mut() else { return };
        core.tick(self.now_ns, &mut node.host);
        self.settle(index);
    }

    /// The adversary's signature over `message`.
    fn sign(message: &[u8]) -> [u8; 64] {
        stand_in_sign(&public(BYZANTINE), message)
    }

    /// Where honest validator `to` stands: its height, view and last hash (or the adversary's
    /// memory of it while it is down).
    fn position(&self, to: u32) -> (u64, u64, Hash) {
        let node = &self.honest[to as usize];
        let height = node.host.chain.len() as u64 + 1;
        let view = node.core.as_ref().map_or(height, Core::view);
        (height, view, node.host.last_hash())
    }

    /// The adversary's `kind` vote for `block`, in the block's view, to `to`.
    fn byzantine_vote(&mut self, to: u32, kind: VoteKind, block: &Block) {
        let (view, height, hash) = (block.header.view, block.header.height, block.header.hash());
        let signature = Self::sign(&vote_signing_bytes(&ChainTag::TEST, kind, view, height, &hash));
        let vote = Vote { kind, view, height, block: hash, voter: BYZANTINE, signature };
        self.send(BYZANTINE, to, ConsensusMessage::Vote(vote));
    }

    /// One adversary action, aimed at honest validator `to`.
    fn byzantine(&mut self, u: &mut Unstructured<'_>, to: u32) -> arbitrary::Result<()> {
        let (height, view, parent) = self.position(to);
        match u.int_in_range(0..=4u8)? {
            0 | 1 => {
                // A proposal, one of two twins, in a view validator 3 leads, at or near `to`'s.
                let lead = view + u64::from(u.int_in_range(0..=7u8)?);
                let lead = lead - lead % u64::from(VALIDATORS) + u64::from(BYZANTINE);
                let block = block(height, lead, parent, BYZANTINE, u.int_in_range(1..=2u64)?);
                let hash = block.header.hash();
                let signature = Self::sign(&proposal_signing_bytes(&ChainTag::TEST, lead, height, &hash));
                let proposal = Proposal { view: lead, block, justify: None, signature };
                self.send(BYZANTINE, to, ConsensusMessage::Proposal(proposal));
            }
            2 if !self.known.is_empty() => {
                // A vote for any block it has seen, in its view, in either phase.
                let block = self.known[u.choose_index(self.known.len())?].clone();
                let kind = if u.arbitrary()? { VoteKind::Prepare } else { VoteKind::Commit };
                self.byzantine_vote(to, kind, &block);
            }
            4 if !self.votes_seen.is_empty() => {
                // A certificate from honest votes it gathered and its own: an aggregating
                // leader's power is to hand one to some validators and not to others.
                let index = u.choose_index(self.votes_seen.len())?;
                let (&(kind, view, height, block), votes) =
                    self.votes_seen.iter().nth(index).expect("index in range");
                let mut votes = votes.clone();
                let own = Self::sign(&vote_signing_bytes(&ChainTag::TEST, kind, view, height, &block));
                votes.insert(BYZANTINE, Signature(own));
                let certificate = QuorumCertificate {
                    kind,
                    view,
                    height,
                    block,
                    signers: votes.keys().copied().collect(),
                    signatures: votes.values().copied().collect(),
                };
                self.send(BYZANTINE, to, ConsensusMessage::Certificate(certificate));
            }
            _ => {
                // It entered `to`'s view (helps views change).
                let signature = Self::sign(&new_view_signing_bytes(&ChainTag::TEST, view, height, None));
                let new_view = NewView { view, height, high_qc: None, sender: BYZANTINE, signature };
                self.send(BYZANTINE, to, ConsensusMessage::NewView(new_view));
            }
        }
        Ok(())
    }

    fn step(&mut self, u: &mut Unstructured<'_>) -> arbitrary::Result<()> {
        let honest = |u: &mut Unstructured<'_>| u.int_in_range(0..=BYZANTINE - 1);
        match u.int_in_range(0..=31u8)? {
            // Deliver the oldest message (most steps: a fair network makes progress), or the
            // one the input picks (reordering).
            0..=15 if !self.flight.is_empty() => {
                let (from, to, message) = self.flight.remove(0);
                self.deliver(from, to, message);
            }
            16..=19 if !self.flight.is_empty() => {
                let (from, to, message) = self.flight.remove(u.choose_index(self.flight.len())?);
                self.deliver(from, to, message);
            }
            20 if !self.flight.is_empty() => {
                self.flight.remove(u.choose_index(self.flight.len())?);
            }
            21 if !self.flight.is_empty() => {
                let copy = self.flight[u.choose_index(self.flight.len())?].clone();
                self.send(copy.0, copy.1, copy.2);
            }
            0..=24 => {
                // Time passes; every validator sees it, or only one (a slow or descheduled
                // node sees it later), so views can drift apart.
                self.now_ns += u64::from(u.int_in_range(1..=8u16)?) * 250;
                if u.arbitrary()? {
                    for index in 0..BYZANTINE {
                        self.tick(index);
                    }
                } else {
                    let index = honest(u)?;
                    self.tick(index);
                }
            }
            // Crashes are rarer than restarts: a cluster that is mostly down decides nothing.
            25 if u.ratio(1, 4)? => {
                let index = honest(u)?;
                self.honest[index as usize].core = None;
            }
            26 if u.ratio(1, 4)? => {
                let index = honest(u)?;
                self.honest[index as usize].crash_after_persist = true;
            }
            27 | 28 => {
                let index = honest(u)?;
                if self.honest[index as usize].core.is_none() {
                    self.restarts += 1;
                    self.boot(index);
                }
            }
            _ => {
                let to = honest(u)?;
                self.byzantine(u, to)?;
            }
        }
        Ok(())
    }
}

/// What one schedule did.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct ScheduleStats {
    /// Steps run.
    pub steps: usize,
    /// Highest height finalized by anyone.
    pub height: u64,
    /// Restarts of crashed validators.
    pub restarts: u64,
    /// Whether votes went to the leader, which broadcast certificates.
    pub aggregate: bool,
}

/// Runs the schedule `data` describes; the first conflicting finalization, if any.
///
/// # Errors
/// The [`SafetyViolation`] found.
pub fn run_schedule(data: &[u8], amnesia: bool) -> Result<ScheduleStats, SafetyViolation> {
    let mut u = Unstructured::new(data);
    // Both vote protocols: all-to-all, and to the leader with certificates broadcast.
    let aggregate = u.arbitrary::<bool>().unwrap_or(false);
    let mut cluster = Cluster::with(amnesia, aggregate);
    let mut steps = 0;
    while steps < STEPS_MAX && !u.is_empty() {
        steps += 1;
        if cluster.step(&mut u).is_err() {
            break;
        }
        cluster.check()?;
    }
    let height = cluster.finalized.keys().next_back().copied().unwrap_or(0);
    Ok(ScheduleStats { steps, height, restarts: cluster.restarts, aggregate })
}

/// Fuzz harness: `data` is a fault schedule for a four-validator cluster with one Byzantine
/// validator (see the module doc). Panics on a conflicting finalization. Run by `cargo test`
/// on seeded inputs and by `fuzz/fuzz_targets/cluster_schedule.rs`.
pub fn fuzz_cluster_schedule(data: &[u8]) {
    if let Err(violation) = run_schedule(data, false) {
        panic!("safety violation: {}", violation.detail);
    }
}

/// The checker's self-test: the same harness with the planted bug (a restart that forgets
/// its safety state). A fuzzer must find a panic here; `docs/fuzzing.md` records how many
/// executions that took. Run by `fuzz/fuzz_targets/cluster_schedule_amnesia.rs`.
pub fn fuzz_cluster_schedule_amnesia(data: &[u8]) {
    if let Err(violation) = run_schedule(data, true) {
        panic!("safety violation: {}", violation.detail);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    impl Cluster {
        /// Delivers, oldest first, every message in flight that `keep` accepts (including
        /// those the deliveries produce) and drops the rest.
        fn run_where(&mut self, keep: impl Fn(u32, u32, &ConsensusMessage) -> bool) {
            while !self.flight.is_empty() {
                let (from, to, message) = self.flight.remove(0);
                if keep(from, to, &message) {
                    self.deliver(from, to, message);
                }
            }
        }

        fn proposed(&self, by: u32) -> Block {
            self.known.iter().rev().find(|block| block.header.proposer == by).cloned().expect("a proposal")
        }
    }

    fn is_commit(message: &ConsensusMessage) -> bool {
        matches!(message, ConsensusMessage::Vote(vote) if vote.kind == VoteKind::Commit)
    }

    /// The defect the saved safety state fixes, as a schedule: one Byzantine validator (3) and
    /// one crash-restart (0) in n = 4. Validator 0 leads view 0 and proposes X; validators 0,
    /// 1 and 3 prepare and commit it, but only validator 1 hears the commit votes, and
    /// finalizes X; validator 2 hears nothing. Validator 0 crashes and restarts. Forgetting
    /// that it signed in view 0, it proposes a second block Y there; 0, 2 and 3 prepare and
    /// commit Y, and 2 finalizes Y at the height where 1 finalized X. With its safety state it
    /// resumes in view 1 and signs nothing more in view 0.
    fn amnesia_schedule(amnesia: bool) -> Cluster {
        let mut cluster = Cluster::new(amnesia);
        let x = cluster.proposed(0);
        for to in [0, 1] {
            cluster.byzantine_vote(to, VoteKind::Prepare, &x);
        }
        cluster.run_where(|from, to, message| from != 2 && to != 2 && !(is_commit(message) && to != 1));
        cluster.byzantine_vote(1, VoteKind::Commit, &x);
        cluster.run_where(|_, to, _| to == 1);
        assert_eq!(cluster.finalized.get(&1).map(|(hash, _)| *hash), Some(x.header.hash()), "1 finalized X");
        assert_eq!(cluster.honest[0].host.chain.len(), 0, "0 did not finalize");

        cluster.honest[0].core = None;
        cluster.boot(0);
        let Some(y) = cluster.known.iter().find(|block| block.header.proposer == 0 && *block != &x).cloned()
        else {
            // No second proposal: nothing can conflict.
            cluster.run_where(|from, to, _| from != 1 && to != 1);
            return cluster;
        };
        assert_eq!(y.header.view, 0, "the restarted leader proposed again in view 0");
        for to in [0, 2] {
            cluster.byzantine_vote(to, VoteKind::Prepare, &y);
            cluster.byzantine_vote(to, VoteKind::Commit, &y);
        }
        cluster.run_where(|from, to, _| from != 1 && to != 1);
        cluster
    }

    #[test]
    fn seeded_schedules_find_the_planted_amnesia() {
        // The same seeds as the test above, which keep safety with the saved state restored.
        let mut seeds = tessera_components::fuzz::FuzzSeeds::new(0xc105);
        let found: Vec<usize> =
            (0..300).filter(|round| run_schedule(&seeds.bytes(64 + round % 900), true).is_err()).collect();
        assert!(!found.is_empty(), "no schedule caught a restart that forgets its safety state");
    }

    #[test]
    fn the_oracle_catches_a_restart_that_forgets_its_safety_state() {
        // Both oracles: the restarted leader's second proposal, and the fork it leads to.
        let forgetful = amnesia_schedule(true);
        let equivocation = forgetful.check().expect_err("amnesia must be caught");
        assert!(equivocation.detail.contains("signed a second proposal"), "{}", equivocation.detail);
        let fork = forgetful.forks().expect_err("the conflicting finalization must be caught");
        assert_eq!(fork.height, 1, "{}", fork.detail);
        amnesia_schedule(false)
            .check()
            .expect("with its safety state the restarted leader signs nothing twice");
    }

    #[test]
    fn seeded_schedules_keep_safety_and_make_progress() {
        let mut seeds = tessera_components::fuzz::FuzzSeeds::new(0xc105);
        let (mut height, mut restarts) = ([0; 2], 0);
        let mut first = Vec::new();
        for round in 0..300 {
            let input = seeds.bytes(64 + round % 900);
            if round < 4 {
                first.push(input.clone());
            }
            let stats =
                run_schedule(&input, false).unwrap_or_else(|v| panic!("seed round {round}: {}", v.detail));
            height[usize::from(stats.aggregate)] += stats.height;
            restarts += stats.restarts;
        }
        // Under either vote protocol.
        assert!(height.iter().all(|h| *h > 50), "random schedules finalized only {height:?} blocks");
        assert!(restarts > 50, "random schedules restarted only {restarts} validators");
        let refs: Vec<&[u8]> = first.iter().map(Vec::as_slice).collect();
        tessera_components::fuzz::fuzz_write_seeds("cluster_schedule", &refs);
        for input in tessera_components::fuzz::fuzz_corpus("cluster_schedule") {
            fuzz_cluster_schedule(&input);
        }
    }

    /// With votes aggregated, each vote goes to its view's leader alone and each phase's
    /// certificate comes from that leader once: 3 votes and 3 certificate copies per phase
    /// instead of 3 × 3 votes. Validator 3 is silent, so its views time out; the chain still
    /// grows.
    #[test]
    fn aggregated_votes_go_to_the_leader_and_certificates_come_from_it() {
        let mut cluster = Cluster::with(false, true);
        let (mut votes, mut certificates) = (0, 0);
        while cluster.finalized.len() < 6 && cluster.now_ns < 1_000 * config(true).view_timeout_ns {
            if cluster.flight.is_empty() {
                cluster.now_ns += 250;
                for index in 0..BYZANTINE {
                    cluster.tick(index);
                }
                continue;
            }
            let (from, to, message) = cluster.flight.remove(0);
            match &message {
                ConsensusMessage::Vote(vote) => {
                    assert_eq!(to, cluster.set.leader(vote.view), "vote for view {} sent to {to}", vote.view);
                    votes += 1;
                }
                ConsensusMessage::Certificate(qc) => {
                    assert_eq!(
                        from,
                        cluster.set.leader(qc.view),
                        "certificate of view {} from {from}",
                        qc.view
                    );
                    assert_eq!(qc.signers.len(), cluster.set.quorum());
                    certificates += 1;
                }
                _ => {}
            }
            cluster.deliver(from, to, message);
            cluster.check().expect("safety");
        }
        assert_eq!(
            cluster.finalized.len(),
            6,
            "finalized {:?} by {} ns",
            cluster.finalized.keys(),
            cluster.now_ns
        );
        assert!(votes > 0 && certificates > 0);
        // At most 2 phases × 2 voters and 2 phases × 3 recipients per block, with resends.
        assert!(
            votes <= 6 * 4 * 3 && certificates <= 6 * 6 * 3,
            "{votes} votes, {certificates} certificates"
        );
    }

    /// With one validator down (3, silent), validator 2 misses the commit votes of height 1
    /// and times out of view 0 into view 1, while 0 and 1 finalize in view 0 and start height 2
    /// in view 1. Its view change reaches them, and they sync it to height 2. It must start
    /// height 2 in view 1 with them: one view ahead it would vote for none of their proposals,
    /// and without validator 3 no quorum would form until timeouts lined the views up again.
    #[test]
    fn a_validator_that_timed_out_while_the_others_finalized_stays_in_their_view() {
        let mut cluster = Cluster::new(false);
        cluster.run_where(|from, to, message| {
            from != BYZANTINE && to != BYZANTINE && !(is_commit(message) && to == 2)
        });
        assert_eq!(cluster.honest[0].host.chain.len(), 1, "0 finalized height 1");
        assert_eq!(cluster.honest[2].host.chain.len(), 0, "2 did not");
        cluster.now_ns += config(false).view_timeout_ns;
        cluster.tick(2);
        // No more time passes: only messages can finish height 2.
        cluster.run_where(|from, to, _| from != BYZANTINE && to != BYZANTINE);
        for index in 0..BYZANTINE {
            let core = cluster.honest[index as usize].core.as_ref().expect("running");
            assert!(
                cluster.honest[index as usize].host.chain.len() >= 2,
                "validator {index} is at height {} in view {}: height 2 stalled",
                core.height(),
                core.view()
            );
        }
        cluster.check().expect("nothing signed twice");
    }

    /// Votes aggregated, validator 3 silent: validator 2 loses the commit certificate of
    /// height 1, which 0 and 1 finalize. The proposal and votes of height 2 reach it, and it
    /// holds them, still at height 1; nobody re-sends a certificate of a height they left.
    /// Holding messages of the next height for a resend interval, it asks their sender for
    /// the block it is missing, so height 2 finalizes within half a view timeout (it used to
    /// wait out the view and catch up only through its view change).
    #[test]
    fn a_validator_that_lost_a_commit_certificate_catches_up_before_its_view_times_out() {
        let mut cluster = Cluster::with(false, true);
        let lost = |message: &ConsensusMessage| match message {
            ConsensusMessage::Certificate(qc) => qc.kind == VoteKind::Commit,
            other => is_commit(other),
        };
        cluster.run_where(|from, to, message| {
            from != BYZANTINE && to != BYZANTINE && !(to == 2 && lost(message))
        });
        assert_eq!(cluster.honest[0].host.chain.len(), 1, "0 finalized height 1");
        assert_eq!(cluster.honest[2].host.chain.len(), 0, "2 did not");
        cluster.now_ns += config(true).view_timeout_ns / 2;
        for index in 0..BYZANTINE {
            cluster.tick(index);
        }
        cluster.run_where(|from, to, _| from != BYZANTINE && to != BYZANTINE);
        for index in 0..BYZANTINE {
            let node = &cluster.honest[index as usize];
            let core = node.core.as_ref().expect("running");
            assert!(
                node.host.chain.len() >= 2 && core.counters().timeouts == 0,
                "validator {index} at height {} in view {} after {} timeouts",
                core.height(),
                core.view(),
                core.counters().timeouts
            );
        }
        cluster.check().expect("nothing signed twice");
    }

    /// A validator restarts with its saved safety state but behind it (its chain lost blocks:
    /// here it has none). Until sync brings it to the saved height it signs nothing, and the
    /// saved state still binds it: what it persists meanwhile must not be its current,
    /// lower position, or a second crash before it catches up would forget where it had
    /// signed (seen in the simulator's swarm: an honest validator restarted twice while
    /// catching up, then proposed a second block at a height and view it had proposed in).
    #[test]
    fn a_validator_behind_its_saved_state_keeps_persisting_it() {
        let saved = SafetyState { height: 6, view: 8, lock: None };
        let mut first = Core::new(3, keys()[3].clone(), validator_set(), config(false), 1, Hash::ZERO)
            .with_safety_state(&saved);
        let mut host = ClusterHost::default();
        first.start(0, &mut host);
        first.tick(config(false).view_timeout_ns * 3, &mut host);
        let persisted = first.take_safety_update().expect("a restart persists its state");
        assert!(
            (persisted.height, persisted.view) >= (saved.height, saved.view),
            "persisted {persisted:?} behind the saved {saved:?}"
        );
        // The second restart, from what the first persisted, is bound as the first was.
        let second = Core::new(3, keys()[3].clone(), validator_set(), config(false), 1, Hash::ZERO)
            .with_safety_state(&persisted);
        assert_eq!(second.safety_state(), saved);
    }

    /// A leader locked on a block it never received can propose nothing in its view (its lock
    /// forbids any other block). It leaves the view at its next tick, carrying the lock in its
    /// NewView to the next leader, instead of making everyone wait out the timeout: in the
    /// simulator's swarm (seed 2429) such a leader, partitioned while the others voted, let
    /// its view time out after four failed views (300 ms × 2⁴) and the network stalled for
    /// the rest of the run. Here it lost the block in a restart, with its lock saved.
    #[test]
    fn a_leader_locked_on_a_block_it_does_not_hold_leaves_its_view_at_once() {
        let lock = QuorumCertificate {
            kind: VoteKind::Prepare,
            view: 2,
            height: 1,
            block: Hash([7; 32]),
            signers: vec![0, 1, 2],
            signatures: Vec::new(),
        };
        // Resumes in view 4, which validator 0 leads (4 mod 4).
        let saved = SafetyState { height: 1, view: 3, lock: Some(lock.clone()) };
        let mut leader = Core::new(0, keys()[0].clone(), validator_set(), config(false), 0, Hash::ZERO)
            .with_safety_state(&saved);
        let mut host = ClusterHost::default();
        leader.start(0, &mut host);
        assert_eq!(leader.view(), 4);
        assert_eq!(leader.next_deadline_ns(), 0, "a view it cannot use is left at once");
        leader.tick(1, &mut host);
        assert_eq!(leader.view(), 5, "still in view 4 one nanosecond after entering it");
        assert_eq!(leader.counters().timeouts, 1);
        let carried = leader.drain_outbox().into_iter().any(|(_, message)| {
            matches!(message, ConsensusMessage::NewView(new_view)
                if new_view.view == 5 && new_view.high_qc.as_ref() == Some(&lock))
        });
        assert!(carried, "its NewView for view 5 carries the lock to the next leader");
        assert_eq!(leader.safety_state().lock, Some(lock), "it keeps its lock");
        assert!(host.chain.is_empty());
    }

    /// A restart at the height of its saved safety state resumes in the view after the saved
    /// one, keeps a saved lock of that height, and drops one of another height.
    #[test]
    fn a_restart_at_the_saved_height_resumes_past_the_saved_view_with_its_lock() {
        let restart = |saved: &SafetyState| {
            Core::new(0, keys()[0].clone(), validator_set(), config(false), 0, Hash::ZERO)
                .with_safety_state(saved)
        };
        let lock = |height: u64| QuorumCertificate {
            kind: VoteKind::Prepare,
            view: 4,
            height,
            block: Hash([7; 32]),
            signers: vec![0, 1, 2],
            signatures: Vec::new(),
        };
        let resumed = restart(&SafetyState { height: 1, view: 5, lock: Some(lock(1)) });
        assert_eq!(resumed.view(), 6, "no view at or below the saved one is entered again");
        assert_eq!(resumed.safety_state(), SafetyState { height: 1, view: 6, lock: Some(lock(1)) });
        let other_height = restart(&SafetyState { height: 1, view: 5, lock: Some(lock(2)) });
        assert_eq!(other_height.safety_state().lock, None, "a lock of another height is not this one's");
    }
}
