//! A Byzantine validator against a live node: with a validator's key, the attacker completes
//! the handshake as that validator, learns the node's height, view and tip from its JSON-RPC,
//! builds the messages an honest validator would send there (an empty block on the tip, a
//! prepare vote for it), and passes them through the behaviour library
//! ([`crate::sim::byzantine`]) that the simulator uses, sending whatever comes out.

use std::net::{SocketAddr, TcpStream};
use std::rc::Rc;
use std::time::{Duration, Instant};

use ed25519_dalek::{Signer, SigningKey};
use serde_json::Value;
use tessera_components::consensus::proposal_signing_bytes;
use tessera_components::wire::{Frame, encode};
use tessera_components::{
    Block, BlockFields, CertifiedBlock, ChainTag, ConsensusMessage, Hash, Proposal, QuorumCertificate,
    Signature, Txn, Vote, VoteKind, vote_signing_bytes,
};

use super::wire::{Channel, connect, follower_handshake, read_sealed, send_sealed, validator_handshake};
use super::{Kind, Limits, Pacer, Rng, Tally, Target};
use crate::sim::Behaviour;
use crate::sim::byzantine::Adversary;

/// What the node's JSON-RPC says about where it is.
#[derive(Clone, Copy, Debug)]
struct Position {
    /// Height of the last finalized block.
    height: u64,
    /// Current view.
    view: u64,
    /// Tip block hash.
    tip: Hash,
    /// State root after the tip.
    state_root: Hash,
    /// The chain its consensus signatures are made for.
    chain: ChainTag,
}

fn hash_of(value: &Value) -> Option<Hash> {
    let bytes: [u8; 32] = hex::decode(value.as_str()?.trim_start_matches("0x")).ok()?.try_into().ok()?;
    Some(Hash(bytes))
}

/// The node's position, read over its JSON-RPC on one kept-alive connection shared by the
/// kinds of a run; failing a read, the last one read. Run at once with the kinds that flood
/// the RPC port from the same address, a fresh connection per read was refused at accept for
/// whole runs (the address at its connection cap), which left the Byzantine kinds with nothing
/// to send. A connection opened before the floods keeps its slot.
fn position(rpc: SocketAddr) -> Option<Position> {
    let mut observer = OBSERVER.lock().unwrap_or_else(std::sync::PoisonError::into_inner);
    let (client, last) = match &mut *observer {
        Some((at, client, last)) if *at == rpc => (client, last),
        other => {
            let (_, client, last) =
                other.insert((rpc, crate::load::RpcClient::new(&format!("http://{rpc}")), None));
            (client, last)
        }
    };
    let read = client.call("tessera_getStatus", serde_json::json!([])).ok().and_then(|result| {
        Some(Position {
            height: result["height"].as_u64()?,
            view: result["view"].as_u64()?,
            tip: hash_of(&result["block_hash"])?,
            state_root: hash_of(&result["state_root"])?,
            chain: ChainTag(hash_of(&result["chain_tag"])?.0),
        })
    });
    if read.is_some() {
        *last = read;
    }
    *last
}

/// The node's JSON-RPC address, a client that keeps its connection, and the last position
/// read through it.
type Observer = (SocketAddr, crate::load::RpcClient, Option<Position>);

static OBSERVER: std::sync::Mutex<Option<Observer>> = std::sync::Mutex::new(None);

/// Reads the node's position before kinds that run at once start flooding its RPC port (for
/// up to two seconds), so the Byzantine kinds start from one.
pub fn learn_position(target: &Target) {
    let Some(rpc) = target.rpc else { return };
    let deadline = Instant::now() + Duration::from_secs(2);
    while position(rpc).is_none() && Instant::now() < deadline {
        std::thread::sleep(Duration::from_millis(50));
    }
}

/// The last view at least two behind `view` in which `index` leads a set of `validators`: one
/// the node has left (`None` early in the chain).
fn old_led_view(view: u64, index: u32, validators: u32) -> Option<u64> {
    let n = u64::from(validators.max(1));
    let old = view.checked_sub(3)?;
    old.checked_sub((old % n + n - u64::from(index) % n) % n)
}

/// The first view from `view` on in which `index` leads a set of `validators`.
fn led_view(view: u64, index: u32, validators: u32) -> u64 {
    let n = u64::from(validators.max(1));
    view + (u64::from(index) + n - view % n) % n
}

/// An honest-looking proposal by `index` of an empty block on the node's tip.
fn proposal(at: &Position, view: u64, index: u32, key: &SigningKey) -> ConsensusMessage {
    proposal_salted(at, view, index, key, 0)
}

