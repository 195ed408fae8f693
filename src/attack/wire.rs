//! Abuse of the framed TCP ports (peer and ingress): malformed, truncated and oversized frames,
//! handshake violations, a handshake reflection, connection floods, slow-loris, a slow reader,
//! garbage after a valid handshake, and bad-signature transaction spam.
//!
//! The peer port speaks Noise ([`crate::node::net::secure`]); the attacker runs the node's own
//! handshake code over a blocking socket, so what it sends after a handshake is sealed into
//! records the node decrypts before it judges the frames.

use std::collections::VecDeque;
use std::io::{Read, Write};
use std::net::{SocketAddr, TcpStream};
use std::time::{Duration, Instant};

use ed25519_dalek::SigningKey;
use futures_lite::future::block_on;
use tessera_components::constants::{FRAME_SIZE_DEFAULT, WIRE_HEADER_SIZE, WIRE_MAGIC, WIRE_VERSION};
use tessera_components::wire::{
    Codec, Frame, FrameKind, Hello, HelloProof, PROTOCOL_VERSION, ROLE_DIALER, encode,
};
use tessera_components::{ConsensusMessage, Hash, Txn, TxnBody, Vote, VoteKind};
use tessera_systems::workload::{sign, signing_key};

use super::{Kind, Limits, Pacer, Port, Rng, Tally, Target};
use crate::node::net::FOLLOWER;
use crate::node::net::secure::{self, Local, Secure};

/// An established encrypted channel to the node's peer port, over a clone of the socket.
pub type Channel = Secure<Blocking>;

/// A blocking socket seen as an async stream: every poll does the blocking call and is ready,
/// so the node's handshake and channel code runs on the attacker's threads under `block_on`.
#[derive(Debug)]
pub struct Blocking(pub TcpStream);

impl futures_lite::AsyncRead for Blocking {
    fn poll_read(
        self: std::pin::Pin<&mut Self>,
        _: &mut std::task::Context<'_>,
        buf: &mut [u8],
    ) -> std::task::Poll<std::io::Result<usize>> {
        std::task::Poll::Ready(self.get_mut().0.read(buf))
    }
}

impl futures_lite::AsyncWrite for Blocking {
    fn poll_write(
        self: std::pin::Pin<&mut Self>,
        _: &mut std::task::Context<'_>,
        buf: &[u8],
    ) -> std::task::Poll<std::io::Result<usize>> {
        std::task::Poll::Ready(self.get_mut().0.write(buf))
    }

    fn poll_flush(
        self: std::pin::Pin<&mut Self>,
        _: &mut std::task::Context<'_>,
    ) -> std::task::Poll<std::io::Result<()>> {
        std::task::Poll::Ready(self.get_mut().0.flush())
    }

    fn poll_close(
        self: std::pin::Pin<&mut Self>,
        _: &mut std::task::Context<'_>,
    ) -> std::task::Poll<std::io::Result<()>> {
        std::task::Poll::Ready(self.get_mut().0.shutdown(std::net::Shutdown::Write))
    }
}

/// Connects with short timeouts; counts the attempt.
pub fn connect(addr: SocketAddr, tally: &mut Tally) -> Option<TcpStream> {
    match super::connect_from_source(&addr, Duration::from_secs(2)) {
        Ok(stream) => {
            let _ = stream.set_nodelay(true);
            let _ = stream.set_read_timeout(Some(Duration::from_secs(5)));
            let _ = stream.set_write_timeout(Some(Duration::from_secs(2)));
            tally.connections += 1;
            Some(stream)
        }
        Err(_) => {
            tally.connect_failures += 1;
            None
        }
    }
}

/// Writes `bytes`, counting them; false when the node has closed the connection.
pub fn send(stream: &mut TcpStream, bytes: &[u8], tally: &mut Tally) -> bool {
    match stream.write_all(bytes) {
        Ok(()) => {
            tally.bytes += bytes.len() as u64;
            true
        }
        Err(_) => false,
    }
}

/// Reads one frame (the node's handshake), bounded by the default maximum frame size.
pub fn read_frame(stream: &mut TcpStream) -> std::io::Result<Option<Frame>> {
    let codec = Codec::default();
    let mut header = [0u8; WIRE_HEADER_SIZE];
    stream.read_exact(&mut header)?;
    let Ok(parsed) = codec.decode_header(&header) else { return Ok(None) };
    let mut bytes = vec![0u8; parsed.frame_size()];
    bytes[..WIRE_HEADER_SIZE].copy_from_slice(&header);
    stream.read_exact(&mut bytes[WIRE_HEADER_SIZE..])?;
    Ok(codec.decode(&bytes).ok())
}

/// Counts whether the node has closed `stream` (or it is still open).
fn observe_close(stream: &mut TcpStream, tally: &mut Tally) {
    if closed_now(stream) {
        tally.closed_by_node += 1;
    } else {
        tally.left_open += 1;
    }
}

