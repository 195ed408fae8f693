//! What the store writes of the account state at a snapshot point, shared by the real store
//! and the simulator's disk so that both write the same bytes in the same order.
//!
//! At each point the accounts the blocks since the last state write named (their senders and
//! recipients, the only accounts a block can change) go into one delta record appended to the
//! `state-log`, at a cost in proportion to them. When the log would grow past the size of the
//! whole `state` file, the state file is rewritten instead (and the log emptied): the log never
//! holds more than one snapshot's worth, so the cost of rewriting is paid once per that many
//! changed accounts, and a restart reads at most twice the state's size.

use std::collections::HashSet;
use tessera_components::storage::{FILE_HEADER_SIZE, StateDelta, encode_delta_record};
use tessera_components::{Block, Hash, TxnBody};
use tessera_systems::Ledger;

/// Whether the state is written with the block at `height`, when the last state written is at
/// `state_height`: once `interval` blocks have passed since. Counted from the last write, not
/// as multiples of the interval, because the state is offered only with the last block of a
/// batch: with batches of three and an interval of four, multiples of four would fall on the
/// last block of a batch only every twelfth height, and a restart would replay that many.
pub(crate) fn state_due(height: u64, state_height: u64, interval: u64) -> bool {
    height >= state_height.saturating_add(interval)
}

/// Below this many bytes of state file the log may still grow to this size, so that a tiny
/// ledger does not rewrite its state file at every point.
const LOG_ALLOWANCE_MIN: u64 = 4096;

/// Which state write comes next; see the module documentation.
#[derive(Debug, Default)]
pub(crate) struct StateSchedule {
    /// Addresses named by the blocks committed since the last state write.
    touched: HashSet<[u8; 32]>,
    /// Height and bytes of the `state` file.
    base_height: u64,
    base_len: u64,
    /// Bytes of the `state-log` file.
    log_len: u64,
}

/// The next state write.
#[derive(Debug)]
pub(crate) enum StateWrite {
    /// Append this delta record at the log's end.
    Delta(Vec<u8>),
    /// Rewrite the `state` file whole, then empty the log.
    Whole,
}

impl StateSchedule {
    /// The schedule for a store whose state file is at `base_height` and whose state file and
    /// log have these sizes, and whose blocks since the last state write named `touched` (those a
    /// recovery replayed).
    pub(crate) fn new(
        base_height: u64,
        base_len: u64,
        log_len: u64,
        touched: impl IntoIterator<Item = [u8; 32]>,
    ) -> StateSchedule {
        StateSchedule { touched: touched.into_iter().collect(), base_height, base_len, log_len }
    }

    /// Notes the accounts a committed block may have changed.
    pub(crate) fn note(&mut self, block: &Block) {
        self.note_bodies(block.txns.iter().map(|txn| &txn.body));
    }

    /// Notes the senders and recipients of these transfers.
    pub(crate) fn note_bodies<'b>(&mut self, bodies: impl IntoIterator<Item = &'b TxnBody>) {
        for body in bodies {
            self.touched.insert(body.sender);
            self.touched.insert(body.recipient);
        }
    }

    /// The write for `ledger`, the state after the block at `height` whose root is `state_root`.
    pub(crate) fn plan(&self, height: u64, state_root: Hash, ledger: &Ledger) -> StateWrite {
        let delta = StateDelta {
            height,
            base_height: self.base_height,
            state_root,
            burned: ledger.burned(),
            count: ledger.len() as u64,
            rows: ledger.delta_rows(&self.touched),
        };
        match encode_delta_record(self.log_len, &delta) {
            Ok(record) if self.log_len + record.len() as u64 <= self.base_len.max(LOG_ALLOWANCE_MIN) => {
                StateWrite::Delta(record)
            }
            _ => StateWrite::Whole,
        }
    }

    /// A delta record of `len` bytes was appended.
    pub(crate) fn wrote_delta(&mut self, len: u64) {
        self.log_len += len;
        self.touched.clear();
    }

    /// The state file was rewritten whole at `height`, `base_len` bytes, and the log emptied.
    pub(crate) fn wrote_whole(&mut self, height: u64, base_len: u64) {
        self.base_height = height;
        self.base_len = base_len;
        self.log_len = FILE_HEADER_SIZE as u64;
        self.touched.clear();
    }

    /// Bytes of the `state-log` file.
    pub(crate) fn log_len(&self) -> u64 {
        self.log_len
    }
}
