//! The state commitment's hashes, and account proofs checked against a state root.
//!
//! Definition (also in `docs/storage.md`), with `K(context)` = `blake3::derive_key(context, &[])`
//! and `H(key, bytes)` = `blake3::keyed_hash`:
//!
//! - leaf `i` = `H(K("tessera 2026 account leaf"), address ‖ balance_le ‖ nonce_le ‖ next)` (80
//!   bytes), where `next` is the smallest address of any account above this one's, or 32 zero
//!   bytes when there is none: the leaves, in slot order, also chain the accounts in address
//!   order, which is what lets a proof show that an address has no account;
//! - level 0 is the leaves in slot order; level `l + 1` has `⌈len(l) / 2⌉` nodes, node `j` =
//!   `H(K("tessera 2026 state node"), level_l[2j] ‖ right)`, where `right` is `level_l[2j + 1]`,
//!   or 32 zero bytes when the level has no such node; the top level has one node, the tree
//!   root (32 zero bytes for no accounts);
//! - state root = `H(K("tessera 2026 state root"), count_le ‖ tree_root ‖ burned_le ‖ first)`,
//!   with the account count and the burned fees as little-endian u64 and `first` the smallest
//!   address of any account (32 zero bytes when there are none).
//!
//! The tree itself (kept current block by block) lives in `tessera-systems`; what is here is
//! what someone holding only a state root needs to check an [`AccountProof`] or an
//! [`AbsenceProof`].

use std::sync::OnceLock;

use crate::{Account, Hash};

fn key(context: &'static str, cell: &'static OnceLock<[u8; 32]>) -> &'static [u8; 32] {
    cell.get_or_init(|| blake3::derive_key(context, &[]))
}

/// `K("tessera 2026 account leaf")`, the key of every leaf's hash.
pub fn leaf_key() -> &'static [u8; 32] {
    static KEY: OnceLock<[u8; 32]> = OnceLock::new();
    key("tessera 2026 account leaf", &KEY)
}

/// `K("tessera 2026 state node")`, the key of every inner node's hash.
pub fn node_key() -> &'static [u8; 32] {
    static KEY: OnceLock<[u8; 32]> = OnceLock::new();
    key("tessera 2026 state node", &KEY)
}

fn root_key() -> &'static [u8; 32] {
    static KEY: OnceLock<[u8; 32]> = OnceLock::new();
    key("tessera 2026 state root", &KEY)
}

/// The leaf of the account at `address`, whose successor in address order is `next` (32 zero
/// bytes for none: no successor can be zero, as it is above an address).
pub fn leaf(address: &[u8; 32], account: &Account, next: &[u8; 32]) -> Hash {
    Hash(*blake3::keyed_hash(leaf_key(), &leaf_input(address, account, next)).as_bytes())
}

/// The 80 bytes a [`leaf`] hashes under [`leaf_key`].
pub fn leaf_input(address: &[u8; 32], account: &Account, next: &[u8; 32]) -> [u8; 80] {
    let mut bytes = [0u8; 80];
    bytes[..32].copy_from_slice(address);
    bytes[32..48].copy_from_slice(bytemuck::bytes_of(account));
    bytes[48..].copy_from_slice(next);
    bytes
}

/// `next` of an account with no successor, and `first` of a state with no accounts.
pub const NONE: [u8; 32] = [0; 32];

/// An inner node over `left` and `right` (32 zero bytes when there is no right child).
pub fn node(left: &Hash, right: Option<&Hash>) -> Hash {
    Hash(*blake3::keyed_hash(node_key(), &node_input(left, right)).as_bytes())
}

/// The 64 bytes a [`node`] hashes under [`node_key`].
pub fn node_input(left: &Hash, right: Option<&Hash>) -> [u8; 64] {
    let mut bytes = [0u8; 64];
    bytes[..32].copy_from_slice(&left.0);
    if let Some(right) = right {
        bytes[32..].copy_from_slice(&right.0);
    }
    bytes
}

