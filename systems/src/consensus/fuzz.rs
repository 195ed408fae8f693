//! Fuzz harnesses for consensus: certificates, single protocol messages, and sequences of
//! messages and timer ticks against one validator's [`Core`].
//!
//! The fixture is a four-validator set whose keys derive from a fixed seed
//! ([`crate::workload::signing_key`]); the validator under test is index 0. The harness holds
//! the other three keys, so it can sign anything they could: structurally generated messages
//! are signed for real, and messages decoded from arbitrary bytes are re-signed by the
//! validators they name. Messages that would need validator 0's own signature are dropped, as
//! verification would drop them. That is a stronger adversary than the protocol's f = 1, so
//! the checks here are the ones that must hold whatever the other validators do: no panic;
//! finalized heights contiguous, each block extending the last and certified by a commit
//! quorum; only blocks this node built or validated are committed; every buffer bounded.

use std::cell::{Cell, RefCell};
use std::collections::{BTreeSet, HashMap};
use std::sync::OnceLock;

use arbitrary::Unstructured;
use ed25519_dalek::{Signer, SigningKey};
use tessera_components::ChainTag;
use tessera_components::consensus::{new_view_signing_bytes, proposal_signing_bytes};
use tessera_components::fuzz::fuzz_payload;
use tessera_components::wire::{Frame, FrameKind};
use tessera_components::{
    Block, BlockHeader, CertifiedBlock, ConsensusMessage, Hash, NewView, Proposal, QuorumCertificate,
    Signature, Txn, TxnBody, TxnSignature, Vote, VoteKind, merkle_root, vote_signing_bytes,
};

use crate::kernels::sigverify::stand_in_sign;

use super::core::{
    BlockFault, ConsensusConfig, Core, Destination, Host, ValidatorSet, signatures_of, verify_messages,
};

/// Validators in the fixture set.
const VALIDATORS: u32 = 4;
/// The validator under test.
const ME: u32 = 0;
/// A state root the fixture host refuses, so proposals can carry a wrong one.
const BAD_STATE_ROOT: u8 = 0xba;
/// Most transactions the fixture host accepts in a block.
const BLOCK_TXN_MAX: usize = 3;

fn keys() -> &'static [SigningKey] {
    static KEYS: OnceLock<Vec<SigningKey>> = OnceLock::new();
    KEYS.get_or_init(|| (0..u64::from(VALIDATORS)).map(|i| crate::workload::signing_key(0xf022, i)).collect())
}

fn validator_set() -> ValidatorSet {
    ValidatorSet::new(keys().iter().map(|key| key.verifying_key().to_bytes()).collect())
}

fn config() -> ConsensusConfig {
    ConsensusConfig {
        view_timeout_ns: 1_000,
        view_timeout_max_ns: 16_000,
        sync_batch_max: 4,
        view_window: 8,
        evidence_max: 16,
        block_interval_ns: 0,
        sync_bytes_max: 1 << 20,
        stand_in_signatures: false,
        aggregate_votes_from: usize::MAX,
        forward_to_leaders_from: usize::MAX,
    }
}

/// The validator under test, at height 1 after the zero genesis hash.
#[cfg(test)]
fn fixture_core() -> Core {
    Core::new(ME, keys()[ME as usize].clone(), validator_set(), config(), 0, Hash::ZERO)
}

thread_local! {
    /// Whether this thread's harness signs with stand-in tags ([`stand_in_sign`]) instead of
    /// Ed25519: set by [`Run::start`] for the validator under test's whole run.
    static STAND_IN: Cell<bool> = const { Cell::new(false) };
}

/// Signs as validator `signer`, for real or with stand-in tags as this thread's run does.
/// Signatures are deterministic, so a bounded cache of recent ones saves the fuzzer re-signing
/// the messages its mutations keep unchanged.
fn sign(signer: u32, message: &[u8]) -> [u8; 64] {
    thread_local! {
        static CACHE: RefCell<HashMap<(bool, u32, Vec<u8>), [u8; 64]>> = RefCell::new(HashMap::new());
    }
    let stand_in = STAND_IN.with(Cell::get);
    CACHE.with(|cache| {
        let mut cache = cache.borrow_mut();
        if let Some(signature) = cache.get(&(stand_in, signer, message.to_vec())) {
            return *signature;
        }
        if cache.len() >= 1 << 14 {
            cache.clear();
        }
        let key = &keys()[signer as usize];
        let signature = if stand_in {
            stand_in_sign(&key.verifying_key().to_bytes(), message)
        } else {
            key.sign(message).to_bytes()
        };
        cache.insert((stand_in, signer, message.to_vec()), signature);
        signature
    })
}

/// The votes the validator under test sent: (kind, view, height, block). A certificate may
/// carry its signature on exactly these, as one built by honest peers would.
type OwnVotes = BTreeSet<(VoteKind, u64, u64, Hash)>;

/// Re-signs a certificate's votes by the signers it names; false if it names an unknown
/// validator, or validator 0 on a vote it did not send, or is malformed (verification would drop
/// the message carrying it).
fn resign_certificate(qc: &mut QuorumCertificate, own: &OwnVotes) -> bool {
    if qc.signers.len() != qc.signatures.len() || qc.signers.len() > VALIDATORS as usize {
        return false;
    }
    let message = vote_signing_bytes(&ChainTag::TEST, qc.kind, qc.view, qc.height, &qc.block);
    let mine = own.contains(&(qc.kind, qc.view, qc.height, qc.block));
    for (signer, signature) in qc.signers.iter().zip(qc.signatures.iter_mut()) {
        if (*signer == ME && !mine) || *signer >= VALIDATORS {
            return false;
        }
        *signature = Signature(sign(*signer, &message));
    }
    true
}

/// Re-signs every signature a message carries by the validator it names; false if one of them
/// would have to be validator 0's (except its own votes in certificates) or names nobody.
fn resign(message: &mut ConsensusMessage, set: &ValidatorSet, own: &OwnVotes) -> bool {
    match message {
        ConsensusMessage::Proposal(proposal) => {
            let leader = set.leader(proposal.view);
            if leader == ME || proposal.justify.as_mut().is_some_and(|qc| !resign_certificate(qc, own)) {
                return false;
            }
            let header = &proposal.block.header;
            proposal.signature = sign(
                leader,
                &proposal_signing_bytes(&ChainTag::TEST, proposal.view, header.height, &header.hash()),
            );
            true
        }
        ConsensusMessage::Vote(vote) => {
            if vote.voter == ME || vote.voter >= VALIDATORS {
                return false;
            }
            vote.signature = sign(
                vote.voter,
                &vote_signing_bytes(&ChainTag::TEST, vote.kind, vote.view, vote.height, &vote.block),
            );
            true
        }
        ConsensusMessage::NewView(new_view) => {
            if new_view.sender == ME
                || new_view.sender >= VALIDATORS
                || new_view.high_qc.as_mut().is_some_and(|qc| !resign_certificate(qc, own))
            {
                return false;
            }
            let bytes = new_view_signing_bytes(
                &ChainTag::TEST,
                new_view.view,
                new_view.height,
                new_view.high_qc.as_ref(),
            );
            new_view.signature = sign(new_view.sender, &bytes);
            true
        }
        ConsensusMessage::SyncRequest { .. } => true,
        ConsensusMessage::SyncResponse(blocks) => {
            blocks.iter_mut().all(|b| resign_certificate(&mut b.certificate, own))
        }
        ConsensusMessage::Certificate(certificate) => resign_certificate(certificate, own),
    }
}

/// The validator whose link a message would arrive on: its signer (a sync message may come from
/// anyone but validator 0).
fn natural_sender(message: &ConsensusMessage, set: &ValidatorSet, other: u32) -> u32 {
    match message {
        ConsensusMessage::Proposal(proposal) => set.leader(proposal.view),
        ConsensusMessage::Vote(vote) => vote.voter,
        ConsensusMessage::NewView(new_view) => new_view.sender,
        ConsensusMessage::SyncRequest { .. }
        | ConsensusMessage::SyncResponse(_)
        | ConsensusMessage::Certificate(_) => other,
    }
}

/// A host with no ledger: blocks are valid unless their shape says otherwise, and every
/// commit is checked against what this host built or validated.
#[derive(Clone, Debug, Default, PartialEq)]
struct FixtureHost {
    /// The height and hash the validator started after (its chain below is not held here).
    base_height: u64,
    base_hash: Hash,
    chain: Vec<CertifiedBlock>,
    /// Blocks built or validated at the height being decided.
    accepted: BTreeSet<Hash>,
}

impl FixtureHost {
    fn last_hash(&self) -> Hash {
        self.chain.last().map_or(self.base_hash, |last| last.certificate.block)
    }
}

fn fixture_state_root(height: u64) -> Hash {
    Hash::in_domain("tessera 2026 fuzz state root", &[&height.to_le_bytes()])
}

impl Host for FixtureHost {
    fn build_block(&mut self, height: u64, view: u64, parent: Hash, proposer: u32) -> Block {
        let header = BlockHeader {
            height,
            view,
            timestamp_ms: 0,
            proposer,
            txn_count: 0,
            parent,
            txn_root: merkle_root(&[]),
            state_root: fixture_state_root(height),
        };
        self.accepted.insert(header.hash());
        Block { header, txns: Vec::new().into() }
    }

    fn validate_block(&mut self, block: &Block) -> Result<(), BlockFault> {
        if block.txns.len() > BLOCK_TXN_MAX {
            return Err(BlockFault::OverLimit);
        }
        if block.header.txn_count as usize != block.txns.len()
            || Block::compute_txn_root(&block.txns) != block.header.txn_root
        {
            return Err(BlockFault::BadBody);
        }
        if block.txns.iter().any(|txn| txn.body.amount == 0) {
            return Err(BlockFault::InvalidTransaction);
        }
        if block.header.state_root.0[0] == BAD_STATE_ROOT {
            return Err(BlockFault::WrongStateRoot);
        }
        self.accepted.insert(block.header.hash());
        Ok(())
    }

    fn commit_block(&mut self, block: &Block, certificate: &QuorumCertificate) {
        let hash = block.header.hash();
        assert!(self.accepted.contains(&hash), "committed a block this node neither built nor validated");
        assert_eq!(
            block.header.height,
            self.base_height + self.chain.len() as u64 + 1,
            "committed out of height order"
        );
        assert_eq!(block.header.parent, self.last_hash(), "committed block does not extend the chain");
        assert_eq!(certificate.kind, VoteKind::Commit, "finalized without a commit certificate");
        assert_eq!((certificate.block, certificate.height), (hash, block.header.height));
        let signers: BTreeSet<u32> = certificate.signers.iter().copied().collect();
        assert_eq!(signers.len(), certificate.signers.len(), "a signer counted twice");
        assert!(signers.len() >= validator_set().quorum(), "finalized short of a quorum");
        assert!(signers.iter().all(|signer| *signer < VALIDATORS));
        self.chain.push(CertifiedBlock { block: block.clone(), certificate: certificate.clone() });
        self.accepted.clear();
    }

    fn finalized_block(&self, height: u64) -> Option<CertifiedBlock> {
        self.chain.get(usize::try_from(height.checked_sub(self.base_height + 1)?).ok()?).cloned()
    }
}

