//! The HTTP/1 server under the JSON-RPC and metrics ports.
//!
//! Bird's eye view: each port gets one thread that runs a tokio current-thread runtime. Its
//! accept loop closes a connection unread when the port already holds `connections_max`,
//! unless another address holds at least two more connections than the newcomer's: then, once
//! the newcomer has sent a byte, that address's oldest connection is asked to close and its
//! slot goes to the newcomer ([`Port::newcomer`], [`Port::evict_for`]; bounded per address and
//! per `header_timeout`). A connection whose source address already holds `connections_per_address_max` (loopback
//! included) waits, unread, for one of that address's slots, for at most the header deadline
//! and among at most [`waiting_max`] such; past either it is closed unread. Every other
//! connection becomes a task that hyper's HTTP/1 state machine drives. Nothing blocks a
//! thread on a client: a slow or silent client holds a task and its slot, within deadlines:
//!
//! - headers: each request's headers must arrive within `header_timeout` of the connection
//!   getting its slot or of the previous answer (so an idle keep-alive connection is closed
//!   then too);
//! - body: a handler reads a body with [`read_body`], which bounds its bytes as they arrive
//!   (a chunked body included) and the time it takes;
//! - write: a response the client stops reading for `write_timeout` closes the connection.
//!
//! A connection that ends without error is closed by [`linger`]: write side first, then the
//! client's remaining bytes are read and discarded for a bounded time, so a client still
//! sending a refused body reads its 413 instead of a reset.
//!
//! Why over-cap connections wait instead of being closed at once, as a listen backlog per
//! address (HAProxy's queue, not nginx's immediate 503): a client behind a shared address (a
//! NAT) is served late rather than refused, and a client that redials every connection it
//! loses has nothing to redial until the deadline. A waiting connection costs a descriptor,
//! a small task and what the client sends into its kernel receive buffer. The price: a client
//! at an attacker's address waits behind the attacker's waiters instead of failing fast (a
//! NAT shared with an attacker shares its fate, as it does under the cap itself). Past
//! [`waiting_max`] connections wait, the rest are closed at accept as before. At the port's
//! `connections_max` a slot given back goes to the port, not to a waiter, so a new address can
//! take it (except the slot of a connection asked to close for a newcomer, which is that
//! newcomer's). (Measured against `slowhttptest` on the node's own machine, closing at once cost
//! the honest client more than waiting does, though not through the node's work: the tool
//! polls the sockets the node closed in a busy loop, a core of its own; see
//! `docs/operations.md`.)
//!
//! Refusals, timeouts and accept errors are counted in the port's [`HttpSeries`] and logged at
//! most once per kind every [`LOG_INTERVAL`], with the number left unlogged since.

use std::collections::{HashMap, VecDeque};
use std::convert::Infallible;
use std::future::Future;
use std::io;
use std::net::{IpAddr, SocketAddr};
use std::pin::Pin;
use std::sync::atomic::Ordering;
use std::sync::{Arc, Mutex};
use std::task::{Context, Poll};
use std::time::{Duration, Instant};

use http_body_util::{BodyExt, Full, LengthLimitError, Limited};
use hyper::body::{Body as _, Bytes, Incoming};
use hyper::header::{self, HeaderValue};
use hyper::{Request, Response, StatusCode};
use hyper_util::rt::{TokioIo, TokioTimer};
use tokio::io::{AsyncRead, AsyncWrite, ReadBuf};

use super::metrics::HttpSeries;
use super::net::charged_as;

/// A response body: the whole of it, in memory.
pub type Body = Full<Bytes>;

/// The connection a `101 Switching Protocols` answer hands over: the client's stream (writes
/// still bounded by the port's write deadline) and the bytes it sent past the request that
/// the HTTP parser had already read.
#[derive(Debug)]
pub struct Upgraded {
    /// The stream.
    pub io: WriteDeadline,
    /// Bytes read ahead of the handover, to be consumed before `io`.
    pub read_ahead: Bytes,
}

/// What runs on a connection after its `101` answer; the connection keeps its slot until it
/// returns.
pub type UpgradeTask = Box<dyn FnOnce(Upgraded) -> Pin<Box<dyn Future<Output = ()> + Send>> + Send>;

/// Put into a `101` response's extensions by a handler (see [`switch_protocols`]).
#[derive(Clone)]
struct PendingUpgrade(Arc<Mutex<Option<UpgradeTask>>>);

/// A `101 Switching Protocols` response with `headers`, after which the connection is handed
/// to `task` instead of being read for another HTTP request.
pub fn switch_protocols(headers: &[(header::HeaderName, HeaderValue)], task: UpgradeTask) -> Response<Body> {
    let mut response = Response::new(Body::default());
    *response.status_mut() = StatusCode::SWITCHING_PROTOCOLS;
    for (name, value) in headers {
        response.headers_mut().insert(name.clone(), value.clone());
    }
    response.extensions_mut().insert(PendingUpgrade(Arc::new(Mutex::new(Some(task)))));
    response
}

/// Least interval between two log lines of one kind on one port.
pub const LOG_INTERVAL: Duration = Duration::from_secs(10);

/// How long the accept loop pauses after a failed accept (out of file descriptors, say), so a
/// persistent failure does not spin.
const ACCEPT_ERROR_PAUSE: Duration = Duration::from_millis(100);

/// How long, and for how many bytes, a closing connection reads and discards what the client
/// still sends (see [`linger`]).
const LINGER: Duration = Duration::from_secs(2);
const LINGER_BYTES_MAX: usize = 16 << 20;

/// Most connections any port holds waiting for a slot of their source address (see
/// [`Port::wait_for_slot`]), newcomers waiting for a connection asked to close for them
/// included ([`Port::evict_for`]).
pub const WAITING_MAX: usize = 512;

/// Most connections a port with `connections_max` slots holds waiting (twice its slots, at
/// most [`WAITING_MAX`]: 32 on a metrics port of 16); a connection past it is closed at accept,
/// unread.
pub fn waiting_max(connections_max: usize) -> usize {
    connections_max.saturating_mul(2).min(WAITING_MAX)
}

/// Most bytes of request line and headers, and most header fields, in one request.
const HEADER_BYTES_MAX: usize = 16 << 10;
const HEADERS_MAX: usize = 64;

/// The caps and deadlines of one port.
#[derive(Clone, Copy, Debug)]
pub struct Limits {
    /// Most connections open at once.
    pub connections_max: usize,
    /// Most connections open at once from one source address.
    pub connections_per_address_max: usize,
    /// A request's headers must arrive within this long of the connection getting its slot or
    /// of the previous answer (a connection that waited for its slot waited at most this long
    /// for each step before: its first byte, then its place in line).
    pub header_timeout: Duration,
    /// A request's body must arrive within this long of the handler asking for it.
    pub body_timeout: Duration,
    /// A response write that makes no progress for this long closes the connection.
    pub write_timeout: Duration,
}

/// The kinds of event that are logged, each at most once per [`LOG_INTERVAL`].
#[derive(Clone, Copy, Debug)]
enum Event {
    RefusedConnectionsMax,
    RefusedPerAddress,
    HeaderTimeout,
    BodyTimeout,
    WriteTimeout,
    AcceptError,
}

impl Event {
    const COUNT: usize = 6;

    fn describe(self) -> &'static str {
        match self {
            Event::RefusedConnectionsMax => "connection refused: connections_max open",
            Event::RefusedPerAddress => {
                "connection refused: connections_per_address_max open from its address"
            }
            Event::HeaderTimeout => "connection closed: request headers not received in time",
            Event::BodyTimeout => "connection closed: request body not received in time",
            Event::WriteTimeout => "connection closed: client stopped reading its response",
            Event::AcceptError => "accept failed; pausing",
        }
    }
}

/// A port's slots: connections open in total and per source address, and the connections
/// waiting for a slot of their address, oldest first.
#[derive(Debug, Default)]
struct Open {
    total: usize,
    per_address: HashMap<IpAddr, usize>,
    waiting: HashMap<IpAddr, VecDeque<Waiter>>,
    /// Entries in `waiting`, over every address.
    waiting_total: usize,
    /// Names the next waiter, so that one whose deadline passed can take itself out.
    next_waiter: u64,
    /// Every open connection, per address, oldest first: what the port needs to ask one to
    /// close when a newcomer's address holds far fewer slots ([`Open::evict_for_newcomer`]).
    held: HashMap<IpAddr, VecDeque<Held>>,
    /// Names the next slot, so that its entry in `held` can be found when it is given back.
    next_slot: u64,
    /// When connections were asked to close in the last `header_timeout`, and for whom: at
    /// most [`evictions_max`] in any such span, and at most one for each address.
    recent: VecDeque<(Instant, IpAddr)>,
    /// Addresses with a newcomer at a full port waiting for its first byte before anyone is
    /// asked to close for it ([`Port::newcomer`]): one each, at most [`evictions_max`] twice
    /// over.
    newcomers: std::collections::HashSet<IpAddr>,
}

/// Most connections a port with `connections_max` slots asks to close for newcomers in any
/// `header_timeout` (an eighth of its slots, at least one): however many addresses an attacker
/// dials from, honest connections are closed at this pace at most.
fn evictions_max(connections_max: usize) -> usize {
    (connections_max / 8).max(1)
}

/// One open connection in [`Open::held`].
#[derive(Debug)]
struct Held {
    id: u64,
    /// Asks the connection to close once its request in hand is answered; `None` once asked.
    evict: Option<tokio::sync::oneshot::Sender<()>>,
    /// The waiter (address, id) this connection was asked to close for: its slot goes to that
    /// waiter, not to the port.
    heir: Option<(IpAddr, u64)>,
    /// Upgraded to a subscription session: asked to close only when its address has no plain
    /// HTTP connection left to ask, as closing it loses the subscriber its place in the feed.
    session: bool,
}

/// A slot taken in [`Open`], not yet wrapped in a [`Slot`] (that is done outside the lock).
#[derive(Debug)]
struct Grant {
    ip: IpAddr,
    id: u64,
    evicted: tokio::sync::oneshot::Receiver<()>,
}

