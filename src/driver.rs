//! The step after a schedule tick, shared by the node and the simulator.
//!
//! Bird's eye view: a runtime (the node loop on real sockets, or the simulator in virtual
//! time) delivers what arrived into a [`Pipeline`] and then calls [`tick`]. One call runs the
//! schedule once, takes the refusals, persists what consensus finalized, and only then takes
//! the outbox. The order is the contract both runtimes rely on:
//!
//! ```text
//! Pipeline::tick ─► drain rejections ─► drain certified ─► persist (BlockStore) ─► drain outbox
//! ```
//!
//! A block is reported anywhere (RPC, metrics, the simulator's recorder) only once its record
//! is durable, and a runtime that gets a persistence error back must not send the outbox as if
//! it had persisted. What the runtime then does with the result (sockets, or the simulated
//! network) is its own: [`recipients`] says who a consensus message goes to, once.

use tessera_components::{CertifiedBlock, ConsensusMessage};
use tessera_systems::consensus::core::Destination;
use tessera_systems::mempool::TxnRejected;
use tessera_systems::{Pipeline, TxnOutcome};

use crate::storage::{BlockStore, StoreError};

/// A block consensus finalized, with what executing it did.
#[derive(Debug)]
pub struct Finalized {
    /// The block and its commit certificate.
    pub certified: CertifiedBlock,
    /// One outcome per transaction, in block order, each with the transaction's id.
    pub outcomes: Vec<TxnOutcome>,
}

/// What one [`tick`] produced.
#[derive(Debug)]
pub struct Ticked {
    /// Transactions refused since the last tick.
    pub rejections: Vec<TxnRejected>,
    /// Finalized blocks that are durable (every one when there is no store), in height order.
    pub finalized: Vec<Finalized>,
    /// The first persistence error; blocks from the failed one on are not in `finalized`.
    pub persist_error: Option<StoreError>,
    /// Consensus messages to send, in the order the core produced them.
    pub outbound: Vec<(Destination, ConsensusMessage)>,
}

/// Runs one schedule tick at `now_ns`, persists what it finalized into `store` (if any), and
/// takes the outbox.
pub fn tick(pipeline: &mut Pipeline, now_ns: u64, store: Option<&mut dyn BlockStore>) -> Ticked {
    let committed = pipeline.tick(now_ns);
    let rejections = pipeline.drain_rejections();
    let mut certified = pipeline.drain_certified();
    // Consensus hands each block it finalizes to execution in the same step, in order.
    assert_eq!(committed.len(), certified.len(), "one execution per finalized block");
    let mut persist_error = None;
    if let Some(store) = store {
        let (durable, written) = store.commit_finalized(&certified, pipeline.ledger());
        debug_assert!(durable <= certified.len());
        debug_assert!(written.is_ok() == (durable == certified.len()));
        certified.truncate(durable);
        persist_error = written.err();
    }
    let finalized = certified
        .into_iter()
        .zip(committed)
        .map(|(certified, executed)| {
            assert_eq!(certified.certificate.block, executed.hash, "outcomes belong to the finalized block");
            Finalized { certified, outcomes: executed.outcomes }
        })
        .collect();
    // Taken after persisting: nothing this tick produced leaves before its blocks are on disk.
    let outbound = pipeline.drain_outbound();
    Ticked { rejections, finalized, persist_error, outbound }
}

/// The validators a message for `destination` goes to, sent by validator `me` of `validators`:
/// every other validator, or the one named.
pub fn recipients(destination: Destination, me: u32, validators: u32) -> impl Iterator<Item = u32> {
    let (range, only) = match destination {
        Destination::All => (0..validators, None),
        Destination::One(to) => (to..to.saturating_add(1), Some(to)),
    };
    range.filter(move |to| only.is_some() || *to != me)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn recipients_are_everyone_else_or_the_one_named() {
        assert_eq!(recipients(Destination::All, 1, 4).collect::<Vec<_>>(), vec![0, 2, 3]);
        assert_eq!(recipients(Destination::All, 7, 4).collect::<Vec<_>>(), vec![0, 1, 2, 3]);
        assert_eq!(recipients(Destination::One(2), 1, 4).collect::<Vec<_>>(), vec![2]);
        assert_eq!(recipients(Destination::All, 0, 1).count(), 0);
    }
}
