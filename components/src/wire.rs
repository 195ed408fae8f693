//! The wire format: a fixed 12-byte header, then a postcard payload.
//!
//! ```text
//! offset size field
//! 0      4    magic     b"TSRA"
//! 4      1    version   WIRE_VERSION (1)
//! 5      1    kind      FrameKind
//! 6      2    reserved  zero
//! 8      4    length    payload bytes, u32 little-endian
//! 12     n    payload   postcard encoding of the kind's type
//! ```
//!
//! Decoding checks the header and the declared length against the configured maximum before
//! it allocates anything, decodes the payload, refuses trailing bytes, and finally refuses any
//! payload that is not the canonical encoding of the value it decoded to (postcard accepts
//! overlong varints; we do not), so `encode(decode(b)?) == b` for every accepted `b`.
//! `docs/wire.md` describes every byte.

use serde::{Deserialize, Serialize};
use thiserror::Error;

use crate::block::{Block, QuorumCertificate, Vote};
use crate::consensus::ConsensusMessage;
use crate::constants::{
    FRAME_SIZE_DEFAULT, FRAME_SIZE_LIMIT, TXN_SIZE, WIRE_HEADER_SIZE, WIRE_MAGIC, WIRE_VERSION,
};
use crate::txn::{Txn, txn_bytes};

/// The message kinds a frame can carry.
#[derive(Clone, Copy, PartialEq, Eq, Debug)]
#[repr(u8)]
pub enum FrameKind {
    /// A batch of signed transactions.
    Txns = 1,
    /// A block (header and transactions).
    Block = 2,
    /// A consensus vote.
    Vote = 3,
    /// A quorum certificate.
    Certificate = 4,
    /// A consensus protocol message (proposal, vote, view change, sync).
    Consensus = 5,
    /// Handshake: one Noise XX handshake message.
    Hello = 6,
    /// Handshake, inside the encrypted channel: who I am, signed over the handshake hash.
    HelloProof = 7,
}

impl FrameKind {
    /// Parses the kind byte.
    pub fn from_byte(byte: u8) -> Option<FrameKind> {
        match byte {
            1 => Some(FrameKind::Txns),
            2 => Some(FrameKind::Block),
            3 => Some(FrameKind::Vote),
            4 => Some(FrameKind::Certificate),
            5 => Some(FrameKind::Consensus),
            6 => Some(FrameKind::Hello),
            7 => Some(FrameKind::HelloProof),
            _ => None,
        }
    }
}

/// A decoded frame.
#[derive(Clone, PartialEq, Eq, Debug)]
pub enum Frame {
    /// A batch of signed transactions (client ingress and gossip).
    Txns(Vec<Txn>),
    /// A block.
    Block(Block),
    /// A vote.
    Vote(Vote),
    /// A quorum certificate.
    Certificate(QuorumCertificate),
    /// A consensus protocol message.
    Consensus(ConsensusMessage),
    /// Handshake greeting.
    Hello(Hello),
    /// Handshake proof.
    HelloProof(HelloProof),
}

/// One message of the peer port's Noise XX handshake (three of them: dialer, acceptor,
/// dialer), with the chain and protocol version in the clear so a peer on another chain or
/// version is refused before any key agreement. `docs/wire.md` gives the handshake byte by
/// byte.
#[derive(Clone, PartialEq, Eq, Debug, Serialize, Deserialize)]
pub struct Hello {
    /// Chain id; a peer on another chain is refused. Also in the Noise prologue.
    pub chain_id: u32,
    /// Peer protocol version; a peer speaking another is refused. Also in the prologue.
    pub protocol_version: u8,
    /// The Noise handshake message, at most [`HELLO_NOISE_MAX`] bytes.
    pub noise: Vec<u8>,
}

/// The first frame each side sends inside the encrypted channel once the Noise handshake is
/// done: who the sender is, whom it believes it is talking to, in which role, and (for a
/// validator) an Ed25519 signature over [`hello_signing_bytes`], which covers the Noise
/// handshake hash, so it is valid on this one connection, in this one direction, only.
#[derive(Clone, Copy, PartialEq, Eq, Debug, Serialize, Deserialize)]
pub struct HelloProof {
    /// [`ROLE_DIALER`] or [`ROLE_ACCEPTOR`].
    pub role: u8,
    /// The sender's validator index, or `u32::MAX` for a full node (which signs nothing).
    pub validator: u32,
    /// The index the sender believes is on the other end (`u32::MAX` for a full node).
    pub peer: u32,
    /// Ed25519 signature over [`hello_signing_bytes`]; all zero from a full node.
    #[serde(with = "serde_big_array::BigArray")]
    pub signature: [u8; 64],
}

