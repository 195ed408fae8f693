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
//! - The **overlay** holds the accounts created since: a hash table of their slots (4 bytes
//!   each, found by a hash of the address and compared with `keys`) and a B-tree set. Once it
//!   holds an eighth of the base (and at least [`FOLD_MIN`] accounts) a fold into a new base
//!   begins: the order merged (a galloping search per new address, then copies), the new
//!   slots placed in the table (in the base's own table when no clone of the index shares it,
//!   as in a node; else in a copy of it), or the table rebuilt at twice the size when it would
//!   pass half full. A fold costs O(N) memory traffic once per N/8 creations, and it is done a step at a
//!   time by the creations that follow ([`Folding`]): O(1) amortized per account, and each
//!   creation does at most a step of it, whatever the new addresses are. (Done whole by one
//!   creation, it stopped a block for about 0.7 s at ten million accounts, once per 1.25
//!   million creations, which anyone can pay for with 1-unit transfers.) While a fold is
//!   under way the old base and the next one's arrays (its order, and a table unless the fold
//!   is in place) are both held, for N/16 creations.
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
use std::sync::Arc;

use siphasher::sip::SipHasher13;

use crate::kernels::prefetch::prefetch;

/// Fewest accounts the overlay holds before it is folded into the base.
pub const FOLD_MIN: usize = 1 << 12;

/// Accounts an overlay over a base of `count` holds when its fold begins (an eighth of the
/// base, at least [`FOLD_MIN`]), and at most while the fold before it runs.
fn fold_threshold(count: usize) -> usize {
    FOLD_MIN.max(count / 8)
}

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
    /// order, built with the base (a fold builds it as it merges): a search looks here first (a compact array of integers),
    /// then among [`FENCE_STEP`] slots of the order, so it reads a few scattered addresses
    /// instead of log2(N). Equal prefixes (which a client can grind) fall back to the whole
    /// address.
    fence: Arc<Vec<u64>>,
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

/// An order that holds each of the slots `0..len` exactly once: checked once, by
/// [`check_order`], or made so by [`merge_added`]. Whether it is sorted by address is not
/// known from it; the state root tells.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct CheckedOrder(Vec<u32>);

impl CheckedOrder {
    /// The slots.
    pub fn as_slice(&self) -> &[u32] {
        &self.0
    }
}

/// Checks that a stored `order` holds each of the slots `0..count` exactly once (its shape;
/// whether it is sorted, the state root tells).
///
/// # Errors
/// The first way it does not.
pub fn check_order(order: Vec<u32>, count: usize) -> Result<CheckedOrder, BaseError> {
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
    Ok(CheckedOrder(order))
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
        Base::from_checked(keys, check_order(order, keys.len())?)
    }

    /// [`Base::from_order`] for an order already checked: not checked again.
    ///
    /// # Errors
    /// An order of another length than `keys`.
    pub fn from_checked(keys: &[[u8; 32]], order: CheckedOrder) -> Result<Base, BaseError> {
        if order.0.len() != keys.len() {
            return Err(BaseError::Length { words: order.0.len(), count: keys.len() });
        }
        Ok(Base::build(Base::random_key(), keys, order.0))
    }

    /// The base over `order` (the slots of `keys`, sorted by address), its table built here.
    fn build(key: [u64; 2], keys: &[[u8; 32]], order: Vec<u32>) -> Base {
        let count = order.len();
        let mut table = vec![0u32; capacity_for(count)];
        insert_all(&mut table, key, keys, 0..count as u32);
        let fence = Arc::new(fence_of(&order, keys));
        Base { key, count, table: Arc::new(table), order: Arc::new(order), fence }
    }

    /// The slot of `key` among the base's, if it has one.
    fn lookup(&self, key: &[u8; 32], keys: &[[u8; 32]]) -> Option<u32> {
        self.lookup_from(self.home(key), key, keys)
    }

    /// [`Base::lookup`], the probe begun at `key`'s home.
    fn lookup_from(&self, home: usize, key: &[u8; 32], keys: &[[u8; 32]]) -> Option<u32> {
        let table = self.table();
        let mask = table.len() - 1;
        let mut at = home;
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
        position_in(self.order(), &self.fence, key, keys, strict, from)
    }
}

