//! The ledger's address index: the slot that holds an address, and the addresses in order.
//!
//! Two parts:
//!
//! - The **base** covers the slots below its count and never changes once built. It is two flat
//!   arrays of `u32`: the base's slots sorted by address (the *order*), and an open-addressing
//!   table of slots (linear probing, at most half full, each entry a slot plus one so that 0 is
//!   empty), hashed by SipHash-1-3 under a random 128-bit key that this process drew and never
//!   stores. A store keeps the order beside each snapshot and a restart reads it back
//!   ([`Base::order`], [`Base::from_order`]), so no address is sorted again; the table is built
//!   again at each start under a fresh key, one hash and one write per account. A lookup
//!   compares the address stored at the slot it finds, so no entry can name the wrong account.
//! - The **overlay** holds the accounts created since: a hash map and a B-tree set. Once it
//!   holds an eighth of the base (and at least [`FOLD_MIN`] accounts) it is folded into a new
//!   base: the order merged (a binary search per new address, then copies), the table copied
//!   with the new slots inserted, or rebuilt at twice the size when it would pass half full.
//!   A fold costs O(N) memory traffic once per N/8 creations, O(1) amortized per account.
//!
//! Why not a `HashMap` and a `BTreeSet` for everything, as before: at ten million accounts they
//! held ~100 bytes per account between them, and a restart rebuilt both, sorting every address.
//! The base holds 20 bytes per account at most (16 of table, 4 of order); a store that keeps
//! the order reads it back, so a restart sorts nothing.
//!
//! Why the table is not stored too: its layout is decided by its key, and whoever could read a
//! stored key (a data directory, or a copy used to seed other nodes) could grind addresses into
//! one long probe run. A key that lives only in memory gives nobody that aim, and a table built
//! from the addresses needs no check that its entries sit where lookups reach them. The order
//! needs none beyond its shape: the state root commits to each account's successor, which the
//! order gives, so a misordered one gives another root.

use std::collections::BTreeSet;
use std::hash::{BuildHasher, Hasher, RandomState};
use std::sync::{Arc, OnceLock};

use foldhash::HashMap;
use siphasher::sip::SipHasher13;

/// Fewest accounts the overlay holds before it is folded into the base.
pub const FOLD_MIN: usize = 1 << 12;

/// Table entries for a base of `count` slots: a power of two, at least twice `count`.
fn capacity_for(count: usize) -> usize {
    count.saturating_mul(2).next_power_of_two().max(8)
}

/// The immutable part of an [`AddressIndex`]: a slot table and the slots in address order, for
/// the slots below `count`.
#[derive(Clone, Debug)]
pub struct Base {
    key: [u64; 2],
    count: usize,
    /// A power of two at least twice `count`; entries are slot + 1, 0 empty.
    table: Arc<Vec<u32>>,
    /// The `count` slots, sorted by address.
    order: Arc<Vec<u32>>,
    /// The first 8 bytes (big-endian) of the address of every [`FENCE_STEP`]-th slot of the
    /// order, built on first use: a search looks here first (a compact array of integers),
    /// then among [`FENCE_STEP`] slots of the order, so it reads a few scattered addresses
    /// instead of log2(N). Equal prefixes (which a client can grind) fall back to the whole
    /// address.
    fence: OnceLock<Arc<Vec<u64>>>,
}

/// Slots of the order between two fence entries.
const FENCE_STEP: usize = 32;

/// Why a stored order does not make a base.
#[derive(Debug, PartialEq, Eq, thiserror::Error)]
pub enum BaseError {
    /// An order of another length than the accounts it orders.
    #[error("index order holds {words} slots, the state has {count} accounts")]
    Length {
        /// Slots given.
        words: usize,
        /// Accounts.
        count: usize,
    },
    /// An order that is not each slot once.
    #[error("index order does not hold each of its {count} slots exactly once")]
    Order {
        /// Accounts the base covers.
        count: usize,
    },
}

