//! A column of plain values in fixed pages that clones can share until one of them writes a
//! page.
//!
//! The state tree is most of a ledger's memory (64 bytes an account, against 16 for the
//! balances), and each block writes only the paths it touched. Held in one `Vec` a level, a
//! clone of the ledger copied every level: at ten million accounts, 640 MB and about 0.6 s of
//! page faults, once for each validator a simulation starts from one genesis. In pages behind
//! `Arc`s, a clone copies one pointer a page and the first write to a shared page copies that
//! page alone, so clones cost in proportion to what they change afterwards.
//!
//! Sharing is chosen when a column is made ([`Sharing`]). Pages made to be shared are `Arc`s,
//! and the first write to one copies it into a page of the column's own. Pages of its own are
//! plain boxes: a write to one touches the value alone, as a `Vec`'s would (an `Arc`'s
//! `make_mut` on every write also touched the page's reference count, another cache miss on
//! each of the ~100,000 node writes of a block at ten million accounts: `tessera bench state`
//! measured the block's commit at 1.8–2.0 ms instead of 0.9–1.0 on a first version that did so,
//! not kept). A clone copies pages of its own, as a `Vec`'s clone would. A
//! read is one more load than a `Vec`'s: the page's pointer, from a table of 16 bytes a page.

use std::sync::Arc;

use rayon::prelude::*;

/// Values in a page: 4 KiB of 32-byte hashes.
pub const PAGE: usize = 128;

/// Whether a column's pages are made to be shared by its clones.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Sharing {
    /// Pages of its own: writes in place, clones copy.
    Own,
    /// Pages its clones share, each copied at its first write.
    Shared,
}

/// One page: the column's own, or shared with clones.
#[derive(Debug)]
enum Page<T> {
    Own(Box<[T; PAGE]>),
    Shared(Arc<[T; PAGE]>),
}

impl<T: Copy> Clone for Page<T> {
    fn clone(&self) -> Page<T> {
        match self {
            Page::Own(page) => Page::Own(page.clone()),
            Page::Shared(page) => Page::Shared(Arc::clone(page)),
        }
    }
}

impl<T: Copy> Page<T> {
    fn new(values: [T; PAGE], sharing: Sharing) -> Page<T> {
        match sharing {
            Sharing::Own => Page::Own(Box::new(values)),
            Sharing::Shared => Page::Shared(Arc::new(values)),
        }
    }

    #[inline]
    fn values(&self) -> &[T; PAGE] {
        match self {
            Page::Own(page) => page,
            Page::Shared(page) => page,
        }
    }

    /// The values to write: a shared page is copied into a page of the column's own first, once,
    /// even one nobody else holds any more: written in place through `Arc::get_mut`, such a page
    /// would cost an atomic exchange on its count at every write for the rest of the run.
    #[inline]
    fn values_mut(&mut self) -> &mut [T; PAGE] {
        if let Page::Shared(page) = self {
            *self = Page::Own(Box::new(**page));
        }
        match self {
            Page::Own(page) => page,
            Page::Shared(_) => unreachable!("a shared page was just replaced by one of its own"),
        }
    }
}

/// A column of `len` values of `T`, [`PAGE`] to a page. Values past `len` in the last page are
/// never read; they are written before `len` covers them again.
#[derive(Debug)]
pub struct Paged<T> {
    pages: Vec<Page<T>>,
    len: usize,
    /// What the column was made as (pages added by growth are its own: nothing shares them).
    sharing: Sharing,
}

impl<T: Copy> Clone for Paged<T> {
    fn clone(&self) -> Paged<T> {
        Paged { pages: self.pages.clone(), len: self.len, sharing: self.sharing }
    }
}

impl<T> Default for Paged<T> {
    fn default() -> Paged<T> {
        Paged::new(Sharing::Own)
    }
}

impl<T> Paged<T> {
    /// An empty column made as `sharing` says.
    pub fn new(sharing: Sharing) -> Paged<T> {
        Paged { pages: Vec::new(), len: 0, sharing }
    }

