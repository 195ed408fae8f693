//! Ed25519 verification under one accept rule: ZIP-215.
//!
//! Bird's eye view: a signature `(R, S)` by key `A` on message `M` is accepted iff
//!
//! * `S` is the canonical encoding of an integer below ℓ (non-canonical `S` is refused),
//! * `A` and `R` decode to curve points; non-canonical encodings of the y-coordinate are
//!   accepted, as ZIP-215 requires, and small-order or mixed-order points are *not* refused,
//! * `[8]([S]B − R − [k]A) = 0`, with `k = SHA-512(R ‖ A ‖ M) mod ℓ` over the bytes as received.
//!
//! Because the equation is cofactored, a batch check (a random linear combination of the same
//! equations, also multiplied by 8) accepts a batch iff every member passes the single check,
//! except with probability 2⁻¹²⁸ over the coefficients. So [`verify_single`], [`verify_batch`]
//! and [`verify_many`] give the same verdict on every input; the property tests below and the
//! Wycheproof/RFC 8032 known-answer tests hold them to it. `docs/sigverify.md` has the full rule
//! and its reasoning.
//!
//! Batch coefficients are derived by hashing the whole batch (Fiat–Shamir), not drawn from a
//! thread RNG, so verification is deterministic and needs no randomness from outside.

use curve25519_dalek::constants::ED25519_BASEPOINT_POINT;
use curve25519_dalek::edwards::{CompressedEdwardsY, EdwardsPoint};
use curve25519_dalek::scalar::Scalar;
use curve25519_dalek::traits::{IsIdentity, VartimeMultiscalarMul};
use rayon::prelude::*;
use sha2::{Digest, Sha512};

/// One signature to check, borrowing its parts.
#[derive(Clone, Copy, Debug)]
pub struct VerifyItem<'a> {
    /// Encoded public key `A`.
    pub public_key: &'a [u8; 32],
    /// The signed message.
    pub message: &'a [u8],
    /// Encoded signature `R ‖ S`.
    pub signature: &'a [u8; 64],
}

impl<'a> VerifyItem<'a> {
    /// A transaction's signature over its body, by its sender.
    pub fn of_txn(txn: &'a tessera_components::Txn) -> VerifyItem<'a> {
        VerifyItem {
            public_key: &txn.body.sender,
            message: txn.body.signing_bytes(),
            signature: &txn.signature.0,
        }
    }
}

/// Below this many signatures a batch gives no speedup over single checks, so bisection stops
/// and checks the remainder one by one.
pub const SINGLE_CHECK_THRESHOLD: usize = 4;

/// A signature decoded and hashed, ready for the curve equation.
#[derive(Clone, Copy, Debug)]
struct Prepared {
    /// `R ‖ A` as received, for the batch coefficients (re-compressing would cost two field
    /// inversions per signature).
    encoded: [u8; 64],
    a: EdwardsPoint,
    r: EdwardsPoint,
    s: Scalar,
    k: Scalar,
}

/// Why the rule refuses a signature.
#[derive(Clone, Copy, Debug, PartialEq, Eq, thiserror::Error)]
pub enum Refusal {
    /// `S` is not below ℓ.
    #[error("s_not_canonical")]
    SNotCanonical,
    /// `A` is not the encoding of a curve point.
    #[error("key_not_a_point")]
    KeyNotAPoint,
    /// `R` is not the encoding of a curve point.
    #[error("r_not_a_point")]
    RNotAPoint,
    /// Everything decodes, but `[8]([S]B − R − [k]A) ≠ 0`.
    #[error("equation")]
    Equation,
}

/// Slots in each thread's cache of decompressed keys.
const KEY_CACHE_SLOTS: usize = 1024;

thread_local! {
    /// Keys this thread decompressed lately, direct-mapped by their first bytes (the low bits
    /// of y). Decompressing costs a field square root, a large part of a signature's share
    /// of a batch check (`kernel` against `distinct keys` in `tessera bench sigverify`);
    /// senders and validators sign again and again.
    static KEYS: std::cell::RefCell<Vec<Option<([u8; 32], EdwardsPoint)>>> =
        std::cell::RefCell::new(vec![None; KEY_CACHE_SLOTS]);
}

/// `CompressedEdwardsY(*bytes).decompress()`, through this thread's cache. Entries are keyed
/// by all 32 bytes, so the answer is exactly the uncached one (non-canonical encodings
/// included); keys that are not points are not kept. Keys made to share a slot only evict
/// each other, which costs what no cache would.
fn decompress_key(bytes: &[u8; 32]) -> Option<EdwardsPoint> {
    let low = u64::from_le_bytes(bytes[..8].try_into().expect("8 of 32 bytes"));
    let slot = (low % KEY_CACHE_SLOTS as u64) as usize;
    KEYS.with(|cache| {
        let mut cache = cache.borrow_mut();
        if let Some((key, point)) = &cache[slot]
            && key == bytes
        {
            return Some(*point);
        }
        let point = CompressedEdwardsY(*bytes).decompress()?;
        cache[slot] = Some((*bytes, point));
        Some(point)
    })
}

/// Decodes and hashes one item, or names the encoding problem that refuses it outright.
fn prepare(item: &VerifyItem<'_>) -> Result<Prepared, Refusal> {
    let (r_bytes, s_bytes) = item.signature.split_at(32);
    let r_bytes: [u8; 32] = r_bytes.try_into().expect("64 = 32 + 32");
    let s_bytes: [u8; 32] = s_bytes.try_into().expect("64 = 32 + 32");
    let s = Option::<Scalar>::from(Scalar::from_canonical_bytes(s_bytes)).ok_or(Refusal::SNotCanonical)?;
    let a = decompress_key(item.public_key).ok_or(Refusal::KeyNotAPoint)?;
    let r = CompressedEdwardsY(r_bytes).decompress().ok_or(Refusal::RNotAPoint)?;
    let mut hasher = Sha512::new();
    hasher.update(r_bytes);
    hasher.update(item.public_key);
    hasher.update(item.message);
    let digest: [u8; 64] = hasher.finalize().into();
    let k = Scalar::from_bytes_mod_order_wide(&digest);
    let mut encoded = [0u8; 64];
    encoded[..32].copy_from_slice(&r_bytes);
    encoded[32..].copy_from_slice(item.public_key);
    Ok(Prepared { encoded, a, r, s, k })
}

fn check_single(p: &Prepared) -> bool {
    // [S]B - [k]A - R, then clear the cofactor.
    let sb_minus_ka = EdwardsPoint::vartime_double_scalar_mul_basepoint(&p.k, &-p.a, &p.s);
    (sb_minus_ka - p.r).mul_by_cofactor().is_identity()
}

/// Coefficients for the random linear combination: 128-bit scalars from a BLAKE3 XOF keyed by
/// every (R, A, S, k) in the batch. An adversary who changes any input changes every
/// coefficient, so a forged batch passes with probability 2⁻¹²⁸ per attempt.
fn batch_coefficients(batch: &[Prepared]) -> Vec<Scalar> {
    static COEFFICIENTS: tessera_components::Domain =
        tessera_components::Domain::new("tessera 2026 ed25519 batch coefficients");
    let mut hasher = COEFFICIENTS.hasher();
    for p in batch {
        hasher.update(&p.encoded);
        hasher.update(p.s.as_bytes());
        hasher.update(p.k.as_bytes());
    }
    let mut xof = hasher.finalize_xof();
    batch
        .iter()
        .map(|_| {
            let mut wide = [0u8; 32];
            xof.fill(&mut wide[..16]);
            Scalar::from_bytes_mod_order(wide)
        })
        .collect()
}

#[cfg(test)]
thread_local! {
    /// Batch equations checked on this thread, for the tests of what bisection costs.
    static BATCH_CHECKS: std::cell::Cell<usize> = const { std::cell::Cell::new(0) };
}

fn check_batch(batch: &[Prepared]) -> bool {
    #[cfg(test)]
    BATCH_CHECKS.with(|checks| checks.set(checks.get() + 1));
    match batch {
        [] => return true,
        [single] => return check_single(single),
        _ => {}
    }
    let z = batch_coefficients(batch);
    // [8]( -[Σ z·S]B + Σ [z]R + Σ [z·k]A ) = 0
    let b_coefficient = -batch.iter().zip(&z).map(|(p, z)| z * p.s).sum::<Scalar>();
    let keys = key_terms(batch, &z);
    // Both iterate the one map, unchanged, so in one order.
    let scalars =
        std::iter::once(b_coefficient).chain(z.iter().copied()).chain(keys.values().map(|term| term.0));
    let points = std::iter::once(ED25519_BASEPOINT_POINT)
        .chain(batch.iter().map(|p| p.r))
        .chain(keys.values().map(|term| *term.1));
    EdwardsPoint::vartime_multiscalar_mul(scalars, points).mul_by_cofactor().is_identity()
}

/// The `Σ [z·k]A` terms of a batch equation, one per distinct key: the signatures under one
/// key (its 32 bytes as received, so one point) share a term, `[Σ z·k]A`, which is the same
/// sum. A sender or validator that signs again and again then costs the multiscalar
/// multiplication one point, not one per signature. By key; the terms' order does not matter
/// to their sum. One allocation a batch (the verification path's allocations are counted:
/// `tests/alloc.rs`).
fn key_terms<'b>(
    batch: &'b [Prepared],
    z: &[Scalar],
) -> foldhash::HashMap<&'b [u8], (Scalar, &'b EdwardsPoint)> {
    use foldhash::HashMapExt;
    let mut terms = foldhash::HashMap::with_capacity(batch.len());
    for (p, z) in batch.iter().zip(z) {
        let zk = z * p.k;
        terms
            .entry(&p.encoded[32..])
            .and_modify(|term: &mut (Scalar, &EdwardsPoint)| term.0 += zk)
            .or_insert((zk, &p.a));
    }
    terms
}

