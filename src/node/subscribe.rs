//! Subscriptions over WebSocket on the RPC port, in the style of `eth_subscribe`.
//!
//! Bird's eye view: a client opens a WebSocket on the RPC port (`GET /` with an upgrade; a
//! request carrying an `Origin` header, as every browser's does, is refused, so a web page
//! cannot drive a local node) and sends JSON-RPC over it:
//!
//! - `tessera_subscribe ["finalizedBlocks"]` answers a subscription id; then each finalized
//!   block comes as a notification (its header fields, certificate and transaction ids, as
//!   `tessera_getBlockByHeight` has them);
//! - `tessera_subscribe ["transactionFates", [id, ...]]` (up to [`FATE_IDS_MAX`] ids) answers
//!   a subscription id; then each id's fate comes as a notification when it is known
//!   (`committed` or `failed` at a height, which is final; `rejected` with a reason, after
//!   which a resubmission may still commit). A fate already known is sent at once;
//! - `tessera_unsubscribe [subscription]` answers whether it was one;
//! - any other method is answered as over HTTP.
//!
//! A notification is `{"jsonrpc":"2.0","method":"tessera_subscription","params":
//! {"subscription": ID, "result": ...}}`.
//!
//! The node loop pushes one [`Event`] per finalized block and one per tick's rejections into
//! the read view's feed, a ring of at most [`FEED_EVENTS`](super::reads::FEED_EVENTS) events
//! and [`FEED_TXNS_MAX`](super::reads::FEED_TXNS_MAX) transactions that every session reads
//! from with a cursor of its own: its bounded buffer. A block's JSON is made once, by the first session
//! that sends it. A session that falls a whole ring behind (it reads slowly, or its client
//! does) past the ring's oldest event gets an error notification on each of its subscriptions
//! (code [`SUBSCRIBER_BEHIND`]) and is closed; a client that stops reading is closed at the port's
//! write deadline. A connection holds one of the port's connection slots while it is open,
//! at most [`SUBSCRIPTIONS_MAX`] subscriptions, and is closed when it has none and sends
//! nothing for the port's idle time.

use std::collections::{HashMap, HashSet};
use std::sync::atomic::Ordering;
use std::sync::{Arc, OnceLock};
use std::time::Duration;

use futures_util::{SinkExt, StreamExt};
use serde_json::{Value, json};
use tessera_components::{CertifiedBlock, Hash, TxnId};
use tessera_systems::TxnOutcome;
use tokio_tungstenite::WebSocketStream;
use tokio_tungstenite::tungstenite::Message;
use tokio_tungstenite::tungstenite::protocol::frame::coding::CloseCode;
use tokio_tungstenite::tungstenite::protocol::{CloseFrame, Role, WebSocketConfig};

use super::http::{Upgraded, WriteDeadline};
use super::metrics::HttpSeries;
use super::reads::ReadView;
use super::rpc::{ParsedBody, ParsedCall, Query, code};
use super::{Fate, block_json, transaction_status};

/// Most subscriptions one connection holds.
pub const SUBSCRIPTIONS_MAX: usize = 16;

/// Most transaction ids one `transactionFates` subscription watches.
pub const FATE_IDS_MAX: usize = 1024;

/// The error code of the notification sent to a subscriber that fell behind, before it is
/// closed.
pub const SUBSCRIBER_BEHIND: i64 = -32003;

/// What a subscription is to.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Topic {
    /// Every finalized block.
    FinalizedBlocks,
    /// The fates of these transactions.
    TransactionFates(Vec<TxnId>),
}

impl Topic {
    /// Reads `tessera_subscribe`'s parameters.
    ///
    /// # Errors
    /// What is wrong with them.
    pub fn parse(params: &Value) -> Result<Topic, String> {
        let expected = format!(
            "expected [\"finalizedBlocks\"] or [\"transactionFates\", [id, ...]] (1 to {FATE_IDS_MAX} ids of 64 hex digits)"
        );
        let items = params.as_array().ok_or_else(|| expected.clone())?;
        match items.as_slice() {
            [name] if name == "finalizedBlocks" => Ok(Topic::FinalizedBlocks),
            [name, ids] if name == "transactionFates" => {
                let ids = ids.as_array().ok_or_else(|| expected.clone())?;
                if ids.is_empty() || ids.len() > FATE_IDS_MAX {
                    return Err(expected);
                }
                let mut ids = ids
                    .iter()
                    .map(|id| super::rpc::hex32(id).map(|bytes| TxnId(Hash(bytes))))
                    .collect::<Option<Vec<_>>>()
                    .ok_or(expected)?;
                // Each id once, in the order first named: a list of one committed id 4,096 times
                // was 4,096 notifications at once, for a 300 KB message (found in review).
                let mut named = std::collections::HashSet::with_capacity(ids.len());
                ids.retain(|id| named.insert(*id));
                Ok(Topic::TransactionFates(ids))
            }
            _ => Err(expected),
        }
    }
}