/// Peer protocol version spoken by this build (2: Noise XX with transcript-bound proofs; 3:
/// consensus signatures bound to the chain, `ChainTag`). A peer of another version cannot
/// complete the handshake: a version 2 node counts every version 3 vote as a forgery and bans
/// its sender, so the two must not meet.
pub const PROTOCOL_VERSION: u8 = 3;

/// Longest Noise handshake message a [`Hello`] may carry (XX needs 32, 96 and 64 bytes).
pub const HELLO_NOISE_MAX: usize = 128;

/// The [`HelloProof::role`] of the side that opened the connection.
pub const ROLE_DIALER: u8 = 1;

/// The [`HelloProof::role`] of the side that accepted it.
pub const ROLE_ACCEPTOR: u8 = 2;

/// The Noise protocol the peer port speaks.
pub const NOISE_PARAMS: &str = "Noise_XX_25519_ChaChaPoly_BLAKE2s";

/// The Noise prologue: a domain tag, the chain id and the protocol version, so a handshake
/// between different chains or versions cannot complete.
pub fn noise_prologue(chain_id: u32) -> [u8; 21] {
    let mut out = [0u8; 21];
    out[..16].copy_from_slice(b"tessera/noise/v2");
    out[16..20].copy_from_slice(&chain_id.to_le_bytes());
    out[20] = PROTOCOL_VERSION;
    out
}

/// What a handshake signature covers: a domain tag, the chain id, the protocol version, the
/// Noise handshake hash (both ephemeral keys, both static keys and the prologue), the signer's
/// role, its index and the index it believes is on the other end. 62 bytes, so it can be
/// mistaken for neither a vote (65) nor a transaction body (96).
pub fn hello_signing_bytes(
    chain_id: u32,
    handshake_hash: &[u8; 32],
    role: u8,
    signer: u32,
    peer: u32,
) -> [u8; 62] {
    let mut out = [0u8; 62];
    out[..16].copy_from_slice(b"tessera/helo/v2\0");
    out[16..20].copy_from_slice(&chain_id.to_le_bytes());
    out[20] = PROTOCOL_VERSION;
    out[21..53].copy_from_slice(handshake_hash);
    out[53] = role;
    out[54..58].copy_from_slice(&signer.to_le_bytes());
    out[58..62].copy_from_slice(&peer.to_le_bytes());
    out
}

impl Frame {
    /// The kind byte this frame is sent with.
    pub fn kind(&self) -> FrameKind {
        match self {
            Frame::Txns(_) => FrameKind::Txns,
            Frame::Block(_) => FrameKind::Block,
            Frame::Vote(_) => FrameKind::Vote,
            Frame::Certificate(_) => FrameKind::Certificate,
            Frame::Consensus(_) => FrameKind::Consensus,
            Frame::Hello(_) => FrameKind::Hello,
            Frame::HelloProof(_) => FrameKind::HelloProof,
        }
    }
}

/// A checked frame header.
#[derive(Clone, Copy, PartialEq, Eq, Debug)]
pub struct FrameHeader {
    /// Payload kind.
    pub kind: FrameKind,
    /// Payload length in bytes.
    pub payload_size: usize,
}

impl FrameHeader {
    /// Total frame size (header plus payload).
    pub fn frame_size(&self) -> usize {
        WIRE_HEADER_SIZE + self.payload_size
    }
}