/// Checks one signature under the accept rule.
pub fn verify_single(item: &VerifyItem<'_>) -> bool {
    prepare(item).is_ok_and(|p| check_single(&p))
}

/// Checks one signature and names the reason for a refusal.
///
/// # Errors
/// The [`Refusal`].
pub fn check_detailed(item: &VerifyItem<'_>) -> Result<(), Refusal> {
    let prepared = prepare(item)?;
    if check_single(&prepared) { Ok(()) } else { Err(Refusal::Equation) }
}

/// The reason a signature that a batch path refused was refused, without verifying it again:
/// its encoding problem if it has one, else the equation.
pub fn refusal_of_refused(item: &VerifyItem<'_>) -> Refusal {
    match prepare(item) {
        Err(refusal) => refusal,
        Ok(_) => Refusal::Equation,
    }
}

/// A plain reference implementation of the rule for differential testing: constant-time
/// scalar multiplications and a comparison of compressed points, sharing nothing with the
/// fast paths but decoding.
pub fn verify_reference(item: &VerifyItem<'_>) -> bool {
    let Ok(p) = prepare(item) else { return false };
    let left = EdwardsPoint::mul_base(&p.s).mul_by_cofactor();
    let right = (p.r + p.a * p.k).mul_by_cofactor();
    left.compress() == right.compress()
}

