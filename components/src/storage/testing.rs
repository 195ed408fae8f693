//! Builders of sound data directories in memory, for the storage tests and the fuzz seeds. The
//! builders live in [`crate::fuzz`], which the recovery harness's crash mode also needs.

use crate::block::{Block, QuorumCertificate};

pub(crate) fn block_at(height: u64, txns: usize) -> (Block, QuorumCertificate) {
    crate::fuzz::fuzz_block_at(height, txns)
}

/// An index and segments holding `heights` blocks, rolling over past `segment_max` bytes.
pub(crate) fn image(heights: u64, segment_max: usize) -> (Vec<u8>, Vec<Vec<u8>>) {
    let mut index = Vec::new();
    let mut segments: Vec<Vec<u8>> = Vec::new();
    for write in crate::fuzz::fuzz_image_writes(heights, segment_max) {
        crate::fuzz::append_write(&mut index, &mut segments, &write, write.bytes.len());
    }
    (index, segments)
}
