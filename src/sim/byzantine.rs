//! The Byzantine behaviour library. Message-level behaviours are rewrites of a validator's
//! outbound consensus messages: the same code runs inside the tick-driven cluster harness, the
//! event-driven simulator, and `tessera attack` against a live node (which builds a plausible
//! message for the node's current height and view and passes it through [`outbound`] or an
//! [`Adversary`]). Transport-level behaviours (a slow reader, garbage after a valid handshake)
//! have no meaning in a simulator that carries messages rather than bytes; [`Transport`] says
//! what each does to a connection, and `tessera attack` carries it out.

use std::collections::VecDeque;
use std::rc::Rc;

use tessera_components::consensus::proposal_signing_bytes;
use tessera_components::{
    Block, ChainTag, ConsensusMessage, Hash, Proposal, Txn, TxnBody, vote_signing_bytes,
};

use super::Behaviour;

/// Transactions in an over-limit proposal: one more than the default `block_txn_max`, and
/// still under the default frame limit, so the block reaches validation and is refused there.
pub const OVER_LIMIT_TXNS: usize = 20_001;

/// Copies of each message a [`Behaviour::Flooder`] sends.
pub const FLOOD_COPIES: usize = 8;

/// How many sends back an [`Adversary`] replays from.
pub const REPLAY_LAG: usize = 16;

/// What `behaviour` does at the transport level, if anything.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Transport {
    /// Reads and writes like an honest peer.
    Honest,
    /// Reads at most this many bytes per second of what the node sends it, so the node's
    /// writes back up.
    SlowReader {
        /// Bytes per second read.
        bytes_per_s: u32,
    },
    /// After a valid handshake, sends bytes that are not frames.
    GarbageAfterHandshake,
}

/// The transport-level part of `behaviour`.
pub fn transport(behaviour: Behaviour) -> Transport {
    match behaviour {
        Behaviour::SlowReader => Transport::SlowReader { bytes_per_s: 64 },
        Behaviour::GarbageAfterHandshake => Transport::GarbageAfterHandshake,
        _ => Transport::Honest,
    }
}

/// `count` filler transfers (distinct, unsigned): the body of an over-limit block.
fn filler(count: usize) -> Vec<Txn> {
    (0..count as u64)
        .map(|nonce| Txn::unsigned(TxnBody::transfer(0, [1; 32], [2; 32], 1, 1, nonce)))
        .collect()
}

/// Re-signs a fresh proposal after its block was changed.
fn resign(proposal: &mut Proposal, chain: &ChainTag, sign: &dyn Fn(&[u8]) -> [u8; 64]) {
    let hash = proposal.block.header.hash();
    proposal.signature =
        sign(&proposal_signing_bytes(chain, proposal.view, proposal.block.header.height, &hash));
}