/// True when the node has closed `stream` (end of stream or reset), without waiting; data the
/// node sent is read and dropped.
pub fn closed_now(stream: &mut TcpStream) -> bool {
    if stream.set_nonblocking(true).is_err() {
        return true;
    }
    let mut scratch = [0u8; 4096];
    let closed = loop {
        match stream.read(&mut scratch) {
            Ok(0) => break true,
            Ok(_) => continue,
            Err(error) if error.kind() == std::io::ErrorKind::WouldBlock => break false,
            Err(_) => break true,
        }
    };
    let _ = stream.set_nonblocking(false);
    closed
}

/// Waits up to `wait` for the node to close `stream`; counts the outcome.
pub fn outcome(stream: &mut TcpStream, wait: Duration, opened: Instant, tally: &mut Tally) {
    let _ = stream.set_read_timeout(Some(wait));
    let mut scratch = [0u8; 4096];
    let deadline = Instant::now() + wait;
    loop {
        match stream.read(&mut scratch) {
            Ok(0) => break,
            Ok(_) if Instant::now() < deadline => continue,
            Err(error)
                if matches!(error.kind(), std::io::ErrorKind::WouldBlock | std::io::ErrorKind::TimedOut) =>
            {
                tally.left_open += 1;
                return;
            }
            Ok(_) => {
                tally.left_open += 1;
                return;
            }
            Err(_) => break,
        }
    }
    tally.closed_by_node += 1;
    tally.longest_hold_s = tally.longest_hold_s.max(opened.elapsed().as_secs_f64());
}

/// This attacker's static Noise key (one per process).
fn noise_key() -> &'static [u8] {
    static KEY: std::sync::OnceLock<Vec<u8>> = std::sync::OnceLock::new();
    KEY.get_or_init(|| secure::static_keypair().private)
}

/// The first Noise handshake message, alone (what a slow-loris trickles).
fn first_hello(chain_id: u32, rng: &mut Rng) -> Vec<u8> {
    let mut noise = vec![0u8; 32];
    rng.fill(&mut noise);
    encode(&Frame::Hello(Hello { chain_id, protocol_version: PROTOCOL_VERSION, noise }))
}

/// The Noise handshake as a dialer on a clone of `stream`; `None` when the node refused it.
pub fn noise_dial(stream: &TcpStream, chain_id: u32, tally: &mut Tally) -> Option<Channel> {
    let clone = stream.try_clone().ok()?;
    let channel = block_on(secure::noise_dial(Blocking(clone), chain_id, noise_key())).ok()?.ok()?;
    tally.frames += 2;
    Some(channel)
}

/// Writes `bytes` into the channel (sealed, flushed), counting them; false when the node has
/// closed the connection.
pub fn send_sealed(channel: &mut Channel, bytes: &[u8], tally: &mut Tally) -> bool {
    match block_on(secure::write_bytes(channel, bytes)) {
        Ok(()) => {
            tally.bytes += bytes.len() as u64;
            true
        }
        Err(_) => false,
    }
}

/// Reads one frame from the channel, bounded by the default maximum frame size.
pub fn read_sealed(channel: &mut Channel) -> std::io::Result<Option<Frame>> {
    Ok(block_on(secure::read_frame(channel, &Codec::default()))?.ok().map(|(frame, _)| frame))
}

/// Greets the node (validator `node`) as a full node; the channel when the node completed the
/// handshake and proved itself.
pub fn follower_handshake(
    stream: &mut TcpStream,
    chain_id: u32,
    node: u32,
    tally: &mut Tally,
) -> Option<Channel> {
    let unused = SigningKey::from_bytes(&[0; 32]);
    let local = Local { chain_id, me: FOLLOWER, key: &unused, noise_key: noise_key(), validators: &[] };
    proven_handshake(stream, &local, node, tally)
}

/// Greets the node (validator `node`) as validator `index` and proves it with `key`; the
/// channel when the node accepted.
pub fn validator_handshake(
    stream: &mut TcpStream,
    chain_id: u32,
    (index, key): (u32, &SigningKey),
    node: u32,
    tally: &mut Tally,
) -> Option<Channel> {
    let local = Local { chain_id, me: index, key, noise_key: noise_key(), validators: &[] };
    proven_handshake(stream, &local, node, tally)
}

/// Noise, our proof, then the node's: accepted when the node answers with a proof of its
/// own (not checked: the attacker knows no keys but its own).
fn proven_handshake(
    stream: &mut TcpStream,
    local: &Local<'_>,
    node: u32,
    tally: &mut Tally,
) -> Option<Channel> {
    let mut channel = noise_dial(stream, local.chain_id, tally)?;
    let proof = secure::proof(&channel, local, ROLE_DIALER, node);
    block_on(secure::send_proof(&mut channel, proof)).ok()?;
    tally.frames += 1;
    let accepted = matches!(read_sealed(&mut channel), Ok(Some(Frame::HelloProof(_))));
    if accepted {
        tally.handshakes += 1;
    }
    accepted.then_some(channel)
}

/// A 12-byte header with the given fields.
pub fn header(magic: [u8; 4], version: u8, kind: u8, reserved: u16, length: u32) -> [u8; WIRE_HEADER_SIZE] {
    let mut out = [0u8; WIRE_HEADER_SIZE];
    out[..4].copy_from_slice(&magic);
    out[4] = version;
    out[5] = kind;
    out[6..8].copy_from_slice(&reserved.to_le_bytes());
    out[8..].copy_from_slice(&length.to_le_bytes());
    out
}