impl Base {
    /// A random SipHash key: the table's layout must not be one a client can aim at. Drawn
    /// whenever a table is built from addresses (at genesis and at each start), kept by the
    /// folds of that index, and never stored. It decides where entries sit, never what a
    /// lookup answers, so no result depends on it.
    fn random_key() -> [u64; 2] {
        let state = RandomState::new();
        [state.hash_one(0x7465_7373_6572_6131_u64), state.hash_one(0x7465_7373_6572_6132_u64)]
    }

    fn home(&self, key: &[u8; 32]) -> usize {
        home(self.key, key, self.table.len())
    }

    fn table(&self) -> &[u32] {
        &self.table
    }

    /// The slots in address order: what a store keeps.
    pub fn order(&self) -> &[u32] {
        &self.order
    }

    /// Accounts this base covers (slots `0..count`).
    pub fn count(&self) -> usize {
        self.count
    }

    /// Entries in the table.
    pub fn capacity(&self) -> usize {
        self.table.len()
    }

    /// The SipHash key of the table.
    pub fn key(&self) -> [u64; 2] {
        self.key
    }

    /// The base over a stored order of `keys` (their slots sorted by address), its table built
    /// here under a fresh key. Checked: the order holds each slot of `keys` once. Whether it is
    /// sorted by address is not checked here: a store keeps it under a checksum, and the state
    /// root, which commits to each account's successor, checks it (the caller must compare
    /// the root with one it trusts). O(N): a hash and a table write per account, no sort.
    ///
    /// # Errors
    /// The first way the order is not one of `keys`.
    pub fn from_order(keys: &[[u8; 32]], order: Vec<u32>) -> Result<Base, BaseError> {
        let count = keys.len();
        if order.len() != count {
            return Err(BaseError::Length { words: order.len(), count });
        }
        let mut seen = vec![false; count];
        for slot in &order {
            match seen.get_mut(*slot as usize) {
                Some(seen) if !*seen => *seen = true,
                _ => return Err(BaseError::Order { count }),
            }
        }
        Ok(Base::build(Base::random_key(), keys, order))
    }

    /// The base over `order` (the slots of `keys`, sorted by address), its table built here.
    fn build(key: [u64; 2], keys: &[[u8; 32]], order: Vec<u32>) -> Base {
        let count = order.len();
        let mut table = vec![0u32; capacity_for(count)];
        insert_all(&mut table, key, keys, 0..count as u32);
        Base { key, count, table: Arc::new(table), order: Arc::new(order), fence: OnceLock::new() }
    }

    /// The slot of `key` among the base's, if it has one.
    fn lookup(&self, key: &[u8; 32], keys: &[[u8; 32]]) -> Option<u32> {
        let table = self.table();
        let mask = table.len() - 1;
        let mut at = self.home(key);
        // The table is at most half full, so the probe meets an empty entry.
        loop {
            let slot = table[at].checked_sub(1)?;
            if keys[slot as usize] == *key {
                return Some(slot);
            }
            at = (at + 1) & mask;
        }
    }

    /// Position in the order of the first address at or above (`strict`: above) `key`.
    fn position(&self, key: &[u8; 32], keys: &[[u8; 32]], strict: bool) -> usize {
        self.position_from(key, keys, strict, 0).0
    }

