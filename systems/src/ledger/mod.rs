//! Account state: a dense array of [`Account`]s plus an index from address to slot, committed
//! to by a Merkle tree ([`tree`]) that each block updates along the paths it touched.
//!
//! Every change goes through an [`Overlay`]: transfers execute against the committed state
//! plus a [`LedgerDelta`] of what they changed, and [`Ledger::commit`] applies a delta. A
//! proposal or a validation keeps only its delta, so its cost is in proportion to the
//! accounts its block touches, not to the ledger.

pub mod index;
pub mod paged;
pub mod tree;

use std::sync::Arc;

use foldhash::HashMap;

use bevy_ecs::resource::Resource;
use rayon::prelude::*;
use tessera_components::state::{self, AbsenceProof, AccountProof};
use tessera_components::storage::{DeltaRow, StateDelta};
use tessera_components::{Account, Hash, RejectReason, TxnBody};

use self::index::AddressIndex;
use self::paged::Sharing;
use self::tree::{Changes, StateTree};
use crate::kernels::prefetch::prefetch;

/// All account state. Written only by execute (and at genesis); read by prefilter and mempool
/// for nonces, with the lag of one tick (they see the state as of the last executed block).
///
/// Slots are assigned in order of first appearance: genesis order, then execution order. The
/// `index` map is only ever looked up, never iterated, so its hasher does not affect
/// determinism. Each account's leaf also commits to its successor in address order (so that a
/// proof can show an address has no account): `next` holds each slot's successor's slot, and
/// `order`, the addresses sorted, finds a new account's place among them.
///
/// The columns only an account's creation writes (addresses, the index, the order and the
/// successors) are shared between clones until one of them creates an account
/// (`Arc::make_mut`): the simulator gives each validator a clone of one genesis ledger, and at a
/// million accounts those copies were most of a run. A ledger that is not shared writes them in
/// place.
#[derive(Clone, Debug, Default, Resource)]
pub struct Ledger {
    keys: Arc<Vec<[u8; 32]>>,
    accounts: Vec<Account>,
    /// Which slot holds an address, and the addresses in order ([`index`]).
    index: Arc<AddressIndex>,
    /// The slot of each account's successor in address order ([`NO_SLOT`] for the last).
    next: Arc<Vec<u32>>,
    /// Fees burned so far.
    burned: u64,
    /// Sum of genesis balances: `Σ balance + burned` must always equal it.
    supply: u128,
    /// The Merkle tree over the accounts, always current.
    tree: StateTree,
}

/// `next` of the account with the largest address.
const NO_SLOT: u32 = u32::MAX;

/// What a ledger holds at an address, looked up before a block runs over it: the slot and the
/// account, or nothing. The ledger under an [`Overlay`] does not change while it runs, so the
/// answer holds for the whole block.
type Found = Option<(u32, Account)>;

/// A block's addresses are looked up on every core from this many transfers (twice as many
/// addresses) on; below, the handoff costs more than it saves.
const PARALLEL_LOOKUPS_MIN: usize = 1024;

/// Lookups [`Ledger::found_many`] hints to the cache together: enough misses to fill a core's
/// line-fill buffers, few enough that the lines hinted first are still cached when read.
const LOOKUP_GROUP: usize = 16;

/// Slots run below this, so [`NO_SLOT`] is never an account's: the ledger holds at most
/// 2^32 − 1 accounts. Tests lower it, to reach the limit without billions of accounts.
#[cfg(not(test))]
fn slot_limit() -> u32 {
    NO_SLOT
}

#[cfg(test)]
thread_local! {
    static SLOT_LIMIT: std::cell::Cell<u32> = const { std::cell::Cell::new(NO_SLOT) };
}

#[cfg(test)]
fn slot_limit() -> u32 {
    SLOT_LIMIT.with(std::cell::Cell::get)
}

/// The address index and each slot's successor for these addresses (in slot order), built from
/// one sort.
///
/// # Errors
/// The first duplicate address, hex-encoded.
fn indexes(keys: &[[u8; 32]]) -> Result<(AddressIndex, Vec<u32>), String> {
    AddressIndex::build(keys, NO_SLOT).map_err(|key| Hash(key).to_hex())
}

/// Why genesis could not be built.
#[derive(Debug, thiserror::Error, PartialEq, Eq)]
pub enum GenesisError {
    /// An address appears twice.
    #[error("genesis lists account {0} twice")]
    DuplicateAccount(String),
    /// More accounts than a u32 slot can address.
    #[error("genesis has more than 2^32 accounts")]
    TooManyAccounts,
    /// Balances that sum past u64::MAX. Balances and burned fees are u64, so with such a supply
    /// fees could fill `burned` (after which every fee overflows it and every transfer fails,
    /// for free) and one account could not hold what others send it.
    #[error(
        "genesis balances sum to {supply}, more than a u64 holds (fees could fill the burned counter); \
         a data directory made from such a genesis cannot be used: start from a new genesis \
         (`tessera genesis` lowers its default balance to fit)"
    )]
    SupplyTooLarge {
        /// `Σ balance`.
        supply: u128,
    },
    /// Stored state whose columns differ in length.
    #[error("state has {keys} addresses but {accounts} accounts")]
    ColumnMismatch {
        /// Address count.
        keys: usize,
        /// Account count.
        accounts: usize,
    },
    /// Stored state whose balances and burned fees do not add up to its supply.
    #[error("state does not conserve supply: balances and burned fees sum to {sum}, supply is {supply}")]
    SupplyMismatch {
        /// `Σ balance + burned`.
        sum: u128,
        /// Recorded supply.
        supply: u128,
    },
}

/// A ledger taken apart into its columns, for persistence. `keys[i]` owns `accounts[i]`.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct LedgerParts {
    /// Account addresses in slot order.
    pub keys: Vec<[u8; 32]>,
    /// Accounts in slot order.
    pub accounts: Vec<Account>,
    /// Fees burned so far.
    pub burned: u64,
    /// Genesis supply.
    pub supply: u128,
}

impl LedgerParts {
    /// Applies a stored delta's rows to these columns by the rules [`Ledger::apply_stored`]
    /// checks, but without an index: so an address created twice, or created though it has
    /// an account, is not refused here. The caller finds those when it orders the addresses
    /// ([`index::merge_added`], or the sort of [`Ledger::from_parts`]), and checks the state
    /// root the columns give against one it trusts. What a restart does to apply a whole state
    /// log at once, instead of a delta at a time, each through the tree.
    ///
    /// # Errors
    /// The first row that does not fit (a slot past 2^32, an address other than the slot's,
    /// a new slot out of turn), or a count other than the one reached; the columns may then
    /// hold part of the delta.
    pub fn apply_stored(&mut self, stored: &StateDelta) -> Result<(), String> {
        let base_len = self.keys.len();
        for row in &stored.rows {
            let slot = u32::try_from(row.slot).map_err(|_| format!("slot {} past 2^32", row.slot))? as usize;
            if slot < base_len {
                if self.keys[slot] != row.address {
                    return Err(format!("row for slot {slot} names another address than the slot holds"));
                }
                self.accounts[slot] = row.account;
            } else if slot == self.keys.len() && slot < slot_limit() as usize {
                self.keys.push(row.address);
                self.accounts.push(row.account);
            } else {
                return Err(format!("row creates slot {slot}, but the next free slot is another"));
            }
        }
        if self.keys.len() as u64 != stored.count {
            return Err(format!(
                "delta declares {} accounts, its rows give {}",
                stored.count,
                self.keys.len()
            ));
        }
        self.burned = stored.burned;
        Ok(())
    }
}

impl Ledger {
    /// State with the given funded accounts, in the given order.
    ///
    /// # Errors
    /// A duplicate address, or more accounts than fit a u32 index.
    pub fn from_genesis(balances: &[([u8; 32], u64)]) -> Result<Ledger, GenesisError> {
        Ledger::from_genesis_paged(balances, Sharing::Own)
    }

