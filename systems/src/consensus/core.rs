//! The consensus state machine, free of ECS and I/O: messages and clock readings in, messages
//! and finalized blocks out. `docs/consensus.md` describes the protocol; the short version:
//!
//! * views are global and numbered; the leader of view `v` is validator `v mod n`;
//! * per height, a block is *prepared* by 2f+1 prepare votes (a prepare certificate, which
//!   every validator that sees it *locks* on) and *final* once 2f+1 commit votes exist (the
//!   commit certificate); validators send commit votes only for a prepare certificate of the
//!   view they are in;
//! * a validator locked on a block votes prepare only for that block, unless the proposal is
//!   justified by a prepare certificate from a later view;
//! * a view that does not finalize within its timeout (doubled after each consecutive
//!   failure) is abandoned: the validator enters the next view and broadcasts a `NewView`
//!   carrying its lock; the next leader re-proposes the highest locked block it learns of.
//!
//! Signatures are checked before messages reach this module (the ECS layer batch-verifies
//! every signature of a tick's messages through the signature kernel); this module checks
//! everything else: who may send what, quorum arithmetic, heights, views and locks.

use std::collections::{BTreeMap, BTreeSet};
use std::sync::Arc;

use crate::sigverify::SharedVerdicts;

use ed25519_dalek::{Signer, SigningKey};
use tessera_components::consensus::{new_view_signing_bytes, proposal_signing_bytes};
use tessera_components::{
    Block, BlockHeader, CertifiedBlock, ChainTag, ConsensusMessage, Hash, NewView, Proposal,
    QuorumCertificate, SafetyState, Signature, Txn, Vote, VoteKind, vote_signing_bytes,
};

/// Proposals and votes held for the next height, at most.
const NEXT_HEIGHT_MAX: usize = 1024;

/// Bytes of messages held for the next height, at most (as much as the blocks held for the
/// height being decided): a count alone let one leader hold a thousand full-size blocks.
const NEXT_HEIGHT_BYTES_MAX: usize = BLOCKS_HELD_BYTES_MAX;

/// What a message held for the next height is counted as: its own size, plus the block and
/// the signatures it carries.
fn held_bytes(message: &ConsensusMessage) -> usize {
    let certificate = |qc: &QuorumCertificate| qc.signers.len() * (size_of::<u32>() + size_of::<Signature>());
    size_of::<ConsensusMessage>()
        + match message {
            ConsensusMessage::Proposal(proposal) => {
                block_wire_bytes(&proposal.block) + proposal.justify.as_ref().map_or(0, certificate)
            }
            ConsensusMessage::Certificate(qc)
            | ConsensusMessage::NewView(NewView { high_qc: Some(qc), .. }) => certificate(qc),
            _ => 0,
        }
}

/// The validator set: public keys by validator index.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct ValidatorSet {
    keys: Vec<[u8; 32]>,
    /// The chain every signature of the set's validators is made for.
    chain: ChainTag,
}

impl ValidatorSet {
    /// A set of at least one validator.
    ///
    /// # Panics
    /// If `keys` is empty or larger than u32 (a genesis bug, checked when genesis is loaded).
    pub fn new(keys: Vec<[u8; 32]>) -> ValidatorSet {
        assert!(!keys.is_empty(), "a validator set has at least one validator");
        assert!(u32::try_from(keys.len()).is_ok(), "validator indexes fit u32");
        ValidatorSet { keys, chain: ChainTag::TEST }
    }

    /// The set, signing and checking for `chain` ([`ValidatorSet::new`] gives
    /// [`ChainTag::TEST`], the chain of tests and simulations). A node gives its chain's tag.
    #[must_use]
    pub fn on_chain(self, chain: ChainTag) -> ValidatorSet {
        ValidatorSet { chain, ..self }
    }

    /// The chain the set's signatures are made for.
    pub fn chain(&self) -> &ChainTag {
        &self.chain
    }

    /// Number of validators, n.
    pub fn len(&self) -> usize {
        self.keys.len()
    }

    /// Never true: [`ValidatorSet::new`] refuses an empty set.
    pub fn is_empty(&self) -> bool {
        false
    }

    /// Faults tolerated, f = ⌊(n − 1) / 3⌋.
    pub fn faults_tolerated(&self) -> usize {
        (self.keys.len() - 1) / 3
    }

    /// Votes in a quorum: n − f (which is 2f + 1 when n = 3f + 1). Any two quorums share at
    /// least f + 1 validators, so at least one honest one.
    pub fn quorum(&self) -> usize {
        self.keys.len() - self.faults_tolerated()
    }

    /// What a certificate must be before its signatures are worth checking: one signature per
    /// signer, signers distinct, sorted and in this set, and a quorum of them.
    pub fn certificate_shaped(&self, qc: &QuorumCertificate) -> bool {
        qc.signers.len() == qc.signatures.len()
            && qc.signers.len() >= self.quorum()
            && qc.signers.windows(2).all(|pair| pair[0] < pair[1])
            && qc.signers.iter().all(|signer| self.key(*signer).is_some())
    }

    /// Leader of `view`: round-robin, O(1).
    pub fn leader(&self, view: u64) -> u32 {
        (view % self.keys.len() as u64) as u32
    }

    /// Public key of validator `index`.
    pub fn key(&self, index: u32) -> Option<&[u8; 32]> {
        self.keys.get(index as usize)
    }

    /// All keys in index order.
    pub fn keys(&self) -> &[[u8; 32]] {
        &self.keys
    }
}

/// Timing and limits of the protocol.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct ConsensusConfig {
    /// Timeout of a view after a success, nanoseconds; doubled per consecutive failed view.
    pub view_timeout_ns: u64,
    /// Upper bound of the backed-off timeout.
    pub view_timeout_max_ns: u64,
    /// Finalized blocks per sync response.
    pub sync_batch_max: usize,
    /// Sign and check consensus messages with the deterministic stand-in
    /// ([`crate::kernels::sigverify::stand_in_sign`]) instead of Ed25519: for simulations at
    /// scale only. Never set on a real node.
    pub stand_in_signatures: bool,
    /// Bytes of transactions per sync response (at least one block is always sent), so a
    /// response stays well inside the peer frame limit.
    pub sync_bytes_max: usize,
    /// Views ahead of the current one whose messages are kept for later.
    pub view_window: u64,
    /// Equivocation evidence records kept.
    pub evidence_max: usize,
    /// Least time between a finalization and the next proposal, so an idle chain does not
    /// spin out empty blocks; 0 proposes at once.
    pub block_interval_ns: u64,
    /// Validator sets at least this large aggregate votes: each vote goes to the view's leader
    /// alone, which broadcasts the certificate a quorum of them forms
    /// ([`ConsensusMessage::Certificate`]), so a phase costs O(n) messages instead of O(n²).
    /// Smaller sets send every vote to everyone (one hop less per phase). The default,
    /// `usize::MAX`, never aggregates: all-to-all measured better in latency and throughput
    /// up to 100 validators (`docs/consensus.md`).
    pub aggregate_votes_from: usize,
    /// Validator sets at least this large forward the client transactions a validator admits
    /// only to the leaders of its current view and the next [`FORWARD_VIEWS`] − 1 (the ones
    /// that propose next), not to every validator: each transaction then costs O(1) ingests
    /// and forwards instead of O(n) ([`Core::forward_destination`]). The default,
    /// `usize::MAX`, forwards to everyone, so any validator can propose any transaction.
    pub forward_to_leaders_from: usize,
}

/// Views whose leaders receive forwarded client transactions in a large validator set
/// ([`ConsensusConfig::forward_to_leaders_from`]): the current view's and the next two, so a
/// transaction reaches a proposer even when a view fails.
pub const FORWARD_VIEWS: u64 = 3;

impl Default for ConsensusConfig {
    fn default() -> Self {
        ConsensusConfig {
            view_timeout_ns: 1_000_000_000,
            view_timeout_max_ns: 30_000_000_000,
            sync_batch_max: 64,
            sync_bytes_max: 2 << 20,
            stand_in_signatures: false,
            view_window: 64,
            evidence_max: 1024,
            block_interval_ns: 0,
            aggregate_votes_from: usize::MAX,
            forward_to_leaders_from: usize::MAX,
        }
    }
}

/// Why a proposed block was refused.
#[derive(Clone, Copy, Debug, PartialEq, Eq, thiserror::Error)]
pub enum BlockFault {
    /// The header's state root differs from the one execution computes.
    #[error("wrong_state_root")]
    WrongStateRoot,
    /// A transaction fails the static checks or its signature.
    #[error("invalid_transaction")]
    InvalidTransaction,
    /// More transactions or bytes than the block limits.
    #[error("over_limit")]
    OverLimit,
    /// `txn_count` or `txn_root` does not match the body.
    #[error("bad_body")]
    BadBody,
}

/// What the state machine needs from the node around it.
pub trait Host {
    /// Builds this node's block for `height` on `parent` in `view`, with its post-state root.
    fn build_block(&mut self, height: u64, view: u64, parent: Hash, proposer: u32) -> Block;
    /// Checks a block proposed by someone else: limits, every transaction, and the state root
    /// (by executing it speculatively).
    ///
    /// # Errors
    /// The [`BlockFault`].
    fn validate_block(&mut self, block: &Block) -> Result<(), BlockFault>;
    /// Applies a finalized block (validated earlier by this node).
    fn commit_block(&mut self, block: &Block, certificate: &QuorumCertificate);
    /// A finalized block and its certificate, for peers that sync.
    fn finalized_block(&self, height: u64) -> Option<CertifiedBlock>;
}

/// Where an outbound message goes.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Destination {
    /// Every other validator.
    All,
    /// One validator.
    One(u32),
    /// Several validators, in index order: one message (one encoding, one shared frame) for
    /// all of them, where one per recipient would copy a block each time.
    Some(std::sync::Arc<[u32]>),
}

impl Destination {
    /// The validators a message from `me` goes to, in index order, among `validators`
    /// numbered from 0: everyone but `me` for [`Destination::All`].
    pub fn recipients(&self, me: u32, validators: u32) -> impl Iterator<Item = u32> + '_ {
        let (start, end, listed): (u64, u64, &[u32]) = match self {
            Destination::All => (0, u64::from(validators), &[]),
            Destination::One(to) => (u64::from(*to), u64::from(*to) + 1, &[]),
            Destination::Some(list) => (0, 0, list),
        };
        let all = matches!(self, Destination::All);
        // A list names each validator once, never the sender, none out of range: the core
        // builds it sorted from its own validator set (the proposal resend).
        debug_assert!(
            listed.windows(2).all(|pair| pair[0] < pair[1])
                && listed.iter().all(|to| *to != me && *to < validators),
            "a destination list {listed:?} from validator {me} of {validators}"
        );
        (start..end)
            .map(|index| u32::try_from(index).expect("below a u32 bound"))
            .filter(move |to| !all || *to != me)
            .chain(listed.iter().copied())
    }
}

/// Proof that a validator signed two conflicting messages for one view.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Evidence {
    /// Two proposals for one view.
    Proposals {
        /// The proposer.
        proposer: u32,
        /// The view.
        view: u64,
        /// The two block hashes.
        blocks: [Hash; 2],
    },
    /// Two votes of one kind for one view.
    Votes {
        /// The voter.
        voter: u32,
        /// Vote phase.
        kind: VoteKind,
        /// The view.
        view: u64,
        /// The two block hashes.
        blocks: [Hash; 2],
    },
}

/// Blocks a validator holds for the height being decided, at most.
pub const BLOCKS_HELD_MAX: usize = 64;

/// Most sync responses a validator sends, to all validators together, per
/// [`Core::sync_serve_interval_ns`]: two batches an eighth of a view timeout, 32 MiB/s at the
/// defaults, four honest laggards asking at their full pace.
pub const SYNC_ANSWERS_PER_INTERVAL: usize = 2;
/// Bytes of blocks a validator holds for the height being decided, at most: sixteen blocks of
/// the default 4 MiB limit.
pub const BLOCKS_HELD_BYTES_MAX: usize = 64 << 20;

/// A block's size as it travels: its header and its transactions.
fn block_wire_bytes(block: &Block) -> usize {
    size_of::<BlockHeader>() + block.txns.len() * size_of::<Txn>()
}

