//! Mempool: pending transactions, bounded in count and bytes, ordered per sender by nonce and
//! across senders by fee.
//!
//! Bird's eye view: three indexes over one set of entries. `entries` (id → transaction) answers
//! membership; `by_sender` (sender → nonce → id, a BTreeMap so iteration is deterministic)
//! gives each sender's nonce order and the proposable heads; `by_fee` (fee, newest first, id)
//! gives the eviction order. Every mutation keeps all three in step, and
//! [`Mempool::check_consistency`] proves it in tests and in `check_invariants`.
//!
//! Block space is paid for. A sender's pending transactions are admitted only while their
//! amounts and fees, summed, fit its executed balance (`debits` keeps the sums), a block only
//! packs what the sender can still pay, and after each executed block the senders it touched
//! drop the pending tail they can no longer pay ([`Mempool::drop_unaffordable`]). So transfers
//! from unfunded or underfunded keys, however high their fee, never enter the pool, never
//! evict a funded transfer and never take a block's room.
//!
//! Nor does a transaction behind a nonce gap take room anyone else needs. One is admitted only
//! into room the pool has spare, at most an eighth of it, and a transaction in line (its
//! sender's nonces pending from its account nonce up to it) evicts such ones first, whatever
//! their fees. A transaction behind a gap can never be packed, and is pruned only when its
//! sender's nonce moves; before this rule a funded key could send nonces n + 1, n + 2, … at a
//! fee just above the honest ones, keep n back, and hold the whole pool at no cost, evicting
//! transfers that could execute (found in review).
//!
//! A sender's nonces in a block this node packed are out of the pool but not yet executed.
//! They count as present ([`Mempool::note_packed`]) until a block at that height commits
//! ([`Mempool::settle`]), so a sender streaming its next nonces while its head waits in a block
//! is in line, not behind a gap. Before, such honest transactions took the eighth of the pool
//! meant for gaps, were refused once it filled (a stalled view filled it) and were evicted
//! first, until the block committed (found in review). If the block is lost instead, the
//! commit at its height marks what now waits behind the missing nonces as behind a gap again.

use std::cmp::Reverse;
use std::collections::{BTreeMap, BTreeSet, BinaryHeap};

use foldhash::HashMap;

use bevy_ecs::prelude::*;
use tessera_components::constants::{MEMPOOL_ENTRY_BYTES, TXN_SIZE};
use tessera_components::{Account, BlockHeader, RejectReason, Stage, Txn, TxnBody, TxnId, TxnSignature};

use crate::config::PipelineConfig;
use crate::counters::{PipelineCounters, RejectCounters};
use crate::dedup::SeenIds;
use crate::ledger::Ledger;
use crate::messages::{BlockCommitted, TxnRejected};
use crate::plugin::Plugin;

/// The mempool subsystem's sets.
#[derive(SystemSet, Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum MempoolSystems {
    /// Admits [`Stage::Unique`] transactions and despawns every transaction entity.
    Admit,
    /// Drops pending transactions made stale by executed blocks.
    Prune,
}

#[derive(Clone, Copy, Debug)]
struct Entry {
    txn: Txn,
    seq: u64,
    /// Admitted behind a nonce gap: in [`Mempool::gapped`] until it leaves the pool.
    gapped: bool,
}

/// What admitting a transaction does to the pool ([`Mempool::admission`]).
struct Admission {
    /// The pending transaction of the same sender and nonce it replaces.
    same_nonce: Option<TxnId>,
    /// It is behind a nonce gap.
    gapped: bool,
    /// The pending transaction (with the same sender's higher nonces) it pushes out of a full
    /// pool.
    evict: Option<TxnBody>,
}

/// Eviction order: lowest fee first; among equal fees the newest arrival goes first, so a
/// flood at the floor fee cannot push out transactions that were already waiting.
#[derive(Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Debug)]
struct FeeKey {
    fee: u64,
    newest_first: Reverse<u64>,
    id: TxnId,
}

/// The pending-transaction pool. Written by [`admit_txns`] (inserts), propose (removes what it
/// packs) and [`prune_executed`].
#[derive(Debug, Resource)]
pub struct Mempool {
    capacity: usize,
    entries: HashMap<TxnId, Entry>,
    by_sender: BTreeMap<[u8; 32], BTreeMap<u64, TxnId>>,
    by_fee: BTreeSet<FeeKey>,
    /// The entries admitted behind a nonce gap, in eviction order: evicted before any other.
    gapped: BTreeSet<FeeKey>,
    /// Per sender, the amounts plus fees of its pending transactions (u128: no overflow).
    debits: HashMap<[u8; 32], u128>,
    /// Per sender, nonces packed into this node's own blocks and not yet settled
    /// ([`Mempool::note_packed`]). A BTreeMap: [`Mempool::settle`] walks it, and what it evicts
    /// must not depend on a hash seed.
    in_flight: BTreeMap<[u8; 32], InFlight>,
    next_seq: u64,
}

/// A sender's nonces from its account nonce up to, not including, `next` are in a block this
/// node built at `height` (the highest, if several), not yet settled by a commit there.
#[derive(Clone, Copy, Debug)]
struct InFlight {
    next: u64,
    height: u64,
}

/// The least fee that replaces a pending transaction paying `fee`: an eighth more, 1 at least.
pub fn replacement_fee_min(fee: u64) -> u64 {
    fee.saturating_add((fee / 8).max(1))
}

/// What a transaction takes from its sender's balance if it executes: amount plus fee.
pub fn debit(body: &TxnBody) -> u128 {
    u128::from(body.amount) + u128::from(body.fee)
}

impl Mempool {
    /// An empty pool holding at most `count_max` transactions and `bytes_max` bytes, each
    /// transaction charged [`MEMPOOL_ENTRY_BYTES`].
    pub fn new(count_max: usize, bytes_max: usize) -> Mempool {
        let capacity = count_max.min(bytes_max / MEMPOOL_ENTRY_BYTES);
        assert!(capacity > 0, "mempool must hold at least one transaction");
        Mempool {
            capacity,
            entries: HashMap::default(),
            by_sender: BTreeMap::new(),
            by_fee: BTreeSet::new(),
            gapped: BTreeSet::new(),
            debits: HashMap::default(),
            in_flight: BTreeMap::new(),
            next_seq: 0,
        }
    }

    /// Most senders [`Mempool::note_packed`] keeps noted.
    pub const IN_FLIGHT_MAX: usize = 1 << 16;

    /// Most entries admitted behind a nonce gap the pool holds: an eighth of it.
    pub fn gapped_max(&self) -> usize {
        (self.capacity / 8).max(1)
    }

    /// Entries admitted behind a nonce gap still pending.
    pub fn gapped_len(&self) -> usize {
        self.gapped.len()
    }

    /// Pending transactions.
    pub fn len(&self) -> usize {
        self.entries.len()
    }

    /// True when nothing is pending.
    pub fn is_empty(&self) -> bool {
        self.entries.is_empty()
    }

    /// Bytes charged against the byte bound.
    pub fn bytes(&self) -> usize {
        self.entries.len() * MEMPOOL_ENTRY_BYTES
    }

    /// Most transactions the pool will hold: the tighter of the count and byte bounds.
    pub fn capacity(&self) -> usize {
        self.capacity
    }

    /// Whether `id` is pending.
    pub fn contains(&self, id: &TxnId) -> bool {
        self.entries.contains_key(id)
    }

    /// The first nonce of `sender` (whose executed nonce is `account_nonce`) that is not in a
    /// block this node packed and has not seen settle.
    pub fn next_unpacked(&self, sender: &[u8; 32], account_nonce: u64) -> u64 {
        self.in_flight.get(sender).map_or(account_nonce, |flight| flight.next.max(account_nonce))
    }

    /// Whether a transaction of `sender` at `nonce` is pending.
    pub fn is_pending(&self, sender: &[u8; 32], nonce: u64) -> bool {
        self.by_sender.get(sender).is_some_and(|nonces| nonces.contains_key(&nonce))
    }

    /// Adds a verified transaction. `sender` is the sender's executed account (`None` if it
    /// has none). Returns how many pending transactions were pushed out (a replaced same-nonce
    /// transaction, or an evicted low-fee sender's tail).
    ///
    /// # Errors
    /// [`RejectReason::Duplicate`], [`RejectReason::NonceStale`],
    /// [`RejectReason::InsufficientFunds`] (the sender has no account, or its pending amounts
    /// and fees with this one's would exceed its balance), [`RejectReason::NonceTaken`] (same
    /// sender and nonce pending, and this one behind a gap or paying less than
    /// [`replacement_fee_min`] of its fee), or [`RejectReason::MempoolFull`]
    /// (no pending transaction has a lower fee; or, for a transaction behind a nonce gap, the
    /// pool has no spare room for one). On error the pool is unchanged.
    pub fn insert(&mut self, txn: Txn, id: TxnId, sender: Option<Account>) -> Result<u64, RejectReason> {
        let body = txn.body;
        if self.entries.contains_key(&id) {
            return Err(RejectReason::Duplicate);
        }
        let Admission { same_nonce, gapped, evict } =
            self.admission(&body, sender, 0).map_err(|(reason, _)| reason)?;
        let mut pushed_out = 0;
        if let Some(existing) = same_nonce {
            self.remove(&existing);
            pushed_out += 1;
        }
        if let Some(victim) = evict {
            pushed_out += self.remove_from_nonce(&victim.sender, victim.nonce);
        }
        let seq = self.next_seq;
        self.next_seq += 1;
        self.entries.insert(id, Entry { txn, seq, gapped });
        self.by_sender.entry(body.sender).or_default().insert(body.nonce, id);
        let key = FeeKey { fee: body.fee, newest_first: Reverse(seq), id };
        self.by_fee.insert(key);
        if gapped {
            self.gapped.insert(key);
        } else if same_nonce.is_none() {
            // A new nonce in line may close a gap; a replacement changes none.
            self.unmark_run(&body.sender, body.nonce.saturating_add(1));
        }
        *self.debits.entry(body.sender).or_default() += debit(&body);
        assert!(self.entries.len() <= self.capacity, "mempool exceeded its bound");
        Ok(pushed_out)
    }