/// What the node loop pushes to subscribers, after publishing the tick to the read view.
/// A finalized block's event holds the block the read view holds (shared, not copied) and
/// its outcomes; the JSON and id indexes sessions need are made once, by the first that does.
#[derive(Debug)]
pub enum Event {
    /// A finalized, durable block and the outcome of each of its transactions.
    Finalized {
        /// The block.
        block: Arc<CertifiedBlock>,
        /// Its transactions' outcomes, in block order.
        outcomes: Vec<TxnOutcome>,
        /// The block's notification JSON, made by the first session that needs it.
        json: OnceLock<String>,
        /// Index of `outcomes` by id, built by the first session that watches fates.
        index: OnceLock<HashMap<TxnId, usize>>,
    },
    /// Transactions this node refused in one tick, with the reason of each (at most
    /// [`REJECTED_PER_EVENT_MAX`]).
    Rejected {
        /// Id and reason.
        rejected: Vec<(TxnId, &'static str)>,
        /// Index of `rejected` by id, built by the first session that watches fates.
        index: OnceLock<HashMap<TxnId, usize>>,
    },
}

/// Most refusals one tick's event carries: a flood of refused transactions must not shrink
/// the feed's ring to nothing (a refusal is not final, and `tessera_getTransaction` still
/// reports each).
pub const REJECTED_PER_EVENT_MAX: usize = 4096;

impl Event {
    /// A finalized block's event.
    pub fn finalized(block: Arc<CertifiedBlock>, outcomes: Vec<TxnOutcome>) -> Event {
        Event::Finalized { block, outcomes, json: OnceLock::new(), index: OnceLock::new() }
    }

    /// A tick's refusals, the first [`REJECTED_PER_EVENT_MAX`] of them.
    pub fn rejected(mut rejected: Vec<(TxnId, &'static str)>) -> Event {
        rejected.truncate(REJECTED_PER_EVENT_MAX);
        Event::Rejected { rejected, index: OnceLock::new() }
    }

    /// Transactions the event is about: what it costs the feed's ring.
    pub fn txns(&self) -> usize {
        match self {
            Event::Finalized { block, .. } => block.block.txns.len(),
            Event::Rejected { rejected, .. } => rejected.len(),
        }
    }
}

/// Most transaction ids one connection watches over all its fates subscriptions.
pub const FATE_IDS_PER_CONNECTION_MAX: usize = 4 * FATE_IDS_MAX;

struct Subscription {
    id: String,
    /// The first feed sequence number it is told of: nothing from before it was made.
    from: u64,
    /// `None` for finalized blocks; the ids still watched for fates.
    fates: Option<HashSet<TxnId>>,
}

/// One WebSocket connection's subscriptions.
struct Session {
    /// The client's address, for what its calls submit.
    from: Option<std::net::IpAddr>,
    subscriptions: Vec<Subscription>,
    /// Subscriptions made on this connection, for their ids.
    made: u64,
}

fn notification(subscription: &str, result: &str) -> String {
    format!(
        r#"{{"jsonrpc":"2.0","method":"tessera_subscription","params":{{"subscription":{},"result":{result}}}}}"#,
        Value::from(subscription)
    )
}

fn fate_json(id: &TxnId, fate: &Fate) -> String {
    let mut result = transaction_status(Some(fate), false);
    result["id"] = Value::from(id.0.to_hex());
    result.to_string()
}

/// The ids of `watched` that `index` holds, walking the smaller of the two.
fn hits<T>(watched: &HashSet<TxnId>, index: &HashMap<TxnId, T>) -> Vec<TxnId> {
    if watched.len() <= index.len() {
        watched.iter().filter(|id| index.contains_key(id)).copied().collect()
    } else {
        index.keys().filter(|id| watched.contains(id)).copied().collect()
    }
}

impl Session {
    fn watched_ids(&self) -> usize {
        self.subscriptions.iter().filter_map(|s| s.fates.as_ref()).map(HashSet::len).sum()
    }