/// Counters of the protocol; the node exposes them as metrics.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct ConsensusCounters {
    /// Proposals refused for a wrong state root.
    pub rejected_state_root: u64,
    /// Proposals refused for an invalid transaction.
    pub rejected_invalid_txn: u64,
    /// Proposals refused for exceeding limits.
    pub rejected_over_limit: u64,
    /// Proposals refused for a body that does not match its header.
    pub rejected_bad_body: u64,
    /// Messages from a validator not allowed to send them (wrong leader, unknown index).
    pub rejected_sender: u64,
    /// Certificates that are malformed or short of a quorum.
    pub rejected_certificate: u64,
    /// Equivocations detected (evidence kept up to a bound).
    pub equivocations: u64,
    /// Views abandoned on timeout, or at once by a leader that cannot propose in them (locked on
    /// a block it does not hold).
    pub timeouts: u64,
    /// Blocks finalized.
    pub finalized: u64,
    /// Blocks finalized through sync.
    pub synced: u64,
    /// Proposals dropped unchecked because their view is one this node has left.
    pub stale_proposals: u64,
    /// Messages dropped before their signatures were checked, because [`Core::on_message`]
    /// would ignore them (old heights, views outside the window), and blocks cut from sync
    /// responses before verification (not the next heights in order, or past the batch bound).
    pub dropped_unverified: u64,
    /// Sync requests (and `NewView`s from behind) left unanswered because the same validator
    /// was answered less than [`Core::sync_serve_interval_ns`] ago.
    pub sync_refused: u64,
    /// Messages dropped before verification because their sender's messages in the same batch
    /// already carried [`Core::signatures_per_sender`] signatures (also in
    /// `dropped_unverified`).
    pub over_signature_budget: u64,
}

impl ConsensusCounters {
    /// Counts a refused block under its fault.
    pub fn count_fault(&mut self, fault: BlockFault) {
        match fault {
            BlockFault::WrongStateRoot => self.rejected_state_root += 1,
            BlockFault::InvalidTransaction => self.rejected_invalid_txn += 1,
            BlockFault::OverLimit => self.rejected_over_limit += 1,
            BlockFault::BadBody => self.rejected_bad_body += 1,
        }
    }
}

/// Where a validator vouches for the signatures it makes ([`Core::vouch_in`]). Not
/// protocol state: any two compare equal, so the oracles' comparisons do not see it.
#[derive(Clone, Debug, Default)]
struct Vouching(SharedVerdicts);

impl PartialEq for Vouching {
    fn eq(&self, _: &Vouching) -> bool {
        true
    }
}

/// The per-validator protocol state. Clone and compare are for the fuzz oracles, which run a
/// message or a tick on a copy and compare ([`Core::same_state_as`]).
#[derive(Clone, Debug, PartialEq)]
pub struct Core {
    me: u32,
    /// A full node: follows finalized blocks through sync and never votes, proposes or times
    /// out.
    observer: bool,
    key: SigningKey,
    set: ValidatorSet,
    config: ConsensusConfig,
    height: u64,
    last_hash: Hash,
    view: u64,
    view_started_ns: u64,
    now_ns: u64,
    failed_views: u32,
    lock: Option<QuorumCertificate>,
    proposed: bool,
    /// This node leads the view but is locked on a block it never received (it was cut off
    /// while the others voted, or lost the block in a restart): nothing it may propose exists,
    /// so it leaves the view at its next tick instead of making everyone wait out the timeout.
    abandon_view: bool,
    voted_prepare: bool,
    voted_commit: bool,
    /// Blocks seen at the current height, by hash; only blocks this node built or validated
    /// are kept, at most [`BLOCKS_HELD_MAX`] of them and [`BLOCKS_HELD_BYTES_MAX`] bytes
    /// ([`Core::hold_block`]).
    blocks: BTreeMap<Hash, Block>,
    /// The latest view each block in `blocks` was proposed in (a re-proposal keeps its
    /// header's old view): what [`Core::hold_block_for`] ranks blocks by.
    block_views: BTreeMap<Hash, u64>,
    /// Wire bytes of the blocks in `blocks`.
    blocks_bytes: usize,
    votes: BTreeMap<(VoteKind, u64, Hash), BTreeMap<u32, Signature>>,
    first_vote: BTreeMap<(VoteKind, u64, u32), Hash>,
    first_proposal: BTreeMap<u64, Hash>,
    /// Blocks refused at this height for what the header names (a transaction or the state
    /// root, found once the body matched the header's root: that verdict depends only on the
    /// header and this height's state), so a copy is not validated again; at most one per
    /// tracked view ([`Core::first_proposal`]), cleared with the height.
    refused_blocks: BTreeSet<Hash>,
    new_views: BTreeMap<u64, BTreeMap<u32, Option<QuorumCertificate>>>,
    /// Proposals and votes for the next height, replayed once this height is finalized.
    next_height: Vec<(u32, ConsensusMessage)>,
    /// [`held_bytes`] of `next_height`, summed.
    next_height_bytes: usize,
    /// When the first of `next_height` arrived: held for a resend interval, they mean this
    /// validator missed its height's end, and it asks for it ([`Core::tick`]).
    next_height_since_ns: u64,
    /// Proposals for views not yet entered, replayed on entry.
    future: BTreeMap<u64, Vec<(u32, Proposal)>>,
    last_sync_request_ns: Option<u64>,
    /// The validator last asked for blocks, and whether it has since sent one this node took.
    last_sync_peer: Option<(u32, bool)>,
    /// When each validator (by index) was last sent a sync response, for the per-peer limit
    /// of [`Core::sync_serve_interval_ns`].
    sync_served_ns: Vec<Option<u64>>,
    /// When the sync responses of the last interval went, to any validator: at most
    /// [`SYNC_ANSWERS_PER_INTERVAL`] ([`Core::on_sync_request`]).
    sync_answers_ns: std::collections::VecDeque<u64>,
    /// What this node sent in the current view, re-sent every quarter timeout: the network may
    /// lose messages (the simulator does on purpose), and a quorum needs nearly all of them.
    sent_this_view: Vec<(Destination, ConsensusMessage)>,
    last_resend_ns: u64,
    propose_not_before_ns: u64,
    evidence: Vec<Evidence>,
    counters: ConsensusCounters,
    outbox: Vec<(Destination, ConsensusMessage)>,
    finalized: Vec<CertifiedBlock>,
    /// The view or the lock changed since the shell last took the [`SafetyState`]: it must be
    /// persisted before this tick's outbox leaves.
    safety_changed: bool,
    /// A saved safety state for a height this validator has not reached yet (it restarted with
    /// fewer blocks than it had): applied on reaching it.
    resume: Option<SafetyState>,
    /// Where it vouches for its own signatures (the simulator's memo; none in a node).
    vouching: Vouching,
}

impl Core {
    /// A validator `me` with `key`, starting after the block `last_hash` at `last_height`.
    ///
    /// # Panics
    /// If `me` is not in the set or `key` is not its key (a configuration bug, checked when the
    /// node loads its key file).
    pub fn new(
        me: u32,
        key: SigningKey,
        set: ValidatorSet,
        config: ConsensusConfig,
        last_height: u64,
        last_hash: Hash,
    ) -> Core {
        assert_eq!(set.key(me), Some(&key.verifying_key().to_bytes()), "key is validator {me}'s");
        let mut core = Core::new_unchecked(me, key, set, config);
        core.height = last_height + 1;
        core.last_hash = last_hash;
        core.view = last_height;
        core
    }

    fn new_unchecked(me: u32, key: SigningKey, set: ValidatorSet, config: ConsensusConfig) -> Core {
        Core {
            me,
            observer: false,
            key,
            set,
            config,
            height: 1,
            last_hash: Hash::ZERO,
            view: 0,
            view_started_ns: 0,
            now_ns: 0,
            failed_views: 0,
            lock: None,
            proposed: false,
            abandon_view: false,
            voted_prepare: false,
            voted_commit: false,
            blocks: BTreeMap::new(),
            block_views: BTreeMap::new(),
            blocks_bytes: 0,
            votes: BTreeMap::new(),
            first_vote: BTreeMap::new(),
            first_proposal: BTreeMap::new(),
            refused_blocks: BTreeSet::new(),
            new_views: BTreeMap::new(),
            future: BTreeMap::new(),
            next_height: Vec::new(),
            next_height_bytes: 0,
            next_height_since_ns: 0,
            last_sync_request_ns: None,
            last_sync_peer: None,
            sync_served_ns: Vec::new(),
            sync_answers_ns: std::collections::VecDeque::new(),
            sent_this_view: Vec::new(),
            last_resend_ns: 0,
            propose_not_before_ns: 0,
            evidence: Vec::new(),
            counters: ConsensusCounters::default(),
            outbox: Vec::new(),
            finalized: Vec::new(),
            safety_changed: false,
            resume: None,
            vouching: Vouching::default(),
        }
    }

    /// Vouches in `memo` for every signature this validator makes
    /// ([`SharedVerdicts::vouch`]): the simulator's validators share one memo, so the peers
    /// that receive a message find its signature there instead of verifying it, and the
    /// simulator audits each one on another core. A node has no memo to vouch in.
    pub fn vouch_in(&mut self, memo: SharedVerdicts) {
        self.vouching = Vouching(memo);
    }

    /// Resumes from the safety state this validator persisted before it stopped. At the saved
    /// height it enters no view it may have signed in (so at least `saved.view + 1`) and keeps
    /// its lock. A validator that resumes below the saved height (its blocks were lost, and it
    /// catches up by sync) applies both when it reaches that height; one that resumes above it
    /// is bound by nothing (every signature of the saved height is for a finalized height).
    /// Call before [`Core::start`].
    pub fn with_safety_state(mut self, saved: &SafetyState) -> Core {
        debug_assert!(!self.observer, "an observer signs nothing and keeps no safety state");
        if saved.height >= self.height {
            self.resume = Some(saved.clone());
            self.apply_resume();
        }
        self.safety_changed = true;
        self
    }

    /// Applies the saved safety state once this validator is at its height.
    fn apply_resume(&mut self) {
        let Some(saved) = self.resume.as_ref().filter(|saved| saved.height <= self.height) else { return };
        if saved.height == self.height {
            // It arrives at the saved height either as it is made (`with_safety_state`) or by
            // finalizing the height below (`finalize` clears the lock, then enters a view):
            // it holds no lock of this height to weigh against the saved one.
            debug_assert!(self.lock.is_none(), "a lock before the saved state is applied");
            self.view = self.view.max(saved.view.saturating_add(1));
            self.lock = saved.lock.clone().filter(|lock| lock.height == self.height);
        }
        self.resume = None;
    }

    /// What this validator has bound itself to now (see [`SafetyState`]).
    pub fn safety_state(&self) -> SafetyState {
        // Below a saved state's height, that state still binds this validator (it signs
        // nothing until sync brings it there): persisting its current, lower position instead
        // would let a second crash before it catches up forget where it had signed.
        if let Some(saved) = &self.resume {
            return saved.clone();
        }
        SafetyState { height: self.height, view: self.view, lock: self.lock.clone() }
    }

    /// The safety state, if it changed since the last call. The shell persists it (durably)
    /// before it sends anything this core produced since: every signature in the outbox was
    /// made in [`SafetyState::view`] or earlier, under [`SafetyState::lock`].
    pub fn take_safety_update(&mut self) -> Option<SafetyState> {
        if !std::mem::take(&mut self.safety_changed) || self.observer {
            return None;
        }
        Some(self.safety_state())
    }

    /// Whether `self` and `other` hold the same protocol state: everything but the counters
    /// and the clock (outbox, finalized blocks and the safety state included). The oracles of
    /// the cheap checks and of [`Core::next_deadline_ns`] compare a core against a copy given
    /// the unfiltered message or no tick.
    #[cfg(any(test, fuzzing, feature = "fuzzing"))]
    pub fn same_state_as(&self, other: &Core) -> bool {
        let mut aligned = self.clone();
        aligned.counters = other.counters.clone();
        aligned.now_ns = other.now_ns;
        aligned == *other
    }

    /// The shell could not persist what [`Core::take_safety_update`] returned, and dropped the
    /// outbox. The state is returned again at the next call, so the messages signed under it,
    /// which stay in `sent_this_view` and are re-sent every quarter timeout, go out only once it
    /// is durable: otherwise a resend after a failed save followed by a crash would be amnesia.
    pub fn safety_not_saved(&mut self) {
        self.safety_changed = !self.observer;
    }

    /// A full node's state machine: it checks and applies the finalized blocks that sync
    /// responses carry (certificate, parent link, validation by execution) and does nothing
    /// else: no votes, proposals, view changes or sync answers.
    pub fn observer(set: ValidatorSet, config: ConsensusConfig, last_height: u64, last_hash: Hash) -> Core {
        // An index no validator has, and a key that never signs anything.
        let me = u32::MAX;
        let mut core = Core::new_unchecked(me, SigningKey::from_bytes(&[0; 32]), set, config);
        core.observer = true;
        core.height = last_height + 1;
        core.last_hash = last_hash;
        core.view = last_height;
        core
    }

    /// Whether this is a full node's observer.
    pub fn is_observer(&self) -> bool {
        self.observer
    }

    /// The height being decided (last finalized + 1).
    pub fn height(&self) -> u64 {
        self.height
    }