/// [`Base::position_from`] in `order` under its `fence` ([`fence_of`]).
fn position_in(
    order: &[u32],
    fence: &[u64],
    key: &[u8; 32],
    keys: &[[u8; 32]],
    strict: bool,
    from: usize,
) -> (usize, usize) {
    let key_prefix = prefix(key);
    // Integers first: the whole addresses only when their prefixes tie.
    let below = |address: &[u8; 32]| match prefix(address).cmp(&key_prefix) {
        std::cmp::Ordering::Less => true,
        std::cmp::Ordering::Greater => false,
        std::cmp::Ordering::Equal if strict => address <= key,
        std::cmp::Ordering::Equal => address < key,
    };
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

/// The fence of `order` ([`Base::fence`]): a random read of an address per [`FENCE_STEP`]
/// slots.
fn fence_of(order: &[u32], keys: &[[u8; 32]]) -> Vec<u64> {
    order.iter().step_by(FENCE_STEP).map(|slot| prefix(&keys[*slot as usize])).collect()
}

/// `order` (the slots `0..order.len()` of `keys`, sorted by address) with the slots after
/// them (`order.len()..keys.len()`, created since, in any order) merged in, each slot once: the order a fold
/// would reach, in one pass, for a restart that applies a state log's creations at once. The
/// added addresses are sorted; each is then placed by a search that gallops on from the last
/// one's place in a fence built here, so the cost is a copy of the order, a read at random
/// per [`FENCE_STEP`] slots, and a few reads per added address.
///
/// # Errors
/// An address added twice, or added though the order holds it: no state has two accounts at
/// one address.
///
/// # Panics
/// If `order` holds more slots than `keys` (a caller bug).
pub fn merge_added(order: &CheckedOrder, keys: &[[u8; 32]]) -> Result<CheckedOrder, [u8; 32]> {
    let order = order.as_slice();
    let count = order.len();
    assert!(count <= keys.len(), "an order of more slots than addresses");
    let slots = u32::try_from(keys.len()).expect("a ledger holds fewer than 2^32 accounts");
    let added = by_address(keys, count as u32..slots)?;
    merge_sorted(
        order,
        &fence_of(order, keys),
        keys,
        added.iter().map(|slot| (&keys[*slot as usize], *slot)),
        keys.len(),
    )
    .map(CheckedOrder)
}

/// `order` under its `fence` with `added` (addresses ascending, none in `order`, and their
/// slots) merged in, `count` slots in all: a search per added address, galloping on from the
/// last one's place in the fence, then copies. `Err` names an added address that `order`
/// holds.
fn merge_sorted<'k>(
    order: &[u32],
    fence: &[u64],
    keys: &[[u8; 32]],
    added: impl Iterator<Item = (&'k [u8; 32], u32)>,
    count: usize,
) -> Result<Vec<u32>, [u8; 32]> {
    let mut merged = Vec::with_capacity(count);
    let (mut from, mut fenced) = (0, 0);
    for (key, slot) in added {
        let at;
        (at, fenced) = position_in(order, fence, key, keys, false, fenced);
        // Never behind the last place. It cannot be for ascending addresses (each search's
        // tests are at least as often true as the last one's, even in an order that is not
        // sorted); kept so that the slices below hold whatever the order.
        let at = at.max(from);
        if order.get(at).is_some_and(|held| keys[*held as usize] == *key) {
            return Err(*key);
        }
        merged.extend_from_slice(&order[from..at]);
        merged.push(slot);
        from = at;
    }
    merged.extend_from_slice(&order[from..]);
    Ok(merged)
}

/// The first 8 bytes of an address, as an integer that orders as the address does.
fn prefix(key: &[u8; 32]) -> u64 {
    u64::from_be_bytes(key[..8].try_into().expect("8 bytes"))
}

/// `slots` of `keys` in address order: sorted on every core by the first
/// eight bytes as an integer (16-byte pairs, compared as integers), then each run of equal
/// prefixes by the whole address, instead of a sort of 36-byte pairs compared by `memcmp`
/// (genesis of ten million accounts in `tessera bench state`: 2.40–2.59 s before, 2.08–2.18 s
/// after). Random addresses almost never share a prefix; ground ones can, and then their run
/// costs what a sort of whole addresses would.
///
/// # Errors
/// The first address two slots hold (equal addresses share their prefix, so they meet in a run).
fn by_address(keys: &[[u8; 32]], slots: std::ops::Range<u32>) -> Result<Vec<u32>, [u8; 32]> {
    let mut pairs: Vec<(u64, u32)> = slots.map(|slot| (prefix(&keys[slot as usize]), slot)).collect();
    // Pairs are distinct (slots are), so any sort gives one order.
    rayon::slice::ParallelSliceMut::par_sort_unstable(&mut pairs[..]);
    let mut start = 0;
    while start < pairs.len() {
        let run = pairs[start..].iter().take_while(|pair| pair.0 == pairs[start].0).count();
        if run > 1 {
            sort_run(&mut pairs[start..start + run], keys)?;
        }
        start += run;
    }
    Ok(pairs.into_iter().map(|(_, slot)| slot).collect())
}

/// Sorts `run` (pairs whose prefixes tie) by whole address; the first address two of them
/// hold is the error. Random addresses almost never tie, so runs are rare and short; a long
/// one is what someone who chose many addresses with one prefix makes (a transfer creates an
/// account at any address, for its fee). Either is sorted as address and slot pairs held
/// inline, on every core for a long run, so it costs what the sort of whole addresses did
/// before prefixes, not a random read of each address per comparison.
fn sort_run(run: &mut [(u64, u32)], keys: &[[u8; 32]]) -> Result<(), [u8; 32]> {
    let mut whole: Vec<([u8; 32], u32)> = run.iter().map(|(_, slot)| (keys[*slot as usize], *slot)).collect();
    rayon::slice::ParallelSliceMut::par_sort_unstable(&mut whole[..]);
    if let Some(pair) = whole.windows(2).find(|pair| pair[0].0 == pair[1].0) {
        return Err(pair[0].0);
    }
    for (pair, (_, slot)) in run.iter_mut().zip(whole) {
        pair.1 = slot;
    }
    Ok(())
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
    // A home and a slot packed in a u64 need homes below 2^32; and grouping fewer slots than
    // there are regions costs more than it saves.
    if regions < 2 || slots.len() < regions || u32::try_from(capacity - 1).is_err() {
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
    /// A fold under way: the accounts it adds to the base, and the next base as built so far.
    folding: Option<Box<Folding>>,
    /// Accounts created since the base, and since the fold under way began if one is.
    added: Overlay,
}

/// Accounts created since a base was built: their slots by address, and their addresses in
/// order. Their slots follow one another, from the base's count up.
///
/// The slots are kept bare (4 bytes each, and a byte of the table's own) and found by a hash of
/// the address, each compared with the address its slot names in the ledger's `keys`. A map of
/// address to slot held 36 bytes an entry: at ten million accounts its room for an eighth of
/// them was 72 MB, whose pages the first creations after a fold began faulted in one by one, at
/// random, nearly one a creation (blocks of 45–72 ms when faults were dear).
#[derive(Clone, Debug, Default)]
struct Overlay {
    slots: hashbrown::HashTable<u32>,
    hasher: foldhash::fast::RandomState,
    order: BTreeSet<[u8; 32]>,
}

impl Overlay {
    fn len(&self) -> usize {
        self.slots.len()
    }

    /// The slot of `key`, if this overlay holds it (`keys`: every address, by slot).
    fn slot(&self, key: &[u8; 32], keys: &[[u8; 32]]) -> Option<u32> {
        let hash = self.hasher.hash_one(key);
        self.slots.find(hash, |slot| keys[*slot as usize] == *key).copied()
    }

    /// The slot of an address this overlay holds.
    fn slot_of(&self, key: &[u8; 32], keys: &[[u8; 32]]) -> u32 {
        self.slot(key, keys).expect("an address in the order has a slot")
    }

    /// Records `key` at `slot` (`keys[slot]`); the caller has checked it has none.
    fn insert(&mut self, key: [u8; 32], slot: u32, keys: &[[u8; 32]]) {
        let hasher = &self.hasher;
        self.slots.insert_unique(hasher.hash_one(key), slot, |slot| hasher.hash_one(keys[*slot as usize]));
        self.order.insert(key);
    }

    /// Takes room for `additional` more slots at once.
    fn reserve(&mut self, additional: usize, keys: &[[u8; 32]]) {
        let hasher = &self.hasher;
        self.slots.reserve(additional, |slot| hasher.hash_one(keys[*slot as usize]));
    }

    /// The largest address below `key`, with its slot.
    fn below(&self, key: &[u8; 32], keys: &[[u8; 32]]) -> Option<([u8; 32], u32)> {
        let address = *self.order.range(..*key).next_back()?;
        Some((address, self.slot_of(&address, keys)))
    }

    /// The smallest address above `key`.
    fn above(&self, key: &[u8; 32]) -> Option<[u8; 32]> {
        self.order.range((std::ops::Bound::Excluded(*key), std::ops::Bound::Unbounded)).next().copied()
    }

    /// The smallest address, with its slot.
    fn first(&self, keys: &[[u8; 32]]) -> Option<([u8; 32], u32)> {
        let address = *self.order.first()?;
        Some((address, self.slot_of(&address, keys)))
    }
}

/// A unit of a fold's work is about one read of memory at random (a few hundred nanoseconds at
/// ten million accounts): placing one slot in the table, copying this many words of the old
/// table (128 bytes: the new table's pages are fresh, and each costs a fault as the copy first
/// writes it, about 11 µs a 4 KiB page in one timed build when the kernel gave no huge
/// pages), or copying this many entries of the old order (each [`FENCE_STEP`]-th of which
/// reads its address at random, for the new fence).
const TABLE_COPY_UNIT: usize = 1 << 5;
const ORDER_COPY_UNIT: usize = FENCE_STEP;

/// Units of a search for an overlay address's place in the old order (a few reads at random).
const SEARCH_UNITS: usize = 4;

/// A fold's work is done in steps of at least this many units, so that the table is filled
/// a group of slots at a time: a few tenths of a millisecond each.
const STEP_UNITS: usize = 1 << 10;

/// A fold under way: the next base, built a step at a time as accounts are created, so that
/// no creation pays for the whole of it. It begins when the overlay reaches an eighth of the
/// base (the overlay is frozen into `added`, and a new one starts), and each later creation
/// adds [`Folding::quota`] units of credit; once the credit reaches a step, a step of that
/// many units is done. The quota is chosen so that the fold ends after about half as many
/// creations as the frozen overlay holds, well before the new overlay reaches its own
/// threshold. Until it ends, lookups ask the old base, then the frozen overlay, then the new
/// one, and get the same answers.
#[derive(Clone, Debug)]
struct Folding {
    /// The accounts this fold adds: slots `count - added.len()..count`.
    added: Overlay,
    /// Accounts the next base covers.
    count: usize,
    /// Where the next base's table is built.
    mode: TableMode,
    /// The next base's table when it is not the old one ([`TableMode::Copy`],
    /// [`TableMode::Rebuild`]); empty otherwise.
    table: Vec<u32>,
    /// Work on the old base's part of the table, in all and done: its words to copy
    /// ([`TableMode::Copy`]), its slots to place again ([`TableMode::Rebuild`]), or none.
    old_work: usize,
    old_done: usize,
    /// Added slots placed.
    added_done: usize,
    /// The next base's order, merged so far, and its fence ([`Base::fence`]).
    order: Vec<u32>,
    fence: Vec<u64>,
    /// The last added address merged into `order` (its slot pushed).
    merged: Option<[u8; 32]>,
    /// The next added address and its place in the old order, once searched for; its slot
    /// is pushed when the old order has been copied up to that place.
    next: Option<([u8; 32], usize)>,
    /// How far along the old order `order` has copied, and how many fence entries of the
    /// old base lie below the last address searched for.
    from: usize,
    fenced: usize,
    /// Units each creation adds to `credit`, the units owed but not yet done, and the units
    /// a step does at least (tests make it small).
    quota: usize,
    credit: usize,
    step_units: usize,
}

/// `base`'s table, if nothing else holds `base` or the table (no clone of the index shares
/// them), so that a fold may write in it.
fn own_table(base: &mut Arc<Base>) -> Option<&mut Vec<u32>> {
    Arc::get_mut(base).and_then(|base| Arc::get_mut(&mut base.table))
}

/// Where a fold builds the next base's table.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum TableMode {
    /// In the old base's own table, which nothing else shares: the added slots are placed in
    /// it (a lookup meanwhile finds them there or in the frozen overlay, the same answer).
    /// Nothing is copied, and no second table is held.
    InPlace,
    /// In a copy of the old table (shared with a clone of the index, which must not see it
    /// change), the added slots placed in the copy.
    Copy,
    /// In a table of twice the size, every slot placed again (the old one would pass half
    /// full).
    Rebuild,
}

impl Folding {
    /// The fold of `added` into `base` (whose slots `added`'s follow), nothing done yet; in
    /// place when `base` and its table are this index's alone.
    fn begin(base: &mut Arc<Base>, added: Overlay) -> Folding {
        let count = base.count + added.len();
        let capacity = capacity_for(count);
        let alone = own_table(base).is_some();
        let mode = match (capacity == base.capacity(), alone) {
            (false, _) => TableMode::Rebuild,
            (true, true) => TableMode::InPlace,
            (true, false) => TableMode::Copy,
        };
        let old_work = match mode {
            TableMode::InPlace => 0,
            TableMode::Copy => capacity,
            TableMode::Rebuild => base.count,
        };
        let table_units = Folding::old_units(mode, old_work) + added.len();
        // A search per added address, and the old order in runs between them (each run's
        // last unit may be part full).
        let merge_units = added.len() * (SEARCH_UNITS + 1) + base.count.div_ceil(ORDER_COPY_UNIT) + 1;
        let creations = (added.len() / 2).max(1);
        let quota = (table_units + merge_units).div_ceil(creations);
        Folding {
            count,
            mode,
            table: if mode == TableMode::InPlace { Vec::new() } else { vec![0; capacity] },
            old_work,
            old_done: 0,
            added_done: 0,
            order: Vec::with_capacity(count),
            fence: Vec::with_capacity(count.div_ceil(FENCE_STEP)),
            merged: None,
            next: None,
            from: 0,
            fenced: 0,
            quota,
            credit: 0,
            step_units: STEP_UNITS,
            added,
        }
    }

    /// Units of `work` on the old base's part of the table, in `mode`.
    fn old_units(mode: TableMode, work: usize) -> usize {
        match mode {
            TableMode::Copy => work.div_ceil(TABLE_COPY_UNIT),
            TableMode::InPlace | TableMode::Rebuild => work,
        }
    }

    fn done(&self) -> bool {
        self.order.len() == self.count
            && self.old_done == self.old_work
            && self.added_done == self.added.len()
    }

    /// Does `budget` units of the fold's work (at most a search's more), table first, then
    /// the order. True once all of it is done.
    /// `creations`: accounts created since the fold began (the new overlay's).
    fn step(&mut self, base: &mut Arc<Base>, keys: &[[u8; 32]], mut budget: usize, creations: usize) -> bool {
        if self.mode == TableMode::InPlace && own_table(base).is_none() {
            self.copy_from_now(base, creations);
        }
        while budget > 0 && self.old_done < self.old_work {
            let done = self.old_done;
            if self.mode == TableMode::Copy {
                let words = budget.saturating_mul(TABLE_COPY_UNIT).min(self.old_work - done);
                self.table[done..done + words].copy_from_slice(&base.table()[done..done + words]);
                self.old_done += words;
                budget = budget.saturating_sub(words.div_ceil(TABLE_COPY_UNIT));
            } else {
                let slots = budget.min(self.old_work - done);
                insert_all(&mut self.table, base.key, keys, done as u32..(done + slots) as u32);
                self.old_done += slots;
                budget -= slots;
            }
        }
        if budget > 0 && self.added_done < self.added.len() {
            let slots = budget.min(self.added.len() - self.added_done);
            let first = (base.count + self.added_done) as u32;
            let sip = base.key;
            let table = match self.mode {
                TableMode::InPlace => own_table(base).expect("checked above"),
                TableMode::Copy | TableMode::Rebuild => &mut self.table,
            };
            insert_all(table, sip, keys, first..first + slots as u32);
            self.added_done += slots;
            budget -= slots;
        }
        let base_order = base.order();
        while budget > 0 && self.order.len() < self.count {
            // The next added address's place in the old order (the old order's end once
            // every added address is merged).
            let at = match self.next {
                Some((_, at)) => at,
                None => {
                    let next = match self.merged {
                        None => self.added.order.first().copied(),
                        Some(last) => self.added.above(&last),
                    };
                    match next {
                        Some(key) => {
                            let at;
                            (at, self.fenced) = base.position_from(&key, keys, false, self.fenced);
                            self.next = Some((key, at));
                            budget = budget.saturating_sub(SEARCH_UNITS);
                            at
                        }
                        None => base.count,
                    }
                }
            };
            // The old order up to there, a unit per ORDER_COPY_UNIT entries: a run of any
            // length (addresses all above the old ones put the whole old order before the
            // first) is copied over as many steps as it takes.
            let end = at.min(self.from.saturating_add(budget.saturating_mul(ORDER_COPY_UNIT)));
            extend_order(&mut self.order, &mut self.fence, &base_order[self.from..end], keys);
            budget = budget.saturating_sub((end - self.from).div_ceil(ORDER_COPY_UNIT));
            self.from = end;
            if self.from == at {
                let Some((key, _)) = self.next.take() else {
                    // The old order's end, with every added address merged: nothing is left
                    // (`order` is then whole).
                    break;
                };
                extend_order(&mut self.order, &mut self.fence, &[self.added.slot_of(&key, keys)], keys);
                self.merged = Some(key);
            }
        }
        self.done()
    }

    /// A fold in place whose old base has since been shared (the index was cloned): from now
    /// on it must not change, so the fold goes on in a copy of it, with the slots placed so
    /// far, copied a step at a time like any copy. The copy's units are spread over the
    /// creations the fold has left.
    fn copy_from_now(&mut self, base: &Base, creations: usize) {
        self.mode = TableMode::Copy;
        self.table = vec![0; base.capacity()];
        self.old_work = base.capacity();
        // Over the creations left before the new overlay would end the fold at once (its
        // threshold), not only those the quota aimed at: a clone near a fold's end must not
        // put the whole copy into one creation.
        let left = fold_threshold(self.count).saturating_sub(creations + 1).max(1);
        self.quota += Folding::old_units(self.mode, self.old_work).div_ceil(left);
    }

    /// The next base, and the overlay it took in. Only once [`Folding::step`] has said it is
    /// done. A table built in place is taken from the old base, which nothing else shares
    /// ([`Folding::step`] checked, and no clone can be taken between that step and this).
    fn finish(self, base: &mut Arc<Base>) -> (Base, Overlay) {
        assert!(self.done(), "a fold is finished only once done");
        let table = match self.mode {
            TableMode::InPlace => std::mem::take(own_table(base).expect("a fold in place owns its table")),
            TableMode::Copy | TableMode::Rebuild => self.table,
        };
        let next = Base {
            key: base.key,
            count: self.count,
            table: Arc::new(table),
            order: Arc::new(self.order),
            fence: Arc::new(self.fence),
        };
        (next, self.added)
    }
}

/// Appends `slots` to a base's `order` under construction, and to its `fence` the prefix of
/// every [`FENCE_STEP`]-th, as [`fence_of`] would.
fn extend_order(order: &mut Vec<u32>, fence: &mut Vec<u64>, slots: &[u32], keys: &[[u8; 32]]) {
    let start = order.len();
    order.extend_from_slice(slots);
    for at in (start.next_multiple_of(FENCE_STEP)..order.len()).step_by(FENCE_STEP) {
        fence.push(prefix(&keys[order[at] as usize]));
    }
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
        let slots = u32::try_from(keys.len()).expect("a ledger holds fewer than 2^32 accounts");
        let order = by_address(keys, 0..slots)?;
        let next = successors(&order, none);
        let base = Base::build(Base::random_key(), keys, order);
        Ok((AddressIndex::over(base), next))
    }

    /// The index whose base is `base` and whose overlay is empty.
    pub fn over(base: Base) -> AddressIndex {
        AddressIndex { base: Arc::new(base), folding: None, added: Overlay::default() }
    }

    /// The base, with every account folded in first (at once, not a step at a time).
    pub fn base(&mut self, keys: &[[u8; 32]]) -> &Base {
        self.finish_fold(keys);
        if self.added.len() > 0 {
            self.begin_fold();
            self.finish_fold(keys);
        }
        &self.base
    }

    /// Every slot in address order, for a store to keep: the base's own when no account was
    /// created since it was built, else merged with those (O(N); nothing is folded).
    pub fn order(&self, keys: &[[u8; 32]]) -> std::borrow::Cow<'_, [u32]> {
        if self.overlay_len() == 0 {
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
            fence: Arc::new(self.base.fence.to_vec()),
            ..(*self.base).clone()
        };
        AddressIndex { base: Arc::new(base), ..self.clone() }
    }

    /// True when this index and `other` share their base.
    pub fn shares_base(&self, other: &AddressIndex) -> bool {
        Arc::ptr_eq(&self.base, &other.base)
    }

    /// Accounts created since the base was built (those of a fold under way included).
    pub fn overlay_len(&self) -> usize {
        self.folding.as_ref().map_or(0, |folding| folding.added.len()) + self.added.len()
    }

    /// True while a fold is under way.
    pub fn is_folding(&self) -> bool {
        self.folding.is_some()
    }

    /// The overlays, older first: a fold's frozen one, then the current.
    fn overlays(&self) -> impl Iterator<Item = &Overlay> {
        self.folding.iter().map(|folding| &folding.added).chain(std::iter::once(&self.added))
    }

    /// The slot of `key`, if it has one.
    pub fn slot(&self, key: &[u8; 32], keys: &[[u8; 32]]) -> Option<u32> {
        self.base.lookup(key, keys).or_else(|| self.overlays().find_map(|added| added.slot(key, keys)))
    }

    /// Where `key`'s search in the base's table begins, that entry hinted to the cache: the
    /// first of a lookup's three dependent reads (entry, address, account), each a cache miss
    /// at ten million accounts. A caller with many addresses hints each step for a group of them
    /// before taking the next, so the group's misses overlap ([`Ledger::execute`]).
    ///
    /// [`Ledger::execute`]: super::Ledger::execute
    pub(super) fn hint_home(&self, key: &[u8; 32]) -> usize {
        let home = self.base.home(key);
        prefetch(&self.base.table()[home]);
        home
    }

    /// The slot at `home` (from [`AddressIndex::hint_home`]), its address hinted to the cache:
    /// the first candidate of the search, which is the answer for nearly every address that
    /// has an account. `None` for an empty entry.
    pub(super) fn hint_candidate(&self, home: usize, keys: &[[u8; 32]]) -> Option<u32> {
        let slot = self.base.table()[home].checked_sub(1)?;
        prefetch(keys.get(slot as usize)?);
        Some(slot)
    }

    /// [`AddressIndex::slot`], the base's search begun at `home`, which must come from
    /// [`AddressIndex::hint_home`] for this `key` on this index with no change to it between
    /// (another home can end the probe at an empty entry before the key's own: a wrong `None`).
    /// Within the ledger only, where a `&self` borrow spans both calls.
    pub(super) fn slot_from(&self, home: usize, key: &[u8; 32], keys: &[[u8; 32]]) -> Option<u32> {
        debug_assert_eq!(home, self.base.home(key), "the home of this key");
        self.base
            .lookup_from(home, key, keys)
            .or_else(|| self.overlays().find_map(|added| added.slot(key, keys)))
    }

    /// The slot of the largest address below `key`, if any.
    pub fn predecessor(&self, key: &[u8; 32], keys: &[[u8; 32]]) -> Option<u32> {
        let at = self.base.position(key, keys, false);
        let in_base =
            at.checked_sub(1).map(|at| self.base.order()[at]).map(|slot| (keys[slot as usize], slot));
        self.overlays().filter_map(|added| added.below(key, keys)).chain(in_base).max().map(|(_, slot)| slot)
    }

    /// The smallest address above `key` (which need not have an account), if any.
    pub fn successor(&self, key: &[u8; 32], keys: &[[u8; 32]]) -> Option<[u8; 32]> {
        let at = self.base.position(key, keys, true);
        let in_base = self.base.order().get(at).map(|slot| keys[*slot as usize]);
        self.overlays().filter_map(|added| added.above(key)).chain(in_base).min()
    }

    /// The slot of the smallest address, if any.
    pub fn first_slot(&self, keys: &[[u8; 32]]) -> Option<u32> {
        let in_base = self.base.order().first().map(|slot| (keys[*slot as usize], *slot));
        self.overlays().filter_map(|added| added.first(keys)).chain(in_base).min().map(|(_, slot)| slot)
    }

    /// The smallest address, if any.
    pub fn first(&self, keys: &[[u8; 32]]) -> Option<[u8; 32]> {
        self.first_slot(keys).map(|slot| keys[slot as usize])
    }

    /// Records `key` at `slot`, the last of `keys` (which already holds it). The caller has
    /// checked that `key` has no slot yet. Does a share of a fold's work: O(1) amortized,
    /// and at most a step of it ([`STEP_UNITS`] plus a quota) per creation.
    pub fn insert(&mut self, key: [u8; 32], slot: u32, keys: &[[u8; 32]]) {
        debug_assert_eq!(slot as usize + 1, keys.len());
        if self.added.slots.capacity() == 0 {
            // Room for all the overlay will hold, taken at its first account. Grown by
            // doubling, the map stopped one creation for each rehash of all its entries (about
            // 20 ms at a million); taken later in one go, the rehash into fresh memory faulted
            // in every page of it at once (0.2 s at ten million accounts). Taken now, the pages
            // are faulted in one by one as entries land on them. (Up to 10 MB of room at ten
            // million accounts, resident as it is used: 72 MB when the overlay kept a map of
            // address to slot.)
            let count = self.folding.as_ref().map_or(self.base.count, |folding| folding.count);
            self.added.reserve(fold_threshold(count), keys);
        }
        self.added.insert(key, slot, keys);
        match &mut self.folding {
            Some(folding) => {
                folding.credit += folding.quota;
                // Past its quota's reach (it never is): the fold ends here, at once.
                let behind = self.added.len() >= fold_threshold(folding.count);
                if folding.credit >= folding.step_units || behind {
                    let budget = if behind { usize::MAX } else { std::mem::take(&mut folding.credit) };
                    if folding.step(&mut self.base, keys, budget, self.added.len()) {
                        self.install();
                    }
                }
            }
            None if self.added.len() >= fold_threshold(self.base.count) => self.begin_fold(),
            None => {}
        }
    }

    /// Freezes the overlay into a fold of it (none may be under way).
    fn begin_fold(&mut self) {
        debug_assert!(self.folding.is_none());
        let added = std::mem::take(&mut self.added);
        self.folding = Some(Box::new(Folding::begin(&mut self.base, added)));
    }

    /// Does what is left of a fold under way, if one is, and puts its base in place.
    fn finish_fold(&mut self, keys: &[[u8; 32]]) {
        if let Some(folding) = &mut self.folding {
            let done = folding.step(&mut self.base, keys, usize::MAX, self.added.len());
            debug_assert!(done);
            self.install();
        }
    }

    /// Puts the finished fold's base in place of the old one.
    fn install(&mut self) {
        let folding = self.folding.take().expect("a fold under way");
        let (next, added) = folding.finish(&mut self.base);
        let old = std::mem::replace(&mut self.base, Arc::new(next));
        // Freeing the old arrays and the frozen overlay's nodes is O(N) too: about 50 ms at ten
        // million accounts, most of it the B-tree's. A thread of its own does it (not one of
        // the pool's, which blocks of transfers wait on), so that the creation that ends the
        // fold does not. If no thread can be had, the refused closure, and with it all this, is
        // dropped here.
        let _freeing =
            std::thread::Builder::new().name("index-free".into()).spawn(move || drop((old, added)));
    }

    /// The base's order and every overlay's addresses merged: a search per overlay address,
    /// each galloping on from the last one's place in the fence, then copies.
    fn merged_order(&self, keys: &[[u8; 32]]) -> Vec<u32> {
        let count = keys.len();
        debug_assert_eq!(count, self.base.count + self.overlay_len());
        let mut older = self.folding.iter().flat_map(|folding| folding.added.order.iter()).peekable();
        let mut newer = self.added.order.iter().peekable();
        let added = std::iter::from_fn(|| {
            let (key, added) = match (older.peek(), newer.peek()) {
                (Some(a), Some(b)) if a < b => (older.next(), &self.folding.as_ref().expect("older").added),
                (Some(_), None) => (older.next(), &self.folding.as_ref().expect("older").added),
                (_, Some(_)) => (newer.next(), &self.added),
                (None, None) => return None,
            };
            let key = key.expect("peeked");
            Some((key, added.slot_of(key, keys)))
        });
        merge_sorted(self.base.order(), &self.base.fence, keys, added, count)
            .expect("an overlay holds no base address")
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

    /// Sorting by prefix, then each run of tied prefixes by the whole address, gives the order a
    /// sort of whole addresses gives; an address held twice is named whether its prefix ties
    /// with others' or not.
    #[test]
    fn addresses_sorted_by_prefix_then_in_runs_are_in_address_order() {
        for count in [0u64, 1, 2, 3, 4, 7, 1_000, 5_000] {
            let keys: Vec<[u8; 32]> = (0..count).map(address).collect();
            let mut sorted: Vec<u32> = (0..count as u32).collect();
            sorted.sort_unstable_by_key(|slot| keys[*slot as usize]);
            assert_eq!(by_address(&keys, 0..count as u32), Ok(sorted.clone()), "{count}");
            // A part of the slots, as a merge sorts the added ones.
            let from = (count / 3) as u32;
            let part: Vec<u32> = sorted.iter().copied().filter(|slot| *slot >= from).collect();
            assert_eq!(by_address(&keys, from..count as u32), Ok(part), "{count} from {from}");
        }
        // Equal prefixes ending the order, so a run ends at the last pair.
        let mut keys: Vec<[u8; 32]> = (0..10).map(address).collect();
        for key in &mut keys[7..] {
            key[..8].fill(0xff);
        }
        let mut sorted: Vec<u32> = (0..10).collect();
        sorted.sort_unstable_by_key(|slot| keys[*slot as usize]);
        assert_eq!(by_address(&keys, 0..10), Ok(sorted));
        // Held twice: in a long run of tied prefixes (sorted inline), alone with its copy, and
        // in a short run.
        for (count, twice) in [(3_000u64, 3u64), (3_000, 4), (30, 3)] {
            let mut keys: Vec<[u8; 32]> = (0..count).map(address).collect();
            keys.push(address(twice));
            assert_eq!(by_address(&keys, 0..count as u32 + 1), Err(address(twice)), "{twice} held twice");
            assert_eq!(
                AddressIndex::build(&keys, u32::MAX).map(|_| ()),
                Err(address(twice)),
                "{twice} held twice"
            );
        }
    }

    /// Addresses added after an order merge into it as a sort of them all would place them,
    /// across the fence's steps and among addresses whose first 8 bytes tie; one added twice,
    /// or added though the order holds it, is named.
    #[test]
    fn added_addresses_merge_into_an_order_as_a_sort_would_place_them() {
        for (count, added) in [(0, 5), (1, 0), (3, 3), (5_000, 700), (700, 5_000)] {
            let keys: Vec<[u8; 32]> = (0..(count + added) as u64).map(address).collect();
            let (index, _) = AddressIndex::build(&keys[..count], u32::MAX).unwrap();
            let order = index.order(&keys[..count]).into_owned();
            let order = check_order(order, count).unwrap();
            let merged = merge_added(&order, &keys).unwrap().as_slice().to_vec();
            let mut sorted: Vec<u32> = (0..keys.len() as u32).collect();
            sorted.sort_unstable_by_key(|slot| keys[*slot as usize]);
            assert_eq!(merged, sorted, "{count} and {added}");
        }
        let mut keys: Vec<[u8; 32]> = (0..3_000).map(address).collect();
        let (index, _) = AddressIndex::build(&keys, u32::MAX).unwrap();
        let order = check_order(index.order(&keys).into_owned(), keys.len()).unwrap();
        keys.extend([address(5_000), address(1_234), address(5_001)]);
        assert_eq!(merge_added(&order, &keys), Err(address(1_234)), "added though the order holds it");
        keys[3_001] = address(5_000);
        assert_eq!(merge_added(&order, &keys), Err(address(5_000)), "added twice");
        // A stored order that is each slot once but not sorted (damaged, checksummed again):
        // no panic, each slot once still, for the state root to refuse. (The places found for
        // ascending addresses never go back even then, since each search's tests are at least
        // as often true as the last one's; the merge does not rely on it.)
        let keys: Vec<[u8; 32]> = (0..3_000).map(address).collect();
        let (index, _) = AddressIndex::build(&keys[..1_000], u32::MAX).unwrap();
        let order = index.order(&keys[..1_000]).into_owned();
        for shape in 0..4 {
            let mut spoilt = order.clone();
            match shape {
                0 => spoilt.reverse(),
                // Each window of the fence reversed in place, or every other pair swapped.
                1 => spoilt.chunks_mut(FENCE_STEP).for_each(<[u32]>::reverse),
                2 => spoilt.chunks_mut(2).for_each(<[u32]>::reverse),
                // Each window's halves swapped.
                _ => spoilt.chunks_mut(FENCE_STEP).for_each(|window| window.rotate_left(window.len() / 2)),
            }
            let spoilt = check_order(spoilt, 1_000).unwrap();
            let mut merged = merge_added(&spoilt, &keys).unwrap().as_slice().to_vec();
            merged.sort_unstable();
            assert_eq!(merged, (0..keys.len() as u32).collect::<Vec<u32>>(), "shape {shape}");
        }
    }

    /// The overlay's room, taken at its first account for all it will hold, is a few bytes an
    /// account (a slot and a control byte), not a map's 36-byte entries: the creations after
    /// a fold begins fault in that room's pages one by one, at random.
    #[test]
    fn the_overlay_takes_a_few_bytes_an_account_of_room() {
        let mut model = Model::new((0..80_000).map(address).collect());
        model.create(address(100_000));
        let room = model.index.added.slots.allocation_size();
        let accounts = fold_threshold(80_000);
        assert!(model.index.added.slots.capacity() >= accounts, "room for all the overlay will hold");
        assert!(room <= 10 * accounts, "{room} bytes for {accounts} accounts");
        assert_eq!(model.index.slot(&address(100_000), &model.keys), Some(80_000));
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
            let was_folding = index.is_folding();
            index.insert(key, keys.len() as u32 - 1, &keys);
            folds += usize::from(!was_folding && index.is_folding());
            if n.is_multiple_of(97) || n.is_multiple_of(1000) {
                for (slot, key) in keys.iter().enumerate().step_by(13) {
                    assert_eq!(index.slot(key, &keys), Some(slot as u32));
                }
                assert_eq!(index.first(&keys), Some(sorted[0]));
                assert_eq!(index.successor(&sorted[5], &keys), Some(sorted[6]));
                let below = index.predecessor(&sorted[5], &keys).map(|slot| keys[slot as usize]);
                assert_eq!(below, Some(sorted[4]), "an address's predecessor is below it, not it");
                let in_order: Vec<[u8; 32]> =
                    index.order(&keys).iter().map(|slot| keys[*slot as usize]).collect();
                assert_eq!(in_order, sorted, "the order a store keeps, a fold under way or not");
            }
        }
        assert_eq!(folds, 3, "a fold begins at each FOLD_MIN creations");
        assert!(index.is_folding(), "the third began at the last creation");
        // A few more, left in the overlay beside the fold under way: the order a store keeps
        // covers both.
        for n in 0..5u64 {
            let key = address(1_000_000 + n);
            keys.push(key);
            sorted.insert(sorted.partition_point(|other| *other < key), key);
            index.insert(key, keys.len() as u32 - 1, &keys);
        }
        assert!(index.is_folding());
        assert_eq!(index.overlay_len(), FOLD_MIN + 5);
        let copy = index.clone();
        assert!(copy.shares_base(&index), "a clone shares the base");
        let deep = index.unshared();
        assert!(!deep.shares_base(&index));
        assert_ne!(deep.base.table.as_ptr(), index.base.table.as_ptr(), "nor its table");
        assert_ne!(deep.base.order().as_ptr(), index.base.order().as_ptr(), "nor its order");
        assert_ne!(deep.base.fence.as_ptr(), index.base.fence.as_ptr(), "nor its fence");
        // The order a store keeps covers the overlays without folding them.
        let merged = index.order(&keys).into_owned();
        assert_eq!(index.overlay_len(), FOLD_MIN + 5);
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
        // 40,000 and then 45,000 addresses take one table size: the fold inserts into it.
        let keys: Vec<[u8; 32]> = (0..40_000).map(address).collect();
        let sip = Base::random_key();
        let mut grouped = vec![0u32; capacity_for(keys.len())];
        assert!(grouped.len() / REGION >= 8, "several regions");
        insert_all(&mut grouped, sip, &keys, 0..keys.len() as u32);
        let mut one_by_one = vec![0u32; grouped.len()];
        for (slot, key) in keys.iter().enumerate() {
            insert(&mut one_by_one, sip, key, slot as u32);
        }
        assert_eq!(entries(&grouped), (1..=keys.len() as u32).collect::<Vec<u32>>());
        assert_eq!(entries(&one_by_one), entries(&grouped));
        let (mut index, _) = AddressIndex::build(&keys, u32::MAX).unwrap();
        for (slot, key) in keys.iter().enumerate() {
            assert_eq!(index.slot(key, &keys), Some(slot as u32));
        }
        let mut keys = keys;
        let capacity = index.base.capacity();
        // A fold begins at the 5,000th creation and ends, a step at a time, within 2,500 more.
        for n in 0..7_500u64 {
            keys.push(address(1_000_000 + n));
            index.insert(keys[keys.len() - 1], keys.len() as u32 - 1, &keys);
        }
        assert!(!index.is_folding());
        assert_eq!((index.base.count(), index.base.capacity()), (45_000, capacity), "folded, same size");
        for (slot, key) in keys.iter().enumerate() {
            assert_eq!(index.slot(key, &keys), Some(slot as u32));
        }
        assert_eq!(index.slot(&address(2_000_000), &keys), None);
    }

    /// A table's entries (slots + 1), sorted.
    fn entries(table: &[u32]) -> Vec<u32> {
        let mut entries: Vec<u32> = table.iter().copied().filter(|entry| *entry != 0).collect();
        entries.sort_unstable();
        entries
    }

    /// An index, its addresses, and the same addresses sorted: what it must answer as.
    struct Model {
        index: AddressIndex,
        keys: Vec<[u8; 32]>,
        sorted: Vec<[u8; 32]>,
    }

    impl Model {
        fn new(keys: Vec<[u8; 32]>) -> Model {
            let (index, _) = AddressIndex::build(&keys, u32::MAX).unwrap();
            let mut sorted = keys.clone();
            sorted.sort_unstable();
            Model { index, keys, sorted }
        }

        /// Creates `key`; returns the units of a fold's work it did.
        fn create(&mut self, key: [u8; 32]) -> usize {
            // No clone of the index or its base is held across the creation: a fold in place
            // must find its base its own.
            let before = self
                .index
                .folding
                .as_deref()
                .map(|folding| (units(folding), folding.mode, whole_units(folding)));
            self.keys.push(key);
            let at = self.sorted.partition_point(|other| *other < key);
            self.sorted.insert(at, key);
            self.index.insert(key, self.keys.len() as u32 - 1, &self.keys);
            match (before, self.index.folding.as_deref()) {
                // Still under way: what it did since.
                (Some((before, mode, _)), Some(folding)) => {
                    // Only a clone turns a fold in place to a copy, whose copying starts at none.
                    assert!(
                        folding.mode == mode || (mode, folding.mode) == (TableMode::InPlace, TableMode::Copy)
                    );
                    units(folding) - before
                }
                // Ended by this creation: all that was left of it.
                (Some((before, _, whole)), None) => whole - before,
                _ => 0,
            }
        }

        /// Creates `next(0)`, `next(1)`, … until a fold begins; returns how many.
        fn create_until_folding(&mut self, next: &dyn Fn(u64) -> [u8; 32]) -> u64 {
            let mut n = 0;
            while !self.index.is_folding() {
                self.create(next(n));
                n += 1;
                assert!(n < 100_000, "a fold begins");
            }
            n
        }

        /// Checks every answer about `probe` (an address with or without an account).
        fn check(&self, probe: &[u8; 32]) {
            let (index, keys, sorted) = (&self.index, &self.keys, &self.sorted);
            let at = sorted.partition_point(|other| other < probe);
            let has = sorted.get(at) == Some(probe);
            let found = index.slot(probe, keys);
            assert_eq!(found.map(|slot| keys[slot as usize]), has.then_some(*probe));
            let above = sorted.get(at + usize::from(has)).copied();
            assert_eq!(index.successor(probe, keys), above);
            let below = index.predecessor(probe, keys).map(|slot| keys[slot as usize]);
            assert_eq!(below, at.checked_sub(1).map(|at| sorted[at]));
            assert_eq!(index.first(keys), sorted.first().copied());
        }

        /// Checks every address, the order and the fence, with no fold under way.
        fn check_all(&self) {
            let in_order: Vec<[u8; 32]> =
                self.index.order(&self.keys).iter().map(|slot| self.keys[*slot as usize]).collect();
            assert_eq!(in_order, self.sorted);
            for (slot, key) in self.keys.iter().enumerate() {
                assert_eq!(self.index.slot(key, &self.keys), Some(slot as u32));
            }
            let base = &self.index.base;
            assert_eq!(*base.fence, fence_of(base.order(), &self.keys), "the fence of the base's order");
            let each_once = (1..=base.count() as u32).collect::<Vec<u32>>();
            assert_eq!(entries(base.table()), each_once, "each slot once in the table");
        }
    }

    /// The units of work a fold has done, as [`Folding::step`] counts them (but for its
    /// searches, which only a step's bound allows for).
    fn units(folding: &Folding) -> usize {
        Folding::old_units(folding.mode, folding.old_done)
            + folding.added_done
            + folding.order.len() / ORDER_COPY_UNIT
    }

    /// The units of a whole fold, done.
    fn whole_units(folding: &Folding) -> usize {
        Folding::old_units(folding.mode, folding.old_work)
            + folding.added.len()
            + folding.count / ORDER_COPY_UNIT
    }

    /// Addresses whose first byte is `first`: all above (0xff) or below (0x00) most others.
    fn address_at(first: u8, n: u64) -> [u8; 32] {
        let mut key = address(n);
        key[0] = first;
        key
    }

    /// Creations from `from` until a fold has begun and ended, with a step made small, so
    /// that a step is a small part of the fold: each creation's progress must stay within a
    /// step (and its quota, and one search). Returns the creations the fold took.
    fn fold_in_small_steps(model: &mut Model, next: &dyn Fn(u64) -> [u8; 32]) -> u64 {
        let mut n = model.create_until_folding(next);
        let folding = model.index.folding.as_mut().unwrap();
        folding.step_units = 16;
        // A step's units, its search that may pass them, the rounding of a run's copy, and of
        // `units`' count of order entries.
        let bound = folding.step_units + folding.quota + SEARCH_UNITS + 2;
        let mut creations = 0;
        while model.index.is_folding() {
            let progress = model.create(next(n));
            assert!(progress <= bound, "{progress} > {bound}: more than a step in one creation");
            n += 1;
            creations += 1;
            if creations % 53 == 0 {
                model.check(&next(n + 7));
                model.check(&model.sorted[n as usize % model.sorted.len()]);
            }
        }
        model.check_all();
        creations
    }

    /// A large base begins to fold its overlay at an eighth of its size, not at FOLD_MIN; the
    /// creation that begins the fold does none of its work, and the creations after it each
    /// do a step at most, so that it ends after about half as many creations as it took in.
    /// (A fold used to be done whole by one creation: at ten million accounts it stopped a
    /// block for about 0.7 s, once every 1.25 million creations, which anyone can pay for.)
    #[test]
    fn a_fold_is_spread_over_the_creations_after_the_eighth() {
        let mut model = Model::new((0..40_000).map(address).collect());
        // Not a clone of the base: a fold in place needs its base to be its own.
        let base = Arc::as_ptr(&model.index.base);
        for n in 0..5_000u64 {
            model.create(address(100_000 + n));
            assert_eq!(model.index.overlay_len(), n as usize + 1, "after {} creations", n + 1);
            assert_eq!(model.index.is_folding(), n == 4_999, "after {} creations", n + 1);
        }
        assert!(std::ptr::eq(Arc::as_ptr(&model.index.base), base), "nothing folded at once");
        let folding = model.index.folding.as_ref().unwrap();
        assert_eq!((folding.count, units(folding), folding.order.len()), (45_000, 0, 0));
        // In place: no second table is held, and the next base keeps the old one.
        assert_eq!(
            (folding.mode, folding.table.capacity()),
            (TableMode::InPlace, 0),
            "the index is the model's alone"
        );
        let table = model.index.base.table.as_ptr();
        let creations = fold_in_small_steps(&mut model, &|n| address(200_000 + n));
        assert!(creations > 1_000, "spread over many creations: {creations}");
        assert!(creations <= 2_600, "about half the frozen overlay's creations: {creations}");
        assert_eq!(model.index.base.count(), 45_000);
        assert_eq!(model.index.base.table.as_ptr(), table, "the table was not copied");
        assert_eq!(model.index.overlay_len(), creations as usize);
    }

    /// Addresses that all fall above (or below) every old one put the whole old order
    /// before (or after) the first new address: a run that is copied over many steps, not
    /// by one creation.
    #[test]
    fn a_fold_of_addresses_all_above_or_below_the_old_ones_is_still_spread() {
        for first in [0xff, 0x00] {
            let mut model = Model::new((0..40_000).map(|n| address_at(0x80, n)).collect());
            let creations = fold_in_small_steps(&mut model, &|n| address_at(first, 100_000 + n));
            assert!(creations > 100, "{first:#x}: {creations} creations");
        }
    }

    /// A fold that doubles the table places every slot again under the same key, a step at
    /// a time, and finds every address afterwards.
    #[test]
    fn a_fold_that_doubles_the_table_finds_every_address() {
        // 30,000 accounts fill 65,536 entries up to 46 %; 34,000 would pass half.
        let mut model = Model::new((0..30_000).map(address).collect());
        assert_eq!(model.index.base.capacity(), 1 << 16);
        let creations = fold_in_small_steps(&mut model, &|n| address(300_000 + n));
        assert_eq!(model.index.base.capacity(), 1 << 17);
        assert!(creations > 100, "spread over many creations: {creations}");
        model.check(&address(3_000_000));
    }

    /// Creations that outrun a fold's quota (they cannot: here the quota is made 0) end it at
    /// once when the new overlay reaches its own threshold, so the overlays stay bounded.
    #[test]
    fn creations_that_outrun_a_fold_end_it_at_the_threshold() {
        let mut model = Model::new((0..40_000).map(address).collect());
        model.create_until_folding(&|n| address(100_000 + n));
        model.index.folding.as_mut().unwrap().quota = 0;
        for creation in 1..=5_625u64 {
            model.create(address(200_000 + creation));
            assert_eq!(model.index.is_folding(), creation < 5_625, "after {creation}");
            if creation % 500 == 0 {
                model.check(&address(200_000 + creation + 1));
            }
        }
        // 45,000 accounts in the new base: the threshold is 5,625.
        assert_eq!(model.index.base.count(), 45_000);
        model.check_all();
    }

    /// A clone taken while a fold is under way goes its own way: each answers for its own
    /// accounts, and finishes its own fold. The fold was in place, in the table the two now
    /// share: each goes on in a copy of it (slots placed so far included), which it copies a
    /// step at a time, and the shared table changes no more. Early in the fold, and near its
    /// end: the copy is spread over the creations left before the overlay's threshold, not
    /// over the few the quota had left (which put most of the copy into one creation).
    #[test]
    fn a_clone_taken_mid_fold_goes_its_own_way() {
        let mut alone = Model::new((0..40_000).map(address).collect());
        alone.create_until_folding(&|n| address(100_000 + n));
        let mut length = 0;
        while alone.index.is_folding() {
            alone.create(address(200_000 + length));
            length += 1;
        }
        for after in [300, length - 20] {
            clone_after(after);
        }
    }

    /// [`a_clone_taken_mid_fold_goes_its_own_way`], the clone taken `after` creations into the
    /// fold.
    fn clone_after(after: u64) {
        let mut one = Model::new((0..40_000).map(address).collect());
        one.create_until_folding(&|n| address(100_000 + n));
        for m in 0..after {
            one.create(address(200_000 + m));
        }
        let folding = one.index.folding.as_deref().unwrap();
        assert_eq!(folding.mode, TableMode::InPlace, "{after}");
        // After the turn to a copy, a creation does at most a step and its quota, which grows
        // by the copy's units spread over the creations left before the overlay's threshold
        // (here 4,096 units over more than 2,000: at most 2 more).
        let copy_units = Folding::old_units(TableMode::Copy, one.index.base.capacity());
        let threshold = fold_threshold(folding.count);
        let left = threshold - (after as usize + 100);
        let bound = folding.step_units + folding.quota + copy_units.div_ceil(left) + SEARCH_UNITS + 2;
        let mut two = Model { index: one.index.clone(), keys: one.keys.clone(), sorted: one.sorted.clone() };
        let shared = one.index.base.table.to_vec();
        // Until each has done a step (a step, not every creation, asks whether it may write).
        let mut m = 0;
        while [&one, &two]
            .iter()
            .any(|model| model.index.folding.as_deref().unwrap().mode == TableMode::InPlace)
        {
            one.create(address(300_000 + m));
            two.create(address(400_000 + m));
            m += 1;
            assert!(m < 100, "a step within a few creations");
        }
        for model in [&one, &two] {
            let folding = model.index.folding.as_deref().unwrap();
            assert!(folding.old_done < folding.old_work, "copied a step at a time, not at once");
        }
        assert_eq!(*one.index.base.table, shared, "the shared table is as it was at the clone");
        let mut ended = [None, None];
        for m in m..3_000 {
            for (side, (model, key)) in
                [(&mut one, address(300_000 + m)), (&mut two, address(400_000 + m))].into_iter().enumerate()
            {
                if ended[side].is_some() {
                    continue;
                }
                let units = model.create(key);
                assert!(units <= bound, "{after}: {units} > {bound}: more than a step and its share");
                if !model.index.is_folding() {
                    ended[side] = Some(model.index.overlay_len());
                }
            }
        }
        for overlay in ended {
            // Ended by its quota, not at once at the threshold for falling behind.
            assert!(overlay.is_some_and(|overlay| overlay < threshold), "{overlay:?} against {threshold}");
        }
        for (model, other) in [(&one, 400_000), (&two, 300_000)] {
            assert!(!model.index.is_folding());
            model.check_all();
            model.check(&address(other + 5));
        }
    }

    /// Where a property test's new addresses fall: anywhere, above or below every other,
    /// between two neighbouring old ones, or sharing one 8-byte prefix.
    #[derive(Clone, Copy, Debug)]
    enum Shape {
        Anywhere,
        Above,
        Below,
        Between,
        OnePrefix,
    }

    fn shaped(shape: Shape, seed: u64, n: u64, base: &[[u8; 32]]) -> [u8; 32] {
        let mut key = address(seed.wrapping_mul(1_000_003).wrapping_add(n) | 1 << 40);
        match shape {
            Shape::Anywhere => {}
            Shape::Above => key[..4].fill(0xff),
            Shape::Below => key[..4].fill(0x00),
            Shape::Between => {
                // Just above the smallest old address: all of them between it and the next.
                if let Some(low) = base.iter().min() {
                    key[..24].copy_from_slice(&low[..24]);
                    key[24..].copy_from_slice(&(n + 1).to_be_bytes());
                }
            }
            Shape::OnePrefix => key[..8].fill(0x42),
        }
        key
    }

    proptest::proptest! {
        #![proptest_config(proptest::prelude::ProptestConfig::with_cases(24))]

        /// Across folds, for any base size, step size and shape of new addresses, every answer
        /// is a sorted set's, and no creation does more than a step of a fold; also when a
        /// clone of the index is held for a while (a fold in place then goes on in a copy).
        #[test]
        fn every_answer_holds_across_folds_of_any_shape(
            base in 0usize..6_000,
            shape in proptest::prop_oneof![
                proptest::strategy::Just(Shape::Anywhere),
                proptest::strategy::Just(Shape::Above),
                proptest::strategy::Just(Shape::Below),
                proptest::strategy::Just(Shape::Between),
                proptest::strategy::Just(Shape::OnePrefix),
            ],
            step_units in 1usize..64,
            creations in 4_096usize..16_000,
            seed in proptest::prelude::any::<u64>(),
            clone_held in proptest::option::of((0u64..1_500, 1u64..1_500)),
        ) {
            let mut model = Model::new((0..base as u64).map(address).collect());
            let old: Vec<[u8; 32]> = model.keys.clone();
            let mut bound = usize::MAX;
            // A clone held from `after` creations into the first fold in place, `held` long.
            let (mut twin, mut in_place_from) = (None, None);
            for n in 0..creations as u64 {
                let key = shaped(shape, seed, n, &old);
                if model.index.slot(&key, &model.keys).is_some() {
                    continue;
                }
                if in_place_from.is_none()
                    && model.index.folding.as_ref().is_some_and(|folding| folding.mode == TableMode::InPlace)
                {
                    in_place_from = Some(n);
                }
                match (clone_held, in_place_from) {
                    (Some((after, _)), Some(from)) if n == from + after => twin = Some(model.index.clone()),
                    (Some((after, held)), Some(from)) if n == from + after + held => twin = None,
                    _ => {}
                }
                let was_folding = model.index.is_folding();
                if let Some(folding) = model.index.folding.as_ref() {
                    // A fold in place turned to a copy spreads the copy with a larger quota.
                    bound = folding.step_units + folding.quota + SEARCH_UNITS + 2;
                }
                let units = model.create(key);
                if was_folding {
                    proptest::prop_assert!(units <= bound, "{} > {}: more than a step", units, bound);
                }
                if let Some(folding) = model.index.folding.as_mut()
                    && !was_folding
                {
                    folding.step_units = step_units;
                    bound = step_units + folding.quota + SEARCH_UNITS + 2;
                }
                if n % 379 == 0 {
                    model.check(&shaped(shape, seed, n + 1, &old));
                    model.check(&key);
                }
            }
            drop(twin);
            model.index.base(&model.keys);
            model.check_all();
        }
    }

    /// The index of no accounts folds its first FOLD_MIN into a base of them.
    #[test]
    fn the_empty_index_folds_its_first_accounts() {
        let mut model = Model { index: AddressIndex::default(), keys: Vec::new(), sorted: Vec::new() };
        model.check(&address(1));
        let mut n = 0;
        while model.index.base.count() == 0 {
            model.create(address(n));
            n += 1;
            if n % 1_000 == 0 {
                model.check(&address(n / 2));
                model.check(&address(n + 1));
            }
        }
        assert!(n > FOLD_MIN as u64);
        model.check_all();
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
