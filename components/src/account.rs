//! Account state: balance and nonce, addressed by a dense index.

use bytemuck::{Pod, Zeroable};

/// One account's state. Accounts live in a dense array (index assigned on first appearance, in
/// execution order, so it is deterministic) so the state can later be an mmap'd Pod array.
#[derive(Clone, Copy, PartialEq, Eq, Debug, Default, Pod, Zeroable)]
#[repr(C)]
pub struct Account {
    /// Spendable balance.
    pub balance: u64,
    /// Number of transactions this account has executed; the next one must carry this nonce.
    pub nonce: u64,
}

const _: () = assert!(size_of::<Account>() == 16);