    /// [`Base::position`], given that the first `from` fence entries are below `key`; also
    /// returns how many are. From a `from` past 0 the fence is searched by galloping (steps of
    /// 1, 2, 4, …, then a binary search between the last two), so ascending keys that fall
    /// close together, as a merge's do, cost a few reads each instead of a whole search.
    fn position_from(&self, key: &[u8; 32], keys: &[[u8; 32]], strict: bool, from: usize) -> (usize, usize) {
        let order = self.order();
        let key_prefix = prefix(key);
        // Integers first: the whole addresses only when their prefixes tie.
        let below = |address: &[u8; 32]| match prefix(address).cmp(&key_prefix) {
            std::cmp::Ordering::Less => true,
            std::cmp::Ordering::Greater => false,
            std::cmp::Ordering::Equal if strict => address <= key,
            std::cmp::Ordering::Equal => address < key,
        };
        let fence = self.fence.get_or_init(|| {
            Arc::new(order.iter().step_by(FENCE_STEP).map(|slot| prefix(&keys[*slot as usize])).collect())
        });
        // `fenced` fence entries are below: the answer is past the last of them, and not past
        // the first that is not.
        let fence_below = |at: usize| match fence[at].cmp(&key_prefix) {
            std::cmp::Ordering::Less => true,
            std::cmp::Ordering::Greater => false,
            std::cmp::Ordering::Equal => below(&keys[order[at * FENCE_STEP] as usize]),
        };
        let (mut fenced, mut high) = (from.min(fence.len()), fence.len());
        if fenced > 0 {
            let mut step = 1;
            while fenced + step <= fence.len() && fence_below(fenced + step - 1) {
                fenced += step;
                step *= 2;
            }
            high = (fenced + step - 1).min(fence.len());
        }
        while fenced < high {
            let middle = fenced + (high - fenced) / 2;
            if fence_below(middle) {
                fenced = middle + 1;
            } else {
                high = middle;
            }
        }
        let low = fenced.saturating_sub(1) * FENCE_STEP;
        let high = (fenced * FENCE_STEP).min(order.len());
        (low + order[low..high].partition_point(|slot| below(&keys[*slot as usize])), fenced)
    }
}

/// The first 8 bytes of an address, as an integer that orders as the address does.
fn prefix(key: &[u8; 32]) -> u64 {
    u64::from_be_bytes(key[..8].try_into().expect("8 bytes"))
}

fn home(sip: [u64; 2], key: &[u8; 32], capacity: usize) -> usize {
    let mut hasher = SipHasher13::new_with_keys(sip[0], sip[1]);
    hasher.write(key);
    // A power of two: the mask keeps the low bits.
    (hasher.finish() as usize) & (capacity - 1)
}

/// Entries of the table one pass of [`insert_all`] writes into at a time (32 KiB of it).
const REGION: usize = 1 << 13;

/// Puts each of `slots` (addresses `keys[slot]`, none yet in the table) at the first free
/// entry from its home, as [`insert`] would one by one, in an order that keeps the writes in
/// cache: the slots are first grouped by the region of the table their home falls in (a
/// counting sort), then placed a region at a time. Placed in order of slot, each of ten million
/// writes missed the cache and the TLB; any order of insertion gives a table in which every
/// address is reached from its home. Needs 16 bytes a slot while it runs (the packed homes, then
/// the same grouped).
fn insert_all(
    table: &mut [u32],
    sip: [u64; 2],
    keys: &[[u8; 32]],
    slots: impl ExactSizeIterator<Item = u32>,
) {
    let capacity = table.len();
    let regions = capacity / REGION;
    // A home and a slot packed in a u64 need homes below 2^32.
    if regions < 2 || u32::try_from(capacity - 1).is_err() {
        for slot in slots {
            insert(table, sip, &keys[slot as usize], slot);
        }
        return;
    }
    let shift = 32 + REGION.trailing_zeros();
    let homes: Vec<u64> = slots
        .map(|slot| ((home(sip, &keys[slot as usize], capacity) as u64) << 32) | u64::from(slot))
        .collect();
    let mut starts = vec![0usize; regions + 1];
    for packed in &homes {
        starts[(packed >> shift) as usize + 1] += 1;
    }
    for region in 0..regions {
        starts[region + 1] += starts[region];
    }
    let mut grouped = vec![0u64; homes.len()];
    for packed in &homes {
        let next = &mut starts[(packed >> shift) as usize];
        grouped[*next] = *packed;
        *next += 1;
    }
    drop(homes);
    let mask = capacity - 1;
    for packed in grouped {
        let mut at = (packed >> 32) as usize;
        while table[at] != 0 {
            at = (at + 1) & mask;
        }
        table[at] = packed as u32 + 1;
    }
}

/// Puts `slot` (whose address is `key`, not yet in the table) at the first free entry from
/// its home.
fn insert(table: &mut [u32], sip: [u64; 2], key: &[u8; 32], slot: u32) {
    let mask = table.len() - 1;
    let mut at = home(sip, key, table.len());
    while table[at] != 0 {
        at = (at + 1) & mask;
    }
    table[at] = slot + 1;
}