    /// Why [`Mempool::insert`] would refuse a transaction of `body` now (`sender` as there),
    /// whatever its signature and id; `None` if it would not, but for a duplicate id. The
    /// refusals depend on the body and the pool alone, so the prefilter asks before any
    /// signature is checked: before, a variant that was always going to be refused (a second
    /// body for a nonce taken, a debit past the balance, a gapped one with no room) was verified
    /// first, and its sender could replay a set of them forever, each a verification charged to
    /// nobody (found in review).
    ///
    /// With `gap_closes` (every nonce below this one is pending or on its way through the
    /// pipeline: [`Mempool::reach`]), a refusal for being behind a gap is not given: those
    /// nonces may close it before the insert, as a run n, n + 1 sent together does.
    ///
    /// `owed_below` is what the sender's transactions on their way at lower nonces (not pending)
    /// will debit: it counts against the balance with the pool's pending debits.
    pub fn refusal(
        &self,
        body: &TxnBody,
        sender: Option<Account>,
        gap_closes: bool,
        owed_below: u128,
    ) -> Option<RejectReason> {
        match self.admission(body, sender, owed_below) {
            Err((reason, behind_gap)) if !(behind_gap && gap_closes) => Some(reason),
            _ => None,
        }
    }

    /// The first nonce of `sender` (whose executed nonce is `account_nonce`), at most `window`
    /// past it, that is neither pending, nor in a block this node packed, nor `coming`: once
    /// those coming are admitted, a transaction of any nonce up to it is in line.
    pub fn reach(
        &self,
        sender: &[u8; 32],
        account_nonce: u64,
        window: u64,
        coming: impl Fn(u64) -> bool,
    ) -> u64 {
        let mut nonce = match self.in_flight.get(sender) {
            Some(flight) if flight.next > account_nonce => flight.next,
            _ => account_nonce,
        };
        let pending = self.by_sender.get(sender);
        let end = account_nonce.saturating_add(window);
        while nonce < end && (pending.is_some_and(|nonces| nonces.contains_key(&nonce)) || coming(nonce)) {
            nonce += 1;
        }
        nonce
    }

    /// What admitting `body` would do to the pool, or why it is refused ([`Mempool::insert`]
    /// documents the refusals), and whether for being behind a gap.
    fn admission(
        &self,
        body: &TxnBody,
        sender: Option<Account>,
        owed_below: u128,
    ) -> Result<Admission, (RejectReason, bool)> {
        let firm = |reason| Err((reason, false));
        let Some(account) = sender else {
            return firm(RejectReason::InsufficientFunds);
        };
        if body.nonce < account.nonce {
            return firm(RejectReason::NonceStale);
        }
        let same_nonce = self.by_sender.get(&body.sender).and_then(|nonces| nonces.get(&body.nonce)).copied();
        let replaced = same_nonce.map_or(0, |existing| debit(&self.entries[&existing].txn.body));
        let pending = self.debits.get(&body.sender).copied().unwrap_or(0);
        if pending - replaced + owed_below + debit(body) > u128::from(account.balance) {
            return firm(RejectReason::InsufficientFunds);
        }
        // Behind a gap: some nonce between the account's and this one is neither pending nor
        // in a block this node packed.
        let gapped = !self.in_line(&body.sender, account.nonce, body.nonce, u64::MAX);
        let mut evict = None;
        if let Some(existing) = same_nonce {
            let old = self.entries[&existing];
            // A replacement pays an eighth more (1 at least), and none replaces a transaction
            // behind a gap, which never executes. Before, any higher fee replaced: behind a
            // gap, fees 1, 2, 3, … each verified, stored and forwarded by every validator
            // and none ever paid; in line, a thousand bumps cost only the last fee (found in
            // review).
            if body.fee <= old.txn.body.fee || body.fee < replacement_fee_min(old.txn.body.fee) {
                return firm(RejectReason::NonceTaken);
            }
            if gapped {
                return Err((RejectReason::NonceTaken, true));
            }
        } else if gapped {
            // Only into spare room, and an eighth of the pool at most: it evicts nothing.
            if self.entries.len() >= self.capacity || self.gapped.len() >= self.gapped_max() {
                return Err((RejectReason::MempoolFull, true));
            }
        } else if self.entries.len() >= self.capacity {
            // Entries behind a gap go first, whatever their fee; then the lowest fee.
            let (lowest, behind_gap) = match self.gapped.first() {
                Some(key) => (*key, true),
                None => (*self.by_fee.first().expect("a full pool is non-empty"), false),
            };
            let victim = self.entries[&lowest.id].txn.body;
            // Evicting a lower nonce of this very sender would strand the newcomer behind a gap.
            let own_lower_nonce = victim.sender == body.sender && victim.nonce < body.nonce;
            if (!behind_gap && lowest.fee >= body.fee) || own_lower_nonce {
                return firm(RejectReason::MempoolFull);
            }
            evict = Some(victim);
        }
        Ok(Admission { same_nonce, gapped, evict })
    }

    /// The run of `sender`'s pending nonces from `from` on is in line (it follows a new nonce
    /// in line, or starts at the sender's account nonce): those of it admitted behind what was
    /// a gap are no longer marked so. They take no share of the room for gaps, and are not
    /// evicted first. Marks go stale two ways: a lower nonce arrived after them, or their
    /// sender's head was in a block not yet final when they arrived and not noted
    /// ([`Mempool::note_packed`]), which its commit ([`Mempool::prune_sender`]) ends. A run
    /// lies within the nonce window of the account nonce, so a scan is bounded by it.
    fn unmark_run(&mut self, sender: &[u8; 32], from: u64) {
        // Nothing marked anywhere (the usual case): no walk of the sender's run, which every
        // committed transaction's prune asked for.
        if self.gapped.is_empty() {
            return;
        }
        let Some(nonces) = self.by_sender.get(sender) else { return };
        for (expected, (pending, id)) in (from..=u64::MAX).zip(nonces.range(from..)) {
            if *pending != expected {
                break;
            }
            let entry = self.entries.get_mut(id).expect("sender index out of step");
            if !entry.gapped {
                continue;
            }
            entry.gapped = false;
            let key = FeeKey { fee: entry.txn.body.fee, newest_first: Reverse(entry.seq), id: *id };
            let removed = self.gapped.remove(&key);
            assert!(removed, "gap index out of step");
        }
    }

    fn remove(&mut self, id: &TxnId) -> Option<Txn> {
        let entry = self.entries.remove(id)?;
        let body = entry.txn.body;
        let key = FeeKey { fee: body.fee, newest_first: Reverse(entry.seq), id: *id };
        let removed = self.by_fee.remove(&key);
        assert!(removed, "fee index out of step");
        if entry.gapped {
            let removed = self.gapped.remove(&key);
            assert!(removed, "gap index out of step");
        }
        let nonces = self.by_sender.get_mut(&body.sender).expect("sender index out of step");
        nonces.remove(&body.nonce);
        if nonces.is_empty() {
            self.by_sender.remove(&body.sender);
            self.debits.remove(&body.sender);
        } else {
            *self.debits.get_mut(&body.sender).expect("debit index out of step") -= debit(&body);
        }
        Some(entry.txn)
    }

    /// Whether `sender` has every nonce from `from` up to, not including, `nonce` pending: so a
    /// transaction at `nonce` is next in line once `from` is the sender's account nonce. Runs
    /// longer than `run_max` count as not (the scan is bounded by it).
    fn runs_up_to(&self, sender: &[u8; 32], from: u64, nonce: u64, run_max: u64) -> bool {
        let Some(run) = nonce.checked_sub(from) else { return false };
        if run == 0 {
            return true;
        }
        if run > run_max {
            return false;
        }
        let Some(nonces) = self.by_sender.get(sender) else { return false };
        // A sender's pending nonces that are exactly `from..nonce` need no walk (distinct keys
        // with that first, last and count are that run): the common case, a sender streaming
        // its next nonce, no longer walks its whole pending run at every insert.
        let (Some((first, _)), Some((last, _))) = (nonces.first_key_value(), nonces.last_key_value()) else {
            return false;
        };
        if *first == from && last.checked_add(1) == Some(nonce) && nonces.len() as u64 == run {
            return true;
        }
        nonces.range(from..nonce).map(|(pending, _)| *pending).eq(from..nonce)
    }

