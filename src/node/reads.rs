//! [`ReadView`]: what JSON-RPC reads need, published by the node loop after each tick and read
//! by the RPC server's thread without waiting for the loop.
//!
//! Bird's eye view: before, every read was a [`Query`] the node loop answered between ticks,
//! so a read waited for the tick in hand and queued behind every other read. Now the loop
//! publishes, at the end of each tick and in this order: the fates of what the tick decided,
//! the blocks it finalized (once durable), then the status. The RPC thread answers from them
//! and sends only what the view cannot answer to the loop.
//!
//! What is read here, and what still goes to the loop:
//!
//! - `tessera_getStatus`: a copy of a few fields under a lock held for that copy; `peers` is
//!   read live from the network's counter, as the loop did.
//! - `tessera_getBlockByHeight` and `tessera_getBlockRange`: the last [`RECENT_BLOCKS_MAX`]
//!   finalized blocks (and at most [`RECENT_TXNS_MAX`] transactions) are held here, each
//!   moved once into an `Arc` out of the tick's output, never copied; a height above the tip
//!   is answered `null` (or ends the range). Older blocks are read from the store by the loop,
//!   which owns it.
//! - `tessera_getTransaction`: the node's bounded fate window lives here behind a lock, and
//!   the loop records into it in place, once per tick; nothing is copied per tick. A known
//!   fate is answered here. An id without a fate goes to the loop, because only the loop can
//!   tell `pending` (in its mempool or submit window) from `unknown`.
//! - `tessera_getAccount` goes to the loop: the ledger (up to millions of accounts) lives in
//!   the pipeline's world and is changed in place by each tick's execution. Reading it from
//!   this thread would need either a copy per tick or a lock that execution holds for the
//!   tick's whole length, and then the read would wait for the tick anyway.
//! - `tessera_sendTransaction` goes to the loop, which owns the mempool.
//!
//! Lag: what is answered here is at most one tick old (`mempool_size` most visibly); a block
//! or fate is published only once its block is durable, as before.

use std::collections::VecDeque;
use std::sync::atomic::Ordering;
use std::sync::{Arc, OnceLock, PoisonError, RwLock, RwLockReadGuard, RwLockWriteGuard};

use serde_json::{Value, json};
use tessera_components::{CertifiedBlock, ChainTag, Hash, TxnId};

use super::net::NetCounters;
use super::rpc::Query;
use super::subscribe::Event;
use super::{Fates, block_json, transaction_status};

/// Most finalized blocks held for reads.
pub const RECENT_BLOCKS_MAX: usize = 1024;

/// Most transactions in the blocks held for reads (160 bytes each: 10 MiB), so large blocks
/// shorten the window instead of growing it.
pub const RECENT_TXNS_MAX: usize = 1 << 16;

/// The fields of `tessera_getStatus` that come from the node loop.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Status {
    /// The last finalized (and durable) height.
    pub height: u64,
    /// Its block's hash.
    pub block_hash: Hash,
    /// The state root after it.
    pub state_root: Hash,
    /// Transactions in the mempool at the end of the tick.
    pub mempool_size: usize,
    /// The consensus view.
    pub view: u64,
    /// A full node (an observer) rather than a validator.
    pub observer: bool,
    /// The chain the node's consensus signatures are made for ([`ChainTag`]).
    pub chain: ChainTag,
}

impl Status {
    /// `tessera_getStatus`'s answer: the one place its shape is written, for the view and for
    /// the loop alike.
    pub fn to_json(&self, peers: u64) -> Value {
        json!({
            "height": self.height,
            "finalized_height": self.height,
            "block_hash": self.block_hash.to_hex(),
            "state_root": self.state_root.to_hex(),
            "peers": peers,
            "mempool_size": self.mempool_size,
            "view": self.view,
            "role": if self.observer { "full" } else { "validator" },
            "chain_tag": Hash(self.chain.0).to_hex(),
        })
    }
}

