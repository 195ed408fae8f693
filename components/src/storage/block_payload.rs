//! A block record's payload: the block and the certificate that finalized it.

use super::record::{
    Place, RECORD_HEADER_SIZE, RECORD_PAYLOAD_MAX, RecordHeader, check_record, seal_record_header,
};
use crate::block::{Block, QuorumCertificate};

/// Encodes a block record at `place` in one buffer: the payload is serialised straight after
/// room for the header, which is sealed in place, so a block is copied once, not three times.
///
/// # Errors
/// The payload's size, if it exceeds [`RECORD_PAYLOAD_MAX`].
pub fn encode_block_record(
    place: Place,
    block: &Block,
    certificate: &QuorumCertificate,
) -> Result<(RecordHeader, Vec<u8>), usize> {
    // The transactions dominate; the rest (header fields, certificate) is a few hundred bytes
    // plus 64 per signature.
    let estimate = RECORD_HEADER_SIZE + block.body_size() + 256 + 72 * certificate.signatures.len();
    let mut out = Vec::with_capacity(estimate);
    out.resize(RECORD_HEADER_SIZE, 0);
    let mut out = postcard::to_extend(&(block, certificate), out)
        .expect("postcard into a Vec is infallible for blocks");
    let payload_size = out.len() - RECORD_HEADER_SIZE;
    if payload_size > RECORD_PAYLOAD_MAX {
        return Err(payload_size);
    }
    let header = seal_record_header(place, block.header.height, &out[RECORD_HEADER_SIZE..]);
    out[..RECORD_HEADER_SIZE].copy_from_slice(bytemuck::bytes_of(&header));
    debug_assert!(check_record(&out, place).is_ok_and(|record| record.header == header));
    Ok((header, out))
}

/// A block record's payload: postcard of the block, then of its certificate.
///
/// # Panics
/// Never for these types: postcard into a `Vec` cannot fail for them.
pub fn encode_block_payload(block: &Block, certificate: &QuorumCertificate) -> Vec<u8> {
    postcard::to_allocvec(&(block, certificate)).expect("postcard into a Vec is infallible for blocks")
}

/// Decodes a block record's payload and checks that it is the block for `height` and that the
/// certificate certifies it.
///
/// # Errors
/// A payload that does not decode, leaves bytes over, or does not fit its height.
pub fn decode_block_payload(
    payload: &[u8],
    height: u64,
) -> Result<(Block, QuorumCertificate), BlockPayloadError> {
    let ((block, certificate), rest) = postcard::take_from_bytes::<(Block, QuorumCertificate)>(payload)
        .map_err(|reason| BlockPayloadError::Decode { reason })?;
    if !rest.is_empty() {
        return Err(BlockPayloadError::TrailingBytes { extra: rest.len() });
    }
    if block.header.height != height {
        return Err(BlockPayloadError::WrongHeight { height, found: block.header.height });
    }
    if block.header.txn_count as usize != block.txns.len() {
        return Err(BlockPayloadError::CountMismatch {
            height,
            declared: block.header.txn_count,
            found: block.txns.len(),
        });
    }
    if certificate.height != height || certificate.block != block.header.hash() {
        return Err(BlockPayloadError::NotCertified { height });
    }
    Ok((block, certificate))
}

/// Why a block record's payload is not the certified block for its height.
#[derive(Clone, PartialEq, Eq, Debug, thiserror::Error)]
pub enum BlockPayloadError {
    /// The bytes are not a postcard block and certificate.
    #[error("block payload does not decode: {reason}")]
    Decode {
        /// What postcard refused.
        reason: postcard::Error,
    },
    /// Bytes left over after the certificate.
    #[error("{extra} bytes after the block payload")]
    TrailingBytes {
        /// Bytes left over.
        extra: usize,
    },
    /// A block of another height than the record's.
    #[error("record for height {height} holds block {found}")]
    WrongHeight {
        /// The record's height.
        height: u64,
        /// The block header's height.
        found: u64,
    },
    /// A header whose transaction count is not the body's.
    #[error("block {height} header says {declared} transactions, body has {found}")]
    CountMismatch {
        /// The record's height.
        height: u64,
        /// `txn_count` in the header.
        declared: u32,
        /// Transactions in the body.
        found: usize,
    },
    /// A certificate for another height or another block.
    #[error("certificate stored with block {height} does not certify it")]
    NotCertified {
        /// The record's height.
        height: u64,
    },
}

#[cfg(test)]
mod tests {
    use proptest::prelude::*;

    use super::*;
    use crate::storage::record::{RecordKind, check_record_header, encode_record};
    use crate::storage::testing::block_at;

    proptest! {
        #[test]
        fn block_payload_round_trips(height in 1u64..1 << 50, txns in 0usize..5) {
            let (block, certificate) = block_at(height, txns);
            let payload = encode_block_payload(&block, &certificate);
            let place = Place { kind: RecordKind::Block, segment: 3, offset: 4096 };
            let (header, record) = encode_block_record(place, &block, &certificate).unwrap();
            prop_assert_eq!(&record, &encode_record(place, height, &payload));
            prop_assert_eq!(header, check_record_header(&record, place).unwrap());
            prop_assert_eq!(decode_block_payload(&payload, height).unwrap(), (block, certificate));
            prop_assert!(decode_block_payload(&payload, height + 1).is_err());
        }
    }
}
