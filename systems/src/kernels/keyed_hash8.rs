//! BLAKE3 keyed hashes of many inputs of one length, eight at a time: each lane of a `wide`
//! `u32x8` carries one input through the compression function (AVX2 when the crate is built for
//! it, as the project's `.cargo/config.toml` does; `wide`'s narrower fallbacks otherwise).
//!
//! The state tree hashes each touched account's leaf (80 bytes) and every node on its path (64
//! bytes): about 100,000 short hashes a block at ten million accounts. One at a time, each is a
//! compression or two with a hasher's setup around it: 60 ns for a node and 130 ns for a leaf
//! here (`tessera bench state` prints both ways). The `blake3` crate
//! hashes many inputs in parallel lanes only inside one long input (its `hash_many` is not part of
//! its public interface), so the state tree's short, independent hashes are laned here.
//!
//! The output is exactly `blake3::keyed_hash(key, input)` for inputs of 1 to 1,024 bytes (one
//! chunk). The tests check it against the crate at the lengths around each block boundary, at a
//! whole chunk, and at the tree's two lengths for any input. The algorithm is the one of the BLAKE3
//! specification, section 2: a chunk of one to sixteen blocks, the first flagged `CHUNK_START`,
//! the last `CHUNK_END | ROOT`, every one `KEYED_HASH`, the key as the first chaining value.
//!
//! [`derive_key_many`] is the same with `DERIVE_KEY_MATERIAL` in `KEYED_HASH`'s place: the
//! second half of `blake3::derive_key`, given its context key (a [`Domain`]'s digests), which the
//! simulator's and the workload's seed-derived addresses use (ten million of them at a start).
//!
//! [`Domain`]: tessera_components::Domain

use wide::u32x8;

const IV: [u32; 8] =
    [0x6A09_E667, 0xBB67_AE85, 0x3C6E_F372, 0xA54F_F53A, 0x510E_527F, 0x9B05_688C, 0x1F83_D9AB, 0x5BE0_CD19];
const MSG_PERMUTATION: [usize; 16] = [2, 6, 3, 10, 7, 0, 4, 13, 1, 11, 12, 5, 9, 14, 15, 8];
const CHUNK_START: u32 = 1;
const CHUNK_END: u32 = 2;
const ROOT: u32 = 8;
const KEYED_HASH: u32 = 16;
const DERIVE_KEY_MATERIAL: u32 = 64;
const BLOCK_LEN: usize = 64;
const CHUNK_LEN: usize = 1024;
const LANES: usize = 8;

#[inline(always)]
fn rotr(x: u32x8, n: u32) -> u32x8 {
    (x >> n) | (x << (32 - n))
}

#[inline(always)]
#[allow(clippy::many_single_char_names)]
fn g(v: &mut [u32x8; 16], a: usize, b: usize, c: usize, d: usize, x: u32x8, y: u32x8) {
    v[a] = v[a] + v[b] + x;
    v[d] = rotr(v[d] ^ v[a], 16);
    v[c] += v[d];
    v[b] = rotr(v[b] ^ v[c], 12);
    v[a] = v[a] + v[b] + y;
    v[d] = rotr(v[d] ^ v[a], 8);
    v[c] += v[d];
    v[b] = rotr(v[b] ^ v[c], 7);
}

#[inline(always)]
fn round(v: &mut [u32x8; 16], m: &[u32x8; 16]) {
    g(v, 0, 4, 8, 12, m[0], m[1]);
    g(v, 1, 5, 9, 13, m[2], m[3]);
    g(v, 2, 6, 10, 14, m[4], m[5]);
    g(v, 3, 7, 11, 15, m[6], m[7]);
    g(v, 0, 5, 10, 15, m[8], m[9]);
    g(v, 1, 6, 11, 12, m[10], m[11]);
    g(v, 2, 7, 8, 13, m[12], m[13]);
    g(v, 3, 4, 9, 14, m[14], m[15]);
}