/// The last finalized blocks, contiguous, ending at `next_height - 1`.
#[derive(Debug, Default)]
struct RecentBlocks {
    blocks: VecDeque<Arc<HeldBlock>>,
    /// Transactions in `blocks`.
    txn_count: usize,
    /// The height after the newest finalized block; 0 until the view is first published.
    next_height: u64,
}

/// A finalized block held for reads, and its `tessera_getBlockByHeight` answer once one is
/// asked for: built once, then copied for every later call. Built for every call, a body of
/// 16 calls for a block of 4,096 transactions hashed and hex-encoded 65,536 ids on the RPC
/// thread, and 256 connections asking again and again kept it at that (found in review).
#[derive(Debug)]
struct HeldBlock {
    block: Arc<CertifiedBlock>,
    json: OnceLock<Value>,
}

impl RecentBlocks {
    /// The height of the oldest block held (`next_height` when none is).
    fn first_height(&self) -> u64 {
        self.next_height - self.blocks.len() as u64
    }

    /// Forgets every block held: reads of heights up to `next_height - 1` go to the store.
    fn reset(&mut self, next_height: u64) {
        self.blocks.clear();
        self.txn_count = 0;
        self.next_height = next_height;
    }

    fn push(&mut self, block: Arc<CertifiedBlock>) {
        debug_assert_eq!(block.block.header.height, self.next_height);
        self.txn_count += block.block.txns.len();
        self.blocks.push_back(Arc::new(HeldBlock { block, json: OnceLock::new() }));
        self.next_height += 1;
        while self.blocks.len() > RECENT_BLOCKS_MAX
            || (self.txn_count > RECENT_TXNS_MAX && self.blocks.len() > 1)
        {
            let Some(old) = self.blocks.pop_front() else { break };
            self.txn_count -= old.block.block.txns.len();
        }
        debug_assert!(self.blocks.len() <= RECENT_BLOCKS_MAX);
    }

    fn get(&self, height: u64) -> Option<&Arc<HeldBlock>> {
        let index = height.checked_sub(self.first_height())?;
        self.blocks.get(usize::try_from(index).ok()?)
    }
}

/// What reads need, shared by the node loop (the only writer) and the RPC server's thread.
/// Written by the loop at the end of each tick ([`ReadView::publish`]); each lock is held for
/// a copy or a lookup on the reading side, and for one tick's records on the writing side.
#[derive(Debug)]
pub struct ReadView {
    status: RwLock<Option<Status>>,
    blocks: RwLock<RecentBlocks>,
    fates: RwLock<Fates>,
    net: Arc<NetCounters>,
    /// What the last ticks finalized and refused, for WebSocket subscribers
    /// ([`super::subscribe`]): one ring all of them read, bounded in events and transactions.
    feed: RwLock<Feed>,
    /// The sequence number after the newest event, to wake subscribers.
    feed_tip: tokio::sync::watch::Sender<u64>,
    /// Set when the node stops: subscribers are sent a Close frame and end.
    closing: std::sync::atomic::AtomicBool,
}

/// Most events the feed holds for its slowest subscriber; one that falls further behind is
/// told so and dropped.
pub const FEED_EVENTS: usize = 1024;

/// Most transactions in the events the feed holds, so large blocks shorten the ring instead
/// of growing it (as [`RECENT_TXNS_MAX`] does for reads).
pub const FEED_TXNS_MAX: usize = 1 << 16;

/// The events ring: `events[i]` has sequence number `first + i`.
#[derive(Debug, Default)]
struct Feed {
    events: VecDeque<Arc<Event>>,
    txns: usize,
    first: u64,
}

/// A lock's guard even if a holder panicked: every writer leaves the data consistent between
/// statements, and a read must not take the server down with it.
fn read<T>(lock: &RwLock<T>) -> RwLockReadGuard<'_, T> {
    lock.read().unwrap_or_else(PoisonError::into_inner)
}

