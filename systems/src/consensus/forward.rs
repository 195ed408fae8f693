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
//! What a client can make a validator remember and send is bounded: a transaction is
//! remembered once however often it arrives, at most [`Forwarded::PER_SENDER_MAX`] per sender,
//! and it is sent again at most [`Forwarded::SENDS_MAX`] times; after that the validator that
//! admitted it still holds it and proposes it when it leads. At most [`Forwarded::DUE_MAX`] go
//! out per call, so a view jump does not flush the whole record into the network at once.
//!
//! A transaction that waits behind a nonce gap costs its sender nothing: it is never included,
//! so it never pays a fee. Funded keys could keep the whole record full of such transactions
//! and so stop everybody else's from being sent again. So a transaction is noted as *next in
//! line* (its nonce is its sender's account nonce, or follows a run of pending nonces from it)
//! or as *waiting*, and waiting ones share a budget of their own,
//! [`Forwarded::WAITING_MAX`]. And when a class is full, a newcomer takes the place of the
//! entry of its class that pays the least fee, if it pays more. A transaction next in line
//! that pays too little to be packed while blocks are full would otherwise hold its place for
//! free; to hold a place against others, a transaction must outbid them, and leaders pack the
//! best payers first, so it is included and pays.
//!
//! [`Core::forward_destination`]: super::core::Core::forward_destination

use std::cmp::Reverse;
use std::collections::{BTreeMap, BTreeSet, HashMap};

use tessera_components::{Txn, TxnId};

use super::core::FORWARD_VIEWS;

/// One transaction forwarded: the wait after its next send, how many times it was sent again,
/// and whether it waited behind a nonce gap when noted. Kept under (due view, sequence).
#[derive(Debug)]
struct Sent {
    interval: u64,
    sends: u32,
    waiting: bool,
    txn: Txn,
    id: TxnId,
}

/// Where an entry sits in its class's fee order: cheapest first, and among equal fees the
/// newest first (as the mempool evicts), then where it sits in `sent`.
type FeeKey = (u64, Reverse<u64>, u64);

/// What a validator forwarded to the next leaders, by when to send it again. Bounded by
/// [`Forwarded::MAX`], and its waiting class by [`Forwarded::WAITING_MAX`]: past its class's
/// bound a newly forwarded transaction takes the place of the one of its class paying the least
/// fee, if it pays more; else it is not remembered (its leaders still have it).
#[derive(Debug, Default)]
pub struct Forwarded {
    /// By (due view, sequence).
    sent: BTreeMap<(u64, u64), Sent>,
    /// Each class's entries (next in line, waiting) by fee.
    by_fee: [BTreeSet<FeeKey>; 2],
    /// The ids in `sent`, with where each sits there: a transaction that arrives twice is
    /// remembered once, and one a finalized block included is forgotten at once.
    ids: HashMap<TxnId, (u64, u64)>,
    /// Entries in `sent` per sender.
    per_sender: HashMap<[u8; 32], u32>,
    seq: u64,
}

impl Forwarded {
    /// Most transactions remembered (2^17, against a mempool's default 200,000).
    pub const MAX: usize = 1 << 17;

    /// The longest wait, in views, before a pending transaction is sent again.
    pub const INTERVAL_MAX: u64 = 32 * FORWARD_VIEWS;

    /// Most times a transaction is sent again: after 3, 6, 12, 24, 48 and 96 views.
    pub const SENDS_MAX: u32 = 6;

    /// Most transactions remembered per sender.
    pub const PER_SENDER_MAX: u32 = 64;

    /// Most transactions remembered that waited behind a nonce gap when noted (an eighth of
    /// [`Forwarded::MAX`]): the rest is kept for transactions next in line.
    pub const WAITING_MAX: usize = Self::MAX / 8;

    /// Most transactions [`Forwarded::due`] hands out at once (a bound on what one tick sends); the rest
    /// stay due for the next call.
    pub const DUE_MAX: usize = 4096;