/// One validator under test and everything the harness knows about it.
struct Run {
    core: Core,
    host: FixtureHost,
    set: ValidatorSet,
    now_ns: u64,
    /// Blocks seen in proposals (the node's own and the harness's), newest last, for votes and
    /// certificates to refer to.
    known: Vec<Block>,
    /// Verify every delivered message and every message the node sends through the real
    /// signature path (slow: `cargo test` only).
    thorough: bool,
    /// Everyone, the validator under test included, signs with stand-in tags, and every
    /// delivered and sent message is verified through the stand-in path (cheap: the fuzzer's
    /// setting).
    stand_in: bool,
    /// The votes the validator under test sent, which certificates may carry.
    own_votes: OwnVotes,
    /// Certificates the harness built carrying the validator's own vote.
    own_certificates: u64,
    /// When the validator under test last asked a peer for blocks.
    last_sync_request_ns: Option<u64>,
}

impl Run {
    /// A run at height 1 with real signatures.
    fn new(thorough: bool) -> Run {
        Run::start(thorough, false, 0, false)
    }

    /// A run of the validator under test started after height `last_height` (its earlier blocks
    /// not held, as after a restore), signing for real or with stand-in tags.
    fn start(thorough: bool, stand_in: bool, last_height: u64, aggregate: bool) -> Run {
        STAND_IN.with(|flag| flag.set(stand_in));
        let base_hash = if last_height == 0 {
            Hash::ZERO
        } else {
            Hash::in_domain("tessera 2026 fuzz base", &[&last_height.to_le_bytes()])
        };
        let config = ConsensusConfig {
            stand_in_signatures: stand_in,
            aggregate_votes_from: if aggregate { 1 } else { usize::MAX },
            ..config()
        };
        let core =
            Core::new(ME, keys()[ME as usize].clone(), validator_set(), config, last_height, base_hash);
        let mut run = Run {
            core,
            host: FixtureHost { base_height: last_height, base_hash, ..FixtureHost::default() },
            set: validator_set(),
            now_ns: 0,
            known: Vec::new(),
            thorough,
            stand_in,
            own_votes: OwnVotes::new(),
            own_certificates: 0,
            last_sync_request_ns: None,
        };
        run.core.start(0, &mut run.host);
        run.settle();
        run
    }

    /// Whether messages are checked through the verification path on the way in and out.
    fn verifies(&self) -> bool {
        self.thorough || self.stand_in
    }

    fn learn(&mut self, block: &Block) {
        if !self.known.iter().any(|known| known.header == block.header) {
            if self.known.len() >= 16 {
                self.known.remove(0);
            }
            self.known.push(block.clone());
        }
    }

    /// Delivers a message from `from`, as the node would after verification.
    fn deliver(&mut self, from: u32, message: ConsensusMessage) {
        if self.verifies() {
            let (kept, _, _) = verify_messages(vec![(from, message.clone())], &self.set, 4, self.stand_in);
            assert_eq!(kept.len(), 1, "a message the harness signed fails verification: {message:?}");
        }
        if let ConsensusMessage::Proposal(proposal) = &message {
            self.learn(&proposal.block);
        }
        // The cheap checks the node runs before verification may drop only what the core
        // would ignore. The core under test gets the message as they leave it; a copy gets it
        // whole; both must end in the same state, and the checks must count what they removed.
        // A sync response is compared when its heights run consecutively, as an honest peer's
        // do: then only the blocks below the node's height and those past the bound on one
        // response's work, `sync_batch_max` usable blocks, may be cut.
        let reference = self.core.clone();
        let mut filtered = vec![(from, message.clone())];
        let dropped = self.core.drop_before_verification(&mut filtered);
        let changed = filtered.first().is_none_or(|(_, kept)| *kept != message);
        assert_eq!(
            dropped,
            removed(&message, filtered.first().map(|(_, kept)| kept)),
            "the cheap checks miscounted what they dropped from {message:?}"
        );
        let comparable = match &message {
            ConsensusMessage::SyncResponse(blocks) => blocks
                .windows(2)
                .all(|pair| pair[0].block.header.height.checked_add(1) == Some(pair[1].block.header.height)),
            _ => true,
        };
        let reference = (changed && comparable).then(|| {
            let (mut core, mut host) = (reference, self.host.clone());
            let mut whole = message;
            if let ConsensusMessage::SyncResponse(blocks) = &mut whole {
                blocks.retain(|certified| certified.block.header.height >= core.height());
                blocks.truncate(config().sync_batch_max);
            }
            core.on_message(from, whole, &mut host);
            (core, host)
        });
        for (from, kept) in filtered {
            self.core.on_message(from, kept, &mut self.host);
        }
        if let Some((core, host)) = reference {
            assert!(
                self.core.same_state_as(&core) && self.host == host,
                "the cheap checks dropped part of a message the core would use; left:\n{:?}\nright:\n{core:?}",
                self.core
            );
        }
        self.settle();
    }

    /// Drains what the node produced and checks the invariants.
    fn settle(&mut self) {
        let outbox = self.core.drain_outbox();
        assert!(outbox.len() <= 64, "one step produced {} messages", outbox.len());
        // Sync requests are paced: one peer asked at a time, at most once a quarter of the base
        // view timeout, never the node itself, for the blocks from its height on.
        let requests: Vec<_> = outbox
            .iter()
            .filter_map(|(to, message)| match message {
                ConsensusMessage::SyncRequest { from_height } => Some((to.clone(), *from_height)),
                _ => None,
            })
            .collect();
        if let Some((to, from_height)) = requests.first().cloned() {
            assert_eq!(requests.len(), 1, "several sync requests in one step: {requests:?}");
            assert!(matches!(to, Destination::One(peer) if peer != ME), "sync request sent to {to:?}");
            assert!(
                from_height <= self.core.height(),
                "asked for blocks from {from_height}, past its height"
            );
            if let Some(last) = self.last_sync_request_ns {
                let since = self.now_ns - last;
                assert!(
                    since >= config().view_timeout_ns / 4,
                    "asked again for blocks {since} ns after the last request"
                );
            }
            self.last_sync_request_ns = Some(self.now_ns);
        }
        for (destination, message) in outbox {
            match &destination {
                Destination::One(to) => assert!(*to != ME && *to < VALIDATORS, "message addressed to {to}"),
                Destination::Some(list) => {
                    assert!(!list.is_empty(), "a message addressed to nobody");
                    assert!(
                        list.windows(2).all(|pair| pair[0] < pair[1]),
                        "recipients out of order: {list:?}"
                    );
                    assert!(
                        list.iter().all(|to| *to != ME && *to < VALIDATORS),
                        "message addressed to {list:?}"
                    );
                }
                Destination::All => {}
            }
            if let ConsensusMessage::Proposal(proposal) = &message {
                self.learn(&proposal.block);
            }
            if let ConsensusMessage::Vote(vote) = &message {
                self.own_votes.insert((vote.kind, vote.view, vote.height, vote.block));
            }
            if self.verifies() && !matches!(message, ConsensusMessage::SyncResponse(_)) {
                // What the node signs, its peers accept (a sync response carries others' votes).
                let (kept, _, _) = verify_messages(vec![(ME, message.clone())], &self.set, 4, self.stand_in);
                assert_eq!(kept.len(), 1, "the node sent a message its peers would drop: {message:?}");
            }
        }
        let finalized = self.core.drain_finalized();
        let first = self.host.chain.len() - finalized.len();
        for (offset, certified) in finalized.iter().enumerate() {
            assert_eq!(
                certified,
                &self.host.chain[first + offset],
                "reported finalized blocks differ from commits"
            );
        }
        assert_eq!(
            self.core.height(),
            self.host.base_height + self.host.chain.len() as u64 + 1,
            "height is not one past the last commit"
        );
        let config = config();
        let views = config.view_window as usize + 3;
        let n = VALIDATORS as usize;
        for (name, held) in self.core.held_entries() {
            let bound = match name {
                "blocks" => 64,
                "votes" | "first_vote" => 2 * views * n,
                "first_proposal" => views,
                "new_views" => views * n,
                "next_height" => 1024,
                "future" => 4 * config.view_window as usize,
                "evidence" => config.evidence_max,
                _ => 8,
            };
            assert!(held <= bound, "{name} holds {held} entries, more than {bound}");
        }
    }

    fn pick_view(&self, u: &mut Unstructured<'_>) -> arbitrary::Result<u64> {
        let view = self.core.view();
        Ok(match u.int_in_range(0..=15u8)? {
            0 => u.arbitrary()?,
            1 => u64::MAX - u64::from(u.int_in_range(0..=3u8)?),
            2 => view.saturating_sub(u.int_in_range(0..=4)?),
            3 => view.saturating_add(u.int_in_range(0..=2 * config().view_window)?),
            _ => view.saturating_add(u.int_in_range(0..=2)?),
        })
    }

    fn pick_height(&self, u: &mut Unstructured<'_>) -> arbitrary::Result<u64> {
        let height = self.core.height();
        Ok(match u.int_in_range(0..=11u8)? {
            0 => u.arbitrary()?,
            1 => height.saturating_sub(u.int_in_range(1..=3)?),
            2 | 3 => height + 1,
            4 => height + 2,
            _ => height,
        })
    }

    fn pick_block(&self, u: &mut Unstructured<'_>) -> arbitrary::Result<Hash> {
        if self.known.is_empty() || u.ratio(1, 8)? {
            return Ok(Hash(u.arbitrary()?));
        }
        // Recent blocks are the likeliest to matter.
        let back = usize::from(u.int_in_range(0..=3u8)?).min(self.known.len() - 1);
        Ok(self.known[self.known.len() - 1 - back].header.hash())
    }

    /// A non-empty set of the other validators, sorted; rarely unsorted or repeated.
    fn pick_signers(&self, u: &mut Unstructured<'_>) -> arbitrary::Result<Vec<u32>> {
        let mut signers: Vec<u32> = match u.int_in_range(0..=7u8)? {
            0 => vec![1 + u32::from(u.int_in_range(0..=2u8)?)],
            1 => vec![1, 2],
            2 => vec![2, 3],
            _ => vec![1, 2, 3],
        };
        if u.ratio(1, 16)? {
            signers.reverse();
        }
        if u.ratio(1, 16)? {
            signers.push(signers[0]);
        }
        Ok(signers)
    }

    fn certificate(
        &mut self,
        u: &mut Unstructured<'_>,
        kind: VoteKind,
        height: u64,
        block: Hash,
    ) -> arbitrary::Result<QuorumCertificate> {
        let mut view = self.pick_view(u)?;
        let mut signers = self.pick_signers(u)?;
        // Sometimes the validator's own vote, as honest peers would gather it into a certificate.
        let own = self.own_votes.iter().find(|(k, _, h, b)| *k == kind && *h == height && *b == block);
        if let Some((_, own_view, _, _)) = own
            && u.ratio(1, 2)?
        {
            view = *own_view;
            signers.retain(|signer| *signer != ME);
            signers.insert(0, ME);
            signers.truncate(VALIDATORS as usize);
            self.own_certificates += 1;
        }
        let message = vote_signing_bytes(&ChainTag::TEST, kind, view, height, &block);
        let signatures = signers.iter().map(|signer| Signature(sign(*signer, &message))).collect();
        Ok(QuorumCertificate { kind, view, height, block, signers, signatures })
    }