/// Counts one more (`up`) or one fewer for `ip` in `counts`, removing the entry at zero.
fn count(counts: &mut HashMap<IpAddr, usize>, ip: IpAddr, up: bool) {
    let entry = counts.entry(ip).or_insert(0);
    if up {
        *entry += 1;
    } else {
        *entry = entry.saturating_sub(1);
        if *entry == 0 {
            counts.remove(&ip);
        }
    }
}

/// A connection waiting for a slot: the slot of the next connection from its address to
/// close is sent to it.
#[derive(Debug)]
struct Waiter {
    id: u64,
    heir: tokio::sync::oneshot::Sender<Slot>,
}

impl Open {
    /// Gives back a slot of `ip` to the port and, if the port had room, hands one on to the
    /// oldest live waiter whose address is under its cap ([`Open::next_heir`]; returned with its
    /// address, the port's total unchanged). At the port's `connections_max` the slot stays
    /// with the port, so a connection from another address can take it: addresses that keep
    /// waiters queued must not pass slots among themselves for good while others are refused.
    ///
    /// A slot whose connection was asked to close for a newcomer ([`Open::evict_for_newcomer`])
    /// goes to that newcomer if it still waits and its address is under its cap, full port or
    /// not.
    fn release(&mut self, ip: IpAddr, id: u64, limits: &Limits) -> Option<(Grant, Waiter)> {
        let had_room = self.total < limits.connections_max;
        self.total = self.total.saturating_sub(1);
        count(&mut self.per_address, ip, false);
        if let Some((heir_ip, waiter_id)) = self.unhold(ip, id)
            && self.per_address.get(&heir_ip).copied().unwrap_or(0) < limits.connections_per_address_max
            && let Some(waiter) = self.take_waiter(heir_ip, waiter_id)
            && !waiter.heir.is_closed()
        {
            return Some((self.grant(heir_ip), waiter));
        }
        if had_room { self.next_heir(limits) } else { None }
    }

    /// Takes a slot for `ip`: counted, and entered in [`Open::held`] with a way to ask its
    /// connection to close.
    fn grant(&mut self, ip: IpAddr) -> Grant {
        self.total += 1;
        count(&mut self.per_address, ip, true);
        let id = self.next_slot;
        self.next_slot += 1;
        let (evict, evicted) = tokio::sync::oneshot::channel();
        self.held.entry(ip).or_default().push_back(Held {
            id,
            evict: Some(evict),
            heir: None,
            session: false,
        });
        Grant { ip, id, evicted }
    }

    /// Takes slot `id` of `ip` out of [`Open::held`]: the waiter it was asked to close for, if
    /// any.
    fn unhold(&mut self, ip: IpAddr, id: u64) -> Option<(IpAddr, u64)> {
        let queue = self.held.get_mut(&ip)?;
        let at = queue.iter().position(|held| held.id == id)?;
        let held = queue.remove(at)?;
        if queue.is_empty() {
            self.held.remove(&ip);
        }
        held.heir
    }

    /// The address to ask a connection of for a newcomer from `ip` at the port's cap: the one
    /// holding the most slots not already asked to close, if it holds at least two more than
    /// `ip` does (its slots and those promised to it). So connections are only ever moved from
    /// a larger holder to a smaller one, and eight addresses holding every slot do not keep a
    /// ninth out.
    ///
    /// Both counts are read off [`Open::held`] (at most `connections_max` entries, under the lock
    /// only for a newcomer at a full port): a connection asked to close has no `evict` left, and
    /// one promised to `ip` names it as its `heir`.
    fn victim_for(&self, ip: IpAddr) -> Option<IpAddr> {
        let mut promised = 0;
        let mut largest: Option<(IpAddr, usize)> = None;
        for (holder, queue) in &self.held {
            promised += queue.iter().filter(|held| held.heir.is_some_and(|(heir, _)| heir == ip)).count();
            let holds = queue.iter().filter(|held| held.evict.is_some()).count();
            if *holder != ip && largest.is_none_or(|(_, most)| holds > most) {
                largest = Some((*holder, holds));
            }
        }
        let mine = self.per_address.get(&ip).copied().unwrap_or(0) + promised;
        largest.filter(|(_, holds)| *holds >= mine + 2).map(|(victim, _)| victim)
    }

    /// Whether a connection may be asked to close for `ip` now: fewer than [`evictions_max`]
    /// were in the last `header_timeout`, none of them for `ip` (so one address, dialling and
    /// hanging up, closes at most one connection a `header_timeout`).
    fn may_evict_for(&mut self, ip: IpAddr, limits: &Limits) -> bool {
        let now = Instant::now();
        while self.recent.front().is_some_and(|(at, _)| now.duration_since(*at) >= limits.header_timeout) {
            self.recent.pop_front();
        }
        self.recent.len() < evictions_max(limits.connections_max)
            && !self.recent.iter().any(|(_, evicted_for)| *evicted_for == ip)
    }

    /// Asks `victim`'s oldest plain connection not yet asked to close (its oldest session if
    /// it has none), and promises its slot to waiter `waiter` of `ip`. False when it has none
    /// left to ask, or [`Open::may_evict_for`] says no.
    fn evict_for_newcomer(&mut self, victim: IpAddr, ip: IpAddr, waiter: u64, limits: &Limits) -> bool {
        if !self.may_evict_for(ip, limits) {
            return false;
        }
        let Some(held) = self.held.get_mut(&victim).and_then(|queue| {
            queue.iter_mut().filter(|held| held.evict.is_some()).min_by_key(|held| held.session)
        }) else {
            return false;
        };
        if let Some(evict) = held.evict.take() {
            // The connection may be ending on its own already; its slot still comes back.
            let _ = evict.send(());
        }
        held.heir = Some((ip, waiter));
        self.recent.push_back((Instant::now(), ip));
        true
    }

    /// Marks slot `id` of `ip` as a subscription session ([`Held::session`]).
    fn mark_session(&mut self, ip: IpAddr, id: u64) {
        if let Some(held) =
            self.held.get_mut(&ip).and_then(|queue| queue.iter_mut().find(|held| held.id == id))
        {
            held.session = true;
        }
    }

    /// The oldest live waiter whose address holds fewer than its cap of slots, with a slot
    /// taken for it, while the port has room. Waiters that gave up without leaving the queue
    /// (their tasks dropped at shutdown) are dropped on the way.
    fn next_heir(&mut self, limits: &Limits) -> Option<(Grant, Waiter)> {
        while self.total < limits.connections_max {
            let per_address = &self.per_address;
            let (_, ip) = self
                .waiting
                .iter()
                .filter(|(ip, _)| {
                    per_address.get(ip).copied().unwrap_or(0) < limits.connections_per_address_max
                })
                .filter_map(|(ip, queue)| queue.front().map(|waiter| (waiter.id, *ip)))
                .min()?;
            let queue = self.waiting.get_mut(&ip)?;
            let waiter = queue.pop_front()?;
            if queue.is_empty() {
                self.waiting.remove(&ip);
            }
            self.waiting_total -= 1;
            if !waiter.heir.is_closed() {
                return Some((self.grant(ip), waiter));
            }
        }
        None
    }

    /// Makes room for a waiter from `ip` in a full waiting room: the address with the most
    /// waiters gives up its newest if it has at least two more than `ip`; false when none has.
    /// So one address fills the room only while no other needs it.
    fn evict_for(&mut self, ip: IpAddr) -> bool {
        let mine = self.waiting.get(&ip).map_or(0, VecDeque::len);
        let Some((most, queued)) =
            self.waiting.iter().map(|(ip, queue)| (*ip, queue.len())).max_by_key(|(_, queued)| *queued)
        else {
            return false;
        };
        if queued < mine + 2 {
            return false;
        }
        let Some(queue) = self.waiting.get_mut(&most) else { return false };
        // Dropped: its task's wait ends with no slot, and it is refused.
        drop(queue.pop_back());
        self.waiting_total -= 1;
        true
    }

    /// Takes waiter `id` of `ip` out of the queue; false when it is no longer there (a slot
    /// was sent to it).
    fn forget(&mut self, ip: IpAddr, id: u64) -> bool {
        self.take_waiter(ip, id).is_some()
    }

    /// Takes waiter `id` of `ip` out of the queue, if it is still there.
    fn take_waiter(&mut self, ip: IpAddr, id: u64) -> Option<Waiter> {
        let queue = self.waiting.get_mut(&ip)?;
        let at = queue.iter().position(|waiter| waiter.id == id)?;
        let waiter = queue.remove(at)?;
        if queue.is_empty() {
            self.waiting.remove(&ip);
        }
        self.waiting_total -= 1;
        Some(waiter)
    }

    /// A place in `ip`'s queue, if the waiting room has one or can make one
    /// ([`Open::evict_for`]): the waiter's id and where its slot will arrive.
    fn enqueue(
        &mut self,
        ip: IpAddr,
        limits: &Limits,
    ) -> Option<(u64, tokio::sync::oneshot::Receiver<Slot>)> {
        if self.waiting_total >= waiting_max(limits.connections_max) && !self.evict_for(ip) {
            return None;
        }
        let (heir, receiver) = tokio::sync::oneshot::channel();
        let id = self.next_waiter;
        self.next_waiter += 1;
        self.waiting.entry(ip).or_default().push_back(Waiter { id, heir });
        self.waiting_total += 1;
        Some((id, receiver))
    }
}

/// One connection counted in `connections_waiting` until dropped, however its wait ends.
struct Waiting(Arc<HttpSeries>);

impl Waiting {
    fn count(series: &Arc<HttpSeries>) -> Waiting {
        series.connections_waiting.fetch_add(1, Ordering::Relaxed);
        Waiting(series.clone())
    }
}

impl Drop for Waiting {
    fn drop(&mut self) {
        self.0.connections_waiting.fetch_sub(1, Ordering::Relaxed);
    }
}

/// Per event kind: when it was last logged, and how many went unlogged since.
#[derive(Debug, Default)]
struct LogGate {
    kinds: [(Option<Instant>, u64); Event::COUNT],
}

/// What a port's server shares with its connections and handlers.
#[derive(Debug)]
pub struct Port {
    /// `rpc` or `metrics`: names the port in logs.
    name: &'static str,
    limits: Limits,
    /// The port's counters.
    pub series: Arc<HttpSeries>,
    /// Connections open, and connections waiting for a slot.
    open: Mutex<Open>,
    log: Mutex<LogGate>,
}

