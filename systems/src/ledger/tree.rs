//! The state commitment: a binary Merkle tree over the accounts in slot order, updated along
//! the paths of the accounts a block touched, so a block's root costs O(k log N) hashes for k
//! touched accounts of N, not a pass over all of them.
//!
//! The hashes (leaf, node, state root) are defined in [`tessera_components::state`], beside the
//! proof check, so that a client can check a proof without this crate.

use rayon::prelude::*;
use tessera_components::Hash;
pub use tessera_components::state::{leaf, node};
use tessera_components::state::{node_input, node_key};

use super::paged::{PAGE, Paged, Sharing};
use crate::kernels::keyed_hash8::keyed_hash_many;

/// Levels with at least this many changed nodes are rehashed on every core.
const PARALLEL_NODES_MIN: usize = 2048;

/// Hashes a core takes at a time: enough to pay for the handoff, few enough that both cores
/// share a block's level.
const HASH_CHUNK: usize = 512;

/// How many inputs ahead of the one it gathers [`hash_each`] hints the next reads.
/// Enough to keep a core's misses in flight, few enough that the lines are still cached when
/// read.
pub const AHEAD: usize = 16;

/// `blake3::keyed_hash(key, &input(i))` for every `i` below `len`, chunk by chunk: a chunk's
/// inputs are gathered in a pass of their own, then hashed eight lanes at a time
/// ([`keyed_hash_many`]); the chunks run on every core when there are many.
///
/// The gathering pass is what makes the tree's updates cheap at scale: the nodes and columns a
/// block's paths read are spread over hundreds of megabytes, so nearly every read misses the
/// cache. Reads that wait on nothing but their index let a core overlap their misses, where a
/// read between two hashes was waited for alone.
///
/// And `ahead(i + AHEAD)` is called before gathering `input(i)` (`ahead` of each of a chunk's
/// first [`AHEAD`] inputs before its first): `ahead` hints the cache with the lines `input` will
/// read ([`prefetch`](crate::kernels::prefetch::prefetch)). A core overlaps only the misses its
/// reorder window reaches, a few inputs' worth; hinted, many more are in flight. `ahead` must
/// not panic for an index below `len`; it is never called for one at or past it.
pub fn hash_each<const L: usize>(
    key: &[u8; 32],
    len: usize,
    ahead: impl Fn(usize) + Sync,
    input: impl Fn(usize) -> [u8; L] + Sync,
) -> Vec<Hash> {
    let mut out = vec![Hash::ZERO; len];
    let chunk = |(c, out): (usize, &mut [Hash])| hash_run(key, c * HASH_CHUNK, out, &ahead, &input);
    if len >= PARALLEL_NODES_MIN {
        out.par_chunks_mut(HASH_CHUNK).enumerate().for_each(chunk);
    } else {
        out.chunks_mut(HASH_CHUNK).enumerate().for_each(chunk);
    }
    out
}

/// [`hash_each`] into a [`Paged`] column, a page at a time on every core.
pub fn hash_pages<const L: usize>(
    key: &[u8; 32],
    len: usize,
    sharing: Sharing,
    input: impl Fn(usize) -> [u8; L] + Sync,
) -> Paged<Hash> {
    Paged::from_pages(len, sharing, |first, page| {
        hash_run(key, first, &mut page[..len.min(first + PAGE) - first], &|_| {}, &input);
    })
}

/// The hashes of `input(first)`, `input(first + 1)`, … into `out`: the run's inputs gathered
/// first, each hinted [`AHEAD`] of its reading, then hashed in lanes ([`hash_each`] says why).
fn hash_run<const L: usize>(
    key: &[u8; 32],
    first: usize,
    out: &mut [Hash],
    ahead: &impl Fn(usize),
    input: &impl Fn(usize) -> [u8; L],
) {
    let end = first + out.len();
    (first..end.min(first + AHEAD)).for_each(ahead);
    let inputs: Vec<[u8; L]> = (first..end)
        .map(|i| {
            if i + AHEAD < end {
                ahead(i + AHEAD);
            }
            input(i)
        })
        .collect();
    keyed_hash_many(key, &inputs, bytemuck::cast_slice_mut(out));
}