    /// True when this validator forwards client transactions to the next leaders only
    /// ([`ConsensusConfig::forward_to_leaders_from`]), and so sends again those they did not
    /// include ([`super::forward::Forwarded`]).
    pub fn forwards_to_leaders(&self) -> bool {
        // A full node's view follows the chain only as far as sync brings it: it forwards to
        // every validator, as before.
        !self.observer && self.set.len() >= self.config.forward_to_leaders_from
    }

    /// Where this validator forwards the client transactions it admitted:
    /// [`Destination::All`] (always on a full node), or in a set of at least
    /// [`ConsensusConfig::forward_to_leaders_from`] the leaders of its current view and the
    /// next [`FORWARD_VIEWS`] − 1, each once and never itself (nobody, when it leads them all).
    pub fn forward_destination(&self) -> Destination {
        if !self.forwards_to_leaders() {
            return Destination::All;
        }
        let mut leaders: Vec<u32> = (0..FORWARD_VIEWS)
            .map(|ahead| self.set.leader(self.view.saturating_add(ahead)))
            .filter(|leader| *leader != self.me)
            .collect();
        leaders.sort_unstable();
        leaders.dedup();
        Destination::Some(leaders.into())
    }

    /// The current view.
    pub fn view(&self) -> u64 {
        self.view
    }

    /// This validator's index.
    pub fn me(&self) -> u32 {
        self.me
    }

    /// The validator set.
    pub fn validators(&self) -> &ValidatorSet {
        &self.set
    }

    /// Counters so far.
    pub fn counters(&self) -> &ConsensusCounters {
        &self.counters
    }

    /// Whether the block `hash` is held for the height being decided.
    pub fn holds_block(&self, hash: &Hash) -> bool {
        self.blocks.contains_key(hash)
    }

    /// Equivocation evidence kept so far (at most `evidence_max` records, oldest first).
    pub fn evidence(&self) -> &[Evidence] {
        &self.evidence
    }

    /// Takes the messages to send.
    pub fn drain_outbox(&mut self) -> Vec<(Destination, ConsensusMessage)> {
        std::mem::take(&mut self.outbox)
    }

    /// Takes the blocks finalized since the last call, in height order.
    pub fn drain_finalized(&mut self) -> Vec<CertifiedBlock> {
        std::mem::take(&mut self.finalized)
    }

    /// The earliest virtual time at which [`Core::tick`] could act without a message arriving:
    /// the view timeout, the next re-broadcast, or (for the leader) the end of the block
    /// interval. An event-driven host sleeps until then; ticking earlier does nothing.
    pub fn next_deadline_ns(&self) -> u64 {
        if self.observer {
            return u64::MAX;
        }
        let timeout = if self.may_time_out() {
            self.view_started_ns.saturating_add(self.timeout_ns())
        } else {
            u64::MAX
        };
        let resend = self.last_resend_ns.saturating_add((self.timeout_ns() / 4).max(1));
        let mut deadline = timeout.min(resend);
        if self.abandon_view {
            return self.now_ns;
        }
        // A leader at a fresh height proposes from `tick` once the block interval has passed.
        // One that leads after a failed view waits for a quorum of view changes (messages) or
        // proposes at its next resend, and one below its saved height may not propose at all:
        // neither has anything due before the deadlines above. (Counting them due at once had
        // such a leader woken at every tick of the view, doing nothing.)
        if self.set.leader(self.view) == self.me
            && !self.proposed
            && self.failed_views == 0
            && self.may_sign_blocks()
        {
            deadline = deadline.min(self.propose_not_before_ns.max(self.now_ns));
        }
        deadline
    }

    fn sign(&self, message: &[u8]) -> [u8; 64] {
        let public_key = self.key.verifying_key().to_bytes();
        if self.config.stand_in_signatures {
            // Not vouched for: with stand-ins, vouching measured slower (lan-4 165-193x against
            // 193-201x, three runs each): the audit's thread and the copies cost more than the
            // two hashes a check saves.
            return crate::kernels::sigverify::stand_in_sign(&public_key, message);
        }
        let signature = self.key.sign(message).to_bytes();
        self.vouching.0.vouch(&public_key, message, &signature);
        signature
    }

    fn timeout_ns(&self) -> u64 {
        let factor = 1u64 << self.failed_views.min(16);
        self.config.view_timeout_ns.saturating_mul(factor).min(self.config.view_timeout_max_ns)
    }

    /// Starts the protocol at `now_ns`: enters the first view and, if leader, proposes.
    pub fn start(&mut self, now_ns: u64, host: &mut impl Host) {
        self.now_ns = now_ns;
        if self.observer {
            return;
        }
        let view = self.view;
        self.enter_view(view, true, host);
    }

    /// Advances the clock; abandons the view on timeout.
    pub fn tick(&mut self, now_ns: u64, host: &mut impl Host) {
        self.now_ns = now_ns.max(self.now_ns);
        if self.observer {
            return;
        }
        // A leader holding back for the block interval at a fresh height (`propose` does
        // nothing for anyone else, or twice).
        if self.failed_views == 0 {
            self.propose(host);
        }
        let quarter = (self.timeout_ns() / 4).max(1);
        if self.now_ns.saturating_sub(self.last_resend_ns) >= quarter {
            self.last_resend_ns = self.now_ns;
            for (destination, message) in &self.sent_this_view {
                match message {
                    // A block is the largest message, and under aggregation the leader's uplink
                    // also carries the certificates everyone waits for: the proposal goes again
                    // only to the validators whose prepare vote for it has not arrived, as one
                    // message for all of them (a copy of the block each was n − 1 copies and
                    // encodings of the largest message, every quarter timeout).
                    ConsensusMessage::Proposal(proposal) => {
                        let voted =
                            self.votes.get(&(VoteKind::Prepare, proposal.view, proposal.block.header.hash()));
                        let waiting: std::sync::Arc<[u32]> = (0..self.set.len() as u32)
                            .filter(|validator| {
                                *validator != self.me
                                    && voted.is_none_or(|voters| !voters.contains_key(validator))
                            })
                            .collect();
                        if !waiting.is_empty() {
                            self.outbox.push((Destination::Some(waiting), message.clone()));
                        }
                    }
                    _ => self.outbox.push((destination.clone(), message.clone())),
                }
            }
            // A leader still waiting for a quorum of view changes proposes with what it has.
            self.propose(host);
            // Messages of the next height held this long mean the others finished this
            // height and this validator missed how (a lost commit certificate: nobody re-sends
            // one for a height they left). It asks a sender of those messages, a different one
            // at each resend (by sender, not by message: a Byzantine sender that fills the
            // buffer gets one turn in as many as there are senders), so that a sender that
            // never answers cannot starve it; the view timeout stays the fallback. While these
            // turns run, no other message asks for sync (`request_sync`): they share one rate
            // limit, and a Byzantine validator sending far-ahead votes every millisecond took
            // every turn, always for itself.
            if self.taking_sync_turns() {
                let mut senders: Vec<u32> = self.next_height.iter().map(|(from, _)| *from).collect();
                senders.sort_unstable();
                senders.dedup();
                let turn = (self.now_ns / quarter) as usize % senders.len();
                self.send_sync_request(senders[turn]);
            }
        }
        let timed_out = self.now_ns.saturating_sub(self.view_started_ns) >= self.timeout_ns();
        if self.abandon_view || (timed_out && self.may_time_out()) {
            self.counters.timeouts += 1;
            self.failed_views = self.failed_views.saturating_add(1);
            let next = self.view.saturating_add(1);
            self.enter_view(next, false, host);
        }
    }

    fn enter_view(&mut self, view: u64, fresh_height: bool, host: &mut impl Host) {
        debug_assert!(view >= self.view);
        self.view = view;
        // A validator that restarted below its saved height reaches it here (through sync).
        self.apply_resume();
        let view = self.view;
        self.safety_changed = true;
        self.view_started_ns = self.now_ns;
        self.last_resend_ns = self.now_ns;
        self.sent_this_view.clear();
        self.proposed = false;
        self.abandon_view = false;
        self.voted_prepare = false;
        self.voted_commit = false;
        let lower = view.saturating_sub(2);
        self.first_proposal = self.first_proposal.split_off(&lower);
        self.new_views = self.new_views.split_off(&lower);
        self.votes.retain(|(_, v, _), _| *v >= lower);
        self.first_vote.retain(|(_, v, _), _| *v >= lower);
        if !fresh_height {
            let high_qc = self.lock.clone();
            let signature =
                self.sign(&new_view_signing_bytes(self.set.chain(), view, self.height, high_qc.as_ref()));
            let message = NewView { view, height: self.height, high_qc, sender: self.me, signature };
            self.broadcast(ConsensusMessage::NewView(message.clone()));
            self.on_new_view(message, host);
        }
        // A set of one finalizes inside its own proposal (its votes are a quorum), so proposing
        // the next block from here would recurse once per block without end, with a block
        // interval of 0. It proposes from its next tick instead.
        if fresh_height && self.set.leader(view) == self.me && self.set.len() > 1 {
            self.propose(host);
        }
        // (It proposes only as this view's leader, and once.)
        self.maybe_propose_after_view_change(host);
        if let Some(pending) = self.future.remove(&view) {
            for (from, proposal) in pending {
                self.on_proposal(from, proposal, host);
            }
        }
        self.future = self.future.split_off(&view);
    }

    /// Whether this validator may time out of its view. At a fresh height it may. In a view it
    /// reached by a view change it waits, re-sending its `NewView`, until n − f validators
    /// (itself included) have announced this view or a later one: a validator that ran ahead
    /// alone would otherwise keep its lead for good, every view's timeout being the same
    /// capped length for all, and with one validator unable to vote (one that lost its blocks
    /// signs nothing until sync brings it back) no view ever held the quorum. The validators
    /// behind reach it by timeouts, or join it through the f + 1 rule of [`Core::on_new_view`];
    /// the view's timeout then runs from the moment the quorum is there.
    fn may_time_out(&self) -> bool {
        if self.failed_views == 0 {
            return true;
        }
        let mut announced = BTreeSet::new();
        for senders in self.new_views.range(self.view..).map(|(_, senders)| senders) {
            announced.extend(senders.keys().copied());
        }
        announced.len() >= self.set.quorum()
    }

    fn maybe_propose_after_view_change(&mut self, host: &mut impl Host) {
        let count = self.new_views.get(&self.view).map_or(0, BTreeMap::len);
        if count >= self.set.quorum() {
            self.propose(host);
        }
    }

    /// False while this validator is below the height of the safety state it resumed from:
    /// every height below it was finalized before it stopped, and what it signed there was lost
    /// with its blocks, so it signs no proposal or vote until sync brings it to that height.
    fn may_sign_blocks(&self) -> bool {
        self.resume.is_none()
    }

    fn propose(&mut self, host: &mut impl Host) {
        if !self.may_sign_blocks() {
            return;
        }
        if self.proposed || self.set.leader(self.view) != self.me || self.now_ns < self.propose_not_before_ns
        {
            return;
        }
        let (block, justify) = match &self.lock {
            Some(lock) => match self.blocks.get(&lock.block) {
                // Re-propose the locked block unchanged (its identity is its header hash, which
                // the certificate names), justified by the certificate.
                Some(block) => (block.clone(), Some(lock.clone())),
                // Locked on a block it never received. The next leader most likely holds it (a
                // quorum voted for it), and this view's NewView carries the lock to it.
                None => {
                    self.abandon_view = true;
                    return;
                }
            },
            None => (host.build_block(self.height, self.view, self.last_hash, self.me), None),
        };
        self.proposed = true;
        let hash = block.header.hash();
        let signature = self.sign(&proposal_signing_bytes(self.set.chain(), self.view, self.height, &hash));
        let proposal = Proposal { view: self.view, block, justify, signature };
        self.broadcast(ConsensusMessage::Proposal(proposal.clone()));
        self.on_proposal(self.me, proposal, host);
    }

