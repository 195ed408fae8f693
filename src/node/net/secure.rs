//! The peer port's authenticated, encrypted channel: a Noise XX handshake
//! ([`NOISE_PARAMS`]), then each side proves its validator identity with an Ed25519 signature
//! over the Noise handshake hash, its role and both indexes ([`hello_signing_bytes`]).
//!
//! Bird's eye view: the three handshake messages travel as [`Frame::Hello`] frames in the
//! clear (chain id and protocol version beside each, and in the prologue). After the third,
//! both directions are a stream of *records*: a 2-byte big-endian length, then that many bytes
//! of ChaCha20-Poly1305 ciphertext (at most 65,535, tag included). The plaintext inside the
//! records is the ordinary frame stream, cut wherever a record ends, so a 4 MiB frame travels
//! as 65 records and the frame reader checks its header against the size limit before it
//! buffers the payload, exactly as on a plain stream. The first frame each way inside the
//! channel is a [`HelloProof`]: the dialer's first, then the acceptor's, so the acceptor signs
//! nothing until the dialer has proven itself (or said it is a full node).
//!
//! Why a signature over the handshake hash and not a signed nonce: the hash covers both
//! ephemeral keys, both static keys and the prologue, so no other connection has it; with the
//! role byte, a signature made as an acceptor is useless as a dialer's and the reverse. An
//! attacker that connects to A as B and to B as a full node gets from B a signature over the
//! B-leg's hash, which is not the A-leg's (`handshake_reflection_is_refused` in the tests).
//! The proofs travel after the handshake rather than in its payloads because the hash an
//! acceptor could sign inside the second message does not yet cover its own keys, and a
//! relay could forward it.

use std::io;
use std::pin::Pin;
use std::task::{Context, Poll};

use ed25519_dalek::{Signer, SigningKey, VerifyingKey};
use futures_lite::{AsyncRead, AsyncReadExt, AsyncWrite, AsyncWriteExt};
use tessera_components::constants::WIRE_HEADER_SIZE;
use tessera_components::wire::{
    Codec, Frame, FrameHeader, HELLO_NOISE_MAX, Hello, HelloProof, NOISE_PARAMS, PROTOCOL_VERSION,
    ROLE_ACCEPTOR, ROLE_DIALER, encode, hello_signing_bytes, noise_prologue,
};

/// The largest Noise message, so the largest record (tag included).
pub const RECORD_MAX: usize = 65535;
/// The AEAD tag each record carries.
const TAG: usize = 16;
/// The most plaintext one record carries.
pub const RECORD_PLAINTEXT_MAX: usize = RECORD_MAX - TAG;

/// The index a full node proves as: none (see [`super::FOLLOWER`]).
const FOLLOWER: u32 = super::FOLLOWER;

/// Most of a frame's declared size buffered before its bytes arrive.
const FRAME_PREALLOCATE_MAX: usize = 64 << 10;

/// A fresh static Noise key pair (X25519); a node makes one when it starts. Its identity is
/// its validator key, which signs the handshake hash that covers this key.
pub fn static_keypair() -> snow::Keypair {
    snow::Builder::new(params()).generate_keypair().expect("X25519 key generation from OS randomness")
}

pub(super) fn params() -> snow::params::NoiseParams {
    NOISE_PARAMS.parse().expect("a valid Noise protocol name")
}

/// Why a frame read from a stream was refused.
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
pub enum FrameFault {
    /// The header did not decode (or declared more than the limit): its payload was not read,
    /// so the stream is out of step and must be closed.
    #[error("bad frame header: {0}")]
    Header(String),
    /// The payload did not decode; the next frame starts after it.
    #[error("bad frame: {0}")]
    Payload(String),
}

impl FrameFault {
    /// True when nothing more can be read from the stream.
    pub fn ends_stream(&self) -> bool {
        matches!(self, FrameFault::Header(_))
    }
}

/// Reads one frame: header first (size checked before anything is buffered), then payload.
/// The outer error is the stream's; the inner one a frame that did not decode. Returns the
/// frame's size with it.
pub async fn read_frame<S: AsyncRead + Unpin>(
    stream: &mut S,
    codec: &Codec,
) -> io::Result<Result<(Frame, usize), FrameFault>> {
    read_frame_of(stream, codec, |_| true).await
}

