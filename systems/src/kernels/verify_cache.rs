//! A fixed-capacity cache of signatures already accepted, so a transaction seen again (a gossip
//! duplicate, a resubmission after a full mempool) is not verified twice.
//!
//! Keys are transaction ids: BLAKE3 over the body *and* the signature, so a hit means these
//! exact bytes were accepted before — a different message, key or signature has a different
//! id. The full 32-byte id is stored and compared: a hit cannot come from a truncated-hash
//! collision. Layout: `sets × 4` slots, a set chosen by the id's first eight bytes, FIFO
//! replacement within a set. Memory is allocated once; the cache never grows. Only accepted
//! signatures are cached; a refused one is refused again on its own merits.

/// Slots per set.
const WAYS: usize = 4;

/// The cache. Deterministic: its contents depend only on the sequence of inserts.
#[derive(Debug, Clone)]
pub struct VerifyCache {
    slots: Vec<[u8; 32]>,
    occupied: Vec<bool>,
    next_way: Vec<u8>,
    sets: usize,
}

impl VerifyCache {
    /// A cache of at least `capacity` entries (rounded up to a power-of-two number of sets of
    /// four); `capacity` 0 gives a cache that stores nothing.
    pub fn new(capacity: usize) -> VerifyCache {
        let sets = if capacity == 0 { 0 } else { capacity.div_ceil(WAYS).next_power_of_two() };
        VerifyCache {
            slots: vec![[0; 32]; sets * WAYS],
            occupied: vec![false; sets * WAYS],
            next_way: vec![0; sets],
            sets,
        }
    }

    /// Entries the cache can hold.
    pub fn capacity(&self) -> usize {
        self.slots.len()
    }

    fn set_of(&self, id: &[u8; 32]) -> usize {
        let prefix = u64::from_le_bytes(id[..8].try_into().expect("eight bytes"));
        (prefix as usize) & (self.sets - 1)
    }

    /// Whether `id` was inserted and not yet displaced.
    pub fn contains(&self, id: &[u8; 32]) -> bool {
        if self.sets == 0 {
            return false;
        }
        let base = self.set_of(id) * WAYS;
        (base..base + WAYS).any(|slot| self.occupied[slot] && self.slots[slot] == *id)
    }

    /// Remembers `id` as accepted, displacing the oldest entry of its set when full.
    pub fn insert(&mut self, id: &[u8; 32]) {
        if self.sets == 0 || self.contains(id) {
            return;
        }
        let set = self.set_of(id);
        let way = usize::from(self.next_way[set]);
        let slot = set * WAYS + way;
        self.slots[slot] = *id;
        self.occupied[slot] = true;
        self.next_way[set] = ((way + 1) % WAYS) as u8;
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn id(set_bits: u64, tag: u8) -> [u8; 32] {
        let mut id = [tag; 32];
        id[..8].copy_from_slice(&set_bits.to_le_bytes());
        id
    }

    #[test]
    fn hits_after_insert_and_never_grows() {
        let mut cache = VerifyCache::new(10);
        assert_eq!(cache.capacity(), 16);
        assert!(!cache.contains(&id(1, 1)));
        cache.insert(&id(1, 1));
        assert!(cache.contains(&id(1, 1)));
        assert!(!cache.contains(&id(1, 2)), "same set, different id");
        // Five ids into one set of four: the oldest is displaced.
        for tag in 2..=5 {
            cache.insert(&id(1, tag));
        }
        assert!(!cache.contains(&id(1, 1)));
        assert!((2..=5).all(|tag| cache.contains(&id(1, tag))));
        for n in 0..10_000 {
            cache.insert(&id(n, (n % 251) as u8));
        }
        assert_eq!(cache.capacity(), 16);
    }

    #[test]
    fn zero_capacity_stores_nothing() {
        let mut cache = VerifyCache::new(0);
        cache.insert(&id(1, 1));
        assert!(!cache.contains(&id(1, 1)));
    }
}