/// Slot lookups and the address order over a ledger's addresses (passed to each call as
/// `keys`, the ledger's address column in slot order).
#[derive(Clone, Debug)]
pub struct AddressIndex {
    base: Arc<Base>,
    added: HashMap<[u8; 32], u32>,
    added_order: BTreeSet<[u8; 32]>,
}

impl Default for AddressIndex {
    /// The index of no accounts.
    fn default() -> AddressIndex {
        AddressIndex::over(Base::build(Base::random_key(), &[], Vec::new()))
    }
}

impl AddressIndex {
    /// The index of `keys`, and each slot's successor in address order (`none` for the last).
    ///
    /// # Errors
    /// The first duplicate address.
    pub fn build(keys: &[[u8; 32]], none: u32) -> Result<(AddressIndex, Vec<u32>), [u8; 32]> {
        let mut pairs: Vec<([u8; 32], u32)> =
            keys.iter().enumerate().map(|(slot, key)| (*key, slot as u32)).collect();
        pairs.sort_unstable();
        if let Some(pair) = pairs.windows(2).find(|pair| pair[0].0 == pair[1].0) {
            return Err(pair[0].0);
        }
        let order: Vec<u32> = pairs.into_iter().map(|(_, slot)| slot).collect();
        let next = successors(&order, none);
        let base = Base::build(Base::random_key(), keys, order);
        Ok((AddressIndex::over(base), next))
    }

    /// The index whose base is `base` and whose overlay is empty.
    pub fn over(base: Base) -> AddressIndex {
        AddressIndex { base: Arc::new(base), added: HashMap::default(), added_order: BTreeSet::new() }
    }

    /// The base, folded first, so that it covers every account.
    pub fn base(&mut self, keys: &[[u8; 32]]) -> &Base {
        if !self.added.is_empty() {
            self.fold(keys);
        }
        &self.base
    }

