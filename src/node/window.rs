//! [`IdWindow`]: the node's bounded memory of recent transaction ids (their fates, their
//! submit times). One structure, so both windows keep the same bound the same way.

use std::collections::{HashMap, VecDeque};

use tessera_components::TxnId;

/// A map from recent transaction ids to `V`, holding at most `max` ids: inserting one more
/// forgets the oldest. Ids may also leave early ([`IdWindow::remove`]); the ring forgets
/// those lazily ([`IdWindow::trim`]), and counts them against `max` until then, so the ring
/// itself never holds more than `max` ids and never reallocates once reserved.
#[derive(Debug)]
pub(super) struct IdWindow<V> {
    map: HashMap<TxnId, V>,
    order: VecDeque<TxnId>,
    max: usize,
}

impl<V> IdWindow<V> {
    /// An empty window that reserves nothing up front.
    pub(super) fn new(max: usize) -> IdWindow<V> {
        assert!(max > 0, "a window holds at least one id");
        IdWindow { map: HashMap::new(), order: VecDeque::new(), max }
    }

    /// An empty window with its whole size reserved: the ring for `max` ids, and the map for
    /// twice that, the size a map holding `max` entries under constant churn settles at (below
    /// it, tombstones force a resize long after the window first filled).
    pub(super) fn reserved(max: usize) -> IdWindow<V> {
        assert!(max > 0, "a window holds at least one id");
        IdWindow { map: HashMap::with_capacity(2 * max), order: VecDeque::with_capacity(max), max }
    }

    /// Records `value` for `id`. A known id keeps its place in the ring, and its value is
    /// replaced only where `replace` says so.
    pub(super) fn record(&mut self, id: TxnId, value: V, replace: impl FnOnce(&V) -> bool) {
        if let Some(known) = self.map.get_mut(&id) {
            if replace(known) {
                *known = value;
            }
            return;
        }
        // Forget first, so the ring never holds more than `max`.
        if self.order.len() == self.max
            && let Some(old) = self.order.pop_front()
        {
            self.map.remove(&old);
        }
        self.map.insert(id, value);
        self.order.push_back(id);
        debug_assert!(self.order.len() <= self.max);
        debug_assert!(self.map.len() <= self.order.len());
    }

    pub(super) fn get(&self, id: &TxnId) -> Option<&V> {
        self.map.get(id)
    }

    pub(super) fn contains(&self, id: &TxnId) -> bool {
        self.map.contains_key(id)
    }

    /// Forgets `id` now; its place in the ring goes at the next [`IdWindow::trim`] or when it
    /// reaches the front.
    pub(super) fn remove(&mut self, id: &TxnId) -> Option<V> {
        self.map.remove(id)
    }

    /// Drops the front of the ring while its ids were already removed. Entries leave in
    /// roughly the order they came (commits follow submissions), so this keeps the ring near
    /// the number of ids still held.
    pub(super) fn trim(&mut self) {
        while self.order.front().is_some_and(|id| !self.map.contains_key(id)) {
            self.order.pop_front();
        }
    }

    /// Ids held.
    pub(super) fn len(&self) -> usize {
        self.map.len()
    }

    /// Places in the ring, removed ids not yet trimmed included.
    pub(super) fn ring_len(&self) -> usize {
        self.order.len()
    }
}

#[cfg(test)]
mod tests {
    use tessera_components::{Hash, TxnId};

    use super::IdWindow;

    fn id(n: u32) -> TxnId {
        let mut bytes = [0u8; 32];
        bytes[..4].copy_from_slice(&n.to_le_bytes());
        TxnId(Hash(bytes))
    }

    #[test]
    fn the_oldest_id_is_forgotten_first_and_the_bound_holds() {
        let mut window = IdWindow::reserved(3);
        for n in 0..5 {
            window.record(id(n), n, |_| true);
            assert!(window.ring_len() <= 3);
        }
        assert!(!window.contains(&id(0)) && !window.contains(&id(1)));
        assert_eq!((window.get(&id(2)), window.get(&id(4))), (Some(&2), Some(&4)));
        assert_eq!(window.len(), 3);
    }

    #[test]
    fn a_known_id_is_replaced_only_where_allowed_and_keeps_its_place() {
        let mut window = IdWindow::new(2);
        window.record(id(1), "rejected", |_| true);
        window.record(id(1), "committed", |old| *old != "committed");
        window.record(id(1), "duplicate", |old| *old != "committed");
        assert_eq!(window.get(&id(1)), Some(&"committed"));
        assert_eq!(window.ring_len(), 1);
    }

    #[test]
    fn removed_ids_leave_the_ring_at_trim_and_count_until_then() {
        let mut window = IdWindow::new(4);
        for n in 0..4 {
            window.record(id(n), (), |_| true);
        }
        window.remove(&id(0));
        window.remove(&id(1));
        window.remove(&id(3));
        assert_eq!((window.len(), window.ring_len()), (1, 4));
        window.trim();
        // 0 and 1 were at the front; 3 waits behind 2, which is still held.
        assert_eq!((window.len(), window.ring_len()), (1, 2));
        // Stale places still count against the bound, and a new id pushes out the front.
        for n in 10..13 {
            window.record(id(n), (), |_| true);
        }
        assert!(window.ring_len() <= 4);
        assert!(!window.contains(&id(2)));
    }
}
