//! The ledger's address index: the slot that holds an address, and the addresses in order.
//!
//! Two parts:
//!
//! - The **base** covers the slots below its count and never changes once built. It is two flat
//!   arrays of `u32`: an open-addressing table of slots (linear probing, at most half full, each
//!   entry a slot plus one so that 0 is empty), hashed by SipHash-1-3 under a random 128-bit key,
//!   and the base's slots sorted by address. Flat words and a hash whose output is fixed by its
//!   specification are what let a data directory store the base and a restart map it instead of
//!   rebuilding it ([`Base::words`], [`Base::from_words`]). A lookup compares the address stored
//!   at the slot it finds, so no entry can name the wrong account.
//! - The **overlay** holds the accounts created since: a hash map and a B-tree set. Once it
//!   holds an eighth of the base (and at least [`FOLD_MIN`] accounts) it is folded into a new
//!   base: the order merged (a binary search per new address, then copies), the table copied
//!   with the new slots inserted, or rebuilt at twice the size when it would pass half full.
//!   A fold costs O(N) memory traffic once per N/8 creations, O(1) amortized per account.
//!
//! Why not a `HashMap` and a `BTreeSet` for everything, as before: at ten million accounts they
//! held ~100 bytes per account between them, and a restart rebuilt both, sorting every address.
//! The base holds 12 bytes per account at most (8 of table, 4 of order); a store that keeps it
//! maps it, so a restart sorts nothing, and the kernel may page it out.

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

/// Words of a base that lives outside this process's heap: a store's mapped file.
pub trait Mapped: std::fmt::Debug + Send + Sync {
    /// The words, 4-byte aligned.
    fn words(&self) -> &[u32];
}

/// A base's words: its own, or a mapped file's.
#[derive(Clone, Debug)]
enum Words {
    Owned(Arc<Vec<u32>>),
    Mapped(Arc<dyn Mapped>),
}

impl Words {
    fn all(&self) -> &[u32] {
        match self {
            Words::Owned(words) => words,
            Words::Mapped(mapped) => mapped.words(),
        }
    }
}

/// The immutable part of an [`AddressIndex`]: a slot table and the slots in address order, for
/// the slots below `count`. Its words are the table (`capacity` entries) then the order
/// (`count` entries).
#[derive(Clone, Debug)]
pub struct Base {
    key: [u64; 2],
    count: usize,
    capacity: usize,
    words: Words,
    /// The first 8 bytes (big-endian) of the address of every [`FENCE_STEP`]-th slot of the
    /// order, built on first use: a search looks here first (a compact array of integers),
    /// then among [`FENCE_STEP`] slots of the order, so it reads a few scattered addresses
    /// instead of log2(N). Equal prefixes (which a client can grind) fall back to the whole
    /// address.
    fence: OnceLock<Arc<Vec<u64>>>,
}

/// Slots of the order between two fence entries.
const FENCE_STEP: usize = 32;