    /// The cheap checks, before any signature is verified: drops the messages
    /// [`Core::on_message`] would ignore whatever their signatures (proposals and votes for a
    /// finalized height, or for a view this node has left or is too far from), and cuts each
    /// sync response to what [`Core::on_sync_response`] could use: the blocks from this node's
    /// height on, each the next height and extending the one before, at most
    /// `sync_batch_max` of them. A response that repeats one block 12,000 times costs one
    /// certificate's verification, not 12,000.
    ///
    /// What the state machine does with a message without reading its signatures is done
    /// here, before any is verified: for a vote, certificate or `NewView` beyond the next
    /// height, it only asks the sender for blocks; for a `NewView` below
    /// it, it only answers as it would a `SyncRequest` from that height, which the message
    /// becomes. (A link is authenticated to its validator, and these take nothing from the
    /// message but its height.) A full node reads nothing but sync responses, and nobody
    /// reads a message from a validator outside the set. So the cheapest message a validator
    /// can send costs at most what its signatures would if they were counted.
    ///
    /// "Beyond" is judged from the height this node reaches if the sync responses earlier in
    /// the batch verify: a vote for the height a response brings it to is handled after that
    /// response, not dropped. A `NewView` for the next height is kept, as a vote is: a
    /// certificate or a quorum of votes earlier in the batch may bring the node to it, and
    /// otherwise the core holds it for that height ([`Core::hold_for_next_height`]). (Keeping it costs its own signature, charged to its sender if
    /// bad, beside the certificates of that response's blocks.) Returns how many messages and
    /// blocks it dropped.
    pub fn drop_before_verification(&mut self, messages: &mut Vec<(u32, ConsensusMessage)>) -> u64 {
        let before = self.counters.dropped_unverified;
        let mut reach = self.height;
        messages.retain_mut(|(from, message)| {
            let from = *from;
            if self.set.key(from).is_none() {
                self.counters.rejected_sender += 1;
                self.counters.dropped_unverified += dropped_count(message);
                return false;
            }
            if self.observer && !matches!(message, ConsensusMessage::SyncResponse(_)) {
                self.counters.dropped_unverified += 1;
                return false;
            }
            let sender = match message {
                ConsensusMessage::Vote(vote) => Some(vote.voter),
                ConsensusMessage::NewView(new_view) => Some(new_view.sender),
                _ => None,
            };
            if sender.is_some_and(|sender| sender != from) {
                self.counters.rejected_sender += 1;
                self.counters.dropped_unverified += 1;
                return false;
            }
            let next = reach.saturating_add(1);
            match message {
                ConsensusMessage::Vote(Vote { height, .. })
                | ConsensusMessage::Certificate(QuorumCertificate { height, .. })
                    if *height > next =>
                {
                    self.request_sync(from);
                    self.counters.dropped_unverified += 1;
                    return false;
                }
                // A proposal from beyond the next height only asks its sender for blocks (if the
                // sender may have made it), as [`Core::on_proposal`] does: it cost its
                // justification's signatures, and took a sender's share of verification ahead
                // of its sync response (found in review).
                ConsensusMessage::Proposal(proposal) if proposal.block.header.height > next => {
                    if self.proposal_sender_fits(from, proposal) {
                        self.request_sync(from);
                    } else {
                        self.counters.rejected_sender += 1;
                    }
                    self.counters.dropped_unverified += 1;
                    return false;
                }
                ConsensusMessage::NewView(new_view) if new_view.height > next => {
                    self.request_sync(from);
                    self.counters.dropped_unverified += 1;
                    return false;
                }
                ConsensusMessage::NewView(new_view) if new_view.height < self.height => {
                    *message = ConsensusMessage::SyncRequest { from_height: new_view.height };
                    return true;
                }
                _ => {}
            }
            let keep = self.keeps_unverified(from, message);
            if let ConsensusMessage::SyncResponse(blocks) = message {
                // `keeps_unverified` left the run from this node's height on, consecutive.
                if let Some(last) = blocks.last() {
                    reach = reach.max(last.block.header.height.saturating_add(1));
                }
            }
            keep
        });
        self.within_signature_budget(messages);
        self.counters.dropped_unverified - before
    }

    /// Signatures one sender's messages may carry into one batch's verification: a whole sync
    /// response's certificates, and eight more messages' worth. No honest validator sends more
    /// between two ticks (it answers a sync request at most once a serve interval); a single
    /// message past it is malformed, with more signatures to a certificate than validators.
    pub fn signatures_per_sender(&self) -> usize {
        self.config.sync_batch_max.saturating_add(8).saturating_mul(self.set.len())
    }

    /// Drops, in order, each message that would take its sender past
    /// [`Core::signatures_per_sender`] in this batch. Before, a Byzantine validator's batch of
    /// forged sync responses (64 well-formed certificates each) was verified whole, every
    /// signature singly once its batch failed, and charged one point a message only after the
    /// tick: a tick's worth of them stopped the node loop for seconds (found in review).
    ///
    /// A sender's sync responses are charged first: its other messages queued during a long
    /// tick (a lagging validator's, executing a batch of blocks) must not leave no room for the
    /// blocks it asked for.
    fn within_signature_budget(&mut self, messages: &mut Vec<(u32, ConsensusMessage)>) {
        // Most ticks bring nothing: no tables for them (the simulator runs this every tick).
        if messages.is_empty() {
            return;
        }
        let budget = self.signatures_per_sender();
        let mut spent = vec![0usize; self.set.len()];
        let mut keep = vec![true; messages.len()];
        for sync_first in [true, false] {
            for ((from, message), keep) in messages.iter().zip(keep.iter_mut()) {
                if matches!(message, ConsensusMessage::SyncResponse(_)) != sync_first {
                    continue;
                }
                // Every sender left is in the set (`drop_before_verification`).
                let Some(spent) = spent.get_mut(*from as usize) else { continue };
                let cost = signature_count(message);
                if spent.saturating_add(cost) > budget {
                    self.counters.over_signature_budget += 1;
                    self.counters.dropped_unverified += dropped_count(message);
                    *keep = false;
                } else {
                    *spent += cost;
                }
            }
        }
        let mut keep = keep.into_iter();
        messages.retain(|_| keep.next().unwrap_or(true));
    }

    /// Whether `from` may have sent `proposal`: its view's leader, with a header that fits. A
    /// fresh block is the leader's own, made in this view; a re-proposal carries the original
    /// header (made in an earlier view, possibly by another leader) and must be justified by a
    /// prepare certificate for it.
    fn proposal_sender_fits(&self, from: u32, proposal: &Proposal) -> bool {
        let header = &proposal.block.header;
        let header_fits = match &proposal.justify {
            None => header.proposer == from && header.view == proposal.view,
            Some(_) => header.view <= proposal.view,
        };
        from == self.set.leader(proposal.view) && header_fits
    }

    /// [`Core::drop_before_verification`]'s checks of what a message is for, beyond who sent it.
    ///
    /// Besides what the core would refuse, it drops what the core would take and ignore: a
    /// vote it has counted, a certificate whose every vote it has counted, a proposal from a
    /// validator that does not lead its view, and a `NewView` outside the views counted whose
    /// certificate cannot move the lock. Each was verified before, once per copy, and being
    /// validly signed was charged to nobody: a Byzantine validator replaying a stock of them
    /// every tick cost each honest validator up to 72 signatures a validator (found in review).
    fn keeps_unverified(&mut self, from: u32, message: &mut ConsensusMessage) -> bool {
        if !self.certificates_shaped(message) {
            self.counters.rejected_certificate += 1;
            self.counters.dropped_unverified += 1;
            return false;
        }
        match message {
            ConsensusMessage::Vote(vote)
                if vote.height == self.height
                    && self.first_vote.get(&(vote.kind, vote.view, vote.voter)) == Some(&vote.block) =>
            {
                self.counters.dropped_unverified += 1;
                false
            }
            ConsensusMessage::Certificate(certificate)
                if certificate.height == self.height
                    && self.counts_votes_for(certificate.height, certificate.view)
                    && self
                        .votes
                        .get(&(certificate.kind, certificate.view, certificate.block))
                        .is_some_and(|counted| {
                            certificate.signers.iter().all(|signer| counted.contains_key(signer))
                        }) =>
            {
                self.counters.dropped_unverified += 1;
                false
            }
            ConsensusMessage::NewView(new_view)
                if new_view.height == self.height
                    && (new_view.view.saturating_add(2) < self.view
                        || new_view.view > self.view.saturating_add(self.config.view_window))
                    && new_view.high_qc.as_ref().is_none_or(|qc| !self.may_move_lock(qc)) =>
            {
                self.counters.dropped_unverified += 1;
                false
            }
            // One held for the next height must carry what `on_new_view` will take there: a
            // prepare certificate of that height, if any (found in review: it was verified and
            // held whatever it carried).
            ConsensusMessage::NewView(new_view)
                if new_view.height == self.height.saturating_add(1)
                    && new_view
                        .high_qc
                        .as_ref()
                        .is_some_and(|qc| qc.kind != VoteKind::Prepare || qc.height != new_view.height) =>
            {
                self.counters.dropped_unverified += 1;
                false
            }
            ConsensusMessage::Proposal(proposal) => {
                let height = proposal.block.header.height;
                if height < self.height {
                    self.counters.dropped_unverified += 1;
                    return false;
                }
                if height == self.height && proposal.view.saturating_add(2) < self.view {
                    self.counters.stale_proposals += 1;
                    self.counters.dropped_unverified += 1;
                    return false;
                }
                if !self.proposal_sender_fits(from, proposal) {
                    self.counters.rejected_sender += 1;
                    self.counters.dropped_unverified += 1;
                    return false;
                }
                true
            }
            ConsensusMessage::Vote(Vote { height, view, .. })
            | ConsensusMessage::Certificate(QuorumCertificate { height, view, .. }) => {
                let useless = *height <= self.height && !self.counts_votes_for(*height, *view);
                self.counters.dropped_unverified += u64::from(useless);
                !useless
            }
            ConsensusMessage::SyncResponse(blocks) => {
                let total = blocks.len();
                let kept = usable_sync_prefix(blocks, self.height, self.config.sync_batch_max, |qc| {
                    self.certificate_shaped(qc)
                });
                self.counters.dropped_unverified += (total - kept) as u64;
                blocks.truncate(kept);
                true
            }
            ConsensusMessage::NewView(_) | ConsensusMessage::SyncRequest { .. } => true,
        }
    }

    /// Handles one message whose signatures have been verified.
    pub fn on_message(&mut self, from: u32, message: ConsensusMessage, host: &mut impl Host) {
        if self.set.key(from).is_none() {
            self.counters.rejected_sender += 1;
            return;
        }
        if self.observer {
            // A full node takes finalized blocks only; live protocol traffic is not for it.
            if let ConsensusMessage::SyncResponse(blocks) = message {
                self.on_sync_response(from, blocks, host);
            }
            return;
        }
        match message {
            ConsensusMessage::Proposal(proposal) => self.on_proposal(from, proposal, host),
            ConsensusMessage::Vote(vote) => {
                if vote.voter != from {
                    self.counters.rejected_sender += 1;
                    return;
                }
                self.on_vote(vote, host);
            }
            ConsensusMessage::NewView(new_view) => {
                if new_view.sender != from {
                    self.counters.rejected_sender += 1;
                    return;
                }
                self.on_new_view(new_view, host);
            }
            ConsensusMessage::SyncRequest { from_height } => self.on_sync_request(from, from_height, host),
            ConsensusMessage::SyncResponse(blocks) => self.on_sync_response(from, blocks, host),
            ConsensusMessage::Certificate(certificate) => self.on_certificate(from, certificate, host),
        }
    }

    /// Whether votes (alone or in a certificate) for `height` and `view` are counted: the
    /// height being decided, and a view from two before this one to `view_window` after it.
    /// The one rule of [`Core::on_vote`], [`Core::on_certificate`] and the cheap checks.
    fn counts_votes_for(&self, height: u64, view: u64) -> bool {
        height == self.height
            && view.saturating_add(2) >= self.view
            && view <= self.view.saturating_add(self.config.view_window)
    }

    /// A certificate an aggregator broadcast: a bundle of verified votes, counted as if each
    /// had arrived alone (so one that comes before its block acts when the block does), under
    /// the rules of [`Core::on_vote`] for heights and views.
    fn on_certificate(&mut self, from: u32, certificate: QuorumCertificate, host: &mut impl Host) {
        if certificate.height > self.height + 1 {
            self.request_sync(from);
            return;
        }
        // Out of shape, it could never count: refused before it is held for the next height,
        // as [`Core::drop_before_verification`] refuses it before its signatures are checked.
        if !self.certificate_shaped(&certificate) {
            self.counters.rejected_certificate += 1;
            return;
        }
        if certificate.height == self.height + 1 {
            self.hold_for_next_height(from, ConsensusMessage::Certificate(certificate));
            return;
        }
        if !self.counts_votes_for(certificate.height, certificate.view) {
            return;
        }
        if !self.certificate_valid(&certificate, certificate.kind, self.height) {
            self.counters.rejected_certificate += 1;
            return;
        }
        let QuorumCertificate { kind, view, block, signers, signatures, .. } = certificate;
        let votes = self.votes.entry((kind, view, block)).or_default();
        let before = votes.len();
        for (signer, signature) in signers.into_iter().zip(signatures) {
            votes.entry(signer).or_insert(signature);
        }
        // Only new votes can form a quorum: a certificate repeating counted votes (re-sent, or
        // replayed by any validator) would otherwise make an aggregator at exactly a quorum
        // announce its certificate to everyone again, one broadcast per message received.
        if votes.len() > before {
            self.check_quorums(kind, view, block, host);
        }
    }