impl Port {
    /// Logs `event` unless one of its kind was logged less than [`LOG_INTERVAL`] ago; the
    /// line that is written says how many were left out before it.
    fn note(&self, event: Event, detail: &dyn std::fmt::Display) {
        let Ok(mut gate) = self.log.lock() else { return };
        let (last, suppressed) = &mut gate.kinds[event as usize];
        if last.is_some_and(|at| at.elapsed() < LOG_INTERVAL) {
            *suppressed += 1;
            return;
        }
        tracing::warn!(port = self.name, %detail, suppressed = *suppressed, "{}", event.describe());
        *last = Some(Instant::now());
        *suppressed = 0;
    }

    /// The port's slots. Nothing panics while holding them, so a poisoned lock still holds
    /// true counts: it is taken as it is (a waiter must never miss its wake-up).
    fn open(&self) -> std::sync::MutexGuard<'_, Open> {
        self.open.lock().unwrap_or_else(std::sync::PoisonError::into_inner)
    }

    /// A slot for a connection from `ip`, or the event that refuses it. Addresses are counted
    /// as [`charged_as`] names them: an IPv6 address by its /64. A connection from an address
    /// with connections waiting queues behind them (refused here as per-address, it waits);
    /// if the port has room for one of them now, that one is handed a slot.
    fn take_slot(self: &Arc<Port>, ip: IpAddr) -> Result<Slot, Event> {
        let ip = charged_as(ip);
        let mut guard = self.open();
        let open = &mut *guard;
        if open.total >= self.limits.connections_max {
            return Err(Event::RefusedConnectionsMax);
        }
        if open.waiting.contains_key(&ip) {
            let heir = open.next_heir(&self.limits);
            drop(guard);
            if let Some((grant, waiter)) = heir {
                self.series.connections_open.fetch_add(1, Ordering::Relaxed);
                // Sent outside the lock: a waiter gone meanwhile hands the slot straight back.
                drop(waiter.heir.send(Slot::new(self, grant)));
            }
            return Err(Event::RefusedPerAddress);
        }
        if open.per_address.get(&ip).copied().unwrap_or(0) >= self.limits.connections_per_address_max {
            return Err(Event::RefusedPerAddress);
        }
        let grant = open.grant(ip);
        drop(guard);
        self.series.connections_open.fetch_add(1, Ordering::Relaxed);
        Ok(Slot::new(self, grant))
    }

    /// For a connection from `ip`, whose address holds all its slots (or has connections
    /// waiting already): a place in its address's queue, for the next slot handed on to it
    /// ([`Open::next_heir`]). `None` at once when [`waiting_max`] connections already wait and no
    /// address has at least two more waiters than `ip` to give one up ([`Open::evict_for`]).
    fn wait_for_slot(self: &Arc<Port>, ip: IpAddr) -> Option<SlotWait> {
        let ip = charged_as(ip);
        let (id, receiver) = self.open().enqueue(ip, &self.limits)?;
        let counted = Waiting::count(&self.series);
        Some(SlotWait { port: self.clone(), ip, id, receiver, counted })
    }

    /// For a connection from `ip` that found the port at its `connections_max`: leave to wait
    /// for its first byte ([`Port::evict_for`]) when another address holds at least two more
    /// slots than `ip` ([`Open::victim_for`]) and a connection may be asked to close for `ip`
    /// ([`Open::may_evict_for`]). `None` otherwise, and past [`evictions_max`] twice over such
    /// newcomers waiting at once. Nothing is queued or asked yet: a newcomer that never speaks
    /// takes no waiter's place and closes nobody.
    fn newcomer(self: &Arc<Port>, ip: IpAddr) -> Option<Newcomer> {
        let ip = charged_as(ip);
        let mut open = self.open();
        // The cheap checks first: one newcomer an address (so one address cannot take every
        // place and shut the rule off for others), a place left, the window.
        if open.newcomers.contains(&ip)
            || open.newcomers.len() >= 2 * evictions_max(self.limits.connections_max)
            || !open.may_evict_for(ip, &self.limits)
        {
            return None;
        }
        open.victim_for(ip)?;
        open.newcomers.insert(ip);
        Some(Newcomer { port: self.clone(), ip })
    }

    /// For a newcomer that has sent its first byte: a slot at once if the port has room now
    /// and its address is under its cap with nobody of its own in line (as `take_slot` would
    /// give it); else a place in its address's queue (a full waiting room makes room as for
    /// any waiter, [`Open::evict_for`]) with the largest holder's oldest connection asked to
    /// close for it (a plain one before a session: between requests it closes at once, with a
    /// request in hand or not yet through its first once that is answered), if that holder
    /// still holds at least two more and [`Open::may_evict_for`] still allows it. `None`
    /// otherwise.
    fn evict_for(&self, newcomer: &Newcomer) -> Option<Admitted> {
        let ip = newcomer.ip;
        let mut open = self.open();
        if open.total < self.limits.connections_max
            && open.per_address.get(&ip).copied().unwrap_or(0) < self.limits.connections_per_address_max
            && !open.waiting.contains_key(&ip)
        {
            let grant = open.grant(ip);
            drop(open);
            self.series.connections_open.fetch_add(1, Ordering::Relaxed);
            return Some(Admitted::Now(Slot::new(&newcomer.port, grant)));
        }
        let victim = open.victim_for(ip)?;
        if !open.may_evict_for(ip, &self.limits) {
            return None;
        }
        let (id, receiver) = open.enqueue(ip, &self.limits)?;
        if !open.evict_for_newcomer(victim, ip, id, &self.limits) {
            open.take_waiter(ip, id);
            return None;
        }
        drop(open);
        self.series.evicted.fetch_add(1, Ordering::Relaxed);
        let counted = Waiting::count(&self.series);
        Some(Admitted::Waiting(SlotWait { port: newcomer.port.clone(), ip, id, receiver, counted }))
    }

    /// Counts a refused request and builds its response. When the request's body is left
    /// unread the response closes the connection, as the body's bytes would otherwise be read
    /// as the next request.
    fn refuse(&self, status: StatusCode, body_unread: bool, text: &'static str) -> Response<Body> {
        let counter = match status {
            StatusCode::NOT_FOUND => Some(&self.series.refused_not_found),
            StatusCode::METHOD_NOT_ALLOWED => Some(&self.series.refused_method),
            StatusCode::PAYLOAD_TOO_LARGE => Some(&self.series.refused_too_large),
            StatusCode::UNSUPPORTED_MEDIA_TYPE => Some(&self.series.refused_content_type),
            // Counted as a connection timed out in the body phase.
            StatusCode::REQUEST_TIMEOUT => None,
            _ => Some(&self.series.refused_bad_body),
        };
        if let Some(counter) = counter {
            counter.fetch_add(1, Ordering::Relaxed);
        }
        let mut response = text_response(status, text);
        if body_unread {
            response.headers_mut().insert(header::CONNECTION, HeaderValue::from_static("close"));
        }
        response
    }

    /// The port's caps and deadlines.
    pub fn limits(&self) -> Limits {
        self.limits
    }

    /// The port's series.
    pub fn series(&self) -> &Arc<HttpSeries> {
        &self.series
    }

    /// 404, for a path the port does not serve.
    pub fn not_found(&self, request: &Request<Incoming>, text: &'static str) -> Response<Body> {
        self.refuse(StatusCode::NOT_FOUND, !request.body().is_end_stream(), text)
    }

    /// 405 with `Allow: allow`, for a method the path does not take.
    pub fn method_not_allowed(&self, request: &Request<Incoming>, allow: &'static str) -> Response<Body> {
        let mut response = self.refuse(
            StatusCode::METHOD_NOT_ALLOWED,
            !request.body().is_end_stream(),
            "method not allowed\n",
        );
        response.headers_mut().insert(header::ALLOW, HeaderValue::from_static(allow));
        response
    }

    /// 413 when the request declares a body longer than `limit` (`Content-Length`), before
    /// any of it is read: a client that sent `Expect: 100-continue` gets no 100 and need not
    /// send it.
    pub fn refuse_declared_length(
        &self,
        request: &Request<Incoming>,
        limit: usize,
    ) -> Option<Response<Body>> {
        let declared = request.body().size_hint().lower();
        (declared > limit as u64)
            .then(|| self.refuse(StatusCode::PAYLOAD_TOO_LARGE, true, "request body too large\n"))
    }

    /// 415 unless the request's `Content-Type` is `media_type` (parameters such as
    /// `; charset=utf-8` allowed, case ignored).
    pub fn require_content_type(
        &self,
        request: &Request<Incoming>,
        media_type: &str,
    ) -> Option<Response<Body>> {
        let matches = request
            .headers()
            .get(header::CONTENT_TYPE)
            .and_then(|value| value.to_str().ok())
            .and_then(|value| value.split(';').next())
            .is_some_and(|essence| essence.trim().eq_ignore_ascii_case(media_type));
        (!matches).then(|| {
            self.refuse(
                StatusCode::UNSUPPORTED_MEDIA_TYPE,
                !request.body().is_end_stream(),
                "Content-Type must be application/json\n",
            )
        })
    }
}

/// A newcomer at a full port waiting for its first byte ([`Port::newcomer`]), counted until
/// dropped.
struct Newcomer {
    port: Arc<Port>,
    ip: IpAddr,
}

impl Drop for Newcomer {
    fn drop(&mut self) {
        self.port.open().newcomers.remove(&self.ip);
    }
}

/// What a newcomer that spoke gets ([`Port::evict_for`]).
enum Admitted {
    /// A slot, the port having room.
    Now(Slot),
    /// A place in line for the slot of a connection asked to close for it.
    Waiting(SlotWait),
}

/// A connection's place in its address's queue for a slot ([`Port::wait_for_slot`]).
struct SlotWait {
    port: Arc<Port>,
    ip: IpAddr,
    id: u64,
    receiver: tokio::sync::oneshot::Receiver<Slot>,
    counted: Waiting,
}

