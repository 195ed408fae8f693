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
    seeded_address(&FILLER, seed, index)
}

/// [`filler_address`] of each index in `indexes`, in order: hashed eight at a time in lanes, on
/// every core (ten million in a fraction of a second, against seconds one at a time).
pub fn filler_addresses(seed: u64, indexes: std::ops::Range<u64>) -> Vec<[u8; 32]> {
    seeded_addresses(&FILLER, seed, indexes)
}

static FILLER: Domain = Domain::new("tessera 2026 workload filler account");

/// The address `domain` derives from `seed` and `index`: the digest of `seed ‖ index` (each
/// little-endian u64) in `domain`.
pub fn seeded_address(domain: &Domain, seed: u64, index: u64) -> [u8; 32] {
    *domain.hasher().update(&seed.to_le_bytes()).update(&index.to_le_bytes()).finalize().as_bytes()
}

/// [`seeded_address`] of each index in `indexes`, in order, hashed in lanes on every core.
pub fn seeded_addresses(domain: &Domain, seed: u64, indexes: std::ops::Range<u64>) -> Vec<[u8; 32]> {
    /// Addresses a core derives at a time.
    const CHUNK: usize = 4096;
    let count = usize::try_from(indexes.end.saturating_sub(indexes.start)).expect("a count that fits memory");
    let context_key = domain.context_key();
    let mut out = vec![[0u8; 32]; count];
    out.par_chunks_mut(CHUNK).enumerate().for_each(|(c, out)| {
        let first = indexes.start + (c * CHUNK) as u64;
        let inputs: Vec<[u8; 16]> = (first..first + out.len() as u64)
            .map(|index| {
                let mut input = [0u8; 16];
                input[..8].copy_from_slice(&seed.to_le_bytes());
                input[8..].copy_from_slice(&index.to_le_bytes());
                input
            })
            .collect();
        crate::kernels::keyed_hash8::derive_key_many(context_key, &inputs, out);
    });
    out
}

/// `preferred`, or less when `accounts` accounts of it would sum past u64::MAX: the most each
/// of them may hold, since a genesis whose balances do not fit a u64 is refused
/// (`GenesisError::SupplyTooLarge`).
pub fn balance_within_supply(preferred: u64, accounts: u64) -> u64 {
    preferred.min(u64::MAX / accounts.max(1))
}

/// Signs `body` with `key` (whose public key must be `body.sender`).
pub fn sign(key: &SigningKey, body: TxnBody) -> Txn {
    debug_assert_eq!(key.verifying_key().to_bytes(), body.sender);
    Txn { body, signature: TxnSignature(key.sign(body.signing_bytes()).to_bytes()) }
}

/// Signs each body with its key, byte for byte as [`sign`] does (RFC 8032 Ed25519, with the
/// same deterministic nonce), but the nonce points of all of them are converted to bytes with
/// one shared inversion (`EdwardsPoint::compress_batch_alloc`) instead of one inversion each
/// (one signature 15.0 µs in a window against 18.3 µs alone: `sign_many_us` and `sign_us` in
/// `tessera bench sim --json`). Constant-time like [`sign`]: the same fixed-base
/// multiplication, and the batch inversion's arithmetic does not depend on the values. For
/// load that signs many transactions at once (the simulator's clients).
pub fn sign_many(signed: &[(&SigningKey, TxnBody)]) -> Vec<Txn> {
    use curve25519_dalek::{EdwardsPoint, Scalar};
    use ed25519_dalek::hazmat::ExpandedSecretKey;
    use sha2::{Digest, Sha512};
    let nonces: Vec<(ExpandedSecretKey, Scalar, EdwardsPoint)> = signed
        .iter()
        .map(|(key, body)| {
            debug_assert_eq!(key.verifying_key().to_bytes(), body.sender);
            let expanded = ExpandedSecretKey::from(&key.to_bytes());
            let hashed = Sha512::new().chain_update(expanded.hash_prefix).chain_update(body.signing_bytes());
            let r = Scalar::from_hash(hashed);
            (expanded, r, EdwardsPoint::mul_base(&r))
        })
        .collect();
    let points: Vec<EdwardsPoint> = nonces.iter().map(|(_, _, point)| *point).collect();
    let compressed = EdwardsPoint::compress_batch_alloc(&points);
    signed
        .iter()
        .zip(nonces)
        .zip(compressed)
        .map(|(((key, body), (expanded, r, _)), big_r)| {
            let hashed = Sha512::new()
                .chain_update(big_r.as_bytes())
                .chain_update(key.verifying_key().as_bytes())
                .chain_update(body.signing_bytes());
            let s = Scalar::from_hash(hashed) * expanded.scalar + r;
            let mut signature = [0u8; 64];
            signature[..32].copy_from_slice(big_r.as_bytes());
            signature[32..].copy_from_slice(s.as_bytes());
            Txn { body: *body, signature: TxnSignature(signature) }
        })
        .collect()
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
    /// Addresses derived in lanes are those derived one at a time, across chunk boundaries and
    /// from a start past zero.
    #[test]
    fn addresses_in_lanes_are_those_derived_one_at_a_time() {
        let addresses = super::filler_addresses(9, 5..9_000);
        assert_eq!(addresses.len(), 8_995);
        for (address, index) in addresses.iter().zip(5u64..) {
            assert_eq!(*address, super::filler_address(9, index), "index {index}");
        }
        assert!(super::filler_addresses(9, 4..4).is_empty());
    }

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

    use ed25519_dalek::SigningKey;
    use proptest::prelude::*;
    use tessera_components::TxnBody;

    fn body(key: &SigningKey, nonce: u64, amount: u64) -> TxnBody {
        TxnBody::transfer(1, key.verifying_key().to_bytes(), [0xee; 32], amount, 1, nonce)
    }

    proptest! {
        /// Signed many at once, every signature is the one `sign` makes alone, byte for byte,
        /// whatever the keys, bodies and batch size (none, one, several with repeated keys).
        #[test]
        fn signing_many_at_once_gives_the_signatures_of_signing_each(
            secrets in proptest::collection::vec(any::<[u8; 32]>(), 0..24),
            amounts in proptest::collection::vec(any::<u64>(), 24),
        ) {
            let keys: Vec<SigningKey> = secrets.iter().map(SigningKey::from_bytes).collect();
            let signed: Vec<(&SigningKey, TxnBody)> = keys
                .iter()
                .enumerate()
                .flat_map(|(i, key)| (0..1 + i as u64 % 3).map(move |nonce| (key, nonce, i)))
                .map(|(key, nonce, i)| (key, body(key, nonce, amounts[i])))
                .collect();
            let many = super::sign_many(&signed);
            let each: Vec<_> = signed.iter().map(|(key, body)| super::sign(key, *body)).collect();
            prop_assert_eq!(many, each);
        }
    }
}
