//! The storage port: what the node and the simulator need from persistence, so the real
//! [`Store`](super::Store) over files and the simulator's in-memory disk
//! ([`crate::sim::disk::SimDisk`]) are interchangeable. Opening (and with it recovery) is each
//! implementation's constructor, returning `(Self, Ledger, Recovery)`: what it opens differs (a
//! directory, byte buffers) and a constructor cannot be called through `dyn`.

use tessera_components::{Block, CertifiedBlock, Hash, QuorumCertificate, SafetyState};
use tessera_systems::Ledger;

use super::{Store, StoreError};

/// The one rule for committing a tick's finalized blocks, shared by every [`Storage`]: in
/// order, the snapshot offered only with the last block (`ledger` is the state after it),
/// stopping at the first failure. Returns how many were committed and that failure.
pub(crate) fn commit_in_order(
    blocks: &[CertifiedBlock],
    ledger: &Ledger,
    mut commit: impl FnMut(&Block, &QuorumCertificate, Option<&Ledger>) -> Result<(), StoreError>,
) -> (usize, Result<(), StoreError>) {
    for (position, certified) in blocks.iter().enumerate() {
        let snapshot = (position + 1 == blocks.len()).then_some(ledger);
        if let Err(error) = commit(&certified.block, &certified.certificate, snapshot) {
            return (position, Err(error));
        }
    }
    (blocks.len(), Ok(()))
}

/// What a runtime needs from its storage after recovery: finalized blocks, the state
/// snapshot, reads, and the consensus safety state. Recovery itself is each
/// implementation's constructor (it builds the store), so it is not a method here.
pub trait Storage {
    /// Persists finalized blocks in order, with the state snapshot on the store's schedule;
    /// `ledger` is the state after the last of them. Returns how many are durable and the
    /// error that stopped it (nothing after a failed block is tried).
    fn commit_finalized(
        &mut self,
        blocks: &[CertifiedBlock],
        ledger: &Ledger,
    ) -> (usize, Result<(), StoreError>);
    /// Writes a fresh state snapshot at the last committed height.
    ///
    /// # Errors
    /// A ledger that is not the state after the last committed block, or a failed write.
    fn write_state(&mut self, ledger: &Ledger) -> Result<(), StoreError>;
    /// The committed block at `height` with its certificate, read back and checked.
    ///
    /// # Errors
    /// Stored bytes that fail their checks now, or a failed read.
    fn block(&self, height: u64) -> Result<Option<(Block, QuorumCertificate)>, StoreError>;
    /// The last committed height (0: only genesis).
    fn height(&self) -> u64;
    /// Hash of the last committed block's header ([`Hash::ZERO`] at genesis).
    fn tip_hash(&self) -> Hash;
    /// Persists a validator's consensus safety state (see [`SafetyState`]); durable when this
    /// returns `Ok`, and nothing the state covers may be sent before.
    ///
    /// # Errors
    /// A failed write: the caller must not send what `state` covers.
    fn save_safety(&mut self, state: &SafetyState) -> Result<(), StoreError>;
}

impl Storage for Store {
    fn commit_finalized(
        &mut self,
        blocks: &[CertifiedBlock],
        ledger: &Ledger,
    ) -> (usize, Result<(), StoreError>) {
        Store::commit_finalized(self, blocks, ledger)
    }

    fn write_state(&mut self, ledger: &Ledger) -> Result<(), StoreError> {
        Store::write_state(self, ledger)
    }

    fn block(&self, height: u64) -> Result<Option<(Block, QuorumCertificate)>, StoreError> {
        Store::block(self, height)
    }

    fn height(&self) -> u64 {
        Store::height(self)
    }

    fn tip_hash(&self) -> Hash {
        Store::tip_hash(self)
    }

    fn save_safety(&mut self, state: &SafetyState) -> Result<(), StoreError> {
        Store::save_safety(self, state)
    }
}