impl SlotWait {
    /// The slot handed on to this connection, if one comes within the header deadline and
    /// before `gone` (its client left) completes; `None` otherwise, or when a busier address
    /// made it give up its place.
    async fn until(self, gone: impl Future<Output = ()>) -> Option<Slot> {
        let SlotWait { port, ip, id, mut receiver, counted } = self;
        let waited = tokio::time::timeout(
            port.limits.header_timeout,
            futures_lite::future::or(async { Some((&mut receiver).await) }, async {
                gone.await;
                None
            }),
        )
        .await;
        drop(counted);
        match waited {
            Ok(Some(slot)) => slot.ok(),
            Ok(None) | Err(_) => {
                let forgotten = port.open().forget(ip, id);
                // Not in the queue any more: a slot was sent, or is being sent, to it (or it was
                // given up for a busier address's newcomer, and the sender is gone).
                if forgotten { None } else { receiver.await.ok() }
            }
        }
    }
}

/// Completes when the client of a waiting connection closes it (or it fails) before sending
/// anything; never once it has sent a byte, which stays unread for the request.
async fn client_left(stream: &tokio::net::TcpStream) {
    if client_spoke(stream).await {
        std::future::pending::<()>().await;
    }
}

/// True once the client has sent a byte (left unread for the request); false if it closes the
/// connection (or it fails) first.
async fn client_spoke(stream: &tokio::net::TcpStream) -> bool {
    let mut byte = [0u8; 1];
    matches!(stream.peek(&mut byte).await, Ok(1..))
}

/// One open connection's place in its port's caps, given back on drop.
#[derive(Debug)]
struct Slot {
    port: Arc<Port>,
    ip: IpAddr,
    id: u64,
    /// Fires when the port asks the connection to close for a newcomer; taken by the
    /// connection that uses the slot.
    evicted: Option<tokio::sync::oneshot::Receiver<()>>,
}

impl Slot {
    fn new(port: &Arc<Port>, grant: Grant) -> Slot {
        Slot { port: port.clone(), ip: grant.ip, id: grant.id, evicted: Some(grant.evicted) }
    }
}

impl Drop for Slot {
    fn drop(&mut self) {
        let heir = self.port.open().release(self.ip, self.id, &self.port.limits);
        match heir {
            // Sent outside the lock: a waiter that gave up in the meantime hands the slot back,
            // and its drop passes it on to the next one or to the port.
            Some((grant, waiter)) => drop(waiter.heir.send(Slot::new(&self.port, grant))),
            None => {
                self.port.series.connections_open.fetch_sub(1, Ordering::Relaxed);
            }
        }
    }
}

/// A plain-text response.
pub fn text_response(status: StatusCode, text: &'static str) -> Response<Body> {
    let mut response = Response::new(Full::new(Bytes::from_static(text.as_bytes())));
    *response.status_mut() = status;
    response
        .headers_mut()
        .insert(header::CONTENT_TYPE, HeaderValue::from_static("text/plain; charset=utf-8"));
    response
}

/// Reads a whole request body of at most `limit` bytes within the port's body deadline.
///
/// # Errors
/// The response to send instead (and the connection closes after it): 413 past `limit` (a
/// chunked body is cut off as soon as it runs over, never buffered whole), 408 past the
/// deadline, 400 for a body that breaks off or is badly framed.
pub async fn read_body(port: &Port, body: Incoming, limit: usize) -> Result<Bytes, Response<Body>> {
    let read = tokio::time::timeout(port.limits.body_timeout, Limited::new(body, limit).collect()).await;
    match read {
        Ok(Ok(collected)) => Ok(collected.to_bytes()),
        Ok(Err(error)) if error.downcast_ref::<LengthLimitError>().is_some() => {
            Err(port.refuse(StatusCode::PAYLOAD_TOO_LARGE, true, "request body too large\n"))
        }
        Ok(Err(_)) => Err(port.refuse(StatusCode::BAD_REQUEST, true, "request body broke off\n")),
        Err(_) => {
            port.series.timed_out_body.fetch_add(1, Ordering::Relaxed);
            port.note(Event::BodyTimeout, &format_args!("after {:?}", port.limits.body_timeout));
            Err(port.refuse(StatusCode::REQUEST_TIMEOUT, true, "request body not received in time\n"))
        }
    }
}

/// A running port: stopping it (or dropping it) ends its accept loop and every connection,
/// and joins its thread.
#[derive(Debug)]
pub struct Server {
    address: SocketAddr,
    /// Dropped to stop the server: its accept loop waits on the other end.
    stop: Option<flume::Sender<()>>,
    thread: Option<std::thread::JoinHandle<()>>,
}

impl Server {
    /// The address the port is bound to.
    pub fn local_addr(&self) -> SocketAddr {
        self.address
    }

    /// Stops accepting, drops every connection (requests in hand are not answered) and joins
    /// the server's thread.
    pub fn stop(&mut self) {
        self.stop.take();
        if let Some(thread) = self.thread.take()
            && thread.join().is_err()
        {
            tracing::error!(address = %self.address, "HTTP server thread panicked");
        }
    }
}

impl Drop for Server {
    fn drop(&mut self) {
        self.stop();
    }
}

/// Binds `address` and serves it on a thread of its own named `tessera-{name}`: each request
/// goes to `handler` with the port (for [`read_body`] and the refusal helpers).
///
/// # Errors
/// The address cannot be bound, or the runtime cannot be built.
pub fn serve<H, F>(
    name: &'static str,
    address: SocketAddr,
    limits: Limits,
    series: Arc<HttpSeries>,
    handler: H,
) -> Result<Server, String>
where
    H: Fn(Arc<Port>, Request<Incoming>) -> F + Send + Sync + 'static,
    F: Future<Output = Response<Body>> + Send + 'static,
{
    assert!(limits.connections_max > 0 && limits.connections_per_address_max > 0);
    let cannot = |error: io::Error| format!("cannot listen on {address}: {error}");
    let listener = std::net::TcpListener::bind(address).map_err(cannot)?;
    listener.set_nonblocking(true).map_err(cannot)?;
    let bound = listener.local_addr().map_err(cannot)?;
    let runtime = tokio::runtime::Builder::new_current_thread()
        .enable_io()
        .enable_time()
        .build()
        .map_err(|error| format!("cannot start the {name} server: {error}"))?;
    let listener = {
        let _context = runtime.enter();
        tokio::net::TcpListener::from_std(listener).map_err(cannot)?
    };
    let port =
        Arc::new(Port { name, limits, series, open: Mutex::default(), log: Mutex::new(LogGate::default()) });
    let (stop, stopped) = flume::bounded::<()>(1);
    let handler = Arc::new(handler);
    let thread = std::thread::Builder::new()
        .name(format!("tessera-{name}"))
        .spawn(move || {
            runtime.block_on(accept_loop(listener, port, handler, stopped));
            // Dropping the runtime here drops every connection task still open.
        })
        .map_err(|error| format!("cannot start the {name} server thread: {error}"))?;
    Ok(Server { address: bound, stop: Some(stop), thread: Some(thread) })
}

/// Accepts until `stopped` disconnects. A failed accept pauses and carries on; it never ends
/// the loop.
async fn accept_loop<H, F>(
    listener: tokio::net::TcpListener,
    port: Arc<Port>,
    handler: Arc<H>,
    stopped: flume::Receiver<()>,
) where
    H: Fn(Arc<Port>, Request<Incoming>) -> F + Send + Sync + 'static,
    F: Future<Output = Response<Body>> + Send + 'static,
{
    // Checked on every turn as well: `or` polls the accept first, so under a steady stream
    // of connections the stop signal alone might never be polled.
    while !stopped.is_disconnected() {
        let accepted = futures_lite::future::or(async { Some(listener.accept().await) }, async {
            let _ = stopped.recv_async().await;
            None
        })
        .await;
        match accepted {
            None => return,
            Some(Err(error)) => {
                port.series.accept_errors.fetch_add(1, Ordering::Relaxed);
                port.note(Event::AcceptError, &error);
                tokio::time::sleep(ACCEPT_ERROR_PAUSE).await;
            }
            Some(Ok((stream, peer))) => match port.take_slot(peer.ip()) {
                Ok(slot) => {
                    tokio::spawn(connection(stream, peer, slot, handler.clone()));
                }
                Err(Event::RefusedPerAddress) => match port.wait_for_slot(peer.ip()) {
                    Some(wait) => {
                        let (port, handler) = (port.clone(), handler.clone());
                        tokio::spawn(async move {
                            match wait.until(client_left(&stream)).await {
                                Some(slot) => connection(stream, peer, slot, handler).await,
                                None => refuse(&port, Event::RefusedPerAddress, peer, stream),
                            }
                        });
                    }
                    None => refuse(&port, Event::RefusedPerAddress, peer, stream),
                },
                Err(event) => match port.newcomer(peer.ip()) {
                    Some(newcomer) => {
                        let (port, handler) = (port.clone(), handler.clone());
                        tokio::spawn(async move {
                            // Someone is asked to close for a newcomer only once it has sent a
                            // byte: a dial and a hang-up asks nobody.
                            let spoke =
                                tokio::time::timeout(port.limits.header_timeout, client_spoke(&stream));
                            let admitted = match spoke.await {
                                Ok(true) => port.evict_for(&newcomer),
                                Ok(false) | Err(_) => None,
                            };
                            drop(newcomer);
                            let slot = match admitted {
                                Some(Admitted::Now(slot)) => Some(slot),
                                Some(Admitted::Waiting(wait)) => wait.until(client_left(&stream)).await,
                                None => None,
                            };
                            match slot {
                                Some(slot) => connection(stream, peer, slot, handler).await,
                                None => refuse(&port, event, peer, stream),
                            }
                        });
                    }
                    None => refuse(&port, event, peer, stream),
                },
            },
        }
    }
}

/// Closes a connection unread, and counts and logs why: a refused client costs an accept and
/// a close.
fn refuse(port: &Port, event: Event, peer: SocketAddr, stream: tokio::net::TcpStream) {
    let counter = match event {
        Event::RefusedPerAddress => &port.series.refused_per_address,
        _ => &port.series.refused_connections_max,
    };
    counter.fetch_add(1, Ordering::Relaxed);
    port.note(event, &peer);
    drop(stream);
}

