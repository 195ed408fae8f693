//! Blocks, votes and quorum certificates.

use std::sync::Arc;

use bytemuck::{Pod, Zeroable};
use serde::{Deserialize, Serialize};
use serde_big_array::BigArray;

use crate::hash::{Hash, merkle_root};
use crate::txn::{Txn, TxnId};

/// A block header: 128 bytes, hashed as a whole to give the block's identity.
///
/// Written by propose (all fields but `state_root`) and execute (`state_root`, the root after
/// applying this block's transactions).
#[derive(Clone, Copy, PartialEq, Eq, Debug, Pod, Zeroable, Serialize, Deserialize)]
#[repr(C)]
pub struct BlockHeader {
    /// Height; the genesis state is height 0 and the first block is height 1.
    pub height: u64,
    /// Consensus view (round) in which the block was proposed.
    pub view: u64,
    /// Proposer's clock reading, milliseconds.
    pub timestamp_ms: u64,
    /// Index of the proposer in the validator set.
    pub proposer: u32,
    /// Number of transactions in the block body.
    pub txn_count: u32,
    /// Hash of the parent header.
    pub parent: Hash,
    /// Merkle root over the transaction ids, in block order.
    pub txn_root: Hash,
    /// State root after executing this block.
    pub state_root: Hash,
}

const _: () = assert!(size_of::<BlockHeader>() == 128);

impl BlockHeader {
    /// The block's identity: BLAKE3 over the 128 header bytes.
    pub fn hash(&self) -> Hash {
        static HEADER: crate::Domain = crate::Domain::new("tessera 2026 block header");
        HEADER.hash(&[bytemuck::bytes_of(self)])
    }
}

/// A block: header plus transactions in execution order.
#[derive(Clone, PartialEq, Eq, Debug, Serialize, Deserialize)]
pub struct Block {
    /// The header.
    pub header: BlockHeader,
    /// Transactions in execution order. Shared: a clone of a block copies its header, never its
    /// transactions, so a block travels from proposal to storage as one copy of its body
    /// (what the consensus core keeps, each message that carries it, execution's memo, a
    /// simulated delivery to each of its recipients).
    #[serde(with = "crate::txn::txn_bytes")]
    pub txns: Arc<[Txn]>,
}

/// The header fields a block's author chooses. [`Block::assemble`] derives the others
/// (`txn_count`, `txn_root`) from the body.
#[derive(Clone, Copy, PartialEq, Eq, Debug)]
pub struct BlockFields {
    /// [`BlockHeader::height`].
    pub height: u64,
    /// [`BlockHeader::view`].
    pub view: u64,
    /// [`BlockHeader::timestamp_ms`].
    pub timestamp_ms: u64,
    /// [`BlockHeader::proposer`].
    pub proposer: u32,
    /// [`BlockHeader::parent`].
    pub parent: Hash,
    /// [`BlockHeader::state_root`]: zero for a proposal, which execute fills in.
    pub state_root: Hash,
}

impl Block {
    /// The block of `txns` under a header of `fields`, with `txn_count` and `txn_root`
    /// computed from the body, the one way every block author builds a header. `ids` are the
    /// transactions' ids in block order (authors already hold them, so nothing is rehashed).
    ///
    /// # Panics
    /// If `ids` and `txns` differ in length, or there are more than `u32::MAX` transactions.
    pub fn assemble(fields: BlockFields, txns: Vec<Txn>, ids: &[TxnId]) -> Block {
        assert_eq!(ids.len(), txns.len(), "one id per transaction");
        let header = BlockHeader {
            height: fields.height,
            view: fields.view,
            timestamp_ms: fields.timestamp_ms,
            proposer: fields.proposer,
            txn_count: u32::try_from(txns.len()).expect("a block's transaction count fits in u32"),
            parent: fields.parent,
            txn_root: txn_root_of(ids),
            state_root: fields.state_root,
        };
        Block { header, txns: txns.into() }
    }