fn write<T>(lock: &RwLock<T>) -> RwLockWriteGuard<'_, T> {
    lock.write().unwrap_or_else(PoisonError::into_inner)
}

impl ReadView {
    /// An empty view: until the first [`ReadView::publish`], every query goes to the loop.
    pub fn new(net: Arc<NetCounters>) -> ReadView {
        ReadView::with_fates(net, Fates::new())
    }

    pub(super) fn with_fates(net: Arc<NetCounters>, fates: Fates) -> ReadView {
        ReadView {
            status: RwLock::new(None),
            blocks: RwLock::new(RecentBlocks::default()),
            fates: RwLock::new(fates),
            net,
            feed: RwLock::new(Feed::default()),
            feed_tip: tokio::sync::watch::Sender::new(0),
            closing: std::sync::atomic::AtomicBool::new(false),
        }
    }

    /// The node is stopping: wakes every subscriber to send its client a Close frame ("going
    /// away") and end, and waits up to `grace` for them to have done so. Returns how many
    /// sessions were still open when the grace ran out.
    pub fn close(&self, grace: std::time::Duration) -> usize {
        self.closing.store(true, std::sync::atomic::Ordering::Release);
        self.feed_tip.send_modify(|_| {});
        let until = std::time::Instant::now() + grace;
        while self.feed_tip.receiver_count() > 0 && std::time::Instant::now() < until {
            std::thread::sleep(std::time::Duration::from_millis(5));
        }
        self.feed_tip.receiver_count()
    }

    /// Whether [`ReadView::close`] was called.
    pub fn is_closing(&self) -> bool {
        self.closing.load(std::sync::atomic::Ordering::Acquire)
    }

    /// A wake-up for each push, and the cursor of the first event pushed from now on (for
    /// [`ReadView::events_since`]).
    pub fn watch(&self) -> (tokio::sync::watch::Receiver<u64>, u64) {
        let receiver = self.feed_tip.subscribe();
        let cursor = *receiver.borrow();
        (receiver, cursor)
    }

    /// Pushes an event for every subscriber, after the [`ReadView::publish`] of its tick;
    /// the oldest events go once the ring holds more than [`FEED_EVENTS`] events or
    /// [`FEED_TXNS_MAX`] transactions (the newest always stays).
    pub fn push(&self, event: Event) {
        let next = {
            let mut feed = write(&self.feed);
            feed.txns += event.txns();
            feed.events.push_back(Arc::new(event));
            while feed.events.len() > 1 && (feed.events.len() > FEED_EVENTS || feed.txns > FEED_TXNS_MAX) {
                let oldest = feed.events.pop_front().expect("more than one event");
                feed.txns -= oldest.txns();
                feed.first += 1;
            }
            feed.first + feed.events.len() as u64
        };
        self.feed_tip.send_replace(next);
    }

    /// The sequence number the next pushed event will have.
    pub fn feed_next(&self) -> u64 {
        let feed = read(&self.feed);
        feed.first + feed.events.len() as u64
    }

    /// Up to `max` events from `cursor` on, each with its sequence number, moving `cursor`
    /// past them; or, when the event at `cursor` has left the ring already, how many were
    /// missed. A session takes a few at a time, so that what it holds while a slow client
    /// reads them is those few: taking every event it had not sent, it kept them alive after
    /// the ring let them go, up to a ring's worth a session (found in review).
    ///
    /// # Errors
    /// The number of events missed.
    pub fn events_since(&self, cursor: &mut u64, max: usize) -> Result<Vec<(u64, Arc<Event>)>, u64> {
        let feed = read(&self.feed);
        if *cursor < feed.first {
            return Err(feed.first - *cursor);
        }
        let skip = usize::try_from(*cursor - feed.first).unwrap_or(usize::MAX);
        let events: Vec<(u64, Arc<Event>)> = feed
            .events
            .iter()
            .enumerate()
            .skip(skip)
            .take(max)
            .map(|(i, event)| (feed.first + i as u64, event.clone()))
            .collect();
        *cursor += events.len() as u64;
        Ok(events)
    }

