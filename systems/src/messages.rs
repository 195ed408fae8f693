//! The messages and shared state that pass between subsystems: what propose hands execute,
//! what execute (or consensus) reports as committed, and what the mempool reports as refused.
//!
//! They live here rather than in their producers so that no subsystem imports another just to
//! name a message: propose, execute, mempool and consensus each depend on this module only.

use bevy_ecs::prelude::*;
use tessera_components::{Block, Hash, RejectReason, TxnId};

use crate::ledger::Ledger;

/// The last executed block. Written by [`crate::execute::execute_blocks`] (or consensus,
/// when it finalizes); read by propose with a one-tick lag.
#[derive(Debug, Clone, Copy, Resource)]
pub struct ChainTip {
    /// Height of the last block (0: genesis).
    pub height: u64,
    /// Hash of its header ([`Hash::ZERO`] at genesis).
    pub hash: Hash,
    /// State root after it.
    pub state_root: Hash,
}

impl ChainTip {
    /// The tip before the first block: height 0, zero hash, the genesis state root.
    pub fn genesis(ledger: &Ledger) -> ChainTip {
        ChainTip { height: 0, hash: Hash::ZERO, state_root: ledger.state_root() }
    }
}

/// A block packed by this node, not yet executed: `header.state_root` is zero until execute
/// fills it. Written by [`crate::propose::propose_block`]; consumed by execute in the same tick.
#[derive(Debug, Clone, Message)]
pub struct BlockProposed {
    /// The block.
    pub block: Block,
    /// The id of each transaction, in block order (already known from the mempool, so
    /// nothing downstream hashes them again).
    pub ids: Vec<TxnId>,
}

/// What happened to one transaction of an executed block.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct TxnOutcome {
    /// The transaction.
    pub id: TxnId,
    /// `Ok` if applied; the reason if it failed: no amount moved, though a transfer that failed
    /// for its amount paid its fee and used its nonce (`Overlay::apply`).
    pub result: Result<(), RejectReason>,
}

/// A block executed and sealed. Written by [`crate::execute::execute_blocks`] (or consensus);
/// read by the mempool's prune step and drained by the shell after each tick (to persist,
/// report and serve).
#[derive(Debug, Clone, Message)]
pub struct BlockCommitted {
    /// The block, with `header.state_root` filled in.
    pub block: Block,
    /// Hash of the sealed header.
    pub hash: Hash,
    /// One outcome per transaction, in block order.
    pub outcomes: Vec<TxnOutcome>,
}

/// A transaction refused before it reached a block, with the reason. Written by
/// [`crate::mempool::admit_txns`] (for every stage's refusals, at the end of the entity's
/// life); drained by the shell, which answers "what happened to my transaction?".
#[derive(Debug, Clone, Copy, Message)]
pub struct TxnRejected {
    /// The transaction.
    pub id: TxnId,
    /// Why.
    pub reason: RejectReason,
}