    /// Whether a transaction of `sender` at `nonce` is next in line: every nonce from
    /// `account_nonce` (the sender's executed nonce) up to it is pending, or in a block this
    /// node packed and has not seen settle ([`Mempool::note_packed`]). Runs of pending nonces
    /// longer than `run_max` count as not.
    pub fn in_line(&self, sender: &[u8; 32], account_nonce: u64, nonce: u64, run_max: u64) -> bool {
        let from = match self.in_flight.get(sender) {
            Some(flight) if flight.next > account_nonce => {
                if nonce <= flight.next {
                    return nonce >= account_nonce;
                }
                flight.next
            }
            _ => account_nonce,
        };
        self.runs_up_to(sender, from, nonce, run_max)
    }

    /// Notes what [`Mempool::pack`] took for a block this node built at `height`: until a block
    /// at that height or above commits ([`Mempool::settle`]), those nonces count as present, so
    /// what their senders send next is in line. One entry a sender packed since the last
    /// commit, at most [`Mempool::IN_FLIGHT_MAX`].
    pub fn note_packed(&mut self, height: u64, packed: &[(Txn, TxnId)]) {
        for (txn, _) in packed {
            // Bounded whatever a stall lasts (each view this node leads packs anew): past the
            // bound a sender is not noted, and what it sends next waits as behind a gap, as
            // before noting, until the commit.
            if self.in_flight.len() >= Self::IN_FLIGHT_MAX && !self.in_flight.contains_key(&txn.body.sender) {
                continue;
            }
            let next = txn.body.nonce.saturating_add(1);
            let flight = self.in_flight.entry(txn.body.sender).or_insert(InFlight { next, height });
            flight.next = flight.next.max(next);
            flight.height = flight.height.max(height);
        }
    }

    /// A block at `height` committed (`ledger` is the executed state, at that block or later):
    /// ends what [`Mempool::note_packed`] noted for blocks at `height` or below. A sender whose
    /// account nonce did not reach its packed nonces (this node's block was not the one that
    /// committed) has what waits after the first gap marked as behind it again; past the share
    /// for gaps, such entries are evicted as an insert evicts them, cheapest first with their
    /// sender's tail. Returns how many were evicted.
    pub fn settle(&mut self, height: u64, ledger: &Ledger) -> u64 {
        if self.in_flight.is_empty() {
            return 0;
        }
        let mut lost = Vec::new();
        self.in_flight.retain(|sender, flight| {
            if flight.height > height {
                return true;
            }
            if ledger.nonce_of(sender) < flight.next {
                lost.push(*sender);
            }
            false
        });
        for sender in &lost {
            self.mark_gaps(sender, ledger.nonce_of(sender));
        }
        let mut evicted = 0;
        while self.gapped.len() > self.gapped_max() {
            let key = *self.gapped.first().expect("more than the share is some");
            let victim = self.entries[&key.id].txn.body;
            evicted += self.remove_from_nonce(&victim.sender, victim.nonce);
        }
        evicted
    }

    /// Marks `sender`'s pending transactions after the first gap in its run from
    /// `account_nonce` as behind a gap.
    fn mark_gaps(&mut self, sender: &[u8; 32], account_nonce: u64) {
        let Some(nonces) = self.by_sender.get(sender) else { return };
        let mut expected = Some(account_nonce);
        for (nonce, id) in nonces.range(account_nonce..) {
            if expected == Some(*nonce) {
                expected = nonce.checked_add(1);
                continue;
            }
            expected = None;
            let entry = self.entries.get_mut(id).expect("sender index out of step");
            if !entry.gapped {
                entry.gapped = true;
                self.gapped.insert(FeeKey {
                    fee: entry.txn.body.fee,
                    newest_first: Reverse(entry.seq),
                    id: *id,
                });
            }
        }
    }

    /// Removes `sender`'s pending transactions with nonce ≥ `nonce`; returns how many.
    fn remove_from_nonce(&mut self, sender: &[u8; 32], nonce: u64) -> u64 {
        let Some(nonces) = self.by_sender.get(sender) else {
            return 0;
        };
        let doomed: Vec<TxnId> = nonces.range(nonce..).map(|(_, id)| *id).collect();
        for id in &doomed {
            self.remove(id);
        }
        doomed.len() as u64
    }

    /// Removes `sender`'s pending transactions with nonce below `account_nonce` (already
    /// executed, or made impossible by a block); returns how many.
    pub fn prune_sender(&mut self, sender: &[u8; 32], account_nonce: u64) -> u64 {
        let Some(nonces) = self.by_sender.get(sender) else {
            return 0;
        };
        let stale: Vec<TxnId> = nonces.range(..account_nonce).map(|(_, id)| *id).collect();
        for id in &stale {
            self.remove(id);
        }
        // What waited behind the nonces its block took is in line now.
        self.unmark_run(sender, account_nonce);
        stale.len() as u64
    }

    /// Removes, in nonce order, `sender`'s pending transactions from the first one whose
    /// amount and fee, added to those of its lower nonces, exceed `balance`; returns their ids.
    /// Run for each sender an executed block touched, since only a sender's own transactions
    /// lower its balance.
    pub fn drop_unaffordable(&mut self, sender: &[u8; 32], balance: u64) -> Vec<TxnId> {
        if self.debits.get(sender).is_none_or(|pending| *pending <= u128::from(balance)) {
            return Vec::new();
        }
        let nonces = &self.by_sender[sender];
        let mut spent = 0;
        let first_unpaid = nonces.iter().find_map(|(nonce, id)| {
            spent += debit(&self.entries[id].txn.body);
            (spent > u128::from(balance)).then_some(*nonce)
        });
        let doomed: Vec<TxnId> =
            first_unpaid.map_or_else(Vec::new, |nonce| nonces.range(nonce..).map(|(_, id)| *id).collect());
        for id in &doomed {
            self.remove(id);
        }
        doomed
    }

    /// Takes the best block's worth of transactions out of the pool: repeatedly the highest-fee
    /// sender head whose nonce is the sender's next executable nonce (oldest first among equal
    /// fees) and whose amount and fee the sender can still pay after what this block already
    /// takes from it, up to `txn_max` transactions and `bytes_max` bytes of block. Nonce gaps
    /// and transactions their senders cannot pay are left pending.
    pub fn pack(&mut self, ledger: &Ledger, txn_max: usize, bytes_max: usize) -> Vec<(Txn, TxnId)> {
        let room = bytes_max.saturating_sub(size_of::<BlockHeader>()) / TXN_SIZE;
        let limit = txn_max.min(room);
        let mut heads = BinaryHeap::new();
        for (sender, nonces) in &self.by_sender {
            if let Some((&nonce, id)) = nonces.first_key_value()
                && nonce == ledger.nonce_of(sender)
            {
                let entry = &self.entries[id];
                heads.push((entry.txn.body.fee, Reverse(entry.seq), *id));
            }
        }
        let mut packed = Vec::with_capacity(limit.min(self.entries.len()));
        // What this block takes from each sender so far. A commit may run just before a
        // proposal, ahead of the prune that drops what its senders can no longer pay.
        let mut spent: HashMap<[u8; 32], u128> = HashMap::default();
        while packed.len() < limit {
            let Some((_, _, id)) = heads.pop() else { break };
            let body = self.entries[&id].txn.body;
            let taken = spent.entry(body.sender).or_default();
            if *taken + debit(&body) > u128::from(ledger.balance_of(&body.sender)) {
                continue;
            }
            *taken += debit(&body);
            let txn = self.remove(&id).expect("head is pending");
            let next = txn.body.nonce + 1;
            if let Some(next_id) = self.by_sender.get(&txn.body.sender).and_then(|nonces| nonces.get(&next)) {
                let entry = &self.entries[next_id];
                heads.push((entry.txn.body.fee, Reverse(entry.seq), *next_id));
            }
            packed.push((txn, id));
        }
        packed
    }

    /// Proves the three indexes describe the same set and the bound holds.
    ///
    /// # Panics
    /// On any inconsistency (a programming error).
    pub fn check_consistency(&self) {
        assert!(self.entries.len() <= self.capacity);
        assert_eq!(self.by_fee.len(), self.entries.len());
        let by_sender_total: usize = self.by_sender.values().map(BTreeMap::len).sum();
        assert_eq!(by_sender_total, self.entries.len());
        assert_eq!(self.debits.len(), self.by_sender.len());
        for (sender, nonces) in &self.by_sender {
            let sum: u128 = nonces.values().map(|id| debit(&self.entries[id].txn.body)).sum();
            assert_eq!(self.debits[sender], sum, "debit index out of step");
        }
        for key in &self.by_fee {
            let entry = &self.entries[&key.id];
            assert_eq!(entry.txn.body.fee, key.fee);
            assert_eq!(self.by_sender[&entry.txn.body.sender][&entry.txn.body.nonce], key.id);
            assert_eq!(entry.gapped, self.gapped.contains(key), "gap index out of step");
        }
        assert!(self.gapped.len() <= self.gapped_max(), "more entries behind gaps than their share");
    }
}