/// Serves one connection until the client closes it or a deadline closes it.
async fn connection<H, F>(stream: tokio::net::TcpStream, peer: SocketAddr, mut slot: Slot, handler: Arc<H>)
where
    H: Fn(Arc<Port>, Request<Incoming>) -> F + Send + Sync + 'static,
    F: Future<Output = Response<Body>> + Send + 'static,
{
    let port = slot.port.clone();
    let limits = port.limits;
    // Responses are written whole; without this a small answer waits on the client's ACK.
    let _ = stream.set_nodelay(true);
    let io = TokioIo::new(WriteDeadline { stream, timeout: limits.write_timeout, stalled: None });
    // Set when the handler answers 101: hyper then ends the HTTP exchange after writing the
    // answer, and the connection goes to the task.
    let upgrade: Arc<Mutex<Option<UpgradeTask>>> = Arc::default();
    // The exact address, not the /64 the slot is counted as: a handler exempts a validator's
    // address or loopback by the address itself.
    let peer = PeerIp(peer.ip().to_canonical());
    let service = {
        let port = port.clone();
        let upgrade = upgrade.clone();
        hyper::service::service_fn(move |mut request: Request<Incoming>| {
            request.extensions_mut().insert(peer);
            let answer = handler(port.clone(), request);
            let series = port.series.clone();
            let upgrade = upgrade.clone();
            // Boxed, so that the connection can be polled in place (`poll_without_shutdown`).
            Box::pin(async move {
                let mut response = answer.await;
                series.requests.fetch_add(1, Ordering::Relaxed);
                if let Some(PendingUpgrade(task)) = response.extensions_mut().remove::<PendingUpgrade>()
                    && response.status() == StatusCode::SWITCHING_PROTOCOLS
                {
                    let task = task.lock().unwrap_or_else(std::sync::PoisonError::into_inner).take();
                    *upgrade.lock().unwrap_or_else(std::sync::PoisonError::into_inner) = task;
                }
                Ok::<_, Infallible>(response)
            })
        })
    };
    let mut served = hyper::server::conn::http1::Builder::new()
        .timer(TokioTimer::new())
        .header_read_timeout(limits.header_timeout)
        .max_header_size(HEADER_BYTES_MAX)
        .max_headers(HEADERS_MAX)
        .keep_alive(true)
        .serve_connection(io, service);
    // Asked to close for a newcomer: an idle connection closes at once, one with a request in
    // hand once its answer is written (hyper's graceful shutdown).
    let mut evicted = slot.evicted.take();
    let mut asked = false;
    let served = std::future::poll_fn(|cx| {
        if let Some(signal) = evicted.as_mut()
            && let Poll::Ready(answer) = Pin::new(signal).poll(cx)
        {
            evicted = None;
            if answer.is_ok() {
                asked = true;
                Pin::new(&mut served).graceful_shutdown();
            }
        }
        served.poll_without_shutdown(cx)
    })
    .await
    .map(|()| served.into_parts());
    let task = upgrade.lock().unwrap_or_else(std::sync::PoisonError::into_inner).take();
    match (served, task) {
        (Ok(parts), Some(task)) => {
            port.open().mark_session(slot.ip, slot.id);
            let session = task(Upgraded { io: parts.io.into_inner(), read_ahead: parts.read_buf });
            // A subscription holds its slot until it ends, or until the port asks for it back.
            match evicted {
                Some(signal) => {
                    futures_lite::future::or(session, async {
                        if signal.await.is_err() {
                            std::future::pending::<()>().await;
                        }
                    })
                    .await;
                }
                None if !asked => session.await,
                // Asked to close before the upgrade was done: the session never starts.
                None => {}
            }
        }
        (Ok(parts), None) => linger(parts.io.into_inner().stream).await,
        (Err(error), _) => failed(&port, &slot, &error),
    }
    drop(slot);
}

/// The address a request came from (exact, and canonical: an IPv4-mapped address as IPv4), in
/// its extensions: what a handler may charge for it (a forged signature sent over RPC, say).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct PeerIp(pub IpAddr);

/// Counts and logs a connection that ended in an error.
fn failed(port: &Port, slot: &Slot, error: &hyper::Error) {
    let limits = port.limits;
    if error.is_timeout() {
        port.series.timed_out_header.fetch_add(1, Ordering::Relaxed);
        port.note(Event::HeaderTimeout, &format_args!("{} after {:?}", slot.ip, limits.header_timeout));
    } else if is_write_timeout(error) {
        port.series.timed_out_write.fetch_add(1, Ordering::Relaxed);
        port.note(Event::WriteTimeout, &format_args!("{} after {:?}", slot.ip, limits.write_timeout));
    } else {
        tracing::debug!(port = port.name, peer = %slot.ip, %error, "HTTP connection ended");
    }
}

/// Closes a connection that ended without error so that the client gets its last answer:
/// the write side first, then what the client still sends is read and thrown away until it
/// closes too, for at most [`LINGER`] and [`LINGER_BYTES_MAX`]. Closing with unread bytes
/// queued resets the connection, and a reset can discard an answer the client has not read
/// yet, such as a 413 sent while the refused body was still arriving.
async fn linger(mut stream: tokio::net::TcpStream) {
    if std::future::poll_fn(|cx| Pin::new(&mut stream).poll_shutdown(cx)).await.is_err() {
        return;
    }
    let drain = async {
        let mut buffer = vec![0u8; 16 << 10];
        let mut left = LINGER_BYTES_MAX;
        while stream.readable().await.is_ok() {
            match stream.try_read(&mut buffer) {
                Ok(0) => return,
                Ok(read) if read >= left => return,
                Ok(read) => left -= read,
                Err(error) if error.kind() == io::ErrorKind::WouldBlock => {}
                Err(_) => return,
            }
        }
    };
    let _ = tokio::time::timeout(LINGER, drain).await;
}

/// Whether `error` comes from [`WriteDeadline`].
fn is_write_timeout(error: &hyper::Error) -> bool {
    let mut source = std::error::Error::source(error);
    while let Some(cause) = source {
        if let Some(io) = cause.downcast_ref::<io::Error>() {
            return io.kind() == io::ErrorKind::TimedOut;
        }
        source = cause.source();
    }
    false
}

/// A TCP stream whose writes fail with `TimedOut` once one has made no progress for
/// `timeout`: a client that stops reading its response releases its slot.
#[derive(Debug)]
pub struct WriteDeadline {
    stream: tokio::net::TcpStream,
    timeout: Duration,
    /// Armed when a write could not proceed; disarmed by any progress.
    stalled: Option<Pin<Box<tokio::time::Sleep>>>,
}

impl WriteDeadline {
    /// After `poll` of a write: disarms the deadline on progress, arms it on a stall, and
    /// turns a stall past the deadline into an error.
    fn watch<T>(&mut self, cx: &mut Context<'_>, poll: Poll<io::Result<T>>) -> Poll<io::Result<T>> {
        if poll.is_ready() {
            self.stalled = None;
            return poll;
        }
        let timeout = self.timeout;
        let deadline = self.stalled.get_or_insert_with(|| Box::pin(tokio::time::sleep(timeout)));
        match deadline.as_mut().poll(cx) {
            Poll::Ready(()) => {
                Poll::Ready(Err(io::Error::new(io::ErrorKind::TimedOut, "response write stalled")))
            }
            Poll::Pending => Poll::Pending,
        }
    }
}

impl AsyncRead for WriteDeadline {
    fn poll_read(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &mut ReadBuf<'_>,
    ) -> Poll<io::Result<()>> {
        Pin::new(&mut self.stream).poll_read(cx, buf)
    }
}

impl AsyncWrite for WriteDeadline {
    fn poll_write(mut self: Pin<&mut Self>, cx: &mut Context<'_>, buf: &[u8]) -> Poll<io::Result<usize>> {
        let poll = Pin::new(&mut self.stream).poll_write(cx, buf);
        self.watch(cx, poll)
    }

    fn poll_write_vectored(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        bufs: &[io::IoSlice<'_>],
    ) -> Poll<io::Result<usize>> {
        let poll = Pin::new(&mut self.stream).poll_write_vectored(cx, bufs);
        self.watch(cx, poll)
    }

    fn is_write_vectored(&self) -> bool {
        self.stream.is_write_vectored()
    }

    fn poll_flush(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        let poll = Pin::new(&mut self.stream).poll_flush(cx);
        self.watch(cx, poll)
    }

    fn poll_shutdown(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        let poll = Pin::new(&mut self.stream).poll_shutdown(cx);
        self.watch(cx, poll)
    }
}

#[cfg(test)]
mod tests {
    use std::future::pending;
    use std::io::{Read, Write};
    use std::net::{SocketAddr, TcpStream};
    use std::sync::Arc;
    use std::sync::atomic::Ordering;
    use std::time::{Duration, Instant};

    use super::*;

    fn limits(timeout: Duration) -> Limits {
        Limits {
            connections_max: 64,
            connections_per_address_max: 64,
            header_timeout: timeout,
            body_timeout: timeout,
            write_timeout: timeout,
        }
    }

    /// A port with these caps and deadlines, served by no thread (for the slot rules).
    fn port(connections_max: usize, connections_per_address_max: usize, timeout: Duration) -> Arc<Port> {
        Arc::new(Port {
            name: "test",
            limits: Limits { connections_max, connections_per_address_max, ..limits(timeout) },
            series: Arc::default(),
            open: Mutex::default(),
            log: Mutex::default(),
        })
    }

    /// A server whose every answer is `size` bytes.
    fn server(size: usize, timeout: Duration) -> (Server, Arc<HttpSeries>) {
        let series = Arc::new(HttpSeries::default());
        let body = Bytes::from(vec![b'x'; size]);
        let server = serve("test", SocketAddr::from(([127, 0, 0, 1], 0)), limits(timeout), series.clone(), {
            move |_port, _request| std::future::ready(Response::new(Full::new(body.clone())))
        })
        .expect("serve");
        (server, series)
    }

