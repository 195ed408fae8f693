//! The peer network and the client ingress port, on glommio (io_uring), one executor per
//! configured core.
//!
//! Bird's eye view: every validator dials every other validator and uses that connection to
//! send; it accepts connections from the others and uses those to receive. Each connection
//! starts with a handshake (chain id, protocol version, validator index, and a signature over
//! the other side's random challenge with the genesis key of that index). Inbound frames are
//! decoded on the executor and handed to the schedule's thread through bounded `flume`
//! queues: when a queue is full the reader awaits, so it stops reading the socket and TCP
//! pushes back on the sender. Outbound frames go through one bounded queue per peer; the
//! writer drains everything queued into one write (coalescing), and a peer that stops reading
//! hits the write timeout and is disconnected, then redialled with backoff. Malformed frames
//! cost a peer a penalty point; past the threshold the connection is closed and the peer's
//! address banned for a while. Every such event has a counter.

use std::cell::RefCell;
use std::collections::HashMap;
use std::net::{IpAddr, SocketAddr};
use std::rc::Rc;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::time::{Duration, Instant};

use ed25519_dalek::{Signer, SigningKey, VerifyingKey};
use futures_lite::{AsyncReadExt, AsyncWriteExt};
use glommio::net::{TcpListener, TcpStream};
use glommio::{LocalExecutorBuilder, Placement};
use tessera_components::constants::WIRE_HEADER_SIZE;
use tessera_components::wire::{
    Codec, Frame, FrameKind, Hello, HelloProof, PROTOCOL_VERSION, encode, hello_signing_bytes,
};
use tessera_components::{ConsensusMessage, Txn};

super::metrics::series! {
    /// Counters of the network layer, shared with the metrics endpoint. Each field's doc
    /// comment is its HELP text.
    pub struct NetCounters {
        /// Frames received from peers and clients.
        counter frames_in = "tessera_net_frames_received_total",
        /// Frames written to peers.
        counter frames_out = "tessera_net_frames_sent_total",
        /// Bytes received from peers and clients.
        counter bytes_in = "tessera_net_received_bytes_total",
        /// Bytes written to peers.
        counter bytes_out = "tessera_net_sent_bytes_total",
        /// Frames that did not decode or were not allowed on their port.
        counter malformed_frames = "tessera_net_malformed_frames_total",
        /// Peer handshakes refused.
        counter handshake_failures = "tessera_net_handshake_failures_total",
        /// Peers banned for malformed frames.
        counter peers_banned = "tessera_net_peers_banned_total",
        /// Connections refused from banned addresses.
        counter banned_refusals = "tessera_net_banned_refusals_total",
        /// Peer connections closed or lost.
        counter disconnects = "tessera_net_disconnects_total",
        /// Outbound frames dropped on a full peer queue.
        counter outbound_dropped = "tessera_net_outbound_dropped_total",
        /// Transactions received on the ingress port.
        counter ingress_txns = "tessera_ingress_transactions_total",
        /// Sync requests from full nodes answered from storage.
        counter sync_requests_served = "tessera_net_sync_requests_served_total",
        /// Connections closed at accept because their port held its maximum.
        counter connections_refused = "tessera_net_connections_refused_total",
        /// Connections closed for a handshake past its deadline or an idle ingress client.
        counter connections_timed_out = "tessera_net_connections_timed_out_total",
        /// Transaction batches refused, with their connection, for a spot-checked signature
        /// that did not verify.
        counter batches_refused = "tessera_ingress_batches_refused_total",
        /// Peers with an established outbound connection.
        gauge peers_connected = "tessera_net_peers_connected",
        /// Full nodes connected to this node's peer port.
        gauge followers_connected = "tessera_net_followers_connected",
        /// Connections open on the peer port, handshaken or not.
        gauge peer_connections_open = "tessera_net_peer_connections_open",
        /// Connections open on the ingress port.
        gauge ingress_connections_open = "tessera_ingress_connections_open",
    }
}

/// The index a full node gives in its `Hello`: it has no validator key, so it proves nothing;
/// a validator serves it sync responses and takes its forwarded transactions, nothing else.
pub const FOLLOWER: u32 = u32::MAX;

/// A full node's request for finalized blocks from `from_height`, with where the encoded
/// `SyncResponse` frame goes.
pub type SyncRequest = (u64, flume::Sender<Arc<Vec<u8>>>);