/// What a validator with `behaviour` actually sends when its honest core wants `message` to go
/// to `targets`: `(to, message)` pairs, signed by `sign` for `chain` (with its real key, so they
/// pass signature checks, except where the behaviour is a bad signature). Copies of one message share
/// one `Rc`, so a caller can tell distinct messages apart with [`Rc::ptr_eq`] (and encode each
/// once) and a large proposal is not cloned per target.
pub fn outbound(
    behaviour: Behaviour,
    chain: &ChainTag,
    sign: &dyn Fn(&[u8]) -> [u8; 64],
    targets: &[u32],
    message: ConsensusMessage,
) -> Vec<(u32, Rc<ConsensusMessage>)> {
    let to_all = |message: ConsensusMessage| {
        let message = Rc::new(message);
        targets.iter().map(|to| (*to, Rc::clone(&message))).collect()
    };
    match (behaviour, &message) {
        (Behaviour::VoteWithholder, ConsensusMessage::Vote(_)) => Vec::new(),
        (Behaviour::DoubleVoter, ConsensusMessage::Vote(vote)) => {
            let mut twin = vote.clone();
            twin.block = Hash::of(&vote.block.0);
            twin.signature = sign(&vote_signing_bytes(chain, twin.kind, twin.view, twin.height, &twin.block));
            let twin = Rc::new(ConsensusMessage::Vote(twin));
            let vote = Rc::new(message);
            // Everyone gets the vote as cast; every other validator also gets the twin.
            let mut out = Vec::with_capacity(targets.len() * 2);
            for (position, to) in targets.iter().enumerate() {
                out.push((*to, Rc::clone(&vote)));
                if position % 2 == 0 {
                    out.push((*to, Rc::clone(&twin)));
                }
            }
            out
        }
        (Behaviour::EquivocatingProposer, ConsensusMessage::Proposal(proposal))
            if proposal.justify.is_none() =>
        {
            let mut twin = proposal.clone();
            // Same height and parent, different timestamp: a second valid block.
            twin.block.header.timestamp_ms += 1;
            resign(&mut twin, chain, sign);
            let twin = Rc::new(ConsensusMessage::Proposal(twin));
            let proposal = Rc::new(message);
            // Half get one block, half the other; the first target gets both.
            let mut out = Vec::with_capacity(targets.len() + 1);
            for (position, to) in targets.iter().enumerate() {
                let copy = if position % 2 == 0 { &proposal } else { &twin };
                out.push((*to, Rc::clone(copy)));
                if position == 0 {
                    out.push((*to, Rc::clone(&twin)));
                }
            }
            out
        }
        (Behaviour::InvalidProposer, ConsensusMessage::Proposal(proposal)) if proposal.justify.is_none() => {
            let mut bad = proposal.clone();
            bad.block.header.state_root = Hash::of(&bad.block.header.state_root.0);
            resign(&mut bad, chain, sign);
            to_all(ConsensusMessage::Proposal(bad))
        }
        (Behaviour::BadSignatureProposer, ConsensusMessage::Proposal(proposal))
            if proposal.justify.is_none() =>
        {
            let mut bad = proposal.clone();
            // Still a well-formed signature encoding; it just does not verify.
            bad.signature[0] ^= 0x01;
            to_all(ConsensusMessage::Proposal(bad))
        }
        (Behaviour::OverLimitProposer, ConsensusMessage::Proposal(proposal))
            if proposal.justify.is_none() =>
        {
            let mut big = proposal.clone();
            let have = big.block.txns.len();
            big.block.txns =
                big.block.txns.iter().copied().chain(filler(OVER_LIMIT_TXNS.saturating_sub(have))).collect();
            big.block.header.txn_count = big.block.txns.len() as u32;
            big.block.header.txn_root = Block::compute_txn_root(&big.block.txns);
            resign(&mut big, chain, sign);
            to_all(ConsensusMessage::Proposal(big))
        }
        (Behaviour::Replayer, _) => {
            // The message as sent, then once more: a receiver must treat the copy as a no-op.
            let message = Rc::new(message);
            targets.iter().flat_map(|to| [(*to, Rc::clone(&message)), (*to, Rc::clone(&message))]).collect()
        }
        (Behaviour::Flooder, _) => {
            let message = Rc::new(message);
            targets
                .iter()
                .flat_map(|to| std::iter::repeat_n((*to, Rc::clone(&message)), FLOOD_COPIES))
                .collect()
        }
        _ => to_all(message),
    }
}

/// A Byzantine validator with memory: [`outbound`], plus, for a [`Behaviour::Replayer`],
/// replays of what it sent [`REPLAY_LAG`] sends ago (stale views and heights a receiver must
/// ignore). Bounded: it keeps [`REPLAY_LAG`] messages.
#[derive(Debug)]
pub struct Adversary {
    behaviour: Behaviour,
    history: VecDeque<ConsensusMessage>,
}

impl Adversary {
    /// An adversary with `behaviour`.
    pub fn new(behaviour: Behaviour) -> Adversary {
        Adversary { behaviour, history: VecDeque::with_capacity(REPLAY_LAG + 1) }
    }

    /// Its behaviour.
    pub fn behaviour(&self) -> Behaviour {
        self.behaviour
    }

    /// What it sends when its honest core wants `message` to go to `targets`.
    pub fn outbound(
        &mut self,
        chain: &ChainTag,
        sign: &dyn Fn(&[u8]) -> [u8; 64],
        targets: &[u32],
        message: ConsensusMessage,
    ) -> Vec<(u32, Rc<ConsensusMessage>)> {
        if self.behaviour != Behaviour::Replayer {
            return outbound(self.behaviour, chain, sign, targets, message);
        }
        let shared = Rc::new(message.clone());
        let mut out: Vec<(u32, Rc<ConsensusMessage>)> =
            targets.iter().map(|to| (*to, Rc::clone(&shared))).collect();
        if self.history.len() == REPLAY_LAG
            && let Some(old) = self.history.pop_front()
        {
            let old = Rc::new(old);
            out.extend(targets.iter().map(|to| (*to, Rc::clone(&old))));
        }
        self.history.push_back(message);
        out
    }

    /// Messages kept for replay, oldest first.
    pub fn history(&self) -> impl Iterator<Item = &ConsensusMessage> {
        self.history.iter()
    }

    /// Keeps `message` for replay as if it had been sent (messages the adversary observed from
    /// others, say), dropping the oldest past the bound.
    pub fn remember(&mut self, message: ConsensusMessage) {
        if self.history.len() == REPLAY_LAG {
            self.history.pop_front();
        }
        self.history.push_back(message);
    }
}