    /// [`Ledger::from_genesis`], for a ledger to be cloned many times: its clones share the
    /// tree's pages until each writes them ([`paged`]), so a clone costs the tree's page table,
    /// not the tree (the simulator's validators start from clones of one genesis). A ledger that
    /// is not cloned is better made with [`Ledger::from_genesis`]: its first write to each page
    /// copies that page.
    ///
    /// # Errors
    /// As [`Ledger::from_genesis`].
    pub fn from_genesis_shared(balances: &[([u8; 32], u64)]) -> Result<Ledger, GenesisError> {
        Ledger::from_genesis_paged(balances, Sharing::Shared)
    }

    fn from_genesis_paged(balances: &[([u8; 32], u64)], sharing: Sharing) -> Result<Ledger, GenesisError> {
        if u32::try_from(balances.len()).is_err() {
            return Err(GenesisError::TooManyAccounts);
        }
        let keys: Vec<[u8; 32]> = balances.iter().map(|(key, _)| *key).collect();
        let accounts = balances.iter().map(|(_, balance)| Account { balance: *balance, nonce: 0 }).collect();
        let supply: u128 = balances.iter().map(|(_, balance)| u128::from(*balance)).sum();
        if supply > u128::from(u64::MAX) {
            return Err(GenesisError::SupplyTooLarge { supply });
        }
        let (index, next) = indexes(&keys).map_err(GenesisError::DuplicateAccount)?;
        let mut ledger = Ledger::with_columns(keys, accounts, (index, next), 0, supply);
        ledger.rebuild_tree(sharing);
        Ok(ledger)
    }

    /// Builds the tree from every account (genesis and restart: once, on every core).
    fn rebuild_tree(&mut self, sharing: Sharing) {
        self.tree = StateTree::build(self.leaves(sharing));
    }

    /// Every account's leaf, in slot order, hashed on every core.
    fn leaves(&self, sharing: Sharing) -> paged::Paged<Hash> {
        tree::hash_pages(state::leaf_key(), self.keys.len(), sharing, |slot| {
            state::leaf_input(&self.keys[slot], &self.accounts[slot], &self.address_of(self.next[slot]))
        })
    }

    /// The address at `slot`, or [`state::NONE`] for [`NO_SLOT`].
    fn address_of(&self, slot: u32) -> [u8; 32] {
        self.keys.get(slot as usize).copied().unwrap_or(state::NONE)
    }

    /// The smallest address of an account above `key` (which need not have one), if any.
    fn successor(&self, key: &[u8; 32]) -> Option<[u8; 32]> {
        self.index.successor(key, &self.keys)
    }

    /// The slot of the account with the largest address below `key`, if any.
    fn predecessor(&self, key: &[u8; 32]) -> Option<u32> {
        self.index.predecessor(key, &self.keys)
    }

    /// The smallest address of any account ([`state::NONE`] when there are none).
    fn first(&self) -> [u8; 32] {
        self.index.first(&self.keys).unwrap_or(state::NONE)
    }

    /// Rebuilds a ledger from stored columns, checking them: equal lengths, no duplicate
    /// address, supply conserved. The result has the same state root as the ledger the parts
    /// came from.
    ///
    /// # Errors
    /// The first inconsistency found.
    pub fn from_parts(parts: LedgerParts) -> Result<Ledger, GenesisError> {
        Ledger::from_parts_indexed(parts, None)
    }

    /// [`Ledger::from_parts`] given an address index built from the order a store kept for
    /// these parts ([`Ledger::address_order`], [`index::Base::from_order`]): when it covers
    /// exactly these accounts it is used as it is, and no address is sorted. Its table was
    /// built from the addresses, so every lookup is right; its order was checked for shape
    /// only. The caller must check that the state root is one it trusts: the root commits to
    /// every account's successor, which the order gives, so a misordered index gives another
    /// root.
    ///
    /// # Errors
    /// As [`Ledger::from_parts`], except that a duplicate address is found by the root check
    /// instead when an index is given.
    pub fn from_parts_indexed(parts: LedgerParts, base: Option<index::Base>) -> Result<Ledger, GenesisError> {
        let LedgerParts { keys, accounts, burned, supply } = parts;
        if keys.len() != accounts.len() {
            return Err(GenesisError::ColumnMismatch { keys: keys.len(), accounts: accounts.len() });
        }
        if u32::try_from(keys.len()).is_err() {
            return Err(GenesisError::TooManyAccounts);
        }
        if supply > u128::from(u64::MAX) {
            return Err(GenesisError::SupplyTooLarge { supply });
        }
        let (index, next) = match base.filter(|base| base.count() == keys.len()) {
            Some(base) => {
                let next = index::successors(base.order(), NO_SLOT);
                (AddressIndex::over(base), next)
            }
            None => indexes(&keys).map_err(GenesisError::DuplicateAccount)?,
        };
        let mut ledger = Ledger::with_columns(keys, accounts, (index, next), burned, supply);
        let sum = ledger.balance_sum();
        if sum != supply {
            return Err(GenesisError::SupplyMismatch { sum, supply });
        }
        ledger.rebuild_tree(Sharing::Own);
        Ok(ledger)
    }

    /// A ledger of these columns, its tree not yet built.
    fn with_columns(
        keys: Vec<[u8; 32]>,
        accounts: Vec<Account>,
        (index, next): (AddressIndex, Vec<u32>),
        burned: u64,
        supply: u128,
    ) -> Ledger {
        Ledger {
            keys: Arc::new(keys),
            accounts,
            index: Arc::new(index),
            next: Arc::new(next),
            burned,
            supply,
            tree: StateTree::default(),
        }
    }

    /// A copy that shares no column with this ledger: what a clone cost before clones shared
    /// the columns only a creation writes (`tessera bench state` times it as the whole-ledger
    /// copy the node paid per block before deltas).
    pub fn unshared(&self) -> Ledger {
        Ledger {
            keys: Arc::new(self.keys.to_vec()),
            index: Arc::new(self.index.unshared()),
            next: Arc::new(self.next.to_vec()),
            accounts: self.accounts.clone(),
            burned: self.burned,
            supply: self.supply,
            tree: self.tree.unshared(),
        }
    }

    /// The ledger's columns, for persistence ([`Ledger::from_parts`] reverses it).
    pub fn to_parts(&self) -> LedgerParts {
        LedgerParts {
            keys: self.keys.to_vec(),
            accounts: self.accounts.clone(),
            burned: self.burned,
            supply: self.supply,
        }
    }