/// What the schedule's thread holds to talk to the network.
#[derive(Debug)]
pub struct NetHandles {
    /// Consensus messages from peers: (validator index, message).
    pub inbound: flume::Receiver<(u32, ConsensusMessage)>,
    /// Transaction batches from the ingress port.
    pub txns: flume::Receiver<Vec<Txn>>,
    /// Transaction batches forwarded by peers (not forwarded again).
    pub peer_txns: flume::Receiver<Vec<Txn>>,
    /// Full nodes' sync requests, for the node loop to answer from storage.
    pub sync_requests: flume::Receiver<SyncRequest>,
    /// One queue of encoded frames per validator index (this node's own unused).
    pub outbound: Vec<flume::Sender<Arc<Vec<u8>>>>,
    /// Counters.
    pub counters: Arc<NetCounters>,
    /// Set to stop the executors.
    pub stop: Arc<AtomicBool>,
}

impl NetHandles {
    /// Queues an encoded frame for validator `to`; counts a drop if its queue is full.
    pub fn send(&self, to: u32, frame: Arc<Vec<u8>>) {
        if let Some(queue) = self.outbound.get(to as usize)
            && queue.try_send(frame).is_err()
        {
            self.counters.outbound_dropped.fetch_add(1, Ordering::Relaxed);
        }
    }
}

/// Everything the executors need.
#[derive(Clone, Debug)]
pub struct NetSetup {
    /// Chain id.
    pub chain_id: u32,
    /// This validator's index, or [`FOLLOWER`] on a full node.
    pub me: u32,
    /// This validator's key (unused on a full node).
    pub key: SigningKey,
    /// Validator public keys by index.
    pub validators: Vec<[u8; 32]>,
    /// Peer addresses by index.
    pub peers: Vec<SocketAddr>,
    /// Peer port.
    pub listen: SocketAddr,
    /// Ingress port.
    pub ingress: SocketAddr,
    /// Executors.
    pub cores: usize,
    /// Outbound queue bound per peer, frames.
    pub outbound_queue_frames: usize,
    /// Malformed frames tolerated before a ban.
    pub penalty_threshold: u32,
    /// Ban length.
    pub ban: Duration,
    /// Largest frame.
    pub max_frame_bytes: usize,
    /// Most connections open at once on the peer port; more are closed at accept.
    pub peer_connections_max: usize,
    /// Most connections open at once on the ingress port; more are closed at accept.
    pub ingress_connections_max: usize,
    /// An ingress connection that completes no frame for this long is closed.
    pub ingress_idle_timeout: Duration,
}

/// Why the network could not start.
#[derive(Debug, thiserror::Error)]
pub enum NetError {
    /// An executor could not start (io_uring unavailable, or the locked-memory limit).
    #[error("cannot start network executor: {0}")]
    Executor(String),
    /// A port could not be bound.
    #[error("cannot listen on {addr}: {source}")]
    Bind {
        /// Address.
        addr: SocketAddr,
        /// Cause.
        source: std::io::Error,
    },
}

/// The whole accepting or dialling handshake, not each read of it: a peer that trickles its
/// `Hello` a byte at a time is cut off here.
const HANDSHAKE_TIMEOUT: Duration = Duration::from_secs(5);
const WRITE_TIMEOUT: Duration = Duration::from_secs(5);