/// One compression of a block in each lane, at chunk counter 0; the new chaining values.
#[inline(always)]
fn compress(cv: &[u32x8; 8], mut m: [u32x8; 16], block_len: u32, flags: u32) -> [u32x8; 8] {
    let zero = u32x8::splat(0);
    let mut v = [
        cv[0],
        cv[1],
        cv[2],
        cv[3],
        cv[4],
        cv[5],
        cv[6],
        cv[7],
        u32x8::splat(IV[0]),
        u32x8::splat(IV[1]),
        u32x8::splat(IV[2]),
        u32x8::splat(IV[3]),
        zero,
        zero,
        u32x8::splat(block_len),
        u32x8::splat(flags),
    ];
    for r in 0..7 {
        round(&mut v, &m);
        if r < 6 {
            let old = m;
            for (word, from) in m.iter_mut().zip(MSG_PERMUTATION) {
                *word = old[from];
            }
        }
    }
    std::array::from_fn(|i| v[i] ^ v[i + 8])
}

/// The `b`-th block of each lane's input, as message words (zero past the input's end): each
/// lane's sixteen words loaded as two rows, and the rows transposed into one vector a word.
#[inline(always)]
fn block_words<const L: usize>(lanes: &[&[u8; L]; LANES], b: usize) -> [u32x8; 16] {
    let start = b * BLOCK_LEN;
    let words: [[u32; 16]; LANES] = std::array::from_fn(|lane| {
        let mut block = [0u8; BLOCK_LEN];
        if start + BLOCK_LEN <= L {
            block.copy_from_slice(&lanes[lane][start..start + BLOCK_LEN]);
        } else {
            block[..L - start].copy_from_slice(&lanes[lane][start..]);
        }
        bytemuck::cast::<[u8; BLOCK_LEN], [u32; 16]>(block).map(u32::from_le)
    });
    let half = |h: usize| {
        u32x8::transpose(std::array::from_fn(|lane| {
            u32x8::new(words[lane][8 * h..8 * h + 8].try_into().expect("8 words"))
        }))
    };
    let (low, high) = (half(0), half(1));
    std::array::from_fn(|w| if w < 8 { low[w] } else { high[w - 8] })
}

/// `blake3::keyed_hash(key, input)` of each input, into `out` (one 32-byte hash per input).
///
/// `L` must be 1 to 1,024 (one chunk); another does not compile.
///
/// # Panics
/// If `out` and `inputs` differ in length: a bug in the caller, not bad input.
pub fn keyed_hash_many<const L: usize>(key: &[u8; 32], inputs: &[[u8; L]], out: &mut [[u8; 32]]) {
    hash_many(key, KEYED_HASH, inputs, out);
}

/// The second half of `blake3::derive_key`, keyed by the context's key (what
/// `blake3::Hasher::new_from_context_key(context_key)` gives for each input), into `out`.
///
/// `L` must be 1 to 1,024 (one chunk); another does not compile.
///
/// # Panics
/// If `out` and `inputs` differ in length: a bug in the caller, not bad input.
pub fn derive_key_many<const L: usize>(context_key: &[u8; 32], inputs: &[[u8; L]], out: &mut [[u8; 32]]) {
    hash_many(context_key, DERIVE_KEY_MATERIAL, inputs, out);
}