    fn txns(&self, u: &mut Unstructured<'_>) -> arbitrary::Result<Vec<Txn>> {
        let count = if u.ratio(3, 4)? { 0 } else { u.int_in_range(1..=BLOCK_TXN_MAX as u8 + 1)? };
        (0..count)
            .map(|i| {
                let body = TxnBody {
                    chain_id: 1,
                    reserved: 0,
                    sender: [i + 1; 32],
                    recipient: [0xee; 32],
                    amount: u64::from(u.int_in_range(0..=3u8)?),
                    fee: 1,
                    nonce: 0,
                };
                Ok(Txn { body, signature: TxnSignature([0; 64]) })
            })
            .collect()
    }

    /// A block at `height` by `proposer` in `view`, mostly well formed, extending the chain.
    fn block(
        &self,
        u: &mut Unstructured<'_>,
        height: u64,
        view: u64,
        proposer: u32,
        parent: Hash,
    ) -> arbitrary::Result<Block> {
        let txns = self.txns(u)?;
        let mut header = BlockHeader {
            height,
            view,
            timestamp_ms: u.int_in_range(0..=3)?,
            proposer,
            txn_count: txns.len() as u32,
            parent,
            txn_root: Block::compute_txn_root(&txns),
            state_root: fixture_state_root(height),
        };
        match u.int_in_range(0..=15u8)? {
            0 => header.state_root.0[0] = BAD_STATE_ROOT,
            1 => header.txn_count += 1,
            2 => header.txn_root = Hash(u.arbitrary()?),
            3 => header.view = self.pick_view(u)?,
            4 => header.proposer = u.int_in_range(0..=VALIDATORS)?,
            _ => {}
        }
        Ok(Block { header, txns: txns.into() })
    }

    fn pick_parent(&self, u: &mut Unstructured<'_>) -> arbitrary::Result<Hash> {
        Ok(match u.int_in_range(0..=9u8)? {
            0 => Hash(u.arbitrary()?),
            1 => self.pick_block(u)?,
            _ => self.host.last_hash(),
        })
    }

    fn other(&self, u: &mut Unstructured<'_>) -> arbitrary::Result<u32> {
        u.int_in_range(1..=VALIDATORS - 1)
    }

    /// One step of the sequence.
    fn step(&mut self, u: &mut Unstructured<'_>) -> arbitrary::Result<()> {
        match u.int_in_range(0..=16u8)? {
            0..=2 => {
                let timeout = config().view_timeout_ns;
                let advance = match u.int_in_range(0..=7u8)? {
                    0 => 0,
                    1 => u.arbitrary::<u32>()?.into(),
                    _ => u.int_in_range(1..=timeout * 2)?,
                };
                let deadline = self.core.next_deadline_ns();
                self.now_ns = self.now_ns.saturating_add(advance);
                // The node and the simulator sleep until the core's deadline: a tick before it
                // must change nothing but the clock.
                let early = (self.now_ns < deadline).then(|| (self.core.clone(), self.host.clone()));
                self.core.tick(self.now_ns, &mut self.host);
                if let Some((core, host)) = early {
                    assert!(
                        self.core.same_state_as(&core)
                            && self.host == host
                            && self.core.counters() == core.counters(),
                        "a tick at {} ns, before the deadline {deadline} ns, changed the state",
                        self.now_ns
                    );
                }
                self.settle();
            }
            3 => {
                // Arbitrary bytes as a consensus message, re-signed by whoever it names.
                let length = u.int_in_range(0..=400usize)?;
                let bytes = u.bytes(length)?;
                if let Some(Frame::Consensus(mut message)) = fuzz_payload(FrameKind::Consensus, bytes) {
                    let other = self.other(u)?;
                    let from =
                        if u.ratio(1, 8)? { other } else { natural_sender(&message, &self.set, other) };
                    if from != ME && from < VALIDATORS && resign(&mut message, &self.set, &self.own_votes) {
                        self.deliver(from, message);
                    }
                }
            }
            4 | 5 => {
                // A proposal: fresh, or a known block re-proposed with a prepare certificate.
                let view = self.pick_view(u)?;
                let leader = self.set.leader(view);
                if leader == ME {
                    return Ok(());
                }
                let (block, justify) = if !self.known.is_empty() && u.ratio(1, 4)? {
                    let block = self.known[u.choose_index(self.known.len())?].clone();
                    let qc =
                        self.certificate(u, VoteKind::Prepare, block.header.height, block.header.hash())?;
                    (block, Some(qc))
                } else {
                    let height = self.pick_height(u)?;
                    let parent = self.pick_parent(u)?;
                    let block = self.block(u, height, view, leader, parent)?;
                    let justify = if u.ratio(1, 8)? {
                        Some(self.certificate(u, VoteKind::Prepare, height, block.header.hash())?)
                    } else {
                        None
                    };
                    (block, justify)
                };
                let header = block.header;
                let signature = sign(
                    leader,
                    &proposal_signing_bytes(&ChainTag::TEST, view, header.height, &header.hash()),
                );
                let from = if u.ratio(1, 16)? { self.other(u)? } else { leader };
                self.deliver(from, ConsensusMessage::Proposal(Proposal { view, block, justify, signature }));
            }
            6..=9 => {
                // Votes from some of the other validators for one block.
                let kind = if u.arbitrary()? { VoteKind::Prepare } else { VoteKind::Commit };
                let view = self.pick_view(u)?;
                let height = self.pick_height(u)?;
                let block = self.pick_block(u)?;
                for voter in self.pick_signers(u)? {
                    let signature =
                        sign(voter, &vote_signing_bytes(&ChainTag::TEST, kind, view, height, &block));
                    let from = if u.ratio(1, 32)? { self.other(u)? } else { voter };
                    self.deliver(
                        from,
                        ConsensusMessage::Vote(Vote { kind, view, height, block, voter, signature }),
                    );
                }
            }
            10 => {
                // Every other validator votes one phase for the newest known block, in this view.
                let Some(block) = self.known.last().map(|block| block.header) else { return Ok(()) };
                let kind = if u.arbitrary()? { VoteKind::Prepare } else { VoteKind::Commit };
                let view = self.core.view();
                for voter in 1..VALIDATORS {
                    let signature = sign(
                        voter,
                        &vote_signing_bytes(&ChainTag::TEST, kind, view, block.height, &block.hash()),
                    );
                    let vote =
                        Vote { kind, view, height: block.height, block: block.hash(), voter, signature };
                    self.deliver(voter, ConsensusMessage::Vote(vote));
                }
            }
            11 | 12 => {
                let sender = self.other(u)?;
                let view = self.pick_view(u)?;
                let height = self.pick_height(u)?;
                let high_qc = if u.arbitrary()? {
                    let block = self.pick_block(u)?;
                    let qc_height = if u.ratio(7, 8)? { height } else { self.pick_height(u)? };
                    let kind = if u.ratio(7, 8)? { VoteKind::Prepare } else { VoteKind::Commit };
                    Some(self.certificate(u, kind, qc_height, block)?)
                } else {
                    None
                };
                let signature =
                    sign(sender, &new_view_signing_bytes(&ChainTag::TEST, view, height, high_qc.as_ref()));
                let from = if u.ratio(1, 32)? { self.other(u)? } else { sender };
                self.deliver(
                    from,
                    ConsensusMessage::NewView(NewView { view, height, high_qc, sender, signature }),
                );
            }
            13 => {
                let from = self.other(u)?;
                let from_height =
                    if u.ratio(1, 4)? { u.arbitrary()? } else { u.int_in_range(0..=self.core.height())? };
                self.deliver(from, ConsensusMessage::SyncRequest { from_height });
            }
            15 => {
                // A certificate, as an aggregating leader broadcasts one.
                let kind = if u.arbitrary()? { VoteKind::Prepare } else { VoteKind::Commit };
                let height = if u.ratio(3, 4)? { self.core.height() } else { self.pick_height(u)? };
                let block = self.pick_block(u)?;
                let certificate = self.certificate(u, kind, height, block)?;
                let from = self.other(u)?;
                self.deliver(from, ConsensusMessage::Certificate(certificate));
            }
            _ => {
                // Finalized blocks from a peer, chained from this node's tip, each with a commit
                // certificate.
                let mut height = self.pick_height(u)?;
                let mut parent = self.pick_parent(u)?;
                let mut blocks = Vec::new();
                for _ in 0..u.int_in_range(1..=3u8)? {
                    let view = self.pick_view(u)?;
                    let block = self.block(u, height, view, self.set.leader(view), parent)?;
                    let hash = block.header.hash();
                    let kind = if u.ratio(15, 16)? { VoteKind::Commit } else { VoteKind::Prepare };
                    let certificate = self.certificate(u, kind, height, hash)?;
                    blocks.push(CertifiedBlock { block, certificate });
                    parent = hash;
                    height = height.saturating_add(1);
                }
                let from = self.other(u)?;
                self.deliver(from, ConsensusMessage::SyncResponse(blocks));
            }
        }
        Ok(())
    }
}

/// Messages and sync-response blocks the cheap checks removed from `message`, leaving `kept`.
fn removed(message: &ConsensusMessage, kept: Option<&ConsensusMessage>) -> u64 {
    match (message, kept) {
        (ConsensusMessage::SyncResponse(all), Some(ConsensusMessage::SyncResponse(left))) => {
            (all.len() - left.len()) as u64
        }
        (ConsensusMessage::SyncResponse(all), None) => all.len() as u64,
        (_, None) => 1,
        (_, Some(_)) => 0,
    }
}

/// Resets the thread's signing mode when a run ends, so other harnesses on the thread sign for
/// real.
struct RealSigningAfter;

impl Drop for RealSigningAfter {
    fn drop(&mut self) {
        STAND_IN.with(|flag| flag.set(false));
    }
}

/// One sequence: the first byte picks the height the validator starts after (mostly genesis,
/// sometimes a few, a few billion or 2^62 blocks in), the rest drives it. Thorough runs sign
/// for real and verify everything (slow); the others, the fuzzer's, sign with stand-in tags
/// and verify everything through that path.
/// What one sequence reached: steps taken, blocks finalized, the height it started after, and
/// certificates carrying the validator's own vote (read by the seeded test).
#[cfg_attr(not(test), allow(dead_code))]
struct Reach {
    steps: usize,
    finalized: u64,
    base_height: u64,
    own_certificates: u64,
}

fn sequence(data: &[u8], thorough: bool) -> Reach {
    let _reset = RealSigningAfter;
    let mut u = Unstructured::new(data);
    let last_height = match u.int_in_range(0..=7u8).unwrap_or(0) {
        5 => u.int_in_range(1..=64).unwrap_or(1),
        6 => (1 << 32) + u.int_in_range(0..=3).unwrap_or(0),
        7 => 1 << 62,
        _ => 0,
    };
    // Votes all-to-all, or to the view's leader with certificates broadcast (both protocols).
    let aggregate = u.arbitrary::<bool>().unwrap_or(false);
    let mut run = Run::start(thorough, !thorough, last_height, aggregate);
    let mut steps = 0;
    for _ in 0..96 {
        if u.is_empty() || run.step(&mut u).is_err() {
            break;
        }
        steps += 1;
    }
    Reach {
        steps,
        finalized: run.host.chain.len() as u64,
        base_height: run.host.base_height,
        own_certificates: run.own_certificates,
    }
}