/// Starts the executors; returns the handles for the schedule's thread.
///
/// # Errors
/// A port that cannot be bound, or an executor that cannot start.
pub fn start(setup: NetSetup) -> Result<(NetHandles, Vec<std::thread::JoinHandle<()>>), NetError> {
    // Bind once here with std to report a taken port clearly (glommio binds with SO_REUSEPORT,
    // which would silently share a port with another process).
    for addr in [setup.listen, setup.ingress] {
        std::net::TcpListener::bind(addr).map_err(|source| NetError::Bind { addr, source })?;
    }
    let (inbound_tx, inbound) = flume::bounded(1 << 14);
    let (txns_tx, txns) = flume::bounded(1 << 10);
    let (peer_txns_tx, peer_txns) = flume::bounded(1 << 10);
    let (sync_tx, sync_requests) = flume::bounded(256);
    let counters = Arc::new(NetCounters::default());
    let stop = Arc::new(AtomicBool::new(false));
    let mut outbound = Vec::new();
    let mut outbound_rx = Vec::new();
    for _ in 0..setup.peers.len() {
        let (tx, rx) = flume::bounded(setup.outbound_queue_frames);
        outbound.push(tx);
        outbound_rx.push(rx);
    }
    let mut threads = Vec::new();
    for core in 0..setup.cores {
        let setup = setup.clone();
        let inbound_tx = inbound_tx.clone();
        let txns_tx = txns_tx.clone();
        let peer_txns_tx = peer_txns_tx.clone();
        let sync_tx = sync_tx.clone();
        let counters = counters.clone();
        let stop = stop.clone();
        // Peers are split across executors by index; listeners are shared through SO_REUSEPORT.
        let dial: Vec<(u32, flume::Receiver<Arc<Vec<u8>>>)> = outbound_rx
            .iter()
            .enumerate()
            .filter(|(index, _)| *index as u32 != setup.me && index % setup.cores == core)
            .map(|(index, rx)| (index as u32, rx.clone()))
            .collect();
        let (ready_tx, ready_rx) = std::sync::mpsc::channel();
        let handle = LocalExecutorBuilder::new(Placement::Unbound)
            .name(&format!("tessera-net-{core}"))
            .spawn(move || async move {
                let shared = Rc::new(Executor { setup, counters, bans: RefCell::new(HashMap::new()), stop });
                let peer_listener = match TcpListener::bind(shared.setup.listen) {
                    Ok(listener) => listener,
                    Err(error) => {
                        let _ = ready_tx.send(Err(error.to_string()));
                        return;
                    }
                };
                let ingress_listener = match TcpListener::bind(shared.setup.ingress) {
                    Ok(listener) => listener,
                    Err(error) => {
                        let _ = ready_tx.send(Err(error.to_string()));
                        return;
                    }
                };
                let _ = ready_tx.send(Ok(()));
                let links = PeerLinks { inbound: inbound_tx.clone(), txns: peer_txns_tx, sync: sync_tx };
                glommio::spawn_local(accept_peers(shared.clone(), peer_listener, links)).detach();
                glommio::spawn_local(accept_clients(shared.clone(), ingress_listener, txns_tx)).detach();
                for (index, rx) in dial {
                    glommio::spawn_local(dial_peer(shared.clone(), index, rx, inbound_tx.clone())).detach();
                }
                while !shared.stop.load(Ordering::Relaxed) {
                    glommio::timer::sleep(Duration::from_millis(50)).await;
                }
            })
            .map_err(|error| NetError::Executor(error.to_string()))?;
        match ready_rx.recv() {
            Ok(Ok(())) => {}
            Ok(Err(error)) => return Err(NetError::Executor(error)),
            Err(_) => return Err(NetError::Executor("executor exited during start".into())),
        }
        threads.push(std::thread::spawn(move || {
            let _ = handle.join();
        }));
    }
    Ok((NetHandles { inbound, txns, peer_txns, sync_requests, outbound, counters, stop }, threads))
}

struct Executor {
    setup: NetSetup,
    counters: Arc<NetCounters>,
    /// Banned addresses and when the ban ends.
    bans: RefCell<HashMap<IpAddr, Instant>>,
    stop: Arc<AtomicBool>,
}

impl Executor {
    fn banned(&self, ip: IpAddr) -> bool {
        let mut bans = self.bans.borrow_mut();
        match bans.get(&ip) {
            Some(until) if Instant::now() < *until => true,
            Some(_) => {
                bans.remove(&ip);
                false
            }
            None => false,
        }
    }

    fn ban(&self, ip: IpAddr) {
        // Loopback is never banned as a whole: on a devnet every honest peer shares it.
        if !ip.is_loopback() {
            self.bans.borrow_mut().insert(ip, Instant::now() + self.setup.ban);
        }
        self.counters.peers_banned.fetch_add(1, Ordering::Relaxed);
    }

    fn codec(&self) -> Codec {
        Codec::new(self.setup.max_frame_bytes)
    }
}

/// Most of a frame's declared size buffered before its bytes arrive.
const FRAME_PREALLOCATE_MAX: usize = 64 << 10;

/// `work`, or `TimedOut` once `limit` has passed, whichever comes first.
async fn within<T>(
    limit: Duration,
    work: impl std::future::Future<Output = std::io::Result<T>>,
) -> std::io::Result<T> {
    futures_lite::future::or(work, async {
        glommio::timer::sleep(limit).await;
        Err(std::io::ErrorKind::TimedOut.into())
    })
    .await
}