    /// A server with these limits that answers `ok`, after `hold` for requests to `/hold`.
    fn holding_server(limits: Limits, hold: Duration) -> (Server, Arc<HttpSeries>) {
        let series = Arc::new(HttpSeries::default());
        let server = serve("test", SocketAddr::from(([127, 0, 0, 1], 0)), limits, series.clone(), {
            move |_port, request: Request<Incoming>| async move {
                if request.uri().path() == "/hold" {
                    tokio::time::sleep(hold).await;
                }
                Response::new(Full::new(Bytes::from_static(b"ok")))
            }
        })
        .expect("serve");
        (server, series)
    }

    fn get(addr: SocketAddr) -> std::io::Result<String> {
        let mut stream = TcpStream::connect(addr)?;
        stream.set_read_timeout(Some(Duration::from_secs(5)))?;
        stream.write_all(b"GET / HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n")?;
        let mut response = String::new();
        stream.read_to_string(&mut response)?;
        Ok(response)
    }

    fn wait_for(what: &str, mut done: impl FnMut() -> bool) {
        let deadline = Instant::now() + Duration::from_secs(5);
        while !done() {
            assert!(Instant::now() < deadline, "timed out waiting for {what}");
            std::thread::sleep(Duration::from_millis(20));
        }
    }

    /// A client that asks for a large answer and never reads it is closed at the write
    /// deadline, and meanwhile others are served at once: the stalled write holds a task, not
    /// the thread.
    #[test]
    fn a_client_that_stops_reading_is_closed_at_the_write_deadline() {
        let (server, series) = server(64 << 20, Duration::from_millis(500));
        let mut stalled = TcpStream::connect(server.local_addr()).unwrap();
        stalled.write_all(b"GET / HTTP/1.1\r\nHost: x\r\n\r\n").unwrap();
        std::thread::sleep(Duration::from_millis(100));
        let start = Instant::now();
        // Another client is answered while the first one's write is stalled.
        let mut other = TcpStream::connect(server.local_addr()).unwrap();
        other.set_read_timeout(Some(Duration::from_secs(5))).unwrap();
        other.write_all(b"GET / HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n").unwrap();
        let mut head = [0u8; 12];
        other.read_exact(&mut head).unwrap();
        assert_eq!(&head, b"HTTP/1.1 200");
        assert!(start.elapsed() < Duration::from_millis(400), "answered after {:?}", start.elapsed());
        drop(other);
        wait_for("the write deadline", || series.timed_out_write.load(Ordering::Relaxed) == 1);
        // Closed: once the socket buffers drain, the stream ends.
        stalled.set_read_timeout(Some(Duration::from_secs(5))).unwrap();
        let mut drained = 0u64;
        let mut buffer = vec![0u8; 1 << 16];
        while let Ok(read @ 1..) = stalled.read(&mut buffer) {
            drained += read as u64;
        }
        assert!(drained < 64 << 20, "the whole answer was sent");
        wait_for("the slot to come back", || series.connections_open.load(Ordering::Relaxed) == 0);
    }

    /// Stopping a server ends its accept loop and its open connections, joins its thread, and
    /// frees the port.
    #[test]
    fn stop_closes_every_connection_and_joins_the_thread() {
        let (mut server, series) = server(10, Duration::from_secs(30));
        let addr = server.local_addr();
        assert!(get(addr).unwrap().starts_with("HTTP/1.1 200"));
        let mut idle = TcpStream::connect(addr).unwrap();
        wait_for("the idle connection", || series.connections_open.load(Ordering::Relaxed) == 1);
        let start = Instant::now();
        server.stop();
        assert!(start.elapsed() < Duration::from_secs(1), "stopped after {:?}", start.elapsed());
        idle.set_read_timeout(Some(Duration::from_secs(2))).unwrap();
        assert!(matches!(idle.read(&mut [0u8; 16]), Ok(0) | Err(_)), "the idle connection is closed");
        assert!(TcpStream::connect(addr).is_err(), "still accepting after stop");
        assert_eq!(series.connections_open.load(Ordering::Relaxed), 0);
    }

    /// Refusals and timeouts are logged at most once per kind per interval; the rest are
    /// counted as suppressed, per kind.
    #[test]
    fn log_lines_are_rate_limited_per_kind() {
        let port = port(64, 64, Duration::from_secs(1));
        for _ in 0..5 {
            port.note(Event::RefusedPerAddress, &"127.0.0.1");
        }
        port.note(Event::HeaderTimeout, &"127.0.0.1");
        let gate = port.log.lock().unwrap();
        let (logged, suppressed) = gate.kinds[Event::RefusedPerAddress as usize];
        assert!(logged.is_some());
        assert_eq!(suppressed, 4);
        assert_eq!(gate.kinds[Event::HeaderTimeout as usize].1, 0);
        assert!(gate.kinds[Event::BodyTimeout as usize].0.is_none());
    }

    /// The caps count per source address (IPv4-mapped IPv6 as IPv4) and in total, and a
    /// slot given back is taken again.
    #[test]
    fn slots_are_capped_per_address_and_in_total() {
        let port = port(3, 2, Duration::from_secs(1));
        let one: IpAddr = [127, 0, 0, 1].into();
        let mapped: IpAddr = "::ffff:127.0.0.1".parse().unwrap();
        let two: IpAddr = [127, 0, 0, 2].into();
        let first = port.take_slot(one).unwrap();
        let _second = port.take_slot(mapped).unwrap();
        assert!(matches!(port.take_slot(one), Err(Event::RefusedPerAddress)));
        let _third = port.take_slot(two).unwrap();
        assert!(matches!(port.take_slot(two), Err(Event::RefusedConnectionsMax)));
        drop(first);
        assert_eq!(port.series.connections_open.load(Ordering::Relaxed), 2);
        let _again = port.take_slot(one).unwrap();
    }

    /// Connections over their address's cap wait for its slots, oldest first, among at most
    /// [`waiting_max`]; a slot given back goes to the oldest live waiter without the counts
    /// moving, and a waiter whose deadline passes leaves the queue with nothing.
    #[test]
    fn waiting_connections_are_bounded_and_served_oldest_first() {
        let port = port(256, 1, Duration::from_millis(50));
        let room = waiting_max(256);
        assert_eq!((room, waiting_max(16), waiting_max(1 << 20)), (WAITING_MAX, 32, WAITING_MAX));
        let runtime = tokio::runtime::Builder::new_current_thread().enable_time().build().unwrap();
        let one: IpAddr = [127, 0, 0, 1].into();
        let held = port.take_slot(one).unwrap();
        let mut waits: VecDeque<_> =
            (0..room).map(|_| port.wait_for_slot(one).expect("room to wait")).collect();
        assert!(port.wait_for_slot(one).is_none(), "a waiter past waiting_max");
        assert_eq!(port.series.connections_waiting.load(Ordering::Relaxed), room as u64);
        let (oldest, second) = (waits.pop_front().unwrap(), waits.pop_front().unwrap());
        drop(held);
        let slot =
            runtime.block_on(oldest.until(pending())).expect("the oldest waiter gets the slot given back");
        assert_eq!(port.series.connections_open.load(Ordering::Relaxed), 1);
        // The rest give up (dropped unpolled, as at shutdown): the slot skips them later.
        drop(waits);
        drop(slot);
        let slot = runtime.block_on(second.until(pending())).expect("the next live waiter gets it");
        let left = room - 2;
        assert_eq!(port.open.lock().unwrap().waiting_total, left, "given up, still queued");
        let late = port.wait_for_slot(one).unwrap();
        assert!(runtime.block_on(late.until(pending())).is_none(), "no slot within the deadline");
        assert_eq!(port.open.lock().unwrap().waiting_total, left, "the late waiter left the queue");
        // Given back with only given-up waiters queued: they are skipped, and the port has it.
        drop(slot);
        let open = port.open.lock().unwrap();
        assert_eq!((open.total, open.per_address.len(), open.waiting.len()), (0, 0, 0));
        assert_eq!(port.series.connections_open.load(Ordering::Relaxed), 0);
        assert_eq!(port.series.connections_waiting.load(Ordering::Relaxed), 0);
    }

    /// At the port's `connections_max`, a slot given back goes to the port, not to a waiter of
    /// its address, so another address can take it; the waiter gets none.
    #[test]
    fn at_the_port_cap_a_slot_given_back_goes_to_the_port() {
        let port = port(2, 1, Duration::from_millis(50));
        let runtime = tokio::runtime::Builder::new_current_thread().enable_time().build().unwrap();
        let (one, two, three): (IpAddr, IpAddr, IpAddr) =
            ([127, 0, 0, 1].into(), [127, 0, 0, 2].into(), [127, 0, 0, 3].into());
        let held = port.take_slot(one).unwrap();
        let _other = port.take_slot(two).unwrap();
        let waiter = port.wait_for_slot(one).unwrap();
        drop(held);
        assert!(port.take_slot(three).is_ok(), "a new address refused a slot given back at the cap");
        assert!(
            runtime.block_on(waiter.until(pending())).is_none(),
            "the waiter took a slot at the port's cap"
        );
    }

    /// A slot given back while the port has room goes to the oldest waiter whose address is
    /// under its cap, whichever address gave it back; and a new connection from an address
    /// with a waiter queues behind it instead of taking the free slot first.
    #[test]
    fn a_waiter_under_its_cap_is_not_stranded_while_the_port_has_room() {
        let runtime = tokio::runtime::Builder::new_current_thread().enable_time().build().unwrap();
        let (one, two): (IpAddr, IpAddr) = ([127, 0, 0, 1].into(), [127, 0, 0, 2].into());
        // Given back at the cap by its own address, then by another one.
        let port = port(2, 1, Duration::from_millis(50));
        let (held, other) = (port.take_slot(one).unwrap(), port.take_slot(two).unwrap());
        let waiter = port.wait_for_slot(one).unwrap();
        drop(held);
        drop(other);
        let slot =
            runtime.block_on(waiter.until(pending())).expect("a slot was free and its address under its cap");
        assert_eq!(port.series.connections_open.load(Ordering::Relaxed), 1);
        drop(slot);
        assert_eq!(port.series.connections_open.load(Ordering::Relaxed), 0);
        // A newcomer from the waiter's address, after a slot went back to the port at its cap.
        let port = self::port(2, 1, Duration::from_millis(50));
        let (held, _other) = (port.take_slot(one).unwrap(), port.take_slot(two).unwrap());
        let waiter = port.wait_for_slot(one).unwrap();
        drop(held);
        assert!(matches!(port.take_slot(one), Err(Event::RefusedPerAddress)), "jumped the queue");
        assert!(runtime.block_on(waiter.until(pending())).is_some(), "the waiter first");
    }

