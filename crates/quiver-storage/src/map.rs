//! Memory-mapped files: the one room of this crate with `unsafe`.
//!
//! Three kinds of map:
//! * [`MappedFile`]: a read-only map of an immutable file (a segment being loaded), so a file
//!   larger than the memory the process may use is read through the page cache instead of
//!   being copied onto the heap;
//! * [`PrivateMap`]: a copy-on-write map of an immutable file used in place (an index's graph
//!   and codes), whose words may be changed in memory without reaching the file;
//! * [`ScratchMap`]: a growable, writable map of a file that has no name (created in a given
//!   folder and unlinked at once). It is memory the kernel can write out to that folder's disk
//!   and read back: a collection's working copy of its vectors when they are kept on disk. It
//!   holds nothing durable (the segments and the WAL do), and a crash leaves nothing behind
//!   because the file was never visible.
//!
//! Mapping a file is `unsafe` because another process could change or truncate it under the
//! map. Quiver's own files are never changed once written (segments are immutable and replaced
//! only under new names), the data folder is locked by one process, and a scratch file has no
//! name another process could open. What is left is an operator truncating a segment by hand
//! while it is being loaded, which ends the process with SIGBUS instead of a typed error; the
//! same risk every mmap-based database accepts (LMDB, Qdrant, LanceDB).

#![allow(unsafe_code)]

use crate::fault::Step;
use crate::{StorageError, StorageResult};
use memmap2::{Mmap, MmapMut, MmapOptions};
use std::fs::{File, OpenOptions};
use std::ops::Deref;
use std::path::{Path, PathBuf};
use std::sync::atomic::AtomicU32;

fn io(path: &Path) -> impl FnOnce(std::io::Error) -> StorageError + '_ {
    move |cause| StorageError::Io {
        path: path.to_path_buf(),
        cause,
    }
}

/// A read-only map of a whole immutable file (an empty file is an empty slice).
#[derive(Debug)]
pub struct MappedFile {
    map: Option<Mmap>,
}

impl MappedFile {
    /// Maps `path` read-only, advised for one sequential pass.
    pub fn open(path: &Path) -> StorageResult<MappedFile> {
        let file = File::open(path).map_err(io(path))?;
        let len = file.metadata().map_err(io(path))?.len();
        if len == 0 {
            return Ok(MappedFile { map: None });
        }
        // SAFETY: the file is one of Quiver's immutable files in a folder this process has
        // locked; nothing writes or truncates it while it is mapped (see the module's notes).
        let map = unsafe { MmapOptions::new().map(&file) }.map_err(io(path))?;
        #[cfg(unix)]
        {
            // Advice only: read ahead, and let the pages go early under pressure.
            let _ = map.advise(memmap2::Advice::Sequential);
        }
        Ok(MappedFile { map: Some(map) })
    }
}

impl MappedFile {
    /// Advises the kernel that the map is read at random from now on (no read-ahead): for a
    /// file used in place, where each read wants one row and read-ahead would evict the rows
    /// other reads need. Advice only.
    pub fn advise_random(&self) {
        #[cfg(unix)]
        if let Some(map) = &self.map {
            let _ = map.advise(memmap2::Advice::Random);
        }
    }
}

impl Deref for MappedFile {
    type Target = [u8];
    fn deref(&self) -> &[u8] {
        self.map.as_deref().unwrap_or(&[])
    }
}

/// A private (copy-on-write) map of a whole immutable file, used in place: pages are read
/// through the page cache and shared with it until written, and a write changes this process's
/// copy only, never the file. An index file's graph and codes live in one: opening them costs
/// a map, not a read, and a later insert copies what it changes.
#[derive(Debug)]
pub struct PrivateMap {
    map: Option<MmapMut>,
}

impl PrivateMap {
    /// Maps `path` copy-on-write.
    pub fn open(path: &Path) -> StorageResult<PrivateMap> {
        let file = File::open(path).map_err(io(path))?;
        let len = file.metadata().map_err(io(path))?.len();
        if len == 0 {
            return Ok(PrivateMap { map: None });
        }
        // SAFETY: the file is one of Quiver's immutable files in a folder this process has
        // locked (see the module's notes); the map is private, so nothing this process does
        // through it reaches the file.
        let map = unsafe { MmapOptions::new().map_copy(&file) }.map_err(io(path))?;
        Ok(PrivateMap { map: Some(map) })
    }

    /// The mapped bytes. Only for bytes that are never written through
    /// [`PrivateMap::atomic_u32s`] (codes, row lists, headers).
    pub fn bytes(&self) -> &[u8] {
        self.map.as_deref().unwrap_or(&[])
    }

