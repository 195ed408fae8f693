//! Builders of sound data directories in memory, for the storage tests and the fuzz seeds.

use super::*;
use crate::block::{Block, BlockHeader, QuorumCertificate, Signature, VoteKind};
use crate::hash::Hash;
use crate::txn::{Txn, TxnBody, TxnSignature};

pub(crate) fn block_at(height: u64, txns: usize) -> (Block, QuorumCertificate) {
    let txns: Vec<Txn> = (0..txns)
        .map(|i| Txn {
            body: TxnBody {
                chain_id: 1,
                reserved: 0,
                sender: [i as u8; 32],
                recipient: [7; 32],
                amount: height,
                fee: 1,
                nonce: i as u64,
            },
            signature: TxnSignature([3; 64]),
        })
        .collect();
    let header = BlockHeader {
        height,
        view: height,
        timestamp_ms: height * 10,
        proposer: 0,
        txn_count: txns.len() as u32,
        parent: Hash::ZERO,
        txn_root: Block::compute_txn_root(&txns),
        state_root: Hash([height as u8; 32]),
    };
    let block = Block { header, txns };
    let certificate = QuorumCertificate {
        kind: VoteKind::Commit,
        view: height,
        height,
        block: header.hash(),
        signers: vec![0, 1, 2],
        signatures: vec![Signature([9; 64]); 3],
    };
    (block, certificate)
}

/// An index and segments holding `heights` blocks, rolling over past `segment_max` bytes.
pub(crate) fn image(heights: u64, segment_max: usize) -> (Vec<u8>, Vec<Vec<u8>>) {
    let id = crate::fuzz::fuzz_genesis_id();
    let mut index = encode_index_header(id).to_vec();
    let mut segments = vec![encode_segment_header(0, id).to_vec()];
    for height in 1..=heights {
        let (block, certificate) = block_at(height, (height % 3) as usize);
        let payload = encode_block_payload(&block, &certificate);
        let mut current = segments.len() - 1;
        if segments[current].len() > FILE_HEADER_SIZE
            && segments[current].len() + RECORD_HEADER_SIZE + payload.len() > segment_max
        {
            segments.push(encode_segment_header(segments.len() as u32, id).to_vec());
            current += 1;
        }
        let place = Place {
            kind: RecordKind::Block,
            segment: current as u32,
            offset: segments[current].len() as u64,
        };
        let record = encode_record(place, height, &payload);
        let header = check_record_header(&record, place).unwrap();
        segments[current].extend_from_slice(&record);
        index.extend_from_slice(&IndexEntry::new(&header).to_bytes());
    }
    (index, segments)
}