    /// The response to a subscribe or unsubscribe call, and the notifications it gives at
    /// once (fates already known).
    fn control(&mut self, id: Value, query: Query, reads: &ReadView) -> (Value, Vec<String>) {
        let reply = |result: Result<Value, (i64, String)>| match result {
            Ok(result) => json!({"jsonrpc": "2.0", "id": id, "result": result}),
            Err((code, message)) => {
                json!({"jsonrpc": "2.0", "id": id, "error": {"code": code, "message": message}})
            }
        };
        let topic = match query {
            Query::Unsubscribe(name) => {
                let before = self.subscriptions.len();
                self.subscriptions.retain(|subscription| subscription.id != name);
                return (reply(Ok(Value::Bool(self.subscriptions.len() < before))), Vec::new());
            }
            Query::Subscribe(topic) => topic,
            _ => unreachable!("only subscription calls are controls"),
        };
        if self.subscriptions.len() >= SUBSCRIPTIONS_MAX {
            let message = format!("at most {SUBSCRIPTIONS_MAX} subscriptions per connection");
            return (reply(Err((code::SERVER_BUSY, message))), Vec::new());
        }
        let refuse = |message: String| (reply(Err((code::SERVER_BUSY, message))), Vec::new());
        match &topic {
            Topic::FinalizedBlocks if self.subscriptions.iter().any(|s| s.fates.is_none()) => {
                return refuse("this connection already follows finalized blocks".into());
            }
            Topic::TransactionFates(ids) if self.watched_ids() + ids.len() > FATE_IDS_PER_CONNECTION_MAX => {
                return refuse(format!("at most {FATE_IDS_PER_CONNECTION_MAX} watched ids per connection"));
            }
            _ => {}
        }
        self.made += 1;
        let name = format!("0x{:x}", self.made);
        let from = reads.feed_next();
        let mut now = Vec::new();
        let fates = match topic {
            Topic::FinalizedBlocks => None,
            Topic::TransactionFates(ids) => {
                // Copied out under the lock, formatted after: the loop records into it.
                let known: Vec<(TxnId, Option<Fate>)> = {
                    let fates = reads.fates();
                    ids.into_iter().map(|id| (id, fates.get(&id).cloned())).collect()
                };
                let mut watched = HashSet::with_capacity(known.len());
                for (id, fate) in known {
                    if let Some(fate) = &fate {
                        now.push(notification(&name, &fate_json(&id, fate)));
                    }
                    // A fate in a finalized block is final; anything else may still change.
                    if !matches!(fate, Some(Fate::Committed { .. })) {
                        watched.insert(id);
                    }
                }
                Some(watched)
            }
        };
        self.subscriptions.push(Subscription { id: name.clone(), from, fates });
        (reply(Ok(Value::from(name))), now)
    }

    /// The notifications that the feed event numbered `seq` gives this connection's
    /// subscriptions.
    fn notifications(&mut self, seq: u64, event: &Event) -> Vec<String> {
        let mut out = Vec::new();
        for subscription in self.subscriptions.iter_mut().filter(|s| seq >= s.from) {
            match (event, &mut subscription.fates) {
                (Event::Finalized { block, json, .. }, None) => {
                    let text = json.get_or_init(|| block_json(block).to_string());
                    out.push(notification(&subscription.id, text));
                }
                (Event::Finalized { block, outcomes, index, .. }, Some(watched)) => {
                    if watched.is_empty() {
                        continue;
                    }
                    let index =
                        index.get_or_init(|| outcomes.iter().enumerate().map(|(i, o)| (o.id, i)).collect());
                    let height = block.block.header.height;
                    for id in hits(watched, index) {
                        let result = outcomes[index[&id]].result.map_err(|reason| reason.name().to_owned());
                        out.push(notification(
                            &subscription.id,
                            &fate_json(&id, &Fate::Committed { height, result }),
                        ));
                        watched.remove(&id);
                    }
                }
                (Event::Rejected { rejected, index }, Some(watched)) => {
                    if watched.is_empty() {
                        continue;
                    }
                    let index = index
                        .get_or_init(|| rejected.iter().enumerate().map(|(i, (id, _))| (*id, i)).collect());
                    for id in hits(watched, index) {
                        let fate = Fate::Rejected(rejected[index[&id]].1.to_owned());
                        out.push(notification(&subscription.id, &fate_json(&id, &fate)));
                    }
                }
                (Event::Rejected { .. }, None) => {}
            }
        }
        out
    }