/// Why bytes did not decode to a frame.
#[derive(Debug, Error, PartialEq, Eq)]
pub enum DecodeError {
    /// Fewer bytes than the header (or the declared length) needs.
    #[error("truncated frame: need {needed} bytes, have {available}")]
    Truncated {
        /// Bytes required.
        needed: usize,
        /// Bytes present.
        available: usize,
    },
    /// The first four bytes are not the magic.
    #[error("bad magic {found:02x?}")]
    BadMagic {
        /// What was there instead.
        found: [u8; 4],
    },
    /// A protocol version this build does not speak.
    #[error("unsupported wire version {found}")]
    UnsupportedVersion {
        /// Version byte received.
        found: u8,
    },
    /// A kind byte that names no message.
    #[error("unknown frame kind {found}")]
    UnknownKind {
        /// Kind byte received.
        found: u8,
    },
    /// The reserved header bytes are not zero.
    #[error("reserved header bytes are {found:#06x}, must be zero")]
    NonzeroReserved {
        /// Value received.
        found: u16,
    },
    /// The frame would exceed the configured maximum.
    #[error("frame of {size} bytes exceeds the maximum of {max}")]
    TooLarge {
        /// Declared frame size (header plus payload).
        size: usize,
        /// Configured maximum.
        max: usize,
    },
    /// Bytes follow the declared payload.
    #[error("{extra} bytes after the declared payload")]
    TrailingBytes {
        /// How many.
        extra: usize,
    },
    /// The payload is not a valid postcard encoding of the kind's type.
    #[error("{kind:?} payload does not decode: {reason}")]
    Payload {
        /// Frame kind.
        kind: FrameKind,
        /// postcard's reason.
        reason: postcard::Error,
    },
    /// The payload decoded but left bytes unread.
    #[error("{kind:?} payload has {extra} unread bytes")]
    PayloadTrailing {
        /// Frame kind.
        kind: FrameKind,
        /// Unread bytes.
        extra: usize,
    },
    /// The payload decoded, but is not the canonical encoding of its value (an overlong varint,
    /// for example), so two byte strings would name one message.
    #[error("{kind:?} payload is not canonically encoded")]
    NonCanonical {
        /// Frame kind.
        kind: FrameKind,
    },
}

/// Encodes and decodes frames under a configured maximum frame size.
#[derive(Clone, Copy, Debug)]
pub struct Codec {
    max_frame_size: usize,
}

impl Default for Codec {
    fn default() -> Self {
        Codec { max_frame_size: FRAME_SIZE_DEFAULT }
    }
}

impl Codec {
    /// A codec refusing frames above `max_frame_size` bytes (clamped to
    /// [`FRAME_SIZE_LIMIT`], and to at least a header).
    pub fn new(max_frame_size: usize) -> Codec {
        Codec { max_frame_size: max_frame_size.clamp(WIRE_HEADER_SIZE, FRAME_SIZE_LIMIT) }
    }

    /// The configured maximum frame size.
    pub fn max_frame_size(&self) -> usize {
        self.max_frame_size
    }

    /// Checks the 12-byte header at the front of `bytes`: magic, version, kind, reserved bytes
    /// and the declared size against the maximum. A stream reader calls this first, then reads
    /// exactly `frame_size()` bytes, so an oversized frame is refused before it is buffered.
    ///
    /// # Errors
    /// Any header-level [`DecodeError`].
    pub fn decode_header(&self, bytes: &[u8]) -> Result<FrameHeader, DecodeError> {
        let Some(header) = bytes.first_chunk::<WIRE_HEADER_SIZE>() else {
            return Err(DecodeError::Truncated { needed: WIRE_HEADER_SIZE, available: bytes.len() });
        };
        let magic = [header[0], header[1], header[2], header[3]];
        if magic != WIRE_MAGIC {
            return Err(DecodeError::BadMagic { found: magic });
        }
        if header[4] != WIRE_VERSION {
            return Err(DecodeError::UnsupportedVersion { found: header[4] });
        }
        let Some(kind) = FrameKind::from_byte(header[5]) else {
            return Err(DecodeError::UnknownKind { found: header[5] });
        };
        let reserved = u16::from_le_bytes([header[6], header[7]]);
        if reserved != 0 {
            return Err(DecodeError::NonzeroReserved { found: reserved });
        }
        let payload_size = u32::from_le_bytes([header[8], header[9], header[10], header[11]]) as usize;
        // usize is at least 32 bits on every supported target, so this cannot overflow; the
        // checked form keeps that an explicit claim rather than an assumption.
        let size = payload_size
            .checked_add(WIRE_HEADER_SIZE)
            .ok_or(DecodeError::TooLarge { size: usize::MAX, max: self.max_frame_size })?;
        if size > self.max_frame_size {
            return Err(DecodeError::TooLarge { size, max: self.max_frame_size });
        }
        Ok(FrameHeader { kind, payload_size })
    }