/// One chunk's hash of each input, every block flagged `mode`, the key as the first chaining
/// value.
fn hash_many<const L: usize>(key: &[u8; 32], mode: u32, inputs: &[[u8; L]], out: &mut [[u8; 32]]) {
    const { assert!(L > 0 && L <= CHUNK_LEN, "one chunk of input") };
    assert_eq!(inputs.len(), out.len(), "one output per input");
    let key_words: [u32x8; 8] = std::array::from_fn(|i| {
        u32x8::splat(u32::from_le_bytes(key[4 * i..4 * i + 4].try_into().expect("4 bytes")))
    });
    let blocks = L.div_ceil(BLOCK_LEN);
    let last_len = (L - (blocks - 1) * BLOCK_LEN) as u32;
    let pad = [0u8; L];
    for (chunk, out) in inputs.chunks(LANES).zip(out.chunks_mut(LANES)) {
        // A short last group fills its empty lanes with zeros, whose hashes are dropped.
        let lanes: [&[u8; L]; LANES] = std::array::from_fn(|lane| chunk.get(lane).unwrap_or(&pad));
        let mut cv = key_words;
        for b in 0..blocks {
            let mut flags = mode;
            if b == 0 {
                flags |= CHUNK_START;
            }
            let block_len = if b + 1 == blocks {
                flags |= CHUNK_END | ROOT;
                last_len
            } else {
                BLOCK_LEN as u32
            };
            cv = compress(&cv, block_words(&lanes, b), block_len, flags);
        }
        let words = cv.map(u32x8::to_array);
        for (lane, hash) in out.iter_mut().enumerate() {
            for (i, word) in words.iter().enumerate() {
                hash[4 * i..4 * i + 4].copy_from_slice(&word[lane].to_le_bytes());
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    fn check<const L: usize>(key: [u8; 32], seed: u8, count: usize) {
        let inputs: Vec<[u8; L]> = (0..count)
            .map(|i| std::array::from_fn(|j| (j as u8).wrapping_mul(31) ^ seed ^ (i as u8).wrapping_mul(7)))
            .collect();
        let mut out = vec![[0u8; 32]; count];
        keyed_hash_many(&key, &inputs, &mut out);
        for (input, hash) in inputs.iter().zip(&out) {
            assert_eq!(hash, blake3::keyed_hash(&key, input).as_bytes(), "{L} bytes, {count} inputs");
        }
    }

    #[test]
    fn every_length_of_one_chunk_hashes_as_blake3_does() {
        let key = *blake3::hash(b"a key").as_bytes();
        // Lengths at and around each block boundary, the state tree's two, and a whole chunk;
        // counts below, at and past a group of eight lanes.
        for count in [0, 1, 7, 8, 9, 17] {
            check::<1>(key, 1, count);
            check::<4>(key, 2, count);
            check::<63>(key, 3, count);
            check::<64>(key, 4, count);
            check::<65>(key, 5, count);
            check::<80>(key, 6, count);
            check::<127>(key, 7, count);
            check::<128>(key, 8, count);
            check::<129>(key, 9, count);
            check::<1023>(key, 10, count);
            check::<1024>(key, 11, count);
        }
    }

    fn check_derived<const L: usize>(context: &str, count: usize) {
        let context_key = blake3::hazmat::hash_derive_key_context(context);
        let inputs: Vec<[u8; L]> =
            (0..count).map(|i| std::array::from_fn(|j| (j as u8).wrapping_mul(13) ^ (i as u8))).collect();
        let mut out = vec![[0u8; 32]; count];
        derive_key_many(&context_key, &inputs, &mut out);
        for (input, hash) in inputs.iter().zip(&out) {
            assert_eq!(*hash, blake3::derive_key(context, input), "{L} bytes, {count} inputs");
        }
    }

    #[test]
    fn derived_keys_are_blake3s() {
        // 16 bytes is a seed-derived address's input; the rest are block boundaries.
        for count in [0, 1, 8, 11] {
            check_derived::<16>("tessera test context", count);
            check_derived::<1>("another context", count);
            check_derived::<64>("tessera test context", count);
            check_derived::<65>("tessera test context", count);
            check_derived::<1024>("tessera test context", count);
        }
    }

    proptest! {
        #[test]
        fn any_inputs_of_the_state_trees_lengths_hash_as_blake3_does(
            key in any::<[u8; 32]>(),
            nodes in proptest::collection::vec(any::<[u8; 32]>(), 0..20),
        ) {
            let node_inputs: Vec<[u8; 64]> =
                nodes.iter().map(|half| std::array::from_fn(|i| half[i % 32] ^ (i as u8))).collect();
            let mut out = vec![[0u8; 32]; nodes.len()];
            keyed_hash_many(&key, &node_inputs, &mut out);
            for (input, hash) in node_inputs.iter().zip(&out) {
                prop_assert_eq!(*hash, *blake3::keyed_hash(&key, input).as_bytes());
            }
            let leaf_inputs: Vec<[u8; 80]> =
                nodes.iter().map(|half| std::array::from_fn(|i| half[i % 32].wrapping_add(i as u8))).collect();
            keyed_hash_many(&key, &leaf_inputs, &mut out);
            for (input, hash) in leaf_inputs.iter().zip(&out) {
                prop_assert_eq!(*hash, *blake3::keyed_hash(&key, input).as_bytes());
            }
        }
    }
}