/// Holds one of a port's connection slots; gives it back when dropped.
struct Slot<'a>(&'a AtomicU64);

impl<'a> Slot<'a> {
    /// A slot if fewer than `max` are taken (and counts a refusal if not).
    fn take(open: &'a AtomicU64, max: usize, refused: &AtomicU64) -> Option<Slot<'a>> {
        let taken = open.fetch_add(1, Ordering::AcqRel);
        if taken >= max as u64 {
            open.fetch_sub(1, Ordering::AcqRel);
            refused.fetch_add(1, Ordering::Relaxed);
            return None;
        }
        Some(Slot(open))
    }
}

impl Drop for Slot<'_> {
    fn drop(&mut self) {
        self.0.fetch_sub(1, Ordering::AcqRel);
    }
}

/// Reads one frame: header first (size checked before anything is buffered), then payload.
async fn read_frame(
    stream: &mut TcpStream,
    codec: &Codec,
    counters: &NetCounters,
) -> std::io::Result<Result<Frame, String>> {
    let mut header = [0u8; WIRE_HEADER_SIZE];
    stream.read_exact(&mut header).await?;
    let size = match codec.decode_header(&header) {
        Ok(parsed) => parsed.frame_size(),
        Err(error) => return Ok(Err(error.to_string())),
    };
    // The buffer grows with the bytes that arrive, not with the size the header declares: a
    // sender that declares the largest frame and then trickles costs what it has sent.
    let mut bytes = Vec::with_capacity(size.min(FRAME_PREALLOCATE_MAX));
    bytes.extend_from_slice(&header);
    let payload = (size - WIRE_HEADER_SIZE) as u64;
    if (&mut *stream).take(payload).read_to_end(&mut bytes).await? as u64 != payload {
        return Err(std::io::ErrorKind::UnexpectedEof.into());
    }
    debug_assert_eq!(bytes.len(), size);
    counters.frames_in.fetch_add(1, Ordering::Relaxed);
    counters.bytes_in.fetch_add(size as u64, Ordering::Relaxed);
    Ok(codec.decode(&bytes).map_err(|error| error.to_string()))
}

async fn write_frame(stream: &mut TcpStream, frame: &Frame) -> std::io::Result<()> {
    stream.write_all(&encode(frame)).await?;
    stream.flush().await
}

fn nonce() -> [u8; 32] {
    let mut nonce = [0u8; 32];
    // A failed OS random source would leave zeros: still unique per key pair with the
    // index-bound signature, but flag it loudly.
    if getrandom::fill(&mut nonce).is_err() {
        tracing::error!("OS randomness unavailable for a handshake challenge");
    }
    nonce
}

/// Sends this node's `Hello` with a fresh challenge; returns the challenge.
async fn send_hello(stream: &mut TcpStream, setup: &NetSetup) -> std::io::Result<[u8; 32]> {
    let my_nonce = nonce();
    let mine = Hello {
        chain_id: setup.chain_id,
        protocol_version: PROTOCOL_VERSION,
        validator: setup.me,
        nonce: my_nonce,
    };
    write_frame(stream, &Frame::Hello(mine)).await?;
    Ok(my_nonce)
}

/// Signs the other side's challenge with this validator's key and sends the proof.
async fn send_proof(stream: &mut TcpStream, setup: &NetSetup, their_nonce: &[u8; 32]) -> std::io::Result<()> {
    let signature = setup.key.sign(&hello_signing_bytes(setup.chain_id, setup.me, their_nonce)).to_bytes();
    write_frame(stream, &Frame::HelloProof(HelloProof { signature })).await
}

fn verify_proof(setup: &NetSetup, signer: u32, their_nonce: &[u8; 32], proof: &HelloProof) -> bool {
    let Some(key) = setup.validators.get(signer as usize) else { return false };
    let Ok(key) = VerifyingKey::from_bytes(key) else { return false };
    let message = hello_signing_bytes(setup.chain_id, signer, their_nonce);
    key.verify_strict(&message, &ed25519_dalek::Signature::from_bytes(&proof.signature)).is_ok()
}

fn hello_acceptable(setup: &NetSetup, hello: &Hello) -> bool {
    let known = (hello.validator as usize) < setup.validators.len() && hello.validator != setup.me;
    // Validators serve full nodes; a full node serves nobody on its peer port (it has no key
    // to prove itself with).
    let follower = hello.validator == FOLLOWER && setup.me != FOLLOWER;
    hello.chain_id == setup.chain_id && hello.protocol_version == PROTOCOL_VERSION && (known || follower)
}