    /// Decodes exactly one frame occupying all of `bytes`.
    ///
    /// # Errors
    /// A [`DecodeError`] naming the first problem; nothing is allocated past the checked
    /// declared size.
    pub fn decode(&self, bytes: &[u8]) -> Result<Frame, DecodeError> {
        let header = self.decode_header(bytes)?;
        let size = header.frame_size();
        if bytes.len() < size {
            return Err(DecodeError::Truncated { needed: size, available: bytes.len() });
        }
        if bytes.len() > size {
            return Err(DecodeError::TrailingBytes { extra: bytes.len() - size });
        }
        let payload = &bytes[WIRE_HEADER_SIZE..];
        let frame = match header.kind {
            FrameKind::Txns => Frame::Txns(decode_payload::<TxnBatch>(header.kind, payload)?.0),
            FrameKind::Block => Frame::Block(decode_payload(header.kind, payload)?),
            FrameKind::Vote => Frame::Vote(decode_payload(header.kind, payload)?),
            FrameKind::Certificate => Frame::Certificate(decode_payload(header.kind, payload)?),
            FrameKind::Consensus => Frame::Consensus(decode_payload(header.kind, payload)?),
            FrameKind::Hello => Frame::Hello(decode_payload(header.kind, payload)?),
            FrameKind::HelloProof => Frame::HelloProof(decode_payload(header.kind, payload)?),
        };
        // Canonical-form check: the value must re-encode to the very bytes received.
        let canonical = encode_payload(&frame);
        if canonical != payload {
            return Err(DecodeError::NonCanonical { kind: header.kind });
        }
        Ok(frame)
    }
}

/// Decodes one frame with the default maximum frame size ([`FRAME_SIZE_DEFAULT`]).
///
/// # Errors
/// See [`Codec::decode`].
pub fn decode(bytes: &[u8]) -> Result<Frame, DecodeError> {
    Codec::default().decode(bytes)
}

/// Encodes a frame: header then payload.
pub fn encode(frame: &Frame) -> Vec<u8> {
    let payload = encode_payload(frame);
    let mut out = Vec::with_capacity(WIRE_HEADER_SIZE + payload.len());
    out.extend_from_slice(&WIRE_MAGIC);
    out.push(WIRE_VERSION);
    out.push(frame.kind() as u8);
    out.extend_from_slice(&0u16.to_le_bytes());
    let length = u32::try_from(payload.len()).expect("payload fits in u32: frames are capped at 16 MiB");
    out.extend_from_slice(&length.to_le_bytes());
    out.extend_from_slice(&payload);
    out
}

/// The size of `Frame::Consensus(message)` as [`encode`] would write it, header included,
/// computed without a copy of the message or a buffer.
pub fn consensus_frame_size(message: &ConsensusMessage) -> usize {
    let payload = postcard::serialize_with_flavor(message, postcard::ser_flavors::Size::default())
        .expect("postcard sizing is infallible for wire types");
    WIRE_HEADER_SIZE + payload
}

/// The size of `Frame::Txns(txns)` as [`encode`] would write it, header included, computed
/// without a copy of the batch or a buffer.
pub fn txns_frame_size(txns: &[Txn]) -> usize {
    // One byte string: its length as a LEB128 varint, then the bytes.
    let bytes = txns.len() * TXN_SIZE;
    let mut prefix = 1;
    let mut rest = bytes >> 7;
    while rest > 0 {
        prefix += 1;
        rest >>= 7;
    }
    WIRE_HEADER_SIZE + prefix + bytes
}

fn encode_payload(frame: &Frame) -> Vec<u8> {
    // Serialising into a Vec cannot fail for these types: no maps with non-string keys, no
    // unsized sequences.
    let result = match frame {
        Frame::Txns(txns) => postcard::to_allocvec(&TxnBatchRef(txns)),
        Frame::Block(block) => postcard::to_allocvec(block),
        Frame::Vote(vote) => postcard::to_allocvec(vote),
        Frame::Certificate(qc) => postcard::to_allocvec(qc),
        Frame::Consensus(message) => postcard::to_allocvec(message),
        Frame::Hello(hello) => postcard::to_allocvec(hello),
        Frame::HelloProof(proof) => postcard::to_allocvec(proof),
    };
    result.expect("postcard serialisation into a Vec is infallible for wire types")
}

fn decode_payload<'a, T: Deserialize<'a>>(kind: FrameKind, payload: &'a [u8]) -> Result<T, DecodeError> {
    let (value, rest) =
        postcard::take_from_bytes::<T>(payload).map_err(|reason| DecodeError::Payload { kind, reason })?;
    if !rest.is_empty() {
        return Err(DecodeError::PayloadTrailing { kind, extra: rest.len() });
    }
    Ok(value)
}

#[derive(Deserialize)]
struct TxnBatch(#[serde(with = "txn_bytes")] Vec<Txn>);

#[derive(Serialize)]
struct TxnBatchRef<'a>(#[serde(with = "txn_bytes")] &'a Vec<Txn>);

#[cfg(test)]
mod tests {
    use proptest::prelude::*;