/// Admits every [`Stage::Unique`] transaction and despawns every transaction entity except
/// those whose signature check is still in flight: this is the end of a transaction entity's
/// life.
pub fn admit_txns(
    mut commands: Commands,
    mut mempool: ResMut<Mempool>,
    mut seen: ResMut<SeenIds>,
    ledger: Res<Ledger>,
    mut counters: ResMut<RejectCounters>,
    mut pipeline: ResMut<PipelineCounters>,
    mut rejected: MessageWriter<TxnRejected>,
    txns: Query<(Entity, &TxnBody, &TxnSignature, &TxnId, &Stage)>,
) {
    // Refused for a nonce or for room, perhaps only for a lower nonce of its sender admitted
    // after it: tried again once the rest are in, by sender and nonce. Transactions are taken
    // in the order of the table they live in, which is not the order they came in once an
    // entity left it, so a run n, n + 1 verified together could meet n + 1 first, behind a
    // gap, and refuse it for want of gapped room (found in review).
    let mut unique: Vec<(Txn, TxnId)> = Vec::new();
    for (entity, body, signature, id, stage) in &txns {
        if *stage == Stage::Unique {
            unique.push((Txn { body: *body, signature: *signature }, *id));
        } else if let Stage::Rejected(reason) = stage {
            rejected.write(TxnRejected { id: *id, reason: *reason });
        }
        if *stage != Stage::Verifying {
            commands.entity(entity).despawn();
        }
    }
    let mut again: Vec<(Txn, TxnId)> = Vec::new();
    let mut admit = |txn: Txn, id: TxnId, last: bool, again: &mut Vec<(Txn, TxnId)>| match mempool.insert(
        txn,
        id,
        ledger.account(&txn.body.sender).copied(),
    ) {
        Ok(pushed_out) => {
            seen.insert(id);
            pipeline.admitted += 1;
            counters.add(RejectReason::Evicted, pushed_out);
        }
        Err(RejectReason::NonceTaken | RejectReason::MempoolFull) if !last => again.push((txn, id)),
        Err(reason) => {
            counters.bump(reason);
            rejected.write(TxnRejected { id, reason });
        }
    };
    for (txn, id) in unique {
        admit(txn, id, false, &mut again);
    }
    again.sort_by_key(|(txn, _)| (txn.body.sender, txn.body.nonce));
    for (txn, id) in std::mem::take(&mut again) {
        admit(txn, id, true, &mut again);
    }
}

/// Drops pending transactions whose nonces the last executed blocks consumed, and those their
/// senders can no longer pay (each is reported rejected for insufficient funds); settles what
/// this node packed at the committed heights ([`Mempool::settle`]).
pub fn prune_executed(
    mut committed: MessageReader<BlockCommitted>,
    mut mempool: ResMut<Mempool>,
    ledger: Res<Ledger>,
    mut counters: ResMut<RejectCounters>,
    mut rejected: MessageWriter<TxnRejected>,
) {
    for block in committed.read() {
        for txn in block.block.txns.iter() {
            let sender = &txn.body.sender;
            mempool.prune_sender(sender, ledger.nonce_of(sender));
            for id in mempool.drop_unaffordable(sender, ledger.balance_of(sender)) {
                counters.bump(RejectReason::InsufficientFunds);
                rejected.write(TxnRejected { id, reason: RejectReason::InsufficientFunds });
            }
        }
        let evicted = mempool.settle(block.block.header.height, &ledger);
        counters.add(RejectReason::Evicted, evicted);
    }
}

/// Installs the mempool.
#[derive(Debug, Default)]
pub struct MempoolPlugin;

impl Plugin for MempoolPlugin {
    fn build(&self, world: &mut World, schedule: &mut Schedule) {
        let config = world.resource::<PipelineConfig>();
        let mempool = Mempool::new(config.mempool_count_max, config.mempool_bytes_max);
        world.insert_resource(mempool);
        world.init_resource::<Messages<TxnRejected>>();
        schedule.add_systems((
            admit_txns.in_set(MempoolSystems::Admit),
            prune_executed.in_set(MempoolSystems::Prune),
        ));
    }
}

/// Fuzz harness for the mempool: `data` drives a structured sequence of operations (built with
/// `arbitrary`'s `Unstructured`): inserts from a handful of senders with small or extreme
/// nonces and fees, replays of earlier transactions, packs of a block, execution of the packed
/// block on a ledger followed by the prune the node runs, and direct prunes. A model of the
/// pending set checks every step: an insert that fails changes nothing, one that succeeds adds
/// exactly its transaction and pushes out as many as it reports; a pack removes exactly what it
/// returns, within its limits, highest-fee heads first and each sender's nonces contiguous from
/// its ledger nonce; the bound holds and the indexes stay in step. Run by `cargo test` on
/// seeded inputs and by `fuzz/fuzz_targets/mempool_ops.rs`.
#[cfg(any(test, fuzzing, feature = "fuzzing"))]
pub fn fuzz_ops(data: &[u8]) {
    use arbitrary::Unstructured;

    const SENDERS: u8 = 6;
    fn value(u: &mut Unstructured<'_>, small: u64) -> arbitrary::Result<u64> {
        Ok(match u.int_in_range(0..=7u8)? {
            0 => u.arbitrary()?,
            1 => u64::MAX - u64::from(u.int_in_range(0..=2u8)?),
            _ => u.int_in_range(0..=small)?,
        })
    }

    let mut u = Unstructured::new(data);
    let Ok(count_max) = u.int_in_range(1..=12usize) else { return };
    let Ok(bytes_slots) = u.int_in_range(1..=12usize) else { return };
    let mut pool = Mempool::new(count_max, bytes_slots * MEMPOOL_ENTRY_BYTES);
    assert_eq!(pool.capacity(), count_max.min(bytes_slots));
    let senders: Vec<[u8; 32]> = (1..=SENDERS).map(|i| [i; 32]).collect();
    let mut ledger =
        Ledger::from_genesis(&senders.iter().map(|key| (*key, u64::MAX / 8)).collect::<Vec<_>>())
            .expect("distinct");
    let mut model: BTreeMap<TxnId, Txn> = BTreeMap::new();
    let mut history: Vec<Txn> = Vec::new();
    // The height of the last block executed.
    let mut height = 0u64;
    let check_model = |pool: &Mempool, model: &BTreeMap<TxnId, Txn>, ledger: &Ledger| {
        assert_eq!(pool.len(), model.len(), "pool and model hold different counts");
        for sender in &senders {
            let pending: u128 =
                model.values().filter(|txn| txn.body.sender == *sender).map(|txn| debit(&txn.body)).sum();
            assert!(
                pending <= u128::from(ledger.balance_of(sender)),
                "a sender's pending transactions outspend it"
            );
        }
        assert!(model.keys().all(|id| pool.contains(id)), "a modelled transaction is missing");
        assert!(pool.len() <= pool.capacity() && pool.bytes() <= bytes_slots * MEMPOOL_ENTRY_BYTES);
        pool.check_consistency();
    };
    for _ in 0..256 {
        // Unstructured yields defaults once drained; the sequence ends with its input.
        if u.is_empty() {
            break;
        }
        let Ok(op) = u.int_in_range(0..=9u8) else { break };
        let step = (|| -> arbitrary::Result<()> {
            match op {
                0..=4 => {
                    let sender = senders[usize::from(u.int_in_range(0..=SENDERS - 1)?)];
                    let nonce = ledger.nonce_of(&sender).saturating_add(value(&mut u, 4)?);
                    let body = TxnBody {
                        chain_id: 1,
                        reserved: 0,
                        sender,
                        recipient: [0xee; 32],
                        amount: value(&mut u, 3)?,
                        fee: value(&mut u, 6)?,
                        nonce: if u.ratio(1, 8)? { value(&mut u, 6)? } else { nonce },
                    };
                    let txn = Txn { body, signature: TxnSignature([u.arbitrary()?; 64]) };
                    insert_checked(&mut pool, &mut model, txn, &ledger);
                    history.push(txn);
                }
                5 if !history.is_empty() => {
                    let txn = history[u.choose_index(history.len())?];
                    insert_checked(&mut pool, &mut model, txn, &ledger);
                }
                6 | 7 => {
                    let txn_max = usize::from(u.int_in_range(0..=8u8)?);
                    let bytes_max = size_of::<BlockHeader>()
                        + usize::from(u.int_in_range(0..=9u8)?) * TXN_SIZE
                        - usize::from(u.int_in_range(0..=1u8)?);
                    let best_fee = best_head_fee(&pool, &ledger);
                    let packed = pool.pack(&ledger, txn_max, bytes_max);
                    // Built for the next height; a lost block's nonces stay noted until a block
                    // at its height commits.
                    pool.note_packed(height + 1, &packed);
                    assert!(packed.len() <= txn_max);
                    assert!(packed.len() <= bytes_max.saturating_sub(size_of::<BlockHeader>()) / TXN_SIZE);
                    if let (Some((first, _)), Some(best)) = (packed.first(), best_fee) {
                        assert_eq!(first.body.fee, best, "pack did not start with the best head");
                    }
                    let mut next: BTreeMap<[u8; 32], u64> = BTreeMap::new();
                    for (txn, id) in &packed {
                        assert_eq!(txn.id(), *id);
                        assert_eq!(model.remove(id).as_ref(), Some(txn), "packed something not pending");
                        let expected =
                            next.entry(txn.body.sender).or_insert_with(|| ledger.nonce_of(&txn.body.sender));
                        assert_eq!(txn.body.nonce, *expected, "packed nonces have a gap");
                        *expected += 1;
                    }
                    // A pack short of its limit is maximal: no sender has a next nonce pending
                    // that it could still pay for after what the block took from it.
                    let limit = txn_max.min(bytes_max.saturating_sub(size_of::<BlockHeader>()) / TXN_SIZE);
                    if packed.len() < limit {
                        for (sender, nonces) in &pool.by_sender {
                            let taken: Vec<&Txn> = packed
                                .iter()
                                .map(|(txn, _)| txn)
                                .filter(|txn| txn.body.sender == *sender)
                                .collect();
                            let spent: u128 = taken.iter().map(|txn| debit(&txn.body)).sum();
                            let next_nonce = ledger.nonce_of(sender) + taken.len() as u64;
                            if let Some(id) = nonces.get(&next_nonce) {
                                let payable = spent + debit(&pool.entries[id].txn.body)
                                    <= u128::from(ledger.balance_of(sender));
                                assert!(!payable, "pack left an executable, payable transaction behind");
                            }
                        }
                    }
                    if op == 7 {
                        // Execute the block as the node would (a transfer that fails, say for
                        // funds, changes nothing), then prune what it made stale.
                        for (txn, _) in &packed {
                            let _ = ledger.apply(&txn.body);
                        }
                        for (txn, _) in &packed {
                            let sender = txn.body.sender;
                            pool.prune_sender(&sender, ledger.nonce_of(&sender));
                            model.retain(|_, txn| {
                                txn.body.sender != sender || txn.body.nonce >= ledger.nonce_of(&sender)
                            });
                            let dropped = pool.drop_unaffordable(&sender, ledger.balance_of(&sender));
                            let mut left = u128::from(ledger.balance_of(&sender));
                            let mut pending: Vec<Txn> =
                                model.values().filter(|txn| txn.body.sender == sender).copied().collect();
                            pending.sort_by_key(|txn| txn.body.nonce);
                            let first_unpaid = pending.iter().position(|txn| {
                                let over = debit(&txn.body) > left;
                                left = left.saturating_sub(debit(&txn.body));
                                over
                            });
                            let unpaid: Vec<TxnId> = pending[first_unpaid.unwrap_or(pending.len())..]
                                .iter()
                                .map(Txn::id)
                                .collect();
                            assert_eq!(dropped.len(), unpaid.len(), "dropped the wrong unaffordable tail");
                            for id in &unpaid {
                                assert!(dropped.contains(id), "kept a transaction its sender cannot pay");
                                model.remove(id);
                            }
                        }
                        height += 1;
                        let evicted = pool.settle(height, &ledger);
                        let gone: Vec<TxnId> =
                            model.keys().filter(|id| !pool.contains(id)).copied().collect();
                        assert_eq!(gone.len() as u64, evicted, "settle misreported what it evicted");
                        for id in &gone {
                            model.remove(id);
                        }
                    } else {
                        // Not executed: the block was lost, its transactions do not come back.
                    }
                }
                _ => {
                    let sender = senders[usize::from(u.int_in_range(0..=SENDERS - 1)?)];
                    let nonce = value(&mut u, 8)?;
                    let pruned = pool.prune_sender(&sender, nonce);
                    let before = model.len();
                    model.retain(|_, txn| txn.body.sender != sender || txn.body.nonce >= nonce);
                    assert_eq!(pruned as usize, before - model.len(), "prune count is wrong");
                }
            }
            Ok(())
        })();
        check_model(&pool, &model, &ledger);
        if step.is_err() {
            break;
        }
    }
}