/// Where the accepting side hands what peers send.
#[derive(Clone)]
struct PeerLinks {
    inbound: flume::Sender<(u32, ConsensusMessage)>,
    txns: flume::Sender<Vec<Txn>>,
    sync: flume::Sender<SyncRequest>,
}

async fn accept_peers(shared: Rc<Executor>, listener: TcpListener, links: PeerLinks) {
    loop {
        let Ok(stream) = listener.accept().await else {
            accept_failed().await;
            continue;
        };
        let shared = shared.clone();
        let links = links.clone();
        glommio::spawn_local(async move {
            let counters = &shared.counters;
            let max = shared.setup.peer_connections_max;
            let Some(_slot) = Slot::take(&counters.peer_connections_open, max, &counters.connections_refused)
            else {
                return;
            };
            let ip = stream.peer_addr().map(|addr| addr.ip()).ok();
            if ip.is_some_and(|ip| shared.banned(ip)) {
                shared.counters.banned_refusals.fetch_add(1, Ordering::Relaxed);
                return;
            }
            let _ = serve_peer(&shared, stream, ip, links).await;
            shared.counters.disconnects.fetch_add(1, Ordering::Relaxed);
        })
        .detach();
    }
}

/// After a failed accept (out of file descriptors, most often): pause instead of spinning on
/// the error while the connections that hold them drain.
async fn accept_failed() {
    glommio::timer::sleep(Duration::from_millis(10)).await;
}

/// Penalises a peer for one bad frame; true when it is past the threshold and was banned.
fn penalise(shared: &Executor, ip: Option<IpAddr>, penalties: &mut u32) -> bool {
    shared.counters.malformed_frames.fetch_add(1, Ordering::Relaxed);
    *penalties += 1;
    if *penalties <= shared.setup.penalty_threshold {
        return false;
    }
    if let Some(ip) = ip {
        shared.ban(ip);
    } else {
        shared.counters.peers_banned.fetch_add(1, Ordering::Relaxed);
    }
    true
}

/// How an accepted connection's handshake ended.
enum Accepted {
    /// Validator `index` proved its key.
    Validator(u32),
    /// A full node, which proves nothing and is served sync only.
    Follower,
    /// Wrong chain, version or index, a bad proof, or not a handshake at all.
    Refused,
}

/// The accepting side's handshake: their `Hello`, ours with a proof, then their proof (a full
/// node sends none).
async fn accept_handshake(shared: &Executor, stream: &mut TcpStream) -> std::io::Result<Accepted> {
    let codec = shared.codec();
    let setup = &shared.setup;
    let Ok(Frame::Hello(theirs)) = read_frame(stream, &codec, &shared.counters).await? else {
        return Ok(Accepted::Refused);
    };
    if !hello_acceptable(setup, &theirs) {
        return Ok(Accepted::Refused);
    }
    let my_nonce = send_hello(stream, setup).await?;
    send_proof(stream, setup, &theirs.nonce).await?;
    if theirs.validator == FOLLOWER {
        return Ok(Accepted::Follower);
    }
    let Ok(Frame::HelloProof(proof)) = read_frame(stream, &codec, &shared.counters).await? else {
        return Ok(Accepted::Refused);
    };
    if !verify_proof(setup, theirs.validator, &my_nonce, &proof) {
        return Ok(Accepted::Refused);
    }
    Ok(Accepted::Validator(theirs.validator))
}

