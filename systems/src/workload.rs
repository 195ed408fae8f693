//! Deterministic signed workloads: keys and transfers derived from a seed, for benchmarks,
//! tests, the load generator and the simulator.

use ed25519_dalek::{Signer, SigningKey};
use rayon::prelude::*;
use tessera_components::{Domain, Txn, TxnBody, TxnSignature};

/// A deterministic byte stream: BLAKE3's XOF keyed by a domain and a seed.
///
/// Read a 64-byte output block at a time: the XOF computes a whole block (one compression)
/// for every read, however short, so eight-byte reads cost eight compressions a block. The
/// bytes, and so every draw, are the same either way.
#[derive(Debug)]
pub struct SeedStream {
    reader: blake3::OutputReader,
    block: [u8; 64],
    /// Bytes of `block` already handed out (64: none left).
    used: usize,
}

impl SeedStream {
    /// The stream for `seed` in `domain`.
    pub fn new(domain: &str, seed: u64) -> SeedStream {
        let mut hasher = blake3::Hasher::new_derive_key(domain);
        hasher.update(&seed.to_le_bytes());
        SeedStream { reader: hasher.finalize_xof(), block: [0; 64], used: 64 }
    }

    /// Next 64 bits.
    pub fn next_u64(&mut self) -> u64 {
        if self.used == self.block.len() {
            self.reader.fill(&mut self.block);
            self.used = 0;
        }
        let bytes: [u8; 8] = self.block[self.used..self.used + 8].try_into().expect("eight bytes");
        self.used += 8;
        u64::from_le_bytes(bytes)
    }

    /// A value in `0..bound` (`bound > 0`); the modulo bias is irrelevant for workloads.
    pub fn below(&mut self, bound: u64) -> u64 {
        assert!(bound > 0, "empty range");
        self.next_u64() % bound
    }

    /// Fisher–Yates shuffle.
    pub fn shuffle<T>(&mut self, items: &mut [T]) {
        for i in (1..items.len()).rev() {
            let j = self.below(i as u64 + 1) as usize;
            items.swap(i, j);
        }
    }
}

/// The `index`-th signing key of workload `seed`.
pub fn signing_key(seed: u64, index: u64) -> SigningKey {
    static SIGNING_KEY: Domain = Domain::new("tessera 2026 workload signing key");
    let mut hasher = SIGNING_KEY.hasher();
    hasher.update(&seed.to_le_bytes());
    hasher.update(&index.to_le_bytes());
    SigningKey::from_bytes(hasher.finalize().as_bytes())
}

/// The `index`-th receive-only filler account of workload `seed`: an address derived by a hash
/// (no key is derived, so millions cost a second; nobody holds the key, so it can only
/// receive).
pub fn filler_address(seed: u64, index: u64) -> [u8; 32] {
    static FILLER: Domain = Domain::new("tessera 2026 workload filler account");
    let mut hasher = FILLER.hasher();
    hasher.update(&seed.to_le_bytes());
    hasher.update(&index.to_le_bytes());
    *hasher.finalize().as_bytes()
}

/// Signs `body` with `key` (whose public key must be `body.sender`).
pub fn sign(key: &SigningKey, body: TxnBody) -> Txn {
    debug_assert_eq!(key.verifying_key().to_bytes(), body.sender);
    Txn { body, signature: TxnSignature(key.sign(body.signing_bytes()).to_bytes()) }
}

/// A funded set of senders and the transfers they sign.
#[derive(Debug, Clone)]
pub struct Transfers {
    /// Genesis balances: every sender, funded.
    pub genesis: Vec<([u8; 32], u64)>,
    /// Signed transfers; sender `s`'s transfers carry nonces `0, 1, …` in order.
    pub txns: Vec<Txn>,
}

/// Parameters of [`transfers`].
#[derive(Debug, Clone, Copy)]
pub struct TransferSpec {
    /// Workload seed: same seed, same keys and transactions.
    pub seed: u64,
    /// Chain id to sign for.
    pub chain_id: u32,
    /// Number of senders.
    pub senders: u64,
    /// Transfers per sender.
    pub per_sender: u64,
    /// Each sender's genesis balance.
    pub balance: u64,
    /// Fees are drawn from `fee_min..fee_min + 16`.
    pub fee_min: u64,
}

/// `senders × per_sender` valid transfers (amounts 1..=100, to other senders or fresh
/// recipients), signed in parallel, in sender-major nonce order.
pub fn transfers(spec: TransferSpec) -> Transfers {
    let keys: Vec<SigningKey> =
        (0..spec.senders).into_par_iter().map(|i| signing_key(spec.seed, i)).collect();
    let genesis = keys.iter().map(|key| (key.verifying_key().to_bytes(), spec.balance)).collect();
    let txns = keys
        .par_iter()
        .enumerate()
        .flat_map_iter(|(index, key)| {
            let mut stream =
                SeedStream::new("tessera 2026 workload transfers", spec.seed ^ ((index as u64) << 32));
            let sender = key.verifying_key().to_bytes();
            (0..spec.per_sender)
                .map(|nonce| {
                    let mut recipient = [0u8; 32];
                    recipient[..8].copy_from_slice(&stream.next_u64().to_le_bytes());
                    recipient[8..16].copy_from_slice(&(index as u64).to_le_bytes());
                    recipient[31] = 0xee;
                    let body = TxnBody {
                        chain_id: spec.chain_id,
                        reserved: 0,
                        sender,
                        recipient,
                        amount: 1 + stream.below(100),
                        fee: spec.fee_min + stream.below(16),
                        nonce,
                    };
                    sign(key, body)
                })
                .collect::<Vec<_>>()
        })
        .collect();
    Transfers { genesis, txns }
}

#[cfg(test)]
mod tests {
    /// Draws read a block at a time are the XOF's bytes, eight at a time, in order.
    #[test]
    fn a_stream_reads_the_xof_in_order() {
        let mut stream = super::SeedStream::new("tessera test stream", 7);
        let mut hasher = blake3::Hasher::new_derive_key("tessera test stream");
        hasher.update(&7u64.to_le_bytes());
        let mut expected = [0u8; 8 * 20];
        hasher.finalize_xof().fill(&mut expected);
        for chunk in expected.chunks(8) {
            assert_eq!(stream.next_u64(), u64::from_le_bytes(chunk.try_into().expect("eight bytes")));
        }
    }
}