/// One fuzzed insert, checked against the model.
#[cfg(any(test, fuzzing, feature = "fuzzing"))]
fn insert_checked(pool: &mut Mempool, model: &mut BTreeMap<TxnId, Txn>, txn: Txn, ledger: &Ledger) {
    let id = txn.id();
    let before = pool.len();
    let sender = txn.body.sender;
    let same_nonce: Option<Txn> = model
        .values()
        .find(|other| other.body.sender == sender && other.body.nonce == txn.body.nonce)
        .copied();
    let lowest_fee = model.values().map(|other| other.body.fee).min();
    // Behind a gap (some nonce from the account's up to this one not pending), and how many
    // entries admitted behind gaps the pool holds: such a newcomer takes only spare room, and
    // such entries are evicted first.
    let in_line = pool.in_line(&sender, ledger.nonce_of(&sender), txn.body.nonce, u64::MAX);
    let gapped_before = pool.gapped_len();
    // What the prefilter asks before verification is what the insert then decides (but for a
    // duplicate id, which it does not know): so the model's checks below hold for both.
    let refusal = pool.refusal(&txn.body, ledger.account(&sender).copied(), false, 0);
    // With the gap taken as closing, only refusals that do not depend on it remain.
    let lenient = pool.refusal(&txn.body, ledger.account(&sender).copied(), true, 0);
    assert!(lenient.is_none() || lenient == refusal, "{lenient:?} given only with the gap closing");
    if lenient.is_none() && refusal.is_some() {
        assert!(!in_line, "a refusal waived for a gap, for a transaction in line: {refusal:?}");
    }
    let inserted = pool.insert(txn, id, ledger.account(&sender).copied());
    match inserted {
        Err(RejectReason::Duplicate) => {}
        Err(reason) => assert_eq!(refusal, Some(reason), "refused before verification for another reason"),
        Ok(_) => assert_eq!(refusal, None, "refused before verification, admitted after"),
    }
    match inserted {
        Err(reason) => {
            assert_eq!(pool.len(), before, "a refused insert changed the pool ({reason:?})");
            assert!(model.keys().all(|id| pool.contains(id)));
            match reason {
                RejectReason::Duplicate => assert!(model.contains_key(&id)),
                RejectReason::NonceStale => assert!(txn.body.nonce < ledger.nonce_of(&sender)),
                RejectReason::InsufficientFunds => {
                    let others: u128 = model
                        .values()
                        .filter(|other| other.body.sender == sender && other.body.nonce != txn.body.nonce)
                        .map(|other| debit(&other.body))
                        .sum();
                    assert!(
                        others + debit(&txn.body) > u128::from(ledger.balance_of(&sender)),
                        "refused a payable transaction"
                    );
                }
                RejectReason::NonceTaken => {
                    let taken = same_nonce.expect("nonce taken by nothing pending");
                    assert!(
                        !in_line || txn.body.fee < replacement_fee_min(taken.body.fee),
                        "a fee an eighth higher was refused its nonce in line"
                    );
                }
                RejectReason::MempoolFull if !in_line => {
                    // Behind a gap: no spare room, or its share taken.
                    assert!(
                        before == pool.capacity() || gapped_before >= pool.gapped_max(),
                        "refused a transaction behind a gap that had room"
                    );
                }
                RejectReason::MempoolFull if gapped_before > 0 => {
                    // In line, full, with entries behind gaps to evict: refused only when the
                    // first of them is this sender's own lower nonce.
                    assert_eq!(before, pool.capacity(), "refused as full below capacity");
                    assert!(
                        model
                            .values()
                            .any(|other| other.body.sender == sender && other.body.nonce < txn.body.nonce),
                        "refused while entries behind gaps could go"
                    );
                }
                RejectReason::MempoolFull => {
                    // Full, and nothing pending pays less (or the cheapest is this sender's own
                    // lower nonce, which evicting would strand the newcomer behind).
                    assert_eq!(before, pool.capacity(), "refused as full below capacity");
                    assert!(same_nonce.is_none(), "a same-nonce replacement is not a full pool");
                    let lowest = lowest_fee.expect("a full pool holds something");
                    let own_lower = model.values().any(|other| {
                        other.body.fee == lowest
                            && other.body.sender == sender
                            && other.body.nonce < txn.body.nonce
                    });
                    assert!(lowest >= txn.body.fee || own_lower, "refused a fee above the cheapest pending");
                }
                other => panic!("insert refused with {other:?}"),
            }
        }
        Ok(pushed_out) => {
            assert!(pool.contains(&id));
            model.insert(id, txn);
            let gone: Vec<Txn> =
                model.values().filter(|other| !pool.contains(&other.id())).copied().collect();
            assert_eq!(gone.len() as u64, pushed_out, "insert misreported what it pushed out");
            if let Some(replaced) = same_nonce {
                // A replacement, in line, pushes out exactly the transaction it replaces, for an
                // eighth less at least.
                assert_eq!(gone, vec![replaced], "a replacement pushed out something else");
                assert!(in_line, "a transaction behind a gap was replaced");
                assert!(txn.body.fee >= replacement_fee_min(replaced.body.fee));
            } else if let Some(victim) = gone.iter().min_by_key(|other| other.body.nonce) {
                // An eviction: the pool was full, the newcomer in line, and the victim one
                // admitted behind a gap or else the lowest fee, less than the newcomer's; its
                // sender's whole tail from it went with it.
                assert_eq!(before, pool.capacity(), "evicted from a pool that was not full");
                assert!(in_line, "a transaction behind a gap evicted another");
                if gapped_before == 0 {
                    assert_eq!(Some(victim.body.fee), lowest_fee, "evicted something above the cheapest");
                    assert!(victim.body.fee < txn.body.fee, "evicted a fee the newcomer does not beat");
                } else {
                    assert!(pool.gapped_len() < gapped_before, "evicted in line while some were behind gaps");
                }
                let tail: Vec<Txn> = model
                    .values()
                    .filter(|other| {
                        other.body.sender == victim.body.sender && other.body.nonce >= victim.body.nonce
                    })
                    .copied()
                    .collect();
                assert_eq!(gone.len(), tail.len(), "eviction is not the victim's whole tail");
                assert!(gone.iter().all(|other| tail.contains(other)), "eviction is not the victim's tail");
            }
            for other in gone {
                model.remove(&other.id());
            }
        }
    }
}