/// Fuzz harness: one validator driven by a sequence of protocol messages (arbitrary bytes
/// decoded by the wire codec and re-signed, and structurally generated messages signed by the
/// other validators' keys) and timer ticks, checking the invariants in the module docs after
/// every step. Run by `cargo test` on seeded inputs (verifying every signature through the
/// real path as well) and by `fuzz/fuzz_targets/consensus_sequence.rs`.
#[cfg(any(test, fuzzing, feature = "fuzzing"))]
pub fn fuzz_sequence(data: &[u8]) {
    let _ = sequence(data, false);
}

/// Most validators in the sets the certificate harness tries.
const CERTIFICATE_SET_MAX: usize = 7;

/// Keys for sets of up to [`CERTIFICATE_SET_MAX`] validators: the fixture's four, then more
/// from the same derivation.
fn certificate_keys() -> &'static [SigningKey] {
    static KEYS: OnceLock<Vec<SigningKey>> = OnceLock::new();
    KEYS.get_or_init(|| {
        (0..CERTIFICATE_SET_MAX as u64).map(|i| crate::workload::signing_key(0xf022, i)).collect()
    })
}

/// The node's side of the certificate rule, as the harness calls it: the structural check
/// (`valid`, normally [`Core::certificate_valid`]) and the signature path (`verify`, normally
/// [`verify_messages`], returning how many of the messages it keeps). Tests substitute wrong
/// ones to show that the oracle catches them.
#[cfg(any(test, fuzzing, feature = "fuzzing"))]
#[derive(Clone, Copy, Debug)]
pub struct CertificatePaths {
    /// Structural validity of `qc` for a kind and height, by `core`, whose set is the one
    /// given.
    pub valid: fn(&Core, &ValidatorSet, &QuorumCertificate, VoteKind, u64) -> bool,
    /// The number of `messages` whose signatures all verify under `set`.
    pub verify: fn(Vec<(u32, ConsensusMessage)>, &ValidatorSet) -> usize,
}

/// The paths the node runs.
#[cfg(any(test, fuzzing, feature = "fuzzing"))]
pub const NODE_CERTIFICATE_PATHS: CertificatePaths = CertificatePaths {
    valid: |core, _, qc, kind, height| core.certificate_valid(qc, kind, height),
    verify: |messages, set| verify_messages(messages, set, 3, false).0.len(),
};

/// The quorum rule stated from first principles, sharing no code with the node's: for a set of
/// `keys.len()` = n validators, f is the largest number with 3f < n (the Byzantine validators
/// tolerated), and a certificate for `kind` at `height` is acceptable iff it names that kind
/// and height, its signers are listed in increasing order (one encoding per certificate) with
/// one signature each, every signer is a validator, every signature verifies on its own
/// against the signer's key and the vote's signing bytes, and the distinct signers number at
/// least n − f. `signature_ok[i]` says whether signature i verifies (see
/// `individual_verdicts`).
fn certificate_acceptable(
    qc: &QuorumCertificate,
    kind: VoteKind,
    height: u64,
    n: usize,
    signature_ok: &[bool],
) -> bool {
    let mut faults = 0;
    while 3 * (faults + 1) < n {
        faults += 1;
    }
    let quorum = n - faults;
    if qc.kind != kind || qc.height != height || qc.signers.len() != qc.signatures.len() {
        return false;
    }
    let mut distinct = BTreeSet::new();
    let mut previous = None;
    for (signer, ok) in qc.signers.iter().zip(signature_ok) {
        if previous.is_some_and(|previous| previous >= *signer) || *signer as usize >= n || !ok {
            return false;
        }
        previous = Some(*signer);
        distinct.insert(*signer);
    }
    distinct.len() >= quorum
}

/// Whether each of `qc`'s signatures verifies on its own, by the key of the validator it names
/// (of the [`CERTIFICATE_SET_MAX`]; a validator's key is the same in every set that has it),
/// over the vote's signing bytes. Checked with `ed25519_dalek`'s strict verifier: on the
/// fixture's prime-order keys it accepts exactly the real signatures, as the node's ZIP-215
/// rule does, short of a forgery.
fn individual_verdicts(qc: &QuorumCertificate) -> Vec<bool> {
    let message = vote_signing_bytes(&ChainTag::TEST, qc.kind, qc.view, qc.height, &qc.block);
    qc.signers
        .iter()
        .zip(&qc.signatures)
        .map(|(signer, signature)| {
            certificate_keys().get(*signer as usize).is_some_and(|key| {
                key.verifying_key()
                    .verify_strict(&message, &ed25519_dalek::Signature::from_bytes(&signature.0))
                    .is_ok()
            })
        })
        .collect()
}

/// Signs the votes of `qc` by the validators it names, where they exist, except signatures
/// whose first byte is 0xff, which stay as the input gave them (so an input can hold a bad
/// signature among good ones). Long signer lists are left alone: the node refuses them
/// before verification, and signing them would only slow the fuzzer.
fn sign_certificate(qc: &mut QuorumCertificate) {
    if qc.signers.len() > 2 * CERTIFICATE_SET_MAX {
        return;
    }
    let message = vote_signing_bytes(&ChainTag::TEST, qc.kind, qc.view, qc.height, &qc.block);
    for (signer, signature) in qc.signers.iter().zip(qc.signatures.iter_mut()) {
        if let Some(key) = certificate_keys().get(*signer as usize)
            && signature.0[0] != 0xff
        {
            *signature = Signature(key.sign(&message).to_bytes());
        }
    }
}

/// Fuzz harness for a certificate: `data` is a certificate frame's payload. Whatever decodes
/// re-encodes to the same bytes, and its signatures are extracted one per signer exactly when
/// it is well formed. Then, as decoded and with its votes signed by the validators it names
/// (`sign_certificate`), for validator sets of 1 to 7, kinds and heights: the node's verdict
/// (the signature path keeps a new-view message carrying it, and the core finds it valid)
/// equals `certificate_acceptable`, the rule stated independently. Run by `cargo test` on
/// seeded inputs and by `fuzz/fuzz_targets/certificate.rs`.
#[cfg(any(test, fuzzing, feature = "fuzzing"))]
pub fn fuzz_certificate(data: &[u8]) {
    fuzz_certificate_with(data, &NODE_CERTIFICATE_PATHS);
}

/// [`fuzz_certificate`] over the given paths, so tests can run the oracle against wrong ones.
#[cfg(any(test, fuzzing, feature = "fuzzing"))]
pub fn fuzz_certificate_with(data: &[u8], paths: &CertificatePaths) {
    let _ = certificate_accepted(data, paths);
}

/// The certificate harness; returns how many (set, kind, height) verdicts were acceptances, so
/// the seeded test can show that its inputs reach them.
fn certificate_accepted(data: &[u8], paths: &CertificatePaths) -> usize {
    let Some(Frame::Certificate(decoded)) = fuzz_payload(FrameKind::Certificate, data) else {
        return 0;
    };
    let mut accepted = 0;
    check_extraction(&decoded);
    let mut signed = decoded.clone();
    sign_certificate(&mut signed);
    for qc in [decoded, signed] {
        let signature_ok = individual_verdicts(&qc);
        let signing = new_view_signing_bytes(&ChainTag::TEST, qc.view, qc.height, Some(&qc));
        let carrier_signatures: Vec<[u8; 64]> =
            certificate_keys()[..2].iter().map(|key| key.sign(&signing).to_bytes()).collect();
        for n in 1..=CERTIFICATE_SET_MAX {
            let keys: Vec<[u8; 32]> =
                certificate_keys()[..n].iter().map(|key| key.verifying_key().to_bytes()).collect();
            let set = ValidatorSet::new(keys);
            let core =
                Core::new(ME, certificate_keys()[ME as usize].clone(), set.clone(), config(), 0, Hash::ZERO);
            // The certificate as a new view's high certificate, the sender's own signature good
            // (validator 0 when it is alone).
            let sender = u32::from(n > 1);
            let carrier = ConsensusMessage::NewView(NewView {
                view: qc.view,
                height: qc.height,
                high_qc: Some(qc.clone()),
                sender,
                signature: carrier_signatures[sender as usize],
            });
            let verified = (paths.verify)(vec![(sender, carrier)], &set) == 1;
            for kind in [VoteKind::Prepare, VoteKind::Commit] {
                for height in [qc.height, qc.height.wrapping_add(1)] {
                    let node = verified && (paths.valid)(&core, &set, &qc, kind, height);
                    let expected = certificate_acceptable(&qc, kind, height, n, &signature_ok);
                    accepted += usize::from(expected);
                    assert_eq!(
                        node, expected,
                        "n = {n}, {kind:?} at height {height}: the node's verdict {node} disagrees with the \
                         quorum rule's {expected} (signature path kept the carrier: {verified})"
                    );
                }
            }
        }
    }
    accepted
}

/// The signatures a message carrying `qc` must verify are one per signer, each the signer's
/// key over the vote's signing bytes, exactly when `qc` is well formed for the fixture set.
fn check_extraction(qc: &QuorumCertificate) {
    let set = validator_set();
    let carrier = ConsensusMessage::NewView(NewView {
        view: 0,
        height: 1,
        high_qc: Some(qc.clone()),
        sender: 1,
        signature: [0; 64],
    });
    let known = qc.signers.iter().all(|signer| *signer < VALIDATORS);
    let well_formed = qc.signers.len() == qc.signatures.len() && qc.signers.len() <= set.len() && known;
    match signatures_of(&carrier, &set) {
        Some(items) => {
            assert!(well_formed, "a malformed certificate yielded signatures to check");
            assert_eq!(items.len(), 1 + qc.signers.len(), "one signature per signer, plus the sender's");
            let message = vote_signing_bytes(&ChainTag::TEST, qc.kind, qc.view, qc.height, &qc.block);
            for ((key, signed, signature), (signer, expected)) in
                items[1..].iter().zip(qc.signers.iter().zip(&qc.signatures))
            {
                assert_eq!(Some(key), set.key(*signer));
                assert_eq!(&signed[..], message.as_slice());
                assert_eq!(signature, &expected.0);
            }
        }
        None => assert!(!well_formed, "a well-formed certificate was refused"),
    }
}

