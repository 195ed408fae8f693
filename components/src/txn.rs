//! Transactions: a fixed-size signed transfer.
//!
//! A transaction is a 96-byte [`TxnBody`] signed with Ed25519 over exactly those bytes, plus the
//! 64-byte signature: 160 bytes in all, the same in memory, on the wire and on disk. In the
//! schedule each in-flight transaction is an entity whose fields are separate components, so a
//! stage that only needs the body sweeps one contiguous column.

use bevy_ecs::component::Component;
use bytemuck::{Pod, Zeroable};
use serde::{Deserialize, Serialize};
use serde_big_array::BigArray;

use crate::hash::Hash;
use crate::reject::RejectReason;

/// The signed part of a transfer. Written by clients; read by prefilter (all fields), sigverify
/// (as the signed message), mempool (sender, nonce, fee) and execute.
#[derive(Clone, Copy, PartialEq, Eq, Debug, Pod, Zeroable, Component, Serialize, Deserialize)]
#[repr(C)]
pub struct TxnBody {
    /// The chain this transfer is meant for; a transfer signed for another chain is refused.
    pub chain_id: u32,
    /// Must be zero. Explicit padding, so no byte of the layout is left undefined and a nonzero
    /// value is a detectable, named rejection rather than a hidden side channel.
    pub reserved: u32,
    /// Ed25519 public key of the payer; also its account address.
    pub sender: [u8; 32],
    /// Account address (public key) of the payee.
    pub recipient: [u8; 32],
    /// Amount moved from sender to recipient.
    pub amount: u64,
    /// Fee paid by the sender; it orders the mempool and is burned on execution.
    pub fee: u64,
    /// The sender's account nonce this transfer consumes; must equal the account's nonce when
    /// executed.
    pub nonce: u64,
}

const _: () = assert!(size_of::<TxnBody>() == 96);
const _: () = assert!(align_of::<TxnBody>() == 8);

impl TxnBody {
    /// A transfer on chain `chain_id`, with `reserved` zero as every valid body has it.
    pub const fn transfer(
        chain_id: u32,
        sender: [u8; 32],
        recipient: [u8; 32],
        amount: u64,
        fee: u64,
        nonce: u64,
    ) -> TxnBody {
        TxnBody { chain_id, reserved: 0, sender, recipient, amount, fee, nonce }
    }

    /// The bytes that are signed and hashed: the Pod layout itself (little-endian, see crate
    /// root).
    pub fn signing_bytes(&self) -> &[u8] {
        bytemuck::bytes_of(self)
    }
}

/// The 64-byte Ed25519 signature (R || S) over [`TxnBody::signing_bytes`].
#[derive(Clone, Copy, PartialEq, Eq, Debug, Pod, Zeroable, Component, Serialize, Deserialize)]
#[repr(transparent)]
pub struct TxnSignature(#[serde(with = "BigArray")] pub [u8; 64]);

/// A transaction's identity: BLAKE3 over body and signature. Written by ingest.
#[derive(Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Debug, Pod, Zeroable, Component)]
#[repr(transparent)]
pub struct TxnId(pub Hash);

/// A whole transaction as it travels: body then signature.
#[derive(Clone, Copy, PartialEq, Eq, Debug, Pod, Zeroable)]
#[repr(C)]
pub struct Txn {
    /// The signed fields.
    pub body: TxnBody,
    /// Signature over `body`.
    pub signature: TxnSignature,
}

const _: () = assert!(size_of::<Txn>() == 160);
const _: () = assert!(size_of::<Txn>() == size_of::<TxnBody>() + size_of::<TxnSignature>());

impl Txn {
    /// `body` with an all-zero signature, which no key makes: for tests, and for fillers that
    /// are meant to be refused.
    pub const fn unsigned(body: TxnBody) -> Txn {
        Txn { body, signature: TxnSignature([0; 64]) }
    }

    /// BLAKE3 over the 160 bytes of the transaction.
    pub fn id(&self) -> TxnId {
        TxnId(Hash::of(bytemuck::bytes_of(self)))
    }
}

/// Who handed the node a transaction, where a bad signature on it can be charged to someone.
#[derive(Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Debug)]
pub enum Source {
    /// A validator forwarded it. An honest validator forwards only transactions it verified,
    /// so a signature that fails here is that validator's doing.
    Validator(u32),
    /// A client sent it from this address (IPv6, or IPv4 mapped into IPv6).
    Address([u8; 16]),
}

/// The [`Source`] of a transaction entity, on entities that have one (a client on loopback, an
/// RPC call or a full node's relay have none). Sparse: most entities never carry it, and it is
/// read only on a refusal.
#[derive(Clone, Copy, PartialEq, Eq, Debug, Component)]
#[component(storage = "SparseSet")]
pub struct SubmittedBy(pub Source);

/// A transaction entity's progress through the pipeline. Each stage's system sweeps entities
/// at its input stage and moves them to the next stage or to [`Stage::Rejected`]. A value
/// rather than marker components, so a transition mutates a byte in place instead of moving
/// the entity between archetype tables.
#[derive(Clone, Copy, PartialEq, Eq, Debug, Component)]
pub enum Stage {
    /// Written by ingest.
    Received,
    /// Passed the prefilter's cheap checks.
    Prefiltered,
    /// Signature check in flight on the verification pool; the verdict lands next tick.
    Verifying,
    /// Signature verified under the node's accept rule.
    Verified,
    /// Not a duplicate; handed to the mempool.
    Unique,
    /// Refused, with the reason.
    Rejected(RejectReason),
}

/// Serde adapter that carries `Vec<Txn>` as one byte string (a varint length, then the 160-byte
/// Pod layouts back to back): a memcpy each way instead of 160 per-field calls per transaction.
pub mod txn_bytes {
    use serde::de::{Error, Visitor};
    use serde::{Deserializer, Serializer};

    use crate::constants::TXN_SIZE;
    use crate::txn::Txn;

    /// Serialises the transactions as one byte string.
    ///
    /// # Errors
    /// Whatever the serializer reports.
    pub fn serialize<S: Serializer>(txns: &[Txn], serializer: S) -> Result<S::Ok, S::Error> {
        serializer.serialize_bytes(bytemuck::cast_slice(txns))
    }

    /// Deserialises a byte string whose length is a multiple of 160, into any collection of
    /// transactions (a batch's `Vec`, a block's shared slice).
    ///
    /// # Errors
    /// A length that is not a whole number of transactions.
    pub fn deserialize<'de, D: Deserializer<'de>, C: FromIterator<Txn>>(
        deserializer: D,
    ) -> Result<C, D::Error> {
        deserializer.deserialize_bytes(TxnBytesVisitor(std::marker::PhantomData))
    }

    struct TxnBytesVisitor<C>(std::marker::PhantomData<C>);

    impl<C: FromIterator<Txn>> Visitor<'_> for TxnBytesVisitor<C> {
        type Value = C;

        fn expecting(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
            write!(f, "a byte string of whole {TXN_SIZE}-byte transactions")
        }

        fn visit_bytes<E: Error>(self, bytes: &[u8]) -> Result<C, E> {
            if !bytes.len().is_multiple_of(TXN_SIZE) {
                return Err(E::invalid_length(bytes.len(), &self));
            }
            // The input is at an arbitrary alignment, so read each layout unaligned. Every bit
            // pattern is a valid Txn (it is Pod); validity of the fields is the pipeline's job.
            Ok(bytes.chunks_exact(TXN_SIZE).map(bytemuck::pod_read_unaligned).collect())
        }
    }
}
