//! Compile-time constants and the relationships between them.

use crate::txn::Txn;

/// Bytes in an Ed25519 public key (a compressed Edwards point).
pub const PUBLIC_KEY_SIZE: usize = 32;
/// Bytes in an Ed25519 signature (R || S).
pub const SIGNATURE_SIZE: usize = 64;
/// Bytes in a [`crate::Hash`].
pub const HASH_SIZE: usize = 32;

/// Wire-format magic, "TSRA" read as little-endian bytes.
pub const WIRE_MAGIC: [u8; 4] = *b"TSRA";
/// Wire-format version this build speaks. Frames with any other version are refused.
pub const WIRE_VERSION: u8 = 1;
/// Bytes in the fixed frame header (magic, version, kind, reserved, length).
pub const WIRE_HEADER_SIZE: usize = 12;
/// Hard upper bound on any configured maximum frame size (header plus payload).
pub const FRAME_SIZE_LIMIT: usize = 16 << 20;
/// Default maximum frame size for peers and clients.
pub const FRAME_SIZE_DEFAULT: usize = 4 << 20;

/// Bytes a transaction occupies on the wire and in a block.
pub const TXN_SIZE: usize = size_of::<Txn>();

/// Bytes of mempool memory charged per pending transaction: the transaction itself plus its
/// share of the three indexes (by id, by sender and nonce, by fee). A deliberate
/// over-estimate, so a configured byte bound is a real bound.
pub const MEMPOOL_ENTRY_BYTES: usize = TXN_SIZE + 160;

const _: () = assert!(WIRE_HEADER_SIZE < FRAME_SIZE_DEFAULT);
const _: () = assert!(FRAME_SIZE_DEFAULT <= FRAME_SIZE_LIMIT);
const _: () = assert!(FRAME_SIZE_LIMIT <= u32::MAX as usize);
const _: () = assert!(TXN_SIZE == 160);