/// [`read_frame`], for a stream that takes only the frames whose header `accepts` accepts (by
/// kind and size): another is refused at its header ([`FrameFault::Header`]), its payload
/// neither read nor decoded. Before, the ingress port read and decoded any kind before refusing it: a 4 MiB
/// frame of another kind declaring millions of signers became a 16 MiB array (found in review).
pub async fn read_frame_of<S: AsyncRead + Unpin>(
    stream: &mut S,
    codec: &Codec,
    accepts: impl Fn(FrameHeader) -> bool,
) -> io::Result<Result<(Frame, usize), FrameFault>> {
    let mut header = [0u8; WIRE_HEADER_SIZE];
    stream.read_exact(&mut header).await?;
    let size = match codec.decode_header(&header) {
        Ok(parsed) if !accepts(parsed) => {
            return Ok(Err(FrameFault::Header(format!(
                "{:?} frames of {} bytes are not taken here",
                parsed.kind, parsed.payload_size
            ))));
        }
        Ok(parsed) => parsed.frame_size(),
        Err(error) => return Ok(Err(FrameFault::Header(error.to_string()))),
    };
    // The buffer grows with the bytes that arrive, not with the size the header declares: a
    // sender that declares the largest frame and then trickles costs what it has sent.
    let mut bytes = Vec::with_capacity(size.min(FRAME_PREALLOCATE_MAX));
    bytes.extend_from_slice(&header);
    let payload = (size - WIRE_HEADER_SIZE) as u64;
    if (&mut *stream).take(payload).read_to_end(&mut bytes).await? as u64 != payload {
        return Err(io::ErrorKind::UnexpectedEof.into());
    }
    Ok(codec
        .decode(&bytes)
        .map(|frame| (frame, size))
        .map_err(|error| FrameFault::Payload(error.to_string())))
}

/// Writes one encoded frame and flushes.
pub async fn write_bytes<S: AsyncWrite + Unpin>(stream: &mut S, bytes: &[u8]) -> io::Result<()> {
    stream.write_all(bytes).await?;
    stream.flush().await
}

/// An established channel over `S`: [`AsyncRead`] yields the peer's decrypted frame stream,
/// [`AsyncWrite`] seals what is written into records (flush to send the last one).
pub struct Secure<S> {
    stream: S,
    transport: snow::TransportState,
    hash: [u8; 32],
    /// The record being read: its length prefix, then its ciphertext.
    prefix: [u8; 2],
    prefix_read: usize,
    record: Vec<u8>,
    record_read: usize,
    /// Decrypted bytes not yet handed out: `plain[plain_start..]`.
    plain: Vec<u8>,
    plain_start: usize,
    /// Sealed records not yet written: `sealed[sealed_start..]`.
    sealed: Vec<u8>,
    sealed_start: usize,
}

impl<S> std::fmt::Debug for Secure<S> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Secure").field("hash", &self.hash).finish_non_exhaustive()
    }
}

impl<S> Secure<S> {
    /// The Noise handshake hash both sides signed.
    pub fn handshake_hash(&self) -> &[u8; 32] {
        &self.hash
    }

    /// The stream underneath (to set timeouts, or to write bytes past the channel).
    pub fn get_mut(&mut self) -> &mut S {
        &mut self.stream
    }

    /// Seals `plaintext` into records appended to the output buffer.
    fn seal(&mut self, plaintext: &[u8]) -> io::Result<()> {
        for chunk in plaintext.chunks(RECORD_PLAINTEXT_MAX) {
            let at = self.sealed.len();
            self.sealed.resize(at + 2 + chunk.len() + TAG, 0);
            let written = self
                .transport
                .write_message(chunk, &mut self.sealed[at + 2..])
                .map_err(|error| io::Error::other(error.to_string()))?;
            debug_assert_eq!(written, chunk.len() + TAG);
            self.sealed[at..at + 2].copy_from_slice(&(written as u16).to_be_bytes());
        }
        Ok(())
    }
}