/// The accepting side: handshake, then read consensus frames until the peer leaves or
/// misbehaves past the threshold.
async fn serve_peer(
    shared: &Executor,
    mut stream: TcpStream,
    ip: Option<IpAddr>,
    links: PeerLinks,
) -> std::io::Result<()> {
    let codec = shared.codec();
    stream.set_read_timeout(Some(HANDSHAKE_TIMEOUT))?;
    stream.set_write_timeout(Some(WRITE_TIMEOUT))?;
    let accepted = match within(HANDSHAKE_TIMEOUT, accept_handshake(shared, &mut stream)).await {
        Err(error) if error.kind() == std::io::ErrorKind::TimedOut => {
            shared.counters.connections_timed_out.fetch_add(1, Ordering::Relaxed);
            Accepted::Refused
        }
        other => other?,
    };
    let peer = match accepted {
        Accepted::Validator(peer) => peer,
        Accepted::Follower => {
            shared.counters.followers_connected.fetch_add(1, Ordering::Relaxed);
            let served = serve_follower(shared, &mut stream, ip, &links).await;
            shared.counters.followers_connected.fetch_sub(1, Ordering::Relaxed);
            return served;
        }
        Accepted::Refused => {
            shared.counters.handshake_failures.fetch_add(1, Ordering::Relaxed);
            return Ok(());
        }
    };
    stream.set_read_timeout(None)?;
    let mut penalties = 0u32;
    loop {
        match read_frame(&mut stream, &codec, &shared.counters).await? {
            Ok(Frame::Consensus(message)) => {
                if links.inbound.send_async((peer, message)).await.is_err() {
                    return Ok(());
                }
            }
            Ok(Frame::Txns(batch)) => {
                if links.txns.send_async(batch).await.is_err() {
                    return Ok(());
                }
            }
            Ok(_) | Err(_) => {
                if penalise(shared, ip, &mut penalties) {
                    return Ok(());
                }
            }
        }
    }
}

/// A full node's connection: each `SyncRequest` gets exactly one `SyncResponse` (empty when
/// there is nothing new), read from storage by the node loop; forwarded transactions go to the
/// mempool; anything else is penalised.
async fn serve_follower(
    shared: &Executor,
    stream: &mut TcpStream,
    ip: Option<IpAddr>,
    links: &PeerLinks,
) -> std::io::Result<()> {
    let codec = shared.codec();
    stream.set_read_timeout(None)?;
    let mut penalties = 0u32;
    loop {
        match read_frame(stream, &codec, &shared.counters).await? {
            Ok(Frame::Consensus(ConsensusMessage::SyncRequest { from_height })) => {
                let (reply_tx, reply) = flume::bounded(1);
                let empty =
                    || Arc::new(encode(&Frame::Consensus(ConsensusMessage::SyncResponse(Vec::new()))));
                // A busy node loop answers "nothing now" rather than queueing without bound.
                let frame = match links.sync.try_send((from_height, reply_tx)) {
                    Ok(()) => reply.recv_async().await.unwrap_or_else(|_| empty()),
                    Err(_) => empty(),
                };
                stream.write_all(&frame).await?;
                stream.flush().await?;
                shared.counters.sync_requests_served.fetch_add(1, Ordering::Relaxed);
                shared.counters.frames_out.fetch_add(1, Ordering::Relaxed);
                shared.counters.bytes_out.fetch_add(frame.len() as u64, Ordering::Relaxed);
            }
            Ok(Frame::Txns(batch)) => {
                if !spot_check(&batch) {
                    shared.counters.batches_refused.fetch_add(1, Ordering::Relaxed);
                    return Ok(());
                }
                if links.txns.send_async(batch).await.is_err() {
                    return Ok(());
                }
            }
            Ok(_) | Err(_) => {
                if penalise(shared, ip, &mut penalties) {
                    return Ok(());
                }
            }
        }
    }
}

/// The dialling side for one peer: connect with backoff, handshake, then write queued frames,
/// coalescing whatever is queued into one write.
async fn dial_peer(
    shared: Rc<Executor>,
    peer: u32,
    outbound: flume::Receiver<Arc<Vec<u8>>>,
    inbound: flume::Sender<(u32, ConsensusMessage)>,
) {
    let mut backoff = Duration::from_millis(50);
    while !shared.stop.load(Ordering::Relaxed) {
        let address = shared.setup.peers[peer as usize];
        if let Ok(stream) = TcpStream::connect(address).await {
            let connected = Instant::now();
            shared.counters.peers_connected.fetch_add(1, Ordering::Relaxed);
            let _ = if shared.setup.me == FOLLOWER {
                run_follower_link(&shared, peer, stream, &outbound, &inbound).await
            } else {
                run_dialled(&shared, peer, stream, &outbound).await
            };
            shared.counters.peers_connected.fetch_sub(1, Ordering::Relaxed);
            shared.counters.disconnects.fetch_add(1, Ordering::Relaxed);
            if connected.elapsed() > Duration::from_secs(5) {
                backoff = Duration::from_millis(50);
            }
        }
        glommio::timer::sleep(backoff).await;
        backoff = (backoff * 2).min(Duration::from_secs(5));
    }
}