    /// Whether next-height messages have been held for a quarter timeout, so that sync is
    /// asked of their senders in turn.
    fn taking_sync_turns(&self) -> bool {
        !self.next_height.is_empty()
            && self.now_ns.saturating_sub(self.next_height_since_ns) >= self.config.view_timeout_ns / 4
    }

    /// Asks `from` for the blocks this validator lacks, because of a message of a height ahead
    /// of it; unless sync is being asked of next-height senders in turn.
    fn request_sync(&mut self, from: u32) {
        if !self.taking_sync_turns() {
            let to = self.sync_target(from);
            self.send_sync_request(to);
        }
    }

    /// Whom to ask for blocks because `from` sent a message from ahead: `from`, unless the
    /// validator asked last has not answered with a whole batch since; then the next validator
    /// after that one, in turn. The messages that name `from` are read before any signature is
    /// checked (a vote from far ahead only asks its sender for blocks), so a Byzantine
    /// validator sending one a quarter timeout took every request, for itself, and answered
    /// none, or one block at a time (found in review); now, while it does not answer in full,
    /// the requests go round the others, and it gets one at most after each full answer.
    fn sync_target(&self, from: u32) -> u32 {
        match self.last_sync_peer {
            Some((last, false)) => self.next_validator_after(last),
            _ => from,
        }
    }

    /// Asks `to` for blocks from this height on, at most once a quarter timeout.
    fn send_sync_request(&mut self, to: u32) {
        let due = self
            .last_sync_request_ns
            .is_none_or(|last| self.now_ns.saturating_sub(last) >= self.config.view_timeout_ns / 4);
        if due && to != self.me {
            self.last_sync_request_ns = Some(self.now_ns);
            self.last_sync_peer = Some((to, false));
            self.outbox
                .push((Destination::One(to), ConsensusMessage::SyncRequest { from_height: self.height }));
        }
    }

    /// The validator after `index` in the set, skipping this one (`index` itself in a set of
    /// two or fewer).
    fn next_validator_after(&self, index: u32) -> u32 {
        let n = self.set.len() as u64;
        (1..n)
            .map(|step| ((u64::from(index) + step) % n) as u32)
            .find(|candidate| *candidate != self.me)
            .unwrap_or(index)
    }

    /// Structural validity of a certificate: kind, height, and [`Core::certificate_shaped`].
    /// (Signatures were verified upstream.)
    pub fn certificate_valid(&self, qc: &QuorumCertificate, kind: VoteKind, height: u64) -> bool {
        qc.kind == kind && qc.height == height && self.certificate_shaped(qc)
    }

    /// [`ValidatorSet::certificate_shaped`] for this node's set. Every certificate is held to it in [`Core::drop_before_verification`]; before, one with a single validly
    /// signed vote passed the checks there, had its signature verified, and was refused only
    /// after, for want of a quorum, with nobody charged: a Byzantine validator's sync responses
    /// of 64 such certificates cost every honest validator 64 verifications a message, every
    /// tick (found in review).
    pub fn certificate_shaped(&self, qc: &QuorumCertificate) -> bool {
        self.set.certificate_shaped(qc)
    }

    /// Whether the certificate `message` carries, where the core refuses the whole message for
    /// a certificate out of shape before using any of it, is [`Core::certificate_shaped`]: a
    /// certificate message, and a view change at this height (what is left of them here; see
    /// [`Core::on_new_view`]). A sync response's are judged block by block, in
    /// [`usable_sync_prefix`]. A proposal's justification is not: a leader's signed proposal is
    /// evidence against it whatever it carries, and its signatures are bounded by the leader's
    /// share ([`Core::signatures_per_sender`]).
    fn certificates_shaped(&self, message: &ConsensusMessage) -> bool {
        match message {
            ConsensusMessage::Certificate(qc) => self.certificate_shaped(qc),
            ConsensusMessage::NewView(new_view)
                if new_view.height == self.height || new_view.height == self.height.saturating_add(1) =>
            {
                new_view.high_qc.as_ref().is_none_or(|qc| self.certificate_shaped(qc))
            }
            _ => true,
        }
    }

    fn on_proposal(&mut self, from: u32, proposal: Proposal, host: &mut impl Host) {
        let header = proposal.block.header;
        if !self.proposal_sender_fits(from, &proposal) {
            self.counters.rejected_sender += 1;
            return;
        }
        if header.height == self.height + 1 {
            // Very likely the leader finalized a moment before this node did: keep it for when
            // this node catches up, instead of waiting for the re-broadcast.
            self.hold_for_next_height(from, ConsensusMessage::Proposal(proposal));
            return;
        }
        if header.height > self.height {
            self.request_sync(from);
            return;
        }
        if header.height < self.height {
            return;
        }
        // A view this node has left (the ones `enter_view` prunes) gets no vote from it, so its
        // proposals are dropped before any work: otherwise its leader could sign block after
        // distinct block for it, each validated and held, untracked by `first_proposal`.
        if proposal.view.saturating_add(2) < self.view {
            self.counters.stale_proposals += 1;
            return;
        }
        let hash = header.hash();
        match self.first_proposal.get(&proposal.view) {
            Some(first) if *first != hash => {
                self.record(Evidence::Proposals {
                    proposer: from,
                    view: proposal.view,
                    blocks: [*first, hash],
                });
                return;
            }
            Some(_) => {}
            // Only views whose proposals are kept (those `enter_view` does not prune) are
            // tracked: a leader signing proposals for endless far-off views must not grow this.
            None if proposal.view.saturating_add(2) >= self.view
                && proposal.view <= self.view.saturating_add(self.config.view_window) =>
            {
                self.first_proposal.insert(proposal.view, hash);
            }
            None => {}
        }
        if proposal.view > self.view.saturating_add(self.config.view_window) {
            return;
        }
        // A proposal for a later view at this height is checked now, like one for this view:
        // its parent and state are this node's own, so a bad block is refused (and counted) on
        // arrival rather than held until the view comes, and a good one is already validated
        // when it does.
        if header.parent != self.last_hash {
            self.counters.rejected_bad_body += 1;
            return;
        }
        if let Some(justify) = &proposal.justify
            && !(self.certificate_valid(justify, VoteKind::Prepare, self.height) && justify.block == hash)
        {
            self.counters.rejected_certificate += 1;
            return;
        }
        if let Some(view) = self.block_views.get_mut(&hash) {
            // Held already: proposed again (a re-proposal), it ranks by its latest view.
            *view = (*view).max(proposal.view);
        } else {
            // Refused already: a copy costs no second validation.
            if self.refused_blocks.contains(&hash) {
                return;
            }
            let verdict = if from == self.me { Ok(()) } else { host.validate_block(&proposal.block) };
            if let Err(fault) = verdict {
                self.counters.count_fault(fault);
                // Only a verdict on a body the header names (its transaction root matched):
                // the header's hash then stands for the body. A body-only fault (too long, a
                // count or root that does not match) says nothing of the right body under the
                // same header, which a Byzantine leader may have sent to the others.
                let of_the_header =
                    matches!(fault, BlockFault::InvalidTransaction | BlockFault::WrongStateRoot);
                if of_the_header && self.first_proposal.get(&proposal.view) == Some(&hash) {
                    self.refused_blocks.insert(hash);
                }
                return;
            }
            if !self.hold_block_for(hash, &proposal.block, proposal.view) {
                // No room for its block: a later view's proposal is not kept either (its
                // leader re-sends it once the view comes), and no vote goes to a block this
                // node does not hold, which it could not commit: a quorum counting such votes
                // would lock on a block nobody can finalize.
                return;
            }
        }
        if proposal.view > self.view {
            // Kept once: a copy of a queued proposal (the same header and justification) adds
            // nothing but another block's bytes.
            let pending = self.future.entry(proposal.view).or_default();
            let queued = pending.iter().any(|(_, queued)| {
                queued.block.header == proposal.block.header && queued.justify == proposal.justify
            });
            if pending.len() < 4 && !queued {
                pending.push((from, proposal));
            }
            return;
        }
        if let Some(justify) = &proposal.justify {
            self.adopt_lock(justify.clone());
        }
        if proposal.view != self.view || self.voted_prepare {
            return;
        }
        let may_vote = match &self.lock {
            None => true,
            Some(lock) => lock.block == hash,
        };
        if may_vote {
            self.voted_prepare = true;
            self.cast(VoteKind::Prepare, hash, host);
        }
        // Votes may have arrived before the block did.
        self.check_quorums(VoteKind::Prepare, self.view, hash, host);
        self.check_quorums(VoteKind::Commit, self.view, hash, host);
    }

    /// [`Core::hold_block_for`] a block proposed in its header's view.
    #[cfg(test)]
    pub(super) fn hold_block(&mut self, hash: Hash, block: &Block) -> bool {
        self.hold_block_for(hash, block, block.header.view)
    }

    /// Keeps a validated block, proposed in `view`, for the height being decided, within
    /// [`BLOCKS_HELD_MAX`] and [`BLOCKS_HELD_BYTES_MAX`]. When full, room is made first, for a
    /// block of the current view or an earlier one, from the blocks last proposed in views this
    /// node has left (below `v − 2`: no vote for them counts any more, and a leader proposing
    /// one again sends it again), oldest first; then from those proposed for views further than
    /// `view`, furthest first. Never evicted: the locked block, and the block first proposed in
    /// each counted view up to `view`. Returns whether the block is held.
    ///
    /// Blocks of views left were not evictable until 2026-12-07: a height lasting 64 views (16
    /// of full blocks) filled the store with them, the block of the view being decided found no
    /// room, and the validator voted for it anyway, so a quorum could lock on a block nobody
    /// held (found in review). They stay until room is needed, so a certificate for one that
    /// arrives late still finds its body.
    pub(super) fn hold_block_for(&mut self, hash: Hash, block: &Block, view: u64) -> bool {
        let size = block_wire_bytes(block);
        let lock = self.lock.as_ref().map(|lock| lock.block);
        let left = self.view.saturating_sub(2);
        // Never evicted for it: the lock, and the block first proposed in each counted view up
        // to this one's (up to the current view, for a late block), however a later
        // re-proposal ranks it (a Byzantine leader re-proposing
        // the current view's block for a far view must not make it evictable by nearer ones).
        let counted: Vec<Hash> =
            self.first_proposal.range(left..=view.max(self.view)).map(|(_, hash)| *hash).collect();
        // Blocks of views left give way to a block of this view or an earlier one only: a
        // leader's proposals for views ahead must not flush them (they are kept so that a
        // certificate arriving late finds its body).
        let may_take_left = view <= self.view;
        // Blocks that may make room, in the order they go: (class, rank), lowest first.
        let mut evictable: Vec<((u8, u64), Hash, usize)> = self
            .blocks
            .iter()
            .filter(|(held, _)| Some(**held) != lock && !counted.contains(held))
            .filter_map(|(held, held_block)| {
                let proposed = self.block_views.get(held).copied().unwrap_or(held_block.header.view);
                let order = if proposed < left {
                    if !may_take_left {
                        return None;
                    }
                    (0, proposed)
                } else if proposed > view {
                    (1, u64::MAX - proposed)
                } else {
                    return None;
                };
                Some((order, *held, block_wire_bytes(held_block)))
            })
            .collect();
        evictable.sort_unstable();
        let mut count = self.blocks.len();
        let mut bytes = self.blocks_bytes;
        let mut victims = 0;
        while count >= BLOCKS_HELD_MAX || bytes + size > BLOCKS_HELD_BYTES_MAX {
            let Some((_, _, victim_size)) = evictable.get(victims) else { return false };
            count -= 1;
            bytes -= victim_size;
            victims += 1;
        }
        for (_, victim, victim_size) in &evictable[..victims] {
            self.blocks.remove(victim);
            self.block_views.remove(victim);
            self.blocks_bytes -= victim_size;
        }
        self.blocks.insert(hash, block.clone());
        self.block_views.insert(hash, view);
        self.blocks_bytes += size;
        debug_assert!(self.blocks.len() <= BLOCKS_HELD_MAX);
        debug_assert!(self.blocks_bytes <= BLOCKS_HELD_BYTES_MAX);
        true
    }

    /// Whether [`Core::adopt_lock`] would take `qc` (once verified): at this height, from a
    /// later view than the lock's.
    fn may_move_lock(&self, qc: &QuorumCertificate) -> bool {
        qc.height == self.height && self.lock.as_ref().is_none_or(|lock| qc.view > lock.view)
    }

    fn adopt_lock(&mut self, qc: QuorumCertificate) {
        if self.may_move_lock(&qc) {
            self.lock = Some(qc);
            self.safety_changed = true;
        }
    }