    /// Every account's slot in address order, for a store to keep beside a snapshot of this
    /// ledger: borrowed when no account was created since the index's base was built, else
    /// merged (O(N)).
    pub fn address_order(&self) -> std::borrow::Cow<'_, [u32]> {
        self.index.order(&self.keys)
    }

    /// Account addresses in slot order.
    pub fn keys(&self) -> &[[u8; 32]] {
        &self.keys
    }

    /// Accounts in slot order.
    pub fn accounts(&self) -> &[Account] {
        &self.accounts
    }

    /// Adds an account at the next slot, linked into the address order: O(log N).
    fn push_account(&mut self, key: [u8; 32]) -> Option<usize> {
        let slot = u32::try_from(self.keys.len()).ok().filter(|slot| *slot < slot_limit())?;
        let successor = match self.predecessor(&key) {
            Some(below) => std::mem::replace(&mut Arc::make_mut(&mut self.next)[below as usize], slot),
            None => self.index.first_slot(&self.keys).unwrap_or(NO_SLOT),
        };
        Arc::make_mut(&mut self.keys).push(key);
        self.accounts.push(Account::default());
        Arc::make_mut(&mut self.next).push(successor);
        Arc::make_mut(&mut self.index).insert(key, slot, &self.keys);
        Some(slot as usize)
    }

    /// The slot of `key`'s account, if it has one.
    pub fn slot_of(&self, key: &[u8; 32]) -> Option<u32> {
        self.index.slot(key, &self.keys)
    }

    /// The slot and account at `key`, if it has one.
    fn found(&self, key: &[u8; 32]) -> Found {
        let slot = self.slot_of(key)?;
        Some((slot, self.accounts[slot as usize]))
    }

    /// [`Ledger::found_many`], on every core when the addresses are many.
    fn found_all(&self, addresses: &[&[u8; 32]]) -> Vec<Found> {
        if addresses.len() >= 2 * PARALLEL_LOOKUPS_MIN {
            addresses
                .par_chunks(PARALLEL_LOOKUPS_MIN / 2)
                .flat_map_iter(|chunk| self.found_many(chunk))
                .collect()
        } else {
            self.found_many(addresses)
        }
    }

    /// [`Ledger::found`] for each of `addresses`, [`LOOKUP_GROUP`] at a time: a lookup is three
    /// dependent reads (the index's entry, the address it names, the account), each a cache
    /// miss at ten million accounts, so a group's entries are hinted to the cache first, then
    /// the addresses and accounts they name, then the lookups run over cached lines. One lookup
    /// at a time, a core overlapped only the few its reorder window reached.
    fn found_many(&self, addresses: &[&[u8; 32]]) -> Vec<Found> {
        let mut found = Vec::with_capacity(addresses.len());
        let mut homes = [0usize; LOOKUP_GROUP];
        for group in addresses.chunks(LOOKUP_GROUP) {
            for (home, key) in homes.iter_mut().zip(group) {
                *home = self.index.hint_home(key);
            }
            for home in &homes[..group.len()] {
                if let Some(slot) = self.index.hint_candidate(*home, &self.keys) {
                    prefetch(&self.accounts[slot as usize]);
                }
            }
            found.extend(group.iter().zip(homes).map(|(key, home)| {
                let slot = self.index.slot_from(home, key, &self.keys)?;
                Some((slot, self.accounts[slot as usize]))
            }));
        }
        found
    }

    /// The accounts a stored delta names, as [`DeltaRow`]s by slot: those of `keys` that have
    /// an account (an address a block named but that has none, like an unknown sender's, is
    /// left out). What a state-log record stores for the blocks that touched `keys`.
    pub fn delta_rows<'k>(&self, keys: impl IntoIterator<Item = &'k [u8; 32]>) -> Vec<DeltaRow> {
        let keys: Vec<&[u8; 32]> = keys.into_iter().collect();
        let mut rows: Vec<DeltaRow> = keys
            .iter()
            .zip(self.found_all(&keys))
            .filter_map(|(key, found)| {
                let (slot, account) = found?;
                Some(DeltaRow { slot: u64::from(slot), address: **key, account })
            })
            .collect();
        rows.sort_unstable_by_key(|row| row.slot);
        rows.dedup_by_key(|row| row.slot);
        rows
    }

    /// Applies a stored delta (a state-log record): its rows below the account count overwrite
    /// the accounts at their slots, which must hold the same addresses; the rest create the next
    /// slots in order, with addresses that have no account yet. Then its burned total, and
    /// the count it declares must be the one reached. Updates the tree along the touched paths
    /// and returns the new state root; the caller compares it with the one recorded.
    ///
    /// # Errors
    /// The first row that does not fit this state, or a count that does not match; the ledger
    /// is unchanged then.
    pub fn apply_stored(&mut self, stored: &StateDelta) -> Result<Hash, String> {
        let mut overlay = Overlay::new(self);
        for row in &stored.rows {
            let slot = u32::try_from(row.slot).map_err(|_| format!("slot {} past 2^32", row.slot))?;
            if (slot as usize) < overlay.delta.base_len {
                if self.keys[slot as usize] != row.address {
                    return Err(format!("row for slot {slot} names another address than the slot holds"));
                }
                overlay.set(slot, row.account);
            } else {
                if overlay.slot(&row.address).is_some() {
                    return Err(format!("row for new slot {slot} names an address that has an account"));
                }
                match overlay.create(row.address) {
                    Some(created) if created == slot => overlay.set(slot, row.account),
                    _ => return Err(format!("row creates slot {slot}, but the next free slot is another")),
                }
            }
        }
        let mut delta = overlay.into_delta();
        let count = (delta.base_len + delta.created.len()) as u64;
        if count != stored.count {
            return Err(format!("delta declares {} accounts, its rows give {count}", stored.count));
        }
        delta.burned = stored.burned;
        self.commit(delta);
        Ok(self.state_root())
    }

    /// The account at `key`, if it has ever been touched.
    pub fn account(&self, key: &[u8; 32]) -> Option<&Account> {
        self.slot_of(key).map(|slot| &self.accounts[slot as usize])
    }

    /// The next nonce `key` must use (0 for an unknown account).
    pub fn nonce_of(&self, key: &[u8; 32]) -> u64 {
        self.account(key).map_or(0, |account| account.nonce)
    }

    /// Balance of `key` (0 for an unknown account).
    pub fn balance_of(&self, key: &[u8; 32]) -> u64 {
        self.account(key).map_or(0, |account| account.balance)
    }

    /// Number of accounts.
    pub fn len(&self) -> usize {
        self.accounts.len()
    }

    /// True when no account exists.
    pub fn is_empty(&self) -> bool {
        self.accounts.is_empty()
    }

    /// Fees burned so far.
    pub fn burned(&self) -> u64 {
        self.burned
    }

    /// Total supply fixed at genesis.
    pub fn supply(&self) -> u128 {
        self.supply
    }

    /// Applies one transfer under the fee rule ([`Overlay::apply`]) and commits it. Blocks go
    /// through [`Ledger::execute`] and [`Ledger::commit`] instead, which update the tree once
    /// per block.
    ///
    /// # Errors
    /// As [`Overlay::apply`]; an error changes only what the fee rule charges.
    pub fn apply(&mut self, body: &TxnBody) -> Result<(), RejectReason> {
        let mut overlay = Overlay::new(self);
        let result = overlay.apply(body);
        let delta = overlay.into_delta();
        self.commit(delta);
        result
    }

    /// Executes `bodies` in order over this state without changing it: each transfer's result,
    /// and the delta that [`Ledger::commit`] applies. Costs O(k log N) for k touched accounts.
    pub fn execute<'b>(
        &self,
        bodies: impl IntoIterator<Item = &'b TxnBody>,
    ) -> (Vec<Result<(), RejectReason>>, LedgerDelta) {
        let bodies: Vec<&TxnBody> = bodies.into_iter().collect();
        // Every address the block names is looked up in this ledger first, on every core when
        // they are many: the lookups wait on nothing but their address, so a core overlaps their
        // cache misses (at ten million accounts nearly every one misses the index, the address
        // and the account), where the transfers, applied in order, waited for each alone.
        // And a group of lookups overlaps its misses further ([`Ledger::found_many`]).
        let addresses: Vec<&[u8; 32]> =
            bodies.iter().flat_map(|body| [&body.sender, &body.recipient]).collect();
        let found = self.found_all(&addresses);
        let mut overlay = Overlay::new(self);
        let results = bodies
            .iter()
            .zip(found.chunks_exact(2))
            .map(|(body, pair)| overlay.apply_found(body, [pair[0], pair[1]]))
            .collect();
        (results, overlay.into_delta())
    }

    /// The state root after `delta` (made over this state) would be committed.
    pub fn root_after(&self, delta: &mut LedgerDelta) -> Hash {
        let count = delta.base_len + delta.created.len();
        let first = delta.created.iter().map(|(key, _)| *key).chain(self.index.first(&self.keys)).min();
        let changes = delta.changes(self);
        state::state_root(
            count as u64,
            &self.tree.root_after(changes, count),
            delta.burned,
            &first.unwrap_or(state::NONE),
        )
    }

    /// Applies a delta made over this very state (by [`Ledger::execute`] or an [`Overlay`]).
    ///
    /// # Panics
    /// If the delta was made over another state: applying it would corrupt this one.
    pub fn commit(&mut self, mut delta: LedgerDelta) {
        assert_eq!(
            (delta.base_len, delta.base_root),
            (self.len(), self.state_root()),
            "a delta is committed only over the state it was made on"
        );
        let count = delta.base_len + delta.created.len();
        delta.changes(self);
        let changes = delta.changes.take().expect("computed above");
        for (slot, account) in &delta.changed {
            self.accounts[*slot as usize] = *account;
        }
        for (key, account) in delta.created {
            let slot = self.push_account(key).expect("Overlay::create assigns slots below slot_limit()");
            self.accounts[slot] = account;
        }
        self.burned = delta.burned;
        self.tree.apply(&changes, count);
    }

    /// The state root ([`tree`] defines it): the Merkle root over every account in slot order,
    /// with the account count and the burned total. O(1): the tree is kept current.
    pub fn state_root(&self) -> Hash {
        state::state_root(self.accounts.len() as u64, &self.tree.root(), self.burned, &self.first())
    }

    /// The state root computed from every account, ignoring the kept tree: O(N). For checks,
    /// and for the performance gate's proof that it notices a per-block O(N) cost.
    pub fn state_root_from_scratch(&self) -> Hash {
        state::state_root(
            self.accounts.len() as u64,
            &StateTree::build(self.leaves(Sharing::Own)).root(),
            self.burned,
            &self.first(),
        )
    }

    /// A proof of `key`'s account against [`Ledger::state_root`], or `None` for an address
    /// that has no account. O(log N).
    pub fn proof(&self, key: &[u8; 32]) -> Option<AccountProof> {
        let slot = self.slot_of(key)? as usize;
        Some(AccountProof {
            address: *key,
            account: self.accounts[slot],
            next: self.address_of(self.next[slot]),
            slot: slot as u64,
            count: self.accounts.len() as u64,
            burned: self.burned,
            first: self.first(),
            siblings: self.tree.path(slot)?,
        })
    }

    /// A proof that `key` has no account, against [`Ledger::state_root`]: the account with the
    /// largest address below it (whose successor is above it), or, when none is below, the
    /// state root's inputs. `None` for an address that has an account. O(log N).
    pub fn absence_proof(&self, key: &[u8; 32]) -> Option<AbsenceProof> {
        if self.slot_of(key).is_some() {
            return None;
        }
        match self.predecessor(key) {
            Some(slot) => {
                let low = self.proof(&self.keys[slot as usize])?;
                Some(AbsenceProof::After { address: *key, low })
            }
            None => Some(AbsenceProof::BelowFirst {
                address: *key,
                count: self.accounts.len() as u64,
                tree_root: self.tree.root(),
                burned: self.burned,
                first: self.first(),
            }),
        }
    }

    /// `Σ balance + burned`, which must equal [`Ledger::supply`].
    pub fn balance_sum(&self) -> u128 {
        self.accounts.iter().map(|a| u128::from(a.balance)).sum::<u128>() + u128::from(self.burned)
    }
}