/// The highest fee among the sender heads `pack` may take first.
#[cfg(any(test, fuzzing, feature = "fuzzing"))]
fn best_head_fee(pool: &Mempool, ledger: &Ledger) -> Option<u64> {
    pool.by_sender
        .iter()
        .filter_map(|(sender, nonces)| {
            let (&nonce, id) = nonces.first_key_value()?;
            let body = pool.entries[id].txn.body;
            let payable = debit(&body) <= u128::from(ledger.balance_of(sender));
            (nonce == ledger.nonce_of(sender) && payable).then_some(body.fee)
        })
        .max()
}

#[cfg(test)]
mod tests {
    use proptest::prelude::*;
    use tessera_components::{Hash, TxnSignature};

    use super::*;

    /// An executed account at `nonce` that can pay for anything.
    fn rich(nonce: u64) -> Option<Account> {
        Some(Account { balance: u64::MAX, nonce })
    }

    fn funded(senders: std::ops::Range<u8>) -> Ledger {
        Ledger::from_genesis(&senders.map(|i| ([i; 32], u64::MAX / 256)).collect::<Vec<_>>()).unwrap()
    }

    fn txn(sender: u8, nonce: u64, fee: u64) -> (Txn, TxnId) {
        let txn = Txn {
            body: TxnBody {
                chain_id: 1,
                reserved: 0,
                sender: [sender; 32],
                recipient: [0; 32],
                amount: 1,
                fee,
                nonce,
            },
            signature: TxnSignature([0; 64]),
        };
        (txn, txn.id())
    }

    #[test]
    fn evicts_lowest_fee_and_its_tail() {
        let mut pool = Mempool::new(3, usize::MAX);
        for (sender, nonce, fee) in [(1, 0, 5), (1, 1, 9), (2, 0, 7)] {
            let (t, id) = txn(sender, nonce, fee);
            assert_eq!(pool.insert(t, id, rich(0)), Ok(0));
        }
        // Full. A fee of 5 does not beat the lowest (5).
        let (t, id) = txn(3, 0, 5);
        assert_eq!(pool.insert(t, id, rich(0)), Err(RejectReason::MempoolFull));
        // A fee of 6 evicts sender 1 nonce 0 and, with it, sender 1 nonce 1 (now unexecutable).
        let (t, id) = txn(3, 0, 6);
        assert_eq!(pool.insert(t, id, rich(0)), Ok(2));
        assert_eq!(pool.len(), 2);
        // What the byte bound and the mempool gauge are charged: a fixed cost per entry.
        assert_eq!(pool.bytes(), 2 * MEMPOOL_ENTRY_BYTES);
        pool.check_consistency();
    }

    /// A run of pending nonces from the account nonce makes the next one next in line; a gap,
    /// a stale nonce or a run past its bound does not.
    #[test]
    fn a_transaction_is_next_in_line_only_behind_a_run_without_gaps() {
        let mut pool = Mempool::new(100, usize::MAX);
        for nonce in [5, 6, 7, 9] {
            let (t, id) = txn(1, nonce, 5);
            assert_eq!(pool.insert(t, id, rich(5)), Ok(0));
        }
        let runs = |from, nonce, run_max| pool.runs_up_to(&[1; 32], from, nonce, run_max);
        assert!(runs(5, 5, 64), "the account nonce itself");
        assert!(runs(5, 8, 64), "5, 6 and 7 pending");
        assert!(!runs(5, 10, 64), "8 is missing");
        assert!(!runs(4, 6, 64), "4 is missing");
        assert!(!runs(6, 5, 64), "below the account nonce");
        assert!(!runs(5, 8, 2), "a run of 3 past a bound of 2");
        assert!(runs(5, 7, 2));
        assert!(!pool.runs_up_to(&[2; 32], 0, 1, 64), "a sender with nothing pending");
        assert!(pool.runs_up_to(&[2; 32], 0, 0, 64));
    }

    /// Transactions behind a nonce gap can never be packed, and stay until their sender's
    /// nonce moves. They are admitted only into spare room, an eighth of the pool at most, and
    /// a transaction in line evicts them first, whatever their fees. Before, a funded key that
    /// kept its next nonce back filled the pool with later ones at a fee just above the honest
    /// ones, evicting transfers that could execute, at no cost (found in review).
    #[test]
    fn transactions_behind_a_nonce_gap_take_only_spare_room() {
        let mut pool = Mempool::new(16, usize::MAX);
        assert_eq!(pool.gapped_max(), 2);
        let (honest, honest_id) = txn(1, 0, 1);
        assert_eq!(pool.insert(honest, honest_id, rich(0)), Ok(0));
        // Sender 2 keeps nonce 0 back and sends 1..=20 at a fee of 2.
        let gapped: Vec<_> = (1..=20)
            .filter(|nonce| {
                let (t, id) = txn(2, *nonce, 2);
                pool.insert(t, id, rich(0)).is_ok()
            })
            .collect();
        assert_eq!(gapped, [1, 2], "two behind the gap, an eighth of the pool");
        assert!(pool.contains(&honest_id), "the transfer that can execute stays");
        // Senders in line at a fee of 1 fill the pool, then evict what is behind the gap.
        let in_line = (10..40)
            .filter(|sender| {
                let (t, id) = txn(*sender, 0, 1);
                pool.insert(t, id, rich(0)).is_ok()
            })
            .count();
        assert_eq!(in_line, 15);
        assert_eq!((pool.len(), pool.gapped_len()), (16, 0));
        assert!(pool.contains(&honest_id));
        // However high its fee, a transaction behind a gap gets no room in a full pool.
        let (t, id) = txn(3, 5, u64::MAX / 4);
        assert_eq!(pool.insert(t, id, rich(0)), Err(RejectReason::MempoolFull));
        pool.check_consistency();
    }

    /// Transactions that arrived before their sender's lower nonce are behind a gap only
    /// until it arrives: then they are in line, take no share of the room for gaps, and are
    /// not evicted first. Batches reach a node out of nonce order (sorted by bytes, forwarded
    /// by several validators), so a mark that stayed let any transfer at the fee floor evict
    /// an honest sender's whole run (found in review of the first version).
    #[test]
    fn a_gap_closed_by_a_late_nonce_unmarks_what_waited_behind_it() {
        let mut pool = Mempool::new(16, usize::MAX);
        for nonce in [2, 1] {
            let (t, id) = txn(1, nonce, 5);
            assert_eq!(pool.insert(t, id, rich(0)), Ok(0));
        }
        assert_eq!(pool.gapped_len(), 2);
        let (t, id) = txn(1, 0, 5);
        assert_eq!(pool.insert(t, id, rich(0)), Ok(0));
        assert_eq!(pool.gapped_len(), 0, "the run behind nonce 0 is in line");
        pool.check_consistency();
        let in_line = (10..40)
            .filter(|sender| {
                let (t, id) = txn(*sender, 0, 1);
                pool.insert(t, id, rich(0)).is_ok()
            })
            .count();
        assert_eq!(in_line, 13, "the fee floor fills the room left, and evicts nothing");
        assert!((0..3).all(|nonce| pool.contains(&txn(1, nonce, 5).1)), "sender 1's run stays");
        pool.check_consistency();
    }

    /// A transaction that arrives while its sender's head is in a block not yet final (packing
    /// took the head out of the pool) is behind a gap only until that block commits: the
    /// mark stayed before, so under load a streaming sender's transactions filled the room for
    /// gaps and were evicted first though they were next in line (found in review).
    #[test]
    fn a_transaction_behind_a_packed_head_is_in_line_once_the_block_commits() {
        let ledger = funded(1..2);
        let mut pool = Mempool::new(16, usize::MAX);
        let (head, head_id) = txn(1, 0, 5);
        assert_eq!(pool.insert(head, head_id, rich(0)), Ok(0));
        assert_eq!(pool.pack(&ledger, 1, usize::MAX).len(), 1, "the head in a block");
        let (next, next_id) = txn(1, 1, 5);
        assert_eq!(pool.insert(next, next_id, rich(0)), Ok(0));
        assert_eq!(pool.gapped_len(), 1, "nonce 0 is in flight, not pending");
        assert_eq!(pool.prune_sender(&[1; 32], 1), 0);
        assert_eq!(pool.gapped_len(), 0, "the block committed: nonce 1 is next in line");
        pool.check_consistency();
    }