/// Fuzz harness for one consensus message: `data` is a sender byte, then a consensus frame's
/// payload. Whatever decodes re-encodes to the same bytes, the signatures it carries are
/// extracted consistently, and delivering it (signatures assumed good) to a fresh validator
/// keeps the invariants of [`fuzz_sequence`]. Run by `cargo test` on seeded inputs and by
/// `fuzz/fuzz_targets/consensus_message.rs`.
#[cfg(any(test, fuzzing, feature = "fuzzing"))]
pub fn fuzz_message(data: &[u8]) {
    let Some((&sender, payload)) = data.split_first() else {
        return;
    };
    let Some(Frame::Consensus(message)) = fuzz_payload(FrameKind::Consensus, payload) else {
        return;
    };
    let set = validator_set();
    if let Some(items) = signatures_of(&message, &set) {
        let certificates: usize = match &message {
            ConsensusMessage::Proposal(p) => p.justify.as_ref().map_or(0, |qc| qc.signers.len()),
            ConsensusMessage::NewView(v) => v.high_qc.as_ref().map_or(0, |qc| qc.signers.len()),
            ConsensusMessage::SyncResponse(blocks) => {
                blocks.iter().map(|b| b.certificate.signers.len()).sum()
            }
            ConsensusMessage::Certificate(qc) => qc.signers.len(),
            ConsensusMessage::Vote(_) | ConsensusMessage::SyncRequest { .. } => 0,
        };
        let own = usize::from(!matches!(
            message,
            ConsensusMessage::SyncRequest { .. }
                | ConsensusMessage::SyncResponse(_)
                | ConsensusMessage::Certificate(_)
        ));
        assert_eq!(items.len(), own + certificates, "signature count disagrees with the message");
    }
    let mut run = Run::new(false);
    // Any sender but the validator itself (an unknown index is counted and dropped).
    let from = 1 + u32::from(sender) % VALIDATORS;
    run.deliver(from, message);
    run.core.tick(1, &mut run.host);
    run.settle();
}

#[cfg(test)]
mod core_tests;

#[cfg(test)]
mod tests {
    use tessera_components::fuzz::{FuzzSeeds, fuzz_corpus};
    use tessera_components::wire::encode;

    use super::*;

    fn payload(frame: &Frame) -> Vec<u8> {
        encode(frame)[tessera_components::constants::WIRE_HEADER_SIZE..].to_vec()
    }

    #[test]
    fn sequences_survive_seeded_inputs() {
        let mut seeds = FuzzSeeds::new(0xc0de);
        let (mut steps, mut finalized, mut finalized_above_genesis, mut own) = (0, 0, 0, 0);
        let mut first = Vec::new();
        for round in 0..2000 {
            let input = seeds.bytes(64 + round % 900);
            let reach = sequence(&input, round % 4 == 0);
            if round < 4 {
                first.push(input);
            }
            steps += reach.steps;
            finalized += reach.finalized;
            if reach.base_height > 0 {
                finalized_above_genesis += reach.finalized;
            }
            own += reach.own_certificates;
        }
        // Runs that start past genesis finalize too, and certificates carry the validator's own
        // votes.
        assert!(
            finalized_above_genesis > 50 && own > 100,
            "{finalized_above_genesis} blocks, {own} own votes"
        );
        let refs: Vec<&[u8]> = first.iter().map(Vec::as_slice).collect();
        tessera_components::fuzz::fuzz_write_seeds("consensus_sequence", &refs);
        // Random inputs reach deep states: many steps, and finalized blocks.
        assert!(steps > 20_000 && finalized > 500, "{steps} steps, {finalized} blocks finalized");
        for (i, input) in fuzz_corpus("consensus_sequence").iter().enumerate() {
            let _ = sequence(input, i % 8 == 0);
        }
    }

    #[test]
    fn a_sequence_can_finalize() {
        // Ticks past the first view (validator 0 leads view 0 and proposes its own block), then
        // all-validator prepare and commit votes for the newest known block.
        let mut run = Run::new(true);
        assert_eq!(run.known.len(), 1, "the node proposed at start");
        for kind in [VoteKind::Prepare, VoteKind::Commit] {
            let block = run.known[0].header;
            for voter in 1..VALIDATORS {
                let signature = sign(voter, &vote_signing_bytes(&ChainTag::TEST, kind, 0, 1, &block.hash()));
                run.deliver(
                    voter,
                    ConsensusMessage::Vote(Vote {
                        kind,
                        view: 0,
                        height: 1,
                        block: block.hash(),
                        voter,
                        signature,
                    }),
                );
            }
        }
        assert_eq!(run.host.chain.len(), 1);
        assert_eq!(run.core.height(), 2);
    }

    #[test]
    fn certificates_and_messages_survive_seeded_inputs() {
        let block = Block {
            header: BlockHeader { height: 1, ..bytemuck::Zeroable::zeroed() },
            txns: Vec::new().into(),
        };
        let qc = QuorumCertificate {
            kind: VoteKind::Prepare,
            view: 2,
            height: 1,
            block: block.header.hash(),
            signers: vec![1, 2, 3],
            signatures: vec![Signature([5; 64]); 3],
        };
        let certificate = payload(&Frame::Certificate(qc.clone()));
        let proposal = ConsensusMessage::Proposal(Proposal {
            view: 1,
            block: block.clone(),
            justify: Some(qc.clone()),
            signature: [1; 64],
        });
        let new_view = ConsensusMessage::NewView(NewView {
            view: 3,
            height: 1,
            high_qc: Some(qc.clone()),
            sender: 2,
            signature: [2; 64],
        });
        let sync = ConsensusMessage::SyncResponse(vec![CertifiedBlock {
            block,
            certificate: QuorumCertificate { kind: VoteKind::Commit, ..qc },
        }]);
        let messages: Vec<Vec<u8>> = [proposal, new_view, sync]
            .into_iter()
            .map(|message| {
                let mut data = vec![1];
                data.extend_from_slice(&payload(&Frame::Consensus(message)));
                data
            })
            .collect();
        let mut certificates = certificate_seeds();
        certificates.push(certificate.clone());
        let refs: Vec<&[u8]> = certificates.iter().map(Vec::as_slice).collect();
        tessera_components::fuzz::fuzz_write_seeds("certificate", &refs);
        for seed in &certificates {
            fuzz_certificate(seed);
        }
        let refs: Vec<&[u8]> = messages.iter().map(Vec::as_slice).collect();
        tessera_components::fuzz::fuzz_write_seeds("consensus_message", &refs);
        let mut seeds = FuzzSeeds::new(0xce27);
        let mut accepted = 0;
        for round in 0..3000 {
            let input = seeds.mutate(&certificates[round % certificates.len()]);
            accepted += certificate_accepted(&input, &NODE_CERTIFICATE_PATHS);
            if round % 3 == 0 {
                fuzz_message(&seeds.mutate(&messages[round % messages.len()]));
            }
        }
        // Mutated certificates still reach acceptances (a quorum of good signatures).
        assert!(accepted > 500, "{accepted} acceptances");
        for input in fuzz_corpus("certificate") {
            fuzz_certificate(&input);
        }
        for input in fuzz_corpus("consensus_message") {
            fuzz_message(&input);
        }
    }

    /// Certificate payloads for the oracle's tests: prepare votes at height 1, view 2, by the
    /// given signers, every signature a placeholder the harness replaces with a real one,
    /// except those marked bad (first byte 0xff), which stay invalid.
    fn certificate_seed(signers: &[u32], bad: &[u32]) -> Vec<u8> {
        let signatures = signers
            .iter()
            .map(|signer| Signature(if bad.contains(signer) { [0xff; 64] } else { [5; 64] }))
            .collect();
        payload(&Frame::Certificate(QuorumCertificate {
            kind: VoteKind::Prepare,
            view: 2,
            height: 1,
            block: Hash([7; 32]),
            signers: signers.to_vec(),
            signatures,
        }))
    }

    /// Hand-built certificates: quorums and one short of them for sets of 4 to 7, a duplicate
    /// signer, unsorted signers, an unknown signer, a bad signature among good ones.
    fn certificate_seeds() -> Vec<Vec<u8>> {
        vec![
            certificate_seed(&[1, 2, 3], &[]),
            certificate_seed(&[0, 1, 2], &[]),
            certificate_seed(&[1, 2], &[]),
            certificate_seed(&[0, 1, 2, 3], &[]),
            certificate_seed(&[0, 1, 2, 3, 4], &[]),
            certificate_seed(&[1, 2, 3, 4, 5, 6], &[]),
            certificate_seed(&[1, 1, 2], &[]),
            certificate_seed(&[2, 1, 3], &[]),
            certificate_seed(&[1, 2, 9], &[]),
            certificate_seed(&[0, 1, 2, 3], &[2]),
        ]
    }

    /// The first oracle failure of the certificate harness over `inputs` with `paths`.
    fn certificate_oracle_failure(inputs: &[Vec<u8>], paths: &CertificatePaths) -> Option<String> {
        tessera_components::fuzz::fuzz_first_failure(inputs, |input| fuzz_certificate_with(input, paths))
    }

    /// The oracle passes the node's paths on the hand-built certificates and fails `paths`
    /// with a message containing `reported`.
    fn assert_certificate_bug_caught(paths: &CertificatePaths, reported: &str) {
        let seeds = certificate_seeds();
        assert_eq!(certificate_oracle_failure(&seeds, &NODE_CERTIFICATE_PATHS), None);
        let failure = certificate_oracle_failure(&seeds, paths).expect("the oracle missed the planted bug");
        eprintln!("the oracle reported: {failure}");
        assert!(failure.contains(reported), "the oracle reported {failure:?}");
    }

    /// `Core::certificate_valid` with the quorum test replaced by `quorum_met`.
    fn valid_with_quorum(
        set: &ValidatorSet,
        qc: &QuorumCertificate,
        kind: VoteKind,
        height: u64,
        quorum_met: bool,
    ) -> bool {
        qc.kind == kind
            && qc.height == height
            && qc.signers.len() == qc.signatures.len()
            && quorum_met
            && qc.signers.windows(2).all(|pair| pair[0] < pair[1])
            && qc.signers.iter().all(|signer| set.key(*signer).is_some())
    }

    #[test]
    fn the_certificate_oracle_catches_a_quorum_one_short() {
        let paths = CertificatePaths {
            valid: |_, set, qc, kind, height| {
                valid_with_quorum(set, qc, kind, height, qc.signers.len() + 1 >= set.quorum())
            },
            ..NODE_CERTIFICATE_PATHS
        };
        assert_certificate_bug_caught(
            &paths,
            "the node's verdict true disagrees with the quorum rule's false",
        );
    }

    #[test]
    fn the_certificate_oracle_catches_a_quorum_of_2f_plus_1_for_every_n() {
        // 2f + 1 equals n − f only when n = 3f + 1: for n = 5, 6 it is one and two short.
        let paths = CertificatePaths {
            valid: |_, set, qc, kind, height| {
                valid_with_quorum(set, qc, kind, height, qc.signers.len() > 2 * set.faults_tolerated())
            },
            ..NODE_CERTIFICATE_PATHS
        };
        assert_certificate_bug_caught(&paths, "n = 5, Prepare at height 1: the node's verdict true");
    }

    #[test]
    fn the_certificate_oracle_catches_a_duplicate_signer_counted() {
        let paths = CertificatePaths {
            valid: |_, set, qc, kind, height| {
                qc.kind == kind
                    && qc.height == height
                    && qc.signers.len() == qc.signatures.len()
                    && qc.signers.len() >= set.quorum()
                    && qc.signers.windows(2).all(|pair| pair[0] <= pair[1])
                    && qc.signers.iter().all(|signer| set.key(*signer).is_some())
            },
            ..NODE_CERTIFICATE_PATHS
        };
        assert_certificate_bug_caught(
            &paths,
            "the node's verdict true disagrees with the quorum rule's false",
        );
    }