/// What executing transfers over a [`Ledger`] changed, without the ledger: the accounts
/// written (by slot), the accounts created (their slots follow the ledger's), the burned total,
/// and once computed, the tree nodes that change. Its size is in proportion to the accounts
/// touched.
#[derive(Clone, Debug, Default)]
pub struct LedgerDelta {
    /// The ledger's account count and state root when the delta was made.
    base_len: usize,
    base_root: Hash,
    changed: HashMap<u32, Account>,
    created: Vec<([u8; 32], Account)>,
    created_index: HashMap<[u8; 32], u32>,
    burned: u64,
    /// The tree nodes this delta changes, computed once ([`LedgerDelta::changes`]); shared by
    /// clones (the simulator hands one validator's delta to the next).
    changes: Option<Arc<Changes>>,
}

impl LedgerDelta {
    /// Accounts this delta writes or creates.
    pub fn touched(&self) -> usize {
        self.changed.len() + self.created.len()
    }

    /// The tree nodes that change, computed on first use over `base` (the ledger the delta was
    /// made on).
    fn changes(&mut self, base: &Ledger) -> &Changes {
        // The leaves below are in slot order only over the delta's own base (its changed slots
        // below the base's length, its created ones past it).
        // The root as well as the length (O(1) both): a delta over another state of the same
        // length gave a root for a state that never existed (found in review; no caller did).
        assert_eq!(
            (base.len(), base.state_root()),
            (self.base_len, self.base_root),
            "a delta's nodes are computed over the ledger it was made on"
        );
        if self.changes.is_none() {
            // A leaf commits to the account's successor in address order, so besides the
            // accounts written and created, the ledger account just below each created one
            // changes leaf too. Each successor is the smaller of the next ledger address and the
            // next created one.
            let mut created: Vec<[u8; 32]> = self.created.iter().map(|(key, _)| *key).collect();
            created.sort_unstable();
            // `in_ledger`: the successor among the ledger's accounts (kept per slot for those).
            let next = |key: &[u8; 32], in_ledger: Option<[u8; 32]>| -> [u8; 32] {
                let in_created = created.get(created.partition_point(|other| other <= key)).copied();
                match (in_ledger, in_created) {
                    (Some(a), Some(b)) => a.min(b),
                    (a, b) => a.or(b).unwrap_or(state::NONE),
                }
            };
            let mut slots: Vec<u32> = self.changed.keys().copied().collect();
            slots.extend(created.iter().filter_map(|key| base.predecessor(key)));
            slots.sort_unstable();
            slots.dedup();
            // The ledger's changed leaves, then the created ones: in slot order, since every
            // created slot is past the ledger's. Their inputs are gathered, then hashed
            // ([`tree::hash_each`]). A leaf reads its address and its successor's slot,
            // hinted `AHEAD` leaves early, and its successor's address, hinted half as early
            // (its slot is cached by then).
            let ahead = |k: usize| {
                if let Some(slot) = slots.get(k) {
                    prefetch(&base.keys[*slot as usize]);
                    prefetch(&base.next[*slot as usize]);
                }
                if let Some(slot) = k.checked_sub(tree::AHEAD / 2).and_then(|k| slots.get(k))
                    && let Some(successor) = base.keys.get(base.next[*slot as usize] as usize)
                {
                    prefetch(successor);
                }
            };
            let leaves_len = slots.len() + self.created.len();
            let hashes = tree::hash_each(state::leaf_key(), leaves_len, ahead, |k| {
                if let Some(slot) = slots.get(k) {
                    let key = &base.keys[*slot as usize];
                    let account = self.changed.get(slot).unwrap_or(&base.accounts[*slot as usize]);
                    let in_ledger = base.keys.get(base.next[*slot as usize] as usize).copied();
                    state::leaf_input(key, account, &next(key, in_ledger))
                } else {
                    let (key, account) = &self.created[k - slots.len()];
                    state::leaf_input(key, account, &next(key, base.successor(key)))
                }
            });
            let created_slots = self.base_len..self.base_len + self.created.len();
            let leaves: Vec<(usize, Hash)> =
                slots.iter().map(|slot| *slot as usize).chain(created_slots).zip(hashes).collect();
            let count = self.base_len + self.created.len();
            self.changes = Some(Arc::new(base.tree.changes(leaves, count)));
        }
        self.changes.as_ref().expect("set above")
    }
}

/// A [`Ledger`] seen through a [`LedgerDelta`]: reads see the delta's writes, writes go to the
/// delta. Executing a block here leaves the ledger as it was.
#[derive(Debug)]
pub struct Overlay<'a> {
    base: &'a Ledger,
    delta: LedgerDelta,
}