/// [`proposal`], its timestamp moved on by `salt` milliseconds: a distinct block per salt.
fn proposal_salted(at: &Position, view: u64, index: u32, key: &SigningKey, salt: u64) -> ConsensusMessage {
    let now_ms = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(0, |d| d.as_millis() as u64);
    let fields = BlockFields {
        height: at.height + 1,
        view,
        timestamp_ms: now_ms.wrapping_add(salt),
        proposer: index,
        parent: at.tip,
        state_root: at.state_root,
    };
    let block = Block::assemble(fields, Vec::new(), &[]);
    let hash = block.header.hash();
    let signature = key.sign(&proposal_signing_bytes(&at.chain, view, block.header.height, &hash)).to_bytes();
    ConsensusMessage::Proposal(Proposal { view, block, justify: None, signature })
}

/// Blocks a sync response of [`Kind::SubQuorumSync`] carries: an honest response's most.
const SUB_QUORUM_BLOCKS: u64 = 64;

/// A sync response of [`SUB_QUORUM_BLOCKS`] empty blocks chained from the node's next height
/// (distinct for each `salt`), each with a commit certificate of `index`'s vote alone, validly
/// signed: every shape check but the quorum passes.
fn sub_quorum_sync(at: &Position, index: u32, key: &SigningKey, salt: u64) -> ConsensusMessage {
    let mut parent = at.tip;
    let blocks = (1..=SUB_QUORUM_BLOCKS)
        .map(|step| {
            let fields = BlockFields {
                height: at.height + step,
                view: at.view,
                timestamp_ms: salt,
                proposer: index,
                parent,
                state_root: at.state_root,
            };
            let block = Block::assemble(fields, Vec::new(), &[]);
            let (height, hash) = (block.header.height, block.header.hash());
            parent = hash;
            let signed = vote_signing_bytes(&at.chain, VoteKind::Commit, at.view, height, &hash);
            let certificate = QuorumCertificate {
                kind: VoteKind::Commit,
                view: at.view,
                height,
                block: hash,
                signers: vec![index],
                signatures: vec![Signature(key.sign(&signed).to_bytes())],
            };
            CertifiedBlock { block, certificate }
        })
        .collect();
    ConsensusMessage::SyncResponse(blocks)
}

/// A prepare vote by `index` for `block` at the node's next height.
fn vote(at: &Position, view: u64, block: Hash, index: u32, key: &SigningKey) -> ConsensusMessage {
    let height = at.height + 1;
    let signature =
        key.sign(&vote_signing_bytes(&at.chain, VoteKind::Prepare, view, height, &block)).to_bytes();
    ConsensusMessage::Vote(Vote { kind: VoteKind::Prepare, view, height, block, voter: index, signature })
}

/// Old signed votes, rebuilt from the certificates of the node's first finalized blocks
/// (fetched over a full node's sync connection): genuine signatures, long stale.
fn old_votes(peer: SocketAddr, target: &Target, tally: &mut Tally) -> Vec<ConsensusMessage> {
    let Some(mut stream) = connect(peer, tally) else { return Vec::new() };
    let Some(mut channel) = follower_handshake(&mut stream, target.chain_id, target.node_index, tally) else {
        return Vec::new();
    };
    let request = encode(&Frame::Consensus(ConsensusMessage::SyncRequest { from_height: 1 }));
    if !send_sealed(&mut channel, &request, tally) {
        return Vec::new();
    }
    tally.frames += 1;
    let Ok(Some(Frame::Consensus(ConsensusMessage::SyncResponse(blocks)))) = read_sealed(&mut channel) else {
        return Vec::new();
    };
    let mut votes = Vec::new();
    for certified in blocks.iter().take(16) {
        let qc = &certified.certificate;
        for (voter, signature) in qc.signers.iter().zip(&qc.signatures) {
            votes.push(ConsensusMessage::Vote(Vote {
                kind: qc.kind,
                view: qc.view,
                height: qc.height,
                block: qc.block,
                voter: *voter,
                signature: signature.0,
            }));
        }
    }
    votes
}