    /// Records `txns` as sent to the leaders of `view` onwards; one already remembered, or past
    /// its sender's share or the bound (or, waiting behind a nonce gap, past the waiting
    /// budget), is not recorded. `next_in_line` says whether a transaction's nonce is its
    /// sender's next to execute, given what is pending; a transaction that follows one of its
    /// sender's next in line earlier in `txns` is next in line too (`txns` may not be pending
    /// yet).
    pub fn note(
        &mut self,
        view: u64,
        txns: impl IntoIterator<Item = (Txn, TxnId)>,
        next_in_line: impl Fn(&Txn) -> bool,
    ) {
        // The nonce after each sender's last transaction next in line among `txns`.
        let mut follows: HashMap<[u8; 32], u64> = HashMap::new();
        for (txn, id) in txns {
            let (sender, nonce) = (txn.body.sender, txn.body.nonce);
            if self.per_sender.get(&sender).copied().unwrap_or(0) >= Self::PER_SENDER_MAX {
                continue;
            }
            let in_line = follows.get(&sender) == Some(&nonce) || next_in_line(&txn);
            if in_line {
                follows.insert(sender, nonce.saturating_add(1));
            }
            let due = view.saturating_add(FORWARD_VIEWS);
            let waiting = !in_line;
            self.remember(due, Sent { interval: FORWARD_VIEWS, sends: 0, waiting, txn, id });
        }
    }

    fn remember(&mut self, due: u64, sent: Sent) {
        let sender = sent.txn.body.sender;
        let from_sender = self.per_sender.get(&sender).copied().unwrap_or(0);
        if from_sender >= Self::PER_SENDER_MAX || self.ids.contains_key(&sent.id) {
            return;
        }
        let class = usize::from(sent.waiting);
        let full = self.sent.len() >= Self::MAX || (sent.waiting && self.waiting() >= Self::WAITING_MAX);
        if full {
            // The cheapest of the newcomer's class makes way, if it pays less.
            let Some(&(fee, Reverse(seq), due)) = self.by_fee[class].first() else { return };
            if fee >= sent.txn.body.fee {
                return;
            }
            if let Some(evicted) = self.sent.remove(&(due, seq)) {
                self.forget(due, seq, &evicted);
            }
        }
        self.seq += 1;
        self.ids.insert(sent.id, (due, self.seq));
        *self.per_sender.entry(sender).or_insert(0) += 1;
        self.by_fee[class].insert((sent.txn.body.fee, Reverse(self.seq), due));
        self.sent.insert((due, self.seq), sent);
    }

    /// Drops what the indexes hold of `sent`, already taken out of `sent` from (`due`, `seq`).
    fn forget(&mut self, due: u64, seq: u64, sent: &Sent) {
        self.ids.remove(&sent.id);
        self.by_fee[usize::from(sent.waiting)].remove(&(sent.txn.body.fee, Reverse(seq), due));
        let sender = sent.txn.body.sender;
        if let Some(count) = self.per_sender.get_mut(&sender) {
            *count -= 1;
            if *count == 0 {
                self.per_sender.remove(&sender);
            }
        }
    }