    /// `len` atomic words from byte `offset`: `None` when the range is outside the map or
    /// not aligned for `u32`. Words are little-endian in the file, native in memory: callers
    /// on big-endian machines must not use this (the index copies instead).
    pub fn atomic_u32s(&self, offset: usize, len: usize) -> Option<&[AtomicU32]> {
        let map = self.map.as_ref()?;
        let end = len.checked_mul(4)?.checked_add(offset)?;
        if end > map.len() || !offset.is_multiple_of(4) {
            return None;
        }
        // SAFETY: the range lies inside a live, writable (private) mapping owned by `self`,
        // is aligned for `AtomicU32` (a map starts on a page, `offset` is a multiple of 4),
        // every bit pattern is a valid `u32`, and the slice borrows `self`, so the map
        // outlives it. Writes through the atomics only change this process's private pages.
        Some(unsafe { std::slice::from_raw_parts(map.as_ptr().add(offset).cast::<AtomicU32>(), len) })
    }

    /// Advice for the whole map: `true` reads ahead now (kept in memory), `false` reads at
    /// random (kept on disk, each read one page).
    pub fn advise(&self, keep_in_memory: bool) {
        if let Some(map) = &self.map {
            if keep_in_memory {
                will_need(map);
            } else {
                #[cfg(unix)]
                let _ = map.advise(memmap2::Advice::Random);
            }
        }
    }
}

/// A growable writable map over an unnamed file in a folder: memory backed by that disk.
#[derive(Debug)]
pub struct ScratchMap {
    dir: PathBuf,
    file: File,
    map: MmapMut,
}

/// Scratch files grow in steps of this many bytes (2 MiB: a huge page).
const SCRATCH_STEP: usize = 2 << 20;

impl ScratchMap {
    /// A zero-filled map of at least `bytes` bytes backed by an unnamed file in `dir`.
    pub fn new(dir: &Path, bytes: usize) -> StorageResult<ScratchMap> {
        crate::fault::check(Step::Write, dir).map_err(io(dir))?;
        let file = unnamed_file(dir)?;
        let bytes = bytes.max(1).div_ceil(SCRATCH_STEP) * SCRATCH_STEP;
        allocate(&file, 0, bytes, dir)?;
        let map = map_shared(&file, dir)?;
        Ok(ScratchMap {
            dir: dir.to_path_buf(),
            file,
            map,
        })
    }

    /// Bytes mapped (the capacity).
    pub fn len(&self) -> usize {
        self.map.len()
    }

    /// Whether the map holds no bytes (never, once made).
    pub fn is_empty(&self) -> bool {
        self.map.is_empty()
    }

    /// The folder whose disk backs the map.
    pub fn dir(&self) -> &Path {
        &self.dir
    }

    /// Grows the map to at least `bytes`, keeping its contents (the file grows; the new map
    /// shares its pages, so nothing is copied).
    pub fn grow(&mut self, bytes: usize) -> StorageResult<()> {
        if bytes <= self.map.len() {
            return Ok(());
        }
        crate::fault::check(Step::Write, &self.dir).map_err(io(&self.dir))?;
        let bytes = bytes.div_ceil(SCRATCH_STEP) * SCRATCH_STEP;
        allocate(&self.file, self.map.len(), bytes, &self.dir)?;
        self.map = map_shared(&self.file, &self.dir)?;
        Ok(())
    }

    /// The mapped bytes.
    pub fn bytes(&self) -> &[u8] {
        &self.map
    }

    /// The mapped bytes, writable.
    pub fn bytes_mut(&mut self) -> &mut [u8] {
        &mut self.map
    }
}

/// Gives the file `from..to` real disk blocks (not a hole): a write into a hole on a full disk
/// would kill the process with SIGBUS, while a failed allocation here is an error the caller
/// can act on.
fn allocate(file: &File, from: usize, to: usize, dir: &Path) -> StorageResult<()> {
    #[cfg(target_os = "linux")]
    {
        use std::os::fd::AsRawFd;
        // SAFETY: a plain system call on a file descriptor this function borrows.
        let rc = unsafe { libc::posix_fallocate(file.as_raw_fd(), from as libc::off_t, (to - from) as libc::off_t) };
        if rc != 0 {
            return Err(StorageError::Io {
                path: dir.to_path_buf(),
                cause: std::io::Error::from_raw_os_error(rc),
            });
        }
        Ok(())
    }
    #[cfg(not(target_os = "linux"))]
    {
        let _ = from;
        file.set_len(to as u64).map_err(io(dir))
    }
}

fn map_shared(file: &File, dir: &Path) -> StorageResult<MmapMut> {
    // SAFETY: the file has no name (see `unnamed_file`), so only this map's owner can reach it;
    // it is never truncated below the mapped length while mapped (it only grows, and the old
    // map is replaced by the caller as soon as the new one exists).
    let map = unsafe { MmapOptions::new().map_mut(file) }.map_err(io(dir))?;
    #[cfg(target_os = "linux")]
    {
        // Graph searches read scattered rows: without this, each fault would read ahead 128 KiB
        // around the row and push out rows other searches still need (under a memory cap the
        // difference was a process that thrashed for minutes against one that answers).
        let _ = map.advise(memmap2::Advice::Random);
    }
    Ok(map)
}