/// The dialling side's half of the handshake: our `Hello`, then the peer's `Hello` and its
/// proof of holding validator `peer`'s key. `None` (counted) when the peer fails it.
async fn dial_handshake(
    shared: &Executor,
    peer: u32,
    stream: &mut TcpStream,
) -> std::io::Result<Option<Hello>> {
    let codec = shared.codec();
    let setup = &shared.setup;
    stream.set_nodelay(true)?;
    stream.set_read_timeout(Some(HANDSHAKE_TIMEOUT))?;
    stream.set_write_timeout(Some(WRITE_TIMEOUT))?;
    let my_nonce = send_hello(stream, setup).await?;
    let theirs = read_frame(stream, &codec, &shared.counters).await?;
    let proof = read_frame(stream, &codec, &shared.counters).await?;
    let (Ok(Frame::Hello(theirs)), Ok(Frame::HelloProof(proof))) = (theirs, proof) else {
        shared.counters.handshake_failures.fetch_add(1, Ordering::Relaxed);
        return Ok(None);
    };
    if theirs.validator != peer
        || !hello_acceptable(setup, &theirs)
        || !verify_proof(setup, peer, &my_nonce, &proof)
    {
        shared.counters.handshake_failures.fetch_add(1, Ordering::Relaxed);
        return Ok(None);
    }
    Ok(Some(theirs))
}

/// A full node's link to validator `peer`: after the validator proves its identity, queued
/// frames go out one at a time; each `SyncRequest` waits for its `SyncResponse`, which goes to
/// the node loop like any consensus message from that validator.
async fn run_follower_link(
    shared: &Executor,
    peer: u32,
    mut stream: TcpStream,
    outbound: &flume::Receiver<Arc<Vec<u8>>>,
    inbound: &flume::Sender<(u32, ConsensusMessage)>,
) -> std::io::Result<()> {
    let codec = shared.codec();
    if within(HANDSHAKE_TIMEOUT, dial_handshake(shared, peer, &mut stream)).await?.is_none() {
        return Ok(());
    }
    loop {
        let Ok(frame) = outbound.recv_async().await else { return Ok(()) };
        stream.write_all(&frame).await?;
        stream.flush().await?;
        shared.counters.frames_out.fetch_add(1, Ordering::Relaxed);
        shared.counters.bytes_out.fetch_add(frame.len() as u64, Ordering::Relaxed);
        // The full node sends only sync requests and transaction batches.
        let is_request = codec.decode_header(&frame).is_ok_and(|header| header.kind == FrameKind::Consensus);
        if !is_request {
            continue;
        }
        match read_frame(&mut stream, &codec, &shared.counters).await? {
            Ok(Frame::Consensus(response @ ConsensusMessage::SyncResponse(_))) => {
                if inbound.send_async((peer, response)).await.is_err() {
                    return Ok(());
                }
            }
            // A validator that answers with anything else is not one to follow.
            _ => {
                shared.counters.malformed_frames.fetch_add(1, Ordering::Relaxed);
                return Ok(());
            }
        }
    }
}

async fn run_dialled(
    shared: &Executor,
    peer: u32,
    mut stream: TcpStream,
    outbound: &flume::Receiver<Arc<Vec<u8>>>,
) -> std::io::Result<()> {
    let setup = &shared.setup;
    let Some(theirs) = within(HANDSHAKE_TIMEOUT, dial_handshake(shared, peer, &mut stream)).await? else {
        return Ok(());
    };
    send_proof(&mut stream, setup, &theirs.nonce).await?;
    let mut buffer = Vec::new();
    loop {
        let Ok(first) = outbound.recv_async().await else { return Ok(()) };
        buffer.clear();
        buffer.extend_from_slice(&first);
        let mut frames = 1;
        while buffer.len() < (1 << 20) {
            match outbound.try_recv() {
                Ok(next) => {
                    buffer.extend_from_slice(&next);
                    frames += 1;
                }
                Err(_) => break,
            }
        }
        // A peer that stops reading fills its socket buffer; the write timeout then ends the
        // connection instead of letting this queue back up forever.
        stream.write_all(&buffer).await?;
        stream.flush().await?;
        shared.counters.frames_out.fetch_add(frames, Ordering::Relaxed);
        shared.counters.bytes_out.fetch_add(buffer.len() as u64, Ordering::Relaxed);
    }
}

