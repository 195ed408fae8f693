//! The data-directory lock, and read-only maps of the files inside a locked directory.
//!
//! Mapping a file is only sound while nobody changes the mapped bytes: memmap2 documents
//! undefined behaviour if the file "is subsequently modified, in or out of process". This module
//! is the one place that maps files, and it only maps through a [`DirLock`], so the argument
//! lives here:
//!
//! - **Other processes.** Every Tessera process that touches a data directory first takes a
//!   `flock` on the directory itself: [`Store`](super::Store) takes `LOCK_EX`, `tessera inspect`
//!   takes `LOCK_SH`. So while any map exists, either this process is the only one with the
//!   directory open for writing, or every process holding it only reads. (`flock` is advisory:
//!   a program that ignores it, or a person editing the files by hand, is outside what any
//!   mapped reader can defend against; the bytes are checksummed on every read regardless.)
//! - **This process.** The store changes files only in three ways: it appends to the last
//!   segment and to the index past their current ends (mapped ranges never cover those bytes,
//!   because a map covers the file's length when it was made); it replaces `state` and `genesis`
//!   by renaming a new file over them (a map keeps the old inode, whose bytes do not change); and
//!   during recovery it truncates a torn tail, which it does only after every map made by the
//!   verification pass has been dropped (`Store::open`).
//!
//! Maps are made for a pass over the files (the verification at open, `tessera inspect`) and
//! dropped after it. A running node reads its committed blocks with `pread`
//! ([`super::SegmentReader`]), because a map outlives any argument about other processes: a
//! page that cannot be read when touched (a file cut short by a program that ignores the lock,
//! or a disk's read error) raises `SIGBUS`, which no error handling can turn into a failed
//! read.
#![expect(
    unsafe_code,
    reason = "memmap2's map constructors are unsafe: the mapped file must not change while mapped"
)]

use std::fs::{File, OpenOptions, TryLockError};
use std::io;
use std::os::unix::fs::OpenOptionsExt;
use std::path::{Path, PathBuf};

use memmap2::{Advice, Mmap};

use super::StoreError;

/// How a [`DirLock`] holds its directory.
#[derive(Clone, Copy, PartialEq, Eq, Debug)]
pub enum LockMode {
    /// `flock(LOCK_EX)`: the running node, the only writer.
    Exclusive,
    /// `flock(LOCK_SH)`: readers that never write (`tessera inspect`).
    Shared,
}

/// A data directory held under `flock`. The lock is on the directory's own file descriptor, so
/// taking it creates no file; it is released when the value is dropped (the descriptor closes).
#[derive(Debug)]
pub struct DirLock {
    dir: PathBuf,
    handle: File,
}

impl DirLock {
    /// Locks `dir` without waiting.
    ///
    /// # Errors
    /// [`StoreError::Locked`] if another process holds a conflicting lock;
    /// [`StoreError::Io`] if the directory cannot be opened or locked.
    pub fn new(dir: &Path, mode: LockMode) -> Result<DirLock, StoreError> {
        // A directory only (a FIFO in its place would wait forever for a writer).
        let handle = OpenOptions::new()
            .read(true)
            .custom_flags(libc::O_NONBLOCK | libc::O_DIRECTORY)
            .open(dir)
            .map_err(|source| StoreError::Io { file: dir.to_path_buf(), source })?;
        let locked = match mode {
            LockMode::Exclusive => handle.try_lock(),
            LockMode::Shared => handle.try_lock_shared(),
        };
        match locked {
            Ok(()) => Ok(DirLock { dir: dir.to_path_buf(), handle }),
            Err(TryLockError::WouldBlock) => Err(StoreError::Locked { dir: dir.to_path_buf() }),
            Err(TryLockError::Error(source)) => Err(StoreError::Io { file: dir.to_path_buf(), source }),
        }
    }

    /// The locked directory.
    pub fn dir(&self) -> &Path {
        &self.dir
    }

    /// The path of `name` inside the directory.
    pub fn path(&self, name: &str) -> PathBuf {
        self.dir.join(name)
    }

    /// fsync on the directory, making renames and new files in it durable.
    ///
    /// # Errors
    /// The fsync's error.
    pub fn sync_dir(&self) -> io::Result<()> {
        self.handle.sync_all()
    }

    /// Maps the whole of `name` read-only. `sequential` tells the kernel the map is about to be
    /// read end to end once (read ahead aggressively, reclaim behind), as verification does.
    ///
    /// # Errors
    /// The file cannot be opened or mapped (a missing file is `NotFound`).
    pub fn map(&self, name: &str, sequential: bool) -> io::Result<Mmap> {
        // Without waiting, and only a regular file: opening a FIFO put in the directory for
        // reading waited forever for a writer, so the node hung at its start with no error.
        let (file, _) = crate::open_regular(&self.path(name))?;
        // The module docs argue each case in full; bytes are checksummed before any use.
        // SAFETY: data dir is flock'd by this process (LOCK_EX, LOCK_SH for readers); its files
        // are append-only, replaced only by rename, and truncated only with no map alive.
        let map = unsafe { Mmap::map(&file) }?;
        if sequential {
            map.advise(Advice::Sequential)?;
        }
        Ok(map)
    }
}