    /// The replies to one text message: subscription calls here, the rest as over HTTP (all
    /// of a batch's under one deadline), in the batch's order.
    async fn answer(
        &mut self,
        text: &str,
        node: &super::rpc::NodeQueue,
        reads: &ReadView,
    ) -> (Option<Value>, Vec<String>) {
        let (calls, batch) = match super::rpc::parse_body(text.as_bytes()) {
            Err(response) => return (Some(response), Vec::new()),
            Ok(ParsedBody::Single(call)) => (vec![call], false),
            Ok(ParsedBody::Batch(calls)) => (calls, true),
        };
        // Which calls are answered here, and which (with an id) get a response from the loop.
        let mut order = Vec::with_capacity(calls.len());
        let mut plain = Vec::new();
        for call in calls {
            match call.parsed {
                Ok(Query::Subscribe(_) | Query::Unsubscribe(_)) => order.push(Some(call)),
                _ => {
                    if call.id.is_some() {
                        order.push(None);
                    }
                    plain.push(call);
                }
            }
        }
        let mut answered = super::rpc::answer_calls(plain, node, reads, self.from).await.into_iter();
        let mut responses = Vec::new();
        let mut pushed = Vec::new();
        for slot in order {
            match slot {
                // A subscription without an id could never be referred to: not made.
                Some(ParsedCall { id: Some(id), parsed: Ok(query) }) => {
                    let (response, now) = self.control(id, query, reads);
                    responses.push(response);
                    pushed.extend(now);
                }
                Some(_) => {}
                None => responses.extend(answered.next()),
            }
        }
        let reply =
            if batch { (!responses.is_empty()).then_some(Value::Array(responses)) } else { responses.pop() };
        (reply, pushed)
    }
}

/// Events a session takes from the ring at a time: all it holds while a slow client reads
/// them ([`super::reads::ReadView::events_since`]).
const EVENTS_PER_FETCH: usize = 4;

/// What woke a session.
enum Wake {
    Client(Option<Result<Message, tokio_tungstenite::tungstenite::Error>>),
    /// Something was pushed.
    Feed,
    /// The idle timer.
    Idle,
}

/// Serves one upgraded connection until the client closes it, falls behind, or goes quiet:
/// a session without subscriptions is closed `idle` after the client's last message; one
/// with subscriptions is pinged then, and closed when another `idle` passes without a word.
pub async fn session(
    upgraded: Upgraded,
    reads: Arc<ReadView>,
    node: super::rpc::NodeQueue,
    series: Arc<HttpSeries>,
    message_limit: usize,
    idle: Duration,
    from: Option<std::net::IpAddr>,
) {
    /// Counts the session open for as long as it lives, however it ends.
    struct Open(Arc<HttpSeries>);
    impl Drop for Open {
        fn drop(&mut self) {
            self.0.websocket_sessions.fetch_sub(1, Ordering::Relaxed);
        }
    }
    series.websocket_sessions.fetch_add(1, Ordering::Relaxed);
    let _open = Open(series.clone());
    let (mut feed, mut cursor) = reads.watch();
    let config =
        WebSocketConfig::default().max_message_size(Some(message_limit)).max_frame_size(Some(message_limit));
    let mut ws: WebSocketStream<WriteDeadline> = WebSocketStream::from_partially_read(
        upgraded.io,
        upgraded.read_ahead.to_vec(),
        Role::Server,
        Some(config),
    )
    .await;
    let mut session = Session { from, subscriptions: Vec::new(), made: 0 };
    let mut heard = tokio::time::Instant::now();
    let mut pinged = false;
    // Events left in the ring past the last fetch ([`EVENTS_PER_FETCH`]): fetched at once.
    let mut feed_left = false;
    loop {
        let wake = futures_lite::future::or(
            futures_lite::future::or(async { Wake::Client(ws.next().await) }, async {
                // The sender lives as long as the read view, which this connection holds.
                if !feed_left {
                    let _ = feed.changed().await;
                }
                Wake::Feed
            }),
            async {
                tokio::time::sleep_until(heard + if pinged { 2 * idle } else { idle }).await;
                Wake::Idle
            },
        )
        .await;
        let out: Vec<String> = match wake {
            Wake::Client(None | Some(Err(_))) => break,
            Wake::Idle if session.subscriptions.is_empty() || pinged => {
                series.websocket_closed_idle.fetch_add(1, Ordering::Relaxed);
                break;
            }
            Wake::Idle => {
                // Quiet with subscriptions: is the client still there? Any message, the pong
                // included, says so.
                pinged = true;
                if ws.feed(Message::Ping(Vec::new().into())).await.is_err() {
                    return;
                }
                vec![]
            }
            Wake::Client(Some(Ok(message))) => {
                heard = tokio::time::Instant::now();
                pinged = false;
                let text = match &message {
                    Message::Text(text) => text.as_str(),
                    Message::Binary(bytes) => std::str::from_utf8(bytes).unwrap_or("\u{0}"),
                    // Pings are answered by the codec; a close is answered and ends the stream.
                    _ => continue,
                };
                let (reply, pushed) = session.answer(text, &node, &reads).await;
                reply.map(|reply| reply.to_string()).into_iter().chain(pushed).collect()
            }
            Wake::Feed if reads.is_closing() => {
                let frame = CloseFrame { code: CloseCode::Away, reason: "node stopping".into() };
                let _ = ws.close(Some(frame)).await;
                return;
            }
            Wake::Feed => match reads.events_since(&mut cursor, EVENTS_PER_FETCH) {
                Ok(events) => {
                    // One event's notifications at a time: what waits to be written is
                    // tungstenite's buffer and one event, not everything the session missed.
                    let more = events.len() == EVENTS_PER_FETCH;
                    for (seq, event) in events {
                        for text in session.notifications(seq, &event) {
                            if ws.feed(Message::text(text)).await.is_err() {
                                return;
                            }
                            series.websocket_notifications.fetch_add(1, Ordering::Relaxed);
                        }
                    }
                    // The rest at the next turn of the loop, not at the next push.
                    feed_left = more;
                    vec![]
                }
                Err(missed) => {
                    series.websocket_closed_behind.fetch_add(1, Ordering::Relaxed);
                    let error = json!({
                        "code": SUBSCRIBER_BEHIND,
                        "message": format!("subscriber fell {missed} events behind; closing"),
                    });
                    for subscription in &session.subscriptions {
                        let text = json!({"jsonrpc": "2.0", "method": "tessera_subscription", "params": {"subscription": subscription.id, "error": error}});
                        if ws.feed(Message::text(text.to_string())).await.is_err() {
                            break;
                        }
                    }
                    let _ = ws.close(None).await;
                    break;
                }
            },
        };
        for text in out {
            if ws.feed(Message::text(text)).await.is_err() {
                return;
            }
        }
        if ws.flush().await.is_err() {
            return;
        }
    }
    let _ = ws.close(None).await;
}

#[cfg(test)]
mod tests {
    use std::io::{Read, Write};
    use std::net::{SocketAddr, TcpStream};
    use std::sync::Arc;
    use std::time::{Duration, Instant};