/// Checks a batch as one multiscalar multiplication: true iff every signature is accepted.
pub fn verify_batch(items: &[VerifyItem<'_>]) -> bool {
    let mut prepared = Vec::with_capacity(items.len());
    for item in items {
        match prepare(item) {
            Ok(p) => prepared.push(p),
            Err(_) => return false,
        }
    }
    check_batch(&prepared)
}

/// Finds the bad signatures of a failed batch by bisection: each half is batch-checked, and
/// only failing halves are split further. With k bad signatures among n this costs about
/// 2k·log2(n/k) batch checks of shrinking size instead of n single checks.
fn bisect(batch: &[Prepared], verdicts: &mut [bool], known_bad: bool) {
    debug_assert_eq!(batch.len(), verdicts.len());
    if batch.len() <= SINGLE_CHECK_THRESHOLD {
        for (p, verdict) in batch.iter().zip(verdicts.iter_mut()) {
            *verdict = check_single(p);
        }
        return;
    }
    if !known_bad && check_batch(batch) {
        verdicts.fill(true);
        return;
    }
    let mid = batch.len() / 2;
    let (left, right) = batch.split_at(mid);
    let (left_verdicts, right_verdicts) = verdicts.split_at_mut(mid);
    let left_ok = check_batch(left);
    if left_ok {
        left_verdicts.fill(true);
        // The whole failed, the left passed: the right half holds a bad signature.
        bisect(right, right_verdicts, true);
    } else {
        bisect(left, left_verdicts, true);
        bisect(right, right_verdicts, false);
    }
}

/// Verdicts for one chunk: decode failures are refused without curve arithmetic, the rest are
/// batch-checked and bisected on failure.
pub fn verify_chunk(items: &[VerifyItem<'_>], verdicts: &mut [bool]) {
    assert_eq!(items.len(), verdicts.len(), "one verdict per item");
    let mut prepared = Vec::with_capacity(items.len());
    let mut slots = Vec::with_capacity(items.len());
    for (slot, item) in items.iter().enumerate() {
        match prepare(item) {
            Ok(p) => {
                prepared.push(p);
                slots.push(slot);
            }
            Err(_) => verdicts[slot] = false,
        }
    }
    let mut prepared_verdicts = vec![false; prepared.len()];
    bisect(&prepared, &mut prepared_verdicts, false);
    for (slot, verdict) in slots.into_iter().zip(prepared_verdicts) {
        verdicts[slot] = verdict;
    }
}

/// Verdicts for many signatures: chunks of `batch_size` run on rayon's pool (all cores), each
/// batch-checked and bisected on failure. `verdicts[i]` is `verify_single(&items[i])`.
///
/// # Panics
/// If `batch_size` is zero or `verdicts.len() != items.len()` (caller bugs).
pub fn verify_many(items: &[VerifyItem<'_>], verdicts: &mut [bool], batch_size: usize) {
    assert!(batch_size > 0, "batch size must be positive");
    assert_eq!(items.len(), verdicts.len(), "one verdict per item");
    items
        .par_chunks(batch_size)
        .zip(verdicts.par_chunks_mut(batch_size))
        .for_each(|(chunk, chunk_verdicts)| verify_chunk(chunk, chunk_verdicts));
}

/// Verdicts by single checks only, in parallel: the reference path `verify_many` must match,
/// and the baseline an A/B measurement compares batching against.
///
/// # Panics
/// If `verdicts.len() != items.len()` (a caller bug).
pub fn verify_each(items: &[VerifyItem<'_>], verdicts: &mut [bool]) {
    assert_eq!(items.len(), verdicts.len(), "one verdict per item");
    items.par_iter().zip(verdicts.par_iter_mut()).for_each(|(item, verdict)| *verdict = verify_single(item));
}

/// Whether `public_key` decodes to a point of the prime-order subgroup: `a·B` for some `a`, as
/// every key a secret seed gives is. A key `A + T` with a torsion component `T` (and `T` a
/// small-order point) is another byte string than `A`, not small-order, and yet under the
/// cofactored rule the node verifies by (as ZIP-215 does) the secret of `A` signs for it: a
/// validator set that admits both gives one secret two validators.
pub fn is_torsion_free_key(public_key: &[u8; 32]) -> bool {
    CompressedEdwardsY(*public_key).decompress().is_some_and(|point| point.is_torsion_free())
}

/// The field-arithmetic backend curve25519-dalek uses on this CPU: `avx512`, `avx2` or
/// `serial`. Mirrors the crate's own run-time selection (AVX-512 IFMA needs the
/// `curve25519_dalek_backend="avx512"` cfg from `.cargo/config.toml` and a CPU with
/// avx512ifma and avx512vl; AVX2 is compiled in by default on x86-64). Detected on the first
/// call and cached: the CPU does not change under a running process, and the node asks every
/// tick.
pub fn curve_backend() -> &'static str {
    static BACKEND: std::sync::OnceLock<&'static str> = std::sync::OnceLock::new();
    BACKEND.get_or_init(detect_curve_backend)
}

/// The detection behind [`curve_backend`], run once.
fn detect_curve_backend() -> &'static str {
    #[cfg(target_arch = "x86_64")]
    {
        #[cfg(curve25519_dalek_backend = "avx512")]
        if std::arch::is_x86_feature_detected!("avx512ifma")
            && std::arch::is_x86_feature_detected!("avx512vl")
        {
            return "avx512";
        }
        #[cfg(not(curve25519_dalek_backend = "serial"))]
        if std::arch::is_x86_feature_detected!("avx2") {
            return "avx2";
        }
    }
    "serial"
}

/// The stand-in signature of `message` by `public_key`: BLAKE3 under its own domain, twice.
/// Deterministic and cheap; anyone can compute it, so it stands in for Ed25519 only inside a
/// simulation, where every signer is the simulator's own.
pub fn stand_in_sign(public_key: &[u8; 32], message: &[u8]) -> [u8; 64] {
    static STAND_IN: tessera_components::Domain =
        tessera_components::Domain::new("tessera stand-in signature v1");
    let first = STAND_IN.hash(&[public_key, message]);
    let second = tessera_components::Hash::of(&first.0);
    let mut out = [0u8; 64];
    out[..32].copy_from_slice(&first.0);
    out[32..].copy_from_slice(&second.0);
    out
}

/// The stand-in "signature" of a transaction body: BLAKE3 of the body under its own domain,
/// twice, so it is deterministic, cheap, and unforgeable only in the sense a simulation needs
/// (a client that does not compute it gets refused). See `PipelineConfig::sigverify_stand_in`.
pub fn stand_in_signature(body: &tessera_components::TxnBody) -> [u8; 64] {
    stand_in_sign(&body.sender, body.signing_bytes())
}

/// The verification paths the differential harness holds to one another and to the verdicts it
/// knows in advance. The node's are [`NODE_PATHS`]; the harness's tests substitute deliberately
/// wrong ones to show that the oracle catches them.
#[cfg(any(test, fuzzing, feature = "fuzzing"))]
#[derive(Clone, Copy, Debug)]
pub struct Paths {
    /// One signature, fast path ([`verify_single`]).
    pub single: fn(&VerifyItem<'_>) -> bool,
    /// Many signatures, chunked, batch-checked and bisected ([`verify_many`]).
    pub many: fn(&[VerifyItem<'_>], &mut [bool], usize),
    /// Many signatures, by single checks in parallel ([`verify_each`]).
    pub each: fn(&[VerifyItem<'_>], &mut [bool]),
    /// One verdict for a whole batch ([`verify_batch`]).
    pub batch: fn(&[VerifyItem<'_>]) -> bool,
}

/// The paths the node runs.
#[cfg(any(test, fuzzing, feature = "fuzzing"))]
pub const NODE_PATHS: Paths =
    Paths { single: verify_single, many: verify_many, each: verify_each, batch: verify_batch };

/// ℓ, the order of the prime-order subgroup, little-endian.
#[cfg(any(test, fuzzing, feature = "fuzzing"))]
const ELL: [u8; 32] = [
    0xed, 0xd3, 0xf5, 0x5c, 0x1a, 0x63, 0x12, 0x58, 0xd6, 0x9c, 0xf7, 0xa2, 0xde, 0xf9, 0xde, 0x14, 0, 0, 0,
    0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0x10,
];

/// `s + multiple·ℓ` as 32 little-endian bytes: the same scalar, encoded non-canonically.
/// `s < ℓ` and `multiple ≤ 14` keep the sum below 15ℓ < 2²⁵⁶.
#[cfg(any(test, fuzzing, feature = "fuzzing"))]
fn plus_ell(s: &[u8; 32], multiple: u16) -> [u8; 32] {
    assert!(multiple <= 14, "15ℓ is the last multiple below 2^256");
    let mut sum = [0u8; 32];
    let mut carry = 0u32;
    for i in 0..32 {
        let total = u32::from(s[i]) + u32::from(ELL[i]) * u32::from(multiple) + carry;
        sum[i] = total as u8;
        carry = total >> 8;
    }
    assert_eq!(carry, 0, "s + multiple·ℓ fits 256 bits");
    sum
}

/// Every encoding of each of the eight small-order points that decodes to it: the canonical
/// one, and the non-canonical ones ZIP-215 accepts (y ≥ p, which only y = 0 and y = 1 allow
/// within 255 bits, and x = 0 with the sign bit set). Indexed as
/// `curve25519_dalek::constants::EIGHT_TORSION`; canonical encoding first.
#[cfg(any(test, fuzzing, feature = "fuzzing"))]
pub fn torsion_encodings() -> &'static [Vec<[u8; 32]>; 8] {
    static ENCODINGS: std::sync::OnceLock<[Vec<[u8; 32]>; 8]> = std::sync::OnceLock::new();
    ENCODINGS.get_or_init(|| {
        let torsion = curve25519_dalek::constants::EIGHT_TORSION;
        let mut out: [Vec<[u8; 32]>; 8] = std::array::from_fn(|i| vec![torsion[i].compress().to_bytes()]);
        // p = 2^255 − 19, little-endian.
        let mut p = [0xff; 32];
        p[0] = 0xed;
        p[31] = 0x7f;
        let mut candidates = Vec::new();
        for y in 0..19u8 {
            let mut encoding = p;
            encoding[0] += y;
            candidates.push(encoding);
            encoding[31] |= 0x80;
            candidates.push(encoding);
        }
        for canonical in torsion.iter().map(|t| t.compress().to_bytes()) {
            let mut flipped = canonical;
            flipped[31] ^= 0x80;
            candidates.push(flipped);
        }
        for candidate in candidates {
            let Some(point) = CompressedEdwardsY(candidate).decompress() else { continue };
            if let Some(index) = torsion.iter().position(|t| *t == point)
                && !out[index].contains(&candidate)
            {
                out[index].push(candidate);
            }
        }
        out
    })
}

/// One fuzz item with the verdict the rule must give it, when the harness knows it.
#[cfg(any(test, fuzzing, feature = "fuzzing"))]
struct DiffItem {
    public_key: [u8; 32],
    signature: [u8; 64],
    message: Vec<u8>,
    expected: Option<bool>,
    case: &'static str,
}

/// Reads one item (or two, for the S + ℓ case) from `data`; `None` when the input runs out.
/// The mode byte's low two bits choose the case, the rest parameterise it:
///
/// * 0, raw: key, signature, message as given; verdict unknown.
/// * 1, signed and flipped: a key seed, a message, and `mode >> 2 & 3` bit flips, each a u16
///   naming any bit of the 512-bit signature, the 256-bit key or the message. Verdict: accepted
///   iff the flips cancel out.
/// * 2, S + jℓ: a real signature, and the same one with S replaced by S + jℓ (j = 1..=14, from
///   the mode): the first accepted, the second refused (non-canonical S).
/// * 3, torsion: A = a·B + T_A, R = r·B + T_R for small-order T_A, T_R (either may be the whole
///   point, a = 0 or r = 0, and then any of its encodings, canonical or not), S = r + k·a with
///   k = SHA-512(R ‖ A ‖ M) over the chosen encodings. `[8]([S]B − R − [k]A) = [8](−T_R − [k]T_A)
///   = 0`, so ZIP-215 accepts it; the cofactorless equation mostly does not.
#[cfg(any(test, fuzzing, feature = "fuzzing"))]
fn read_items(rest: &mut &[u8], out: &mut Vec<DiffItem>) -> Option<()> {
    use ed25519_dalek::Signer;

    fn take<'d, const N: usize>(rest: &mut &'d [u8]) -> Option<&'d [u8; N]> {
        let (head, tail) = rest.split_first_chunk::<N>()?;
        *rest = tail;
        Some(head)
    }
    fn message(rest: &mut &[u8]) -> Option<Vec<u8>> {
        let [length] = *take::<1>(rest)?;
        let length = usize::from(length % 64).min(rest.len());
        let (message, tail) = rest.split_at(length);
        *rest = tail;
        Some(message.to_vec())
    }

    let [mode] = *take::<1>(rest)?;
    match mode & 3 {
        0 => {
            let public_key = *take::<32>(rest)?;
            let signature = *take::<64>(rest)?;
            let message = message(rest)?;
            out.push(DiffItem { public_key, signature, message, expected: None, case: "raw" });
        }
        1 => {
            let key = ed25519_dalek::SigningKey::from_bytes(take::<32>(rest)?);
            let message = message(rest)?;
            let (public_key, signature) = (key.verifying_key().to_bytes(), key.sign(&message).to_bytes());
            let mut item = DiffItem {
                public_key,
                signature,
                message: message.clone(),
                expected: None,
                case: "signed, bits flipped",
            };
            for _ in 0..(mode >> 2) & 3 {
                let bits = 512 + 256 + 8 * item.message.len();
                let bit = usize::from(u16::from_le_bytes(*take::<2>(rest)?)) % bits;
                let (bytes, bit): (&mut [u8], usize) = match bit {
                    0..512 => (&mut item.signature, bit),
                    512..768 => (&mut item.public_key, bit - 512),
                    _ => (&mut item.message, bit - 768),
                };
                bytes[bit / 8] ^= 1 << (bit % 8);
            }
            // Any change to a real signature, its key or its message is a forgery attempt.
            let unchanged =
                (item.public_key, item.signature) == (public_key, signature) && item.message == message;
            item.expected = Some(unchanged);
            out.push(item);
        }
        2 => {
            let key = ed25519_dalek::SigningKey::from_bytes(take::<32>(rest)?);
            let message = message(rest)?;
            let (public_key, signature) = (key.verifying_key().to_bytes(), key.sign(&message).to_bytes());
            let multiple = 1 + u16::from(mode >> 2) % 14;
            let mut high = signature;
            let s: [u8; 32] = signature[32..].try_into().expect("64 = 32 + 32");
            high[32..].copy_from_slice(&plus_ell(&s, multiple));
            out.push(DiffItem {
                public_key,
                signature,
                message: message.clone(),
                expected: Some(true),
                case: "S",
            });
            out.push(DiffItem {
                public_key,
                signature: high,
                message,
                expected: Some(false),
                case: "S + jℓ",
            });
        }
        _ => {
            let [points, encodings] = *take::<2>(rest)?;
            let seed = take::<32>(rest)?;
            let message = message(rest)?;
            let torsion = curve25519_dalek::constants::EIGHT_TORSION;
            let (t_a, t_r) = (usize::from(points & 7), usize::from(points >> 3 & 7));
            let a = if points & 0x40 == 0 { Scalar::from_bytes_mod_order(*seed) } else { Scalar::ZERO };
            let r = if points & 0x80 == 0 {
                Scalar::hash_from_bytes::<Sha512>(&[seed.as_slice(), &message].concat())
            } else {
                Scalar::ZERO
            };
            // A pure small-order point may be written in any of its encodings; a mixed one has
            // y far above 19, so only its canonical encoding exists.
            let encode = |scalar: Scalar, t: usize, choice: u8| -> [u8; 32] {
                if scalar == Scalar::ZERO {
                    let all = &torsion_encodings()[t];
                    all[usize::from(choice) % all.len()]
                } else {
                    (EdwardsPoint::mul_base(&scalar) + torsion[t]).compress().to_bytes()
                }
            };
            let public_key = encode(a, t_a, encodings & 15);
            let r_bytes = encode(r, t_r, encodings >> 4);
            let mut hasher = Sha512::new();
            hasher.update(r_bytes);
            hasher.update(public_key);
            hasher.update(&message);
            let k = Scalar::from_hash(hasher);
            let s = r + k * a;
            let mut signature = [0u8; 64];
            signature[..32].copy_from_slice(&r_bytes);
            signature[32..].copy_from_slice(s.as_bytes());
            out.push(DiffItem { public_key, signature, message, expected: Some(true), case: "torsion" });
        }
    }
    Some(())
}

/// The differential oracle over `items`: every path in `paths` gives every item the same
/// verdict, the reference implementation too, and that verdict is the expected one wherever the
/// item's construction fixes it; whatever `ed25519_dalek`'s strict verifier accepts is accepted
/// (its cofactorless acceptance implies the cofactored equation).
///
/// # Panics
/// On any disagreement: that is the oracle failing.
#[cfg(any(test, fuzzing, feature = "fuzzing"))]
fn check_paths(owned: &[DiffItem], paths: &Paths) {
    let items: Vec<VerifyItem<'_>> = owned
        .iter()
        .map(|item| VerifyItem {
            public_key: &item.public_key,
            message: &item.message,
            signature: &item.signature,
        })
        .collect();
    let singles: Vec<bool> = items.iter().map(paths.single).collect();
    for (index, (item, single)) in owned.iter().zip(&singles).enumerate() {
        if let Some(expected) = item.expected {
            assert_eq!(
                *single, expected,
                "item {index} ({}): the single path gives the wrong verdict",
                item.case
            );
        }
    }
    let reference: Vec<bool> = items.iter().map(verify_reference).collect();
    assert_eq!(reference, singles, "the single path disagrees with the reference");
    let mut each = vec![false; items.len()];
    (paths.each)(&items, &mut each);
    assert_eq!(each, singles, "parallel single checks disagree with the single path");
    for batch_size in [1, 2, 3, 16] {
        let mut many = vec![false; items.len()];
        (paths.many)(&items, &mut many, batch_size);
        assert_eq!(many, singles, "batch size {batch_size} disagrees with the single path");
    }
    assert_eq!((paths.batch)(&items), singles.iter().all(|ok| *ok), "the whole-batch verdict disagrees");
    // The accepted items alone form a batch that must pass, however many refused ones the
    // input held; pairs of neighbours must pass or fail together as their members do.
    let accepted: Vec<VerifyItem<'_>> =
        items.iter().zip(&singles).filter(|(_, ok)| **ok).map(|(item, _)| *item).collect();
    assert!((paths.batch)(&accepted), "the batch path refuses a batch of accepted signatures");
    for (pair, verdicts) in items.windows(2).zip(singles.windows(2)) {
        assert_eq!(
            (paths.batch)(pair),
            verdicts[0] && verdicts[1],
            "a batch of two disagrees with its members"
        );
    }
    for (item, accepted) in items.iter().zip(&singles) {
        let strict = ed25519_dalek::VerifyingKey::from_bytes(item.public_key).is_ok_and(|key| {
            key.verify_strict(item.message, &ed25519_dalek::Signature::from_bytes(item.signature)).is_ok()
        });
        assert!(!strict || *accepted, "dalek's strict verifier accepts what the rule refuses");
    }
}

/// [`fuzz_differential`] over the given paths, so tests can run the oracle against wrong ones.
#[cfg(any(test, fuzzing, feature = "fuzzing"))]
pub fn fuzz_differential_with(data: &[u8], paths: &Paths) {
    let mut owned = Vec::new();
    let mut rest = data;
    while owned.len() < 16 && read_items(&mut rest, &mut owned).is_some() {}
    check_paths(&owned, paths);
}

/// Fuzz harness: decodes `data` into up to 17 items (raw; signed for real, then bit-flipped
/// anywhere in signature, key or message; S + jℓ beside its canonical twin; small-order and
/// mixed-order R and A, in any encoding, signed under the cofactored equation; see
/// `read_items`) and runs the differential oracle of `check_paths` over the node's paths. Run
/// by `cargo test` on seeded inputs and by `fuzz/fuzz_targets/sigverify_diff.rs`.
#[cfg(any(test, fuzzing, feature = "fuzzing"))]
pub fn fuzz_differential(data: &[u8]) {
    fuzz_differential_with(data, &NODE_PATHS);
}

#[cfg(test)]
mod tests {
    use ed25519_dalek::{Signer, SigningKey};
    use proptest::prelude::*;

    use super::*;

    /// The key cache answers exactly as decompression does: for keys that share a slot (and
    /// evict each other), for a non-canonical encoding beside its canonical twin, and for bytes
    /// that are not a point, which it never keeps.
    #[test]
    fn the_key_cache_answers_as_decompression_does() {
        let mut keys: Vec<[u8; 32]> =
            (0..64u8).map(|i| SigningKey::from_bytes(&[i; 32]).verifying_key().to_bytes()).collect();
        // Same slot, different keys: the low 8 bytes agree modulo the slot count.
        for i in 0..8u8 {
            let mut key = keys[0];
            key[8] ^= i + 1;
            key[0] = keys[0][0];
            keys.push(key);
        }
        // y = 1 (the identity) and its non-canonical twin y = p + 1, and a y that is no point.
        let mut one = [0u8; 32];
        one[0] = 1;
        let mut twin = [0xff; 32];
        twin[0] = 0xee;
        twin[31] = 0x7f;
        let not_a_point = (2..=255u8)
            .map(|y| {
                let mut bytes = [0u8; 32];
                bytes[0] = y;
                bytes
            })
            .find(|bytes| CompressedEdwardsY(*bytes).decompress().is_none())
            .expect("about half of all y are not on the curve");
        keys.extend([one, twin, not_a_point]);
        for round in 0..3 {
            for key in keys.iter().chain(keys.iter().rev()) {
                let expected = CompressedEdwardsY(*key).decompress();
                assert_eq!(decompress_key(key), expected, "round {round}, key {key:?}");
            }
        }
        let cached = KEYS.with(|cache| cache.borrow().iter().flatten().any(|(key, _)| *key == not_a_point));
        assert!(!cached, "a non-point was cached");
    }

    #[test]
    fn the_cached_curve_backend_is_the_detected_one() {
        let first = curve_backend();
        assert_eq!(first, detect_curve_backend());
        assert!(["avx512", "avx2", "serial"].contains(&first));
        assert_eq!(curve_backend(), first);
    }

    /// Bisection's cost, counted in batch equations on this thread: a good chunk is one check;
    /// one bad signature among 32 is found in at most 2·log2(32/4) + 1 checks, the rest of the
    /// way single checks.
    #[test]
    fn a_good_chunk_costs_one_batch_check_and_one_bad_signature_a_few() {
        let owned: Vec<Owned> = (0..32u8).map(|i| signed(i, &[i; 40])).collect();
        let items: Vec<VerifyItem<'_>> = owned.iter().map(Owned::item).collect();
        let checks = |items: &[VerifyItem<'_>]| {
            let mut verdicts = vec![false; items.len()];
            BATCH_CHECKS.with(|checks| checks.set(0));
            verify_chunk(items, &mut verdicts);
            (BATCH_CHECKS.with(std::cell::Cell::get), verdicts)
        };
        let (good, verdicts) = checks(&items);
        assert!(verdicts.iter().all(|v| *v));
        assert_eq!(good, 1, "a good chunk is checked once, as a whole");
        let mut bad = owned[17].signature;
        bad[0] ^= 1;
        let mut items = items.clone();
        items[17].signature = &bad;
        let (one_bad, verdicts) = checks(&items);
        assert_eq!(verdicts.iter().filter(|v| !**v).count(), 1);
        assert!(!verdicts[17]);
        assert!(one_bad <= 7, "{one_bad} batch checks to find one bad signature among 32");
    }

    /// Signatures under one key share one term of the batch equation; the equation holds for
    /// a good batch as a whole, and a bad signature under a shared key is still found alone.
    #[test]
    fn signatures_under_one_key_share_a_term() {
        let owned: Vec<Owned> = (0..48u8).map(|i| signed(i % 3, &[i; 20])).collect();
        let items: Vec<VerifyItem<'_>> = owned.iter().map(Owned::item).collect();
        let prepared: Vec<Prepared> = items.iter().map(|item| prepare(item).expect("decodes")).collect();
        let z = batch_coefficients(&prepared);
        let terms = key_terms(&prepared, &z);
        assert_eq!(terms.len(), 3, "one term per key");
        let per_key: Scalar = prepared.iter().zip(&z).step_by(3).map(|(p, z)| z * p.k).sum();
        assert_eq!(terms[&owned[0].public_key[..]].0, per_key, "a key's term sums its signatures' z·k");
        assert!(verify_batch(&items), "a good batch holds as a whole");
        let mut verdicts = vec![false; items.len()];
        BATCH_CHECKS.with(|checks| checks.set(0));
        verify_chunk(&items, &mut verdicts);
        assert_eq!(BATCH_CHECKS.with(std::cell::Cell::get), 1);
        assert!(verdicts.iter().all(|ok| *ok));
        // The same (key, message, signature) twice, and a bad signature under a shared key.
        let mut bad = owned[22].signature;
        bad[5] ^= 4;
        let mut items = items.clone();
        items[22].signature = &bad;
        items.push(items[7]);
        let mut verdicts = vec![false; items.len()];
        verify_many(&items, &mut verdicts, 64);
        let refused: Vec<usize> = (0..items.len()).filter(|i| !verdicts[*i]).collect();
        assert_eq!(refused, vec![22]);
        assert_paths_agree(&items);
    }

    /// What `tessera sigverify` prints for each refused signature comes from here.
    #[test]
    fn check_detailed_names_each_refusal() {
        let good = signed(1, b"m");
        assert_eq!(check_detailed(&good.item()), Ok(()));
        let mut other_message = signed(1, b"m");
        other_message.message = b"n".to_vec();
        assert_eq!(check_detailed(&other_message.item()), Err(Refusal::Equation));
        let mut s_too_big = signed(1, b"m");
        s_too_big.signature[63] |= 0xf0;
        assert_eq!(check_detailed(&s_too_big.item()), Err(Refusal::SNotCanonical));
    }

    /// The simulator's stand-in tags: a tag binds its key and its message, and a transaction's
    /// tag is its sender's over its signing bytes, so a changed field needs a new tag.
    #[test]
    fn stand_in_tags_bind_the_key_and_the_message() {
        let tag = stand_in_sign(&[1; 32], b"m");
        assert_ne!(tag, stand_in_sign(&[2; 32], b"m"));
        assert_ne!(tag, stand_in_sign(&[1; 32], b"n"));
        let body = tessera_components::TxnBody::transfer(1, [3; 32], [4; 32], 5, 1, 0);
        assert_eq!(stand_in_signature(&body), stand_in_sign(&body.sender, body.signing_bytes()));
        let more = tessera_components::TxnBody { amount: 6, ..body };
        assert_ne!(stand_in_signature(&body), stand_in_signature(&more));
    }

    struct Owned {
        public_key: [u8; 32],
        message: Vec<u8>,
        signature: [u8; 64],
    }

    impl Owned {
        fn item(&self) -> VerifyItem<'_> {
            VerifyItem { public_key: &self.public_key, message: &self.message, signature: &self.signature }
        }
    }

    fn signed(seed: u8, message: &[u8]) -> Owned {
        let key = SigningKey::from_bytes(&[seed; 32]);
        Owned {
            public_key: key.verifying_key().to_bytes(),
            message: message.to_vec(),
            signature: key.sign(message).to_bytes(),
        }
    }

    fn hex_bytes(text: &str) -> Vec<u8> {
        hex::decode(text).expect("vector hex")
    }

    /// Small-order points (the eight torsion points), canonically encoded.
    fn canonical_torsion_encodings() -> Vec<[u8; 32]> {
        curve25519_dalek::constants::EIGHT_TORSION.iter().map(|p| p.compress().to_bytes()).collect()
    }

    /// All verdict paths must agree on `items`.
    fn assert_paths_agree(items: &[VerifyItem<'_>]) {
        let singles: Vec<bool> = items.iter().map(verify_single).collect();
        let reference: Vec<bool> = items.iter().map(verify_reference).collect();
        assert_eq!(reference, singles, "reference implementation disagrees");
        let mut each = vec![false; items.len()];
        verify_each(items, &mut each);
        assert_eq!(each, singles);
        for batch_size in [1, 2, 3, 7, 64] {
            let mut many = vec![false; items.len()];
            verify_many(items, &mut many, batch_size);
            assert_eq!(many, singles, "verify_many(batch_size = {batch_size}) disagrees with verify_single");
        }
        assert_eq!(verify_batch(items), singles.iter().all(|ok| *ok));
    }

    #[test]
    fn good_signatures_pass_and_a_bad_one_is_found() {
        let mut owned: Vec<Owned> = (0..40).map(|i| signed(i, &[i; 17])).collect();
        owned[13].signature[3] ^= 1;
        owned[29].message[0] ^= 1;
        let items: Vec<_> = owned.iter().map(Owned::item).collect();
        let mut verdicts = vec![false; items.len()];
        verify_many(&items, &mut verdicts, 16);
        let bad: Vec<usize> = verdicts.iter().enumerate().filter(|(_, ok)| !**ok).map(|(i, _)| i).collect();
        assert_eq!(bad, vec![13, 29]);
        assert_paths_agree(&items);
    }

    #[test]
    fn non_canonical_s_is_refused_everywhere() {
        let good = signed(1, b"m");
        let mut bad = signed(1, b"m");
        // S + ℓ: same value mod ℓ, non-canonical encoding.
        let s: [u8; 32] = good.signature[32..].try_into().unwrap();
        bad.signature[32..].copy_from_slice(&plus_ell(&s, 1));
        assert!(verify_single(&good.item()));
        assert!(!verify_single(&bad.item()));
        assert_paths_agree(&[good.item(), bad.item(), good.item()]);
    }

    #[test]
    fn small_order_key_with_identity_equation_is_accepted_by_the_rule() {
        // A = a torsion point, R = a torsion point, S = 0: [8](0·B - R - kA) = 0 for any k.
        // ZIP-215 accepts these; the point of the test is that every path agrees.
        let torsion = canonical_torsion_encodings();
        let mut owned = Vec::new();
        for a in &torsion {
            for r in &torsion {
                let mut signature = [0u8; 64];
                signature[..32].copy_from_slice(r);
                owned.push(Owned { public_key: *a, message: b"small order".to_vec(), signature });
            }
        }
        let items: Vec<_> = owned.iter().map(Owned::item).collect();
        assert!(items.iter().all(verify_single), "ZIP-215 accepts small-order A and R with S = 0");
        assert_paths_agree(&items);
    }

    #[test]
    fn mixed_order_keys_agree_between_single_and_batch() {
        // A' = A + T for torsion T, signature made for A: the cofactorless equation fails, the
        // cofactored one passes whenever k·T vanishes after ×8, which it always does.
        let torsion = curve25519_dalek::constants::EIGHT_TORSION;
        let mut owned = Vec::new();
        for (i, t) in torsion.iter().enumerate() {
            let key = SigningKey::from_bytes(&[40 + i as u8; 32]);
            let message = vec![i as u8; 9];
            let signature = key.sign(&message).to_bytes();
            let a = CompressedEdwardsY(key.verifying_key().to_bytes()).decompress().unwrap();
            owned.push(Owned { public_key: (a + t).compress().to_bytes(), message, signature });
        }
        let items: Vec<_> = owned.iter().map(Owned::item).collect();
        assert_paths_agree(&items);
    }

    #[test]
    fn rfc8032_vectors() {
        let text =
            std::fs::read_to_string(vectors_dir().join("rfc8032_ed25519_section7_1.json")).expect("vectors");
        let json = serde_json::from_str::<serde_json::Value>(&text).expect("json");
        let mut count = 0;
        for vector in json["tests"].as_array().expect("tests") {
            let public_key: [u8; 32] = hex_bytes(vector["public_key"].as_str().unwrap()).try_into().unwrap();
            let message = hex_bytes(vector["message"].as_str().unwrap());
            let signature: [u8; 64] = hex_bytes(vector["signature"].as_str().unwrap()).try_into().unwrap();
            let seed: [u8; 32] = hex_bytes(vector["secret_key"].as_str().unwrap()).try_into().unwrap();
            assert_eq!(SigningKey::from_bytes(&seed).sign(&message).to_bytes(), signature);
            let item = VerifyItem { public_key: &public_key, message: &message, signature: &signature };
            assert!(verify_single(&item));
            assert!(verify_batch(&[item, item]));
            count += 1;
        }
        assert_eq!(count, 5);
    }

    #[test]
    fn wycheproof_vectors_with_named_departure() {
        let text =
            std::fs::read_to_string(vectors_dir().join("wycheproof_ed25519_test.json")).expect("vectors");
        let json = serde_json::from_str::<serde_json::Value>(&text).expect("json");
        let mut owned = Vec::new();
        let mut expected = Vec::new();
        for group in json["testGroups"].as_array().expect("groups") {
            let public_key = hex_bytes(group["publicKey"]["pk"].as_str().unwrap());
            for test in group["tests"].as_array().expect("tests") {
                let tc_id = test["tcId"].as_u64().unwrap();
                let valid = test["result"].as_str().unwrap() == "valid";
                let signature = hex_bytes(test["sig"].as_str().unwrap());
                let (Ok(public_key), Ok(signature)) =
                    (<[u8; 32]>::try_from(public_key.as_slice()), <[u8; 64]>::try_from(signature.as_slice()))
                else {
                    // Wrong-length signatures never reach the kernel: the wire layout is fixed.
                    assert!(!valid, "tcId {tc_id}: a valid vector has the standard lengths");
                    continue;
                };
                // The rule's one named departure from Wycheproof: tcId 151 has R encoding y = 1
                // with the sign bit set (non-canonical), which ZIP-215 accepts.
                expected.push(valid || tc_id == 151);
                owned.push(Owned {
                    public_key,
                    message: hex_bytes(test["msg"].as_str().unwrap()),
                    signature,
                });
            }
        }
        let items: Vec<_> = owned.iter().map(Owned::item).collect();
        let singles: Vec<bool> = items.iter().map(verify_single).collect();
        assert_eq!(singles, expected);
        assert!(items.len() > 100, "loaded {} vectors", items.len());
        assert_paths_agree(&items);
    }

    /// A differential input item: real signature by `[key; 32]` on `message`, then the bits
    /// `flips` names flipped (0–511 signature, 512–767 key, then the message).
    fn seed_flipped(key: u8, message: &[u8], flips: &[u16]) -> Vec<u8> {
        assert!(flips.len() <= 3 && message.len() < 64);
        let mut item = vec![1 | (flips.len() as u8) << 2];
        item.extend_from_slice(&[key; 32]);
        item.push(message.len() as u8);
        item.extend_from_slice(message);
        for flip in flips {
            item.extend_from_slice(&flip.to_le_bytes());
        }
        item
    }

    /// A real signature, and the same with S + `multiple`·ℓ.
    fn seed_s_plus_ell(key: u8, message: &[u8], multiple: u8) -> Vec<u8> {
        assert!((1..=14).contains(&multiple) && message.len() < 64);
        let mut item = vec![2 | (multiple - 1) << 2];
        item.extend_from_slice(&[key; 32]);
        item.push(message.len() as u8);
        item.extend_from_slice(message);
        item
    }

    /// A signature valid under the cofactored equation with torsion in A and R: `points` names
    /// T_A (bits 0–2), T_R (bits 3–5), a = 0 (bit 6), r = 0 (bit 7); `encodings` the encoding
    /// of a pure small-order A (low nibble) and R (high nibble).
    fn seed_torsion(points: u8, encodings: u8, seed: u8, message: &[u8]) -> Vec<u8> {
        let mut item = vec![3, points, encodings];
        item.extend_from_slice(&[seed; 32]);
        item.push(message.len() as u8);
        item.extend_from_slice(message);
        item
    }

    /// Hand-built inputs that reach every case of the harness: bit flips in R, S, S's top
    /// bits, R's sign bit, the key and a long message's tail; flips that cancel; S + ℓ and
    /// S + 14ℓ; every pair of torsion components, mixed and pure, in every encoding.
    fn hand_seeds() -> Vec<Vec<u8>> {
        let long: Vec<u8> = (0..48).collect();
        let mut seeds = Vec::new();
        let mut flipped = Vec::new();
        for (key, flips) in [
            (3u8, &[][..]),
            (4, &[0][..]),
            (5, &[300][..]),
            (6, &[511][..]),
            (7, &[255][..]),
            (8, &[600][..]),
            (9, &[768 + 8 * 40 + 3][..]),
            (10, &[17, 17][..]),
            (11, &[255, 767, 400][..]),
        ] {
            flipped.extend(seed_flipped(key, &long, flips));
        }
        // R's sign bit, on keys whose R has it clear and set alike.
        for key in 12..28u8 {
            flipped.extend(seed_flipped(key, b"sign", &[255]));
        }
        seeds.push(flipped);
        let mut high_s = Vec::new();
        for (key, multiple) in [(1u8, 1u8), (2, 14), (3, 7)] {
            high_s.extend(seed_s_plus_ell(key, b"m", multiple));
        }
        seeds.push(high_s);
        for chunk in (0..=255u8).collect::<Vec<u8>>().chunks(16) {
            let mut torsion = Vec::new();
            for &points in chunk {
                torsion.extend(seed_torsion(points, points.wrapping_mul(37), points, b"small order"));
            }
            seeds.push(torsion);
        }
        seeds
    }

    #[test]
    fn torsion_encodings_include_the_non_canonical_ones() {
        let encodings = torsion_encodings();
        let torsion = curve25519_dalek::constants::EIGHT_TORSION;
        for (point, all) in torsion.iter().zip(encodings) {
            assert_eq!(all[0], point.compress().to_bytes(), "canonical first");
            for encoding in all {
                assert_eq!(CompressedEdwardsY(*encoding).decompress(), Some(*point));
            }
        }
        // The identity: y = 1 with x's sign bit set, and y = p + 1 with either sign; the point
        // of order 2: y = p − 1 with the sign bit set; the two of order 4: y = p.
        assert_eq!(encodings.iter().map(Vec::len).sum::<usize>(), 8 + 6);
    }

    #[test]
    fn seeded_differential_smoke() {
        let mut stream = crate::workload::SeedStream::new("sigverify differential smoke", 1);
        for round in 0..2000 {
            let mut data = vec![0u8; 40 + (round % 5) * 110];
            for byte in data.iter_mut() {
                *byte = stream.next_u64() as u8;
            }
            fuzz_differential(&data);
        }
        let seeds = hand_seeds();
        for seed in &seeds {
            fuzz_differential(seed);
        }
        let mut mutations = tessera_components::fuzz::FuzzSeeds::new(0x5197);
        for round in 0..300 {
            fuzz_differential(&mutations.mutate(&seeds[round % seeds.len()]));
        }
        let refs: Vec<&[u8]> = seeds.iter().map(Vec::as_slice).collect();
        tessera_components::fuzz::fuzz_write_seeds("sigverify_diff", &refs);
        for input in tessera_components::fuzz::fuzz_corpus("sigverify_diff") {
            fuzz_differential(&input);
        }
    }

    /// The first oracle failure over `inputs` with `paths` in place of the node's.
    fn oracle_failure(inputs: &[Vec<u8>], paths: &Paths) -> Option<String> {
        tessera_components::fuzz::fuzz_first_failure(inputs, |input| fuzz_differential_with(input, paths))
    }

    /// The oracle passes the node's paths on the hand seeds, and fails `paths` with a message
    /// containing `reported`.
    fn assert_caught(paths: &Paths, reported: &str) {
        let seeds = hand_seeds();
        assert_eq!(oracle_failure(&seeds, &NODE_PATHS), None);
        let failure = oracle_failure(&seeds, paths).expect("the oracle missed the planted bug");
        eprintln!("the oracle reported: {failure}");
        assert!(failure.contains(reported), "the oracle reported {failure:?}");
    }

    /// `[S]B − [k]A − R = 0` without the cofactor: RFC 8032's cofactorless equation.
    fn cofactorless_single(item: &VerifyItem<'_>) -> bool {
        prepare(item).is_ok_and(|p| {
            (EdwardsPoint::vartime_double_scalar_mul_basepoint(&p.k, &-p.a, &p.s) - p.r).is_identity()
        })
    }

    #[test]
    fn the_oracle_catches_a_cofactorless_single_check() {
        let paths = Paths { single: cofactorless_single, ..NODE_PATHS };
        assert_caught(&paths, "(torsion): the single path gives the wrong verdict");
    }

    #[test]
    fn the_oracle_catches_a_cofactorless_batch_equation() {
        fn batch(items: &[VerifyItem<'_>]) -> bool {
            let Ok(prepared) = items.iter().map(prepare).collect::<Result<Vec<_>, _>>() else { return false };
            let z = batch_coefficients(&prepared);
            let b_coefficient = -prepared.iter().zip(&z).map(|(p, z)| z * p.s).sum::<Scalar>();
            let scalars = std::iter::once(b_coefficient)
                .chain(z.iter().copied())
                .chain(prepared.iter().zip(&z).map(|(p, z)| z * p.k));
            let points = std::iter::once(ED25519_BASEPOINT_POINT)
                .chain(prepared.iter().map(|p| p.r))
                .chain(prepared.iter().map(|p| p.a));
            EdwardsPoint::vartime_multiscalar_mul(scalars, points).is_identity()
        }
        let paths = Paths { batch, ..NODE_PATHS };
        assert_caught(&paths, "the whole-batch verdict disagrees");
    }

    #[test]
    fn the_oracle_catches_a_batch_that_reduces_s() {
        // S read modulo ℓ instead of refused when not canonical: S + ℓ then verifies.
        fn batch(items: &[VerifyItem<'_>]) -> bool {
            items.iter().all(|item| {
                let mut signature = *item.signature;
                let s: [u8; 32] = signature[32..].try_into().unwrap();
                signature[32..].copy_from_slice(Scalar::from_bytes_mod_order(s).as_bytes());
                verify_single(&VerifyItem { signature: &signature, ..*item })
            })
        }
        let paths = Paths { batch, ..NODE_PATHS };
        assert_caught(&paths, "the whole-batch verdict disagrees");
    }

    #[test]
    fn the_oracle_catches_a_single_check_that_refuses_non_canonical_points() {
        // RFC 8032 decoding: y ≥ p, or x = 0 with the sign bit set, is refused.
        fn single(item: &VerifyItem<'_>) -> bool {
            let canonical = |bytes: &[u8; 32]| {
                CompressedEdwardsY(*bytes)
                    .decompress()
                    .is_some_and(|point| point.compress().to_bytes() == *bytes)
            };
            let r: &[u8; 32] = item.signature[..32].try_into().unwrap();
            canonical(item.public_key) && canonical(r) && verify_single(item)
        }
        let paths = Paths { single, ..NODE_PATHS };
        assert_caught(&paths, "(torsion): the single path gives the wrong verdict");
    }

    #[test]
    fn the_oracle_catches_a_hash_over_part_of_the_message() {
        // k computed over the first 32 bytes of the message only.
        fn single(item: &VerifyItem<'_>) -> bool {
            verify_single(&VerifyItem { message: &item.message[..item.message.len().min(32)], ..*item })
        }
        let paths = Paths { single, ..NODE_PATHS };
        assert_caught(&paths, "(signed, bits flipped): the single path gives the wrong verdict");
    }

    #[test]
    fn the_oracle_catches_a_decoder_that_ignores_r_sign_bit() {
        // R's x sign bit read loosely: either point with R's y is taken. Every real signature
        // still passes; only a flip of bit 255 (which the fuzz input can now name) tells.
        fn single(item: &VerifyItem<'_>) -> bool {
            let mut other = *item.signature;
            other[31] ^= 0x80;
            verify_single(item) || verify_single(&VerifyItem { signature: &other, ..*item })
        }
        let paths = Paths { single, ..NODE_PATHS };
        assert_caught(&paths, "(signed, bits flipped): the single path gives the wrong verdict");
    }

    fn vectors_dir() -> std::path::PathBuf {
        std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("../testdata/vectors")
    }

    proptest! {
        #![proptest_config(ProptestConfig::with_cases(64))]

        /// Random byte mutations of valid signatures, keys and messages: every path agrees.
        #[test]
        fn mutated_batches_agree(
            seeds in prop::collection::vec(any::<u8>(), 1..24),
            flips in prop::collection::vec((any::<usize>(), 0usize..3, any::<usize>()), 0..6),
            torsion_swaps in prop::collection::vec((any::<usize>(), 0usize..8), 0..3),
        ) {
            let mut owned: Vec<Owned> = seeds.iter().map(|s| signed(*s, &[*s, 1, 2])).collect();
            for (which, part, bit) in flips {
                let target = &mut owned[which % seeds.len()];
                match part {
                    0 => target.signature[(bit / 8) % 64] ^= 1 << (bit % 8),
                    1 => target.public_key[(bit / 8) % 32] ^= 1 << (bit % 8),
                    _ => target.message[(bit / 8) % 3] ^= 1 << (bit % 8),
                }
            }
            let torsion = canonical_torsion_encodings();
            for (which, t) in torsion_swaps {
                let len = owned.len();
                owned[which % len].signature[..32].copy_from_slice(&torsion[t]);
            }
            let items: Vec<_> = owned.iter().map(Owned::item).collect();
            assert_paths_agree(&items);
        }

        /// The same, with few keys signing many messages, so a batch's signatures share key
        /// terms: a flipped bit of one signature, key or message must still be found alone.
        #[test]
        fn mutated_batches_under_shared_keys_agree(
            keys in 1u8..5,
            count in 2usize..40,
            flips in prop::collection::vec((any::<usize>(), 0usize..3, any::<usize>()), 0..4),
        ) {
            let mut owned: Vec<Owned> = (0..count).map(|i| signed(i as u8 % keys, &[i as u8, 1, 2])).collect();
            for (which, part, bit) in flips {
                let target = &mut owned[which % count];
                match part {
                    0 => target.signature[(bit / 8) % 64] ^= 1 << (bit % 8),
                    1 => target.public_key[(bit / 8) % 32] ^= 1 << (bit % 8),
                    _ => target.message[(bit / 8) % 3] ^= 1 << (bit % 8),
                }
            }
            let items: Vec<_> = owned.iter().map(Owned::item).collect();
            assert_paths_agree(&items);
        }
    }
}