    /// The fate window, for the loop to record into. Readers wait while it is held: hold it
    /// for one tick's records, not across a tick.
    pub(super) fn fates_mut(&self) -> RwLockWriteGuard<'_, Fates> {
        write(&self.fates)
    }

    /// The fate window, for the loop's own answers and gauges.
    pub(super) fn fates(&self) -> RwLockReadGuard<'_, Fates> {
        read(&self.fates)
    }

    /// Publishes the end of a tick: the blocks it finalized (durable, in height order, each
    /// the one after the last published), then `status`, whose height is the last of them.
    /// Fates go in through [`ReadView::fates_mut`] before this, so a client that sees a height
    /// finds its block's fates.
    ///
    /// A block out of order, or a status height other than the newest block's, is a bug in
    /// the loop (debug builds stop on it). A release build does not stop a validator for a
    /// read view: it forgets the blocks held, so reads of them go to the store, which is
    /// always right.
    pub fn publish(&self, finalized: impl IntoIterator<Item = Arc<CertifiedBlock>>, status: Status) {
        {
            let mut blocks = write(&self.blocks);
            if blocks.next_height == 0 {
                // First publication: the tip the node started from.
                blocks.reset(status.height + 1);
            }
            for block in finalized {
                let height = block.block.header.height;
                debug_assert_eq!(height, blocks.next_height, "finalized blocks arrive in order");
                if height != blocks.next_height {
                    blocks.reset(height);
                }
                blocks.push(block);
            }
            debug_assert_eq!(blocks.next_height, status.height + 1, "the status is the newest block's");
            if blocks.next_height != status.height + 1 {
                blocks.reset(status.height + 1);
            }
        }
        *write(&self.status) = Some(status);
    }

    /// The answer to `query` from what was published, or `None` when it is the loop's to
    /// answer (see the module documentation).
    pub fn answer(&self, query: &Query) -> Option<Result<Value, (i64, String)>> {
        match query {
            Query::Status => {
                let status = (*read(&self.status))?;
                Some(Ok(status.to_json(self.net.peers_connected.load(Ordering::Relaxed))))
            }
            Query::Block(height) => {
                let held = {
                    let blocks = read(&self.blocks);
                    if blocks.next_height == 0 {
                        return None;
                    }
                    if *height >= blocks.next_height {
                        return Some(Ok(Value::Null));
                    }
                    blocks.get(*height)?.clone()
                };
                Some(Ok(held.json.get_or_init(|| block_json(&held.block)).clone()))
            }
            Query::BlockRange(from, count) => {
                let held: Vec<Arc<HeldBlock>> = {
                    let blocks = read(&self.blocks);
                    let start = (*from).max(1);
                    if blocks.next_height == 0 || start < blocks.first_height() {
                        return None;
                    }
                    let end = from.saturating_add(*count).min(blocks.next_height);
                    let mut budget = IdBudget::new(RANGE_TXNS_MAX);
                    (start..end)
                        .map_while(|height| blocks.get(height))
                        .take_while(|held| budget.takes(&held.block))
                        .cloned()
                        .collect()
                };
                // Each entry is cut from the block's own answer, built once: before, every call
                // hashed and hex-encoded each id again (found in review).
                Some(Ok(Value::Array(
                    held.iter()
                        .map(|held| range_entry(held.json.get_or_init(|| block_json(&held.block))))
                        .collect(),
                )))
            }
            Query::Transaction(id) => {
                let fates = read(&self.fates);
                let fate = fates.get(&TxnId(Hash(*id)))?;
                Some(Ok(transaction_status(Some(fate), false)))
            }
            Query::Discover => Some(Ok(super::rpc::openrpc().clone())),
            Query::Account(..) | Query::Submit(_) | Query::Subscribe(_) | Query::Unsubscribe(_) => None,
        }
    }
}

