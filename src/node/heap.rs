//! Returning freed heap memory to the kernel, for a node that runs for weeks.
//!
//! The node's own memory is bounded (every window and queue has a limit, and
//! `tessera_allocator_in_use_bytes` levels off once they are full), but glibc's malloc keeps
//! what is freed inside its arenas. Under the node's churn — blocks of every size entering and
//! leaving the sync history first in, first out, id windows rehashing, frames of every size —
//! the free space fragments, the heap grows past it, and resident memory kept rising about
//! 0.9 MiB/s after the node's in-use bytes had stopped (`tools/soak`, `docs/performance.md`).
//! `malloc_trim(0)` hands every whole free page inside the arenas back to the kernel
//! (`MADV_DONTNEED`), so resident memory follows what is in use. It is called from the node
//! loop every [`TRIM_INTERVAL`].

use std::time::{Duration, Instant};

/// How often the node loop hands free pages back.
pub const TRIM_INTERVAL: Duration = Duration::from_secs(5);

/// Hands whole free pages held by the allocator back to the kernel; returns how long it took
/// and whether any memory was released. Does nothing (and releases nothing) where the
/// allocator is not glibc's.
pub fn release_free_pages() -> (Duration, bool) {
    let started = Instant::now();
    #[cfg(all(target_os = "linux", target_env = "gnu"))]
    let released = {
        #[allow(unsafe_code)]
        // SAFETY: malloc_trim only walks and shrinks glibc's own arenas under their locks; it
        // takes a plain integer (the padding to leave at the top) and frees nothing in use.
        let result = unsafe { libc::malloc_trim(0) };
        result == 1
    };
    #[cfg(not(all(target_os = "linux", target_env = "gnu")))]
    let released = false;
    (started.elapsed(), released)
}

#[cfg(test)]
mod tests {
    use super::release_free_pages;

    /// Freed memory inside the arenas comes back: many small blocks (below the mmap threshold,
    /// so they live in an arena), most of them freed, leave resident memory high until the trim.
    #[test]
    #[cfg(all(target_os = "linux", target_env = "gnu"))]
    fn freed_arena_memory_goes_back_to_the_kernel() {
        let rss_kib = || -> u64 {
            let status = std::fs::read_to_string("/proc/self/status").unwrap();
            let line = status.lines().find(|line| line.starts_with("RssAnon:")).unwrap();
            line.split_whitespace().nth(1).unwrap().parse().unwrap()
        };
        // 96 MiB in 4 KiB blocks, touched so they are resident; keep every 64th, so the arena
        // cannot shrink from the top and only a trim can release the holes.
        let mut blocks: Vec<Vec<u8>> = (0..24_576).map(|i| vec![i as u8 | 1; 4096]).collect();
        let kept: Vec<Vec<u8>> = blocks.iter_mut().step_by(64).map(std::mem::take).collect();
        drop(blocks);
        let before = rss_kib();
        let (_, released) = release_free_pages();
        let after = rss_kib();
        assert!(released);
        // Other test threads allocate meanwhile; 90 MiB were freed, so 48 MiB must come back.
        assert!(after + 48 * 1024 < before, "RssAnon {before} KiB -> {after} KiB");
        assert_eq!(kept.len(), 384);
        assert!(kept.iter().all(|block| block[0] != 0));
    }
}