/// A connection to the node's peer port, through the handshake as `validator`: the socket
/// (kept so the channel's clone of it stays open) and the channel. On a failure it waits a
/// tenth of a second before returning, so callers can simply try again.
fn validator_link(
    peer: SocketAddr,
    target: &Target,
    validator: (u32, &SigningKey),
    tally: &mut Tally,
) -> Option<(TcpStream, Channel)> {
    let Some(mut fresh) = connect(peer, tally) else {
        std::thread::sleep(Duration::from_millis(100));
        return None;
    };
    let Some(channel) = validator_handshake(&mut fresh, target.chain_id, validator, target.node_index, tally)
    else {
        tally.closed_by_node += 1;
        std::thread::sleep(Duration::from_millis(100));
        return None;
    };
    Some((fresh, channel))
}

/// Runs a consensus kind until `deadline`.
pub fn run(kind: Kind, target: &Target, limits: &Limits, deadline: Instant) -> Tally {
    let mut tally = Tally::default();
    let (Some(peer), Some(rpc), Some((index, key))) = (target.peer, target.rpc, target.validator.as_ref())
    else {
        return tally;
    };
    let index = *index;
    if matches!(kind, Kind::ForwardedSignatureSpam | Kind::ForwardedDilutedForgeries) {
        let diluted = kind == Kind::ForwardedDilutedForgeries;
        forwarded_spam(peer, target, (index, key), limits, deadline, diluted, &mut tally);
        return tally;
    }
    let mut rng = Rng::new(limits.seed ^ 0x0062_797a);
    let behaviours: &[Behaviour] = match kind {
        Kind::Equivocation => &[Behaviour::EquivocatingProposer],
        Kind::DoubleVote => &[Behaviour::DoubleVoter],
        Kind::InvalidProposals => {
            &[Behaviour::BadSignatureProposer, Behaviour::InvalidProposer, Behaviour::OverLimitProposer]
        }
        Kind::Replay => &[Behaviour::Replayer],
        _ => &[Behaviour::Flooder],
    };
    let mut adversaries: Vec<Adversary> = behaviours.iter().map(|b| Adversary::new(*b)).collect();
    if kind == Kind::Replay {
        for old in old_votes(peer, target, &mut tally) {
            adversaries[0].remember(old);
        }
    }
    let sign = |message: &[u8]| key.sign(message).to_bytes();
    // The socket (kept so the channel's clone of it stays open) and the channel over it.
    let mut stream: Option<(TcpStream, Channel)> = None;
    // Consensus messages per second; proposals are sent at most a few times a second.
    let rate = match kind {
        Kind::ConsensusFlood => limits.rate,
        Kind::OldViewProposals => limits.rate.min(500),
        // Each response is 64 signatures to make: a few hundred a second is what one core signs.
        Kind::SubQuorumSync => limits.rate.min(200),
        _ => 50,
    };
    let mut pacer = Pacer::new(rate);
    let mut at: Option<(Position, Instant)> = None;
    let mut round = 0u64;
    while Instant::now() < deadline {
        if at.is_none_or(|(_, when)| when.elapsed() > Duration::from_millis(100)) {
            at = position(rpc).map(|p| (p, Instant::now())).or(at);
        }
        let Some((here, _)) = at else {
            std::thread::sleep(Duration::from_millis(100));
            continue;
        };
        if stream.is_none() {
            stream = validator_link(peer, target, (index, key), &mut tally);
            if stream.is_none() {
                continue;
            }
        }
        if matches!(kind, Kind::OldViewProposals | Kind::SubQuorumSync) {
            round += 1;
            let message = if kind == Kind::SubQuorumSync {
                sub_quorum_sync(&here, index, key, round)
            } else {
                // A distinct block per send, all for one view the node has left.
                let Some(old) = old_led_view(here.view, index, target.validators) else {
                    std::thread::sleep(Duration::from_millis(100));
                    continue;
                };
                proposal_salted(&here, old, index, key, round)
            };
            let frame = encode(&Frame::Consensus(message));
            pacer.wait(1);
            if let Some((_, open)) = stream.as_mut()
                && send_sealed(open, &frame, &mut tally)
            {
                tally.messages += 1;
            } else {
                tally.closed_by_node += 1;
                stream = None;
            }
            continue;
        }
        let turn = round % behaviours.len() as u64;
        let adversary = &mut adversaries[turn as usize];
        let behaviour = adversary.behaviour();
        round += 1;
        // Each invalid-proposal behaviour proposes in a view of its own (the next one this key
        // leads, or the one after, ...), so the node judges each block on its merits instead of
        // seeing the second and third as equivocations against the first.
        let view = led_view(here.view, index, target.validators) + u64::from(target.validators.max(1)) * turn;
        let honest = match behaviour {
            Behaviour::EquivocatingProposer
            | Behaviour::BadSignatureProposer
            | Behaviour::InvalidProposer
            | Behaviour::OverLimitProposer => proposal(&here, view, index, key),
            _ => {
                let mut block = [0u8; 32];
                rng.fill(&mut block);
                vote(&here, here.view, Hash(block), index, key)
            }
        };
        let sends = adversary.outbound(&here.chain, &sign, &[0], honest);
        let mut alive = true;
        for (_, message) in sends {
            let frame = encode(&Frame::Consensus(Rc::unwrap_or_clone(message)));
            pacer.wait(1);
            if let Some((_, open)) = stream.as_mut()
                && !send_sealed(open, &frame, &mut tally)
            {
                alive = false;
                break;
            }
            tally.messages += 1;
        }
        if !alive {
            tally.closed_by_node += 1;
            stream = None;
        }
        if behaviour == Behaviour::OverLimitProposer {
            // Three megabytes each: once a second is plenty.
            std::thread::sleep(
                Duration::from_secs(1).min(deadline.saturating_duration_since(Instant::now())),
            );
        }
    }
    if stream.is_some() {
        tally.left_open += 1;
    }
    tally
}

