//! WebSocket subscribers that cost the node what they can: each connection takes every
//! subscription it may hold (finalized blocks, and fates subscriptions of the most ids each),
//! then never reads, so the node's writes to it back up; every fourth also sends a message
//! over the node's size limit. The node must close them (a subscriber that falls behind is
//! dropped, a write that stalls past the deadline closes its connection, an oversized message
//! closes it at once) and keep answering everyone else.

use std::net::{SocketAddr, TcpStream};
use std::time::{Duration, Instant};

use serde_json::json;
use tungstenite::Message;

use super::{Limits, Pacer, Rng, Tally, Target};

/// Subscriptions one connection asks for (the node holds at most 16; the rest are refused).
const SUBSCRIPTIONS: usize = 17;

/// Transaction ids per fates subscription (the node's maximum).
const FATE_IDS: usize = 1024;

/// Bytes of the oversized message (the node's default body limit is 1 MiB).
const OVERSIZED: usize = 2 << 20;

type Socket = tungstenite::WebSocket<tungstenite::stream::MaybeTlsStream<TcpStream>>;

struct Held {
    socket: Socket,
    opened: Instant,
}

fn open(addr: SocketAddr, oversized: bool, rng: &mut Rng, tally: &mut Tally) -> Result<Socket, ()> {
    let stream = super::connect_from_source(&addr, Duration::from_secs(2)).map_err(|_| ())?;
    stream.set_write_timeout(Some(Duration::from_secs(2))).map_err(|_| ())?;
    stream.set_read_timeout(Some(Duration::from_secs(2))).map_err(|_| ())?;
    let (mut socket, _) =
        tungstenite::client(format!("ws://{addr}/"), tungstenite::stream::MaybeTlsStream::Plain(stream))
            .map_err(|_| ())?;
    tally.connections += 1;
    for n in 0..SUBSCRIPTIONS {
        let params = if n == 0 {
            json!(["finalizedBlocks"])
        } else {
            let ids: Vec<String> = (0..FATE_IDS)
                .map(|_| {
                    let mut id = [0u8; 32];
                    rng.fill(&mut id);
                    hex::encode(id)
                })
                .collect();
            json!(["transactionFates", ids])
        };
        let text =
            json!({"jsonrpc": "2.0", "id": n, "method": "tessera_subscribe", "params": params}).to_string();
        tally.requests += 1;
        tally.bytes += text.len() as u64;
        if socket.send(Message::text(text)).is_err() {
            break;
        }
    }
    if oversized {
        tally.requests += 1;
        tally.bytes += OVERSIZED as u64;
        let _ = socket.send(Message::text("x".repeat(OVERSIZED)));
    }
    Ok(socket)
}

/// Whether the node has closed the connection: a write to it fails. (What the node sent is
/// never read, so an end of stream would sit behind it.)
fn closed(held: &mut Held) -> bool {
    held.socket.send(Message::Ping(Vec::new().into())).is_err()
}

/// Runs the kind until `deadline`.
pub fn run(target: &Target, limits: &Limits, deadline: Instant) -> Tally {
    let mut tally = Tally::default();
    let Some(addr) = target.rpc else { return tally };
    let mut rng = Rng::new(limits.seed ^ 0x0077_7373);
    let mut pacer = Pacer::new(limits.connect_rate);
    let mut held: Vec<Held> = Vec::new();
    let mut opened = 0u64;
    let mut last_check = Instant::now();
    while Instant::now() < deadline {
        if held.len() < limits.max_connections {
            pacer.wait(1);
            opened += 1;
            match open(addr, opened.is_multiple_of(4), &mut rng, &mut tally) {
                Ok(socket) => held.push(Held { socket, opened: Instant::now() }),
                Err(()) => tally.connect_failures += 1,
            }
        } else {
            std::thread::sleep(Duration::from_millis(50));
        }
        if last_check.elapsed() >= Duration::from_secs(1) {
            last_check = Instant::now();
            held.retain_mut(|h| {
                if closed(h) {
                    tally.closed_by_node += 1;
                    tally.longest_hold_s = tally.longest_hold_s.max(h.opened.elapsed().as_secs_f64());
                    false
                } else {
                    true
                }
            });
        }
    }
    for mut h in held {
        if closed(&mut h) {
            tally.closed_by_node += 1;
        } else {
            tally.left_open += 1;
        }
    }
    tally
}