    fn cast(&mut self, kind: VoteKind, block: Hash, host: &mut impl Host) {
        if !self.may_sign_blocks() {
            return;
        }
        let signature =
            self.sign(&vote_signing_bytes(self.set.chain(), kind, self.view, self.height, &block));
        let vote = Vote { kind, view: self.view, height: self.height, block, voter: self.me, signature };
        let leader = self.set.leader(self.view);
        if !self.aggregates_votes() {
            self.broadcast(ConsensusMessage::Vote(vote.clone()));
        } else if leader != self.me {
            // The leader counts it into the certificate it broadcasts; the leader's own vote
            // needs no message.
            self.send(Destination::One(leader), ConsensusMessage::Vote(vote.clone()));
        }
        self.on_vote(vote, host);
    }

    fn on_vote(&mut self, vote: Vote, host: &mut impl Host) {
        if vote.height == self.height + 1 {
            self.hold_for_next_height(vote.voter, ConsensusMessage::Vote(vote));
            return;
        }
        if vote.height > self.height {
            self.request_sync(vote.voter);
            return;
        }
        if !self.counts_votes_for(vote.height, vote.view) {
            return;
        }
        match self.first_vote.get(&(vote.kind, vote.view, vote.voter)) {
            Some(first) if *first != vote.block => {
                let evidence = Evidence::Votes {
                    voter: vote.voter,
                    kind: vote.kind,
                    view: vote.view,
                    blocks: [*first, vote.block],
                };
                self.record(evidence);
                return;
            }
            Some(_) => return,
            None => {
                self.first_vote.insert((vote.kind, vote.view, vote.voter), vote.block);
            }
        }
        self.votes
            .entry((vote.kind, vote.view, vote.block))
            .or_default()
            .insert(vote.voter, Signature(vote.signature));
        self.check_quorums(vote.kind, vote.view, vote.block, host);
    }

    fn certificate(&self, kind: VoteKind, view: u64, block: Hash) -> Option<QuorumCertificate> {
        let votes = self.votes.get(&(kind, view, block))?;
        if votes.len() < self.set.quorum() {
            return None;
        }
        Some(QuorumCertificate {
            kind,
            view,
            height: self.height,
            block,
            signers: votes.keys().copied().collect(),
            signatures: votes.values().copied().collect(),
        })
    }

    fn check_quorums(&mut self, kind: VoteKind, view: u64, block: Hash, host: &mut impl Host) {
        let Some(qc) = self.certificate(kind, view, block) else { return };
        // The aggregator announces the certificate once, when its votes first make a quorum
        // (later votes would only re-form it), before acting on it: a commit finalizes and
        // leaves the view, but what is already in the outbox goes.
        if self.aggregates_votes()
            && self.set.leader(view) == self.me
            && qc.signers.len() == self.set.quorum()
        {
            // Re-sent every quarter timeout while the view lasts: only the first certificate of
            // each kind of the current view. Others (another view's in the window, or a second
            // block's, which only more than f faulty validators can form) go once, so signers
            // cannot make the re-sent set, and the traffic it repeats, grow.
            let message = ConsensusMessage::Certificate(qc.clone());
            let first_of_kind = !self
                .sent_this_view
                .iter()
                .any(|(_, sent)| matches!(sent, ConsensusMessage::Certificate(sent) if sent.kind == kind));
            if view == self.view && first_of_kind {
                self.broadcast(message);
            } else {
                self.outbox.push((Destination::All, message));
            }
        }
        let have_block = self.blocks.contains_key(&block);
        match kind {
            VoteKind::Prepare => {
                self.adopt_lock(qc);
                if view == self.view && have_block && !self.voted_commit {
                    self.voted_commit = true;
                    self.cast(VoteKind::Commit, block, host);
                }
            }
            VoteKind::Commit => {
                if have_block {
                    let block = self.blocks.get(&block).cloned().expect("checked above");
                    self.finalize(block, qc, host, false);
                } else if let Some(voter) = qc.signers.iter().copied().find(|voter| *voter != self.me) {
                    self.request_sync(voter);
                }
            }
        }
    }

    fn finalize(&mut self, block: Block, certificate: QuorumCertificate, host: &mut impl Host, synced: bool) {
        assert_eq!(block.header.height, self.height, "finalizing the height being decided");
        assert_eq!(block.header.parent, self.last_hash, "finalized block extends the chain");
        assert_eq!(certificate.block, block.header.hash(), "certificate is for this block");
        host.commit_block(&block, &certificate);
        self.counters.finalized += 1;
        if synced {
            self.counters.synced += 1;
        }
        self.last_hash = certificate.block;
        self.height += 1;
        self.lock = None;
        self.blocks.clear();
        self.block_views.clear();
        self.blocks_bytes = 0;
        self.votes.clear();
        self.first_vote.clear();
        self.first_proposal.clear();
        self.refused_blocks.clear();
        // Proposals queued for later views were for the height just finalized.
        self.future.clear();
        self.new_views.clear();
        self.failed_views = 0;
        self.propose_not_before_ns = self.now_ns.saturating_add(self.config.block_interval_ns);
        // The next height starts in the view after the certificate's, or in this node's own
        // view if it is already past that: a validator that timed out of the deciding view
        // while the others finalized in it stays in step with them, instead of starting one
        // view ahead of every validator that did not time out (where it would vote for none
        // of their proposals, and with one validator down, no quorum forms until timeouts
        // line the views up again). Views never go back, and every signature names its height,
        // so a view number used at the last height is no conflict at this one.
        let next_view = self.view.max(certificate.view.saturating_add(1));
        self.finalized.push(CertifiedBlock { block, certificate });
        self.enter_view(next_view, true, host);
        // Replay what arrived early for the height just entered (bounded; see `hold_for_next_height`).
        self.next_height_bytes = 0;
        for (from, message) in std::mem::take(&mut self.next_height) {
            self.on_message(from, message, host);
        }
    }

    /// Keeps a proposal, vote, certificate or `NewView` for the next height, within bounds; past them,
    /// asks for sync instead. Their signatures were verified on arrival. The bounds: a view
    /// within the window votes are counted in, [`NEXT_HEIGHT_MAX`] messages and
    /// [`NEXT_HEIGHT_BYTES_MAX`] bytes in all, and for each sender its share of both (an nth,
    /// but at least 16 messages and 8 MiB), so that one Byzantine validator can neither hold a
    /// thousand full-size blocks in every node nor crowd out the others' messages.
    fn hold_for_next_height(&mut self, from: u32, message: ConsensusMessage) {
        let view = match &message {
            ConsensusMessage::Proposal(proposal) => proposal.view,
            ConsensusMessage::Vote(vote) => vote.view,
            ConsensusMessage::Certificate(qc) => qc.view,
            ConsensusMessage::NewView(new_view) => new_view.view,
            _ => self.view,
        };
        let bytes = held_bytes(&message);
        let senders = self.set.len().max(1);
        let (mine, mine_bytes) = self
            .next_height
            .iter()
            .filter(|(sender, _)| *sender == from)
            .fold((0, 0), |(count, total), (_, held)| (count + 1, total + held_bytes(held)));
        let fits = view <= self.view.saturating_add(self.config.view_window)
            && self.next_height.len() < NEXT_HEIGHT_MAX
            && self.next_height_bytes + bytes <= NEXT_HEIGHT_BYTES_MAX
            && mine < (NEXT_HEIGHT_MAX / senders).max(16)
            && mine_bytes + bytes <= (NEXT_HEIGHT_BYTES_MAX / senders).max(8 << 20);
        if !fits {
            self.request_sync(from);
            return;
        }
        if self.next_height.is_empty() {
            self.next_height_since_ns = self.now_ns;
        }
        self.next_height_bytes += bytes;
        self.next_height.push((from, message));
    }

    fn on_new_view(&mut self, new_view: NewView, host: &mut impl Host) {
        // A view change for the next height: its sender finished this one, and this node may
        // any moment. Held for it, as a vote is; before, it was dropped and the node waited
        // for its resend, a quarter timeout later.
        if new_view.height == self.height.saturating_add(1) {
            // Held only with what it will be taken with there: no certificate, or a prepare
            // certificate of that height of a quorum's shape (as the cheap checks require).
            if new_view.high_qc.as_ref().is_some_and(|qc| {
                qc.kind != VoteKind::Prepare || qc.height != new_view.height || !self.certificate_shaped(qc)
            }) {
                self.counters.rejected_certificate += 1;
                return;
            }
            self.hold_for_next_height(new_view.sender, ConsensusMessage::NewView(new_view));
            return;
        }
        if new_view.height > self.height {
            self.request_sync(new_view.sender);
            return;
        }
        if new_view.height < self.height {
            // The sender is behind: help it catch up.
            self.on_sync_request(new_view.sender, new_view.height, host);
            return;
        }
        if let Some(qc) = &new_view.high_qc {
            if !self.certificate_valid(qc, VoteKind::Prepare, self.height) {
                self.counters.rejected_certificate += 1;
                return;
            }
            self.adopt_lock(qc.clone());
        }
        if new_view.view.saturating_add(2) < self.view
            || new_view.view > self.view.saturating_add(self.config.view_window)
        {
            return;
        }
        let waiting = !self.may_time_out();
        let senders = self.new_views.entry(new_view.view).or_default();
        senders.insert(new_view.sender, new_view.high_qc);
        if waiting && self.may_time_out() {
            // A quorum has reached this view only now: its timeout runs from here, so a
            // validator that waited ahead stays while the others' leader proposes.
            self.view_started_ns = self.now_ns;
        }
        // f + 1 validators are in views beyond this one, so at least one honest validator
        // timed out to a view at least as high as the (f + 1)-th highest of them: follow it.
        // Counting "at or beyond" rather than "exactly at" a view lets validators whose views
        // drifted apart (backed-off timeouts, a restart that resumes past its saved view) meet
        // again instead of chasing each other one timeout at a time.
        if new_view.view > self.view
            && let Some(view) = self.view_followed()
        {
            self.enter_view(view, false, host);
            return;
        }
        if new_view.view == self.view && self.set.leader(self.view) == self.me && !self.proposed {
            self.maybe_propose_after_view_change(host);
        }
    }

    /// The highest view beyond the current one that f + 1 validators have sent a `NewView`
    /// for, at it or beyond (each sender counted once, at its highest such view).
    fn view_followed(&self) -> Option<u64> {
        let mut highest: BTreeMap<u32, u64> = BTreeMap::new();
        for (view, senders) in self.new_views.range(self.view.saturating_add(1)..) {
            for sender in senders.keys() {
                highest.insert(*sender, *view);
            }
        }
        let mut views: Vec<u64> = highest.into_values().collect();
        views.sort_unstable_by(|a, b| b.cmp(a));
        views.get(self.set.faults_tolerated()).copied()
    }

    /// Least time between two sync responses to one validator: an eighth of the base view
    /// timeout, half the interval at which an honest validator asks ([`Core::request_sync`]),
    /// so an honest laggard is never refused while a Byzantine one asking in a loop draws at
    /// most one batch ([`ConsensusConfig::sync_batch_max`], `sync_bytes_max`) per interval.
    pub fn sync_serve_interval_ns(&self) -> u64 {
        self.config.view_timeout_ns / 8
    }

    fn on_sync_request(&mut self, from: u32, from_height: u64, host: &impl Host) {
        if from == self.me || from_height >= self.height {
            return;
        }
        // Each answer reads and sends up to a whole sync batch: at most one per validator per
        // interval, however often it asks. (`from` was checked against the set upstream; the
        // table grows to the set's size at most.)
        let Some(index) = usize::try_from(from).ok().filter(|&index| index < self.set.len()) else {
            return;
        };
        if self.sync_served_ns.len() < self.set.len() {
            self.sync_served_ns.resize(self.set.len(), None);
        }
        let interval_ns = self.sync_serve_interval_ns();
        if self.sync_served_ns[index].is_some_and(|at| self.now_ns.saturating_sub(at) < interval_ns) {
            self.counters.sync_refused += 1;
            return;
        }
        // And at most SYNC_ANSWERS_PER_INTERVAL answers an interval to all validators together:
        // with the per-validator limit alone, f Byzantine validators asking in a loop drew f
        // batches an interval (16 MiB/s each at the defaults) of this node's upload, enough
        // with a few of them to crowd out its proposals (found in review). A refused laggard
        // asks the next validator in turn.
        while self.sync_answers_ns.front().is_some_and(|at| self.now_ns.saturating_sub(*at) >= interval_ns) {
            self.sync_answers_ns.pop_front();
        }
        if self.sync_answers_ns.len() >= SYNC_ANSWERS_PER_INTERVAL {
            self.counters.sync_refused += 1;
            return;
        }
        let end = self.height.min(from_height.saturating_add(self.config.sync_batch_max as u64));
        let blocks = bounded_sync_batch(
            (from_height..end).map_while(|height| host.finalized_block(height)),
            &self.config,
        );
        if !blocks.is_empty() {
            self.sync_served_ns[index] = Some(self.now_ns);
            self.sync_answers_ns.push_back(self.now_ns);
            self.outbox.push((Destination::One(from), ConsensusMessage::SyncResponse(blocks)));
        }
    }

