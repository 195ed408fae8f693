//! The state commitment's hashes, and account proofs checked against a state root.
//!
//! Definition (also in `docs/storage.md`), with `K(context)` = `blake3::derive_key(context, &[])`
//! and `H(key, bytes)` = `blake3::keyed_hash`:
//!
//! - leaf `i` = `H(K("tessera 2026 account leaf"), address ‖ balance_le ‖ nonce_le)` (48 bytes);
//! - level 0 is the leaves in slot order; level `l + 1` has `⌈len(l) / 2⌉` nodes, node `j` =
//!   `H(K("tessera 2026 state node"), level_l[2j] ‖ right)`, where `right` is `level_l[2j + 1]`,
//!   or 32 zero bytes when the level has no such node; the top level has one node, the tree
//!   root (32 zero bytes for no accounts);
//! - state root = `H(K("tessera 2026 state root"), count_le ‖ tree_root ‖ burned_le)`, with the
//!   account count and the burned fees as little-endian u64.
//!
//! The tree itself (kept current block by block) lives in `tessera-systems`; what is here is
//! what someone holding only a state root needs to check an [`AccountProof`].

use std::sync::OnceLock;

use crate::{Account, Hash};

fn key(context: &'static str, cell: &'static OnceLock<[u8; 32]>) -> &'static [u8; 32] {
    cell.get_or_init(|| blake3::derive_key(context, &[]))
}

fn leaf_key() -> &'static [u8; 32] {
    static KEY: OnceLock<[u8; 32]> = OnceLock::new();
    key("tessera 2026 account leaf", &KEY)
}

fn node_key() -> &'static [u8; 32] {
    static KEY: OnceLock<[u8; 32]> = OnceLock::new();
    key("tessera 2026 state node", &KEY)
}

fn root_key() -> &'static [u8; 32] {
    static KEY: OnceLock<[u8; 32]> = OnceLock::new();
    key("tessera 2026 state root", &KEY)
}

/// The leaf of the account at `address`.
pub fn leaf(address: &[u8; 32], account: &Account) -> Hash {
    let mut bytes = [0u8; 48];
    bytes[..32].copy_from_slice(address);
    bytes[32..].copy_from_slice(bytemuck::bytes_of(account));
    Hash(*blake3::keyed_hash(leaf_key(), &bytes).as_bytes())
}

/// An inner node over `left` and `right` (32 zero bytes when there is no right child).
pub fn node(left: &Hash, right: Option<&Hash>) -> Hash {
    let mut bytes = [0u8; 64];
    bytes[..32].copy_from_slice(&left.0);
    if let Some(right) = right {
        bytes[32..].copy_from_slice(&right.0);
    }
    Hash(*blake3::keyed_hash(node_key(), &bytes).as_bytes())
}

/// The state root over a tree root, the account count and the burned total.
pub fn state_root(count: u64, tree_root: &Hash, burned: u64) -> Hash {
    let mut bytes = [0u8; 48];
    bytes[..8].copy_from_slice(&count.to_le_bytes());
    bytes[8..40].copy_from_slice(&tree_root.0);
    bytes[40..].copy_from_slice(&burned.to_le_bytes());
    Hash(*blake3::keyed_hash(root_key(), &bytes).as_bytes())
}

/// Width of the level above one of `width` nodes.
pub const fn parent_width(width: u64) -> u64 {
    width.div_ceil(2)
}

/// Levels above the leaves in a tree of `count` leaves: the number of siblings in a proof.
pub const fn tree_height(count: u64) -> usize {
    let mut width = count;
    let mut height = 0;
    while width > 1 {
        width = parent_width(width);
        height += 1;
    }
    height
}

/// That an account holds a value in the state with a given root: the account, its slot, the
/// sibling of each node on its path from the leaf up (`None` where the level has no right
/// sibling), and the two other inputs of the state root.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct AccountProof {
    /// The account's address.
    pub address: [u8; 32],
    /// Its value.
    pub account: Account,
    /// Its slot: the leaf's index.
    pub slot: u64,
    /// Accounts in the state: the tree's leaf count.
    pub count: u64,
    /// Fees burned, the state root's last input.
    pub burned: u64,
    /// Siblings from the leaf's level up, [`tree_height`]`(count)` of them.
    pub siblings: Vec<Option<Hash>>,
}

/// Why a proof does not hold.
#[derive(Clone, Debug, thiserror::Error, PartialEq, Eq)]
pub enum ProofError {
    /// The slot is not below the account count.
    #[error("slot {slot} is outside a state of {count} accounts")]
    SlotOutOfRange {
        /// Claimed slot.
        slot: u64,
        /// Claimed count.
        count: u64,
    },
    /// The path has the wrong number of siblings for the count.
    #[error("a state of {count} accounts needs {expected} siblings, the proof has {found}")]
    PathLength {
        /// Claimed count.
        count: u64,
        /// Siblings the count implies.
        expected: usize,
        /// Siblings given.
        found: usize,
    },
    /// A sibling is missing where the level has one, or present where it has none.
    #[error("level {level}: the sibling is {}", if *missing { "missing" } else { "one the tree cannot have" })]
    SiblingShape {
        /// Level from the leaves (0 = leaves).
        level: usize,
        /// True when a needed sibling is absent.
        missing: bool,
    },
    /// Everything is well formed but the root differs.
    #[error("the proof leads to state root {computed}, not {expected}")]
    RootMismatch {
        /// Root the proof computes.
        computed: Hash,
        /// Root it was checked against.
        expected: Hash,
    },
}

