//! Consensus messages: proposals, view changes and block sync. Votes and certificates are in
//! [`crate::block`].

use serde::{Deserialize, Serialize};
use serde_big_array::BigArray;

use crate::block::{Block, ChainTag, QuorumCertificate, Vote};
use crate::hash::Hash;

/// A leader's signed proposal of `block` in `view`.
#[derive(Clone, PartialEq, Eq, Debug, Serialize, Deserialize)]
pub struct Proposal {
    /// View of the proposal; the block header carries the same view.
    pub view: u64,
    /// The proposed block, state root included.
    pub block: Block,
    /// A prepare certificate for this very block from an earlier view, when the leader is
    /// re-proposing a block that may be locked (lets locked validators vote for it).
    pub justify: Option<QuorumCertificate>,
    /// Ed25519 signature by the proposer over [`proposal_signing_bytes`].
    #[serde(with = "BigArray")]
    pub signature: [u8; 64],
}

/// A validator's signed announcement that it entered `view` at `height`, carrying its highest
/// prepare certificate for that height.
#[derive(Clone, PartialEq, Eq, Debug, Serialize, Deserialize)]
pub struct NewView {
    /// The view entered.
    pub view: u64,
    /// The height the sender is trying to finalize.
    pub height: u64,
    /// The sender's highest prepare certificate at `height`, if any.
    pub high_qc: Option<QuorumCertificate>,
    /// Sender's validator index.
    pub sender: u32,
    /// Ed25519 signature over [`new_view_signing_bytes`].
    #[serde(with = "BigArray")]
    pub signature: [u8; 64],
}

/// One finalized block with its commit certificate, as served to a syncing peer.
/// What a validator has bound itself to, kept on disk before any message it signs leaves the
/// node, so that a restart never signs something that conflicts with what it signed before.
///
/// A validator that entered `view` may have signed, in that view, a proposal (as leader), a
/// prepare vote and a commit vote; so after a restart it signs nothing in `view` or any
/// earlier view, and resumes in `view + 1` at the earliest. At `height` it keeps `lock`, so it
/// never prepares a block that conflicts with a block it may have helped commit.
/// `docs/consensus.md` gives the argument.
#[derive(Clone, PartialEq, Eq, Debug, Default, Serialize, Deserialize)]
pub struct SafetyState {
    /// The height being decided when this was written (last finalized + 1).
    pub height: u64,
    /// The highest view this validator entered.
    pub view: u64,
    /// Its prepare certificate lock at `height`, if any.
    pub lock: Option<QuorumCertificate>,
}

#[derive(Clone, PartialEq, Eq, Debug, Serialize, Deserialize)]
pub struct CertifiedBlock {
    /// The block.
    pub block: Block,
    /// Its commit certificate.
    pub certificate: QuorumCertificate,
}

/// Every message of the consensus protocol.
#[derive(Clone, PartialEq, Eq, Debug, Serialize, Deserialize)]
pub enum ConsensusMessage {
    /// A leader's proposal.
    Proposal(Proposal),
    /// A prepare or commit vote.
    Vote(Vote),
    /// A view change announcement.
    NewView(NewView),
    /// "Send me finalized blocks from this height on."
    SyncRequest {
        /// First height wanted.
        from_height: u64,
    },
    /// Finalized blocks in height order.
    SyncResponse(Vec<CertifiedBlock>),
    /// A quorum certificate the view's leader formed from the votes sent to it alone, for
    /// everyone (vote aggregation, used by large validator sets: `docs/consensus.md`).
    Certificate(QuorumCertificate),
}

/// Bytes of a proposal's signing message.
pub const PROPOSAL_SIGNING_SIZE: usize = 16 + 32 + 8 + 8 + 32;

/// The message a proposal signature covers: domain tag, chain, view, height, block hash.
///
/// It is 96 bytes, as a transaction body is, but never one a transaction could be signed
/// over: its bytes 4..8 are `era/` (of the domain tag), where a body's `reserved` must be zero.
pub fn proposal_signing_bytes(
    chain: &ChainTag,
    view: u64,
    height: u64,
    block: &Hash,
) -> [u8; PROPOSAL_SIGNING_SIZE] {
    let mut out = [0u8; PROPOSAL_SIGNING_SIZE];
    out[..16].copy_from_slice(b"tessera/prop/v2\0");
    out[16..48].copy_from_slice(&chain.0);
    out[48..56].copy_from_slice(&view.to_le_bytes());
    out[56..64].copy_from_slice(&height.to_le_bytes());
    out[64..].copy_from_slice(&block.0);
    out
}

/// Bytes of a new-view signing message.
pub const NEW_VIEW_SIGNING_SIZE: usize = 16 + 32 + 8 + 8 + 32;

/// The message a new-view signature covers: domain tag, chain, view, height, and the hash of
/// the carried certificate's block (zero when none), so the certificate cannot be swapped. 96
/// bytes, and no transaction's, as for [`proposal_signing_bytes`].
pub fn new_view_signing_bytes(
    chain: &ChainTag,
    view: u64,
    height: u64,
    high_qc: Option<&QuorumCertificate>,
) -> [u8; NEW_VIEW_SIGNING_SIZE] {
    let mut out = [0u8; NEW_VIEW_SIGNING_SIZE];
    out[..16].copy_from_slice(b"tessera/view/v2\0");
    out[16..48].copy_from_slice(&chain.0);
    out[48..56].copy_from_slice(&view.to_le_bytes());
    out[56..64].copy_from_slice(&height.to_le_bytes());
    if let Some(qc) = high_qc {
        let digest =
            Hash::in_domain("tessera 2026 new-view certificate", &[&qc.view.to_le_bytes(), &qc.block.0]);
        out[64..].copy_from_slice(&digest.0);
    }
    out
}