/// Creates a file in `dir` and removes its name at once: the open handle keeps it alive, the
/// disk space comes back when the last handle and map go, and a crash leaves nothing.
fn unnamed_file(dir: &Path) -> StorageResult<File> {
    use std::sync::atomic::{AtomicU64, Ordering};
    static NEXT: AtomicU64 = AtomicU64::new(0);
    let name = format!(".scratch-{}-{}", std::process::id(), NEXT.fetch_add(1, Ordering::Relaxed));
    let path = dir.join(name);
    let file = OpenOptions::new()
        .read(true)
        .write(true)
        .create_new(true)
        .open(&path)
        .map_err(io(&path))?;
    std::fs::remove_file(&path).map_err(io(&path))?;
    Ok(file)
}

/// Asks the kernel to start reading the pages under `bytes` now (`MADV_WILLNEED`), so that
/// many reads of a mapped file are in flight at once instead of one page fault after another
/// (a graph search rescoring its candidates from vectors on disk). Advice only: it changes no
/// memory, and a range the kernel cannot advise is ignored.
pub fn will_need(bytes: &[u8]) {
    #[cfg(target_os = "linux")]
    {
        if bytes.is_empty() {
            return;
        }
        let page = 4096usize;
        let start = bytes.as_ptr() as usize;
        let aligned = start & !(page - 1);
        let len = bytes.len() + (start - aligned);
        // SAFETY: MADV_WILLNEED only schedules reads of the pages of `aligned..aligned + len`
        // (the slice's own pages, rounded out to page boundaries); it cannot change what any
        // byte of memory holds, and on a range that is not mapped it fails without effect.
        let _ = unsafe { libc::madvise(aligned as *mut libc::c_void, len, libc::MADV_WILLNEED) };
    }
    #[cfg(not(target_os = "linux"))]
    {
        let _ = bytes;
    }
}

/// How many of `bytes` (a slice of a map) are resident in memory now, by `mincore`; `None`
/// where the system cannot say.
pub fn resident_bytes(bytes: &[u8]) -> Option<usize> {
    #[cfg(target_os = "linux")]
    {
        if bytes.is_empty() {
            return Some(0);
        }
        let page = 4096usize;
        let start = bytes.as_ptr() as usize;
        let aligned = start & !(page - 1);
        let len = bytes.len() + (start - aligned);
        let pages = len.div_ceil(page);
        let mut vec = vec![0u8; pages];
        // SAFETY: `aligned..aligned + len` lies within the pages of a live mapping (the slice's
        // own pages, rounded out to page boundaries, which belong to the same map), and `vec`
        // has one byte per page as mincore requires.
        let rc = unsafe { libc::mincore(aligned as *mut libc::c_void, len, vec.as_mut_ptr()) };
        if rc != 0 {
            return None;
        }
        Some(vec.iter().filter(|&&b| b & 1 == 1).count() * page)
    }
    #[cfg(not(target_os = "linux"))]
    {
        let _ = bytes;
        None
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_scratch_map_grows_keeps_its_bytes_and_leaves_no_file() {
        let dir = tempfile::tempdir().unwrap();
        let mut m = ScratchMap::new(dir.path(), 10).unwrap();
        assert_eq!(m.len(), SCRATCH_STEP);
        assert!(m.bytes().iter().all(|&b| b == 0));
        for (i, b) in m.bytes_mut().iter_mut().enumerate() {
            *b = (i % 251) as u8;
        }
        m.grow(3 * SCRATCH_STEP + 1).unwrap();
        assert_eq!(m.len(), 4 * SCRATCH_STEP);
        for (i, &b) in m.bytes().iter().enumerate() {
            let want = if i < SCRATCH_STEP { (i % 251) as u8 } else { 0 };
            assert_eq!(b, want, "byte {i}");
        }
        // The file has no name: the folder is empty.
        assert_eq!(std::fs::read_dir(dir.path()).unwrap().count(), 0);
        let resident = resident_bytes(m.bytes()).unwrap();
        assert!(resident >= SCRATCH_STEP, "the written pages are resident: {resident}");
    }

    #[test]
    fn a_mapped_file_reads_what_was_written() {
        let dir = tempfile::tempdir().unwrap();
        let p = dir.path().join("f");
        std::fs::write(&p, b"hello").unwrap();
        assert_eq!(&*MappedFile::open(&p).unwrap(), b"hello");
        std::fs::write(&p, b"").unwrap();
        assert!(MappedFile::open(&p).unwrap().is_empty());
        let err = MappedFile::open(&dir.path().join("missing")).unwrap_err();
        assert!(err.to_string().contains("missing"), "{err}");
    }
}
