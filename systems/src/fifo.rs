//! A map that forgets its oldest entries first, bounded in entries and in a weight of each
//! (the bytes it holds, say). The memos the simulator's validators share and the dedup window
//! are all this shape: remember what arrives, forget the oldest past a bound.

use std::borrow::Borrow;
use std::collections::VecDeque;
use std::hash::Hash;

use foldhash::HashMap;

/// A map bounded by `entries_max` entries and by `weight_max` in the sum of `weigh` over its
/// entries, oldest out first. A key is inserted once: inserting it again changes nothing, so
/// its age is the age of its first insertion. Keys are cloned once into the order of arrival,
/// so a large key belongs behind an `Arc`.
#[derive(Debug)]
pub struct FifoMap<K, V> {
    map: HashMap<K, V>,
    order: VecDeque<K>,
    weight: usize,
    entries_max: usize,
    weight_max: usize,
    weigh: fn(&K, &V) -> usize,
}

impl<K: Hash + Eq + Clone, V> FifoMap<K, V> {
    /// A map of at most `entries_max` entries (at least 1), not bounded by weight.
    pub fn new(entries_max: usize) -> FifoMap<K, V> {
        FifoMap::weighed(entries_max, usize::MAX, |_, _| 0)
    }

    /// A map of at most `entries_max` entries (at least 1) whose `weigh` sums to at most
    /// `weight_max`.
    pub fn weighed(entries_max: usize, weight_max: usize, weigh: fn(&K, &V) -> usize) -> FifoMap<K, V> {
        assert!(entries_max > 0, "a bounded map holds at least one entry");
        FifoMap { map: HashMap::default(), order: VecDeque::new(), weight: 0, entries_max, weight_max, weigh }
    }

    /// The value under `key`, if held.
    pub fn get<Q: Hash + Eq + ?Sized>(&self, key: &Q) -> Option<&V>
    where
        K: Borrow<Q>,
    {
        self.map.get(key)
    }

    /// True when `key` is held.
    pub fn contains_key<Q: Hash + Eq + ?Sized>(&self, key: &Q) -> bool
    where
        K: Borrow<Q>,
    {
        self.map.contains_key(key)
    }

    /// Holds `value` under `key`, forgetting the oldest entries as the bounds need. Returns
    /// false, holding nothing new, for a key already held or an entry heavier than the whole
    /// bound.
    pub fn insert(&mut self, key: K, value: V) -> bool {
        let weight = (self.weigh)(&key, &value);
        if weight > self.weight_max || self.map.contains_key(&key) {
            return false;
        }
        while self.order.len() >= self.entries_max || self.weight + weight > self.weight_max {
            let Some(oldest) = self.order.pop_front() else { break };
            if let Some(value) = self.map.remove(&oldest) {
                self.weight -= (self.weigh)(&oldest, &value);
            }
        }
        self.weight += weight;
        self.order.push_back(key.clone());
        self.map.insert(key, value);
        true
    }

    /// Entries held.
    pub fn len(&self) -> usize {
        self.order.len()
    }

    /// True when nothing is held.
    pub fn is_empty(&self) -> bool {
        self.order.is_empty()
    }

    /// The sum of the entries' weights.
    pub fn weight(&self) -> usize {
        self.weight
    }

    /// Room reserved: the order's and the map's.
    #[cfg(test)]
    pub(crate) fn capacities(&self) -> (usize, usize) {
        (self.order.capacity(), self.map.capacity())
    }

    /// Reserves room for every entry the bound allows, so the map never reallocates: the order
    /// for `entries_max` keys and the map for twice that, the size a hash map that holds
    /// `entries_max` keys under constant churn settles at (below it, its tombstones force a
    /// resize).
    pub fn preallocate(&mut self) {
        self.order.reserve_exact(self.entries_max.saturating_sub(self.order.len()));
        self.map.reserve(self.entries_max.saturating_mul(2).saturating_sub(self.map.len()));
    }
}

#[cfg(test)]
mod tests {
    use std::sync::Arc;

    use super::*;

    #[test]
    fn the_oldest_go_first_past_either_bound_and_a_key_is_held_once() {
        let mut map = FifoMap::new(3);
        assert!(map.is_empty());
        for key in 0..3 {
            assert!(map.insert(key, key * 10));
        }
        assert!(!map.is_empty());
        assert!(!map.insert(1, 99), "held already");
        assert_eq!(map.get(&1), Some(&10));
        assert!(map.insert(3, 30));
        assert_eq!((map.len(), map.get(&0), map.get(&3)), (3, None, Some(&30)), "0 was oldest");

        let mut bytes: FifoMap<Arc<[u8]>, u8> = FifoMap::weighed(10, 8, |key, _| key.len());
        assert!(bytes.insert(Arc::from(&[1u8; 3][..]), 1));
        assert!(bytes.insert(Arc::from(&[2u8; 3][..]), 2));
        assert!(!bytes.insert(Arc::from(&[3u8; 9][..]), 3), "heavier than the whole bound");
        assert!(bytes.insert(Arc::from(&[4u8; 4][..]), 4));
        assert_eq!(bytes.weight(), 7, "the first key went to make room");
        assert!(!bytes.contains_key(&[1u8; 3][..]));
        assert_eq!(bytes.get(&[2u8; 3][..]), Some(&2));
        assert_eq!(bytes.len(), 2);
        // The bounds are inclusive: entries that weigh exactly the bound fit.
        assert!(bytes.insert(Arc::from(&[5u8; 1][..]), 5));
        assert_eq!((bytes.len(), bytes.weight()), (3, 8), "3 + 4 + 1 is the bound, nothing went");
        assert!(bytes.insert(Arc::from(&[6u8; 8][..]), 6));
        assert_eq!((bytes.len(), bytes.weight()), (1, 8), "one entry of the whole bound, alone");
    }
}