impl<S: AsyncWrite + Unpin> Secure<S> {
    fn poll_drain(&mut self, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        while self.sealed_start < self.sealed.len() {
            let pending = &self.sealed[self.sealed_start..];
            match Pin::new(&mut self.stream).poll_write(cx, pending) {
                Poll::Ready(Ok(0)) => return Poll::Ready(Err(io::ErrorKind::WriteZero.into())),
                Poll::Ready(Ok(written)) => self.sealed_start += written,
                Poll::Ready(Err(error)) => return Poll::Ready(Err(error)),
                Poll::Pending => return Poll::Pending,
            }
        }
        self.sealed.clear();
        self.sealed_start = 0;
        Poll::Ready(Ok(()))
    }
}

impl<S: AsyncWrite + Unpin> AsyncWrite for Secure<S> {
    fn poll_write(self: Pin<&mut Self>, cx: &mut Context<'_>, buf: &[u8]) -> Poll<io::Result<usize>> {
        let this = self.get_mut();
        // At most a megabyte of sealed records waits for the socket; past that, drain first.
        if this.sealed.len() - this.sealed_start >= 1 << 20 {
            match this.poll_drain(cx) {
                Poll::Ready(Ok(())) => {}
                other => return other.map(|result| result.map(|()| 0)),
            }
        }
        let take = buf.len().min(1 << 20);
        this.seal(&buf[..take])?;
        Poll::Ready(Ok(take))
    }

    fn poll_flush(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        let this = self.get_mut();
        match this.poll_drain(cx) {
            Poll::Ready(Ok(())) => Pin::new(&mut this.stream).poll_flush(cx),
            other => other,
        }
    }

    fn poll_close(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        let this = self.get_mut();
        match this.poll_drain(cx) {
            Poll::Ready(Ok(())) => Pin::new(&mut this.stream).poll_close(cx),
            other => other,
        }
    }
}

impl<S: AsyncRead + Unpin> AsyncRead for Secure<S> {
    fn poll_read(self: Pin<&mut Self>, cx: &mut Context<'_>, buf: &mut [u8]) -> Poll<io::Result<usize>> {
        let this = self.get_mut();
        while this.plain_start == this.plain.len() {
            // The length prefix, then the ciphertext it announces (never more than 64 KiB).
            while this.prefix_read < 2 {
                let read =
                    match Pin::new(&mut this.stream).poll_read(cx, &mut this.prefix[this.prefix_read..]) {
                        Poll::Ready(Ok(read)) => read,
                        other => return other,
                    };
                if read == 0 {
                    // A clean end between records is the end of the stream.
                    return Poll::Ready(if this.prefix_read == 0 {
                        Ok(0)
                    } else {
                        Err(io::ErrorKind::UnexpectedEof.into())
                    });
                }
                this.prefix_read += read;
                if this.prefix_read == 2 {
                    let length = usize::from(u16::from_be_bytes(this.prefix));
                    if length <= TAG {
                        return Poll::Ready(Err(io::Error::new(io::ErrorKind::InvalidData, "empty record")));
                    }
                    this.record.clear();
                    this.record.resize(length, 0);
                    this.record_read = 0;
                }
            }
            while this.record_read < this.record.len() {
                let read =
                    match Pin::new(&mut this.stream).poll_read(cx, &mut this.record[this.record_read..]) {
                        Poll::Ready(Ok(read)) => read,
                        other => return other,
                    };
                if read == 0 {
                    return Poll::Ready(Err(io::ErrorKind::UnexpectedEof.into()));
                }
                this.record_read += read;
            }
            this.prefix_read = 0;
            this.plain.clear();
            this.plain.resize(this.record.len() - TAG, 0);
            this.plain_start = 0;
            if this.transport.read_message(&this.record, &mut this.plain).is_err() {
                this.plain.clear();
                return Poll::Ready(Err(io::Error::new(
                    io::ErrorKind::InvalidData,
                    "record does not decrypt",
                )));
            }
        }
        let available = &this.plain[this.plain_start..];
        let take = available.len().min(buf.len());
        buf[..take].copy_from_slice(&available[..take]);
        this.plain_start += take;
        Poll::Ready(Ok(take))
    }
}

/// Why a handshake did not complete (the stream's own errors are reported apart).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Refusal {
    /// Not a handshake frame, or another chain or protocol version.
    Greeting,
    /// The Noise handshake failed (a message that does not decrypt or parse).
    Noise,
    /// The identity proof is missing, names the wrong role or indexes, or does not verify.
    Proof,
}