    /// Every slot in address order, for a store to keep: the base's own when the overlay is
    /// empty, else the two merged (O(N), and no table is built).
    pub fn order(&self, keys: &[[u8; 32]]) -> std::borrow::Cow<'_, [u32]> {
        if self.added.is_empty() {
            std::borrow::Cow::Borrowed(self.base.order())
        } else {
            std::borrow::Cow::Owned(self.merged_order(keys))
        }
    }

    /// A copy that shares nothing with this index.
    pub fn unshared(&self) -> AddressIndex {
        let base = Base {
            table: Arc::new(self.base.table.to_vec()),
            order: Arc::new(self.base.order().to_vec()),
            ..(*self.base).clone()
        };
        AddressIndex { base: Arc::new(base), ..self.clone() }
    }

    /// True when this index and `other` share their base.
    pub fn shares_base(&self, other: &AddressIndex) -> bool {
        Arc::ptr_eq(&self.base, &other.base)
    }

    /// Accounts in the overlay (created since the base was built).
    pub fn overlay_len(&self) -> usize {
        self.added.len()
    }

    /// The slot of `key`, if it has one.
    pub fn slot(&self, key: &[u8; 32], keys: &[[u8; 32]]) -> Option<u32> {
        self.base.lookup(key, keys).or_else(|| self.added.get(key).copied())
    }

    /// The slot of the largest address below `key`, if any.
    pub fn predecessor(&self, key: &[u8; 32], keys: &[[u8; 32]]) -> Option<u32> {
        let at = self.base.position(key, keys, false);
        let in_base = at.checked_sub(1).map(|at| self.base.order()[at]);
        let added = self.added_order.range(..*key).next_back();
        match (in_base, added) {
            (Some(slot), Some(added)) if keys[slot as usize] > *added => Some(slot),
            (_, Some(added)) => self.added.get(added).copied(),
            (in_base, None) => in_base,
        }
    }

    /// The smallest address above `key` (which need not have an account), if any.
    pub fn successor(&self, key: &[u8; 32], keys: &[[u8; 32]]) -> Option<[u8; 32]> {
        let at = self.base.position(key, keys, true);
        let in_base = self.base.order().get(at).map(|slot| keys[*slot as usize]);
        let added =
            self.added_order.range((std::ops::Bound::Excluded(*key), std::ops::Bound::Unbounded)).next();
        match (in_base, added) {
            (Some(a), Some(b)) => Some(a.min(*b)),
            (a, b) => a.or(b.copied()),
        }
    }

    /// The slot of the smallest address, if any.
    pub fn first_slot(&self, keys: &[[u8; 32]]) -> Option<u32> {
        let in_base = self.base.order().first().copied();
        let added = self.added_order.first();
        match (in_base, added) {
            (Some(slot), Some(added)) if keys[slot as usize] < *added => Some(slot),
            (_, Some(added)) => self.added.get(added).copied(),
            (in_base, None) => in_base,
        }
    }

    /// The smallest address, if any.
    pub fn first(&self, keys: &[[u8; 32]]) -> Option<[u8; 32]> {
        self.first_slot(keys).map(|slot| keys[slot as usize])
    }

    /// Records `key` at `slot`, the last of `keys` (which already holds it). The caller has
    /// checked that `key` has no slot yet.
    pub fn insert(&mut self, key: [u8; 32], slot: u32, keys: &[[u8; 32]]) {
        debug_assert_eq!(slot as usize + 1, keys.len());
        self.added.insert(key, slot);
        self.added_order.insert(key);
        if self.added.len() >= FOLD_MIN.max(self.base.count / 8) {
            self.fold(keys);
        }
    }

    /// The base's order and the overlay's addresses merged: a search per new address, each
    /// galloping on from the last one's place in the fence, then copies.
    fn merged_order(&self, keys: &[[u8; 32]]) -> Vec<u32> {
        let count = keys.len();
        debug_assert_eq!(count, self.base.count + self.added.len());
        let base_order = self.base.order();
        let mut order = Vec::with_capacity(count);
        let (mut from, mut fenced) = (0, 0);
        for key in &self.added_order {
            let at;
            (at, fenced) = self.base.position_from(key, keys, false, fenced);
            order.extend_from_slice(&base_order[from..at]);
            order.push(self.added[key]);
            from = at;
        }
        order.extend_from_slice(&base_order[from..]);
        order
    }

    /// A new base over every slot of `keys`: the overlay merged into the base.
    fn fold(&mut self, keys: &[[u8; 32]]) {
        let order = self.merged_order(keys);
        let key = self.base.key;
        let base = if capacity_for(keys.len()) == self.base.capacity() {
            let mut table = self.base.table.to_vec();
            insert_all(&mut table, key, keys, self.added.values().copied());
            Base {
                key,
                count: keys.len(),
                table: Arc::new(table),
                order: Arc::new(order),
                fence: OnceLock::new(),
            }
        } else {
            Base::build(key, keys, order)
        };
        *self = AddressIndex::over(base);
    }
}