    use serde_json::{Value, json};
    use tessera_components::{Hash, RejectReason, TxnId};
    use tessera_systems::TxnOutcome;
    use tungstenite::Message;

    use super::{Event, FATE_IDS_MAX, SUBSCRIBER_BEHIND, Topic};
    use crate::node::http::Limits;
    use crate::node::reads::tests::{block, status};
    use crate::node::reads::{FEED_EVENTS, ReadView};
    use crate::node::rpc::{Query, Request, serve};

    fn id(byte: u8) -> TxnId {
        TxnId(Hash([byte; 32]))
    }

    type Client = tungstenite::WebSocket<tungstenite::stream::MaybeTlsStream<TcpStream>>;

    /// A fate subscription names each id once, in the order first named: one committed id
    /// listed 4,096 times was 4,096 notifications at once (review).
    #[test]
    fn a_fate_subscription_names_each_id_once() {
        let hex = |byte: u8| format!("0x{}", id(byte).0.to_hex());
        let topic = Topic::parse(&json!(["transactionFates", [hex(2), hex(1), hex(2), hex(2), hex(1)]]));
        assert_eq!(topic, Ok(Topic::TransactionFates(vec![id(2), id(1)])));
    }

    fn connect(addr: SocketAddr) -> Client {
        let (client, response) = tungstenite::connect(format!("ws://{addr}/")).expect("WebSocket handshake");
        assert_eq!(response.status(), 101);
        if let tungstenite::stream::MaybeTlsStream::Plain(stream) = client.get_ref() {
            stream.set_read_timeout(Some(Duration::from_secs(5))).unwrap();
        }
        client
    }