/// Who this side is in a handshake.
#[derive(Clone, Copy, Debug)]
pub struct Local<'a> {
    /// Chain id.
    pub chain_id: u32,
    /// This side's validator index, or [`FOLLOWER`].
    pub me: u32,
    /// This side's validator key (unused by a full node).
    pub key: &'a SigningKey,
    /// This side's static Noise private key.
    pub noise_key: &'a [u8],
    /// Validator public keys by index.
    pub validators: &'a [[u8; 32]],
}

pub(super) async fn send_noise<S: AsyncWrite + Unpin>(
    stream: &mut S,
    chain_id: u32,
    state: &mut snow::HandshakeState,
) -> io::Result<Result<(), Refusal>> {
    let mut message = [0u8; HELLO_NOISE_MAX];
    let Ok(length) = state.write_message(&[], &mut message) else { return Ok(Err(Refusal::Noise)) };
    let hello = Hello { chain_id, protocol_version: PROTOCOL_VERSION, noise: message[..length].to_vec() };
    write_bytes(stream, &encode(&Frame::Hello(hello))).await?;
    Ok(Ok(()))
}

pub(super) async fn read_noise<S: AsyncRead + Unpin>(
    stream: &mut S,
    chain_id: u32,
    state: &mut snow::HandshakeState,
) -> io::Result<Result<(), Refusal>> {
    // Nothing but a handshake message fits: the codec refuses any larger frame at its header.
    let codec = Codec::new(WIRE_HEADER_SIZE + 8 + HELLO_NOISE_MAX);
    let Ok((Frame::Hello(hello), _)) = read_frame(stream, &codec).await? else {
        return Ok(Err(Refusal::Greeting));
    };
    if hello.chain_id != chain_id || hello.protocol_version != PROTOCOL_VERSION {
        return Ok(Err(Refusal::Greeting));
    }
    let mut payload = [0u8; HELLO_NOISE_MAX];
    // Every payload is empty; one that is not is refused.
    match state.read_message(&hello.noise, &mut payload) {
        Ok(0) => Ok(Ok(())),
        _ => Ok(Err(Refusal::Noise)),
    }
}

fn established<S>(stream: S, state: snow::HandshakeState) -> Result<Secure<S>, Refusal> {
    let hash: [u8; 32] = state.get_handshake_hash().try_into().map_err(|_| Refusal::Noise)?;
    let transport = state.into_transport_mode().map_err(|_| Refusal::Noise)?;
    Ok(Secure {
        stream,
        transport,
        hash,
        prefix: [0; 2],
        prefix_read: 0,
        record: Vec::new(),
        record_read: 0,
        plain: Vec::new(),
        plain_start: 0,
        sealed: Vec::new(),
        sealed_start: 0,
    })
}

/// The Noise XX handshake as the dialer (three messages: ours, theirs, ours). No identity is
/// proven yet: see [`dial`].
pub async fn noise_dial<S: AsyncRead + AsyncWrite + Unpin>(
    mut stream: S,
    chain_id: u32,
    noise_key: &[u8],
) -> io::Result<Result<Secure<S>, Refusal>> {
    let prologue = noise_prologue(chain_id);
    let built = snow::Builder::new(params())
        .local_private_key(noise_key)
        .and_then(|builder| builder.prologue(&prologue))
        .and_then(|builder| builder.build_initiator());
    let Ok(mut state) = built else { return Ok(Err(Refusal::Noise)) };
    if let Err(refusal) = send_noise(&mut stream, chain_id, &mut state).await? {
        return Ok(Err(refusal));
    }
    if let Err(refusal) = read_noise(&mut stream, chain_id, &mut state).await? {
        return Ok(Err(refusal));
    }
    if let Err(refusal) = send_noise(&mut stream, chain_id, &mut state).await? {
        return Ok(Err(refusal));
    }
    Ok(established(stream, state))
}