/// Width of the level above one of `width` nodes.
fn parent_width(width: usize) -> usize {
    width.div_ceil(2)
}

/// Every level of the tree, leaves first; the last level holds the tree root alone (no level
/// at all when there are no leaves). Each level is [`Paged`], made as the leaves were: a tree
/// made [`Sharing::Shared`] shares every page with its clones until one of them writes it, so
/// a clone costs what it changes afterwards; a tree made [`Sharing::Own`] (a node's) writes its
/// pages in place, and a clone copies them.
#[derive(Clone, Debug, Default)]
pub struct StateTree {
    levels: Vec<Paged<Hash>>,
}

/// Nodes that change, per level from the leaves up: `(index, hash)`, sorted by index, unique.
pub type Changes = Vec<Vec<(usize, Hash)>>;

impl StateTree {
    /// The tree over `leaves`, built bottom-up on every core, each level made as the leaves
    /// were ([`Paged::sharing`]).
    pub fn build(leaves: Paged<Hash>) -> StateTree {
        let sharing = leaves.sharing();
        let mut levels = vec![leaves];
        while levels.last().is_some_and(|level| level.len() > 1) {
            let below = levels.last().expect("a level");
            let above = hash_pages(node_key(), parent_width(below.len()), sharing, |j| {
                node_input(below.get(2 * j).expect("a left child"), below.get(2 * j + 1))
            });
            levels.push(above);
        }
        if levels[0].is_empty() {
            levels.clear();
        }
        StateTree { levels }
    }

    /// Number of leaves.
    pub fn len(&self) -> usize {
        self.levels.first().map_or(0, Paged::len)
    }