    fn on_sync_response(&mut self, from: u32, blocks: Vec<CertifiedBlock>, host: &mut impl Host) {
        let before = self.height;
        // What each block costs, by the bound an honest answer stops at.
        let costs: Vec<(u64, usize)> =
            blocks.iter().map(|certified| (certified.block.header.height, sync_cost(certified))).collect();
        self.apply_sync_response(blocks, host);
        let cost: usize = costs
            .iter()
            .filter(|(height, _)| (before..self.height).contains(height))
            .map(|(_, cost)| *cost)
            .fold(0, usize::saturating_add);
        // A whole batch is an answer, in blocks or in bytes. An honest answer cut by the byte
        // bound stops before the block that would cross it, so one of blocks up to half the
        // bound each fills half of it; an answer of larger blocks may fill less, and then the
        // next request goes round, as after an answer of fewer blocks (all the sender has, or
        // a sender feeding them one at a time). That costs a slower catch-up, never a stall:
        // every answer taken is real blocks.
        let taken = self.height.saturating_sub(before);
        let whole = taken >= self.config.sync_batch_max as u64
            || (taken > 0 && cost >= self.config.sync_bytes_max / 2);
        if whole && self.last_sync_peer.is_some_and(|(asked, _)| asked == from) {
            self.last_sync_peer = Some((from, true));
        }
    }

    fn apply_sync_response(&mut self, blocks: Vec<CertifiedBlock>, host: &mut impl Host) {
        for CertifiedBlock { block, certificate } in blocks {
            if block.header.height < self.height {
                continue;
            }
            if block.header.height > self.height {
                break;
            }
            let hash = block.header.hash();
            if !self.certificate_valid(&certificate, VoteKind::Commit, self.height)
                || certificate.block != hash
            {
                self.counters.rejected_certificate += 1;
                return;
            }
            if block.header.parent != self.last_hash {
                self.counters.rejected_bad_body += 1;
                return;
            }
            // A commit certificate means a quorum, so at least one honest validator, validated the
            // block; validating again guards against executing something this node would refuse.
            if let Err(fault) = host.validate_block(&block) {
                self.counters.count_fault(fault);
                return;
            }
            self.finalize(block, certificate, host, true);
        }
    }

    fn broadcast(&mut self, message: ConsensusMessage) {
        self.send(Destination::All, message);
    }

    /// Sends `message` now and again every quarter timeout while this view lasts.
    fn send(&mut self, destination: Destination, message: ConsensusMessage) {
        self.outbox.push((destination.clone(), message.clone()));
        self.sent_this_view.push((destination, message));
    }

    /// Whether this set aggregates votes ([`ConsensusConfig::aggregate_votes_from`]).
    pub fn aggregates_votes(&self) -> bool {
        self.set.len() >= self.config.aggregate_votes_from
    }

    fn record(&mut self, evidence: Evidence) {
        self.counters.equivocations += 1;
        if self.evidence.len() < self.config.evidence_max {
            self.evidence.push(evidence);
        }
    }
}

/// How many leading blocks of a sync response are worth verifying for a node at `height`:
/// blocks below it are skipped first (moved out of the way), then the run of blocks that start
/// at `height`, each the next height, extending the previous one, with a commit certificate
/// naming it that is `shaped` ([`Core::certificate_shaped`]), at most `max`. Works on the
/// blocks in place: the first `n` returned are the ones to keep.
fn usable_sync_prefix(
    blocks: &mut Vec<CertifiedBlock>,
    height: u64,
    max: usize,
    shaped: impl Fn(&QuorumCertificate) -> bool,
) -> usize {
    let below = blocks.iter().take_while(|certified| certified.block.header.height < height).count();
    blocks.drain(..below);
    let mut previous: Option<Hash> = None;
    let mut next = height;
    blocks
        .iter()
        .take(max.max(1))
        .take_while(|certified| {
            let header = &certified.block.header;
            let hash = header.hash();
            let fits = header.height == next
                && previous.is_none_or(|parent| header.parent == parent)
                && certified.certificate.kind == VoteKind::Commit
                && certified.certificate.block == hash
                && certified.certificate.height == header.height
                && shaped(&certified.certificate);
            previous = Some(hash);
            next = next.saturating_add(1);
            fits
        })
        .count()
}

/// What a finalized block costs, in bytes, in a sync response (its byte bound) and in the
/// sync history held in memory (`history_bytes_max`): its transactions, its header, each
/// certificate signature and signer index, and a fixed allowance for the rest. A flat
/// allowance for the certificate undercounted it with many validators (a quorum of 67 carries
/// about 4.5 KB of signatures), so a history of empty blocks held several times its budget.
pub fn sync_cost(certified: &CertifiedBlock) -> usize {
    let certificate = &certified.certificate;
    certified.block.txns.len() * tessera_components::constants::TXN_SIZE
        + size_of::<tessera_components::BlockHeader>()
        + certificate.signatures.len() * size_of::<tessera_components::Signature>()
        + certificate.signers.len() * size_of::<u32>()
        + 256
}

/// The blocks of one sync response: the leading run of `blocks` that fits
/// `config.sync_batch_max` blocks and `config.sync_bytes_max` bytes by [`sync_cost`], always
/// at least the first block (so a peer behind by one oversized block still catches up).
/// `blocks` is read lazily, one block past the bound at most, so it may be a range read from
/// storage that stops at the first missing height.
pub fn bounded_sync_batch(
    blocks: impl IntoIterator<Item = CertifiedBlock>,
    config: &ConsensusConfig,
) -> Vec<CertifiedBlock> {
    let mut bytes = 0;
    let batch: Vec<CertifiedBlock> = blocks
        .into_iter()
        .take(config.sync_batch_max)
        .take_while(|certified| {
            let first = bytes == 0;
            bytes += sync_cost(certified);
            first || bytes <= config.sync_bytes_max
        })
        .collect();
    debug_assert!(batch.len() <= config.sync_batch_max.max(1));
    batch
}

/// A signature a message carries: (public key, signed bytes, signature).
pub type SignedBy = ([u8; 32], Arc<[u8]>, [u8; 64]);

/// Every (public key, message, signature) a message carries, for batch verification before
/// [`Core::on_message`]. A message is accepted only if all of them verify. Signer indexes
/// that name no validator make the message invalid (`None`).
pub fn signatures_of(message: &ConsensusMessage, set: &ValidatorSet) -> Option<Vec<SignedBy>> {
    let mut out = Vec::new();
    let qc_signatures = |qc: &QuorumCertificate, out: &mut Vec<SignedBy>| -> Option<()> {
        if qc.signers.len() != qc.signatures.len() || qc.signers.len() > set.len() {
            return None;
        }
        // One copy of the signed bytes, shared by every signer's entry.
        let message: Arc<[u8]> =
            Arc::from(&vote_signing_bytes(set.chain(), qc.kind, qc.view, qc.height, &qc.block)[..]);
        for (signer, signature) in qc.signers.iter().zip(&qc.signatures) {
            out.push((*set.key(*signer)?, message.clone(), signature.0));
        }
        Some(())
    };
    match message {
        ConsensusMessage::Proposal(proposal) => {
            let header = &proposal.block.header;
            let message = Arc::from(
                &proposal_signing_bytes(set.chain(), proposal.view, header.height, &header.hash())[..],
            );
            // Signed by the view's leader (a re-proposed header names its original proposer).
            out.push((*set.key(set.leader(proposal.view))?, message, proposal.signature));
            if let Some(justify) = &proposal.justify {
                qc_signatures(justify, &mut out)?;
            }
        }
        ConsensusMessage::Vote(vote) => {
            let message = Arc::from(
                &vote_signing_bytes(set.chain(), vote.kind, vote.view, vote.height, &vote.block)[..],
            );
            out.push((*set.key(vote.voter)?, message, vote.signature));
        }
        ConsensusMessage::NewView(new_view) => {
            let message = Arc::from(
                &new_view_signing_bytes(
                    set.chain(),
                    new_view.view,
                    new_view.height,
                    new_view.high_qc.as_ref(),
                )[..],
            );
            out.push((*set.key(new_view.sender)?, message, new_view.signature));
            if let Some(qc) = &new_view.high_qc {
                qc_signatures(qc, &mut out)?;
            }
        }
        ConsensusMessage::SyncRequest { .. } => {}
        ConsensusMessage::SyncResponse(blocks) => {
            for certified in blocks {
                qc_signatures(&certified.certificate, &mut out)?;
            }
        }
        ConsensusMessage::Certificate(certificate) => qc_signatures(certificate, &mut out)?,
    }
    Some(out)
}

/// Keeps the messages whose every signature verifies, batch-verifying all of them at once
/// through the signature kernel. A (key, message, signature) that several messages carry, or
/// one message several times, is verified once. Returns the survivors in order, the number
/// dropped, and the number of signatures verified.
pub fn verify_messages(
    messages: Vec<(u32, ConsensusMessage)>,
    set: &ValidatorSet,
    batch_size: usize,
    stand_in: bool,
) -> (Vec<(u32, ConsensusMessage)>, u64, u64) {
    verify_messages_shared(messages, set, batch_size, stand_in, &SharedVerdicts::default())
}

/// [`verify_messages`], with the verdicts `shared` remembers taken from it (the simulator's
/// nodes share one memo; a node has none). `checked` counts the signatures this node needed
/// verified, whether or not the memo held them, so the counters do not depend on sharing.
pub fn verify_messages_shared(
    messages: Vec<(u32, ConsensusMessage)>,
    set: &ValidatorSet,
    batch_size: usize,
    stand_in: bool,
    shared: &SharedVerdicts,
) -> (Vec<(u32, ConsensusMessage)>, u64, u64) {
    let (kept, dropped, checked) = verify_messages_by_sender(messages, set, batch_size, stand_in, shared);
    (kept, dropped.len() as u64, checked)
}

/// [`verify_messages_shared`], naming the sender of each message dropped (in message order):
/// a bad signature, or a signer outside the set, is evidence against the validator that sent
/// it, since an honest validator sends only what it signed or verified.
pub fn verify_messages_by_sender(
    messages: Vec<(u32, ConsensusMessage)>,
    set: &ValidatorSet,
    batch_size: usize,
    stand_in: bool,
    shared: &SharedVerdicts,
) -> (Vec<(u32, ConsensusMessage)>, Vec<u32>, u64) {
    let extracted: Vec<Option<Vec<SignedBy>>> =
        messages.iter().map(|(_, message)| signatures_of(message, set)).collect();
    // The simulator's validators are sent the same messages: a certificate goes to every one.
    // What a batch keeps, and how many distinct signatures it carries, are a pure function of
    // the signatures it carries, so a batch another validator judged is judged again from the
    // memo, matched on all its bytes. A batch of one signature (a lone vote, which only its
    // aggregator receives when votes are aggregated) is left to the per-signature memo, at the
    // same cost, rather than crowding the batches out.
    let signatures: usize = extracted.iter().flatten().map(Vec::len).sum();
    let key = (shared.is_shared() && signatures > 1).then(|| batch_key(&extracted, stand_in));
    let remembered = key.as_deref().and_then(|key| shared.remembered_batch(key));
    let (keep, checked) = remembered.unwrap_or_else(|| {
        let judged = judge(&extracted, batch_size, stand_in, shared);
        if let Some(key) = key {
            shared.remember_batch(key, judged.clone());
        }
        judged
    });
    let mut kept = Vec::with_capacity(messages.len());
    let mut dropped = Vec::new();
    for (message, keep) in messages.into_iter().zip(keep) {
        if keep {
            kept.push(message);
        } else {
            dropped.push(message.0);
        }
    }
    (kept, dropped, checked)
}

/// How many signatures `message` carries (as [`signatures_of`] would list them, counted
/// without building the list).
fn signature_count(message: &ConsensusMessage) -> usize {
    let qc = |qc: &QuorumCertificate| qc.signatures.len();
    match message {
        ConsensusMessage::Proposal(proposal) => 1 + proposal.justify.as_ref().map_or(0, qc),
        ConsensusMessage::Vote(_) => 1,
        ConsensusMessage::NewView(new_view) => 1 + new_view.high_qc.as_ref().map_or(0, qc),
        ConsensusMessage::SyncRequest { .. } => 0,
        ConsensusMessage::SyncResponse(blocks) => {
            blocks.iter().fold(0usize, |sum, certified| sum.saturating_add(qc(&certified.certificate)))
        }
        ConsensusMessage::Certificate(certificate) => qc(certificate),
    }
}

/// What dropping `message` whole adds to `dropped_unverified`: its blocks for a sync response
/// (the count is of blocks there), else one.
fn dropped_count(message: &ConsensusMessage) -> u64 {
    match message {
        ConsensusMessage::SyncResponse(blocks) => blocks.len() as u64,
        _ => 1,
    }
}