    /// What the column was made as.
    pub fn sharing(&self) -> Sharing {
        self.sharing
    }
}

impl<T: Copy + Default + Send + Sync> Paged<T> {
    /// A column of `len` values, page `p` filled by `fill(p * PAGE, page)` (every value of
    /// the page, whether or not below `len`), the pages on every core.
    pub fn from_pages(len: usize, sharing: Sharing, fill: impl Fn(usize, &mut [T; PAGE]) + Sync) -> Paged<T> {
        let pages = (0..len.div_ceil(PAGE))
            .into_par_iter()
            .map(|p| {
                let mut page = [T::default(); PAGE];
                fill(p * PAGE, &mut page);
                Page::new(page, sharing)
            })
            .collect();
        Paged { pages, len, sharing }
    }

    /// The values of `values`, copied into pages of the column's own.
    pub fn from_slice(values: &[T]) -> Paged<T> {
        Paged::from_pages(values.len(), Sharing::Own, |first, page| {
            let end = values.len().min(first + PAGE);
            page[..end - first].copy_from_slice(&values[first..end]);
        })
    }

    /// Number of values.
    pub fn len(&self) -> usize {
        self.len
    }

    /// True when there are no values.
    pub fn is_empty(&self) -> bool {
        self.len == 0
    }

    /// The value at `index`, if below the length.
    #[inline]
    pub fn get(&self, index: usize) -> Option<&T> {
        if index < self.len { Some(&self.pages[index / PAGE].values()[index % PAGE]) } else { None }
    }

    /// Hints the cache with the value at `index`, if the column has one there
    /// ([`prefetch`](crate::kernels::prefetch::prefetch)): a caller about to read or write
    /// values spread over a large column hints some ahead of each.
    #[inline]
    pub fn hint(&self, index: usize) {
        if let Some(value) = self.get(index) {
            crate::kernels::prefetch::prefetch(value);
        }
    }

    /// Writes `value` at `index`, copying its page first if a clone shares it.
    ///
    /// # Panics
    /// If `index` is past the length: a bug in the caller.
    #[inline]
    pub fn set(&mut self, index: usize, value: T) {
        assert!(index < self.len, "write at {index} past a column of {}", self.len);
        self.pages[index / PAGE].values_mut()[index % PAGE] = value;
    }

    /// Grows or shrinks the column to `len` values, new ones `value`.
    pub fn resize(&mut self, len: usize, value: T) {
        if len > self.len {
            // The last page's values past the old length may be stale (a shrink leaves them).
            let last_page_end = self.pages.len() * PAGE;
            if self.len < last_page_end {
                let start = last_page_end - PAGE;
                let page = self.pages.last_mut().expect("a page below its end").values_mut();
                page[self.len - start..len.min(last_page_end) - start].fill(value);
            }
            self.pages.resize_with(len.div_ceil(PAGE), || Page::new([value; PAGE], Sharing::Own));
        } else {
            self.pages.truncate(len.div_ceil(PAGE));
        }
        self.len = len;
    }

    /// Pages of the column's own, shared with nothing (for tests and measurements).
    pub fn own_pages(&self) -> usize {
        self.pages.iter().filter(|page| matches!(page, Page::Own(_))).count()
    }

    /// Every value, in order.
    pub fn iter(&self) -> impl Iterator<Item = &T> {
        self.pages.iter().flat_map(|page| page.values().iter()).take(self.len)
    }

    /// A copy whose pages are all its own, shared with nothing, and stay so.
    pub fn unshared(&self) -> Paged<T> {
        let pages = self.pages.iter().map(|page| Page::Own(Box::new(*page.values()))).collect();
        Paged { pages, len: self.len, sharing: Sharing::Own }
    }

    /// Every value, copied out.
    pub fn to_vec(&self) -> Vec<T> {
        self.iter().copied().collect()
    }