    /// True when the tree has no leaves.
    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }

    /// A copy of the tree that shares no page with it or anything else.
    pub fn unshared(&self) -> StateTree {
        StateTree { levels: self.levels.iter().map(Paged::unshared).collect() }
    }

    /// Pages of the tree shared with a clone ([`Paged::shared_pages`]), and pages in all.
    pub fn shared_pages(&self) -> (usize, usize) {
        let shared = self.levels.iter().map(Paged::shared_pages).sum();
        (shared, self.levels.iter().map(|level| level.len().div_ceil(PAGE)).sum())
    }

    /// The tree root (zero for no leaves).
    pub fn root(&self) -> Hash {
        self.levels.last().and_then(|top| top.get(0)).copied().unwrap_or(Hash::ZERO)
    }

    fn stored(&self, level: usize, index: usize) -> Option<&Hash> {
        self.levels.get(level)?.get(index)
    }

    /// The nodes that change, level by level, when the leaves in `leaves` (slot, hash; sorted
    /// by slot, unique; every slot at or past the current length included) take their new
    /// values and the tree has `count` leaves. Costs a hash per changed node: O(k log N).
    pub fn changes(&self, leaves: Vec<(usize, Hash)>, count: usize) -> Changes {
        debug_assert!(leaves.windows(2).all(|pair| pair[0].0 < pair[1].0), "sorted, unique");
        debug_assert!(leaves.last().is_none_or(|last| last.0 < count));
        debug_assert!(count >= self.len(), "the tree only grows");
        let mut changes: Changes = vec![leaves];
        let mut width = count;
        let mut level = 0;
        while width > 1 && !changes[level].is_empty() {
            let below = &changes[level];
            // Parents of the changed nodes, each once, with their two children found among the
            // changed nodes (adjacent in `below`) or else in the stored tree.
            let mut parents: Vec<usize> = below.iter().map(|(index, _)| index / 2).collect();
            parents.dedup();
            let child = |index: usize, position: usize| -> Option<Hash> {
                if index >= width {
                    return None;
                }
                // `below` is sorted: the child, if changed, sits next to `position`.
                let from = position.saturating_sub(1);
                let changed = below[from..below.len().min(position + 2)].iter().find(|(i, _)| *i == index);
                Some(changed.map_or_else(
                    || *self.stored(level, index).expect("an unchanged node exists in the stored tree"),
                    |(_, hash)| *hash,
                ))
            };
            // Pair each parent with the position of its first changed child in `below`.
            let mut firsts = Vec::with_capacity(parents.len());
            let mut position = 0;
            for parent in &parents {
                while below[position].0 / 2 != *parent {
                    position += 1;
                }
                firsts.push(position);
            }
            // Each parent's children are gathered, then hashed ([`hash_each`]); the stored
            // ones hinted ahead of their reading (both children: which one changed is known only
            // then, and they share a line or two).
            // A tree that grows has levels the stored one lacks.
            let ahead = |k: usize| {
                if let Some(stored) = self.levels.get(level) {
                    stored.hint(2 * parents[k]);
                    stored.hint(2 * parents[k] + 1);
                }
            };
            let hashes = hash_each(node_key(), parents.len(), ahead, |k| {
                let (parent, position) = (parents[k], firsts[k]);
                let left = child(2 * parent, position).expect("a left child exists");
                node_input(&left, child(2 * parent + 1, position).as_ref())
            });
            let above: Vec<(usize, Hash)> = parents.into_iter().zip(hashes).collect();
            changes.push(above);
            width = parent_width(width);
            level += 1;
        }
        changes
    }

    /// The tree root after `changes` (from [`StateTree::changes`] for `count` leaves).
    pub fn root_after(&self, changes: &Changes, count: usize) -> Hash {
        if count == 0 {
            return Hash::ZERO;
        }
        let top = tessera_components::state::tree_height(count as u64);
        match changes.get(top).and_then(|level| level.first()) {
            Some((0, root)) => *root,
            _ => self.root(),
        }
    }

    /// The siblings on the path from leaf `slot` to the root (`None` where a level has no right
    /// sibling), as an [`AccountProof`](tessera_components::state::AccountProof) carries them;
    /// `None` for a slot past the leaves.
    pub fn path(&self, slot: usize) -> Option<Vec<Option<Hash>>> {
        if slot >= self.len() {
            return None;
        }
        let mut index = slot;
        let below_top = &self.levels[..self.levels.len() - 1];
        Some(
            below_top
                .iter()
                .map(|level| {
                    let sibling = level.get(index ^ 1).copied();
                    index /= 2;
                    sibling
                })
                .collect(),
        )
    }

    /// Writes `changes` (for `count` leaves) into the tree: each level sized first, then
    /// written, the levels on every core when the changes are many (each write to a level
    /// spread over hundreds of megabytes misses the cache).
    pub fn apply(&mut self, changes: &Changes, count: usize) {
        debug_assert!(changes.len() <= tessera_components::state::tree_height(count as u64) + 1);
        let mut width = count;
        let mut level = 0;
        loop {
            if self.levels.len() <= level {
                let sharing = self.levels.first().map_or(Sharing::Own, Paged::sharing);
                self.levels.push(Paged::new(sharing));
            }
            self.levels[level].resize(width, Hash::ZERO);
            if width <= 1 {
                break;
            }
            width = parent_width(width);
            level += 1;
        }
        self.levels.truncate(level + 1);
        // Each write hints the node [`AHEAD`] of it: the writes of a level's lower rows miss.
        let write = |(stored, changed): (&mut Paged<Hash>, &Vec<(usize, Hash)>)| {
            for (k, (index, hash)) in changed.iter().enumerate() {
                if let Some((ahead, _)) = changed.get(k + AHEAD) {
                    stored.hint(*ahead);
                }
                stored.set(*index, *hash);
            }
        };
        if changes.iter().map(Vec::len).sum::<usize>() >= PARALLEL_NODES_MIN {
            self.levels.par_iter_mut().zip(changes.par_iter()).for_each(write);
        } else {
            self.levels.iter_mut().zip(changes.iter()).for_each(write);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use tessera_components::Account;

    fn leaves(n: usize, salt: u64) -> Vec<Hash> {
        (0..n)
            .map(|i| leaf(&[i as u8; 32], &Account { balance: i as u64 + salt, nonce: salt }, &[0; 32]))
            .collect()
    }

    #[test]
    fn incremental_changes_give_the_root_of_a_tree_built_from_scratch() {
        for (base, grown) in [(0, 1), (1, 1), (1, 2), (2, 3), (5, 5), (5, 9), (8, 8), (8, 17), (100, 130)] {
            let before = leaves(base, 0);
            let tree = StateTree::build(Paged::from_slice(&before));
            let mut after = before.clone();
            after.extend(leaves(grown, 7).into_iter().skip(base));
            // Change every third old leaf as well as adding the new ones.
            let mut changed: Vec<(usize, Hash)> = Vec::new();
            for (i, hash) in after.iter_mut().enumerate() {
                if i % 3 == 1 && i < base {
                    *hash = node(hash, None);
                }
                if i >= base || i % 3 == 1 {
                    changed.push((i, *hash));
                }
            }
            let expected = StateTree::build(Paged::from_slice(&after));
            let changes = tree.changes(changed, grown);
            assert_eq!(tree.root_after(&changes, grown), expected.root(), "{base} → {grown}");
            let mut applied = tree.clone();
            applied.apply(&changes, grown);
            assert_eq!(applied.levels, expected.levels, "{base} → {grown}");
        }
    }

    #[test]
    fn every_leaf_and_its_position_move_the_root() {
        let tree = StateTree::build(Paged::from_slice(&leaves(7, 0)));
        let mut swapped = leaves(7, 0);
        swapped.swap(2, 3);
        assert_ne!(StateTree::build(Paged::from_slice(&swapped)).root(), tree.root());
        for i in 0..7 {
            let changes = tree.changes(vec![(i, node(&Hash::ZERO, None))], 7);
            assert_ne!(tree.root_after(&changes, 7), tree.root(), "leaf {i}");
        }
        // No change, no new root.
        assert_eq!(tree.root_after(&tree.changes(Vec::new(), 7), 7), tree.root());
        assert_eq!(StateTree::build(Paged::default()).root(), Hash::ZERO);
    }

    /// The root of the definition, one node at a time: `node` over each pair, level by level.
    fn root_by_definition(mut level: Vec<Hash>) -> Hash {
        while level.len() > 1 {
            level = level.chunks(2).map(|pair| node(&pair[0], pair.get(1))).collect();
        }
        level.first().copied().unwrap_or(Hash::ZERO)
    }

    /// Trees and changes of several of `hash_each`'s chunks, over and past the count from which
    /// it hashes on every core, have the root the definition gives.
    #[test]
    fn many_leaves_and_changes_give_the_root_of_the_definition() {
        let count = 3 * HASH_CHUNK + 5;
        let tree = StateTree::build(Paged::from_slice(&leaves(count, 1)));
        assert_eq!(tree.root(), root_by_definition(leaves(count, 1)));
        // Every leaf changed but a few, and as many added: 2,500 changed leaves on level 0.
        let mut after = leaves(count + 1000, 2);
        after[7] = leaves(count, 1)[7];
        let changed: Vec<(usize, Hash)> =
            after.iter().copied().enumerate().filter(|(slot, _)| *slot != 7).collect();
        assert!(changed.len() >= PARALLEL_NODES_MIN);
        let changes = tree.changes(changed, count + 1000);
        assert_eq!(tree.root_after(&changes, count + 1000), root_by_definition(after.clone()));
        let mut applied = tree.clone();
        applied.apply(&changes, count + 1000);
        assert_eq!(applied.root(), root_by_definition(after));
    }
}