/// Batches of transactions with forged signatures, as forwarded transactions over this
/// validator's authenticated link, as fast as the rate cap allows. A closed link is dialled
/// again (a validator may always reconnect), and counted.
fn forwarded_spam(
    peer: SocketAddr,
    target: &Target,
    validator: (u32, &SigningKey),
    limits: &Limits,
    deadline: Instant,
    diluted: bool,
    tally: &mut Tally,
) {
    const BATCH: usize = 256;
    let signed = super::wire::spam_originals(target);
    // Cover for the diluted batches: validly signed (by throwaway keys), distinct, and the same
    // every time, so they cost the attacker nothing after the first batch.
    let cover: Vec<Txn> =
        (0..BATCH as u64 - 1).map(|i| super::wire::throwaway_txn(target.chain_id, (1 << 20) + i)).collect();
    let mut variant = limits.seed.wrapping_mul(1 << 20) ^ 0x66_7764;
    let mut pacer = Pacer::new(limits.rate);
    let mut stream: Option<(TcpStream, Channel)> = None;
    while Instant::now() < deadline {
        if stream.is_none() {
            stream = validator_link(peer, target, validator, tally);
            if stream.is_none() {
                continue;
            }
        }
        let mut forged = || {
            let original = &signed[(variant % signed.len() as u64) as usize];
            variant += 1;
            super::wire::spoil(original, (variant / 256) % 0xff_ffff + 1)
        };
        // Diluted: one forgery among good signatures passes the two-signature spot check almost
        // always, so only charging the pipeline's verdict to the forwarder stops it.
        let batch: Vec<Txn> = if diluted {
            let mut batch = cover.clone();
            batch.push(forged());
            batch
        } else {
            (0..BATCH).map(|_| forged()).collect()
        };
        let frame = encode(&Frame::Txns(batch));
        pacer.wait(BATCH as u64);
        if let Some((_, open)) = stream.as_mut()
            && send_sealed(open, &frame, tally)
        {
            tally.frames += 1;
            tally.txns += BATCH as u64;
        } else {
            tally.closed_by_node += 1;
            stream = None;
        }
    }
    if stream.is_some() {
        tally.left_open += 1;
    }
}

#[cfg(test)]
mod tests {
    use super::{led_view, old_led_view};

    #[test]
    fn old_led_view_is_a_view_the_index_led_at_least_three_back() {
        assert_eq!(old_led_view(2, 0, 4), None);
        assert_eq!(old_led_view(3, 0, 4), Some(0));
        assert_eq!(old_led_view(3, 1, 4), None);
        assert_eq!(old_led_view(10, 1, 4), Some(5));
        assert_eq!(old_led_view(11, 0, 4), Some(8));
        for view in 3..40 {
            for index in 0..4 {
                if let Some(old) = old_led_view(view, index, 4) {
                    assert_eq!(old % 4, u64::from(index));
                    assert!(old + 3 <= view && old + 7 > view, "{old} for {view}");
                }
            }
        }
    }

    #[test]
    fn led_view_is_the_next_view_the_index_leads() {
        assert_eq!(led_view(0, 0, 4), 0);
        assert_eq!(led_view(5, 1, 4), 5);
        assert_eq!(led_view(6, 1, 4), 9);
        assert_eq!(led_view(7, 3, 4), 7);
        assert_eq!(led_view(8, 3, 4), 11);
    }
}