    /// Merkle root over the ids of `txns`, as [`BlockHeader::txn_root`] must hold.
    pub fn compute_txn_root(txns: &[Txn]) -> Hash {
        let ids: Vec<TxnId> = txns.iter().map(Txn::id).collect();
        txn_root_of(&ids)
    }

    /// [`Block::compute_txn_root`] from the ids already computed, in block order: a block's
    /// ids are hashed once and serve its root, its signature cache and its execution.
    pub fn txn_root_of_ids(ids: &[TxnId]) -> Hash {
        txn_root_of(ids)
    }

    /// Bytes of the body on the wire (transactions only).
    pub fn body_size(&self) -> usize {
        self.txns.len() * crate::constants::TXN_SIZE
    }
}

/// Merkle root over transaction ids in block order.
fn txn_root_of(ids: &[TxnId]) -> Hash {
    let leaves: Vec<Hash> = ids.iter().map(|id| id.0).collect();
    merkle_root(&leaves)
}

/// The two vote phases of the BFT protocol.
#[derive(Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Debug, Serialize, Deserialize)]
#[repr(u8)]
pub enum VoteKind {
    /// First-phase vote: the block is valid and extends the locked chain.
    Prepare = 1,
    /// Second-phase vote: a prepare quorum was seen; 2f+1 of these make the block final.
    Commit = 2,
}

/// A validator's signed vote for a block in a view.
#[derive(Clone, PartialEq, Eq, Debug, Serialize, Deserialize)]
pub struct Vote {
    /// Phase.
    pub kind: VoteKind,
    /// View the vote belongs to.
    pub view: u64,
    /// Height of the block voted for.
    pub height: u64,
    /// Hash of the block header voted for.
    pub block: Hash,
    /// Index of the voter in the validator set.
    pub voter: u32,
    /// Ed25519 signature over [`vote_signing_bytes`].
    #[serde(with = "BigArray")]
    pub signature: [u8; 64],
}

/// Bytes of a vote's signing message: a domain tag, the chain, then kind, view, height and
/// block hash.
pub const VOTE_SIGNING_SIZE: usize = 16 + 32 + 1 + 8 + 8 + 32;

/// The message a vote signature covers. A fixed domain tag keeps a vote signature from ever
/// verifying as a transaction signature (transaction bodies are 96 bytes, this is 97), and the
/// [`ChainTag`] from ever counting on another chain.
pub fn vote_signing_bytes(
    chain: &ChainTag,
    kind: VoteKind,
    view: u64,
    height: u64,
    block: &Hash,
) -> [u8; VOTE_SIGNING_SIZE] {
    let mut out = [0u8; VOTE_SIGNING_SIZE];
    out[..16].copy_from_slice(b"tessera/vote/v2\0");
    out[16..48].copy_from_slice(&chain.0);
    out[48] = kind as u8;
    out[49..57].copy_from_slice(&view.to_le_bytes());
    out[57..65].copy_from_slice(&height.to_le_bytes());
    out[65..].copy_from_slice(&block.0);
    out
}

/// The chain a consensus signature is made for: BLAKE3 (derive-key domain
/// `tessera 2026 chain`) of the chain id (u32, little-endian), the genesis id (the hash of the
/// genesis balances the data directory's files carry, `docs/storage.md`), the validator count
/// (u64, little-endian) and their public keys in index order. Every vote, proposal and
/// new-view signature covers it, so two networks that share validator keys (a test network
/// restarted with a new chain id, from new balances, or with one validator replaced) never
/// accept each other's votes or certificates: a follower of one cannot be fed the other's
/// blocks. A network started again from the very same genesis is the same chain to it.
#[derive(Clone, Copy, PartialEq, Eq, Hash, Debug)]
pub struct ChainTag(pub [u8; 32]);

impl ChainTag {
    /// The tag of tests and of simulated networks (every node of a simulation shares it; no
    /// real chain's tag is all zero bytes but with probability 2^-256).
    pub const TEST: ChainTag = ChainTag([0; 32]);