/// Signatures verified per batch from an unauthenticated source before it is taken.
const SPOT_CHECKS: usize = 2;

/// Verifies [`SPOT_CHECKS`] signatures of `batch` picked at random (the sender cannot know
/// which): false if one fails. A client that signs its own transactions never fails it; a
/// flood of forged signatures is refused here for two verifications a batch instead of costing
/// the pipeline one per transaction, and its connection is closed.
fn spot_check(batch: &[Txn]) -> bool {
    use tessera_systems::kernels::sigverify::{VerifyItem, verify_single};
    if batch.is_empty() {
        return true;
    }
    let mut seed = [0u8; 8];
    let _ = getrandom::fill(&mut seed);
    let mut pick = u64::from_le_bytes(seed);
    (0..SPOT_CHECKS.min(batch.len())).all(|_| {
        pick = pick.rotate_left(29).wrapping_mul(0x9E37_79B9_7F4A_7C15) ^ 0x5851_F42D_4C95_7F2D;
        let txn = &batch[(pick % batch.len() as u64) as usize];
        verify_single(&VerifyItem::of_txn(txn))
    })
}

async fn accept_clients(shared: Rc<Executor>, listener: TcpListener, txns: flume::Sender<Vec<Txn>>) {
    loop {
        let Ok(stream) = listener.accept().await else {
            accept_failed().await;
            continue;
        };
        let shared = shared.clone();
        let txns = txns.clone();
        glommio::spawn_local(async move {
            let counters = &shared.counters;
            let max = shared.setup.ingress_connections_max;
            let Some(_slot) =
                Slot::take(&counters.ingress_connections_open, max, &counters.connections_refused)
            else {
                return;
            };
            let _ = serve_client(&shared, stream, txns).await;
        })
        .detach();
    }
}

/// Ingress: a stream of `Txns` frames. Anything else, or a frame that does not decode, closes
/// the connection (after counting it).
async fn serve_client(
    shared: &Executor,
    mut stream: TcpStream,
    txns: flume::Sender<Vec<Txn>>,
) -> std::io::Result<()> {
    let codec = shared.codec();
    stream.set_read_timeout(Some(shared.setup.ingress_idle_timeout))?;
    loop {
        // A client that leaves its connection idle, or trickles a frame, holds a slot at most
        // this long per frame.
        let frame = match within(
            shared.setup.ingress_idle_timeout,
            read_frame(&mut stream, &codec, &shared.counters),
        )
        .await
        {
            Err(error) if error.kind() == std::io::ErrorKind::TimedOut => {
                shared.counters.connections_timed_out.fetch_add(1, Ordering::Relaxed);
                return Ok(());
            }
            other => other?,
        };
        match frame {
            Ok(Frame::Txns(batch)) => {
                shared.counters.ingress_txns.fetch_add(batch.len() as u64, Ordering::Relaxed);
                if !spot_check(&batch) {
                    shared.counters.batches_refused.fetch_add(1, Ordering::Relaxed);
                    return Ok(());
                }
                if txns.send_async(batch).await.is_err() {
                    return Ok(());
                }
            }
            Ok(_) | Err(_) => {
                shared.counters.malformed_frames.fetch_add(1, Ordering::Relaxed);
                return Ok(());
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use std::sync::atomic::{AtomicU64, Ordering};

    use super::Slot;

    #[test]
    fn a_port_hands_out_at_most_its_slots_and_takes_them_back_on_drop() {
        let open = AtomicU64::new(0);
        let refused = AtomicU64::new(0);
        let held: Vec<Slot<'_>> =
            (0..3).map(|_| Slot::take(&open, 3, &refused).expect("a free slot")).collect();
        assert_eq!(open.load(Ordering::Relaxed), 3);
        assert!(Slot::take(&open, 3, &refused).is_none());
        assert!(Slot::take(&open, 3, &refused).is_none());
        assert_eq!(refused.load(Ordering::Relaxed), 2);
        // A refusal leaves the count where it was.
        assert_eq!(open.load(Ordering::Relaxed), 3);
        drop(held);
        assert_eq!(open.load(Ordering::Relaxed), 0);
        let again = Slot::take(&open, 3, &refused);
        assert!(again.is_some());
        assert_eq!(open.load(Ordering::Relaxed), 1);
        assert_eq!(refused.load(Ordering::Relaxed), 2);
    }
}