/// Most transaction ids one `tessera_getBlockRange` answer lists: it ends before the block that
/// would take it past this, and holds the first block whatever its size. Each id is hashed and
/// hex-encoded for the answer: 256 blocks of 4,096 transactions were a million of them a call,
/// and a batch of 256 calls a response of about a gigabyte (found in review).
pub const RANGE_TXNS_MAX: usize = 1024;

/// The transaction ids an answer lists so far, against a bound: a `tessera_getBlockRange`
/// answer's ([`RANGE_TXNS_MAX`]; held blocks and the store's are ranged alike), or the block
/// answers of one request body ([`super::rpc::BODY_TXN_IDS_MAX`]).
#[derive(Debug)]
pub(super) struct IdBudget {
    max: usize,
    blocks: usize,
    txns: usize,
}

impl IdBudget {
    /// An empty answer that may list `max` transaction ids.
    pub(super) fn new(max: usize) -> IdBudget {
        IdBudget { max, blocks: 0, txns: 0 }
    }

    /// Whether the answer takes a block of `ids` transactions too (then counted in): the first
    /// block always, each after it while the answer lists at most `max`.
    pub(super) fn takes_ids(&mut self, ids: usize) -> bool {
        let txns = self.txns + ids;
        let takes = self.blocks == 0 || txns <= self.max;
        if takes {
            self.blocks += 1;
            self.txns = txns;
        }
        takes
    }

    /// [`IdBudget::takes_ids`] of `block`'s transactions.
    pub(super) fn takes(&mut self, block: &CertifiedBlock) -> bool {
        self.takes_ids(block.block.txns.len())
    }
}

/// One entry of `tessera_getBlockRange`'s answer, cut from the block's
/// `tessera_getBlockByHeight` answer (`block_json`).
pub(super) fn range_entry(block: &Value) -> Value {
    json!({
        "height": block["height"],
        "hash": block["hash"],
        "transactions": block["transactions"],
    })
}

#[cfg(test)]
pub(crate) mod tests {
    use std::sync::{Arc, OnceLock};

    use serde_json::Value;
    use tessera_components::{Block, BlockHeader, CertifiedBlock, Hash, QuorumCertificate, TxnId, VoteKind};

    use super::super::{Fate, Fates, block_json};
    use super::{FEED_EVENTS, FEED_TXNS_MAX, HeldBlock, RECENT_BLOCKS_MAX, ReadView, Status};
    use crate::node::rpc::Query;
    use crate::node::subscribe::Event;

    /// A finalized block with no transactions at `height` (shared with the subscription tests).
    pub(crate) fn block(height: u64) -> Arc<CertifiedBlock> {
        let header = BlockHeader { height, ..bytemuck::Zeroable::zeroed() };
        let certificate = QuorumCertificate {
            kind: VoteKind::Commit,
            view: 1,
            height,
            block: header.hash(),
            signers: vec![0, 1, 2],
            signatures: Vec::new(),
        };
        Arc::new(CertifiedBlock { block: Block { header, txns: Vec::new().into() }, certificate })
    }

    /// A finalized block at `height` holding `txns` zeroed transactions.
    pub(crate) fn block_of(height: u64, txns: usize) -> Arc<CertifiedBlock> {
        let mut block = (*block(height)).clone();
        block.block.txns = vec![bytemuck::Zeroable::zeroed(); txns].into();
        Arc::new(block)
    }

    /// A range answer lists at most RANGE_TXNS_MAX transactions, ending before the block that
    /// would pass it, and holds the first block whatever its size: 256 full blocks a call were
    /// a million ids hashed and hex-encoded, and a batch of such calls a gigabyte (review).
    #[test]
    fn a_range_answer_is_bounded_in_transactions() {
        use super::RANGE_TXNS_MAX;
        let view = view();
        view.publish([], status(0));
        let half = RANGE_TXNS_MAX / 2;
        view.publish(
            [
                block_of(1, half),
                block_of(2, half),
                block_of(3, 1),
                block_of(4, 5 * RANGE_TXNS_MAX),
                block_of(5, 0),
            ],
            status(5),
        );
        let heights = |from| -> Vec<u64> {
            let answer = view.answer(&Query::BlockRange(from, 10)).expect("held").expect("no error");
            answer.as_array().unwrap().iter().map(|b| b["height"].as_u64().unwrap()).collect()
        };
        assert_eq!(heights(1), [1, 2], "two halves fill it; the next block would pass it");
        assert_eq!(heights(3), [3], "a block over the bound ends the answer before it");
        assert_eq!(heights(4), [4], "but is answered alone");
        assert_eq!(heights(5), [5]);
    }