    use super::*;
    use crate::block::{BlockHeader, Signature, VoteKind};
    use crate::hash::Hash;
    use crate::txn::{TxnBody, TxnSignature};

    /// The sizes the simulator charges for without encoding match the encoder's, across every
    /// length-prefix width a batch can have.
    #[test]
    fn a_txns_frame_size_matches_its_encoding() {
        let txn = sample_txn();
        for count in [0, 1, 102, 103, 13_107, 13_108, 20_000] {
            let txns = vec![txn; count];
            let encoded = encode(&Frame::Txns(txns.clone())).len();
            assert_eq!(txns_frame_size(&txns), encoded, "{count} transactions");
        }
    }

    /// The handshake's prologue and signed bytes are what two nodes must agree on byte for
    /// byte: a change is a protocol change, and must fail here first.
    #[test]
    fn handshake_bytes_have_their_documented_layout() {
        let mut prologue = b"tessera/noise/v2".to_vec();
        prologue.extend_from_slice(&0x0102_0304u32.to_le_bytes());
        prologue.push(PROTOCOL_VERSION);
        assert_eq!(noise_prologue(0x0102_0304).as_slice(), prologue.as_slice());
        assert_ne!(noise_prologue(1), noise_prologue(2));

        let hash = [0xab; 32];
        let mut signed = b"tessera/helo/v2\0".to_vec();
        signed.extend_from_slice(&7u32.to_le_bytes());
        signed.push(PROTOCOL_VERSION);
        signed.extend_from_slice(&hash);
        signed.push(ROLE_ACCEPTOR);
        signed.extend_from_slice(&3u32.to_le_bytes());
        signed.extend_from_slice(&9u32.to_le_bytes());
        assert_eq!(hello_signing_bytes(7, &hash, ROLE_ACCEPTOR, 3, 9).as_slice(), signed.as_slice());
        // Each input moves the bytes: nothing signed for one peer, role or session serves another.
        let base = hello_signing_bytes(7, &hash, ROLE_ACCEPTOR, 3, 9);
        for other in [
            hello_signing_bytes(8, &hash, ROLE_ACCEPTOR, 3, 9),
            hello_signing_bytes(7, &[0xac; 32], ROLE_ACCEPTOR, 3, 9),
            hello_signing_bytes(7, &hash, ROLE_DIALER, 3, 9),
            hello_signing_bytes(7, &hash, ROLE_ACCEPTOR, 4, 9),
            hello_signing_bytes(7, &hash, ROLE_ACCEPTOR, 3, 10),
        ] {
            assert_ne!(other, base);
        }
    }

    /// A frame of exactly the maximum size is accepted, one byte more is refused.
    #[test]
    fn the_frame_size_limit_is_inclusive() {
        let codec = Codec::new(WIRE_HEADER_SIZE + 100);
        let header = |payload: u32| {
            let mut bytes = WIRE_MAGIC.to_vec();
            bytes.extend_from_slice(&[WIRE_VERSION, FrameKind::Txns as u8, 0, 0]);
            bytes.extend_from_slice(&payload.to_le_bytes());
            bytes
        };
        assert_eq!(codec.decode_header(&header(100)).map(|h| h.payload_size), Ok(100));
        assert_eq!(
            codec.decode_header(&header(101)),
            Err(DecodeError::TooLarge { size: WIRE_HEADER_SIZE + 101, max: WIRE_HEADER_SIZE + 100 })
        );
    }

    fn bytes32() -> impl Strategy<Value = [u8; 32]> {
        prop::array::uniform32(any::<u8>())
    }

    fn sig64() -> impl Strategy<Value = [u8; 64]> {
        (bytes32(), bytes32()).prop_map(|(a, b)| {
            let mut out = [0; 64];
            out[..32].copy_from_slice(&a);
            out[32..].copy_from_slice(&b);
            out
        })
    }

    fn txn() -> impl Strategy<Value = Txn> {
        (any::<u32>(), any::<u32>(), bytes32(), bytes32(), any::<u64>(), any::<u64>(), any::<u64>(), sig64())
            .prop_map(|(chain_id, reserved, sender, recipient, amount, fee, nonce, signature)| Txn {
                body: TxnBody { chain_id, reserved, sender, recipient, amount, fee, nonce },
                signature: TxnSignature(signature),
            })
    }

    fn header() -> impl Strategy<Value = BlockHeader> {
        (any::<[u64; 3]>(), any::<u32>(), any::<u32>(), bytes32(), bytes32(), bytes32()).prop_map(
            |([height, view, timestamp_ms], proposer, txn_count, parent, txn_root, state_root)| BlockHeader {
                height,
                view,
                timestamp_ms,
                proposer,
                txn_count,
                parent: Hash(parent),
                txn_root: Hash(txn_root),
                state_root: Hash(state_root),
            },
        )
    }