    fn call(client: &mut Client, request: Value) {
        client.send(Message::text(request.to_string())).expect("send");
    }

    /// The next text message, as JSON.
    fn next(client: &mut Client) -> Value {
        loop {
            match client.read().expect("a message") {
                Message::Text(text) => return serde_json::from_str(text.as_str()).expect("JSON"),
                Message::Ping(_) | Message::Pong(_) => continue,
                other => panic!("unexpected {other:?}"),
            }
        }
    }

    fn raw(addr: SocketAddr, request: &str) -> String {
        let mut stream = TcpStream::connect(addr).unwrap();
        stream.set_read_timeout(Some(Duration::from_secs(5))).unwrap();
        stream.write_all(request.as_bytes()).unwrap();
        let mut answer = vec![0; 4096];
        let read = stream.read(&mut answer).unwrap_or(0);
        String::from_utf8_lossy(&answer[..read]).into_owned()
    }

    /// A node that stops tells its subscribers it is going away, with a Close frame, instead
    /// of dropping their connections.
    #[test]
    fn a_stopping_node_sends_its_subscribers_a_close_frame() {
        let reads = Arc::new(ReadView::new(Arc::default()));
        reads.publish([], status(0));
        let (node, _queries) = flume::bounded::<Request>(16);
        let limits = Limits {
            connections_max: 16,
            connections_per_address_max: 16,
            header_timeout: Duration::from_secs(1),
            body_timeout: Duration::from_secs(2),
            write_timeout: Duration::from_secs(2),
        };
        let series = Arc::new(crate::node::metrics::HttpSeries::default());
        let server =
            serve(SocketAddr::from(([127, 0, 0, 1], 0)), 1 << 20, limits, series, node, reads.clone())
                .expect("serve");
        let mut client = connect(server.local_addr());
        call(
            &mut client,
            json!({"jsonrpc": "2.0", "id": 1, "method": "tessera_subscribe", "params": ["finalizedBlocks"]}),
        );
        assert!(next(&mut client)["result"].is_string(), "subscribed");
        assert_eq!(reads.close(Duration::from_secs(5)), 0, "every session ended within the grace");
        let frame = loop {
            match client.read() {
                Ok(Message::Close(frame)) => break frame,
                Ok(Message::Ping(_) | Message::Pong(_)) => continue,
                other => panic!("expected a Close frame, got {other:?}"),
            }
        };
        let frame = frame.expect("a close frame with a code");
        assert_eq!(frame.code, tungstenite::protocol::frame::coding::CloseCode::Away);
        assert_eq!(frame.reason.as_str(), "node stopping");
    }

