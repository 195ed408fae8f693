//! The storage port: what the node and the simulator need from a block store, so the real
//! [`Store`](super::Store) over files and the simulator's in-memory disk are interchangeable.
//!
//! Opening (and with it recovery) is not part of the trait: each implementation has its own
//! constructor returning `(Self, Ledger, Recovery)`, since what it opens differs (a directory,
//! byte buffers) and a constructor cannot be called through `dyn`.

use tessera_components::{Block, CertifiedBlock, Hash, QuorumCertificate};
use tessera_systems::Ledger;

use super::{Store, StoreError};

/// An append-only store of finalized blocks with their certificates, and a state snapshot.
pub trait BlockStore {
    /// Persists the blocks one tick finalized, in order; `ledger` is the state after the last
    /// of them (snapshots are written on the schedule the store keeps). Returns how many are
    /// durable, and the first error; nothing past the first failure is written.
    fn commit_finalized(
        &mut self,
        blocks: &[CertifiedBlock],
        ledger: &Ledger,
    ) -> (usize, Result<(), StoreError>);

    /// Writes a fresh state snapshot at the last committed height. `ledger` must be the state
    /// after the last committed block.
    ///
    /// # Errors
    /// A ledger with another state root, or a failed write.
    fn write_state(&mut self, ledger: &Ledger) -> Result<(), StoreError>;

    /// The committed block at `height` with its certificate, read back and checked (`None` for
    /// height 0 or above the tip).
    ///
    /// # Errors
    /// A record that fails its checks now, or a failed read.
    fn block(&self, height: u64) -> Result<Option<(Block, QuorumCertificate)>, StoreError>;

    /// The last committed height (0: only genesis).
    fn height(&self) -> u64;

    /// Hash of the last committed block's header ([`Hash::ZERO`] at genesis).
    fn tip_hash(&self) -> Hash;
}

impl BlockStore for Store {
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
}
