//! Byzantine behaviours as rewrites of a validator's outbound consensus messages: the same
//! code runs inside the tick-driven cluster harness and the event-driven simulator.

use tessera_components::consensus::proposal_signing_bytes;
use tessera_components::{ConsensusMessage, Hash, vote_signing_bytes};

use super::Behaviour;

/// What a validator with `behaviour` actually sends when its honest core wants `message` to go
/// to `targets`: `(to, message)` pairs, signed by `sign` (with its real key, so they pass
/// signature checks).
pub fn outbound(
    behaviour: Behaviour,
    sign: &dyn Fn(&[u8]) -> [u8; 64],
    targets: &[u32],
    message: ConsensusMessage,
) -> Vec<(u32, ConsensusMessage)> {
    match (behaviour, &message) {
        (Behaviour::VoteWithholder, ConsensusMessage::Vote(_)) => Vec::new(),
        (Behaviour::DoubleVoter, ConsensusMessage::Vote(vote)) => {
            let mut twin = vote.clone();
            twin.block = Hash::of(&vote.block.0);
            twin.signature = sign(&vote_signing_bytes(twin.kind, twin.view, twin.height, &twin.block));
            // Everyone gets the vote as cast; every other validator also gets the twin.
            let mut out = Vec::with_capacity(targets.len() * 2);
            for (position, to) in targets.iter().enumerate() {
                out.push((*to, ConsensusMessage::Vote(vote.clone())));
                if position % 2 == 0 {
                    out.push((*to, ConsensusMessage::Vote(twin.clone())));
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
            let hash = twin.block.header.hash();
            twin.signature = sign(&proposal_signing_bytes(twin.view, twin.block.header.height, &hash));
            // Half get one block, half the other; the first target gets both.
            let mut out = Vec::with_capacity(targets.len() + 1);
            for (position, to) in targets.iter().enumerate() {
                let copy = if position % 2 == 0 { proposal.clone() } else { twin.clone() };
                out.push((*to, ConsensusMessage::Proposal(copy)));
                if position == 0 {
                    out.push((*to, ConsensusMessage::Proposal(twin.clone())));
                }
            }
            out
        }
        (Behaviour::InvalidProposer, ConsensusMessage::Proposal(proposal)) if proposal.justify.is_none() => {
            let mut bad = proposal.clone();
            bad.block.header.state_root = Hash::of(&bad.block.header.state_root.0);
            let hash = bad.block.header.hash();
            bad.signature = sign(&proposal_signing_bytes(bad.view, bad.block.header.height, &hash));
            targets.iter().map(|to| (*to, ConsensusMessage::Proposal(bad.clone()))).collect()
        }
        _ => targets.iter().map(|to| (*to, message.clone())).collect(),
    }
}