    fn kind() -> impl Strategy<Value = VoteKind> {
        prop_oneof![Just(VoteKind::Prepare), Just(VoteKind::Commit)]
    }

    fn certificate() -> impl Strategy<Value = QuorumCertificate> {
        (kind(), any::<u64>(), any::<u64>(), bytes32(), prop::collection::vec((any::<u32>(), sig64()), 0..4))
            .prop_map(|(kind, view, height, block, votes)| QuorumCertificate {
                kind,
                view,
                height,
                block: Hash(block),
                signers: votes.iter().map(|(index, _)| *index).collect(),
                signatures: votes.iter().map(|(_, sig)| Signature(*sig)).collect(),
            })
    }

    fn consensus() -> impl Strategy<Value = ConsensusMessage> {
        use crate::consensus::{CertifiedBlock, NewView, Proposal};
        prop_oneof![
            (
                any::<u64>(),
                header(),
                prop::collection::vec(txn(), 0..2),
                prop::option::of(certificate()),
                sig64()
            )
                .prop_map(|(view, header, txns, justify, signature)| ConsensusMessage::Proposal(
                    Proposal { view, block: Block { header, txns: txns.into() }, justify, signature }
                )),
            (any::<u64>(), any::<u64>(), prop::option::of(certificate()), any::<u32>(), sig64()).prop_map(
                |(view, height, high_qc, sender, signature)| ConsensusMessage::NewView(NewView {
                    view,
                    height,
                    high_qc,
                    sender,
                    signature,
                })
            ),
            any::<u64>().prop_map(|from_height| ConsensusMessage::SyncRequest { from_height }),
            certificate().prop_map(ConsensusMessage::Certificate),
            prop::collection::vec((header(), certificate()), 0..2).prop_map(|blocks| {
                ConsensusMessage::SyncResponse(
                    blocks
                        .into_iter()
                        .map(|(header, certificate)| CertifiedBlock {
                            block: Block { header, txns: Vec::new().into() },
                            certificate,
                        })
                        .collect(),
                )
            }),
        ]
    }

    fn frame() -> impl Strategy<Value = Frame> {
        prop_oneof![
            consensus().prop_map(Frame::Consensus),
            (any::<u32>(), any::<u8>(), prop::collection::vec(any::<u8>(), 0..HELLO_NOISE_MAX)).prop_map(
                |(chain_id, protocol_version, noise)| Frame::Hello(Hello {
                    chain_id,
                    protocol_version,
                    noise
                })
            ),
            (any::<u8>(), any::<u32>(), any::<u32>(), sig64()).prop_map(
                |(role, validator, peer, signature)| {
                    Frame::HelloProof(HelloProof { role, validator, peer, signature })
                }
            ),
            prop::collection::vec(txn(), 0..8).prop_map(Frame::Txns),
            (header(), prop::collection::vec(txn(), 0..4))
                .prop_map(|(header, txns)| Frame::Block(Block { header, txns: txns.into() })),
            (kind(), any::<u64>(), any::<u64>(), bytes32(), any::<u32>(), sig64()).prop_map(
                |(kind, view, height, block, voter, signature)| Frame::Vote(Vote {
                    kind,
                    view,
                    height,
                    block: Hash(block),
                    voter,
                    signature,
                })
            ),
            certificate().prop_map(Frame::Certificate),
        ]
    }

    proptest! {
        #![proptest_config(ProptestConfig::with_cases(256))]

        #[test]
        fn round_trip(frame in frame()) {
            let bytes = encode(&frame);
            match &frame {
                Frame::Consensus(message) => prop_assert_eq!(consensus_frame_size(message), bytes.len()),
                Frame::Txns(txns) => prop_assert_eq!(txns_frame_size(txns), bytes.len()),
                _ => {}
            }
            prop_assert_eq!(decode(&bytes), Ok(frame));
        }

        #[test]
        fn every_truncation_is_refused(frame in frame()) {
            let bytes = encode(&frame);
            for cut in 0..bytes.len() {
                prop_assert!(decode(&bytes[..cut]).is_err(), "prefix of {} bytes decoded", cut);
            }
        }

        #[test]
        fn every_extension_is_refused(frame in frame(), extra in prop::collection::vec(any::<u8>(), 1..16)) {
            let mut bytes = encode(&frame);
            bytes.extend_from_slice(&extra);
            prop_assert_eq!(decode(&bytes), Err(DecodeError::TrailingBytes { extra: extra.len() }));
        }

        #[test]
        fn every_bit_flip_is_refused_or_canonical(frame in frame()) {
            let bytes = encode(&frame);
            for bit in 0..bytes.len() * 8 {
                let mut flipped = bytes.clone();
                flipped[bit / 8] ^= 1 << (bit % 8);
                if let Ok(decoded) = decode(&flipped) {
                    prop_assert_eq!(encode(&decoded), flipped);
                }
            }
        }

        #[test]
        fn arbitrary_bytes_never_panic(data in prop::collection::vec(any::<u8>(), 0..512)) {
            crate::fuzz::fuzz_decode(&data);
        }
    }