impl<'a> Overlay<'a> {
    /// An empty overlay over `base`.
    pub fn new(base: &'a Ledger) -> Overlay<'a> {
        let delta = LedgerDelta {
            base_len: base.len(),
            base_root: base.state_root(),
            burned: base.burned,
            ..LedgerDelta::default()
        };
        Overlay { base, delta }
    }

    /// The delta of everything applied so far.
    pub fn into_delta(self) -> LedgerDelta {
        self.delta
    }

    fn slot(&self, key: &[u8; 32]) -> Option<u32> {
        self.slot_found(key, self.base.found(key))
    }

    /// [`Overlay::slot`], given what the base holds at `key`.
    fn slot_found(&self, key: &[u8; 32], found: Found) -> Option<u32> {
        found.map(|(slot, _)| slot).or_else(|| self.delta.created_index.get(key).copied())
    }

    /// [`Overlay::get`] of the slot [`Overlay::slot_found`] gave for `found`: the base's
    /// slot when it holds the address, so its account as this overlay last wrote it.
    fn get_found(&self, slot: u32, found: Found) -> Account {
        match found {
            Some((_, account)) => self.delta.changed.get(&slot).copied().unwrap_or(account),
            None => self.get(slot),
        }
    }

    fn get(&self, slot: u32) -> Account {
        let slot_index = slot as usize;
        if slot_index < self.delta.base_len {
            self.delta.changed.get(&slot).copied().unwrap_or(self.base.accounts[slot_index])
        } else {
            self.delta.created[slot_index - self.delta.base_len].1
        }
    }

    fn set(&mut self, slot: u32, account: Account) {
        let slot_index = slot as usize;
        if slot_index < self.delta.base_len {
            self.delta.changed.insert(slot, account);
        } else {
            self.delta.created[slot_index - self.delta.base_len].1 = account;
        }
    }

    /// A slot for a new account, or `None` past [`slot_limit`]: then the transfer is refused
    /// here, since the commit could not store the account.
    fn create(&mut self, key: [u8; 32]) -> Option<u32> {
        let slot = u32::try_from(self.delta.base_len + self.delta.created.len())
            .ok()
            .filter(|slot| *slot < slot_limit())?;
        self.delta.created.push((key, Account::default()));
        self.delta.created_index.insert(key, slot);
        Some(slot)
    }

    /// The account at `key` as of this overlay.
    pub fn account(&self, key: &[u8; 32]) -> Option<Account> {
        self.slot(key).map(|slot| self.get(slot))
    }

    /// Applies one transfer.
    ///
    /// The fee rule: a transaction with the sender's next nonce, from a sender whose balance
    /// covers the fee, consumes that nonce and pays that fee whether its amount moves or not. A
    /// transfer that fails before then (self-transfer, unknown sender, wrong nonce, fee above
    /// the balance, nonce or burned total at their limit) changes nothing. So block space taken
    /// by a failing transfer is paid for, and the same bytes can never be charged twice.
    ///
    /// # Errors
    /// [`RejectReason::BadNonce`] if the nonce is not the sender's next one,
    /// [`RejectReason::InsufficientFunds`] if the sender is unknown or its balance is below the
    /// fee (nothing charged) or below amount plus fee (fee charged), [`RejectReason::Overflow`]
    /// if a sum would overflow, [`RejectReason::SelfTransfer`] if sender and recipient are one
    /// account.
    pub fn apply(&mut self, body: &TxnBody) -> Result<(), RejectReason> {
        self.apply_found(body, [self.base.found(&body.sender), self.base.found(&body.recipient)])
    }

    /// [`Overlay::apply`], given what the base holds at the sender's and the recipient's
    /// addresses.
    fn apply_found(
        &mut self,
        body: &TxnBody,
        [in_sender, in_recipient]: [Found; 2],
    ) -> Result<(), RejectReason> {
        // The prefilter refuses self-transfers, but a block from another proposer is untrusted
        // input: refuse here too, since the credit below would read a stale balance.
        if body.sender == body.recipient {
            return Err(RejectReason::SelfTransfer);
        }
        let Some(sender_slot) = self.slot_found(&body.sender, in_sender) else {
            return Err(RejectReason::InsufficientFunds);
        };
        let mut sender = self.get_found(sender_slot, in_sender);
        if body.nonce != sender.nonce {
            return Err(RejectReason::BadNonce);
        }
        if sender.balance < body.fee {
            return Err(RejectReason::InsufficientFunds);
        }
        let nonce = sender.nonce.checked_add(1).ok_or(RejectReason::Overflow)?;
        let burned = self.delta.burned.checked_add(body.fee).ok_or(RejectReason::Overflow)?;
        // From here the fee is paid and the nonce consumed, whatever the amount does.
        sender.balance -= body.fee;
        sender.nonce = nonce;
        self.set(sender_slot, sender);
        self.delta.burned = burned;
        // Then the amount moves, creating the recipient's account, or nothing moves.
        if sender.balance < body.amount {
            return Err(RejectReason::InsufficientFunds);
        }
        let recipient_slot = self.slot_found(&body.recipient, in_recipient);
        let recipient = recipient_slot.map_or(Account::default(), |slot| self.get_found(slot, in_recipient));
        let credited = recipient.balance.checked_add(body.amount).ok_or(RejectReason::Overflow)?;
        let recipient_slot = match recipient_slot {
            Some(slot) => slot,
            None => self.create(body.recipient).ok_or(RejectReason::Overflow)?,
        };
        sender.balance -= body.amount;
        self.set(sender_slot, sender);
        self.set(recipient_slot, Account { balance: credited, ..recipient });
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn transfer(sender: u8, recipient: u8, amount: u64, fee: u64, nonce: u64) -> TxnBody {
        TxnBody {
            chain_id: 1,
            reserved: 0,
            sender: [sender; 32],
            recipient: [recipient; 32],
            amount,
            fee,
            nonce,
        }
    }

    /// Balances summing past u64::MAX are refused at genesis and in stored state. Accepted,
    /// two accounts of u64::MAX could burn fees until `burned` was full, after which every
    /// fee overflowed it and every transfer failed, for free: a chain no one could use
    /// (found in review). A supply of exactly u64::MAX is fine.
    #[test]
    fn a_supply_past_u64_is_refused() {
        let whales = [([1; 32], u64::MAX), ([2; 32], 1)];
        let supply = u128::from(u64::MAX) + 1;
        assert_eq!(Ledger::from_genesis(&whales).unwrap_err(), GenesisError::SupplyTooLarge { supply });
        let parts = LedgerParts {
            keys: vec![[1; 32], [2; 32]],
            accounts: vec![Account { balance: u64::MAX, nonce: 0 }, Account { balance: 1, nonce: 0 }],
            burned: 0,
            supply,
        };
        assert_eq!(Ledger::from_parts(parts).unwrap_err(), GenesisError::SupplyTooLarge { supply });
        let mut ledger = Ledger::from_genesis(&[([1; 32], u64::MAX - 5), ([2; 32], 5)]).unwrap();
        assert_eq!(ledger.supply(), u128::from(u64::MAX));
        // At the limit every fee still burns: burned can never pass the supply.
        assert_eq!(ledger.apply(&transfer(1, 3, 1, u64::MAX - 6, 0)), Ok(()));
        assert_eq!(ledger.apply(&transfer(2, 3, 1, 4, 0)), Ok(()));
        assert_eq!(ledger.burned(), u64::MAX - 2);
        assert_eq!(ledger.balance_sum(), ledger.supply(), "balances and burned fees");
    }

    /// A block large enough to be looked up ahead on every core runs as the fee rule says,
    /// transfer by transfer: checked against a model of the rule over a map, with senders that
    /// send many times in the block, accounts created and then sending in the same block,
    /// transfers that fail at each step, and creations past a lowered slot limit.
    #[test]
    fn a_block_looked_up_ahead_runs_as_the_fee_rule_says() {
        const LIMIT: usize = 124;
        SLOT_LIMIT.with(|limit| limit.set(LIMIT as u32));
        let address = |i: u16| -> [u8; 32] {
            let mut key = [7u8; 32];
            key[..2].copy_from_slice(&i.to_be_bytes());
            key
        };
        let genesis: Vec<([u8; 32], u64)> = (0..64u16).map(|i| (address(i), 1_000_000)).collect();
        let ledger = Ledger::from_genesis(&genesis).unwrap();
        let mut model: std::collections::BTreeMap<[u8; 32], Account> =
            genesis.iter().map(|(key, balance)| (*key, Account { balance: *balance, nonce: 0 })).collect();
        let mut bodies = Vec::new();
        let mut state = 0x9E37_79B9_u64;
        let mut next = |below: u64| {
            state ^= state << 13;
            state ^= state >> 7;
            state ^= state << 17;
            state % below
        };
        while bodies.len() < 3 * PARALLEL_LOOKUPS_MIN {
            // Senders among the first 64 and the first fresh ones; recipients up to 200, so
            // some are created by the block and send later in it.
            let sender = address(next(80) as u16);
            let recipient = address(next(200) as u16);
            let nonce = model.get(&sender).map_or(0, |account| account.nonce);
            let nonce = match next(20) {
                0 => nonce + 1,
                _ => nonce,
            };
            let amount = match next(10) {
                0 => 2_000_000,
                _ => 1 + next(5_000),
            };
            let body =
                TxnBody { chain_id: 1, reserved: 0, sender, recipient, amount, fee: 1 + next(3), nonce };
            // The model: the fee rule of `Overlay::apply`, on a map.
            (|| {
                if body.sender == body.recipient {
                    return;
                }
                let Some(mut from) = model.get(&body.sender).copied() else { return };
                if body.nonce != from.nonce || from.balance < body.fee {
                    return;
                }
                from.balance -= body.fee;
                from.nonce += 1;
                model.insert(body.sender, from);
                if from.balance < body.amount {
                    return;
                }
                if !model.contains_key(&body.recipient) && model.len() >= LIMIT {
                    return;
                }
                from.balance -= body.amount;
                model.insert(body.sender, from);
                model.entry(body.recipient).or_default().balance += body.amount;
            })();
            bodies.push(body);
        }
        let (results, mut delta) = ledger.execute(&bodies);
        assert!(results.iter().filter(|result| result.is_ok()).count() > bodies.len() / 4);
        assert!(results.iter().any(Result::is_err));
        let root = ledger.root_after(&mut delta);
        let mut after = ledger.clone();
        after.commit(delta);
        assert_eq!(after.state_root(), root);
        assert_eq!(after.len(), model.len(), "the block creates the accounts the model does");
        assert_eq!(after.len(), LIMIT, "the block reaches the slot limit");
        assert!(results.contains(&Err(RejectReason::Overflow)));
        for (key, account) in &model {
            assert_eq!(after.account(key), Some(account), "{}", Hash(*key));
        }
        SLOT_LIMIT.with(|limit| limit.set(NO_SLOT));
    }

    /// Lookups a group at a time, their reads hinted ahead, find what one lookup at a time
    /// finds: for addresses in the index's base, among the accounts created since, and with
    /// no account, in counts that end a group part way; and while the index folds, where an
    /// address may sit in the overlay being folded.
    #[test]
    fn grouped_lookups_find_what_single_lookups_find() {
        let genesis: Vec<([u8; 32], u64)> = (1..=40u8).map(|i| ([i; 32], 1_000_000)).collect();
        let mut ledger = Ledger::from_genesis(&genesis).unwrap();
        // Accounts created after genesis sit in the index's overlay, not its base.
        for (nonce, recipient) in (100..110u8).enumerate() {
            assert_eq!(ledger.apply(&transfer(1, recipient, 5, 1, nonce as u64)), Ok(()));
        }
        assert_eq!(ledger.len(), 50);
        let keys: Vec<[u8; 32]> = (0..=255u8).rev().map(|i| [i; 32]).collect();
        for count in
            [0, 1, LOOKUP_GROUP - 1, LOOKUP_GROUP, LOOKUP_GROUP + 1, 3 * LOOKUP_GROUP + 5, keys.len()]
        {
            let addresses: Vec<&[u8; 32]> = keys.iter().take(count).collect();
            let single: Vec<Found> = addresses.iter().map(|key| ledger.found(key)).collect();
            assert_eq!(ledger.found_many(&addresses), single, "{count} addresses");
        }
        let found = ledger.found_many(&keys.iter().collect::<Vec<_>>());
        assert_eq!(found.iter().flatten().count(), 50, "every account found, and nothing else");
        assert_eq!(found[255 - 105], Some((45, Account { balance: 5, nonce: 0 })), "a created account");
        // And while the index folds the accounts created since its base into a new one.
        let wide_key = |i: u32| -> [u8; 32] {
            let mut key = [0x5a; 32];
            key[..4].copy_from_slice(&i.to_be_bytes());
            key
        };
        let mut nonce = 10;
        let mut created = 0;
        while !ledger.index.is_folding() {
            let body = TxnBody { recipient: wide_key(created), ..transfer(1, 0, 1, 1, nonce) };
            assert_eq!(ledger.apply(&body), Ok(()));
            (nonce, created) = (nonce + 1, created + 1);
            assert!(created <= 2 * index::FOLD_MIN as u32, "a fold begins");
        }
        let mut keys: Vec<[u8; 32]> = (0..created + 40).map(wide_key).collect();
        keys.extend((1..=45u8).map(|i| [i; 32]));
        let addresses: Vec<&[u8; 32]> = keys.iter().collect();
        let single: Vec<Found> = addresses.iter().map(|key| ledger.found(key)).collect();
        assert_eq!(ledger.found_many(&addresses), single, "during a fold");
        assert_eq!(ledger.found_all(&addresses), single, "during a fold, on every core");
        assert_eq!(
            single.iter().flatten().count(),
            created as usize + 40,
            "created, and genesis's but 41 to 45"
        );
    }

    /// A stored delta of the accounts `touched`, after the block at `height`.
    fn stored_delta(ledger: &Ledger, touched: &[[u8; 32]], height: u64) -> StateDelta {
        StateDelta {
            height,
            base_height: 0,
            state_root: ledger.state_root(),
            burned: ledger.burned(),
            count: ledger.len() as u64,
            rows: ledger.delta_rows(touched),
        }
    }

    /// Stored deltas folded into the columns at once, then the order merged and the ledger
    /// built once, give the ledger that applying them a delta at a time gives: accounts,
    /// order, root. A row the one-at-a-time rules refuse is refused at once too, except an
    /// address created though it has an account, which the merge of the order finds.
    #[test]
    fn stored_deltas_folded_at_once_give_the_ledger_applied_one_at_a_time() {
        let genesis: Vec<([u8; 32], u64)> = (1..=40u8).map(|i| ([i; 32], 1_000)).collect();
        let start = Ledger::from_genesis(&genesis).unwrap();
        let mut live = start.clone();
        let mut deltas = Vec::new();
        for round in 0..3u8 {
            let mut touched = Vec::new();
            for i in 0..20u8 {
                let sender = 1 + (i + 7 * round) % 40;
                // Half to accounts that exist, half to fresh ones (above and below the rest).
                let recipient = if i % 2 == 0 { 1 + (i + 3) % 40 } else { 100 + 20 * round + i };
                let nonce = live.nonce_of(&[sender; 32]);
                if live.apply(&transfer(sender, recipient, 1 + u64::from(i), 1, nonce)).is_ok() {
                    touched.extend([[sender; 32], [recipient; 32]]);
                }
            }
            deltas.push(stored_delta(&live, &touched, u64::from(round) + 1));
        }
        assert!(live.len() > start.len() + 20, "the deltas create accounts");

        let one_at_a_time = |deltas: &[StateDelta]| -> Result<Ledger, String> {
            let mut ledger = start.clone();
            for delta in deltas {
                ledger.apply_stored(delta)?;
            }
            Ok(ledger)
        };
        let at_once = |deltas: &[StateDelta]| -> Result<Ledger, String> {
            let mut parts = start.to_parts();
            for delta in deltas {
                parts.apply_stored(delta)?;
            }
            let order = index::check_order(start.address_order().into_owned(), start.len()).unwrap();
            let merged = index::merge_added(&order, &parts.keys)
                .map_err(|key| format!("{} created twice", Hash(key)))?;
            let base = index::Base::from_checked(&parts.keys, merged).map_err(|error| error.to_string())?;
            Ledger::from_parts_indexed(parts, Some(base)).map_err(|error| error.to_string())
        };
        let (slow, fast) = (one_at_a_time(&deltas).unwrap(), at_once(&deltas).unwrap());
        for ledger in [&slow, &fast] {
            assert_eq!(ledger.state_root(), live.state_root());
            assert_eq!((ledger.keys(), ledger.accounts()), (live.keys(), live.accounts()));
            assert_eq!(ledger.address_order(), live.address_order());
        }

        // The last delta creates accounts; spoil it each way.
        let last = deltas.len() - 1;
        let first_created =
            deltas[last].rows.iter().position(|row| row.slot >= deltas[last - 1].count).unwrap();
        let spoil = |change: &dyn Fn(&mut StateDelta)| {
            let mut spoiled = deltas.clone();
            change(&mut spoiled[last]);
            (one_at_a_time(&spoiled).map(|_| ()), at_once(&spoiled).map(|_| ()))
        };
        let (slow, fast) = spoil(&|delta| delta.rows[0].address = [250; 32]);
        assert!(
            slow.unwrap_err().contains("another address") && fast.unwrap_err().contains("another address")
        );
        let (slow, fast) = spoil(&|delta| delta.rows[first_created].slot += 1);
        assert!(slow.unwrap_err().contains("next free slot") && fast.unwrap_err().contains("next free slot"));
        let (slow, fast) = spoil(&|delta| delta.count += 1);
        assert!(slow.unwrap_err().contains("declares") && fast.unwrap_err().contains("declares"));
        let (slow, fast) = spoil(&|delta| delta.rows[first_created].address = [5; 32]);
        assert!(slow.unwrap_err().contains("has an account"));
        assert_eq!(fast.unwrap_err(), format!("{} created twice", Hash([5; 32])));
        let twice = deltas[last].rows[first_created].address;
        let (slow, fast) = spoil(&|delta| {
            let mut again = delta.rows[first_created];
            again.slot = delta.count;
            delta.rows.push(again);
            delta.count += 1;
        });
        assert!(slow.unwrap_err().contains("has an account"));
        assert_eq!(fast.unwrap_err(), format!("{} created twice", Hash(twice)));
        // No slot at or past the limit (u32::MAX, which stands for "none"), either way.
        SLOT_LIMIT.with(|limit| limit.set(deltas[last - 1].count as u32));
        let (slow, fast) = spoil(&|_| {});
        SLOT_LIMIT.with(|limit| limit.set(NO_SLOT));
        assert!(slow.unwrap_err().contains("next free slot") && fast.unwrap_err().contains("next free slot"));
    }

    /// Clones share the columns only a creation writes, until one of them creates an account;
    /// a creation or a write in one leaves the other as it was, and every root matches a
    /// rebuild from scratch.
    #[test]
    fn clones_share_columns_until_one_creates_an_account() {
        let genesis = Ledger::from_genesis(&[([1; 32], 100), ([5; 32], 100)]).unwrap();
        let root = genesis.state_root();
        let mut created = genesis.clone();
        assert!(Arc::ptr_eq(&created.index, &genesis.index));
        assert_eq!(created.apply(&transfer(1, 3, 10, 1, 0)), Ok(()));
        assert!(!Arc::ptr_eq(&created.index, &genesis.index), "a creation wrote a shared column");
        assert_eq!((created.len(), genesis.len()), (3, 2));
        assert!(genesis.account(&[3; 32]).is_none());
        assert_eq!(created.state_root(), created.state_root_from_scratch());
        let mut written = genesis.clone();
        assert_eq!(written.apply(&transfer(5, 1, 10, 1, 0)), Ok(()));
        assert!(Arc::ptr_eq(&written.keys, &genesis.keys), "a transfer between accounts copied the columns");
        assert_eq!(written.state_root(), written.state_root_from_scratch());
        assert_eq!(genesis.balance_of(&[5; 32]), 100);
        assert_eq!((genesis.state_root(), genesis.state_root_from_scratch()), (root, root));
        let deep = genesis.unshared();
        assert!(!Arc::ptr_eq(&deep.index, &genesis.index) && !deep.index.shares_base(&genesis.index));
        assert!(
            !Arc::ptr_eq(&deep.keys, &genesis.keys) && !Arc::ptr_eq(&deep.next, &genesis.next),
            "nor the columns"
        );
        assert_eq!(deep.state_root(), root);
    }

    /// Clones of a ledger made to be shared share the tree's pages until each writes them: a
    /// transfer copies the pages on its two paths alone, and leaves the other clones' roots and
    /// trees as they were.
    #[test]
    fn clones_of_a_shared_genesis_share_the_trees_pages_until_each_writes() {
        let balances: Vec<([u8; 32], u64)> = (0..2_000u32)
            .map(|i| {
                let mut address = [0u8; 32];
                address[..4].copy_from_slice(&i.to_be_bytes());
                (address, 1_000)
            })
            .collect();
        let genesis = Ledger::from_genesis_shared(&balances).unwrap();
        let root = genesis.state_root();
        assert_eq!(genesis.tree.shared_pages().0, 0, "nothing shares them yet");
        let mut first = genesis.clone();
        let second = genesis.clone();
        let (shared, pages) = genesis.tree.shared_pages();
        assert_eq!(shared, pages, "every page shared");
        let body =
            TxnBody { sender: balances[3].0, recipient: balances[1_900].0, ..transfer(0, 0, 10, 1, 0) };
        assert_eq!(first.apply(&body), Ok(()));
        let (after, _) = first.tree.shared_pages();
        // Two paths through 12 levels (2,000 leaves) write one or two pages a level.
        let copied = pages - after;
        assert!((12..=24).contains(&copied), "{copied} of {pages} pages copied");
        assert_eq!(first.state_root(), first.state_root_from_scratch());
        assert_ne!(first.state_root(), root);
        assert_eq!((second.state_root(), second.state_root_from_scratch()), (root, root));
        assert_eq!((genesis.state_root(), genesis.state_root_from_scratch()), (root, root));
        // A ledger made not to be shared copies its tree on a clone.
        let own = Ledger::from_genesis(&balances).unwrap();
        assert_eq!((own.clone().tree.shared_pages().0, own.state_root()), (0, root));
        // Nor does a copy that shares nothing.
        let deep = genesis.unshared();
        assert_eq!((deep.tree.shared_pages().0, deep.state_root()), (0, root));
    }

    #[test]
    fn transfers_that_cannot_pay_their_fee_change_nothing() {
        let mut ledger = Ledger::from_genesis(&[([1; 32], 100), ([2; 32], u64::MAX - 105)]).unwrap();
        let root = ledger.state_root();
        assert_eq!(ledger.apply(&transfer(1, 3, 1, 101, 0)), Err(RejectReason::InsufficientFunds));
        assert_eq!(ledger.apply(&transfer(1, 3, 10, 1, 1)), Err(RejectReason::BadNonce));
        assert_eq!(ledger.apply(&transfer(9, 3, 1, 1, 0)), Err(RejectReason::InsufficientFunds));
        assert_eq!(ledger.apply(&transfer(1, 1, 1, 1, 0)), Err(RejectReason::SelfTransfer));
        assert_eq!(ledger.state_root(), root);
        assert_eq!(ledger.len(), 2);

        assert_eq!(ledger.apply(&transfer(1, 3, 90, 10, 0)), Ok(()));
        assert_eq!(ledger.balance_of(&[1; 32]), 0);
        assert_eq!(ledger.balance_of(&[3; 32]), 90);
        assert_eq!(ledger.nonce_of(&[1; 32]), 1);
        assert_eq!(ledger.burned(), 10);
        assert_eq!(ledger.balance_sum(), ledger.supply());
        assert_ne!(ledger.state_root(), root);
    }

    #[test]
    fn a_failing_transfer_that_can_pay_its_fee_pays_it_and_consumes_its_nonce() {
        let mut ledger = Ledger::from_genesis(&[([1; 32], 100), ([2; 32], u64::MAX - 105)]).unwrap();
        // Amount plus fee above the balance: the fee is paid, the amount stays.
        assert_eq!(ledger.apply(&transfer(1, 3, 99, 2, 0)), Err(RejectReason::InsufficientFunds));
        assert_eq!((ledger.balance_of(&[1; 32]), ledger.nonce_of(&[1; 32]), ledger.burned()), (98, 1, 2));
        assert_eq!(ledger.account(&[3; 32]), None, "a failed transfer creates no account");
        // The same bytes cannot be charged again: the nonce is spent.
        assert_eq!(ledger.apply(&transfer(1, 3, 99, 2, 0)), Err(RejectReason::BadNonce));
        // To a funded account, more than the balance: the fee is paid, the amount stays. (No
        // recipient's balance can overflow: balances sum to at most u64::MAX,
        // `a_supply_past_u64_is_refused`.)
        assert_eq!(ledger.apply(&transfer(1, 2, 1000, 1, 1)), Err(RejectReason::InsufficientFunds));
        assert_eq!((ledger.balance_of(&[1; 32]), ledger.balance_of(&[2; 32])), (97, u64::MAX - 105));
        // An amount of 2^64 - 1: the fee is paid.
        assert_eq!(ledger.apply(&transfer(1, 3, u64::MAX, 1, 2)), Err(RejectReason::InsufficientFunds));
        assert_eq!((ledger.balance_of(&[1; 32]), ledger.nonce_of(&[1; 32]), ledger.burned()), (96, 3, 4));
        // A fee of the whole balance is paid: nothing is left for the amount.
        assert_eq!(ledger.apply(&transfer(1, 3, 1, 96, 3)), Err(RejectReason::InsufficientFunds));
        assert_eq!((ledger.balance_of(&[1; 32]), ledger.nonce_of(&[1; 32]), ledger.burned()), (0, 4, 100));
        assert_eq!(ledger.balance_sum(), ledger.supply());
    }

    #[test]
    fn a_transfer_that_would_create_an_account_past_the_slot_limit_is_refused_not_a_panic() {
        // At 2^32 − 1 accounts, the next new address would get slot NO_SLOT, which the commit
        // cannot store: refusing it at execution keeps a proposer from building a block that
        // halts every validator in its commit. The limit is lowered to reach it here.
        SLOT_LIMIT.with(|limit| limit.set(3));
        let mut ledger = Ledger::from_genesis(&[([1; 32], 100), ([2; 32], 50)]).unwrap();
        assert_eq!(ledger.apply(&transfer(1, 3, 10, 1, 0)), Ok(()), "slot 2, the last below the limit");
        assert_eq!(ledger.len(), 3);
        let root = ledger.state_root();
        assert_eq!(ledger.apply(&transfer(1, 4, 10, 1, 1)), Err(RejectReason::Overflow));
        // The fee rule holds: the fee is paid, the nonce consumed, no account made.
        assert_eq!((ledger.len(), ledger.nonce_of(&[1; 32]), ledger.burned()), (3, 2, 2));
        assert_eq!(ledger.account(&[4; 32]), None);
        assert_ne!(ledger.state_root(), root);
        // Transfers between existing accounts go on.
        assert_eq!(ledger.apply(&transfer(1, 3, 10, 1, 2)), Ok(()));
        assert_eq!(ledger.balance_sum(), ledger.supply());
        SLOT_LIMIT.with(|limit| limit.set(NO_SLOT));
    }

    #[test]
    fn parts_round_trip_and_are_checked() {
        let mut ledger = Ledger::from_genesis(&[([1; 32], 100), ([2; 32], 50)]).unwrap();
        ledger.apply(&transfer(1, 3, 10, 2, 0)).unwrap();
        let parts = ledger.to_parts();
        let back = Ledger::from_parts(parts.clone()).unwrap();
        assert_eq!(back.state_root(), ledger.state_root());
        assert_eq!(back.nonce_of(&[1; 32]), 1);
        let mut bad = parts.clone();
        bad.accounts[0].balance += 1;
        assert!(matches!(Ledger::from_parts(bad), Err(GenesisError::SupplyMismatch { .. })));
        let mut bad = parts.clone();
        bad.keys[1] = bad.keys[0];
        assert!(matches!(Ledger::from_parts(bad), Err(GenesisError::DuplicateAccount(_))));
        let mut bad = parts;
        bad.keys.pop();
        assert!(matches!(Ledger::from_parts(bad), Err(GenesisError::ColumnMismatch { .. })));
    }

    #[test]
    fn speculative_blocks_leave_the_ledger_alone_and_commit_to_the_root_of_a_rebuilt_one() {
        // Even addresses from 4 up at genesis, in reverse of address order; new accounts at
        // any address from 1 to 120, so they land below the first, between two, and past the
        // last, each changing the successor a neighbour's leaf commits to.
        let mut ledger =
            Ledger::from_genesis(&(2..=41u8).rev().map(|i| ([2 * i; 32], 1_000)).collect::<Vec<_>>())
                .unwrap();
        let mut state = 0x9e37_79b9_7f4a_7c15u64;
        let mut next = move |bound: u64| {
            state ^= state << 13;
            state ^= state >> 7;
            state ^= state << 17;
            state % bound
        };
        for block in 0..30 {
            // Transfers between known accounts and to new ones, some failing (wrong nonce,
            // funds), some from the same sender in a row.
            let bodies: Vec<TxnBody> = (0..1 + next(50))
                .map(|_| {
                    let sender = 2 * (2 + next(40) as u8);
                    let recipient = 1 + next(120) as u8;
                    let nonce = ledger.nonce_of(&[sender; 32]) + u64::from(next(4) == 0);
                    transfer(sender, recipient, next(600), next(3), nonce)
                })
                .collect();
            let before = (ledger.state_root(), ledger.len(), ledger.to_parts().accounts);
            let (results, mut delta) = ledger.execute(&bodies);
            let root = ledger.root_after(&mut delta);
            assert_eq!(
                (ledger.state_root(), ledger.len(), ledger.to_parts().accounts),
                before,
                "block {block}"
            );
            // The same transfers one at a time on a copy agree, result by result.
            let mut one_by_one = ledger.clone();
            let sequential: Vec<_> = bodies.iter().map(|body| one_by_one.apply(body)).collect();
            assert_eq!(results, sequential, "block {block}");
            ledger.commit(delta);
            assert_eq!(ledger.state_root(), root, "block {block}");
            assert_eq!(one_by_one.state_root(), root, "block {block}");
            let rebuilt = Ledger::from_parts(ledger.to_parts()).unwrap();
            assert_eq!(rebuilt.state_root(), root, "block {block}: the kept tree drifted from a rebuilt one");
            // Every account proves its value against the root of the tree kept block by block.
            for key in ledger.keys() {
                let proof = ledger.proof(key).expect("an account has a proof");
                assert_eq!(proof.account, *ledger.account(key).unwrap());
                assert_eq!(proof.verify(&root), Ok(()), "block {block}");
            }
            assert!(ledger.proof(&[0xee; 32]).is_none());
            assert_eq!(ledger.state_root_from_scratch(), root, "block {block}: the kept successors drifted");
            // Every address without an account proves its absence, below the first account,
            // between two, or past the last; one with an account has no absence proof.
            for byte in 0..=255u8 {
                let address = [byte; 32];
                match ledger.absence_proof(&address) {
                    Some(proof) => assert_eq!(proof.verify(&root), Ok(()), "block {block}: {byte}"),
                    None => assert!(ledger.account(&address).is_some()),
                }
            }
            assert_eq!(ledger.balance_sum(), ledger.supply());
        }
        assert!(ledger.len() > 40, "new accounts were created");
    }

    #[test]
    #[should_panic(expected = "only over the state it was made on")]
    fn a_delta_is_never_committed_over_another_state() {
        let mut ledger = Ledger::from_genesis(&[([1; 32], 100)]).unwrap();
        let (_, delta) = ledger.execute(&[transfer(1, 2, 10, 1, 0)]);
        ledger.apply(&transfer(1, 3, 10, 1, 0)).unwrap();
        ledger.commit(delta);
    }

    /// Nor is its root asked for over another state of the same length.
    #[test]
    #[should_panic(expected = "computed over the ledger it was made on")]
    fn a_deltas_root_is_never_computed_over_another_state() {
        let mut ledger = Ledger::from_genesis(&[([1; 32], 100), ([2; 32], 0)]).unwrap();
        let (_, mut delta) = ledger.execute(&[transfer(1, 2, 10, 1, 0)]);
        ledger.apply(&transfer(1, 2, 20, 1, 0)).unwrap();
        ledger.root_after(&mut delta);
    }

    #[test]
    fn duplicate_genesis_account_is_refused() {
        assert!(matches!(
            Ledger::from_genesis(&[([1; 32], 1), ([1; 32], 2)]),
            Err(GenesisError::DuplicateAccount(_))
        ));
    }
}