fn framed(kind: FrameKind, payload: &[u8]) -> Vec<u8> {
    let mut out = header(WIRE_MAGIC, WIRE_VERSION, kind as u8, 0, payload.len() as u32).to_vec();
    out.extend_from_slice(payload);
    out
}

/// Frame number `case` of the malformed set: every way a frame can fail to decode, and a
/// well-formed frame of a kind neither port accepts from a client or full node.
pub fn malformed_frame(case: u64, rng: &mut Rng) -> Vec<u8> {
    let valid = encode(&Frame::Txns(Vec::new()));
    let mut out = match case % 10 {
        0 => [b"XXXX".as_slice(), &valid[4..]].concat(),
        1 => {
            let mut bytes = valid.clone();
            bytes[4] = WIRE_VERSION.wrapping_add(7);
            bytes
        }
        2 => {
            let mut bytes = valid.clone();
            bytes[5] = 0xee;
            bytes
        }
        3 => {
            let mut bytes = valid.clone();
            bytes[6] = 1;
            bytes
        }
        4 => {
            let mut payload = vec![0u8; 64];
            rng.fill(&mut payload);
            payload[0] = 0xff;
            framed(FrameKind::Consensus, &payload)
        }
        // A greeting cut short inside its payload.
        5 => framed(FrameKind::Hello, &[1, 2, 3]),
        // An overlong varint for an empty batch: decodes, but is not canonical.
        6 => framed(FrameKind::Txns, &[0x80, 0x00]),
        // An empty batch followed by a stray byte.
        7 => framed(FrameKind::Txns, &[0x00, 0x00]),
        8 => encode(&Frame::Vote(Vote {
            kind: VoteKind::Prepare,
            view: 1,
            height: 1,
            block: Hash::of(b"attack"),
            voter: 0,
            signature: [0; 64],
        })),
        _ => encode(&Frame::Consensus(ConsensusMessage::SyncResponse(Vec::new()))),
    };
    out.shrink_to_fit();
    out
}

/// The ports of `kind` that `target` gives, in turn.
fn ports(kind: Kind, target: &Target) -> Vec<(Port, SocketAddr)> {
    kind.ports().iter().filter_map(|port| Some((*port, target.address(*port)?))).collect()
}

/// Writes `bytes` into `channel` if there is one, else onto `stream`.
fn send_on(stream: &mut TcpStream, channel: Option<&mut Channel>, bytes: &[u8], tally: &mut Tally) -> bool {
    match channel {
        Some(channel) => send_sealed(channel, bytes, tally),
        None => send(stream, bytes, tally),
    }
}

fn malformed_frames(target: &Target, limits: &Limits, deadline: Instant, tally: &mut Tally) {
    let ports = ports(Kind::MalformedFrames, target);
    let mut rng = Rng::new(limits.seed);
    let mut pacer = Pacer::new(limits.connect_rate);
    let mut case = 0;
    for round in 0u64.. {
        if Instant::now() >= deadline || ports.is_empty() {
            break;
        }
        pacer.wait(1);
        let (port, addr) = ports[round as usize % ports.len()];
        let Some(mut stream) = connect(addr, tally) else { continue };
        let opened = Instant::now();
        let mut channel = None;
        if port == Port::Peer {
            channel = follower_handshake(&mut stream, target.chain_id, target.node_index, tally);
            if channel.is_none() {
                outcome(&mut stream, Duration::from_millis(100), opened, tally);
                continue;
            }
        }
        // Past the peer port's penalty threshold; the ingress port closes at the first.
        for _ in 0..32 {
            let frame = malformed_frame(case, &mut rng);
            case += 1;
            if !send_on(&mut stream, channel.as_mut(), &frame, tally) {
                break;
            }
            tally.frames += 1;
        }
        outcome(&mut stream, Duration::from_secs(1), opened, tally);
    }
}

fn truncated_frames(target: &Target, limits: &Limits, deadline: Instant, tally: &mut Tally) {
    let ports = ports(Kind::TruncatedFrames, target);
    let mut pacer = Pacer::new(limits.connect_rate);
    let full = encode(&Frame::Txns(vec![spoil(&throwaway_txn(target.chain_id, 0), 1); 8]));
    for round in 0u64.. {
        if Instant::now() >= deadline || ports.is_empty() {
            break;
        }
        pacer.wait(1);
        let (port, addr) = ports[round as usize % ports.len()];
        let Some(mut stream) = connect(addr, tally) else { continue };
        let mut channel = None;
        if port == Port::Peer && round % 4 < 2 {
            channel = follower_handshake(&mut stream, target.chain_id, target.node_index, tally);
            if channel.is_none() {
                continue;
            }
        }
        let cut = match round % 3 {
            0 => WIRE_HEADER_SIZE / 2,
            1 => full.len() / 2,
            _ => full.len() - 1,
        };
        if send_on(&mut stream, channel.as_mut(), &full[..cut], tally) {
            tally.frames += 1;
        }
        if round % 16 == 0 {
            // Now and then, hold the half frame a while before leaving.
            std::thread::sleep(Duration::from_millis(200));
            observe_close(&mut stream, tally);
        }
    }
}