/// The state root over a tree root, the account count, the burned total and the smallest
/// address ([`NONE`] for no accounts).
pub fn state_root(count: u64, tree_root: &Hash, burned: u64, first: &[u8; 32]) -> Hash {
    let mut bytes = [0u8; 80];
    bytes[..8].copy_from_slice(&count.to_le_bytes());
    bytes[8..40].copy_from_slice(&tree_root.0);
    bytes[40..48].copy_from_slice(&burned.to_le_bytes());
    bytes[48..].copy_from_slice(first);
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
    /// The next address in address order ([`NONE`] for none), part of the leaf.
    pub next: [u8; 32],
    /// Its slot: the leaf's index.
    pub slot: u64,
    /// Accounts in the state: the tree's leaf count.
    pub count: u64,
    /// Fees burned, an input of the state root.
    pub burned: u64,
    /// The smallest address, the state root's last input.
    pub first: [u8; 32],
    /// Siblings from the leaf's level up, [`tree_height`]`(count)` of them.
    pub siblings: Vec<Option<Hash>>,
}

/// That an address has no account in the state with a given root.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum AbsenceProof {
    /// No account is below the address: the state root's inputs, whose smallest address is
    /// above it (or which has no accounts at all).
    BelowFirst {
        /// The address without an account.
        address: [u8; 32],
        /// Accounts in the state.
        count: u64,
        /// The tree root.
        tree_root: Hash,
        /// Fees burned.
        burned: u64,
        /// The smallest address ([`NONE`] with no accounts).
        first: [u8; 32],
    },
    /// The account with the largest address below this one, whose successor is above it (or
    /// which has none).
    After {
        /// The address without an account.
        address: [u8; 32],
        /// The account just below it, proven.
        low: AccountProof,
    },
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
    /// The account named as the one just below the address is not (its address is not below,
    /// or its successor is not above), or the smallest address is not above it.
    #[error("the proof does not place the address between two neighbouring accounts")]
    NotBetween,
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
        let mut hash = leaf(&self.address, &self.account, &self.next);
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
        Ok(state_root(count, &hash, self.burned, &self.first))
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

impl AbsenceProof {
    /// The address proven to have no account.
    pub fn address(&self) -> &[u8; 32] {
        match self {
            AbsenceProof::BelowFirst { address, .. } | AbsenceProof::After { address, .. } => address,
        }
    }