    #[test]
    fn the_certificate_oracle_catches_unchecked_certificate_signatures() {
        // Only the carrying message's own signature is verified, not the votes it carries.
        let paths = CertificatePaths {
            verify: |messages, set| {
                messages
                    .iter()
                    .filter(|(_, message)| {
                        signatures_of(message, set).is_some_and(|items| {
                            let (key, signed, signature) = &items[0];
                            crate::kernels::sigverify::verify_single(&crate::kernels::sigverify::VerifyItem {
                                public_key: key,
                                message: signed,
                                signature,
                            })
                        })
                    })
                    .count()
            },
            ..NODE_CERTIFICATE_PATHS
        };
        assert_certificate_bug_caught(&paths, "(signature path kept the carrier: true)");
    }

    #[test]
    fn far_future_proposals_do_not_grow_memory() {
        // Validator 1 leads views 1, 5, 9, ...: it signs a proposal at the current height for
        // thousands of views far ahead. Each is dropped, and nothing is kept for any of them.
        let mut run = Run::new(false);
        for i in 0..2_000u64 {
            let view = 1_000 + 4 * i + 1;
            let header = BlockHeader {
                height: 1,
                view,
                proposer: 1,
                parent: Hash::ZERO,
                state_root: fixture_state_root(1),
                ..bytemuck::Zeroable::zeroed()
            };
            let proposal = Proposal {
                view,
                block: Block { header, txns: Vec::new().into() },
                justify: None,
                signature: [0; 64],
            };
            run.core.on_message(1, ConsensusMessage::Proposal(proposal), &mut run.host);
        }
        run.settle();
    }

    #[test]
    fn over_limit_proposals_for_later_views_are_refused_on_arrival() {
        // Validator 1 leads view 5, within the view window but ahead of the node (view 0).
        // An over-limit block there is refused and counted at once, and nothing is held for
        // the view; a good one for view 1 is validated on arrival and held until then.
        let mut run = Run::new(false);
        let proposal_for = |view: u64, count: usize| {
            let txn = |i: usize| Txn {
                body: TxnBody {
                    chain_id: 1,
                    reserved: 0,
                    sender: [i as u8 + 1; 32],
                    recipient: [0xee; 32],
                    amount: 1,
                    fee: 1,
                    nonce: 0,
                },
                signature: TxnSignature([0; 64]),
            };
            let txns: Vec<Txn> = (0..count).map(txn).collect();
            let header = BlockHeader {
                height: 1,
                view,
                proposer: 1,
                txn_count: count as u32,
                parent: Hash::ZERO,
                txn_root: Block::compute_txn_root(&txns),
                state_root: fixture_state_root(1),
                ..bytemuck::Zeroable::zeroed()
            };
            Proposal { view, block: Block { header, txns: txns.into() }, justify: None, signature: [0; 64] }
        };
        let held =
            |run: &Run| run.core.held_entries().iter().find(|(name, _)| *name == "future").map(|e| e.1);
        run.core.on_message(1, ConsensusMessage::Proposal(proposal_for(5, BLOCK_TXN_MAX + 1)), &mut run.host);
        run.settle();
        assert_eq!(run.core.counters().rejected_over_limit, 1);
        assert_eq!(held(&run), Some(0), "an over-limit proposal was held");
        assert_eq!(run.core.view(), 0);
        let good = proposal_for(1, 1);
        let hash = good.block.header.hash();
        run.core.on_message(1, ConsensusMessage::Proposal(good), &mut run.host);
        run.settle();
        assert_eq!(held(&run), Some(1));
        assert!(run.host.accepted.contains(&hash), "the held proposal was not validated on arrival");
        assert_eq!(run.core.counters().rejected_over_limit, 1);
    }

    /// A proposal from validator 1 at height 1 for `view`, told apart by `tag`.
    fn empty_proposal(view: u64, tag: u64) -> Proposal {
        let header = BlockHeader {
            height: 1,
            view,
            proposer: 1,
            timestamp_ms: tag,
            parent: Hash::ZERO,
            state_root: fixture_state_root(1),
            ..bytemuck::Zeroable::zeroed()
        };
        Proposal { view, block: Block { header, txns: Vec::new().into() }, justify: None, signature: [0; 64] }
    }

    /// A validator that hears of a height above its own asks the sender for blocks, and asks
    /// again only after a quarter of the base view timeout, however often it hears.
    #[test]
    fn a_validator_behind_asks_for_blocks_at_a_steady_pace() {
        let mut run = Run::new(false);
        run.core.drain_outbox();
        let ahead = |run: &mut Run| {
            let block = Hash::of(b"ahead");
            let signature = sign(2, &vote_signing_bytes(&ChainTag::TEST, VoteKind::Prepare, 0, 5, &block));
            let vote = Vote { kind: VoteKind::Prepare, view: 0, height: 5, block, voter: 2, signature };
            run.core.on_message(2, ConsensusMessage::Vote(vote), &mut run.host);
            run.core
                .drain_outbox()
                .into_iter()
                .filter(|(_, message)| matches!(message, ConsensusMessage::SyncRequest { .. }))
                .collect::<Vec<_>>()
        };
        let asked = ahead(&mut run);
        assert_eq!(asked, vec![(Destination::One(2), ConsensusMessage::SyncRequest { from_height: 1 })]);
        assert!(ahead(&mut run).is_empty(), "asked again at once");
        let quarter = config().view_timeout_ns / 4;
        run.core.tick(quarter - 1, &mut run.host);
        run.core.drain_outbox();
        assert!(ahead(&mut run).is_empty(), "asked again before a quarter timeout");
        run.core.tick(quarter, &mut run.host);
        run.core.drain_outbox();
        assert_eq!(ahead(&mut run).len(), 1, "did not ask again after a quarter timeout");
    }

    /// Prepare votes for the next view that arrive before this validator enters it are kept
    /// through the view change and count toward the certificate there.
    #[test]
    fn votes_for_the_next_view_count_once_it_is_entered() {
        let mut run = Run::new(false);
        let proposal = empty_proposal(1, 7);
        let block = proposal.block.header.hash();
        for voter in [2, 3] {
            let signature =
                sign(voter, &vote_signing_bytes(&ChainTag::TEST, VoteKind::Prepare, 1, 1, &block));
            let vote = Vote { kind: VoteKind::Prepare, view: 1, height: 1, block, voter, signature };
            run.core.on_message(voter, ConsensusMessage::Vote(vote), &mut run.host);
        }
        // View 0 fails (a fresh height's first view may time out without a quorum's view changes).
        run.core.tick(config().view_timeout_ns, &mut run.host);
        assert_eq!(run.core.view(), 1);
        run.core.drain_outbox();
        run.core.on_message(1, ConsensusMessage::Proposal(proposal), &mut run.host);
        let sent = run.core.drain_outbox();
        assert!(
            sent.iter().any(|(_, message)| matches!(message, ConsensusMessage::Vote(vote) if vote.kind == VoteKind::Commit && vote.block == block)),
            "no commit vote: the early prepare votes were lost in the view change; sent {sent:?}"
        );
    }

    /// Found by `consensus_sequence`: an aggregating leader at exactly a quorum announced its
    /// certificate again for every certificate message that repeated votes it had counted (one
    /// broadcast to everyone per message any validator sends), and kept each announcement in
    /// the set it re-sends every quarter timeout, which grew without bound. A certificate is now
    /// announced once, and only the current view's first of each kind is re-sent.
    #[test]
    fn an_aggregator_announces_each_certificate_once_and_re_sends_only_its_views() {
        let mut run = Run::start(false, false, 0, true);
        assert_eq!((run.set.leader(0), run.set.leader(4)), (ME, ME));
        let certificates = |sent: &[(Destination, ConsensusMessage)]| {
            sent.iter().filter(|(_, message)| matches!(message, ConsensusMessage::Certificate(_))).count()
        };
        let votes = |view: u64, block: Hash| -> Vec<Vote> {
            (1..=3)
                .map(|voter| {
                    let signature =
                        sign(voter, &vote_signing_bytes(&ChainTag::TEST, VoteKind::Prepare, view, 1, &block));
                    Vote { kind: VoteKind::Prepare, view, height: 1, block, voter, signature }
                })
                .collect()
        };
        run.core.drain_outbox();
        let block = Hash([1; 32]);
        for vote in votes(0, block) {
            run.core.on_message(vote.voter, ConsensusMessage::Vote(vote), &mut run.host);
        }
        assert_eq!(certificates(&run.core.drain_outbox()), 1, "announced when the votes make a quorum");
        // The same votes again, as certificates from validator 1, five times.
        let repeated = QuorumCertificate {
            kind: VoteKind::Prepare,
            view: 0,
            height: 1,
            block,
            signers: vec![1, 2, 3],
            signatures: votes(0, block).iter().map(|vote| Signature(vote.signature)).collect(),
        };
        for _ in 0..5 {
            run.core.on_message(1, ConsensusMessage::Certificate(repeated.clone()), &mut run.host);
        }
        assert_eq!(certificates(&run.core.drain_outbox()), 0, "counted votes announce nothing again");
        // A quorum in view 4, which this validator also leads: announced once, never re-sent.
        for vote in votes(4, Hash([2; 32])) {
            run.core.on_message(vote.voter, ConsensusMessage::Vote(vote), &mut run.host);
        }
        assert_eq!(certificates(&run.core.drain_outbox()), 1);
        run.core.tick(config().view_timeout_ns / 4, &mut run.host);
        assert_eq!(certificates(&run.core.drain_outbox()), 1, "only view 0's certificate is re-sent");
        run.settle();
    }

    /// A leader that enters its view by a view change waits for n − f view changes (which carry
    /// the locks it must respect) before it proposes; at a fresh height it proposes at once.
    #[test]
    fn a_leader_after_a_view_change_waits_for_a_quorum_of_view_changes() {
        let mut core = Core::new(1, keys()[1].clone(), validator_set(), config(), 0, Hash::ZERO);
        let mut host = FixtureHost::default();
        core.start(0, &mut host);
        core.tick(config().view_timeout_ns, &mut host);
        assert_eq!(core.view(), 1);
        let proposed = |sent: &[(Destination, ConsensusMessage)]| {
            sent.iter().any(|(_, message)| matches!(message, ConsensusMessage::Proposal(_)))
        };
        assert!(!proposed(&core.drain_outbox()), "proposed on entering view 1 with one view change");
        for sender in [2, 3] {
            let signature = sign(sender, &new_view_signing_bytes(&ChainTag::TEST, 1, 1, None));
            let new_view = NewView { view: 1, height: 1, high_qc: None, sender, signature };
            core.on_message(sender, ConsensusMessage::NewView(new_view), &mut host);
        }
        assert!(proposed(&core.drain_outbox()), "no proposal with n − f view changes");
    }