fn oversized_frames(target: &Target, limits: &Limits, deadline: Instant, tally: &mut Tally) {
    let ports = ports(Kind::OversizedFrames, target);
    let mut pacer = Pacer::new(limits.connect_rate);
    let filler = vec![0u8; 64 << 10];
    for round in 0u64.. {
        if Instant::now() >= deadline || ports.is_empty() {
            break;
        }
        pacer.wait(1);
        let (port, addr) = ports[round as usize % ports.len()];
        let Some(mut stream) = connect(addr, tally) else { continue };
        let opened = Instant::now();
        let mut channel = None;
        if port == Port::Peer && round % 2 == 0 {
            channel = follower_handshake(&mut stream, target.chain_id, target.node_index, tally);
            if channel.is_none() {
                continue;
            }
        }
        let length = match round % 4 {
            0 => (FRAME_SIZE_DEFAULT - WIRE_HEADER_SIZE + 1) as u32,
            1 => 16 << 20,
            2 => u32::MAX - WIRE_HEADER_SIZE as u32,
            _ => u32::MAX,
        };
        let kind = if round % 2 == 0 { FrameKind::Txns } else { FrameKind::Consensus };
        let announced = header(WIRE_MAGIC, WIRE_VERSION, kind as u8, 0, length);
        if send_on(&mut stream, channel.as_mut(), &announced, tally) {
            tally.frames += 1;
            let _ = send_on(&mut stream, channel.as_mut(), &filler, tally);
        }
        outcome(&mut stream, Duration::from_secs(1), opened, tally);
    }
}

fn handshake_violations(target: &Target, limits: &Limits, deadline: Instant, tally: &mut Tally) {
    let Some(addr) = target.peer else { return };
    let mut rng = Rng::new(limits.seed ^ 3);
    let mut pacer = Pacer::new(limits.connect_rate);
    let chain = target.chain_id;
    for round in 0u64.. {
        if Instant::now() >= deadline {
            break;
        }
        pacer.wait(1);
        let Some(mut stream) = connect(addr, tally) else { continue };
        let opened = Instant::now();
        let hello = |chain_id, protocol_version, rng: &mut Rng| {
            let mut noise = vec![0u8; 32];
            rng.fill(&mut noise);
            encode(&Frame::Hello(Hello { chain_id, protocol_version, noise }))
        };
        let mut signature = [0u8; 64];
        rng.fill(&mut signature);
        match round % 7 {
            // After a completed Noise handshake: an unknown index, or a validator's index with a
            // forged proof.
            case @ (2 | 3) => {
                if let Some(mut channel) = noise_dial(&stream, chain, tally) {
                    let validator = if case == 2 { 1_000_000 } else { (round / 7 % 4) as u32 };
                    let proof =
                        HelloProof { role: ROLE_DIALER, validator, peer: target.node_index, signature };
                    if send_sealed(&mut channel, &encode(&Frame::HelloProof(proof)), tally) {
                        tally.frames += 1;
                    }
                }
            }
            case => {
                let first = match case {
                    0 => hello(chain.wrapping_add(1), PROTOCOL_VERSION, &mut rng),
                    1 => hello(chain, PROTOCOL_VERSION.wrapping_add(1), &mut rng),
                    // A proof before any greeting, in the clear.
                    5 => encode(&Frame::HelloProof(HelloProof {
                        role: ROLE_DIALER,
                        validator: 0,
                        peer: target.node_index,
                        signature,
                    })),
                    6 => encode(&Frame::Txns(Vec::new())),
                    // The first greeting twice (the node expects the third message).
                    _ => hello(chain, PROTOCOL_VERSION, &mut rng),
                };
                if !send(&mut stream, &first, tally) {
                    continue;
                }
                tally.frames += 1;
                if case == 4 && send(&mut stream, &first, tally) {
                    tally.frames += 1;
                }
            }
        }
        outcome(&mut stream, Duration::from_secs(1), opened, tally);
    }
}