    /// A full waiting room makes room for another address: the address with the most waiters
    /// gives up its newest, which is refused at once; an address never evicts for itself.
    #[test]
    fn one_address_fills_the_waiting_room_only_while_no_other_needs_it() {
        let runtime = tokio::runtime::Builder::new_current_thread().enable_time().build().unwrap();
        let port = port(4, 1, Duration::from_millis(50));
        let (one, two): (IpAddr, IpAddr) = ([127, 0, 0, 1].into(), [127, 0, 0, 2].into());
        let _held = port.take_slot(one).unwrap();
        let mut waits: Vec<SlotWait> =
            (0..waiting_max(4)).map(|_| port.wait_for_slot(one).expect("room to wait")).collect();
        assert!(port.wait_for_slot(one).is_none(), "an address evicted its own waiter");
        let newcomer = port.wait_for_slot(two).expect("another address finds room");
        let evicted = waits.pop().unwrap();
        let start = Instant::now();
        assert!(runtime.block_on(evicted.until(pending())).is_none());
        assert!(start.elapsed() < Duration::from_millis(40), "the evicted waiter waited out its deadline");
        let open = port.open.lock().unwrap();
        assert_eq!((open.waiting_total, open.waiting[&one].len(), open.waiting[&two].len()), (8, 7, 1));
        drop(open);
        drop((waits, newcomer));
    }

    /// At the port's cap, a newcomer whose address holds at least two fewer slots than the
    /// largest holder gets that holder's oldest slot: the holder's connection is asked to
    /// close, and its slot goes to the newcomer, not to the port. A newcomer's promised slots
    /// count as held, so addresses even out and stop there: no address holding one slot is
    /// asked for it by one holding none. A port asks at most an eighth of its slots (at least
    /// one) to close a `header_timeout`.
    #[test]
    fn at_the_port_cap_a_newcomer_takes_a_slot_from_the_largest_holder() {
        let runtime = tokio::runtime::Builder::new_current_thread().enable_time().build().unwrap();
        let port = port(4, 4, Duration::from_secs(60));
        let address = |last: u8| -> IpAddr { [127, 0, 0, last].into() };
        // A new window of evictions, as if a header_timeout had passed.
        let next_window = || port.open.lock().unwrap().recent.clear();
        let evicting = |last: u8| -> Option<SlotWait> {
            let newcomer = port.newcomer(address(last))?;
            match port.evict_for(&newcomer)? {
                Admitted::Waiting(wait) => Some(wait),
                Admitted::Now(_) => panic!("the port had room"),
            }
        };
        let mut held: Vec<Slot> = (0..4).map(|_| port.take_slot(address(1)).unwrap()).collect();
        assert!(matches!(port.take_slot(address(2)), Err(Event::RefusedConnectionsMax)));
        let newcomer = evicting(2).expect("one address holds every slot");
        // The oldest connection is the one asked, and only it.
        let asked: Vec<bool> =
            held.iter_mut().map(|slot| slot.evicted.as_mut().unwrap().try_recv().is_ok()).collect();
        assert_eq!(asked, [true, false, false, false]);
        assert!(evicting(3).is_none(), "a second eviction in one header_timeout on a port of 4");
        next_window();
        // A second newcomer from the same address: its promised slot counts, 3 − 0 ≥ 1 + 2 holds.
        let second = evicting(2).expect("3 held against 1 promised");
        next_window();
        assert!(evicting(2).is_none(), "2 held against 2 promised");
        assert_eq!(port.series.evicted.load(Ordering::Relaxed), 2);
        assert_eq!(port.open.lock().unwrap().waiting_total, 2, "a refused newcomer took a place");
        // A slot given back by a connection not asked to close goes to the port, as before.
        drop(held.pop());
        let third = port.take_slot(address(3)).expect("the slot given back to the port");
        // The asked connections close: their slots go to the newcomers, the total unchanged.
        drop(held.remove(0));
        let first = runtime.block_on(newcomer.until(pending())).expect("the first asked slot");
        drop(held.remove(0));
        let next = runtime.block_on(second.until(pending())).expect("the second asked slot");
        assert_eq!((first.ip, next.ip), (address(2), address(2)));
        let open = port.open.lock().unwrap();
        assert_eq!(open.total, 4);
        assert_eq!((open.per_address[&address(1)], open.per_address[&address(2)]), (1, 2));
        assert!(
            open.held.values().flatten().all(|held| held.heir.is_none() && held.evict.is_some()),
            "a closed connection's promise or eviction outlived it"
        );
        drop(open);
        // Held 1, 2 and 1 (slots of 1, 2 and 3): a newcomer holding none asks the largest, and
        // then each of the four holds one, and a fifth address is refused.
        next_window();
        let fourth = evicting(4).expect("2 held against none");
        assert!(port.open.lock().unwrap().held[&address(2)][0].evict.is_none(), "not the largest asked");
        next_window();
        assert!(evicting(5).is_none(), "an address holding one slot asked for it");
        assert_eq!(port.series.connections_open.load(Ordering::Relaxed), 4);
        drop((first, next, third, held, fourth));
        assert_eq!(port.series.connections_open.load(Ordering::Relaxed), 0);
        assert!(port.open.lock().unwrap().held.is_empty());
    }

    /// A subscription session is asked to close only when its address has no plain connection
    /// left to ask, however old it is.
    #[test]
    fn a_session_is_asked_to_close_after_its_addresss_plain_connections() {
        let port = port(8, 8, Duration::from_secs(60));
        let (one, two): (IpAddr, IpAddr) = ([127, 0, 0, 1].into(), [127, 0, 0, 2].into());
        let mut held: Vec<Slot> = (0..8).map(|_| port.take_slot(one).unwrap()).collect();
        for slot in &held[..7] {
            port.open().mark_session(slot.ip, slot.id);
        }
        let evict = || port.evict_for(&port.newcomer(two).expect("a newcomer")).expect("asked");
        let wait = evict();
        let asked: Vec<bool> =
            held.iter_mut().map(|slot| slot.evicted.as_mut().unwrap().try_recv().is_ok()).collect();
        assert_eq!(asked, [false, false, false, false, false, false, false, true], "a session asked first");
        port.open.lock().unwrap().recent.clear();
        let again = evict();
        assert!(held[0].evicted.as_mut().unwrap().try_recv().is_ok(), "then the oldest session");
        drop((wait, again));
    }

    /// Before a newcomer speaks it takes no waiter's place, there are at most twice
    /// evictions_max of them, and one an address; one address has at most one connection asked
    /// to close for it a header_timeout; and a newcomer that finds room when it speaks takes
    /// it, asking nobody.
    #[test]
    fn newcomers_wait_bounded_and_unqueued_and_one_address_evicts_once_a_window() {
        let port = port(16, 16, Duration::from_secs(60));
        let address = |last: u8| -> IpAddr { [127, 0, 0, last].into() };
        let mut held: Vec<Slot> = (0..16).map(|_| port.take_slot(address(1)).unwrap()).collect();
        let max = evictions_max(16);
        let silent: Vec<Newcomer> =
            (0..2 * max as u8).map(|i| port.newcomer(address(10 + i)).unwrap()).collect();
        assert!(port.newcomer(address(99)).is_none(), "past twice evictions_max newcomers");
        drop(silent);
        let silent = port.newcomer(address(10)).unwrap();
        assert!(port.newcomer(address(10)).is_none(), "two newcomers from one address at once");
        assert_eq!(port.open.lock().unwrap().waiting_total, 0, "a silent newcomer took a place in line");
        drop(silent);
        // One address, speaking each time: one eviction, then none until the window passes.
        let first = port.evict_for(&port.newcomer(address(2)).unwrap());
        assert!(matches!(first, Some(Admitted::Waiting(_))));
        assert!(port.newcomer(address(2)).is_none(), "a second eviction for one address");
        assert_eq!(port.series.evicted.load(Ordering::Relaxed), 1);
        // Room when it speaks: a slot at once, nobody asked.
        let newcomer = port.newcomer(address(3)).unwrap();
        drop(held.pop());
        assert!(matches!(port.evict_for(&newcomer), Some(Admitted::Now(slot)) if slot.ip == address(3)));
        assert_eq!(port.series.evicted.load(Ordering::Relaxed), 1);
        drop((first, held));
    }

    /// A connection to `addr` from `127.0.0.last`.
    fn connect_from(addr: SocketAddr, last: u8) -> TcpStream {
        let socket = socket2::Socket::new(socket2::Domain::IPV4, socket2::Type::STREAM, None).unwrap();
        socket.bind(&SocketAddr::from(([127, 0, 0, last], 0)).into()).unwrap();
        socket.connect(&addr.into()).unwrap();
        socket.into()
    }

    /// Whether the server still holds `stream` open: nothing to read, and no end of stream.
    fn still_open(stream: &mut TcpStream) -> bool {
        stream.set_read_timeout(Some(Duration::from_millis(50))).unwrap();
        matches!(stream.read(&mut [0u8; 1]), Err(error) if error.kind() == std::io::ErrorKind::WouldBlock)
    }

