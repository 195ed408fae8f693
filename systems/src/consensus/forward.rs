//! Client transactions forwarded to the next leaders, and sent again when those leaders did
//! not include them.
//!
//! In a large validator set a validator forwards the client transactions it admits only to
//! the leaders of its current view and the next two ([`Core::forward_destination`]). A leader
//! whose view fails (it crashed, or its proposal came too late) then holds them until it leads
//! again, n views on. So the validator that forwarded a transaction remembers the view it sent
//! it in, and once [`FORWARD_VIEWS`] views have passed with the transaction still pending in its
//! own mempool, sends it to the leaders of the view it is in now; then again after twice as
//! many views, and so on up to [`Forwarded::INTERVAL_MAX`]. The back-off matters when blocks are
//! full: a backlog waits for room, not for a leader, and sending all of it every three views
//! would cost work in proportion to the backlog, every three views.
//!
//! [`Core::forward_destination`]: super::core::Core::forward_destination

use std::cmp::Reverse;
use std::collections::BinaryHeap;

use tessera_components::{Txn, TxnId};

use super::core::FORWARD_VIEWS;

/// One transaction forwarded: when (in views) to send it again if still pending, and how long
/// the wait after that is.
#[derive(Debug)]
struct Sent {
    due: u64,
    seq: u64,
    interval: u64,
    txn: Txn,
    id: TxnId,
}

impl PartialEq for Sent {
    fn eq(&self, other: &Self) -> bool {
        (self.due, self.seq) == (other.due, other.seq)
    }
}

impl Eq for Sent {}

impl PartialOrd for Sent {
    fn partial_cmp(&self, other: &Self) -> Option<std::cmp::Ordering> {
        Some(self.cmp(other))
    }
}

impl Ord for Sent {
    fn cmp(&self, other: &Self) -> std::cmp::Ordering {
        (self.due, self.seq).cmp(&(other.due, other.seq))
    }
}

/// What a validator forwarded to the next leaders, by when to send it again. Bounded by
/// [`Forwarded::MAX`]: past it a newly forwarded transaction is not remembered (its leaders
/// still have it).
#[derive(Debug, Default)]
pub struct Forwarded {
    sent: BinaryHeap<Reverse<Sent>>,
    seq: u64,
}

impl Forwarded {
    /// Most transactions remembered: a mempool's worth.
    pub const MAX: usize = 1 << 17;

    /// The longest wait, in views, before a pending transaction is sent again.
    pub const INTERVAL_MAX: u64 = 32 * FORWARD_VIEWS;

    /// Records `txns` as sent to the leaders of `view` onwards.
    pub fn note(&mut self, view: u64, txns: impl IntoIterator<Item = (Txn, TxnId)>) {
        for (txn, id) in txns {
            self.remember(view, FORWARD_VIEWS, txn, id);
        }
    }

    fn remember(&mut self, view: u64, interval: u64, txn: Txn, id: TxnId) {
        if self.sent.len() >= Self::MAX {
            return;
        }
        self.seq += 1;
        self.sent.push(Reverse(Sent {
            due: view.saturating_add(interval),
            seq: self.seq,
            interval,
            txn,
            id,
        }));
    }

    /// The transactions whose wait ended by `view` and that are still `pending` here, in the
    /// order they were due: to be sent to the leaders of `view` onwards, and remembered with
    /// twice the wait. Those no longer pending (finalized, pruned, evicted) are forgotten.
    pub fn due(&mut self, view: u64, pending: impl Fn(&TxnId) -> bool) -> Vec<(Txn, TxnId)> {
        let mut again = Vec::new();
        while self.sent.peek().is_some_and(|Reverse(sent)| sent.due <= view) {
            let Some(Reverse(sent)) = self.sent.pop() else { break };
            if pending(&sent.id) {
                again.push(sent);
            }
        }
        again
            .into_iter()
            .map(|sent| {
                let interval = sent.interval.saturating_mul(2).min(Self::INTERVAL_MAX);
                self.remember(view, interval, sent.txn, sent.id);
                (sent.txn, sent.id)
            })
            .collect()
    }

    /// Transactions remembered.
    pub fn len(&self) -> usize {
        self.sent.len()
    }

    /// True when nothing is remembered.
    pub fn is_empty(&self) -> bool {
        self.sent.is_empty()
    }
}

#[cfg(test)]
mod tests {
    use tessera_components::TxnBody;

    use super::*;

    fn txn(nonce: u64) -> (Txn, TxnId) {
        let txn = Txn::unsigned(TxnBody::transfer(1, [1; 32], [2; 32], 1, 1, nonce));
        (txn, txn.id())
    }

    /// A transaction is sent again once FORWARD_VIEWS views passed while it stayed pending,
    /// then after twice as many, up to INTERVAL_MAX; one no longer pending is forgotten.
    #[test]
    fn pending_transactions_are_sent_again_with_a_growing_wait() {
        let nonces =
            |again: Vec<(Txn, TxnId)>| again.iter().map(|(txn, _)| txn.body.nonce).collect::<Vec<u64>>();
        let mut forwarded = Forwarded::default();
        forwarded.note(10, [txn(0), txn(1)]);
        forwarded.note(11, [txn(2)]);
        assert!(forwarded.due(12, |_| true).is_empty(), "too soon");
        let finalized = txn(1).1;
        assert_eq!(nonces(forwarded.due(13, |id| *id != finalized)), [0]);
        assert_eq!(forwarded.len(), 2, "the one sent in view 11, and the one sent again in 13");
        assert_eq!(nonces(forwarded.due(15, |_| true)), [2], "nonce 0 waits 6 views now");
        assert_eq!(nonces(forwarded.due(19, |_| true)), [0]);
        assert!(forwarded.due(20, |_| true).is_empty());
        // The wait doubles up to its bound: 12, 24, 48, then 96 views.
        let fired: Vec<u64> =
            (20..=600).filter(|view| !forwarded.due(*view, |id| *id == txn(0).1).is_empty()).collect();
        assert_eq!(fired, [31, 55, 103, 199, 295, 391, 487, 583]);
        assert!(forwarded.due(u64::MAX, |_| false).is_empty());
        assert!(forwarded.is_empty());
    }

    /// Past its bound a newly forwarded transaction is not remembered.
    #[test]
    fn the_record_is_bounded() {
        let mut forwarded = Forwarded::default();
        forwarded.note(0, (0..Forwarded::MAX as u64 + 5).map(txn));
        assert_eq!(forwarded.len(), Forwarded::MAX);
        let again = forwarded.due(3, |_| true);
        assert_eq!((again.len(), again[0].0.body.nonce), (Forwarded::MAX, 0));
    }
}
