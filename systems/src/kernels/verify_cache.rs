//! A fixed-capacity cache of signatures already accepted, so a transaction seen again (a gossip
//! duplicate, a resubmission after a full mempool) is not verified twice.
//!
//! Keys are transaction ids: BLAKE3 over the body *and* the signature, so a hit means these
//! exact bytes were accepted before — a different message, key or signature has a different
//! id. The full 32-byte id is stored and compared: a hit cannot come from a truncated-hash
//! collision. Layout: `sets × 4` slots, a set chosen by the id's first eight bytes, FIFO
//! replacement within a set. Memory is allocated once; the cache never grows. Only accepted
//! signatures are cached; a refused one is refused again on its own merits.
//!
//! Each set also keeps a 16-bit tag a way (15 bits of the id, never zero; zero is an empty
//! way), eight bytes a set, so a lookup reads a set's ids only where a tag matches. Most
//! lookups of a block's transactions miss (a validator meets most of them first in the
//! block), and a cache of 2^16 ids is 2 MiB, so a miss was three cache misses (the occupancy
//! and both lines of the set's ids) and is now one.

/// Slots per set.
const WAYS: usize = 4;

/// The cache. Deterministic: its contents depend only on the sequence of inserts.
#[derive(Debug, Clone)]
pub struct VerifyCache {
    slots: Vec<[u8; 32]>,
    /// Each way's tag ([`tag_of`] its id), 0 while the way is empty.
    tags: Vec<[u16; WAYS]>,
    next_way: Vec<u8>,
    sets: usize,
}

/// An id's tag: 15 of its bits, with the low bit set so that no tag is 0. Bytes 8 and 9, so
/// independent of the bytes that chose the set.
fn tag_of(id: &[u8; 32]) -> u16 {
    u16::from_le_bytes([id[8], id[9]]) | 1
}

impl VerifyCache {
    /// A cache of at least `capacity` entries (rounded up to a power-of-two number of sets of
    /// four); `capacity` 0 gives a cache that stores nothing.
    pub fn new(capacity: usize) -> VerifyCache {
        let sets = if capacity == 0 { 0 } else { capacity.div_ceil(WAYS).next_power_of_two() };
        VerifyCache {
            slots: vec![[0; 32]; sets * WAYS],
            tags: vec![[0; WAYS]; sets],
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
        let set = self.set_of(id);
        let tag = tag_of(id);
        (0..WAYS).any(|way| self.tags[set][way] == tag && self.slots[set * WAYS + way] == *id)
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
        self.tags[set][way] = tag_of(id);
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

    /// Ids that share a set and a tag are still told apart by their bytes, an empty way
    /// matches nothing (the all-zero id included), and the cache answers as a plain model of
    /// sets with FIFO replacement does, for any sequence of inserts.
    #[test]
    fn tags_only_narrow_the_search() {
        let mut cache = VerifyCache::new(16);
        assert!(!cache.contains(&[0; 32]), "an empty way is no entry");
        cache.insert(&[0; 32]);
        assert!(cache.contains(&[0; 32]));
        let mut twin = [0; 32];
        twin[31] = 1;
        assert_eq!(tag_of(&twin), tag_of(&[0; 32]));
        assert!(!cache.contains(&twin), "same set and tag, another id");
        cache.insert(&twin);
        assert!(cache.contains(&twin) && cache.contains(&[0; 32]));
    }

    proptest::proptest! {
        #[test]
        fn answers_as_a_model_of_fifo_sets(ops in proptest::collection::vec((0u64..4, 0u8..3, 0u8..6, proptest::bool::ANY), 1..200)) {
            let mut cache = VerifyCache::new(8);
            let mut model: Vec<std::collections::VecDeque<[u8; 32]>> = vec![Default::default(); cache.sets];
            for (set_bits, tag_byte, last, insert) in ops {
                let mut key = id(set_bits, 0);
                key[8] = tag_byte;
                key[31] = last;
                let set = (set_bits as usize) & (cache.sets - 1);
                proptest::prop_assert_eq!(cache.contains(&key), model[set].contains(&key));
                if insert {
                    cache.insert(&key);
                    if !model[set].contains(&key) {
                        if model[set].len() == WAYS {
                            model[set].pop_front();
                        }
                        model[set].push_back(key);
                    }
                }
            }
        }
    }

    #[test]
    fn zero_capacity_stores_nothing() {
        let mut cache = VerifyCache::new(0);
        cache.insert(&id(1, 1));
        assert!(!cache.contains(&id(1, 1)));
    }
}