    /// At a full port, a newcomer that dials and hangs up without sending a byte has nobody
    /// asked to close, however often it does it; one that sends a byte and hangs up, again and
    /// again, has one connection asked to close a header_timeout; one that sends its request
    /// from another address has one.
    #[test]
    fn a_dial_and_hang_up_at_a_full_port_closes_nobody() {
        let limits =
            Limits { connections_max: 16, connections_per_address_max: 16, ..limits(Duration::from_secs(3)) };
        let (server, series) = holding_server(limits, Duration::ZERO);
        let addr = server.local_addr();
        let mut held: Vec<TcpStream> = (0..15).map(|_| connect_from(addr, 1)).collect();
        held.push(connect_from(addr, 2));
        wait_for("the port full", || series.connections_open.load(Ordering::Relaxed) == 16);
        for _ in 0..10 {
            drop(connect_from(addr, 3));
        }
        wait_for("the hang-ups refused", || series.refused_connections_max.load(Ordering::Relaxed) == 10);
        assert_eq!(series.evicted.load(Ordering::Relaxed), 0);
        assert!(held.iter_mut().all(still_open), "a connection closed for a dial that sent nothing");
        // A byte and a hang-up, again and again, from one address, the port refilled each time
        // by the holder: one connection asked to close, not one each time.
        let mut refill = Vec::new();
        for _ in 0..5 {
            while series.connections_open.load(Ordering::Relaxed) < 16 {
                refill.push(connect_from(addr, 1));
                wait_for("the refill", || series.connections_open.load(Ordering::Relaxed) >= 16);
            }
            let mut byte = connect_from(addr, 3);
            byte.write_all(b"G").unwrap();
            drop(byte);
            std::thread::sleep(Duration::from_millis(100));
        }
        assert_eq!(series.evicted.load(Ordering::Relaxed), 1, "one address closed more than one");
        wait_for("the port full again", || {
            if series.connections_open.load(Ordering::Relaxed) < 16 {
                refill.push(connect_from(addr, 1));
            }
            series.connections_open.load(Ordering::Relaxed) == 16
        });
        let before = series.evicted.load(Ordering::Relaxed);
        let mut newcomer = connect_from(addr, 4);
        newcomer.write_all(b"GET / HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n").unwrap();
        newcomer.set_read_timeout(Some(Duration::from_secs(5))).unwrap();
        let mut answer = String::new();
        newcomer.read_to_string(&mut answer).unwrap();
        assert!(answer.starts_with("HTTP/1.1 200"), "{answer:?}");
        assert_eq!(series.evicted.load(Ordering::Relaxed), before + 1);
    }

    /// A client from a second address is served on a port whose every slot one address
    /// holds: the holder's oldest connection, busy with a request, answers it in full and
    /// closes, and the newcomer gets its slot.
    #[test]
    fn eight_connections_from_one_address_do_not_keep_a_second_out() {
        let limits =
            Limits { connections_max: 8, connections_per_address_max: 8, ..limits(Duration::from_secs(3)) };
        let (server, series) = holding_server(limits, Duration::from_millis(500));
        let addr = server.local_addr();
        let connect_from = |last: u8| connect_from(addr, last);
        let mut busy = connect_from(1);
        busy.write_all(b"GET /hold HTTP/1.1\r\nHost: x\r\n\r\n").unwrap();
        wait_for("the busy one open", || series.connections_open.load(Ordering::Relaxed) == 1);
        let mut idle: Vec<TcpStream> = (0..7).map(|_| connect_from(1)).collect();
        wait_for("the port full", || series.connections_open.load(Ordering::Relaxed) == 8);
        let mut newcomer = connect_from(2);
        newcomer.write_all(b"GET / HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n").unwrap();
        newcomer.set_read_timeout(Some(Duration::from_secs(5))).unwrap();
        let mut answer = String::new();
        newcomer.read_to_string(&mut answer).unwrap();
        assert!(answer.starts_with("HTTP/1.1 200") && answer.ends_with("ok"), "newcomer: {answer:?}");
        // The oldest connection was the one asked: its answer came whole, then it closed.
        busy.set_read_timeout(Some(Duration::from_secs(5))).unwrap();
        let mut answer = String::new();
        busy.read_to_string(&mut answer).unwrap();
        assert!(answer.starts_with("HTTP/1.1 200") && answer.ends_with("ok"), "asked: {answer:?}");
        assert_eq!(series.evicted.load(Ordering::Relaxed), 1);
        assert_eq!(series.refused_connections_max.load(Ordering::Relaxed), 0);
        // The others are still open.
        assert!(still_open(&mut idle[0]));
    }

    /// An IPv6 address is capped with the rest of its /64, as it is charged and banned.
    #[test]
    fn an_ipv6_slash_64_shares_one_cap() {
        let port = port(8, 1, Duration::from_millis(50));
        let address = |text: &str| -> IpAddr { text.parse().unwrap() };
        let _first = port.take_slot(address("2001:db8::1")).unwrap();
        assert!(matches!(port.take_slot(address("2001:db8::ffff:2")), Err(Event::RefusedPerAddress)));
        assert!(port.take_slot(address("2001:db8:0:1::1")).is_ok(), "another /64");
        let _v4 = port.take_slot(address("192.0.2.1")).unwrap();
        assert!(matches!(port.take_slot(address("::ffff:192.0.2.1")), Err(Event::RefusedPerAddress)));
    }

    /// A waiting connection whose client leaves before sending anything leaves the queue at
    /// once, not at the header deadline.
    #[test]
    fn a_waiter_whose_client_leaves_gives_up_its_place() {
        let series = Arc::new(HttpSeries::default());
        let limits = Limits { connections_per_address_max: 1, ..limits(Duration::from_secs(4)) };
        let server = serve("test", SocketAddr::from(([127, 0, 0, 1], 0)), limits, series.clone(), {
            |_port, _request: Request<Incoming>| async move {
                tokio::time::sleep(Duration::from_secs(3)).await;
                Response::new(Full::new(Bytes::from_static(b"ok")))
            }
        })
        .expect("serve");
        let addr = server.local_addr();
        let mut held = TcpStream::connect(addr).unwrap();
        held.write_all(b"GET / HTTP/1.1\r\nHost: x\r\n\r\n").unwrap();
        wait_for("one open", || series.connections_open.load(Ordering::Relaxed) == 1);
        let silent = TcpStream::connect(addr).unwrap();
        wait_for("one waiting", || series.connections_waiting.load(Ordering::Relaxed) == 1);
        let start = Instant::now();
        drop(silent);
        wait_for("the waiter gone", || series.connections_waiting.load(Ordering::Relaxed) == 0);
        assert!(start.elapsed() < Duration::from_secs(2), "left after {:?}", start.elapsed());
        drop(held);
    }

    /// Over a real socket: a connection past its address's cap is read and answered once one
    /// of the address's connections closes; one that gets no slot before the header deadline is
    /// closed unread and counted as refused.
    #[test]
    fn a_connection_past_its_address_cap_waits_for_a_slot() {
        let limits = Limits { connections_per_address_max: 2, ..limits(Duration::from_millis(600)) };
        // `/hold` keeps its connection busy (past the header deadline) for 3 s.
        let (server, series) = holding_server(limits, Duration::from_secs(3));
        let addr = server.local_addr();
        let hold = || {
            let mut stream = TcpStream::connect(addr).unwrap();
            stream.write_all(b"GET /hold HTTP/1.1\r\nHost: x\r\n\r\n").unwrap();
            stream
        };
        let first = hold();
        let _second = hold();
        wait_for("two open", || series.connections_open.load(Ordering::Relaxed) == 2);
        let mut third = TcpStream::connect(addr).unwrap();
        third.write_all(b"GET / HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n").unwrap();
        wait_for("one waiting", || series.connections_waiting.load(Ordering::Relaxed) == 1);
        third.set_read_timeout(Some(Duration::from_millis(200))).unwrap();
        assert!(third.read(&mut [0u8; 1]).is_err(), "answered while its address held every slot");
        drop(first);
        third.set_read_timeout(Some(Duration::from_secs(5))).unwrap();
        let mut answer = String::new();
        third.read_to_string(&mut answer).unwrap();
        assert!(answer.starts_with("HTTP/1.1 200") && answer.ends_with("ok"), "{answer}");
        drop(third);
        wait_for("the third's slot back", || series.connections_open.load(Ordering::Relaxed) == 1);
        let _refill = hold();
        wait_for("two open again", || series.connections_open.load(Ordering::Relaxed) == 2);
        let mut fourth = TcpStream::connect(addr).unwrap();
        fourth.write_all(b"GET / HTTP/1.1\r\nHost: x\r\n\r\n").unwrap();
        fourth.set_read_timeout(Some(Duration::from_secs(5))).unwrap();
        let start = Instant::now();
        let mut rest = Vec::new();
        let _ = fourth.read_to_end(&mut rest);
        assert!(rest.is_empty(), "a waiter past its deadline was answered: {rest:?}");
        assert!(start.elapsed() < Duration::from_secs(2), "closed after {:?}", start.elapsed());
        assert_eq!(series.refused_per_address.load(Ordering::Relaxed), 1);
        assert_eq!(series.connections_waiting.load(Ordering::Relaxed), 0);
    }

    /// Run in a child process with at most 128 file descriptors (the parent sets the limit):
    /// with none left, accepting fails; the loop counts it, pauses, and serves the waiting
    /// client once descriptors are free again.
    const EMFILE_CHILD: &str = "TESSERA_TEST_EMFILE_CHILD";

    #[test]
    fn an_accept_error_pauses_and_the_loop_carries_on() {
        if std::env::var_os(EMFILE_CHILD).is_none() {
            let output = std::process::Command::new("sh")
                .args(["-c", "ulimit -n 128 && exec \"$0\" \"$@\""])
                .arg(std::env::current_exe().unwrap())
                .args(["--exact", "node::http::tests::an_accept_error_pauses_and_the_loop_carries_on"])
                .args(["--nocapture", "--test-threads=1"])
                .env(EMFILE_CHILD, "1")
                .output()
                .unwrap();
            let text = String::from_utf8_lossy(&output.stdout);
            assert!(output.status.success(), "{text}{}", String::from_utf8_lossy(&output.stderr));
            assert!(text.contains("1 passed"), "{text}");
            return;
        }
        let (server, series) = server(10, Duration::from_secs(5));
        let mut files = Vec::new();
        while let Ok(file) = std::fs::File::open("/dev/null") {
            files.push(file);
            assert!(files.len() < 1 << 16, "no descriptor limit in force");
        }
        // One descriptor for the client; none for the server's accept.
        files.pop();
        let mut client = TcpStream::connect(server.local_addr()).unwrap();
        client.write_all(b"GET / HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n").unwrap();
        wait_for("failed accepts", || series.accept_errors.load(Ordering::Relaxed) >= 2);
        drop(files);
        client.set_read_timeout(Some(Duration::from_secs(5))).unwrap();
        let mut response = String::new();
        client.read_to_string(&mut response).unwrap();
        assert!(response.starts_with("HTTP/1.1 200"), "{response}");
    }
}