    /// A status at `height` (shared with the subscription tests).
    pub(crate) fn status(height: u64) -> Status {
        Status {
            height,
            block_hash: Hash([height as u8; 32]),
            state_root: Hash([7; 32]),
            mempool_size: 3,
            view: 9,
            observer: false,
            chain: tessera_components::ChainTag::TEST,
        }
    }

    fn view() -> ReadView {
        ReadView::with_fates(Arc::default(), Fates::with_max(16))
    }

    /// The subscribers' ring holds at most FEED_EVENTS events and FEED_TXNS_MAX transactions;
    /// a cursor left behind learns how many events it missed, one within reach gets the rest.
    #[test]
    fn the_feed_is_bounded_in_events_and_transactions() {
        let view = view();
        let (_wake, mut behind) = view.watch();
        assert_eq!(view.feed_next(), behind);
        let mut within = behind;
        for _ in 0..5 {
            view.push(Event::rejected(Vec::new()));
        }
        assert_eq!(view.events_since(&mut within, usize::MAX).map(|events| events.len()), Ok(5));
        for _ in 0..FEED_EVENTS {
            view.push(Event::rejected(Vec::new()));
        }
        assert_eq!(view.events_since(&mut behind, usize::MAX).map(|events| events.len()), Err(5));
        assert_eq!(view.events_since(&mut within, usize::MAX).map(|events| events.len()), Ok(FEED_EVENTS));
        assert_eq!(view.events_since(&mut within, usize::MAX).map(|events| events.len()), Ok(0));
        // Three events of half the transaction budget each: the oldest goes (with every
        // empty event before it).
        let half = vec![(TxnId(Hash([1; 32])), "fee_too_low"); FEED_TXNS_MAX / 2];
        for _ in 0..3 {
            view.push(Event::Rejected { rejected: half.clone(), index: Default::default() });
        }
        let mut start = within;
        assert_eq!(view.events_since(&mut start, usize::MAX).map(|events| events.len()), Err(1));
        let mut second = within + 1;
        assert_eq!(view.events_since(&mut second, usize::MAX).map(|events| events.len()), Ok(2));
        // One event over the whole budget still goes out.
        let over = vec![(TxnId(Hash([2; 32])), "fee_too_low"); FEED_TXNS_MAX + 1];
        view.push(Event::Rejected { rejected: over.clone(), index: Default::default() });
        assert_eq!(view.events_since(&mut second, usize::MAX).map(|events| events.len()), Ok(1));
        // Taken a few at a time: the cursor moves past those taken only.
        view.push(Event::rejected(Vec::new()));
        view.push(Event::rejected(Vec::new()));
        let mut few = view.feed_next() - 2;
        assert_eq!(view.events_since(&mut few, 1).map(|events| events[0].0), Ok(view.feed_next() - 2));
        assert_eq!(few, view.feed_next() - 1);
        assert_eq!(view.events_since(&mut few, 8).map(|events| events.len()), Ok(1));
        // A tick's refusals are capped before they reach the ring.
        assert_eq!(Event::rejected(over).txns(), crate::node::subscribe::REJECTED_PER_EVENT_MAX);
    }