/// The reflection attack on the handshake: connect to the node claiming to be validator R,
/// connect to R as a full node, and present R's proof from the second connection as our own on
/// the first (as R sent it, and re-labelled as a dialer's naming the node). Counted as a
/// handshake completed when the node accepts (it must not), as closed when it refuses.
fn handshake_reflection(target: &Target, limits: &Limits, deadline: Instant, tally: &mut Tally) {
    let (Some(addr), Some((via, via_index))) = (target.peer, target.reflect) else { return };
    let mut pacer = Pacer::new(limits.connect_rate.min(20));
    for round in 0u64.. {
        if Instant::now() >= deadline {
            break;
        }
        pacer.wait(1);
        let Some(mut victim) = connect(addr, tally) else { continue };
        let opened = Instant::now();
        let Some(mut towards) = noise_dial(&victim, target.chain_id, tally) else {
            outcome(&mut victim, Duration::from_millis(200), opened, tally);
            continue;
        };
        let Some(mut reflector) = connect(via, tally) else { continue };
        let mut channel = noise_dial(&reflector, target.chain_id, tally);
        let Some(from_reflector) = channel.as_mut().and_then(|channel: &mut Channel| {
            let unused = SigningKey::from_bytes(&[0; 32]);
            let local = Local {
                chain_id: target.chain_id,
                me: FOLLOWER,
                key: &unused,
                noise_key: noise_key(),
                validators: &[],
            };
            let ask = secure::proof(channel, &local, ROLE_DIALER, via_index);
            block_on(secure::send_proof(channel, ask)).ok()?;
            match read_sealed(channel) {
                Ok(Some(Frame::HelloProof(proof))) => Some(proof),
                _ => None,
            }
        }) else {
            observe_close(&mut reflector, tally);
            continue;
        };
        let mut forwarded = from_reflector;
        if round % 2 == 1 {
            forwarded.role = ROLE_DIALER;
            forwarded.peer = target.node_index;
        }
        if send_sealed(&mut towards, &encode(&Frame::HelloProof(forwarded)), tally) {
            tally.frames += 1;
        }
        let _ = victim.set_read_timeout(Some(Duration::from_secs(2)));
        match read_sealed(&mut towards) {
            Ok(Some(Frame::HelloProof(_))) => {
                tally.handshakes += 1;
                tally.left_open += 1;
            }
            _ => {
                tally.closed_by_node += 1;
                tally.longest_hold_s = tally.longest_hold_s.max(opened.elapsed().as_secs_f64());
            }
        }
    }
}

/// One open connection of a flood or a slow-loris, with what it trickles.
struct Held {
    stream: TcpStream,
    opened: Instant,
    script: std::sync::Arc<Vec<u8>>,
    position: usize,
}

fn connection_flood(target: &Target, limits: &Limits, deadline: Instant, tally: &mut Tally) {
    let ports = ports(Kind::ConnectionFlood, target);
    let mut held: VecDeque<(TcpStream, Instant)> = VecDeque::new();
    let mut pacer = Pacer::new(limits.connect_rate);
    for round in 0u64.. {
        if Instant::now() >= deadline || ports.is_empty() {
            break;
        }
        pacer.wait(1);
        let (_, addr) = ports[round as usize % ports.len()];
        if let Some(stream) = connect(addr, tally) {
            held.push_back((stream, Instant::now()));
        }
        while held.len() > limits.max_connections.max(1) {
            if let Some((mut stream, opened)) = held.pop_front() {
                if closed_now(&mut stream) {
                    tally.closed_by_node += 1;
                    tally.longest_hold_s = tally.longest_hold_s.max(opened.elapsed().as_secs_f64());
                } else {
                    tally.left_open += 1;
                }
            }
        }
    }
    for (mut stream, _) in held {
        observe_close(&mut stream, tally);
    }
}

fn slow_loris(target: &Target, limits: &Limits, deadline: Instant, tally: &mut Tally) {
    let ports = ports(Kind::SlowLoris, target);
    if ports.is_empty() {
        return;
    }
    let mut rng = Rng::new(limits.seed ^ 4);
    // Each port's never-finished request: a greeting, a batch promising the largest frame, an
    // HTTP request promising a large body.
    let scripts: Vec<(SocketAddr, std::sync::Arc<Vec<u8>>)> = ports
        .iter()
        .map(|(port, addr)| {
            let script = match port {
                Port::Peer => first_hello(target.chain_id, &mut rng),
                Port::Ingress => {
                    let mut bytes = header(
                        WIRE_MAGIC,
                        WIRE_VERSION,
                        FrameKind::Txns as u8,
                        0,
                        (FRAME_SIZE_DEFAULT - WIRE_HEADER_SIZE) as u32,
                    )
                    .to_vec();
                    bytes.resize(4096, 0);
                    bytes
                }
                Port::Rpc => {
                    let mut bytes = b"POST / HTTP/1.1\r\nHost: node\r\nContent-Type: application/json\r\nContent-Length: 100000\r\n\r\n".to_vec();
                    bytes.resize(4096, b' ');
                    bytes
                }
            };
            (*addr, std::sync::Arc::new(script))
        })
        .collect();
    let cap = limits.max_connections.max(1);
    let mut held: Vec<Held> = Vec::with_capacity(cap);
    let mut next = 0usize;
    let mut opener = Pacer::new(limits.connect_rate);
    while Instant::now() < deadline {
        let round_start = Instant::now();
        // Top up to the cap, within the connect rate, for at most a quarter of a round.
        while held.len() < cap && round_start.elapsed() < Duration::from_millis(250) {
            opener.wait(1);
            let (addr, script) = &scripts[next % scripts.len()];
            next += 1;
            if let Some(stream) = connect(*addr, tally) {
                held.push(Held { stream, opened: Instant::now(), script: script.clone(), position: 0 });
            }
        }
        // One byte each; a connection the node closed is counted and replaced next round.
        held.retain_mut(|conn| {
            let byte = conn.script[conn.position % conn.script.len()];
            let alive = !closed_now(&mut conn.stream) && conn.stream.write_all(&[byte]).is_ok();
            if alive {
                conn.position += 1;
                tally.bytes += 1;
            } else {
                tally.closed_by_node += 1;
                tally.longest_hold_s = tally.longest_hold_s.max(conn.opened.elapsed().as_secs_f64());
            }
            alive
        });
        let rest = Duration::from_secs(1).saturating_sub(round_start.elapsed());
        std::thread::sleep(rest.min(deadline.saturating_duration_since(Instant::now())));
    }
    tally.left_open += held.len() as u64;
    tally.longest_hold_s = tally
        .longest_hold_s
        .max(held.iter().map(|conn| conn.opened.elapsed().as_secs_f64()).fold(0.0, f64::max));
}