    #[test]
    fn oversize_is_refused_from_the_header_alone() {
        let codec = Codec::new(1024);
        let mut header = Vec::from(WIRE_MAGIC);
        header.extend_from_slice(&[WIRE_VERSION, FrameKind::Txns as u8, 0, 0]);
        header.extend_from_slice(&(u32::MAX).to_le_bytes());
        assert_eq!(
            codec.decode(&header),
            Err(DecodeError::TooLarge { size: u32::MAX as usize + WIRE_HEADER_SIZE, max: 1024 })
        );
    }

    #[test]
    fn overlong_varint_is_not_canonical() {
        // An empty Txns batch is the varint 0; 0x80 0x00 is an overlong spelling of 0.
        let mut bytes = encode(&Frame::Txns(Vec::new()));
        assert_eq!(&bytes[WIRE_HEADER_SIZE..], &[0]);
        bytes.truncate(WIRE_HEADER_SIZE);
        bytes[8..12].copy_from_slice(&2u32.to_le_bytes());
        bytes.extend_from_slice(&[0x80, 0x00]);
        assert_eq!(decode(&bytes), Err(DecodeError::NonCanonical { kind: FrameKind::Txns }));
    }

    #[test]
    fn partial_transaction_is_refused() {
        let mut bytes = encode(&Frame::Txns(Vec::new()));
        bytes.truncate(WIRE_HEADER_SIZE);
        bytes[8..12].copy_from_slice(&4u32.to_le_bytes());
        bytes.extend_from_slice(&[3, 1, 2, 3]);
        assert!(matches!(decode(&bytes), Err(DecodeError::Payload { kind: FrameKind::Txns, .. })));
    }

    #[test]
    fn header_errors_name_the_reason() {
        let good = encode(&Frame::Txns(Vec::new()));
        let mut bad = good.clone();
        bad[0] = b'X';
        assert!(matches!(decode(&bad), Err(DecodeError::BadMagic { .. })));
        bad = good.clone();
        bad[4] = 9;
        assert_eq!(decode(&bad), Err(DecodeError::UnsupportedVersion { found: 9 }));
        bad = good.clone();
        bad[5] = 77;
        assert_eq!(decode(&bad), Err(DecodeError::UnknownKind { found: 77 }));
        bad = good.clone();
        bad[7] = 1;
        assert_eq!(decode(&bad), Err(DecodeError::NonzeroReserved { found: 0x0100 }));
    }