/// The bytes that name a batch's signatures exactly, in order, and the verification mode:
/// each message's signatures (or that it has none to check, being malformed), each as key,
/// signature, and length-prefixed signed bytes.
fn batch_key(extracted: &[Option<Vec<SignedBy>>], stand_in: bool) -> Vec<u8> {
    let size: usize = extracted.iter().flatten().flatten().map(|(_, message, _)| 100 + message.len()).sum();
    let mut key = Vec::with_capacity(1 + 5 * extracted.len() + size);
    key.push(u8::from(stand_in));
    for signatures in extracted {
        let Some(signatures) = signatures else {
            key.push(0);
            continue;
        };
        key.push(1);
        key.extend_from_slice(&(signatures.len() as u32).to_le_bytes());
        for (public_key, message, signature) in signatures {
            key.extend_from_slice(public_key);
            key.extend_from_slice(signature);
            key.extend_from_slice(&(message.len() as u32).to_le_bytes());
            key.extend_from_slice(message);
        }
    }
    key
}

/// Which messages of a batch keep (every signature verifies) and how many distinct signatures
/// it carries, batch-verifying each distinct one once.
fn judge(
    extracted: &[Option<Vec<SignedBy>>],
    batch_size: usize,
    stand_in: bool,
    shared: &SharedVerdicts,
) -> (Vec<bool>, u64) {
    use foldhash::HashMap;

    use crate::kernels::sigverify::{VerifyItem, stand_in_sign, verify_many};

    // Each distinct signature once; `slots` maps every carried signature to its verdict.
    let mut unique: HashMap<(&[u8; 32], &[u8], &[u8; 64]), usize> = HashMap::default();
    let mut items: Vec<VerifyItem<'_>> = Vec::new();
    let slots: Vec<usize> = extracted
        .iter()
        .flatten()
        .flatten()
        .map(|(public_key, message, signature)| {
            *unique.entry((public_key, &message[..], signature)).or_insert_with(|| {
                items.push(VerifyItem { public_key, message, signature });
                items.len() - 1
            })
        })
        .collect();
    // Through the memo in either mode: a stand-in costs two hashes, more than finding it.
    let unique_verdicts = shared.remembered_signatures(&items, stand_in, |items| {
        if stand_in {
            items.iter().map(|item| *item.signature == stand_in_sign(item.public_key, item.message)).collect()
        } else {
            let mut verdicts = vec![false; items.len()];
            verify_many(items, &mut verdicts, batch_size.max(1));
            verdicts
        }
    });
    let mut verdicts = slots.iter().map(|slot| unique_verdicts[*slot]);
    let keep = extracted
        .iter()
        .map(|signatures| {
            // Consume exactly this message's verdicts (no short-circuit), to stay aligned.
            signatures.as_ref().is_some_and(|signatures| {
                verdicts.by_ref().take(signatures.len()).filter(|ok| !ok).count() == 0
            })
        })
        .collect();
    (keep, items.len() as u64)
}

/// The set of blocks finalized by a group of validators, for invariant checks: height → hash.
pub type FinalizedChain = BTreeMap<u64, Hash>;

/// Two validators finalized different blocks at one height.
#[derive(Clone, Copy, Debug, PartialEq, Eq, thiserror::Error)]
#[error(
    "safety violated at height {height}: node {first_node} finalized {first}, node {node} finalized {hash}"
)]
pub struct Disagreement {
    /// The height.
    pub height: u64,
    /// The validator that finalized the height first.
    pub first_node: u32,
    /// What it finalized.
    pub first: Hash,
    /// The validator that disagrees.
    pub node: u32,
    /// What that one finalized.
    pub hash: Hash,
}

/// The agreement invariant, checked one finalization at a time: the block first reported at
/// each height by any of a group of validators, against which every later report is checked.
/// [`check_agreement`] runs it over whole chains; a recorder can feed it as blocks finalize.
#[derive(Clone, Debug, Default)]
pub struct Agreement {
    canonical: BTreeMap<u64, (Hash, u32)>,
}

impl Agreement {
    /// Nothing finalized yet.
    pub fn new() -> Agreement {
        Agreement::default()
    }

    /// Records that validator `node` finalized `hash` at `height`.
    ///
    /// # Errors
    /// The [`Disagreement`] if another validator finalized a different block there first;
    /// the first block stays the one recorded.
    pub fn record(&mut self, node: u32, height: u64, hash: Hash) -> Result<(), Disagreement> {
        match self.canonical.get(&height) {
            Some(&(first, first_node)) if first != hash => {
                Err(Disagreement { height, first_node, first, node, hash })
            }
            Some(_) => Ok(()),
            None => {
                self.canonical.insert(height, (hash, node));
                Ok(())
            }
        }
    }

    /// The block first recorded at `height`.
    pub fn at(&self, height: u64) -> Option<Hash> {
        self.canonical.get(&height).map(|(hash, _)| *hash)
    }

    /// The highest height recorded.
    pub fn height_max(&self) -> Option<u64> {
        self.canonical.keys().next_back().copied()
    }
}

/// Checks agreement across honest validators' finalized chains: no two differ at any height
/// both have, and each is gap-free from height 1 (so every chain is a prefix of the longest).
/// Validators are named by their index in `chains`.
///
/// # Errors
/// A description of the first violation.
pub fn check_agreement(chains: &[&FinalizedChain]) -> Result<(), String> {
    let mut agreement = Agreement::new();
    for (node, chain) in chains.iter().enumerate() {
        let node = u32::try_from(node).expect("validator indexes fit u32");
        for (expected, (height, hash)) in (1u64..).zip(chain.iter()) {
            if *height != expected {
                return Err(format!("node {node} has a gap: height {height} where {expected} was expected"));
            }
            agreement.record(node, *height, *hash).map_err(|disagreement| disagreement.to_string())?;
        }
    }
    Ok(())
}

impl Core {
    /// Entries held in each buffer that input can grow (blocks, vote signatures, first votes,
    /// first proposals, view-change senders, early messages for the next height, proposals for
    /// future views, evidence, messages re-sent this view), for the fuzz harness's memory bound.
    pub fn held_entries(&self) -> [(&'static str, usize); 9] {
        [
            ("blocks", self.blocks.len()),
            ("votes", self.votes.values().map(BTreeMap::len).sum()),
            ("first_vote", self.first_vote.len()),
            ("first_proposal", self.first_proposal.len()),
            ("new_views", self.new_views.values().map(BTreeMap::len).sum()),
            ("next_height", self.next_height.len()),
            ("future", self.future.values().map(Vec::len).sum()),
            ("evidence", self.evidence.len()),
            ("sent_this_view", self.sent_this_view.len()),
        ]
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn certified(height: u64, txn_count: usize) -> CertifiedBlock {
        let txns = vec![bytemuck::Zeroable::zeroed(); txn_count];
        let header = tessera_components::BlockHeader {
            height,
            view: height,
            timestamp_ms: 0,
            proposer: 0,
            txn_count: u32::try_from(txn_count).expect("small"),
            parent: Hash::ZERO,
            txn_root: Block::compute_txn_root(&txns),
            state_root: Hash::ZERO,
        };
        let block = Block { header, txns: txns.into() };
        let certificate = QuorumCertificate {
            kind: VoteKind::Commit,
            view: height,
            height,
            block: block.header.hash(),
            signers: Vec::new(),
            signatures: Vec::new(),
        };
        CertifiedBlock { block, certificate }
    }

    fn heights(batch: &[CertifiedBlock]) -> Vec<u64> {
        batch.iter().map(|certified| certified.block.header.height).collect()
    }

    #[test]
    fn a_sync_batch_is_bounded_by_count_and_bytes_and_never_empty() {
        let blocks: Vec<CertifiedBlock> = (1..=10).map(|height| certified(height, 2)).collect();
        let cost = sync_cost(&blocks[0]);
        let config = |batch_max: usize, bytes_max: usize| ConsensusConfig {
            sync_batch_max: batch_max,
            sync_bytes_max: bytes_max,
            ..ConsensusConfig::default()
        };
        assert_eq!(heights(&bounded_sync_batch(blocks.clone(), &config(4, usize::MAX))), [1, 2, 3, 4]);
        assert_eq!(heights(&bounded_sync_batch(blocks.clone(), &config(64, 3 * cost))), [1, 2, 3]);
        assert_eq!(heights(&bounded_sync_batch(blocks.clone(), &config(64, 3 * cost - 1))), [1, 2]);
        // The first block goes even when it alone is over the byte bound.
        assert_eq!(heights(&bounded_sync_batch(blocks.clone(), &config(64, 0))), [1]);
        assert!(bounded_sync_batch(Vec::new(), &config(64, 0)).is_empty());
        // Read lazily: one block past the bound at most.
        let mut read = 0;
        let batch = bounded_sync_batch(blocks.iter().cloned().inspect(|_| read += 1), &config(64, 2 * cost));
        assert_eq!(heights(&batch), [1, 2]);
        assert_eq!(read, 3);
    }

    #[test]
    fn a_blocks_sync_cost_counts_its_certificate() {
        let empty = certified(1, 0);
        let mut signed = empty.clone();
        signed.certificate.signers = (0..67).collect();
        signed.certificate.signatures = vec![tessera_components::Signature([0; 64]); 67];
        // Each signature and signer index is held, as the block's transactions are.
        assert_eq!(sync_cost(&signed) - sync_cost(&empty), 67 * (64 + 4));
        assert_eq!(
            sync_cost(&certified(1, 3)) - sync_cost(&empty),
            3 * tessera_components::constants::TXN_SIZE
        );
        assert!(sync_cost(&empty) >= size_of::<tessera_components::BlockHeader>());
    }

    #[test]
    fn agreement_keeps_the_first_block_and_names_both_sides() {
        let (a, b) = (Hash::of(b"a"), Hash::of(b"b"));
        let mut agreement = Agreement::new();
        assert_eq!(agreement.height_max(), None);
        assert_eq!(agreement.record(2, 1, a), Ok(()));
        assert_eq!(agreement.record(0, 1, a), Ok(()));
        assert_eq!(
            agreement.record(1, 1, b),
            Err(Disagreement { height: 1, first_node: 2, first: a, node: 1, hash: b })
        );
        assert_eq!(agreement.at(1), Some(a));
        assert_eq!(agreement.record(1, 3, b), Ok(()));
        assert_eq!(agreement.height_max(), Some(3));

        let one: FinalizedChain = [(1, a), (2, b)].into_iter().collect();
        let other: FinalizedChain = [(1, a)].into_iter().collect();
        let forked: FinalizedChain = [(1, b)].into_iter().collect();
        let gap: FinalizedChain = [(1, a), (3, b)].into_iter().collect();
        assert_eq!(check_agreement(&[&one, &other]), Ok(()));
        assert_eq!(
            check_agreement(&[&one, &forked]),
            Err(format!("safety violated at height 1: node 0 finalized {a}, node 1 finalized {b}"))
        );
        assert_eq!(
            check_agreement(&[&gap]),
            Err("node 0 has a gap: height 3 where 2 was expected".to_string())
        );
    }

    #[test]
    fn a_validator_sets_quorums_intersect_in_an_honest_validator() {
        for n in 1..=40u32 {
            let set = ValidatorSet::new((0..n).map(|i| [i as u8; 32]).collect());
            let (n, f, q) = (n as usize, set.faults_tolerated(), set.quorum());
            assert_eq!((set.len(), set.is_empty()), (n, false));
            // f is the most faults with n ≥ 3f + 1; a quorum is the rest of the set.
            assert!(n > 3 * f && n <= 3 * (f + 1), "n = {n}, f = {f}");
            assert_eq!(q, n - f);
            // Two quorums share more than f validators; f + 1 faulty ones could not form one.
            assert!(2 * q - n > f, "n = {n}: quorums of {q} share only {}", 2 * q - n);
            assert!(f < q);
            let leaders: Vec<u32> = (0..2 * n as u64).map(|view| set.leader(view)).collect();
            assert!(leaders.iter().enumerate().all(|(view, leader)| *leader as usize == view % n));
            assert_eq!(set.key(n as u32 - 1), Some(&[n as u8 - 1; 32]));
            assert_eq!(set.key(n as u32), None);
            assert_eq!(set.keys().len(), n);
        }
    }

    #[test]
    fn all_goes_to_everyone_but_me_and_one_to_one() {
        assert_eq!(Destination::All.recipients(1, 4).collect::<Vec<_>>(), [0, 2, 3]);
        assert_eq!(Destination::All.recipients(7, 3).collect::<Vec<_>>(), [0, 1, 2]);
        assert_eq!(Destination::All.recipients(0, 0).count(), 0);
        assert_eq!(Destination::One(2).recipients(1, 4).collect::<Vec<_>>(), [2]);
        assert_eq!(Destination::One(u32::MAX).recipients(0, 4).collect::<Vec<_>>(), [u32::MAX]);
    }
}