    #[test]
    fn subscribers_get_blocks_and_fates_pushed_and_one_that_falls_behind_is_dropped() {
        let reads = Arc::new(ReadView::new(Arc::default()));
        reads.publish([], status(0));
        // Known before anyone subscribes: sent at once on subscription.
        reads.fates_mut().record_block(0, &[TxnOutcome { id: id(1), result: Ok(()) }]);
        let (node, queries) = flume::bounded::<Request>(16);
        let limits = Limits {
            connections_max: 16,
            connections_per_address_max: 16,
            header_timeout: Duration::from_secs(1),
            body_timeout: Duration::from_secs(2),
            write_timeout: Duration::from_secs(2),
        };
        let series = Arc::new(crate::node::metrics::HttpSeries::default());
        let server = serve(
            SocketAddr::from(([127, 0, 0, 1], 0)),
            1 << 20,
            limits,
            series.clone(),
            node,
            reads.clone(),
        )
        .expect("serve");
        let addr = server.local_addr();

        let mut client = connect(addr);
        call(
            &mut client,
            json!({"jsonrpc": "2.0", "id": 1, "method": "tessera_subscribe", "params": ["finalizedBlocks"]}),
        );
        let blocks = next(&mut client)["result"].as_str().expect("a subscription id").to_owned();
        let watched = [id(1).0.to_hex(), id(2).0.to_hex(), id(3).0.to_hex()];
        call(
            &mut client,
            json!({"jsonrpc": "2.0", "id": 2, "method": "tessera_subscribe", "params": ["transactionFates", watched]}),
        );
        let fates = next(&mut client)["result"].as_str().expect("a subscription id").to_owned();
        assert_ne!(blocks, fates);
        let known = next(&mut client);
        assert_eq!(known["method"], "tessera_subscription");
        assert_eq!(known["params"]["subscription"], fates.as_str());
        assert_eq!(
            known["params"]["result"],
            json!({"id": id(1).0.to_hex(), "status": "committed", "height": 0})
        );

        // A tick: one refusal, one block whose outcomes include a failure.
        reads.publish([block(1)], status(1));
        reads.push(Event::rejected(vec![(id(3), RejectReason::FeeTooLow.name())]));
        reads.push(Event::finalized(
            block(1),
            vec![
                TxnOutcome { id: id(9), result: Ok(()) },
                TxnOutcome { id: id(2), result: Err(RejectReason::InsufficientFunds) },
            ],
        ));
        let rejected = next(&mut client);
        assert_eq!(rejected["params"]["subscription"], fates.as_str());
        assert_eq!(rejected["params"]["result"]["status"], "rejected");
        assert_eq!(rejected["params"]["result"]["id"], id(3).0.to_hex());
        let pushed = next(&mut client);
        assert_eq!(pushed["params"]["subscription"], blocks.as_str());
        assert_eq!(pushed["params"]["result"]["height"], 1);
        assert_eq!(pushed["params"]["result"]["hash"], block(1).block.header.hash().to_hex());
        let failed = next(&mut client);
        assert_eq!(
            failed["params"]["result"],
            json!({"id": id(2).0.to_hex(), "status": "failed", "height": 1, "reason": "insufficient_funds"})
        );

        // One finalized-blocks subscription per connection.
        call(
            &mut client,
            json!({"jsonrpc": "2.0", "id": 7, "method": "tessera_subscribe", "params": ["finalizedBlocks"]}),
        );
        assert_eq!(next(&mut client)["error"]["code"], -32000);
        // Plain calls work over the socket; unsubscribing is answered once.
        call(&mut client, json!({"jsonrpc": "2.0", "id": 3, "method": "tessera_getStatus"}));
        assert_eq!(next(&mut client)["result"]["height"], 1);
        call(
            &mut client,
            json!({"jsonrpc": "2.0", "id": 4, "method": "tessera_unsubscribe", "params": [blocks]}),
        );
        assert_eq!(next(&mut client)["result"], true);
        call(
            &mut client,
            json!({"jsonrpc": "2.0", "id": 5, "method": "tessera_unsubscribe", "params": [blocks]}),
        );
        assert_eq!(next(&mut client)["result"], false);
        // Bad topics and too many ids are refused as parameters.
        let many: Vec<String> = (0..=FATE_IDS_MAX).map(|_| id(4).0.to_hex()).collect();
        for params in [json!(["nope"]), json!(["transactionFates", []]), json!(["transactionFates", many])] {
            call(
                &mut client,
                json!({"jsonrpc": "2.0", "id": 6, "method": "tessera_subscribe", "params": params}),
            );
            assert_eq!(next(&mut client)["error"]["code"], -32602);
        }

        // Over plain HTTP a subscription is refused; an upgrade with an Origin is forbidden.
        let body = r#"{"jsonrpc":"2.0","id":1,"method":"tessera_subscribe","params":["finalizedBlocks"]}"#;
        let answer = raw(
            addr,
            &format!(
                "POST / HTTP/1.1\r\nHost: x\r\nContent-Type: application/json\r\nContent-Length: {}\r\nConnection: close\r\n\r\n{body}",
                body.len()
            ),
        );
        assert!(answer.contains("-32600") && answer.contains("WebSocket"), "{answer}");
        let upgrade = "GET / HTTP/1.1\r\nHost: x\r\nConnection: Upgrade\r\nUpgrade: websocket\r\nSec-WebSocket-Version: 13\r\nSec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==\r\n";
        let answer = raw(addr, &format!("{upgrade}Origin: http://evil.example\r\n\r\n"));
        assert!(answer.starts_with("HTTP/1.1 403"), "{answer}");
        let answer = raw(addr, &format!("{upgrade}\r\n"));
        assert!(
            answer.starts_with("HTTP/1.1 101") && answer.contains("s3pPLMBiTxaQ9kYGzzhZRbK+xOo="),
            "{answer}"
        );

        // A subscriber held up (here by a read only the node loop answers) while more than
        // the feed's ring is pushed is told so and closed.
        let mut slow = connect(addr);
        call(
            &mut slow,
            json!({"jsonrpc": "2.0", "id": 1, "method": "tessera_subscribe", "params": ["finalizedBlocks"]}),
        );
        let slow_id = next(&mut slow)["result"].as_str().unwrap().to_owned();
        call(
            &mut slow,
            json!({"jsonrpc": "2.0", "id": 2, "method": "tessera_getAccount", "params": [id(5).0.to_hex()]}),
        );
        let held = queries.recv_timeout(Duration::from_secs(5)).expect("the account query reaches the loop");
        assert!(matches!(held.query, Query::Account(..)));
        for height in 2..2 + FEED_EVENTS as u64 + 8 {
            reads.push(Event::finalized(block(height), Vec::new()));
        }
        held.reply.send(Ok(json!({"exists": false}))).unwrap();
        assert_eq!(next(&mut slow)["id"], 2);
        let dropped = next(&mut slow);
        assert_eq!(dropped["params"]["subscription"], slow_id.as_str());
        assert_eq!(dropped["params"]["error"]["code"], SUBSCRIBER_BEHIND);
        assert!(matches!(slow.read(), Ok(Message::Close(_)) | Err(_)), "closed after falling behind");
        // `slow` at least: on a loaded machine `client`'s session can fall behind this burst too.
        assert!(series.websocket_closed_behind.load(std::sync::atomic::Ordering::Relaxed) >= 1);

        // A subscriber made now is told nothing from before it.
        let mut late = connect(addr);
        call(
            &mut late,
            json!({"jsonrpc": "2.0", "id": 1, "method": "tessera_subscribe", "params": ["finalizedBlocks"]}),
        );
        assert!(next(&mut late)["result"].is_string());
        reads.push(Event::finalized(block(9_999), Vec::new()));
        assert_eq!(next(&mut late)["params"]["result"]["height"], 9_999);
        // Quiet with a subscription: pinged at the idle time (the client's pong keeps it).
        let start = Instant::now();
        let ping = late.read().expect("a ping");
        assert!(matches!(ping, Message::Ping(_)), "{ping:?}");
        assert!(start.elapsed() < Duration::from_secs(3), "pinged after {:?}", start.elapsed());

        // A connection with no subscription that says nothing is closed at the idle time.
        let mut idle = connect(addr);
        let start = Instant::now();
        assert!(matches!(idle.read(), Ok(Message::Close(_)) | Err(_)));
        assert!(start.elapsed() < Duration::from_secs(4), "closed after {:?}", start.elapsed());
        let load =
            |counter: &std::sync::atomic::AtomicU64| counter.load(std::sync::atomic::Ordering::Relaxed);
        assert!(load(&series.websocket_notifications) >= 4);
        // `client` and `late` have subscriptions but read nothing, so they never answer the
        // ping: each is closed a second idle time later, as `idle` was.
        let deadline = Instant::now() + Duration::from_secs(6);
        while load(&series.websocket_sessions) > 0 {
            assert!(Instant::now() < deadline, "{} sessions still open", load(&series.websocket_sessions));
            std::thread::sleep(Duration::from_millis(50));
        }
        // `idle`, `client`, `late` and `slow`, each closed once, for going quiet or falling behind.
        assert_eq!(load(&series.websocket_closed_idle) + load(&series.websocket_closed_behind), 4);
        assert!(load(&series.websocket_closed_idle) >= 2);
        // `client` was closed, by the one reason or the other.
        let closed = (0..1100).any(|_| matches!(client.read(), Ok(Message::Close(_)) | Err(_)));
        assert!(closed, "client's connection still open");
    }
}