    /// Forgets the transactions among `ids` that it remembers: a finalized block included
    /// them, so no leader needs them again. Until their wait ended they held places of their
    /// sender's share and of the bound, and a busy sender's next transactions were not
    /// remembered.
    pub fn included<'i>(&mut self, ids: impl IntoIterator<Item = &'i TxnId>) {
        for id in ids {
            let Some(&(due, seq)) = self.ids.get(id) else { continue };
            if let Some(sent) = self.sent.remove(&(due, seq)) {
                self.forget(due, seq, &sent);
            }
        }
    }

    /// Up to [`Forwarded::DUE_MAX`] transactions whose wait ended by `view` and that are still
    /// `pending` here, in the order they were due: to be sent to the leaders of `view` onwards,
    /// and remembered with twice the wait until sent [`Forwarded::SENDS_MAX`] times. Those no
    /// longer pending (finalized, pruned, evicted) are forgotten.
    pub fn due(&mut self, view: u64, pending: impl Fn(&TxnId) -> bool) -> Vec<(Txn, TxnId)> {
        let mut again = Vec::new();
        while again.len() < Self::DUE_MAX
            && self.sent.first_key_value().is_some_and(|((due, _), _)| *due <= view)
        {
            let Some(((due, seq), sent)) = self.sent.pop_first() else { break };
            self.forget(due, seq, &sent);
            if pending(&sent.id) {
                again.push(sent);
            }
        }
        again
            .into_iter()
            .map(|sent| {
                let (txn, id) = (sent.txn, sent.id);
                if sent.sends + 1 < Self::SENDS_MAX {
                    let interval = sent.interval.saturating_mul(2).min(Self::INTERVAL_MAX);
                    let due = view.saturating_add(interval);
                    self.remember(due, Sent { interval, sends: sent.sends + 1, ..sent });
                }
                (txn, id)
            })
            .collect()
    }

    /// Transactions remembered.
    pub fn len(&self) -> usize {
        self.sent.len()
    }

    /// Transactions remembered that waited behind a nonce gap when noted.
    pub fn waiting(&self) -> usize {
        self.by_fee[1].len()
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

    /// Every transaction next in line.
    fn in_line(_: &Txn) -> bool {
        true
    }

    /// A transaction from a sender of its own.
    fn from(sender: u64) -> (Txn, TxnId) {
        let mut body = TxnBody::transfer(1, [0; 32], [2; 32], 1, 1, 0);
        body.sender[..8].copy_from_slice(&sender.to_le_bytes());
        let txn = Txn::unsigned(body);
        (txn, txn.id())
    }

    /// A transaction is sent again once FORWARD_VIEWS views passed while it stayed pending,
    /// then after twice as many, up to INTERVAL_MAX, SENDS_MAX times in all; one no longer
    /// pending is forgotten.
    #[test]
    fn pending_transactions_are_sent_again_with_a_growing_wait() {
        let nonces =
            |again: Vec<(Txn, TxnId)>| again.iter().map(|(txn, _)| txn.body.nonce).collect::<Vec<u64>>();
        let mut forwarded = Forwarded::default();
        forwarded.note(10, [txn(0), txn(1)], in_line);
        forwarded.note(11, [txn(2)], in_line);
        assert!(forwarded.due(12, |_| true).is_empty(), "too soon");
        let finalized = txn(1).1;
        assert_eq!(nonces(forwarded.due(13, |id| *id != finalized)), [0]);
        assert_eq!(forwarded.len(), 2, "the one sent in view 11, and the one sent again in 13");
        assert_eq!(nonces(forwarded.due(15, |_| true)), [2], "nonce 0 waits 6 views now");
        assert_eq!(nonces(forwarded.due(19, |_| true)), [0]);
        assert!(forwarded.due(20, |_| true).is_empty());
        // Sent at 13 and 19 so far; then after 12, 24, 48 and 96 views, and no more.
        let fired: Vec<u64> =
            (20..=2000).filter(|view| !forwarded.due(*view, |id| *id == txn(0).1).is_empty()).collect();
        assert_eq!(fired, [31, 55, 103, 199]);
        assert!(forwarded.is_empty(), "forgotten after its last send");
    }

    /// A transaction that arrives many times is remembered once; a sender has at most its
    /// share; at most DUE_MAX come due at once, the rest at the next call.
    #[test]
    fn what_a_client_can_make_it_remember_is_bounded() {
        let mut forwarded = Forwarded::default();
        forwarded.note(0, std::iter::repeat_n(txn(0), 1000), in_line);
        assert_eq!(forwarded.len(), 1, "one transaction sent a thousand times");
        forwarded.note(0, (1..1000).map(txn), in_line);
        assert_eq!(forwarded.len(), Forwarded::PER_SENDER_MAX as usize, "one sender's share");
        let mut many = Forwarded::default();
        many.note(0, (0..Forwarded::DUE_MAX as u64 + 10).map(from), in_line);
        assert_eq!(many.due(3, |_| true).len(), Forwarded::DUE_MAX);
        assert_eq!(many.due(3, |_| true).len(), 10, "the rest at the next call");
    }

    /// What a finalized block included is forgotten at once: its places in its sender's share
    /// go to the sender's next transactions, which were not remembered before (they waited
    /// for the included ones to come due), and nothing included is sent again.
    #[test]
    fn included_transactions_give_their_places_back() {
        let share = u64::from(Forwarded::PER_SENDER_MAX);
        let mut forwarded = Forwarded::default();
        forwarded.note(0, (0..share).map(txn), in_line);
        let included: Vec<TxnId> = (0..share).map(|nonce| txn(nonce).1).collect();
        forwarded.included(&included[..share as usize / 2]);
        assert_eq!(forwarded.len(), share as usize / 2);
        forwarded.note(1, (share..2 * share).map(txn), in_line);
        assert_eq!(forwarded.len(), share as usize, "the sender's share is full again");
        let again = forwarded.due(3, |_| true);
        assert_eq!(again.len(), share as usize / 2, "what was included is not sent again");
        assert!(again.iter().all(|(_, id)| !included[..share as usize / 2].contains(id)));
        // The first batch's rest, sent again and remembered with a longer wait, then included;
        // and the first of the second batch.
        forwarded.included(&included);
        forwarded.included(&[txn(share).1]);
        assert_eq!(forwarded.len(), share as usize / 2 - 1, "the second batch's, but one");
    }

    /// Funded keys that keep transactions pending behind a nonce gap (never included, so never
    /// paying) fill only the waiting budget: a transaction next in line is still remembered.
    /// Without the budget, 2,048 such keys filled the whole record.
    #[test]
    fn transactions_behind_a_gap_cannot_crowd_out_those_next_in_line() {
        // Sender s's account nonce is 0 and nothing of it is pending: nonce 0 is next in line,
        // nonces 1.. wait behind the gap at 0, unless nonce 0 came earlier in the same batch.
        let nonce_0_only = |txn: &Txn| txn.body.nonce == 0;
        let gapped = |sender: u64, nonce: u64| {
            let (mut txn, _) = from(sender);
            txn.body.nonce = nonce;
            (txn, txn.id())
        };
        let mut forwarded = Forwarded::default();
        let attackers = (Forwarded::MAX / Forwarded::PER_SENDER_MAX as usize) as u64;
        for sender in 0..attackers {
            forwarded.note(
                0,
                (1..=u64::from(Forwarded::PER_SENDER_MAX)).map(|n| gapped(sender, n)),
                nonce_0_only,
            );
        }
        assert_eq!(forwarded.len(), Forwarded::WAITING_MAX);
        assert_eq!(forwarded.waiting(), Forwarded::WAITING_MAX);
        // An honest client's run of nonces 0, 1, 2 in one batch is all next in line.
        let honest = attackers + 1;
        forwarded.note(0, (0..3).map(|n| gapped(honest, n)), nonce_0_only);
        assert_eq!(forwarded.len(), Forwarded::WAITING_MAX + 3, "the honest run is remembered");
        assert_eq!(forwarded.waiting(), Forwarded::WAITING_MAX);
        // Forgetting a waiting one frees its share of the budget.
        while !forwarded.is_empty() {
            assert!(forwarded.due(3, |_| false).is_empty(), "nothing pending, nothing sent");
        }
        assert_eq!(forwarded.waiting(), 0);
        forwarded.note(4, [gapped(0, 9)], nonce_0_only);
        assert_eq!(forwarded.waiting(), 1);
    }

    /// Past a class's bound a newcomer takes the place of the cheapest entry of its class
    /// (among equal fees, the newest), if it pays more: transactions next in line that pay too
    /// little to be packed cannot hold the record for free.
    #[test]
    fn a_full_class_gives_way_to_a_better_payer() {
        let paying = |sender: u64, nonce: u64, fee: u64| {
            let (mut txn, _) = from(sender);
            (txn.body.nonce, txn.body.fee) = (nonce, fee);
            (txn, txn.id())
        };
        let nonce_0_only = |txn: &Txn| txn.body.nonce == 0;
        let mut forwarded = Forwarded::default();
        forwarded.note(0, (0..Forwarded::MAX as u64).map(|sender| paying(sender, 0, 1)), nonce_0_only);
        assert_eq!(forwarded.len(), Forwarded::MAX);
        let (cheap, better) = (paying(1 << 40, 0, 1), paying(1 << 41, 0, 2));
        forwarded.note(1, [cheap], nonce_0_only);
        forwarded.note(1, [better], nonce_0_only);
        assert_eq!(forwarded.len(), Forwarded::MAX);
        let due: Vec<TxnId> = std::iter::from_fn(|| Some(forwarded.due(4, |_| true)))
            .take_while(|again| !again.is_empty())
            .flatten()
            .map(|(_, id)| id)
            .collect();
        assert!(due.contains(&better.1), "the better payer is remembered");
        assert!(!due.contains(&cheap.1), "an equal fee does not evict");
        let newest = paying(Forwarded::MAX as u64 - 1, 0, 1).1;
        assert!(!due.contains(&newest), "among equal fees the newest made way");
        assert!(due.contains(&paying(0, 0, 1).1));

        // The waiting class gives way within itself, never taking a place of the other.
        let mut forwarded = Forwarded::default();
        let waiting = |sender: u64, fee: u64| paying(sender, 1, fee);
        forwarded.note(0, (0..Forwarded::WAITING_MAX as u64).map(|sender| waiting(sender, 5)), nonce_0_only);
        forwarded.note(0, [waiting(1 << 40, 3)], nonce_0_only);
        assert_eq!(forwarded.waiting(), Forwarded::WAITING_MAX, "a cheaper one is refused");
        forwarded.note(0, [waiting(1 << 41, 9), paying(1 << 42, 0, 1)], nonce_0_only);
        assert_eq!(forwarded.waiting(), Forwarded::WAITING_MAX, "a better one takes a waiting place");
        assert_eq!(forwarded.len(), Forwarded::WAITING_MAX + 1);
    }

    /// Past its bound a newly forwarded transaction is not remembered.
    #[test]
    fn the_record_is_bounded() {
        let mut forwarded = Forwarded::default();
        forwarded.note(0, (0..Forwarded::MAX as u64 + 5).map(from), in_line);
        assert_eq!(forwarded.len(), Forwarded::MAX);
    }
}