    #[test]
    fn old_view_proposals_cannot_crowd_out_the_block_being_decided() {
        // Validator 1 led view 1, which the node has left. It signs a hundred distinct blocks
        // for that view. None is validated or held; the node still takes the proposal for its
        // current view from that view's leader, holds its block and votes for it.
        let mut run = Run::new(false);
        while run.core.view() < 6 {
            run.now_ns += config().view_timeout_max_ns;
            run.core.tick(run.now_ns, &mut run.host);
            run.settle();
            // Validators 1 and 2 announce each view it enters, so it may time out again.
            for sender in [1, 2] {
                let (view, height) = (run.core.view(), run.core.height());
                let signature = sign(sender, &new_view_signing_bytes(&ChainTag::TEST, view, height, None));
                let new_view = NewView { view, height, high_qc: None, sender, signature };
                run.deliver(sender, ConsensusMessage::NewView(new_view));
            }
        }
        let view = run.core.view();
        let leader = run.set.leader(view);
        let held = |run: &Run| run.core.held_entries()[0].1;
        let before = held(&run);
        let validated = run.host.accepted.len();
        for tag in 0..100 {
            run.core.on_message(1, ConsensusMessage::Proposal(empty_proposal(1, tag)), &mut run.host);
            run.settle();
        }
        assert_eq!(held(&run), before, "blocks proposed for a view the node left are held");
        assert_eq!(run.host.accepted.len(), validated, "blocks for a view the node left were validated");
        assert_eq!(run.core.counters().stale_proposals, 100);
        let mut current = empty_proposal(view, 1_000);
        current.block.header.proposer = leader;
        let hash = current.block.header.hash();
        run.core.on_message(leader, ConsensusMessage::Proposal(current), &mut run.host);
        assert_eq!(held(&run), before + 1, "the current view's block is not held");
        let voted = run.core.drain_outbox().into_iter().any(|(_, message)| {
            matches!(message, ConsensusMessage::Vote(vote) if vote.block == hash && vote.voter == ME)
        });
        assert!(voted, "no vote for the current view's block");
    }

    /// A commit certificate for `block` at height 1, signed by validators 1–3.
    fn commit_certificate(block: &Block) -> QuorumCertificate {
        let hash = block.header.hash();
        let message = vote_signing_bytes(&ChainTag::TEST, VoteKind::Commit, 0, 1, &hash);
        let signers = vec![1, 2, 3];
        let signatures = signers.iter().map(|signer| Signature(sign(*signer, &message))).collect();
        QuorumCertificate { kind: VoteKind::Commit, view: 0, height: 1, block: hash, signers, signatures }
    }

    #[test]
    fn a_sync_response_repeating_one_block_costs_one_certificate() {
        let mut run = Run::new(false);
        let block = empty_proposal(0, 7).block;
        let certified = CertifiedBlock { certificate: commit_certificate(&block), block };
        let mut messages = vec![(1, ConsensusMessage::SyncResponse(vec![certified.clone(); 12_000]))];
        run.core.drop_before_verification(&mut messages);
        let (kept, dropped, checked) = verify_messages(messages, &run.set, 64, false);
        assert_eq!((dropped, checked), (0, 3), "one block's three signatures, verified once");
        assert!(matches!(&kept[0].1, ConsensusMessage::SyncResponse(blocks) if blocks.len() == 1));
        assert_eq!(run.core.counters().dropped_unverified, 11_999);
        run.core.on_message(1, kept.into_iter().next().expect("kept").1, &mut run.host);
        assert_eq!(run.core.height(), 2, "the one usable block was applied");
        // A response for heights the node has passed, or that skips one, costs nothing.
        let mut stale = vec![(1, ConsensusMessage::SyncResponse(vec![certified; 3]))];
        run.core.drop_before_verification(&mut stale);
        assert_eq!(verify_messages(stale, &run.set, 64, false).2, 0);
    }

    /// A `NewView` for the next height, from a validator that finished this one, is held for
    /// that height and counted once the node gets there. Before, the cheap checks dropped it
    /// (and so did the core), so a node deciding a height while the others timed out of the
    /// next waited a quarter timeout for their resends.
    #[test]
    fn a_new_view_for_the_next_height_is_held_for_it() {
        let mut run = Run::new(false);
        let block = empty_proposal(0, 7).block;
        let certified = CertifiedBlock { certificate: commit_certificate(&block), block };
        let new_view = |sender: u32| {
            let signature = sign(sender, &new_view_signing_bytes(&ChainTag::TEST, 5, 2, None));
            (
                sender,
                ConsensusMessage::NewView(NewView { view: 5, height: 2, high_qc: None, sender, signature }),
            )
        };
        // f + 1 validators have timed out to view 5 at height 2; their view changes arrive
        // before the block that takes this node to height 2.
        let mut early = vec![new_view(2), new_view(3)];
        assert_eq!(run.core.drop_before_verification(&mut early), 0, "dropped before verification");
        let (kept, dropped, _) = verify_messages(early, &run.set, 64, false);
        assert_eq!(dropped, 0);
        for (from, message) in kept {
            run.core.on_message(from, message, &mut run.host);
        }
        assert_eq!(run.core.height(), 1);
        run.core.on_message(1, ConsensusMessage::SyncResponse(vec![certified]), &mut run.host);
        assert_eq!(run.core.height(), 2);
        assert_eq!(run.core.view(), 5, "the view changes held for height 2 were not counted there");
        // What one carries is checked before it is verified and held, as at this height: a
        // certificate short of a quorum, or one that is not a prepare certificate of its height.
        let qc = |kind, height, signers: Vec<u32>| QuorumCertificate {
            kind,
            view: 1,
            height,
            block: Hash([9; 32]),
            signatures: vec![Signature([1; 64]); signers.len()],
            signers,
        };
        let carrying = |high_qc| {
            (
                2,
                ConsensusMessage::NewView(NewView {
                    view: 6,
                    height: 3,
                    high_qc: Some(high_qc),
                    sender: 2,
                    signature: [4; 64],
                }),
            )
        };
        let mut messages = vec![
            carrying(qc(VoteKind::Prepare, 3, vec![1])),
            carrying(qc(VoteKind::Prepare, 2, vec![1, 2, 3])),
            carrying(qc(VoteKind::Commit, 3, vec![1, 2, 3])),
        ];
        assert_eq!(run.core.drop_before_verification(&mut messages), 3, "{messages:?}");
    }

    #[test]
    fn a_validator_asking_for_sync_in_a_loop_is_answered_once_per_interval() {
        let mut run = Run::new(false);
        let block = empty_proposal(0, 7).block;
        run.core.on_message(
            1,
            ConsensusMessage::SyncResponse(vec![CertifiedBlock {
                certificate: commit_certificate(&block),
                block,
            }]),
            &mut run.host,
        );
        assert_eq!(run.core.height(), 2);
        let _ = run.core.drain_outbox();
        let answers = |run: &mut Run, from: u32, requests: usize| {
            for _ in 0..requests {
                run.core.on_message(from, ConsensusMessage::SyncRequest { from_height: 1 }, &mut run.host);
            }
            run.core
                .drain_outbox()
                .into_iter()
                .filter(|(to, message)| {
                    *to == Destination::One(from) && matches!(message, ConsensusMessage::SyncResponse(_))
                })
                .count()
        };
        assert_eq!(answers(&mut run, 1, 1000), 1, "a thousand requests in one instant draw one answer");
        assert_eq!(run.core.counters().sync_refused, 999);
        assert_eq!(answers(&mut run, 2, 1), 1, "another validator is answered in the same instant");
        // Past the interval (an eighth of the view timeout), validator 1 is answered again: an
        // honest laggard asks at a quarter of the timeout and is never refused.
        // The interval is what bounds a Byzantine asker's draw: one batch per eighth of the
        // timeout at most.
        let interval = run.core.sync_serve_interval_ns();
        assert!(interval >= config().view_timeout_ns / 8 && interval < config().view_timeout_ns / 4);
        run.core.tick(interval - 1, &mut run.host);
        let _ = run.core.drain_outbox();
        assert_eq!(answers(&mut run, 1, 5), 0, "answered again before the interval");
        run.core.tick(interval, &mut run.host);
        let _ = run.core.drain_outbox();
        assert_eq!(answers(&mut run, 1, 5), 1);
        // All validators together draw at most SYNC_ANSWERS_PER_INTERVAL answers an interval:
        // before, each drew one, so f Byzantine validators asking in a loop drew f batches an
        // interval of this node's upload (found in review).
        use crate::consensus::core::SYNC_ANSWERS_PER_INTERVAL;
        assert_eq!(SYNC_ANSWERS_PER_INTERVAL, 2);
        run.core.tick(3 * interval, &mut run.host);
        let _ = run.core.drain_outbox();
        let drawn: Vec<usize> = [1, 2, 3].into_iter().map(|from| answers(&mut run, from, 1)).collect();
        assert_eq!(drawn, [1, 1, 0], "three validators in one interval");
        run.core.tick(4 * interval, &mut run.host);
        let _ = run.core.drain_outbox();
        assert_eq!(answers(&mut run, 3, 1), 1, "the third is answered in the next interval");
    }

    #[test]
    fn a_vote_sent_many_times_is_verified_once_and_old_votes_not_at_all() {
        let mut run = Run::new(false);
        let block = empty_proposal(0, 9).block.header.hash();
        let message = vote_signing_bytes(&ChainTag::TEST, VoteKind::Prepare, 0, 1, &block);
        let vote = Vote {
            kind: VoteKind::Prepare,
            view: 0,
            height: 1,
            block,
            voter: 2,
            signature: sign(2, &message),
        };
        let mut messages = vec![(2, ConsensusMessage::Vote(vote.clone())); 8];
        let old = Vote { height: 0, ..vote };
        messages.extend(vec![(2, ConsensusMessage::Vote(old)); 8]);
        // Past the view window, and a certificate for a finalized height: dropped unverified too.
        let far = Vote { view: config().view_window + 1, ..vote };
        messages.extend(vec![(2, ConsensusMessage::Vote(far)); 8]);
        let old_certificate = QuorumCertificate {
            kind: VoteKind::Commit,
            view: 0,
            height: 0,
            block,
            signers: vec![1, 2, 3],
            signatures: vec![Signature([1; 64]); 3],
        };
        messages.push((2, ConsensusMessage::Certificate(old_certificate)));
        run.core.drop_before_verification(&mut messages);
        let (kept, _, checked) = verify_messages(messages, &run.set, 64, false);
        assert_eq!((kept.len(), checked), (8, 1), "eight copies kept for the core, one verification");
    }