#[cfg(test)]
mod tests {
    use tessera_components::{BlockHeader, Vote, VoteKind};

    use super::*;

    fn sign(message: &[u8]) -> [u8; 64] {
        let mut out = [0u8; 64];
        out[..32].copy_from_slice(&Hash::of(message).0);
        out
    }

    fn proposal() -> ConsensusMessage {
        let header = BlockHeader {
            height: 3,
            view: 5,
            timestamp_ms: 1,
            proposer: 1,
            txn_count: 0,
            parent: Hash::of(b"parent"),
            txn_root: Block::compute_txn_root(&[]),
            state_root: Hash::of(b"state"),
        };
        let hash = header.hash();
        let signature = sign(&proposal_signing_bytes(&ChainTag::TEST, 5, 3, &hash));
        ConsensusMessage::Proposal(Proposal {
            view: 5,
            block: Block { header, txns: Vec::new().into() },
            justify: None,
            signature,
        })
    }

    fn vote(view: u64) -> ConsensusMessage {
        let block = Hash::of(b"block");
        let signature = sign(&vote_signing_bytes(&ChainTag::TEST, VoteKind::Prepare, view, 3, &block));
        ConsensusMessage::Vote(Vote { kind: VoteKind::Prepare, view, height: 3, block, voter: 1, signature })
    }

    fn proposal_of(message: &ConsensusMessage) -> &Proposal {
        match message {
            ConsensusMessage::Proposal(proposal) => proposal,
            other => panic!("not a proposal: {other:?}"),
        }
    }

    #[test]
    fn bad_signature_and_over_limit_proposals() {
        let original = proposal();
        let sent =
            outbound(Behaviour::BadSignatureProposer, &ChainTag::TEST, &sign, &[0, 2], original.clone());
        assert_eq!(sent.len(), 2);
        let bad = proposal_of(&sent[0].1);
        assert_eq!(bad.block, proposal_of(&original).block);
        assert_ne!(bad.signature, proposal_of(&original).signature);

        let sent = outbound(Behaviour::OverLimitProposer, &ChainTag::TEST, &sign, &[0], original);
        let big = proposal_of(&sent[0].1);
        assert_eq!(big.block.txns.len(), OVER_LIMIT_TXNS);
        assert_eq!(big.block.header.txn_count as usize, OVER_LIMIT_TXNS);
        assert_eq!(big.block.header.txn_root, Block::compute_txn_root(&big.block.txns));
        let hash = big.block.header.hash();
        assert_eq!(
            big.signature,
            sign(&proposal_signing_bytes(&ChainTag::TEST, big.view, 3, &hash)),
            "validly signed"
        );
        let frame = tessera_components::wire::encode(&tessera_components::wire::Frame::Consensus(
            (*sent[0].1).clone(),
        ));
        assert!(frame.len() <= tessera_components::constants::FRAME_SIZE_DEFAULT, "fits a default frame");
    }

    #[test]
    fn flooder_and_replayer_multiply_and_remember() {
        assert_eq!(
            outbound(Behaviour::Flooder, &ChainTag::TEST, &sign, &[0, 2], vote(1)).len(),
            2 * FLOOD_COPIES
        );
        assert_eq!(outbound(Behaviour::Replayer, &ChainTag::TEST, &sign, &[0], vote(1)).len(), 2);
        let mut adversary = Adversary::new(Behaviour::Replayer);
        for view in 0..REPLAY_LAG as u64 {
            assert_eq!(adversary.outbound(&ChainTag::TEST, &sign, &[0, 2], vote(view)).len(), 2);
        }
        let sent = adversary.outbound(&ChainTag::TEST, &sign, &[0, 2], vote(100));
        assert_eq!(sent.len(), 4);
        assert_eq!(*sent[2].1, vote(0), "the oldest send replayed");
        assert_eq!(adversary.history().count(), REPLAY_LAG);
        let mut honest = Adversary::new(Behaviour::DoubleVoter);
        assert_eq!(honest.outbound(&ChainTag::TEST, &sign, &[0], vote(1)).len(), 2);
    }

    #[test]
    fn transport_behaviours_leave_messages_alone() {
        for behaviour in [Behaviour::SlowReader, Behaviour::GarbageAfterHandshake] {
            assert_eq!(
                outbound(behaviour, &ChainTag::TEST, &sign, &[0], vote(1)),
                vec![(0, Rc::new(vote(1)))]
            );
            assert_ne!(transport(behaviour), Transport::Honest);
        }
        assert_eq!(transport(Behaviour::DoubleVoter), Transport::Honest);
    }
}