/// The Noise XX handshake as the acceptor. No identity is proven yet: see [`accept`].
///
/// `worked` is set once this side starts its reply (message 2): a handshake that fails after
/// that, however it fails, cost this side three X25519 operations. (Building the responder
/// before anything is read derives the static public key, one more, for every connection:
/// that one is bounded by the connection caps, not charged.)
pub async fn noise_accept<S: AsyncRead + AsyncWrite + Unpin>(
    mut stream: S,
    chain_id: u32,
    noise_key: &[u8],
    worked: &std::cell::Cell<bool>,
) -> io::Result<Result<Secure<S>, Refusal>> {
    let prologue = noise_prologue(chain_id);
    let built = snow::Builder::new(params())
        .local_private_key(noise_key)
        .and_then(|builder| builder.prologue(&prologue))
        .and_then(|builder| builder.build_responder());
    let Ok(mut state) = built else { return Ok(Err(Refusal::Noise)) };
    if let Err(refusal) = read_noise(&mut stream, chain_id, &mut state).await? {
        return Ok(Err(refusal));
    }
    worked.set(true);
    if let Err(refusal) = send_noise(&mut stream, chain_id, &mut state).await? {
        return Ok(Err(refusal));
    }
    if let Err(refusal) = read_noise(&mut stream, chain_id, &mut state).await? {
        return Ok(Err(refusal));
    }
    Ok(established(stream, state))
}

/// This side's proof on `channel`: signed as validator `local.me`, or a full node's unsigned
/// one.
pub fn proof<S>(channel: &Secure<S>, local: &Local<'_>, role: u8, peer: u32) -> HelloProof {
    let signature = if local.me == FOLLOWER {
        [0; 64]
    } else {
        local
            .key
            .sign(&hello_signing_bytes(local.chain_id, channel.handshake_hash(), role, local.me, peer))
            .to_bytes()
    };
    HelloProof { role, validator: local.me, peer, signature }
}

/// True when `proof` is validator `proof.validator`'s signature, as `role`, over `hash`
/// naming `peer` as the other end.
pub fn verify(validators: &[[u8; 32]], chain_id: u32, hash: &[u8; 32], role: u8, proof: &HelloProof) -> bool {
    let Some(key) = validators.get(proof.validator as usize) else { return false };
    let Ok(key) = VerifyingKey::from_bytes(key) else { return false };
    let message = hello_signing_bytes(chain_id, hash, role, proof.validator, proof.peer);
    proof.role == role
        && key.verify_strict(&message, &ed25519_dalek::Signature::from_bytes(&proof.signature)).is_ok()
}

/// Sends `proof` as the channel's next frame.
pub async fn send_proof<S: AsyncWrite + Unpin>(channel: &mut Secure<S>, proof: HelloProof) -> io::Result<()> {
    write_bytes(channel, &encode(&Frame::HelloProof(proof))).await
}

/// Reads the channel's next frame as a proof.
pub async fn read_proof<S: AsyncRead + Unpin>(channel: &mut Secure<S>) -> io::Result<Option<HelloProof>> {
    let codec = Codec::new(WIRE_HEADER_SIZE + 128);
    Ok(match read_frame(channel, &codec).await? {
        Ok((Frame::HelloProof(proof), _)) => Some(proof),
        _ => None,
    })
}

/// The whole dialling handshake: Noise, our proof, then the acceptor's, which must be
/// validator `peer`'s.
pub async fn dial<S: AsyncRead + AsyncWrite + Unpin>(
    stream: S,
    local: &Local<'_>,
    peer: u32,
) -> io::Result<Result<Secure<S>, Refusal>> {
    let mut channel = match noise_dial(stream, local.chain_id, local.noise_key).await? {
        Ok(channel) => channel,
        Err(refusal) => return Ok(Err(refusal)),
    };
    let mine = proof(&channel, local, ROLE_DIALER, peer);
    send_proof(&mut channel, mine).await?;
    let Some(theirs) = read_proof(&mut channel).await? else { return Ok(Err(Refusal::Proof)) };
    let hash = *channel.handshake_hash();
    if theirs.validator != peer
        || theirs.peer != local.me
        || !verify(local.validators, local.chain_id, &hash, ROLE_ACCEPTOR, &theirs)
    {
        return Ok(Err(Refusal::Proof));
    }
    Ok(Ok(channel))
}