fn slow_reader(target: &Target, limits: &Limits, deadline: Instant, tally: &mut Tally) {
    let Some(addr) = target.peer else { return };
    let request = encode(&Frame::Consensus(ConsensusMessage::SyncRequest { from_height: 1 }));
    let cap = limits.max_connections.clamp(1, 8);
    let mut held: Vec<(TcpStream, Channel, Instant)> = Vec::new();
    let mut pacer = Pacer::new(200);
    while Instant::now() < deadline {
        // Not a byte read after the handshake: the node's answers pile up in the socket.
        if held.len() < cap
            && let Some(mut stream) = connect(addr, tally)
            && let Some(channel) = follower_handshake(&mut stream, target.chain_id, target.node_index, tally)
        {
            held.push((stream, channel, Instant::now()));
        }
        for (stream, channel, _) in &mut held {
            pacer.wait(1);
            let _ = stream.set_write_timeout(Some(Duration::from_millis(50)));
            if send_sealed(channel, &request, tally) {
                tally.frames += 1;
            }
        }
        held.retain_mut(|(stream, _, opened)| {
            // Peek without reading what the node sent: a reset or end of stream shows as an
            // error on write or zero-byte peek.
            let closed = closed_by_peer(stream);
            if closed {
                tally.closed_by_node += 1;
                tally.longest_hold_s = tally.longest_hold_s.max(opened.elapsed().as_secs_f64());
            }
            !closed
        });
        if held.is_empty() {
            std::thread::sleep(Duration::from_millis(50));
        }
    }
    tally.left_open += held.len() as u64;
}

/// True when the node has closed `stream` (peeked without consuming anything).
fn closed_by_peer(stream: &TcpStream) -> bool {
    let mut probe = [0u8; 1];
    let _ = stream.set_nonblocking(true);
    let closed = match stream.peek(&mut probe) {
        Ok(0) => true,
        Ok(_) => false,
        Err(error) => error.kind() != std::io::ErrorKind::WouldBlock,
    };
    let _ = stream.set_nonblocking(false);
    closed
}

fn follower_flood(target: &Target, limits: &Limits, deadline: Instant, tally: &mut Tally) {
    let Some(addr) = target.peer else { return };
    let mut pacer = Pacer::new(limits.connect_rate);
    let mut held: Vec<(TcpStream, Channel, Instant)> = Vec::new();
    while Instant::now() < deadline {
        if held.len() < limits.max_connections {
            pacer.wait(1);
            if let Some(mut stream) = connect(addr, tally)
                && let Some(channel) =
                    follower_handshake(&mut stream, target.chain_id, target.node_index, tally)
            {
                held.push((stream, channel, Instant::now()));
            }
        } else {
            std::thread::sleep(Duration::from_millis(50));
        }
        held.retain(|(stream, _, opened)| {
            let closed = closed_by_peer(stream);
            if closed {
                tally.closed_by_node += 1;
                tally.longest_hold_s = tally.longest_hold_s.max(opened.elapsed().as_secs_f64());
            }
            !closed
        });
    }
    tally.left_open += held.len() as u64;
}

fn sync_amplification(target: &Target, limits: &Limits, deadline: Instant, tally: &mut Tally) {
    let Some(addr) = target.peer else { return };
    let request = encode(&Frame::Consensus(ConsensusMessage::SyncRequest { from_height: 1 }));
    let mut pacer = Pacer::new(limits.rate);
    let mut open: Option<(TcpStream, Channel)> = None;
    while Instant::now() < deadline {
        if open.is_none() {
            let Some(mut stream) = connect(addr, tally) else {
                std::thread::sleep(Duration::from_millis(100));
                continue;
            };
            let Some(channel) = follower_handshake(&mut stream, target.chain_id, target.node_index, tally)
            else {
                std::thread::sleep(Duration::from_millis(100));
                continue;
            };
            open = Some((stream, channel));
        }
        let Some((_, channel)) = open.as_mut() else { continue };
        pacer.wait(1);
        let answered = send_sealed(channel, &request, tally)
            && match read_sealed(channel) {
                Ok(Some(frame)) => {
                    tally.bytes_received += encode(&frame).len() as u64;
                    true
                }
                _ => false,
            };
        if answered {
            tally.frames += 1;
        } else {
            tally.closed_by_node += 1;
            open = None;
        }
    }
    if open.is_some() {
        tally.left_open += 1;
    }
}