    /// A sender streaming its next nonces while its head waits in a block this node built is in
    /// line from the start: before, they took the eighth of the pool kept for gaps, and once it
    /// was full (a stalled view fills it) they were refused though next in line (found in
    /// review). When the block commits they stay in line; when another block commits at its
    /// height instead, they are behind a gap again, within the share.
    #[test]
    fn a_streaming_senders_nonces_behind_its_packed_head_are_in_line() {
        let ledger = funded(1..2);
        let mut committed = ledger.clone();
        let build = || {
            let mut pool = Mempool::new(16, usize::MAX);
            let (head, head_id) = txn(1, 0, 5);
            assert_eq!(pool.insert(head, head_id, rich(0)), Ok(0));
            let packed = pool.pack(&ledger, 1, usize::MAX);
            assert_eq!(packed.len(), 1, "the head in a block at height 1");
            pool.note_packed(1, &packed);
            for nonce in 1..=4 {
                let (next, id) = txn(1, nonce, 5);
                assert_eq!(pool.insert(next, id, rich(0)), Ok(0), "nonce {nonce} is admitted");
            }
            (pool, packed)
        };
        let (mut pool, packed) = build();
        assert_eq!(pool.gapped_len(), 0, "nonces 1 to 4 follow the packed head: in line");
        assert!(pool.in_line(&[1; 32], 0, 5, u64::MAX) && pool.in_line(&[1; 32], 0, 0, u64::MAX));
        pool.check_consistency();

        // The block commits: nothing to mark.
        committed.apply(&packed[0].0.body).unwrap();
        assert_eq!(pool.prune_sender(&[1; 32], 1), 0);
        assert_eq!(pool.settle(1, &committed), 0);
        assert_eq!((pool.len(), pool.gapped_len()), (4, 0));
        pool.check_consistency();

        // Another block commits at height 1: the four wait behind nonce 0 again. Two fit the
        // share for gaps (an eighth of 16); the newest two are evicted.
        let (mut pool, _) = build();
        assert_eq!(pool.settle(1, &ledger), 2);
        assert_eq!((pool.len(), pool.gapped_len()), (2, 2));
        assert!(pool.contains(&txn(1, 1, 5).1) && pool.contains(&txn(1, 2, 5).1));
        assert!(!pool.in_line(&[1; 32], 0, 1, u64::MAX));
        pool.check_consistency();

        // However long a stall, the senders noted stay bounded.
        let mut pool = Mempool::new(16, usize::MAX);
        let many: Vec<(Txn, TxnId)> = (0..Mempool::IN_FLIGHT_MAX as u64 + 10)
            .map(|i| {
                let mut sender = [0u8; 32];
                sender[..8].copy_from_slice(&i.to_le_bytes());
                let txn = Txn { body: TxnBody { sender, ..txn(1, 0, 5).0.body }, ..txn(1, 0, 5).0 };
                (txn, txn.id())
            })
            .collect();
        pool.note_packed(1, &many);
        assert_eq!(pool.in_flight.len(), Mempool::IN_FLIGHT_MAX);
    }

    /// Among equal fees the newest is evicted first, whatever the ids (the sequence number
    /// breaks the tie, not the hash).
    #[test]
    fn among_equal_fees_the_newest_is_evicted() {
        let mut equal: Vec<(Txn, TxnId)> = (1..=3).map(|sender| txn(sender, 0, 5)).collect();
        // Inserted in increasing id order, so the newest has the largest id: an id tie-break
        // would evict another.
        equal.sort_by_key(|(_, id)| *id);
        let mut pool = Mempool::new(3, usize::MAX);
        for (t, id) in &equal {
            assert_eq!(pool.insert(*t, *id, rich(0)), Ok(0));
        }
        let (t, id) = txn(9, 0, 6);
        assert_eq!(pool.insert(t, id, rich(0)), Ok(1));
        assert!(!pool.contains(&equal[2].1), "the newest of the equal fees goes");
        assert!(pool.contains(&equal[0].1) && pool.contains(&equal[1].1));
        pool.check_consistency();
    }

    #[test]
    fn a_sender_pending_set_never_outspends_its_balance() {
        let mut pool = Mempool::new(10, usize::MAX);
        let account = |balance, nonce| Some(Account { balance, nonce });
        let (a, a_id) = txn(1, 0, 5); // debit 6
        assert_eq!(pool.insert(a, a_id, None), Err(RejectReason::InsufficientFunds), "no account, no room");
        assert_eq!(pool.insert(a, a_id, account(5, 0)), Err(RejectReason::InsufficientFunds));
        assert_eq!(pool.insert(a, a_id, account(10, 0)), Ok(0));
        let (b, b_id) = txn(1, 1, 4); // debit 5: 6 + 5 > 10
        assert_eq!(pool.insert(b, b_id, account(10, 0)), Err(RejectReason::InsufficientFunds));
        let (b, b_id) = txn(1, 1, 3); // debit 4: 6 + 4 = 10
        assert_eq!(pool.insert(b, b_id, account(10, 0)), Ok(0));
        // Replacing nonce 0 counts the new fee instead of the old one: 7 + 4 > 10.
        let (c, c_id) = txn(1, 0, 6);
        assert_eq!(pool.insert(c, c_id, account(10, 0)), Err(RejectReason::InsufficientFunds));
        pool.check_consistency();
        // The sender spent elsewhere: 7 left pays nonce 0 (6), not nonce 1 after it.
        assert_eq!(pool.drop_unaffordable(&[1; 32], 7), vec![b_id]);
        assert_eq!(pool.drop_unaffordable(&[1; 32], 7), vec![]);
        assert!(pool.contains(&a_id));
        pool.check_consistency();
    }

    /// A balance that pays a sender's first transactions exactly keeps them all; only what
    /// comes after goes.
    #[test]
    fn a_balance_paying_a_prefix_exactly_keeps_that_prefix() {
        let mut pool = Mempool::new(10, usize::MAX);
        let rich = Some(Account { balance: 1_000, nonce: 0 });
        let ids: Vec<TxnId> = [(0, 5), (1, 3), (2, 4)] // debits 6, 4 and 5
            .into_iter()
            .map(|(nonce, fee)| {
                let (t, id) = txn(1, nonce, fee);
                assert_eq!(pool.insert(t, id, rich), Ok(0));
                id
            })
            .collect();
        assert_eq!(pool.drop_unaffordable(&[1; 32], 10), vec![ids[2]]);
        assert!(pool.contains(&ids[0]) && pool.contains(&ids[1]));
        pool.check_consistency();
    }

    /// The prune system after a block this node did not pack: what the block's senders have
    /// now used (nonce below the ledger's) leaves, and so does what they can no longer pay,
    /// reported as refused for funds. Other senders' transactions stay.
    #[test]
    fn the_prune_system_drops_consumed_nonces_and_unpayable_tails_of_a_blocks_senders() {
        use bevy_ecs::system::RunSystemOnce;
        use tessera_components::{Block, BlockFields};

        use crate::ledger::LedgerParts;
        use crate::messages::BlockCommitted;

        let mut pool = Mempool::new(16, usize::MAX);
        let pending = [txn(1, 0, 5), txn(1, 1, 5), txn(2, 0, 5), txn(3, 0, 5)];
        for (t, id) in pending {
            assert_eq!(pool.insert(t, id, rich(0)), Ok(0));
        }
        // After the block: sender 1 used nonce 0 and can still pay; sender 2 has nothing left.
        let accounts = vec![Account { balance: 1_000, nonce: 1 }, Account { balance: 0, nonce: 0 }];
        let ledger = Ledger::from_parts(LedgerParts {
            keys: vec![[1; 32], [2; 32]],
            accounts,
            burned: 0,
            supply: 1_000,
        })
        .unwrap();
        let block_txns = vec![txn(1, 0, 5).0, txn(2, 9, 5).0];
        let ids: Vec<TxnId> = block_txns.iter().map(Txn::id).collect();
        let fields = BlockFields {
            height: 1,
            view: 0,
            timestamp_ms: 0,
            proposer: 1,
            parent: Hash::ZERO,
            state_root: Hash::ZERO,
        };
        let block = Block::assemble(fields, block_txns, &ids);
        let mut world = World::new();
        world.insert_resource(pool);
        world.insert_resource(ledger);
        world.init_resource::<RejectCounters>();
        world.init_resource::<Messages<BlockCommitted>>();
        world.init_resource::<Messages<TxnRejected>>();
        let hash = block.header.hash();
        world.resource_mut::<Messages<BlockCommitted>>().write(BlockCommitted {
            block,
            hash,
            outcomes: Vec::new(),
        });
        world.run_system_once(prune_executed).unwrap();

        let pool = world.resource::<Mempool>();
        assert!(!pool.contains(&pending[0].1), "a consumed nonce stays pending");
        assert!(pool.contains(&pending[1].1), "sender 1 can pay its next nonce");
        assert!(!pool.contains(&pending[2].1), "sender 2 can no longer pay");
        assert!(pool.contains(&pending[3].1), "sender 3 was not in the block");
        assert_eq!(pool.len(), 2);
        pool.check_consistency();
        let rejected: Vec<(TxnId, RejectReason)> =
            world.resource_mut::<Messages<TxnRejected>>().drain().map(|r| (r.id, r.reason)).collect();
        assert_eq!(rejected, vec![(pending[2].1, RejectReason::InsufficientFunds)]);
        assert_eq!(world.resource::<RejectCounters>().get(RejectReason::InsufficientFunds), 1);
    }

    /// A transaction that spends its sender's balance to the last unit is payable.
    #[test]
    fn pack_takes_a_transaction_that_spends_the_balance_exactly() {
        let (t, id) = txn(1, 0, 5);
        let mut pool = Mempool::new(4, usize::MAX);
        assert_eq!(pool.insert(t, id, rich(0)), Ok(0));
        let exact = Ledger::from_genesis(&[([1; 32], debit(&t.body) as u64)]).unwrap();
        assert_eq!(pool.pack(&exact, 8, usize::MAX), vec![(t, id)]);
    }

    /// The consistency check the fuzz harness runs after every step catches indexes that
    /// disagree: here a fee index that lost an entry.
    #[test]
    #[should_panic(expected = "assertion")]
    fn the_consistency_check_catches_a_planted_index_loss() {
        let mut pool = Mempool::new(4, usize::MAX);
        for sender in 1..=2 {
            let (t, id) = txn(sender, 0, 5);
            assert_eq!(pool.insert(t, id, rich(0)), Ok(0));
        }
        pool.check_consistency();
        pool.by_fee.pop_first();
        pool.check_consistency();
    }