impl AccountProof {
    /// The state root this proof leads to, after checking its shape against its count.
    ///
    /// # Errors
    /// A slot past the count, a path of the wrong length, or a sibling present where the
    /// level has none (or absent where it has one).
    pub fn root(&self) -> Result<Hash, ProofError> {
        let (slot, count) = (self.slot, self.count);
        if slot >= count {
            return Err(ProofError::SlotOutOfRange { slot, count });
        }
        let expected = tree_height(count);
        if self.siblings.len() != expected {
            return Err(ProofError::PathLength { count, expected, found: self.siblings.len() });
        }
        let mut hash = leaf(&self.address, &self.account);
        let (mut index, mut width) = (slot, count);
        for (level, sibling) in self.siblings.iter().enumerate() {
            let has_right = index % 2 == 1 || index + 1 < width;
            hash = match (index % 2 == 1, sibling) {
                (true, Some(left)) => node(left, Some(&hash)),
                (false, Some(right)) if has_right => node(&hash, Some(right)),
                (false, None) if !has_right => node(&hash, None),
                (_, sibling) => return Err(ProofError::SiblingShape { level, missing: sibling.is_none() }),
            };
            index /= 2;
            width = parent_width(width);
        }
        Ok(state_root(count, &hash, self.burned))
    }

    /// Checks the proof against a state root the caller trusts (from a finalized block's
    /// header).
    ///
    /// # Errors
    /// As [`AccountProof::root`], or [`ProofError::RootMismatch`].
    pub fn verify(&self, expected: &Hash) -> Result<(), ProofError> {
        let computed = self.root()?;
        if computed != *expected {
            return Err(ProofError::RootMismatch { computed, expected: *expected });
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Every level of a tree over `leaves`, built the slow, obvious way.
    fn levels(leaves: Vec<Hash>) -> Vec<Vec<Hash>> {
        let mut levels = vec![leaves];
        while levels.last().unwrap().len() > 1 {
            let above = levels.last().unwrap().chunks(2).map(|pair| node(&pair[0], pair.get(1))).collect();
            levels.push(above);
        }
        levels
    }

    fn proof(accounts: &[([u8; 32], Account)], slot: usize, burned: u64) -> (AccountProof, Hash) {
        let levels = levels(accounts.iter().map(|(address, account)| leaf(address, account)).collect());
        let mut siblings = Vec::new();
        let mut index = slot;
        for level in &levels[..levels.len() - 1] {
            siblings.push(level.get(index ^ 1).copied());
            index /= 2;
        }
        let count = accounts.len() as u64;
        let root = state_root(count, &levels.last().unwrap()[0], burned);
        let (address, account) = accounts[slot];
        (AccountProof { address, account, slot: slot as u64, count, burned, siblings }, root)
    }

    fn accounts(n: usize) -> Vec<([u8; 32], Account)> {
        (0..n)
            .map(|i| ([i as u8 + 1; 32], Account { balance: 100 + i as u64, nonce: i as u64 % 3 }))
            .collect()
    }

    #[test]
    fn every_slot_of_every_small_tree_proves_and_verifies() {
        for n in 1..=17 {
            let accounts = accounts(n);
            for slot in 0..n {
                let (proof, root) = proof(&accounts, slot, 7);
                assert_eq!(proof.verify(&root), Ok(()), "n = {n}, slot = {slot}");
            }
        }
    }

    #[test]
    fn a_tampered_proof_is_refused() {
        let accounts = accounts(11);
        let (good, root) = proof(&accounts, 10, 7);
        let mutations: Vec<(&str, Box<dyn Fn(&mut AccountProof)>)> = vec![
            ("balance", Box::new(|p| p.account.balance += 1)),
            ("nonce", Box::new(|p| p.account.nonce += 1)),
            ("address", Box::new(|p| p.address[31] ^= 1)),
            ("slot", Box::new(|p| p.slot -= 1)),
            ("count", Box::new(|p| p.count += 1)),
            ("burned", Box::new(|p| p.burned += 1)),
            ("sibling", Box::new(|p| p.siblings[1] = Some(Hash([3; 32])))),
            ("missing sibling", Box::new(|p| p.siblings[1] = None)),
            ("extra sibling", Box::new(|p| p.siblings[0] = Some(Hash([3; 32])))),
            ("short path", Box::new(|p| p.siblings.truncate(p.siblings.len() - 1))),
            ("slot past count", Box::new(|p| p.slot = p.count)),
        ];
        for (what, mutate) in mutations {
            let mut bad = good.clone();
            mutate(&mut bad);
            assert!(bad.verify(&root).is_err(), "a proof with a changed {what} verified");
        }
        assert!(matches!(good.verify(&Hash([0; 32])), Err(ProofError::RootMismatch { .. })));
    }
}