fn garbage_after_handshake(target: &Target, limits: &Limits, deadline: Instant, tally: &mut Tally) {
    let Some(addr) = target.peer else { return };
    let mut rng = Rng::new(limits.seed ^ 6);
    let mut pacer = Pacer::new(limits.connect_rate);
    let mut garbage = vec![0u8; 4096];
    while Instant::now() < deadline {
        pacer.wait(1);
        let Some(mut stream) = connect(addr, tally) else { continue };
        let opened = Instant::now();
        let Some(mut channel) = follower_handshake(&mut stream, target.chain_id, target.node_index, tally)
        else {
            continue;
        };
        for _ in 0..64 {
            rng.fill(&mut garbage);
            if !send_sealed(&mut channel, &garbage, tally) {
                break;
            }
        }
        outcome(&mut stream, Duration::from_secs(1), opened, tally);
    }
}

/// A validly signed transfer from throwaway sender `sender`.
pub fn throwaway_txn(chain_id: u32, sender: u64) -> Txn {
    let key = signing_key(0x6261_6473_6967, sender);
    let body = TxnBody {
        chain_id,
        reserved: 0,
        sender: key.verifying_key().to_bytes(),
        recipient: signing_key(0x6261_6473_6967, sender + (1 << 32)).verifying_key().to_bytes(),
        amount: 1,
        fee: 10,
        nonce: 0,
    };
    sign(&key, body)
}

/// `valid` with its signature's scalar altered in its low bytes by `change` (nonzero): still a
/// well-formed signature (it passes the cheap checks) that does not verify, and a distinct
/// transaction for each `change`.
pub fn spoil(valid: &Txn, change: u64) -> Txn {
    let mut txn = *valid;
    txn.signature.0[32] ^= change as u8;
    txn.signature.0[33] ^= (change >> 8) as u8;
    txn.signature.0[34] ^= (change >> 16) as u8;
    txn
}

/// The transactions bad-signature spam spoils: with funded addresses (`--genesis`), one
/// transfer per funded sender at a nonce inside the node's window (its account nonce over
/// `--rpc`, plus 512), so each passes every cheap check and reaches verification; without
/// them, throwaway senders, which the node refuses for funds before verifying.
pub(super) fn spam_originals(target: &Target) -> Vec<Txn> {
    if target.funded.is_empty() {
        return (0..256).map(|sender| throwaway_txn(target.chain_id, sender)).collect();
    }
    target
        .funded
        .iter()
        .take(256)
        .enumerate()
        .map(|(i, address)| {
            let nonce = target
                .rpc
                .and_then(|rpc| {
                    let call = format!(
                        r#"{{"jsonrpc":"2.0","id":1,"method":"tessera_getAccount","params":["{}"]}}"#,
                        hex::encode(address)
                    );
                    super::http::call(rpc, &call)?["nonce"].as_u64()
                })
                .unwrap_or(0);
            let mut txn = throwaway_txn(target.chain_id, i as u64);
            txn.body.sender = *address;
            txn.body.nonce = nonce.saturating_add(512);
            txn
        })
        .collect()
}

/// Sends `next()`'s transactions to the ingress port in batches of 256 at `limits.rate` a
/// second until `deadline`, reconnecting when the node closes the connection.
fn spam_ingress(
    target: &Target,
    limits: &Limits,
    deadline: Instant,
    tally: &mut Tally,
    mut next: impl FnMut() -> Txn,
) {
    const BATCH: usize = 256;
    let Some(addr) = target.ingress else { return };
    let mut pacer = Pacer::new(limits.rate);
    let mut stream: Option<TcpStream> = None;
    while Instant::now() < deadline {
        let batch: Vec<Txn> = (0..BATCH).map(|_| next()).collect();
        pacer.wait(BATCH as u64);
        let frame = encode(&Frame::Txns(batch));
        if stream.is_none() {
            stream = connect(addr, tally);
        }
        let Some(open) = stream.as_mut() else {
            std::thread::sleep(Duration::from_millis(100));
            continue;
        };
        if send(open, &frame, tally) {
            tally.frames += 1;
            tally.txns += BATCH as u64;
        } else {
            tally.closed_by_node += 1;
            stream = None;
        }
    }
    if let Some(mut open) = stream {
        observe_close(&mut open, tally);
    }
}

fn bad_signature_spam(target: &Target, limits: &Limits, deadline: Instant, tally: &mut Tally) {
    if target.ingress.is_none() {
        return;
    }
    // Signing is the expensive part; do it once per sender, then spoil the signature.
    let signed = spam_originals(target);
    let mut variant = limits.seed.wrapping_mul(1 << 20);
    spam_ingress(target, limits, deadline, tally, || {
        let txn = spoil(&signed[(variant % signed.len() as u64) as usize], (variant / 256) % 0xff_ffff + 1);
        variant += 1;
        txn
    });
}

/// Correctly signed transfers from 256 throwaway keys that own nothing, each with a fresh fee
/// near 2^64 (so each is a distinct transaction the fee order would put first).
fn unfunded_fee_spam(target: &Target, limits: &Limits, deadline: Instant, tally: &mut Tally) {
    if target.ingress.is_none() {
        return;
    }
    let keys: Vec<_> = (0..256).map(|sender| signing_key(0x6665_6573, sender)).collect();
    let mut variant = limits.seed.wrapping_mul(1 << 24);
    spam_ingress(target, limits, deadline, tally, || {
        let key = &keys[(variant % 256) as usize];
        let body = TxnBody {
            chain_id: target.chain_id,
            reserved: 0,
            sender: key.verifying_key().to_bytes(),
            recipient: [0x5a; 32],
            amount: 1,
            fee: u64::MAX - (variant >> 8) % (1 << 32),
            nonce: 0,
        };
        variant += 1;
        sign(key, body)
    });
}