    /// Pages shared with a clone (for tests and measurements).
    pub fn shared_pages(&self) -> usize {
        self.pages
            .iter()
            .filter(|page| matches!(page, Page::Shared(page) if Arc::strong_count(page) > 1))
            .count()
    }
}

impl<T: Copy + Default + Send + Sync + PartialEq> PartialEq for Paged<T> {
    fn eq(&self, other: &Paged<T>) -> bool {
        self.len == other.len && self.iter().eq(other.iter())
    }
}

impl<T: Copy + Default + Send + Sync + Eq> Eq for Paged<T> {}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    /// A clone shares every page until one of them writes, and a write copies the page it
    /// lands on alone: the other column keeps its value.
    #[test]
    fn clones_share_pages_until_one_writes() {
        let values: Vec<u64> = (0..3 * PAGE as u64 + 5).collect();
        let mut column = Paged::from_pages(values.len(), Sharing::Shared, |first, page| {
            let end = values.len().min(first + PAGE);
            page[..end - first].copy_from_slice(&values[first..end]);
        });
        assert_eq!(column.shared_pages(), 0, "nobody shares them yet");
        let copy = column.clone();
        assert_eq!(column.shared_pages(), 4);
        column.set(PAGE + 1, 7);
        assert_eq!(column.shared_pages(), 3, "one page copied");
        assert_eq!((column.get(PAGE + 1), copy.get(PAGE + 1)), (Some(&7), Some(&(PAGE as u64 + 1))));
        column.set(PAGE + 2, 8);
        assert_eq!(column.shared_pages(), 3, "a page copied once");
        assert_eq!(copy.to_vec(), values, "the clone kept every value");
        assert_eq!(column.get(values.len()), None);
        // A shared page nobody else holds becomes the column's own at its first write too, and a
        // page the column grows is its own from the start.
        let mut alone = Paged::from_pages(2 * PAGE, Sharing::Shared, |_, page| page.fill(1));
        alone.set(3, 2);
        assert_eq!((alone.own_pages(), alone.get(3)), (1, Some(&2)));
        alone.resize(3 * PAGE, 5);
        assert_eq!(
            (alone.own_pages(), alone.get(2 * PAGE)),
            (2, Some(&5)),
            "a grown page is the column's own"
        );
        let unshared = column.unshared();
        assert_eq!((unshared.shared_pages(), copy.shared_pages()), (0, 3), "the copy let go of its pages");
        assert_eq!(unshared, column);
        // Pages of a column's own are copied by a clone, never shared.
        let own = Paged::from_slice(&values);
        assert_eq!((own.clone().shared_pages(), own.shared_pages()), (0, 0));
        assert_eq!(own.clone(), own);
    }

    proptest! {
        /// Any sequence of resizes and writes leaves the values a `Vec` would hold, in the
        /// column and not in a clone taken before them.
        #[test]
        fn a_column_holds_what_a_vec_would(
            start in 0usize..400,
            shared in any::<bool>(),
            steps in proptest::collection::vec((any::<bool>(), 0usize..700, any::<u16>()), 0..40),
        ) {
            let initial: Vec<u16> = (0..start as u16).collect();
            let sharing = if shared { Sharing::Shared } else { Sharing::Own };
            let mut column = Paged::from_pages(initial.len(), sharing, |first, page| {
                let end = initial.len().min(first + PAGE);
                page[..end - first].copy_from_slice(&initial[first..end]);
            });
            let before = column.clone();
            let mut model = initial.clone();
            for (resize, at, value) in steps {
                if resize {
                    column.resize(at, value);
                    model.resize(at, value);
                } else if at < model.len() {
                    column.set(at, value);
                    model[at] = value;
                }
                prop_assert_eq!(column.len(), model.len());
            }
            prop_assert_eq!(column.to_vec(), model.clone());
            for (index, value) in model.iter().enumerate() {
                prop_assert_eq!(column.get(index), Some(value));
            }
            prop_assert_eq!(before.to_vec(), initial);
        }
    }
}