    /// Until the first publication the loop answers everything; after it, status, held blocks,
    /// heights above the tip and known fates are answered here, and the rest still goes to
    /// the loop.
    #[test]
    fn the_view_answers_what_it_holds_and_leaves_the_rest_to_the_loop() {
        let view = view();
        for query in [Query::Status, Query::Block(1), Query::BlockRange(1, 4), Query::Transaction([1; 32])] {
            assert!(view.answer(&query).is_none(), "{query:?} answered before publication");
        }
        // The node started at height 2: blocks 1 and 2 are in the store only.
        view.publish([], status(2));
        view.publish([block(3), block(4)], status(4));
        let answer = |query| view.answer(&query).map(|answer| answer.expect("no error"));
        let status_json = answer(Query::Status).expect("status from the view");
        assert_eq!(status_json, status(4).to_json(0));
        assert_eq!(status_json["role"], "validator");
        assert_eq!(answer(Query::Block(3)), Some(block_json(&block(3))));
        assert_eq!(answer(Query::Block(5)), Some(Value::Null), "above the tip");
        assert_eq!(answer(Query::Block(2)), None, "older than the view: the store's");
        let range = answer(Query::BlockRange(3, 10)).expect("a held range");
        let heights: Vec<_> = range.as_array().unwrap().iter().map(|b| b["height"].clone()).collect();
        assert_eq!(heights, [3, 4]);
        assert_eq!(answer(Query::BlockRange(9, 2)), Some(Value::Array(Vec::new())));
        assert_eq!(answer(Query::BlockRange(2, 2)), None, "starts in the store");
        assert_eq!(answer(Query::BlockRange(0, 2)), None, "height 0 reads as 1, in the store");
        // A known fate is answered here; an unknown id may be pending, which only the loop knows.
        let id = TxnId(Hash([1; 32]));
        view.fates_mut().record_block(4, &[tessera_systems::TxnOutcome { id, result: Ok(()) }]);
        assert_eq!(answer(Query::Transaction([1; 32])).unwrap()["status"], "committed");
        view.fates_mut().record(TxnId(Hash([2; 32])), Fate::Rejected("duplicate".into()));
        assert_eq!(answer(Query::Transaction([2; 32])).unwrap()["status"], "rejected");
        assert_eq!(answer(Query::Transaction([3; 32])), None);
        assert_eq!(answer(Query::Account([1; 32], false)), None);
    }

    /// A held block's answer is built at the first call and kept: later calls copy it, they do
    /// not hash and encode its transactions again.
    #[test]
    fn a_held_blocks_answer_is_built_once() {
        let view = view();
        view.publish([], status(0));
        view.publish([block_of(1, 64)], status(1));
        let first = view.answer(&Query::Block(1)).unwrap().unwrap();
        assert_eq!(first, block_json(&block_of(1, 64)));
        let mut marked = first.clone();
        marked["kept"] = Value::Bool(true);
        let blocks = view.blocks.read().unwrap();
        let held = blocks.get(1).unwrap();
        assert_eq!(held.json.get(), Some(&first), "the first answer was not kept");
        let held = held.clone();
        drop(blocks);
        // The kept answer swapped for the marked one: a call that returns the mark built nothing.
        let json = OnceLock::new();
        json.set(marked.clone()).unwrap();
        let held = HeldBlock { block: held.block.clone(), json };
        view.blocks.write().unwrap().blocks[0] = Arc::new(held);
        assert_eq!(view.answer(&Query::Block(1)).unwrap().unwrap(), marked, "built again");
    }

    /// The held blocks are bounded, oldest forgotten first, and a forgotten height goes back
    /// to the store.
    #[test]
    fn held_blocks_are_bounded() {
        let view = view();
        view.publish([], status(0));
        let last = RECENT_BLOCKS_MAX as u64 + 10;
        for height in 1..=last {
            view.publish([block(height)], status(height));
        }
        assert_eq!(view.answer(&Query::Block(10)), None);
        assert!(view.answer(&Query::Block(11)).is_some());
        assert_eq!(view.blocks.read().unwrap().blocks.len(), RECENT_BLOCKS_MAX);
    }
}