/// Each slot's successor in `order` (slots by address), `none` for the last.
pub fn successors(order: &[u32], none: u32) -> Vec<u32> {
    let mut next = vec![none; order.len()];
    for pair in order.windows(2) {
        next[pair[0] as usize] = pair[1];
    }
    next
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Distinct addresses; a third of them share their first 8 bytes, as ground ones can.
    fn address(n: u64) -> [u8; 32] {
        let mut address = *blake3::hash(&n.to_le_bytes()).as_bytes();
        if n.is_multiple_of(3) {
            address[..8].fill(0x42);
        }
        address
    }

    /// The index answers as a sorted set would, across folds, at every size from empty.
    #[test]
    fn lookups_and_order_match_a_sorted_set_across_folds() {
        let mut keys: Vec<[u8; 32]> = (0..1000).map(address).collect();
        let (mut index, next) = AddressIndex::build(&keys, u32::MAX).unwrap();
        let mut sorted: Vec<[u8; 32]> = keys.clone();
        sorted.sort_unstable();
        assert_eq!(keys[index.first_slot(&keys).unwrap() as usize], sorted[0]);
        assert_eq!(next.iter().filter(|next| **next == u32::MAX).count(), 1);
        let mut folds = 0;
        for n in 1000..1000 + 3 * FOLD_MIN as u64 {
            let key = address(n);
            assert_eq!(index.slot(&key, &keys), None);
            let below = sorted.partition_point(|other| *other < key);
            let expected = below.checked_sub(1).map(|at| sorted[at]);
            assert_eq!(index.predecessor(&key, &keys).map(|slot| keys[slot as usize]), expected);
            assert_eq!(index.successor(&key, &keys), sorted.get(below).copied());
            keys.push(key);
            sorted.insert(below, key);
            let before = index.overlay_len();
            index.insert(key, keys.len() as u32 - 1, &keys);
            folds += usize::from(index.overlay_len() < before);
            if n.is_multiple_of(97) || n.is_multiple_of(1000) {
                for (slot, key) in keys.iter().enumerate().step_by(13) {
                    assert_eq!(index.slot(key, &keys), Some(slot as u32));
                }
                assert_eq!(index.first(&keys), Some(sorted[0]));
                assert_eq!(index.successor(&sorted[5], &keys), Some(sorted[6]));
                let below = index.predecessor(&sorted[5], &keys).map(|slot| keys[slot as usize]);
                assert_eq!(below, Some(sorted[4]), "an address's predecessor is below it, not it");
            }
        }
        assert_eq!(folds, 3, "folded at each FOLD_MIN creations");
        // A few more, left in the overlay: the base a store keeps covers them too.
        for n in 0..5u64 {
            let key = address(1_000_000 + n);
            keys.push(key);
            sorted.insert(sorted.partition_point(|other| *other < key), key);
            index.insert(key, keys.len() as u32 - 1, &keys);
        }
        assert_eq!(index.overlay_len(), 5);
        let copy = index.clone();
        assert!(copy.shares_base(&index), "a clone shares the base");
        let deep = index.unshared();
        assert!(!deep.shares_base(&index));
        assert_ne!(deep.base.table.as_ptr(), index.base.table.as_ptr(), "nor its table");
        assert_ne!(deep.base.order().as_ptr(), index.base.order().as_ptr(), "nor its order");
        // The order a store keeps covers the overlay without folding it.
        let merged = index.order(&keys).into_owned();
        assert_eq!(index.overlay_len(), 5);
        let base = index.base(&keys).clone();
        assert_eq!(base.count(), keys.len());
        assert_eq!(base.order(), merged);
        assert!(matches!(index.order(&keys), std::borrow::Cow::Borrowed(_)), "no overlay, no copy");
        let by_order: Vec<[u8; 32]> = base.order().iter().map(|slot| keys[*slot as usize]).collect();
        assert_eq!(by_order, sorted);
    }

    /// A table built a region at a time holds each slot once, and every address is found from
    /// its home, as in a table built slot by slot; so is every address added by a fold.
    #[test]
    fn a_table_built_region_by_region_finds_every_address() {
        // 40,000 and then 45,000 addresses take one table size: the fold inserts into a copy.
        let keys: Vec<[u8; 32]> = (0..40_000).map(address).collect();
        let sip = Base::random_key();
        let mut grouped = vec![0u32; capacity_for(keys.len())];
        assert!(grouped.len() / REGION >= 8, "several regions");
        insert_all(&mut grouped, sip, &keys, 0..keys.len() as u32);
        let mut one_by_one = vec![0u32; grouped.len()];
        for (slot, key) in keys.iter().enumerate() {
            insert(&mut one_by_one, sip, key, slot as u32);
        }
        let sorted = |table: &[u32]| {
            let mut entries: Vec<u32> = table.iter().copied().filter(|entry| *entry != 0).collect();
            entries.sort_unstable();
            entries
        };
        assert_eq!(sorted(&grouped), (1..=keys.len() as u32).collect::<Vec<u32>>());
        assert_eq!(sorted(&one_by_one), sorted(&grouped));
        let (mut index, _) = AddressIndex::build(&keys, u32::MAX).unwrap();
        for (slot, key) in keys.iter().enumerate() {
            assert_eq!(index.slot(key, &keys), Some(slot as u32));
        }
        let mut keys = keys;
        let capacity = index.base.capacity();
        for n in 0..5_000u64 {
            keys.push(address(1_000_000 + n));
            index.insert(keys[keys.len() - 1], keys.len() as u32 - 1, &keys);
        }
        assert_eq!((index.overlay_len(), index.base.capacity()), (0, capacity), "folded, same size");
        for (slot, key) in keys.iter().enumerate() {
            assert_eq!(index.slot(key, &keys), Some(slot as u32));
        }
        assert_eq!(index.slot(&address(2_000_000), &keys), None);
    }

    /// A large base folds its overlay at an eighth of its size, not at FOLD_MIN.
    #[test]
    fn a_large_base_folds_at_an_eighth_of_its_size() {
        let mut keys: Vec<[u8; 32]> = (0..40_000).map(address).collect();
        let (mut index, _) = AddressIndex::build(&keys, u32::MAX).unwrap();
        for n in 0..5_000u64 {
            keys.push(address(100_000 + n));
            index.insert(keys[keys.len() - 1], keys.len() as u32 - 1, &keys);
            let expected = if n < 4_999 { n as usize + 1 } else { 0 };
            assert_eq!(index.overlay_len(), expected, "after {} creations", n + 1);
        }
    }

    /// Each index draws its own table key, so no client can aim at one layout; the answers do
    /// not depend on it.
    #[test]
    fn each_index_draws_its_own_table_key() {
        let keys: Vec<[u8; 32]> = (0..100).map(address).collect();
        let (mut one, _) = AddressIndex::build(&keys, u32::MAX).unwrap();
        let (mut two, _) = AddressIndex::build(&keys, u32::MAX).unwrap();
        let (one, two) = (one.base(&keys).clone(), two.base(&keys).clone());
        assert_ne!(one.key(), two.key());
        assert_ne!(one.key()[0], one.key()[1]);
        assert_ne!(one.table(), two.table(), "the same addresses sit elsewhere");
        assert_eq!(one.order(), two.order());
    }

    /// A stored order makes the same index, its table under a fresh key; an order that is not
    /// each slot once is refused.
    #[test]
    fn a_stored_order_makes_the_same_index_and_damage_is_refused() {
        let keys: Vec<[u8; 32]> = (0..300).map(address).collect();
        let (mut index, _) = AddressIndex::build(&keys, u32::MAX).unwrap();
        let base = index.base(&keys).clone();
        assert_eq!(base.capacity(), 1024, "the power of two at or above twice the count");
        let stored = Base::from_order(&keys, base.order().to_vec()).unwrap();
        assert_ne!(stored.key(), base.key(), "the table is built under a key of its own");
        assert_eq!(stored.capacity(), base.capacity());
        assert_eq!(stored.order(), base.order());
        let mapped = AddressIndex::over(stored);
        for (slot, key) in keys.iter().enumerate() {
            assert_eq!(mapped.slot(key, &keys), Some(slot as u32));
        }
        assert_eq!(mapped.slot(&address(300), &keys), None);
        assert_eq!(mapped.successor(&keys[0], &keys), index.successor(&keys[0], &keys));
        let damaged = |change: &dyn Fn(&mut Vec<u32>)| {
            let mut words = base.order().to_vec();
            change(&mut words);
            Base::from_order(&keys, words).map(|_| ())
        };
        assert_eq!(damaged(&|words| words[7] = words[8]), Err(BaseError::Order { count: 300 }));
        assert_eq!(damaged(&|words| words[7] = 300), Err(BaseError::Order { count: 300 }));
        assert_eq!(damaged(&|words| words[7] = u32::MAX), Err(BaseError::Order { count: 300 }));
        assert_eq!(damaged(&|words| words.truncate(299)), Err(BaseError::Length { words: 299, count: 300 }));
        assert_eq!(damaged(&|words| words.push(0)), Err(BaseError::Length { words: 301, count: 300 }));
        // Misordered but each slot once: a base (the state root refuses it), whose lookups
        // still find every account, since the table is built from the addresses.
        let swapped = Base::from_order(&keys, base.order().iter().rev().copied().collect());
        let swapped = AddressIndex::over(swapped.unwrap());
        assert_eq!(swapped.slot(&keys[17], &keys), Some(17));
        assert!(Base::from_order(&[], Vec::new()).is_ok(), "no accounts");
    }
}