    /// Checks the proof against a state root the caller trusts. The leaves chain the accounts
    /// in address order (each names its successor), and the root names the first, so an
    /// address that falls below the first, or strictly between an account and its successor
    /// (or after the last), has no account.
    ///
    /// # Errors
    /// [`ProofError::NotBetween`] when the neighbours shown do not enclose the address, else as
    /// [`AccountProof::verify`].
    pub fn verify(&self, expected: &Hash) -> Result<(), ProofError> {
        match self {
            AbsenceProof::BelowFirst { address, count, tree_root, burned, first } => {
                let empty = *count == 0 && *tree_root == Hash::ZERO && *first == NONE;
                if !(empty || (*count > 0 && address < first)) {
                    return Err(ProofError::NotBetween);
                }
                let computed = state_root(*count, tree_root, *burned, first);
                if computed != *expected {
                    return Err(ProofError::RootMismatch { computed, expected: *expected });
                }
                Ok(())
            }
            AbsenceProof::After { address, low } => {
                if !(low.address < *address && (low.next == NONE || *address < low.next)) {
                    return Err(ProofError::NotBetween);
                }
                low.verify(expected)
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Known answers, computed by a separate implementation of `docs/storage.md`'s definition
    /// (the values are quoted there): the other tests build their trees with the functions they
    /// test, so a change to the definition made in both would pass them, and only these catch
    /// it. Accounts in slot order `[2; 32]` (10, nonce 1), `[1; 32]` (20, 0), `[3; 32]` (30, 5),
    /// 4 burned.
    #[test]
    fn the_root_of_a_small_state_is_the_documented_one() {
        let unhex = |text: &str| {
            let mut bytes = [0u8; 32];
            for (byte, pair) in bytes.iter_mut().zip(text.as_bytes().chunks(2)) {
                *byte = u8::from_str_radix(std::str::from_utf8(pair).unwrap(), 16).unwrap();
            }
            Hash(bytes)
        };
        let account = |balance, nonce| Account { balance, nonce };
        let leaves = [
            leaf(&[2; 32], &account(10, 1), &[3; 32]),
            leaf(&[1; 32], &account(20, 0), &[2; 32]),
            leaf(&[3; 32], &account(30, 5), &NONE),
        ];
        assert_eq!(leaves[0], unhex("8da674c6c8ae3b260ffaf68a21ca66b3dc5473cb49fd6c4d51c6fc2c110dcdc2"));
        let tree_root = node(&node(&leaves[0], Some(&leaves[1])), Some(&node(&leaves[2], None)));
        assert_eq!(tree_root, unhex("efb1556cbe85014a66c75a02b49feecacbe04e63202870bc82492df5c43f5d37"));
        assert_eq!(
            state_root(3, &tree_root, 4, &[1; 32]),
            unhex("600517e59aff05d4893d13f839a0fb397fa191b16a1d9e62f5b3606a6d340d9e")
        );
        assert_eq!(
            state_root(0, &Hash([0; 32]), 0, &NONE),
            unhex("8ffdbd7f321cdb14a35387d7e3edc51cbabc00209b3aa3c7537d7dc3123a4728"),
            "no accounts"
        );
    }

    /// Every level of a tree over `leaves`, built the slow, obvious way.
    fn levels(leaves: Vec<Hash>) -> Vec<Vec<Hash>> {
        let mut levels = vec![leaves];
        while levels.last().unwrap().len() > 1 {
            let above = levels.last().unwrap().chunks(2).map(|pair| node(&pair[0], pair.get(1))).collect();
            levels.push(above);
        }
        levels
    }

    /// Each account's successor in address order, and the smallest address.
    fn order(accounts: &[([u8; 32], Account)]) -> (Vec<[u8; 32]>, [u8; 32]) {
        let mut sorted: Vec<[u8; 32]> = accounts.iter().map(|(address, _)| *address).collect();
        sorted.sort_unstable();
        let next = accounts
            .iter()
            .map(|(address, _)| sorted.iter().find(|other| *other > address).copied().unwrap_or(NONE))
            .collect();
        (next, sorted.first().copied().unwrap_or(NONE))
    }

    fn tree(accounts: &[([u8; 32], Account)]) -> Vec<Vec<Hash>> {
        let (next, _) = order(accounts);
        levels(
            accounts
                .iter()
                .zip(&next)
                .map(|((address, account), next)| leaf(address, account, next))
                .collect(),
        )
    }

    fn proof(accounts: &[([u8; 32], Account)], slot: usize, burned: u64) -> (AccountProof, Hash) {
        let levels = tree(accounts);
        let (next, first) = order(accounts);
        let mut siblings = Vec::new();
        let mut index = slot;
        for level in &levels[..levels.len() - 1] {
            siblings.push(level.get(index ^ 1).copied());
            index /= 2;
        }
        let count = accounts.len() as u64;
        let root = state_root(count, &levels.last().unwrap()[0], burned, &first);
        let (address, account) = accounts[slot];
        let next = next[slot];
        (AccountProof { address, account, next, slot: slot as u64, count, burned, first, siblings }, root)
    }

    /// An absence proof for `address` (which must have no account), built the obvious way.
    fn absence(accounts: &[([u8; 32], Account)], address: [u8; 32], burned: u64) -> (AbsenceProof, Hash) {
        let low = accounts
            .iter()
            .enumerate()
            .filter(|(_, (other, _))| *other < address)
            .max_by_key(|(_, (other, _))| *other)
            .map(|(slot, _)| slot);
        match low {
            Some(slot) => {
                let (low, root) = proof(accounts, slot, burned);
                (AbsenceProof::After { address, low }, root)
            }
            None => {
                let (_, first) = order(accounts);
                let tree_root =
                    if accounts.is_empty() { Hash::ZERO } else { tree(accounts).last().unwrap()[0] };
                let count = accounts.len() as u64;
                let root = state_root(count, &tree_root, burned, &first);
                (AbsenceProof::BelowFirst { address, count, tree_root, burned, first }, root)
            }
        }
    }

    /// Addresses out of slot order (slot `i` holds `1 + 3 * ((5 * i) % n)` in every byte), so
    /// address order and slot order differ.
    fn shuffled(n: usize) -> Vec<([u8; 32], Account)> {
        (0..n)
            .map(|i| {
                ([1 + 3 * ((5 * i) % n) as u8; 32], Account { balance: 100 + i as u64, nonce: i as u64 % 3 })
            })
            .collect()
    }

    #[test]
    fn every_gap_of_every_small_state_proves_absence_and_nothing_else_does() {
        for n in 0..=13 {
            let accounts = shuffled(n);
            let present: Vec<[u8; 32]> = accounts.iter().map(|(address, _)| *address).collect();
            // Below the first, between every two neighbours, after the last.
            for byte in 0..=(3 * n as u8 + 2) {
                let address = [byte; 32];
                if present.contains(&address) {
                    continue;
                }
                let (proof, root) = absence(&accounts, address, 4);
                assert_eq!(proof.verify(&root), Ok(()), "n = {n}, absent {byte}");
                assert_eq!(proof.address(), &address);
                // Moved to a present address, the same proof fails.
                for taken in &present {
                    let moved = match proof.clone() {
                        AbsenceProof::BelowFirst { count, tree_root, burned, first, .. } => {
                            AbsenceProof::BelowFirst { address: *taken, count, tree_root, burned, first }
                        }
                        AbsenceProof::After { low, .. } => AbsenceProof::After { address: *taken, low },
                    };
                    assert!(moved.verify(&root).is_err(), "n = {n}: absence of present {taken:?} verified");
                }
            }
        }
    }

    #[test]
    fn a_tampered_absence_proof_is_refused() {
        let accounts = shuffled(9);
        // Between two accounts: the one below with its successor.
        let (good, root) = absence(&accounts, [5; 32], 3);
        let AbsenceProof::After { address, low } = good.clone() else { panic!("an account is below 5") };
        assert_eq!(good.verify(&root), Ok(()));
        let skip = AbsenceProof::After { address, low: AccountProof { next: NONE, ..low.clone() } };
        assert!(skip.verify(&root).is_err(), "a successor claimed to be none");
        let (other, _) = proof(&accounts, 0, 3);
        let wrong_low = AbsenceProof::After { address, low: other };
        assert!(wrong_low.verify(&root).is_err(), "another account as the one below");
        // Below the first.
        let (below, root) = absence(&accounts, [0; 32], 3);
        assert_eq!(below.verify(&root), Ok(()));
        let AbsenceProof::BelowFirst { address, count, tree_root, burned, first } = below else {
            panic!("nothing is below 0")
        };
        for bad in [
            AbsenceProof::BelowFirst { address, count, tree_root, burned, first: [0; 32] },
            AbsenceProof::BelowFirst { address, count: 0, tree_root, burned, first },
            AbsenceProof::BelowFirst { address, count, tree_root: Hash([9; 32]), burned, first },
            AbsenceProof::BelowFirst { address, count, tree_root, burned: burned + 1, first },
            AbsenceProof::BelowFirst { address: [7; 32], count, tree_root, burned, first },
        ] {
            assert!(bad.verify(&root).is_err(), "{bad:?}");
        }
    }

    #[test]
    fn every_slot_of_every_small_tree_proves_and_verifies() {
        for n in 1..=17 {
            let accounts = shuffled(n);
            for slot in 0..n {
                let (proof, root) = proof(&accounts, slot, 7);
                assert_eq!(proof.verify(&root), Ok(()), "n = {n}, slot = {slot}");
            }
        }
    }

    #[test]
    fn a_tampered_proof_is_refused() {
        let accounts = shuffled(11);
        let (good, root) = proof(&accounts, 10, 7);
        let mutations: Vec<(&str, Box<dyn Fn(&mut AccountProof)>)> = vec![
            ("next", Box::new(|p| p.next[0] ^= 1)),
            ("first", Box::new(|p| p.first[0] ^= 1)),
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