/// Why stored words do not make a base.
#[derive(Debug, PartialEq, Eq, thiserror::Error)]
pub enum BaseError {
    /// A table size that is not a power of two at least twice the count.
    #[error("index table of {capacity} entries cannot hold {count} accounts at most half full")]
    Capacity {
        /// Entries in the table.
        capacity: usize,
        /// Accounts the base covers.
        count: usize,
    },
    /// Words that are not exactly the table and the order.
    #[error("index holds {words} words, its table and order need {expected}")]
    Length {
        /// Words given.
        words: usize,
        /// `capacity + count`.
        expected: usize,
    },
    /// A table whose entries are not each slot once.
    #[error("index table does not hold each of its {count} slots exactly once")]
    Table {
        /// Accounts the base covers.
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
    /// when an index is built from addresses, then kept by every fold and by the stored base
    /// (so whoever can read a data directory knows its key). It decides where entries sit,
    /// never what a lookup answers, so no result depends on it.
    fn random_key() -> [u64; 2] {
        let state = RandomState::new();
        [state.hash_one(0x7465_7373_6572_6131_u64), state.hash_one(0x7465_7373_6572_6132_u64)]
    }

    fn home(&self, key: &[u8; 32]) -> usize {
        home(self.key, key, self.capacity)
    }

    fn table(&self) -> &[u32] {
        &self.words.all()[..self.capacity]
    }

    /// The slots in address order.
    pub fn order(&self) -> &[u32] {
        &self.words.all()[self.capacity..]
    }

    /// Accounts this base covers (slots `0..count`).
    pub fn count(&self) -> usize {
        self.count
    }

    /// Entries in the table.
    pub fn capacity(&self) -> usize {
        self.capacity
    }

    /// The SipHash key of the table.
    pub fn key(&self) -> [u64; 2] {
        self.key
    }

    /// The table then the order, as stored.
    pub fn words(&self) -> &[u32] {
        self.words.all()
    }

    /// A base over stored words (a table of `capacity` entries, then the order), checked: the
    /// table holds each slot below `count` once and is at most half full, and the order holds
    /// each slot once. Whether the order is by address and each entry sits where its address
    /// hashes is not checked here: a store keeps the words under a checksum, and the state
    /// root, which commits to each account's successor, checks the order.
    ///
    /// # Errors
    /// The first way the words are not a base.
    pub fn from_words(
        key: [u64; 2],
        count: usize,
        capacity: usize,
        words: Arc<dyn Mapped>,
    ) -> Result<Base, BaseError> {
        if !capacity.is_power_of_two() || capacity < count.saturating_mul(2) {
            return Err(BaseError::Capacity { capacity, count });
        }
        let expected = capacity + count;
        if words.words().len() != expected {
            return Err(BaseError::Length { words: words.words().len(), expected });
        }
        let base = Base { key, count, capacity, words: Words::Mapped(words), fence: OnceLock::new() };
        let mut seen = vec![false; count];
        for entry in base.table().iter().filter(|entry| **entry != 0) {
            match seen.get_mut(*entry as usize - 1) {
                Some(seen) if !*seen => *seen = true,
                _ => return Err(BaseError::Table { count }),
            }
        }
        if seen.iter().any(|seen| !seen) {
            return Err(BaseError::Table { count });
        }
        seen.fill(false);
        for slot in base.order() {
            match seen.get_mut(*slot as usize) {
                Some(seen) if !*seen => *seen = true,
                _ => return Err(BaseError::Order { count }),
            }
        }
        Ok(base)
    }

    /// The base over `order` (the slots of `keys`, sorted by address), its table built here.
    fn build(key: [u64; 2], keys: &[[u8; 32]], order: Vec<u32>) -> Base {
        let count = order.len();
        let capacity = capacity_for(count);
        let mut words = vec![0u32; capacity];
        for slot in 0..count as u32 {
            insert(&mut words, key, &keys[slot as usize], slot);
        }
        words.extend_from_slice(&order);
        Base { key, count, capacity, words: Words::Owned(Arc::new(words)), fence: OnceLock::new() }
    }

    /// True when every entry of the table sits where a lookup of its address reaches it: no
    /// empty entry between the address's home and the entry. [`Base::from_words`] checks the
    /// table's shape; this checks its placement, which the state root does not cover (a
    /// stored table that failed it would hide accounts, and a transfer to a hidden address
    /// would create it twice). O(N): a hash and a read of the address per account.
    pub fn placed(&self, keys: &[[u8; 32]]) -> bool {
        let table = self.table();
        let mask = self.capacity - 1;
        let Some(empty) = table.iter().position(|entry| *entry == 0) else { return false };
        // Walk once round from just past an empty entry; `run` is where the current run of
        // entries began.
        let mut run = (empty + 1) & mask;
        for step in 1..=self.capacity {
            let at = (empty + step) & mask;
            let Some(slot) = table[at].checked_sub(1) else {
                run = (at + 1) & mask;
                continue;
            };
            let Some(key) = keys.get(slot as usize) else { return false };
            let home = self.home(key);
            if (at.wrapping_sub(home) & mask) > (at.wrapping_sub(run) & mask) {
                return false;
            }
        }
        true
    }

    /// The slot of `key` among the base's, if it has one.
    fn lookup(&self, key: &[u8; 32], keys: &[[u8; 32]]) -> Option<u32> {
        let table = self.table();
        let mask = self.capacity - 1;
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
        let (mut fenced, mut high) = (0, fence.len());
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
        low + order[low..high].partition_point(|slot| below(&keys[*slot as usize]))
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

    /// The base, for a store to keep: folded first, so that it covers every account.
    pub fn base(&mut self, keys: &[[u8; 32]]) -> &Base {
        if !self.added.is_empty() {
            self.fold(keys);
        }
        &self.base
    }

    /// A copy that shares nothing with this index.
    pub fn unshared(&self) -> AddressIndex {
        let base = Base { words: Words::Owned(Arc::new(self.base.words().to_vec())), ..(*self.base).clone() };
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

    /// A new base over every slot of `keys`: the overlay merged into the base.
    fn fold(&mut self, keys: &[[u8; 32]]) {
        let count = keys.len();
        debug_assert_eq!(count, self.base.count + self.added.len());
        let base_order = self.base.order();
        let mut order = Vec::with_capacity(count);
        let mut from = 0;
        for key in &self.added_order {
            let at = from + base_order[from..].partition_point(|slot| keys[*slot as usize] < *key);
            order.extend_from_slice(&base_order[from..at]);
            order.push(self.added[key]);
            from = at;
        }
        order.extend_from_slice(&base_order[from..]);
        let key = self.base.key;
        let base = if capacity_for(count) == self.base.capacity {
            let mut words = Vec::with_capacity(self.base.capacity + count);
            words.extend_from_slice(self.base.table());
            for (address, slot) in &self.added {
                insert(&mut words, key, address, *slot);
            }
            words.extend_from_slice(&order);
            Base {
                key,
                count,
                capacity: self.base.capacity,
                words: Words::Owned(Arc::new(words)),
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

    #[derive(Debug)]
    struct Words(Vec<u32>);

    impl Mapped for Words {
        fn words(&self) -> &[u32] {
            &self.0
        }
    }

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
        assert_ne!(deep.base.words().as_ptr(), index.base.words().as_ptr(), "and its words");
        let base = index.base(&keys).clone();
        assert_eq!(base.count(), keys.len());
        let order = &base.words()[base.capacity..];
        let by_order: Vec<[u8; 32]> = order.iter().map(|slot| keys[*slot as usize]).collect();
        assert_eq!(by_order, sorted);
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
        assert_ne!(one.words(), two.words(), "the same addresses sit elsewhere");
        assert_eq!(one.order(), two.order());
    }

    /// Stored words make the same index; words that are not a base are refused.
    #[test]
    fn stored_words_round_trip_and_damage_is_refused() {
        let keys: Vec<[u8; 32]> = (0..300).map(address).collect();
        let keys_300 = keys.clone();
        let (mut index, _) = AddressIndex::build(&keys, u32::MAX).unwrap();
        let base = index.base(&keys).clone();
        assert_eq!(base.capacity(), 1024, "the power of two at or above twice the count");
        let stored =
            Base::from_words(base.key(), 300, base.capacity(), Arc::new(Words(base.words().to_vec())));
        let mapped = AddressIndex::over(stored.unwrap());
        for (slot, key) in keys.iter().enumerate() {
            assert_eq!(mapped.slot(key, &keys), Some(slot as u32));
        }
        assert_eq!(mapped.slot(&address(300), &keys), None);
        let damaged = |change: &dyn Fn(&mut Vec<u32>)| {
            let mut words = base.words().to_vec();
            change(&mut words);
            Base::from_words(base.key(), 300, base.capacity, Arc::new(Words(words))).map(|_| ())
        };
        let table_entry = base.words().iter().position(|word| *word != 0).unwrap();
        assert_eq!(damaged(&|words| words[table_entry] = 0), Err(BaseError::Table { count: 300 }));
        assert_eq!(damaged(&|words| words[table_entry] = 301), Err(BaseError::Table { count: 300 }));
        // Every slot there, and one of them twice.
        let empty = base.words()[..base.capacity()].iter().position(|word| *word == 0).unwrap();
        assert_eq!(damaged(&|words| words[empty] = words[table_entry]), Err(BaseError::Table { count: 300 }));
        let last = base.words().len() - 1;
        assert_eq!(damaged(&|words| words[last] = words[last - 1]), Err(BaseError::Order { count: 300 }));
        assert_eq!(
            damaged(&|words| words.truncate(last)),
            Err(BaseError::Length { words: last, expected: last + 1 })
        );
        // Exactly half full is allowed.
        let keys: Vec<[u8; 32]> = (0..256).map(address).collect();
        let (mut index, _) = AddressIndex::build(&keys, u32::MAX).unwrap();
        let half = index.base(&keys).clone();
        assert_eq!(half.capacity(), 512);
        let stored = Base::from_words(half.key(), 256, 512, Arc::new(Words(half.words().to_vec())));
        assert!(stored.is_ok(), "a table exactly half full");
        // Placement: the stored table places each entry where a lookup finds it; one moved to
        // the empty entry just before its home has the right shape but hides its account.
        assert!(base.placed(&keys_300));
        let table = &base.words()[..base.capacity()];
        let mask = base.capacity() - 1;
        let (from, to) = table
            .iter()
            .enumerate()
            .filter(|(_, entry)| **entry != 0)
            .map(|(at, entry)| (at, base.home(&keys_300[*entry as usize - 1]).wrapping_sub(1) & mask))
            .find(|(_, before)| table[*before] == 0)
            .expect("an entry whose home follows an empty entry");
        let mut words = base.words().to_vec();
        words.swap(from, to);
        let moved = Base::from_words(base.key(), 300, base.capacity(), Arc::new(Words(words))).unwrap();
        assert!(!moved.placed(&keys_300));
        let hidden = keys_300[table[from] as usize - 1];
        assert_eq!(AddressIndex::over(moved).slot(&hidden, &keys_300), None, "the account it hides");
        let small = Base::from_words(base.key(), 300, 512, Arc::new(Words(vec![0; 812])));
        assert_eq!(small.map(|_| ()), Err(BaseError::Capacity { capacity: 512, count: 300 }));
    }
}