    /// The cheapest messages a validator can send, found in review: certificates and votes
    /// beyond the next height, and `NewView`s at another height, each with as many junk
    /// signatures as it likes. The core reads none of their signatures (it asks the sender
    /// for blocks, or answers it as a sync request), so none is verified; what the core does
    /// with them is still done. Before, each cost its signatures' verification, and a bad one
    /// cost its sender nothing.
    #[test]
    fn messages_whose_signatures_the_core_never_reads_cost_no_verification() {
        let mut run = Run::new(false);
        let block = empty_proposal(0, 9).block.header.hash();
        let junk = |height| QuorumCertificate {
            kind: VoteKind::Prepare,
            view: 0,
            height,
            block,
            signers: vec![1, 2, 3],
            signatures: vec![Signature([1; 64]); 3],
        };
        let vote = Vote { kind: VoteKind::Prepare, view: 0, height: 5, block, voter: 2, signature: [3; 64] };
        let above = NewView { view: 1, height: 4, high_qc: Some(junk(4)), sender: 2, signature: [4; 64] };
        let below = NewView { view: 1, height: 0, high_qc: Some(junk(0)), sender: 3, signature: [5; 64] };
        let impostor = NewView { sender: 1, ..below.clone() };
        let mut messages = vec![
            (2, ConsensusMessage::Certificate(junk(3))),
            (2, ConsensusMessage::Vote(vote)),
            (2, ConsensusMessage::NewView(above)),
            (3, ConsensusMessage::NewView(below)),
            (3, ConsensusMessage::NewView(impostor)),
        ];
        assert_eq!(run.core.drop_before_verification(&mut messages), 4);
        let (kept, dropped, checked) = verify_messages(messages, &run.set, 64, false);
        assert_eq!((dropped, checked), (0, 0), "nothing left to verify");
        assert_eq!(kept, vec![(3, ConsensusMessage::SyncRequest { from_height: 0 })]);
        assert!(
            run.core.drain_outbox().iter().any(|(to, message)| *to == Destination::One(2)
                && matches!(message, ConsensusMessage::SyncRequest { from_height: 1 })),
            "the validator ahead was asked for blocks"
        );
    }

    #[test]
    fn a_validator_that_lost_its_blocks_signs_nothing_below_its_saved_height() {
        // Found by the swarm's signing check (seed 129): validator 0 lost its blocks in a crash,
        // restarted at height 1, led view 0 there and proposed a second block for a height it
        // had finalized, with a proposal it had already signed differently before the crash.
        let saved = tessera_components::SafetyState { height: 5, view: 9, lock: None };
        let mut core = fixture_core().with_safety_state(&saved);
        let mut host = FixtureHost::default();
        core.start(0, &mut host);
        let signed: Vec<_> = core
            .drain_outbox()
            .into_iter()
            .filter(|(_, message)| {
                matches!(message, ConsensusMessage::Proposal(_) | ConsensusMessage::Vote(_))
            })
            .collect();
        assert!(signed.is_empty(), "signed below its saved height: {signed:?}");
        // A proposal for height 1 from its leader gets no vote either.
        let mut run = Run::new(false);
        run.core = fixture_core().with_safety_state(&saved);
        run.core.start(0, &mut run.host);
        let _ = run.core.drain_outbox();
        let mut proposal = empty_proposal(1, 3);
        proposal.block.header.proposer = 1;
        run.core.on_message(1, ConsensusMessage::Proposal(proposal), &mut run.host);
        let votes = run
            .core
            .drain_outbox()
            .into_iter()
            .filter(|(_, m)| matches!(m, ConsensusMessage::Vote(_)))
            .count();
        assert_eq!(votes, 0, "voted below its saved height");
    }

    /// A validator that hears only view changes, woken only at [`Core::next_deadline_ns`] as
    /// the node and the simulator wake it: each view times out after the configured timeout
    /// doubled per failed view up to the cap, what it sent is re-sent every quarter of that,
    /// and no deadline is "now" (a core that always has something due would be woken without
    /// end). Validators 1 and 2 announce each view it enters; without them it stays in the
    /// first view it reached by a view change (`a_validator_alone_in_its_view_waits_there`).
    #[test]
    fn failed_views_back_off_and_resend_each_quarter_woken_only_at_deadlines() {
        let me = 3;
        let mut core = Core::new(me, keys()[me as usize].clone(), validator_set(), config(), 0, Hash::ZERO);
        let mut host = FixtureHost::default();
        core.start(0, &mut host);
        let announce = |core: &mut Core, host: &mut FixtureHost| {
            for sender in [1, 2] {
                let view = core.view();
                let signature = sign(sender, &new_view_signing_bytes(&ChainTag::TEST, view, 1, None));
                let new_view = NewView { view, height: 1, high_qc: None, sender, signature };
                core.on_message(sender, ConsensusMessage::NewView(new_view), host);
            }
        };
        let (timeout, cap) = (config().view_timeout_ns, config().view_timeout_max_ns);
        let mut entered = vec![(0, 0)];
        let mut resends = vec![0u32];
        let mut now = 0;
        while core.view() < 7 {
            let deadline = core.next_deadline_ns();
            assert!(
                deadline > now,
                "deadline {deadline} at {now} in view {}: nothing would be due",
                core.view()
            );
            now = deadline;
            let view = core.view();
            core.tick(now, &mut host);
            let sent = core.drain_outbox();
            if core.view() == view {
                *resends.last_mut().unwrap() += 1;
                // Validator 3 leads view 3: waiting for view changes, it proposes at its first
                // resend; everywhere else only its view change is re-sent.
                assert!(
                    view == 0
                        || sent.iter().any(
                            |(_, message)| matches!(message, ConsensusMessage::NewView(nv) if nv.view == view)
                        ),
                    "no resend of view {view}'s view change at {now}: {sent:?}"
                );
            } else {
                entered.push((core.view(), now));
                resends.push(0);
                announce(&mut core, &mut host);
                core.drain_outbox();
            }
        }
        let mut expected = vec![(0, 0)];
        let mut start = 0;
        for view in 1..=7u64 {
            start += (timeout << (view - 1)).min(cap);
            expected.push((view, start));
        }
        assert_eq!(entered, expected);
        // Three resends inside each view (the fourth quarter is the timeout itself); view 0 has
        // nothing to re-send but is woken at its quarters all the same.
        assert_eq!(&resends[1..7], &[3; 6]);
        assert_eq!(core.counters().timeouts, 7);
    }

    /// The leader re-sends its proposal every quarter timeout only to the validators whose
    /// prepare vote for it has not arrived: a block is the largest message, and copies to
    /// validators that already voted queued up ahead of everything else the leader sends (with
    /// aggregated votes, the certificates everyone waits for: `scale-1000` finalized 24 blocks
    /// in 600 s instead of 257).
    #[test]
    fn a_proposal_is_re_sent_only_to_validators_that_have_not_voted_for_it() {
        // Where the leader's proposal goes at its first resend, after these validators voted.
        let resent_to = |voters: &[u32]| {
            let mut run = Run::new(false);
            let block = run.known[0].header.hash();
            for &voter in voters {
                let signature =
                    sign(voter, &vote_signing_bytes(&ChainTag::TEST, VoteKind::Prepare, 0, 1, &block));
                let vote = Vote { kind: VoteKind::Prepare, view: 0, height: 1, block, voter, signature };
                run.core.on_message(voter, ConsensusMessage::Vote(vote), &mut run.host);
            }
            run.core.drain_outbox();
            run.core.tick(config().view_timeout_ns / 4, &mut run.host);
            run.core
                .drain_outbox()
                .into_iter()
                .filter(|(_, message)| matches!(message, ConsensusMessage::Proposal(_)))
                .map(|(to, _)| to)
                .collect::<Vec<Destination>>()
        };
        assert_eq!(resent_to(&[1, 2]), vec![Destination::Some(vec![3].into())]);
        // Nobody voted yet: one message for all three, not a copy of the block each.
        assert_eq!(resent_to(&[]), vec![Destination::Some(vec![1, 2, 3].into())]);
    }

    /// A validator that timed out into a view nobody else announced re-sends its view change
    /// there and goes no further, however long it waits: running ahead alone, it would keep its
    /// lead for good (seen in swarm seed 1196, where the three validators able to vote sat in
    /// views 4, 4 and 7 and never met). Once n − f have announced the view, it times out again.
    #[test]
    fn a_validator_alone_in_its_view_waits_there() {
        let mut core = Core::new(3, keys()[3].clone(), validator_set(), config(), 0, Hash::ZERO);
        let mut host = FixtureHost::default();
        core.start(0, &mut host);
        let mut now = 0;
        for _ in 0..200 {
            now = core.next_deadline_ns();
            core.tick(now, &mut host);
            core.drain_outbox();
        }
        assert_eq!(core.view(), 1, "ran ahead alone to view {} by {now} ns", core.view());
        let sent: Vec<_> = {
            now = core.next_deadline_ns();
            core.tick(now, &mut host);
            core.drain_outbox()
        };
        assert!(
            sent.iter().any(|(_, message)| matches!(message, ConsensusMessage::NewView(nv) if nv.view == 1))
        );
        for sender in [1, 2] {
            let signature = sign(sender, &new_view_signing_bytes(&ChainTag::TEST, 1, 1, None));
            let new_view = NewView { view: 1, height: 1, high_qc: None, sender, signature };
            core.on_message(sender, ConsensusMessage::NewView(new_view), &mut host);
        }
        // The view's timeout (doubled once) now runs from the moment the quorum arrived.
        let quorum_at = now;
        while core.view() == 1 {
            now = core.next_deadline_ns();
            core.tick(now, &mut host);
        }
        assert_eq!(core.view(), 2);
        assert_eq!(now, quorum_at + 2 * config().view_timeout_ns);
    }

    #[test]
    fn a_full_block_store_evicts_the_furthest_view_never_the_one_being_decided() {
        use crate::consensus::core::{BLOCKS_HELD_BYTES_MAX, BLOCKS_HELD_MAX};
        let mut run = Run::new(false);
        let view = run.core.view();
        let held = |run: &Run| run.core.held_entries()[0].1;
        let before = held(&run);
        // Fill the store with blocks for later views.
        for tag in 0..(BLOCKS_HELD_MAX - before) as u64 {
            let block = empty_proposal(view + 10 + tag, tag).block;
            assert!(run.core.hold_block(block.header.hash(), &block));
        }
        assert_eq!(held(&run), BLOCKS_HELD_MAX);
        // A block for a view further than all of them is refused; one for the view being
        // decided takes the place of the furthest.
        let far = empty_proposal(view + 1_000, 0).block;
        assert!(!run.core.hold_block(far.header.hash(), &far));
        let current = empty_proposal(view, 7).block;
        assert!(run.core.hold_block(current.header.hash(), &current));
        assert_eq!(held(&run), BLOCKS_HELD_MAX);
        // Bytes bound too: a block larger than the whole budget is never held.
        let mut huge = empty_proposal(view, 8).block;
        huge.txns = vec![
            Txn { body: bytemuck::Zeroable::zeroed(), signature: TxnSignature([0; 64]) };
            BLOCKS_HELD_BYTES_MAX / 160 + 1
        ]
        .into();
        assert!(!run.core.hold_block(huge.header.hash(), &huge));
        assert_eq!(held(&run), BLOCKS_HELD_MAX);
    }

    #[test]
    fn extreme_views_and_heights_do_not_overflow() {
        let mut run = Run::new(false);
        for view in [u64::MAX, u64::MAX - 1, u64::MAX - 2] {
            let block = run.known[0].header.hash();
            let voter = 1;
            let vote = Vote { kind: VoteKind::Prepare, view, height: 1, block, voter, signature: [0; 64] };
            run.deliver(voter, ConsensusMessage::Vote(vote));
            let new_view = NewView { view, height: 1, high_qc: None, sender: 2, signature: [0; 64] };
            run.deliver(2, ConsensusMessage::NewView(new_view));
        }
    }
}