/// Most nonce-variant spam a second: each variant is signed as it is sent (a variant sent
/// again could be answered from a verdict cache, which would hide what a fresh one costs), so
/// the attacker's own core bounds it.
pub const NONCE_VARIANTS_PER_S_MAX: u32 = 4_000;

/// Freshly signed transfers from funded keys that honest load leaves alone
/// (`Target::spenders`), round-robin over them: per sender, variants (recipient random, fee 1,
/// so none may replace another: a replacement must pay an eighth more) for its next nonce and
/// the one after, and one in four debiting its whole balance plus a fee. The senders' nonces and balances are read over `--rpc` every 250 ms, so the
/// variants follow the ledger: each nonce admits one of them and commits it, and the rest are
/// what the node must refuse unverified.
fn nonce_variant_spam(target: &Target, limits: &Limits, deadline: Instant, tally: &mut Tally) {
    const REFRESH: Duration = Duration::from_millis(250);
    if target.ingress.is_none() || target.spenders.is_empty() {
        return;
    }
    // Every sender's account in one batch: one round trip, and at most one timeout, where a
    // call each could hold the attack for a timeout each when the node's RPC stalls.
    let calls: Vec<String> = target
        .spenders
        .iter()
        .enumerate()
        .map(|(id, (key, _))| {
            format!(
                r#"{{"jsonrpc":"2.0","id":{id},"method":"tessera_getAccount","params":["{}"]}}"#,
                hex::encode(key.verifying_key().to_bytes())
            )
        })
        .collect();
    let refresh = |accounts: &mut [(u64, u64)]| {
        let Some(answers) = target.rpc.and_then(|rpc| super::http::call_batch(rpc, &calls)) else { return };
        for (account, answer) in accounts.iter_mut().zip(answers) {
            if let Some(answer) = answer
                && let (Some(nonce), Some(balance)) = (answer["nonce"].as_u64(), answer["balance"].as_u64())
            {
                *account = (nonce, balance);
            }
        }
    };
    let mut accounts: Vec<(u64, u64)> = target.spenders.iter().map(|(_, balance)| (0, *balance)).collect();
    refresh(&mut accounts);
    let mut read_at = Instant::now();
    let limits = Limits { rate: limits.rate.min(NONCE_VARIANTS_PER_S_MAX), ..*limits };
    let mut rng = Rng::new(limits.seed ^ 0x6e6f_6e63_6573);
    let mut sent = 0_u64;
    spam_ingress(target, &limits, deadline, tally, || {
        if read_at.elapsed() >= REFRESH {
            refresh(&mut accounts);
            read_at = Instant::now();
        }
        let which = (sent % accounts.len() as u64) as usize;
        let round = sent / accounts.len() as u64;
        sent += 1;
        let (key, _) = &target.spenders[which];
        let (next, balance) = accounts[which];
        let (nonce, amount) = match round % 4 {
            0 | 1 => (next, 1),
            2 => (next.saturating_add(1), 1),
            _ => (next, balance.max(1)),
        };
        let mut recipient = [0; 32];
        rng.fill(&mut recipient);
        let body = TxnBody {
            chain_id: target.chain_id,
            reserved: 0,
            sender: key.verifying_key().to_bytes(),
            recipient,
            amount,
            fee: 1,
            nonce,
        };
        sign(key, body)
    });
}

/// Runs a framed-port kind until `deadline`.
pub fn run(kind: Kind, target: &Target, limits: &Limits, deadline: Instant) -> Tally {
    let mut tally = Tally::default();
    match kind {
        Kind::MalformedFrames => malformed_frames(target, limits, deadline, &mut tally),
        Kind::TruncatedFrames => truncated_frames(target, limits, deadline, &mut tally),
        Kind::OversizedFrames => oversized_frames(target, limits, deadline, &mut tally),
        Kind::HandshakeViolations => handshake_violations(target, limits, deadline, &mut tally),
        Kind::HandshakeReflection => handshake_reflection(target, limits, deadline, &mut tally),
        Kind::ConnectionFlood => connection_flood(target, limits, deadline, &mut tally),
        Kind::SlowLoris => slow_loris(target, limits, deadline, &mut tally),
        Kind::SlowReader => slow_reader(target, limits, deadline, &mut tally),
        Kind::GarbageAfterHandshake => garbage_after_handshake(target, limits, deadline, &mut tally),
        Kind::FollowerFlood => follower_flood(target, limits, deadline, &mut tally),
        Kind::SyncAmplification => sync_amplification(target, limits, deadline, &mut tally),
        Kind::BadSignatureSpam => bad_signature_spam(target, limits, deadline, &mut tally),
        Kind::UnfundedFeeSpam => unfunded_fee_spam(target, limits, deadline, &mut tally),
        Kind::NonceVariantSpam => nonce_variant_spam(target, limits, deadline, &mut tally),
        _ => {}
    }
    tally
}