/// The whole accepting handshake: Noise, then the dialer's proof (a validator's, verified, or
/// a full node's, which proves nothing), then ours. Returns the channel and the dialer's index
/// ([`FOLLOWER`] for a full node). A full node accepts nobody: it has no key to prove with.
pub async fn accept<S: AsyncRead + AsyncWrite + Unpin>(
    stream: S,
    local: &Local<'_>,
    worked: &std::cell::Cell<bool>,
) -> io::Result<Result<(Secure<S>, u32), Refusal>> {
    let mut channel = match noise_accept(stream, local.chain_id, local.noise_key, worked).await? {
        Ok(channel) => channel,
        Err(refusal) => return Ok(Err(refusal)),
    };
    let Some(theirs) = read_proof(&mut channel).await? else { return Ok(Err(Refusal::Proof)) };
    let hash = *channel.handshake_hash();
    let addressed = theirs.peer == local.me && local.me != FOLLOWER && theirs.role == ROLE_DIALER;
    let follower = theirs.validator == FOLLOWER && theirs.signature == [0; 64];
    let validator = theirs.validator != local.me
        && theirs.validator != FOLLOWER
        && verify(local.validators, local.chain_id, &hash, ROLE_DIALER, &theirs);
    if !addressed || !(follower || validator) {
        return Ok(Err(Refusal::Proof));
    }
    let mine = proof(&channel, local, ROLE_ACCEPTOR, theirs.validator);
    send_proof(&mut channel, mine).await?;
    Ok(Ok((channel, theirs.validator)))
}

#[cfg(test)]
mod tests {
    use std::time::Instant;

    use super::{RECORD_MAX, RECORD_PLAINTEXT_MAX, TAG, noise_prologue, params, static_keypair};

    /// Two transport states that completed an XX handshake in memory.
    fn pair() -> (snow::TransportState, snow::TransportState) {
        let prologue = noise_prologue(1);
        let (dialer_key, acceptor_key) = (static_keypair(), static_keypair());
        let mut dialer = snow::Builder::new(params())
            .local_private_key(&dialer_key.private)
            .and_then(|b| b.prologue(&prologue))
            .and_then(|b| b.build_initiator())
            .expect("initiator");
        let mut acceptor = snow::Builder::new(params())
            .local_private_key(&acceptor_key.private)
            .and_then(|b| b.prologue(&prologue))
            .and_then(|b| b.build_responder())
            .expect("responder");
        let (mut message, mut payload) = ([0u8; 256], [0u8; 256]);
        for turn in 0..3 {
            let (from, to) =
                if turn % 2 == 0 { (&mut dialer, &mut acceptor) } else { (&mut acceptor, &mut dialer) };
            let length = from.write_message(&[], &mut message).expect("write");
            to.read_message(&message[..length], &mut payload).expect("read");
        }
        assert_eq!(dialer.get_handshake_hash(), acceptor.get_handshake_hash());
        (dialer.into_transport_mode().expect("transport"), acceptor.into_transport_mode().expect("transport"))
    }

    /// What the channel costs: 16 MiB sealed and opened in 64 KiB records. Prints the rate; a
    /// shared machine's speed is not asserted.
    #[test]
    fn encryption_cost_per_megabyte() {
        let (mut sender, mut receiver) = pair();
        let plaintext = vec![0x5au8; RECORD_PLAINTEXT_MAX];
        let (mut record, mut opened) = (vec![0u8; RECORD_MAX], vec![0u8; RECORD_MAX]);
        let total: usize = 16 << 20;
        let started = Instant::now();
        let mut done = 0;
        while done < total {
            let chunk = &plaintext[..RECORD_PLAINTEXT_MAX.min(total - done)];
            let sealed = sender.write_message(chunk, &mut record).expect("seal");
            assert_eq!(sealed, chunk.len() + TAG);
            let length = receiver.read_message(&record[..sealed], &mut opened).expect("open");
            assert_eq!(&opened[..length], chunk);
            done += chunk.len();
        }
        let seconds = started.elapsed().as_secs_f64();
        let megabytes = total as f64 / (1 << 20) as f64;
        println!(
            "ChaCha20-Poly1305 seal+open: {megabytes} MiB in {:.1} ms, {:.0} MiB/s, {:.2} ms per MiB",
            seconds * 1e3,
            megabytes / seconds,
            seconds * 1e3 / megabytes
        );
    }
}