    #[test]
    fn pack_leaves_what_a_sender_can_no_longer_pay() {
        // Admitted against a balance of 1000, packed after a commit left the sender 7: the
        // block takes nonce 0 (debit 6) and leaves nonce 1 (debit 6) pending.
        let mut pool = Mempool::new(10, usize::MAX);
        for nonce in 0..2 {
            let (t, id) = txn(1, nonce, 5);
            pool.insert(t, id, Some(Account { balance: 1000, nonce: 0 })).unwrap();
        }
        let ledger = Ledger::from_genesis(&[([1; 32], 7)]).unwrap();
        let packed = pool.pack(&ledger, 10, usize::MAX);
        assert_eq!(packed.iter().map(|(t, _)| t.body.nonce).collect::<Vec<_>>(), vec![0]);
        assert_eq!(pool.len(), 1);
        pool.check_consistency();
    }

    #[test]
    fn same_nonce_needs_a_higher_fee() {
        let mut pool = Mempool::new(10, usize::MAX);
        let (a, a_id) = txn(1, 0, 5);
        pool.insert(a, a_id, rich(0)).unwrap();
        assert_eq!(pool.insert(a, a_id, rich(0)), Err(RejectReason::Duplicate));
        let (b, b_id) = txn(1, 0, 5);
        let b = Txn { body: TxnBody { amount: 2, ..b.body }, ..b };
        assert_ne!(b.id(), b_id);
        assert_eq!(pool.insert(b, b.id(), rich(0)), Err(RejectReason::NonceTaken));
        let (c, _) = txn(1, 0, 6);
        assert_eq!(pool.insert(c, c.id(), rich(0)), Ok(1));
        assert!(!pool.contains(&a_id));
        let (d, d_id) = txn(1, 0, 9);
        assert_eq!(pool.insert(d, d_id, rich(1)), Err(RejectReason::NonceStale));
        pool.check_consistency();
    }

    /// A replacement pays an eighth more than what it replaces, and a transaction behind a gap
    /// is never replaced. Before, any higher fee replaced: behind a gap fees 1, 2, 3, … were
    /// each verified, stored and forwarded, and none was ever paid (found in review).
    #[test]
    fn a_replacement_pays_an_eighth_more_and_none_replaces_behind_a_gap() {
        let mut pool = Mempool::new(10, usize::MAX);
        let (a, a_id) = txn(1, 0, 80);
        assert_eq!(pool.insert(a, a_id, rich(0)), Ok(0));
        let (b, b_id) = txn(1, 0, 89);
        assert_eq!(pool.insert(b, b_id, rich(0)), Err(RejectReason::NonceTaken), "less than an eighth more");
        let (c, c_id) = txn(1, 0, 90);
        assert_eq!(pool.insert(c, c_id, rich(0)), Ok(1));
        assert!(pool.contains(&c_id) && !pool.contains(&a_id));
        // Nonce 2 waits behind the gap at nonce 1: no fee replaces it.
        let (d, d_id) = txn(1, 2, 5);
        assert_eq!(pool.insert(d, d_id, rich(0)), Ok(0));
        assert_eq!(pool.gapped_len(), 1);
        let (e, e_id) = txn(1, 2, 1_000);
        assert_eq!(pool.insert(e, e_id, rich(0)), Err(RejectReason::NonceTaken), "replaced behind a gap");
        assert!(pool.contains(&d_id));
        // Once the gap closes, it may be replaced as any transaction in line.
        let (f, f_id) = txn(1, 1, 5);
        assert_eq!(pool.insert(f, f_id, rich(0)), Ok(0));
        assert_eq!(pool.insert(e, e_id, rich(0)), Ok(1));
        assert_eq!(replacement_fee_min(0), 1);
        // Near the top the minimum saturates; an equal fee still never replaces.
        let (g, _) = txn(2, 0, u64::MAX);
        let g = Txn { body: TxnBody { amount: 0, ..g.body }, ..g };
        assert_eq!(pool.insert(g, g.id(), rich(0)), Ok(0));
        let h = Txn { body: TxnBody { recipient: [1; 32], ..g.body }, ..g };
        assert_ne!(h.id(), g.id());
        assert_eq!(pool.insert(h, h.id(), rich(0)), Err(RejectReason::NonceTaken));
        pool.check_consistency();
    }

    #[test]
    fn pack_orders_by_fee_across_senders_and_nonce_within() {
        let mut pool = Mempool::new(10, usize::MAX);
        let ledger = Ledger::from_genesis(&[([1; 32], 100), ([2; 32], 100)]).unwrap();
        for (sender, nonce, fee) in [(1, 0, 1), (1, 1, 50), (2, 0, 10), (2, 2, 99)] {
            let (t, id) = txn(sender, nonce, fee);
            pool.insert(t, id, rich(0)).unwrap();
        }
        let packed = pool.pack(&ledger, 10, usize::MAX);
        let order: Vec<(u8, u64)> = packed.iter().map(|(t, _)| (t.body.sender[0], t.body.nonce)).collect();
        // Sender 2's nonce 2 waits behind the gap at nonce 1.
        assert_eq!(order, vec![(2, 0), (1, 0), (1, 1)]);
        assert_eq!(pool.len(), 1);
        pool.check_consistency();
    }

    #[test]
    fn pack_respects_byte_and_count_limits() {
        let mut pool = Mempool::new(100, usize::MAX);
        let ledger = funded(0..50);
        for sender in 0..50u8 {
            let (t, id) = txn(sender, 0, u64::from(sender) + 1);
            pool.insert(t, id, rich(0)).unwrap();
        }
        assert_eq!(pool.pack(&ledger, 7, usize::MAX).len(), 7);
        let bytes_for_three = size_of::<BlockHeader>() + 3 * TXN_SIZE + TXN_SIZE - 1;
        assert_eq!(pool.pack(&ledger, 100, bytes_for_three).len(), 3);
        assert_eq!(pool.len(), 40);
    }

    #[derive(Debug, Clone)]
    enum Op {
        Insert { sender: u8, nonce: u64, fee: u64, amount: u64 },
        Pack { max: usize },
        Prune { sender: u8, nonce: u64 },
    }

    fn op() -> impl Strategy<Value = Op> {
        prop_oneof![
            8 => (0u8..12, 0u64..6, 1u64..20, 1u64..3).prop_map(|(sender, nonce, fee, amount)| Op::Insert { sender, nonce, fee, amount }),
            1 => (0usize..8).prop_map(|max| Op::Pack { max }),
            1 => (0u8..12, 0u64..6).prop_map(|(sender, nonce)| Op::Prune { sender, nonce }),
        ]
    }

    proptest! {
        /// Whatever arrives, the pool never exceeds its bound and its indexes stay in step.
        #[test]
        fn never_exceeds_bounds(count_max in 1usize..16, ops in prop::collection::vec(op(), 1..200)) {
            let bytes_max = 10 * MEMPOOL_ENTRY_BYTES;
            let mut pool = Mempool::new(count_max, bytes_max);
            let ledger = funded(0..12);
            for op in ops {
                match op {
                    Op::Insert { sender, nonce, fee, amount } => {
                        let (t, _) = txn(sender, nonce, fee);
                        let t = Txn { body: TxnBody { amount, ..t.body }, ..t };
                        let before = pool.len();
                        if pool.insert(t, t.id(), rich(0)).is_err() {
                            prop_assert_eq!(pool.len(), before);
                        }
                    }
                    Op::Pack { max } => {
                        let packed = pool.pack(&ledger, max, usize::MAX);
                        prop_assert!(packed.len() <= max);
                        // Each sender's packed nonces run 0, 1, 2, … with no gap.
                        let mut next: std::collections::BTreeMap<[u8; 32], u64> = Default::default();
                        for (t, id) in &packed {
                            prop_assert_eq!(t.id(), *id);
                            let expected = next.entry(t.body.sender).or_insert(0);
                            prop_assert_eq!(t.body.nonce, *expected);
                            *expected += 1;
                        }
                    }
                    Op::Prune { sender, nonce } => { pool.prune_sender(&[sender; 32], nonce); }
                }
                prop_assert!(pool.len() <= count_max.min(10));
                prop_assert!(pool.bytes() <= bytes_max);
                pool.check_consistency();
            }
        }
    }

    #[test]
    fn fuzz_ops_survives_seeded_inputs() {
        let mut seeds = tessera_components::fuzz::FuzzSeeds::new(0x3e3e);
        let mut first = Vec::new();
        for round in 0..3000 {
            let input = seeds.bytes(16 + round % 600);
            fuzz_ops(&input);
            if round < 4 {
                first.push(input);
            }
        }
        let refs: Vec<&[u8]> = first.iter().map(Vec::as_slice).collect();
        tessera_components::fuzz::fuzz_write_seeds("mempool_ops", &refs);
        for input in tessera_components::fuzz::fuzz_corpus("mempool_ops") {
            fuzz_ops(&input);
        }
    }

    #[test]
    fn ids_are_distinct_per_field() {
        assert_ne!(txn(1, 0, 1).1, txn(1, 0, 2).1);
        assert_ne!(txn(1, 0, 1).1.0, Hash::ZERO);
    }
}
