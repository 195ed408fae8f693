//! Abuse of the framed TCP ports (peer and ingress): malformed, truncated and oversized frames,
//! handshake violations, connection floods, slow-loris, a slow reader, garbage after a valid
//! handshake, and bad-signature transaction spam.

use std::collections::VecDeque;
use std::io::{Read, Write};
use std::net::{SocketAddr, TcpStream};
use std::time::{Duration, Instant};

use ed25519_dalek::{Signer, SigningKey};
use tessera_components::constants::{FRAME_SIZE_DEFAULT, WIRE_HEADER_SIZE, WIRE_MAGIC, WIRE_VERSION};
use tessera_components::wire::{
    Codec, Frame, FrameKind, Hello, HelloProof, PROTOCOL_VERSION, encode, hello_signing_bytes,
};
use tessera_components::{ConsensusMessage, Hash, Txn, TxnBody, Vote, VoteKind};
use tessera_systems::workload::{sign, signing_key};

use super::{Kind, Limits, Pacer, Port, Rng, Tally, Target};
use crate::node::net::FOLLOWER;

/// Connects with short timeouts; counts the attempt.
pub fn connect(addr: SocketAddr, tally: &mut Tally) -> Option<TcpStream> {
    match TcpStream::connect_timeout(&addr, Duration::from_secs(2)) {
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

fn nonce(rng: &mut Rng) -> [u8; 32] {
    let mut nonce = [0u8; 32];
    rng.fill(&mut nonce);
    nonce
}

/// A full node's greeting: needs no key.
fn follower_hello(chain_id: u32, rng: &mut Rng) -> Vec<u8> {
    encode(&Frame::Hello(Hello {
        chain_id,
        protocol_version: PROTOCOL_VERSION,
        validator: FOLLOWER,
        nonce: nonce(rng),
    }))
}

/// Greets the node as a full node and reads its greeting and proof; true when the node
/// completed the handshake.
pub fn follower_handshake(stream: &mut TcpStream, chain_id: u32, rng: &mut Rng, tally: &mut Tally) -> bool {
    if !send(stream, &follower_hello(chain_id, rng), tally) {
        return false;
    }
    tally.frames += 1;
    let done = matches!(
        (read_frame(stream), read_frame(stream)),
        (Ok(Some(Frame::Hello(_))), Ok(Some(Frame::HelloProof(_))))
    );
    if done {
        tally.handshakes += 1;
    }
    done
}

/// Greets the node as validator `index` and proves it with `key`; true when the node accepted.
pub fn validator_handshake(
    stream: &mut TcpStream,
    chain_id: u32,
    index: u32,
    key: &SigningKey,
    rng: &mut Rng,
    tally: &mut Tally,
) -> bool {
    let hello = Hello { chain_id, protocol_version: PROTOCOL_VERSION, validator: index, nonce: nonce(rng) };
    if !send(stream, &encode(&Frame::Hello(hello)), tally) {
        return false;
    }
    tally.frames += 1;
    let (Ok(Some(Frame::Hello(theirs))), Ok(Some(Frame::HelloProof(_)))) =
        (read_frame(stream), read_frame(stream))
    else {
        return false;
    };
    let signature = key.sign(&hello_signing_bytes(chain_id, index, &theirs.nonce)).to_bytes();
    if !send(stream, &encode(&Frame::HelloProof(HelloProof { signature })), tally) {
        return false;
    }
    tally.frames += 1;
    // The node says nothing on success; a refusal closes the connection.
    let _ = stream.set_read_timeout(Some(Duration::from_millis(200)));
    let accepted = !closed_after(stream);
    let _ = stream.set_read_timeout(Some(Duration::from_secs(5)));
    if accepted {
        tally.handshakes += 1;
    }
    accepted
}

fn closed_after(stream: &mut TcpStream) -> bool {
    let mut scratch = [0u8; 64];
    match stream.read(&mut scratch) {
        Ok(0) => true,
        Ok(_) => false,
        Err(error) => !matches!(error.kind(), std::io::ErrorKind::WouldBlock | std::io::ErrorKind::TimedOut),
    }
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
        if port == Port::Peer && !follower_handshake(&mut stream, target.chain_id, &mut rng, tally) {
            outcome(&mut stream, Duration::from_millis(100), opened, tally);
            continue;
        }
        // Past the peer port's penalty threshold; the ingress port closes at the first.
        for _ in 0..32 {
            let frame = malformed_frame(case, &mut rng);
            case += 1;
            if !send(&mut stream, &frame, tally) {
                break;
            }
            tally.frames += 1;
        }
        outcome(&mut stream, Duration::from_secs(1), opened, tally);
    }
}

fn truncated_frames(target: &Target, limits: &Limits, deadline: Instant, tally: &mut Tally) {
    let ports = ports(Kind::TruncatedFrames, target);
    let mut rng = Rng::new(limits.seed ^ 1);
    let mut pacer = Pacer::new(limits.connect_rate);
    let full = encode(&Frame::Txns(vec![spoil(&throwaway_txn(target.chain_id, 0), 1); 8]));
    for round in 0u64.. {
        if Instant::now() >= deadline || ports.is_empty() {
            break;
        }
        pacer.wait(1);
        let (port, addr) = ports[round as usize % ports.len()];
        let Some(mut stream) = connect(addr, tally) else { continue };
        if port == Port::Peer
            && round % 4 < 2
            && !follower_handshake(&mut stream, target.chain_id, &mut rng, tally)
        {
            continue;
        }
        let cut = match round % 3 {
            0 => WIRE_HEADER_SIZE / 2,
            1 => full.len() / 2,
            _ => full.len() - 1,
        };
        if send(&mut stream, &full[..cut], tally) {
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
    let mut rng = Rng::new(limits.seed ^ 2);
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
        if port == Port::Peer
            && round % 2 == 0
            && !follower_handshake(&mut stream, target.chain_id, &mut rng, tally)
        {
            continue;
        }
        let length = match round % 4 {
            0 => (FRAME_SIZE_DEFAULT - WIRE_HEADER_SIZE + 1) as u32,
            1 => 16 << 20,
            2 => u32::MAX - WIRE_HEADER_SIZE as u32,
            _ => u32::MAX,
        };
        let kind = if round % 2 == 0 { FrameKind::Txns } else { FrameKind::Consensus };
        if send(&mut stream, &header(WIRE_MAGIC, WIRE_VERSION, kind as u8, 0, length), tally) {
            tally.frames += 1;
            let _ = send(&mut stream, &filler, tally);
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
        let hello = |chain_id, protocol_version, validator, rng: &mut Rng| {
            encode(&Frame::Hello(Hello { chain_id, protocol_version, validator, nonce: nonce(rng) }))
        };
        let first = match round % 7 {
            0 => hello(chain.wrapping_add(1), PROTOCOL_VERSION, 0, &mut rng),
            1 => hello(chain, PROTOCOL_VERSION.wrapping_add(1), 0, &mut rng),
            2 => hello(chain, PROTOCOL_VERSION, 1_000_000, &mut rng),
            // A validator's index, then a forged proof (below).
            3 | 4 => hello(chain, PROTOCOL_VERSION, (round / 7 % 4) as u32, &mut rng),
            5 => encode(&Frame::HelloProof(HelloProof { signature: [7; 64] })),
            _ => encode(&Frame::Txns(Vec::new())),
        };
        if !send(&mut stream, &first, tally) {
            continue;
        }
        tally.frames += 1;
        if round % 7 == 3 || round % 7 == 4 {
            // The node greets back if the index is someone else's; answer with a forged proof
            // (3) or a second greeting (4).
            if let (Ok(Some(Frame::Hello(_))), Ok(Some(Frame::HelloProof(_)))) =
                (read_frame(&mut stream), read_frame(&mut stream))
            {
                let mut signature = [0u8; 64];
                rng.fill(&mut signature);
                let second = if round % 7 == 3 {
                    encode(&Frame::HelloProof(HelloProof { signature }))
                } else {
                    hello(chain, PROTOCOL_VERSION, 0, &mut rng)
                };
                if send(&mut stream, &second, tally) {
                    tally.frames += 1;
                }
            }
        }
        outcome(&mut stream, Duration::from_secs(1), opened, tally);
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
                Port::Peer => follower_hello(target.chain_id, &mut rng),
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
    let mut rng = Rng::new(limits.seed ^ 5);
    let request = encode(&Frame::Consensus(ConsensusMessage::SyncRequest { from_height: 1 }));
    let cap = limits.max_connections.clamp(1, 8);
    let mut held: Vec<(TcpStream, Instant)> = Vec::new();
    let mut pacer = Pacer::new(200);
    while Instant::now() < deadline {
        // Not a byte read after the handshake: the node's answers pile up in the socket.
        if held.len() < cap
            && let Some(mut stream) = connect(addr, tally)
            && follower_handshake(&mut stream, target.chain_id, &mut rng, tally)
        {
            held.push((stream, Instant::now()));
        }
        for (stream, _) in &mut held {
            pacer.wait(1);
            let _ = stream.set_write_timeout(Some(Duration::from_millis(50)));
            if stream.write_all(&request).is_ok() {
                tally.frames += 1;
                tally.bytes += request.len() as u64;
            }
        }
        held.retain_mut(|(stream, opened)| {
            // Peek without reading what the node sent: a reset or end of stream shows as an
            // error on write or zero-byte peek.
            let mut probe = [0u8; 1];
            let _ = stream.set_nonblocking(true);
            let closed = match stream.peek(&mut probe) {
                Ok(0) => true,
                Ok(_) => false,
                Err(error) => error.kind() != std::io::ErrorKind::WouldBlock,
            };
            let _ = stream.set_nonblocking(false);
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

fn garbage_after_handshake(target: &Target, limits: &Limits, deadline: Instant, tally: &mut Tally) {
    let Some(addr) = target.peer else { return };
    let mut rng = Rng::new(limits.seed ^ 6);
    let mut pacer = Pacer::new(limits.connect_rate);
    let mut garbage = vec![0u8; 4096];
    while Instant::now() < deadline {
        pacer.wait(1);
        let Some(mut stream) = connect(addr, tally) else { continue };
        let opened = Instant::now();
        if !follower_handshake(&mut stream, target.chain_id, &mut rng, tally) {
            continue;
        }
        for _ in 0..64 {
            rng.fill(&mut garbage);
            if !send(&mut stream, &garbage, tally) {
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

fn bad_signature_spam(target: &Target, limits: &Limits, deadline: Instant, tally: &mut Tally) {
    let Some(addr) = target.ingress else { return };
    // Signing is the expensive part; do it once per sender, then spoil the signature.
    let signed: Vec<Txn> = (0..256).map(|sender| throwaway_txn(target.chain_id, sender)).collect();
    const BATCH: usize = 256;
    let mut pacer = Pacer::new(limits.rate);
    let mut stream: Option<TcpStream> = None;
    let mut variant = limits.seed.wrapping_mul(1 << 20);
    let mut batch = Vec::with_capacity(BATCH);
    while Instant::now() < deadline {
        batch.clear();
        for _ in 0..BATCH {
            batch.push(spoil(&signed[(variant % 256) as usize], (variant / 256) % 0xff_ffff + 1));
            variant += 1;
        }
        pacer.wait(BATCH as u64);
        let frame = encode(&Frame::Txns(std::mem::take(&mut batch)));
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
        batch = Vec::with_capacity(BATCH);
    }
    if let Some(mut open) = stream {
        observe_close(&mut open, tally);
    }
}

/// Runs a framed-port kind until `deadline`.
pub fn run(kind: Kind, target: &Target, limits: &Limits, deadline: Instant) -> Tally {
    let mut tally = Tally::default();
    match kind {
        Kind::MalformedFrames => malformed_frames(target, limits, deadline, &mut tally),
        Kind::TruncatedFrames => truncated_frames(target, limits, deadline, &mut tally),
        Kind::OversizedFrames => oversized_frames(target, limits, deadline, &mut tally),
        Kind::HandshakeViolations => handshake_violations(target, limits, deadline, &mut tally),
        Kind::ConnectionFlood => connection_flood(target, limits, deadline, &mut tally),
        Kind::SlowLoris => slow_loris(target, limits, deadline, &mut tally),
        Kind::SlowReader => slow_reader(target, limits, deadline, &mut tally),
        Kind::GarbageAfterHandshake => garbage_after_handshake(target, limits, deadline, &mut tally),
        Kind::BadSignatureSpam => bad_signature_spam(target, limits, deadline, &mut tally),
        _ => {}
    }
    tally
}