    /// Which consensus message a frame carries; exhaustive, so a new message type must be named.
    fn consensus_type(message: &ConsensusMessage) -> &'static str {
        match message {
            ConsensusMessage::Proposal(_) => "proposal",
            ConsensusMessage::Vote(_) => "vote",
            ConsensusMessage::NewView(_) => "new_view",
            ConsensusMessage::SyncRequest { .. } => "sync_request",
            ConsensusMessage::SyncResponse(_) => "sync_response",
            ConsensusMessage::Certificate(_) => "certificate",
        }
    }

    /// A well-formed transfer (its signature is not checked here).
    fn sample_txn() -> Txn {
        Txn { body: TxnBody::transfer(1, [1; 32], [2; 32], 5, 1, 0), signature: TxnSignature([3; 64]) }
    }

    /// A frame of every kind, and a consensus frame of every message type: the seeds of the
    /// `wire_decode` fuzz target (`fuzz/corpus/wire_decode/`, named as here).
    fn seed_frames() -> Vec<(&'static str, Frame)> {
        use crate::consensus::{CertifiedBlock, NewView, Proposal};
        let txn = sample_txn();
        let header = BlockHeader {
            height: 2,
            view: 3,
            timestamp_ms: 1_000,
            proposer: 1,
            txn_count: 1,
            parent: Hash([4; 32]),
            txn_root: Block::compute_txn_root(std::slice::from_ref(&txn)),
            state_root: Hash([5; 32]),
        };
        let block = Block { header, txns: vec![txn].into() };
        let vote = Vote {
            kind: VoteKind::Prepare,
            view: 3,
            height: 2,
            block: header.hash(),
            voter: 2,
            signature: [6; 64],
        };
        let certificate = QuorumCertificate {
            kind: VoteKind::Commit,
            view: 3,
            height: 2,
            block: header.hash(),
            signers: vec![0, 1, 2],
            signatures: vec![Signature([7; 64]); 3],
        };
        vec![
            ("txns_empty", Frame::Txns(Vec::new())),
            ("txns_one", Frame::Txns(block.txns.to_vec())),
            (
                "block_empty",
                Frame::Block(Block {
                    header: BlockHeader { txn_count: 0, ..header },
                    txns: Vec::new().into(),
                }),
            ),
            ("block", Frame::Block(block.clone())),
            ("vote", Frame::Vote(vote.clone())),
            ("certificate", Frame::Certificate(certificate.clone())),
            (
                "consensus_proposal",
                Frame::Consensus(ConsensusMessage::Proposal(Proposal {
                    view: 4,
                    block: block.clone(),
                    justify: Some(QuorumCertificate { kind: VoteKind::Prepare, ..certificate.clone() }),
                    signature: [8; 64],
                })),
            ),
            ("consensus_vote", Frame::Consensus(ConsensusMessage::Vote(vote))),
            (
                "consensus_new_view",
                Frame::Consensus(ConsensusMessage::NewView(NewView {
                    view: 5,
                    height: 3,
                    high_qc: Some(certificate.clone()),
                    sender: 3,
                    signature: [9; 64],
                })),
            ),
            ("consensus_sync_request", Frame::Consensus(ConsensusMessage::SyncRequest { from_height: 2 })),
            ("consensus_certificate", Frame::Consensus(ConsensusMessage::Certificate(certificate.clone()))),
            (
                "consensus_sync_response",
                Frame::Consensus(ConsensusMessage::SyncResponse(vec![CertifiedBlock { block, certificate }])),
            ),
            (
                "hello",
                Frame::Hello(Hello { chain_id: 1, protocol_version: PROTOCOL_VERSION, noise: vec![10; 32] }),
            ),
            (
                "hello_proof",
                Frame::HelloProof(HelloProof {
                    role: ROLE_DIALER,
                    validator: 1,
                    peer: 2,
                    signature: [11; 64],
                }),
            ),
        ]
    }

    #[test]
    fn seed_frames_pass_the_harness_and_mutations_of_them_too() {
        let frames = seed_frames();
        let encoded: Vec<Vec<u8>> = frames.iter().map(|(_, frame)| encode(frame)).collect();
        crate::fuzz::fuzz_write_seeds("wire_decode", &encoded.iter().map(Vec::as_slice).collect::<Vec<_>>());
        let mut seeds = crate::fuzz::FuzzSeeds::new(0x3172e);
        for round in 0..4000 {
            let base = &encoded[round % encoded.len()];
            crate::fuzz::fuzz_decode(base);
            crate::fuzz::fuzz_decode(&seeds.mutate(base));
        }
    }

    #[test]
    fn checked_in_seed_corpus_is_valid() {
        let mut kinds = std::collections::BTreeSet::new();
        let mut messages = std::collections::BTreeSet::new();
        for bytes in crate::fuzz::fuzz_corpus("wire_decode") {
            let frame = decode(&bytes).expect("every seed is a valid frame");
            crate::fuzz::fuzz_decode(&bytes);
            kinds.insert(frame.kind() as u8);
            if let Frame::Consensus(message) = &frame {
                messages.insert(consensus_type(message));
            }
        }
        let every_kind: std::collections::BTreeSet<u8> =
            (0..=u8::MAX).filter_map(FrameKind::from_byte).map(|kind| kind as u8).collect();
        assert_eq!(kinds, every_kind, "the seed corpus holds a frame of every kind");
        let every_message: std::collections::BTreeSet<&str> = seed_frames()
            .iter()
            .filter_map(|(_, frame)| match frame {
                Frame::Consensus(message) => Some(consensus_type(message)),
                _ => None,
            })
            .collect();
        assert_eq!(every_message.len(), 6, "seed_frames names every consensus message type");
        assert_eq!(messages, every_message, "the seed corpus holds a consensus frame of every type");
    }
}