    /// The tag of the chain `chain_id` that starts from the genesis whose id is `genesis_id`,
    /// with `validators` (their public keys, in index order).
    pub fn of(chain_id: u32, genesis_id: &Hash, validators: &[[u8; 32]]) -> ChainTag {
        let mut hasher = blake3::Hasher::new_derive_key("tessera 2026 chain");
        hasher.update(&chain_id.to_le_bytes());
        hasher.update(&genesis_id.0);
        hasher.update(&(validators.len() as u64).to_le_bytes());
        for key in validators {
            hasher.update(key);
        }
        ChainTag(*hasher.finalize().as_bytes())
    }
}

/// 2f+1 votes of one kind for one block in one view.
#[derive(Clone, PartialEq, Eq, Debug, Serialize, Deserialize)]
pub struct QuorumCertificate {
    /// Phase of the aggregated votes.
    pub kind: VoteKind,
    /// View of the votes.
    pub view: u64,
    /// Height of the certified block.
    pub height: u64,
    /// Hash of the certified block header.
    pub block: Hash,
    /// Validator indexes of the signers, strictly increasing.
    pub signers: Vec<u32>,
    /// One signature per signer, in the same order.
    pub signatures: Vec<Signature>,
}

/// A 64-byte Ed25519 signature inside a certificate.
#[derive(Clone, Copy, PartialEq, Eq, Debug, Serialize, Deserialize)]
pub struct Signature(#[serde(with = "BigArray")] pub [u8; 64]);

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn header_hash_covers_every_field() {
        let base = BlockHeader::zeroed();
        let mut changed = base;
        changed.state_root = Hash([1; 32]);
        assert_ne!(base.hash(), changed.hash());
        changed = base;
        changed.txn_count = 1;
        assert_ne!(base.hash(), changed.hash());
    }

    #[test]
    fn assemble_derives_count_and_root_from_the_body() {
        let txns: Vec<Txn> = (0..3u8)
            .map(|i| Txn {
                body: crate::txn::TxnBody::zeroed(),
                signature: crate::txn::TxnSignature([i; 64]),
            })
            .collect();
        let ids: Vec<TxnId> = txns.iter().map(Txn::id).collect();
        let fields = BlockFields {
            height: 4,
            view: 5,
            timestamp_ms: 6,
            proposer: 2,
            parent: Hash([8; 32]),
            state_root: Hash([9; 32]),
        };
        let block = Block::assemble(fields, txns.clone(), &ids);
        let expected = BlockHeader {
            height: 4,
            view: 5,
            timestamp_ms: 6,
            proposer: 2,
            txn_count: 3,
            parent: Hash([8; 32]),
            txn_root: Block::compute_txn_root(&txns),
            state_root: Hash([9; 32]),
        };
        assert_eq!(block, Block { header: expected, txns: txns.into() });
        assert_eq!(Block::assemble(fields, Vec::new(), &[]).header.txn_root, Block::compute_txn_root(&[]));
    }

    #[test]
    fn vote_signing_bytes_separate_fields() {
        let block = Hash([7; 32]);
        let a = vote_signing_bytes(&ChainTag::TEST, VoteKind::Prepare, 1, 2, &block);
        let b = vote_signing_bytes(&ChainTag::TEST, VoteKind::Commit, 1, 2, &block);
        let c = vote_signing_bytes(&ChainTag::TEST, VoteKind::Prepare, 2, 1, &block);
        let other = ChainTag::of(1, &Hash([0; 32]), &[[1; 32]]);
        let d = vote_signing_bytes(&other, VoteKind::Prepare, 1, 2, &block);
        assert_ne!(a, b);
        assert_ne!(a, c);
        assert_ne!(a, d, "another chain signs other bytes");
        assert_ne!(ChainTag::of(2, &Hash([0; 32]), &[[1; 32]]), other, "the chain id is covered");
        assert_ne!(ChainTag::of(1, &Hash([1; 32]), &[[1; 32]]), other, "the genesis is covered");
        assert_ne!(ChainTag::of(1, &Hash([0; 32]), &[[2; 32]]), other, "the validators are covered");
        assert_ne!(ChainTag::of(1, &Hash([0; 32]), &[[1; 32], [1; 32]]), other, "and their count");
        assert_eq!(&a[65..], &block.0);
    }
}
