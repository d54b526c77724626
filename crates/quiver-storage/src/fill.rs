//! A local file filled on demand from a remote copy: the lazy cold start of a read replica.
//!
//! A [`Fill`] is a file of the remote object's full length, sparse at first, with one bit per
//! page (4 KiB) saying whether that page holds the object's bytes yet. A reader asks for a
//! byte range with [`Fill::ensure`] before it reads it (through a map of the file or through
//! the file): the missing pages of the range are fetched (adjacent ones in one request,
//! several requests in flight), written into the file, and only then marked present.
//! [`Fill::warm`] fetches every page still missing in large runs, checks the whole file
//! against the checksum the object is known by, fsyncs it and renames it to its final path.
//!
//! Invariants:
//! - A page's bit is set only after its bytes are in the file (written with `pwrite`, which
//!   updates the page cache that every map of the file reads). A reader that saw the bit read
//!   the object's bytes, never the hole's zeros.
//! - The remote object is immutable, so two fetches of the same page (a reader and the warmer
//!   racing) write the same bytes: no lock is needed.
//! - The file is under a temporary name until it is complete and checked: a crash leaves a
//!   partial file nobody mistakes for the real one (callers clear them at start).

use crate::{fsio, StorageError, StorageResult};
use std::fs::File;
use std::ops::Range;
use std::os::unix::fs::FileExt;
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicBool, AtomicU64, AtomicUsize, Ordering};
use std::sync::{Condvar, Mutex};

/// The unit of presence: what one on-demand read fetches at least (a vector or a payload is
/// usually one page; a search's few dozen rows are as many small requests in flight).
pub const PAGE: u64 = 4 << 10;
/// The most bytes one request of [`Fill::warm`] fetches (4 in flight).
const WARM_RUN: u64 = 4 << 20;
/// The most pages one on-demand request fetches (adjacent missing pages are merged: 1 MiB).
const ENSURE_RUN_PAGES: u64 = (1 << 20) / PAGE;

/// Where the bytes come from: ranges of one immutable object.
pub trait Source: Send + Sync {
    /// The bytes of each range, in order (several may be fetched at once).
    fn read_ranges(&self, ranges: &[Range<u64>]) -> StorageResult<Vec<Vec<u8>>>;
    /// The object's name, for errors.
    fn describe(&self) -> String;
}

/// A file being filled from a [`Source`].
pub struct Fill {
    source: Box<dyn Source>,
    /// The partial file; renamed to `path` when complete.
    part: PathBuf,
    path: PathBuf,
    file: File,
    len: u64,
    crc: u32,
    pages: Vec<AtomicU64>,
    missing: AtomicUsize,
    complete: AtomicBool,
    fetched: AtomicU64,
    /// Serialises [`Fill::warm`] (one warmer at a time; readers never wait for it).
    warming: Mutex<()>,
    /// The last fetch error, until the fill completes.
    error: Mutex<Option<String>>,
    /// On-demand fetches in flight: the warmer waits for them before its next requests, so a
    /// search's pages are not queued behind megabytes of background transfer.
    demand: Mutex<usize>,
    demand_done: Condvar,
}

impl std::fmt::Debug for Fill {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Fill")
            .field("path", &self.path)
            .field("len", &self.len)
            .field("missing_pages", &self.missing.load(Ordering::Relaxed))
            .finish()
    }
}

impl Fill {
    /// Starts filling `path` (through the partial file `part`, created empty and sized to
    /// `len`) with an object of `len` bytes whose crc32c is `crc`.
    pub fn create(source: Box<dyn Source>, part: &Path, path: &Path, len: u64, crc: u32) -> StorageResult<Fill> {
        fsio::remove_file_if_exists(part)?;
        let file = std::fs::OpenOptions::new()
            .read(true)
            .write(true)
            .create_new(true)
            .open(part)
            .map_err(StorageError::io(part))?;
        file.set_len(len).map_err(StorageError::io(part))?;
        let n_pages = len.div_ceil(PAGE) as usize;
        Ok(Fill {
            source,
            part: part.to_path_buf(),
            path: path.to_path_buf(),
            file,
            len,
            crc,
            pages: (0..n_pages.div_ceil(64)).map(|_| AtomicU64::new(0)).collect(),
            missing: AtomicUsize::new(n_pages),
            complete: AtomicBool::new(n_pages == 0),
            fetched: AtomicU64::new(0),
            warming: Mutex::new(()),
            error: Mutex::new(None),
            demand: Mutex::new(0),
            demand_done: Condvar::new(),
        })
    }

    /// The file being filled (the partial name until [`Fill::warm`] completes it; a map made
    /// of it stays valid across the rename).
    pub fn part_path(&self) -> &Path {
        &self.part
    }

    /// The file's final path.
    pub fn path(&self) -> &Path {
        &self.path
    }

    /// The object's length.
    pub fn len(&self) -> u64 {
        self.len
    }

    pub fn is_empty(&self) -> bool {
        self.len == 0
    }

    /// Whether every page is present and the file was checked and renamed.
    pub fn is_complete(&self) -> bool {
        self.complete.load(Ordering::Acquire)
    }

    /// Bytes fetched from the source so far (pages fetched twice count twice).
    pub fn fetched_bytes(&self) -> u64 {
        self.fetched.load(Ordering::Relaxed)
    }

    /// Bytes present in the file so far.
    pub fn present_bytes(&self) -> u64 {
        let missing = self.missing.load(Ordering::Relaxed) as u64;
        (self.len.div_ceil(PAGE) - missing).saturating_mul(PAGE).min(self.len)
    }

    /// Records a failed fetch (for status screens) until the fill completes.
    pub fn note_error(&self, e: &StorageError) {
        *self.error.lock().unwrap_or_else(|e| e.into_inner()) = Some(e.to_string());
    }

    /// The last failed fetch, while the fill is not complete.
    pub fn last_error(&self) -> Option<String> {
        self.error.lock().unwrap_or_else(|e| e.into_inner()).clone()
    }

    fn has(&self, page: u64) -> bool {
        self.pages[(page / 64) as usize].load(Ordering::Acquire) >> (page % 64) & 1 == 1
    }

    fn mark(&self, pages: Range<u64>) {
        for p in pages {
            let bit = 1u64 << (p % 64);
            if self.pages[(p / 64) as usize].fetch_or(bit, Ordering::AcqRel) & bit == 0 {
                self.missing.fetch_sub(1, Ordering::AcqRel);
            }
        }
    }

    /// Makes the bytes of `range` present, fetching the pages that are not.
    pub fn ensure(&self, range: Range<u64>) -> StorageResult<()> {
        if self.is_complete() || range.start >= range.end {
            return Ok(());
        }
        let end = range.end.min(self.len);
        let (first, last) = (range.start / PAGE, end.div_ceil(PAGE));
        let mut runs: Vec<Range<u64>> = Vec::new();
        for p in first..last {
            if self.has(p) {
                continue;
            }
            match runs.last_mut() {
                Some(r) if r.end == p && r.end - r.start < ENSURE_RUN_PAGES => r.end = p + 1,
                _ => runs.push(p..p + 1),
            }
        }
        if runs.is_empty() {
            return Ok(());
        }
        *self.demand.lock().unwrap_or_else(|e| e.into_inner()) += 1;
        let r = self.fetch_runs(&runs);
        let mut d = self.demand.lock().unwrap_or_else(|e| e.into_inner());
        *d -= 1;
        if *d == 0 {
            self.demand_done.notify_all();
        }
        r
    }

    /// Waits until no on-demand fetch is in flight (the warmer's courtesy).
    fn after_demand(&self) {
        let mut d = self.demand.lock().unwrap_or_else(|e| e.into_inner());
        while *d > 0 {
            d = self.demand_done.wait(d).unwrap_or_else(|e| e.into_inner());
        }
    }

    /// Fetches whole runs of pages, writes them and marks them present.
    fn fetch_runs(&self, runs: &[Range<u64>]) -> StorageResult<()> {
        if runs.is_empty() {
            return Ok(());
        }
        let bytes: Vec<Range<u64>> = runs.iter().map(|r| r.start * PAGE..(r.end * PAGE).min(self.len)).collect();
        let got = self.source.read_ranges(&bytes)?;
        for ((pages, want), data) in runs.iter().zip(&bytes).zip(got) {
            if data.len() as u64 != want.end - want.start {
                return Err(StorageError::corrupt(
                    &self.path,
                    want.start,
                    format!(
                        "{} returned {} bytes for a range of {}",
                        self.source.describe(),
                        data.len(),
                        want.end - want.start
                    ),
                ));
            }
            self.file.write_all_at(&data, want.start).map_err(StorageError::io(&self.part))?;
            self.fetched.fetch_add(data.len() as u64, Ordering::Relaxed);
            self.mark(pages.clone());
        }
        Ok(())
    }

    /// Fetches every missing page, checks the whole file against the object's checksum,
    /// fsyncs it and renames it to its final path. Returns at once when already complete.
    /// A checksum mismatch is an error and leaves the file partial (its pages stay marked:
    /// the bytes are what the store holds).
    pub fn warm(&self) -> StorageResult<()> {
        let _one = self.warming.lock().unwrap_or_else(|e| e.into_inner());
        if self.is_complete() {
            return Ok(());
        }
        let n_pages = self.len.div_ceil(PAGE);
        let per_run = WARM_RUN / PAGE;
        let mut batch: Vec<Range<u64>> = Vec::new();
        let mut p = 0;
        while p < n_pages {
            if self.has(p) {
                p += 1;
                continue;
            }
            let start = p;
            while p < n_pages && !self.has(p) && p - start < per_run {
                p += 1;
            }
            batch.push(start..p);
            if batch.len() == 4 {
                self.after_demand();
                self.fetch_runs(&std::mem::take(&mut batch))?;
            }
        }
        self.after_demand();
        self.fetch_runs(&batch)?;
        let crc = file_crc(&self.file, &self.part, self.len)?;
        if crc != self.crc {
            return Err(StorageError::corrupt(
                &self.path,
                0,
                format!(
                    "filled from {}: crc32c {crc:#010x}, the object is known as {:#010x}",
                    self.source.describe(),
                    self.crc
                ),
            ));
        }
        self.file.sync_all().map_err(StorageError::io(&self.part))?;
        std::fs::rename(&self.part, &self.path).map_err(StorageError::io(&self.path))?;
        fsio::fsync_dir(fsio::parent_dir(&self.path))?;
        self.complete.store(true, Ordering::Release);
        *self.error.lock().unwrap_or_else(|e| e.into_inner()) = None;
        Ok(())
    }
}

/// The crc32c of the first `len` bytes of an open file, read in pieces.
fn file_crc(file: &File, path: &Path, len: u64) -> StorageResult<u32> {
    let mut buf = vec![0u8; 1 << 20];
    let (mut crc, mut at) = (0u32, 0u64);
    while at < len {
        let n = ((len - at) as usize).min(buf.len());
        file.read_exact_at(&mut buf[..n], at).map_err(StorageError::io(path))?;
        crc = crc32c::crc32c_append(crc, &buf[..n]);
        at += n as u64;
    }
    Ok(crc)
}

/// The length and crc32c of a file, read in pieces (never whole in memory).
pub fn crc_of_file(path: &Path) -> StorageResult<(u64, u32)> {
    let file = File::open(path).map_err(StorageError::io(path))?;
    let len = file.metadata().map_err(StorageError::io(path))?.len();
    Ok((len, file_crc(&file, path, len)?))
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::sync::Arc;

    /// An object in memory that counts the bytes asked of it and can be made to fail.
    struct Mem {
        bytes: Arc<Vec<u8>>,
        asked: Arc<AtomicU64>,
        fail: Arc<AtomicBool>,
    }

    impl Source for Mem {
        fn read_ranges(&self, ranges: &[Range<u64>]) -> StorageResult<Vec<Vec<u8>>> {
            if self.fail.load(Ordering::Relaxed) {
                return Err(StorageError::Object {
                    url: "mem://".into(),
                    key: "obj".into(),
                    cause: "injected".into(),
                });
            }
            Ok(ranges
                .iter()
                .map(|r| {
                    self.asked.fetch_add(r.end - r.start, Ordering::Relaxed);
                    self.bytes[r.start as usize..r.end as usize].to_vec()
                })
                .collect())
        }
        fn describe(&self) -> String {
            "mem://obj".into()
        }
    }

    fn object(len: usize, seed: u64) -> Vec<u8> {
        let mut x = seed | 1;
        (0..len)
            .map(|_| {
                x ^= x << 13;
                x ^= x >> 7;
                x ^= x << 17;
                x as u8
            })
            .collect()
    }

    fn fill(dir: &Path, data: &[u8]) -> (Fill, Arc<AtomicU64>, Arc<AtomicBool>) {
        let (asked, fail) = (Arc::new(AtomicU64::new(0)), Arc::new(AtomicBool::new(false)));
        let src = Mem {
            bytes: Arc::new(data.to_vec()),
            asked: asked.clone(),
            fail: fail.clone(),
        };
        let f = Fill::create(
            Box::new(src),
            &dir.join("x.part"),
            &dir.join("x"),
            data.len() as u64,
            crc32c::crc32c(data),
        )
        .unwrap();
        (f, asked, fail)
    }

    #[test]
    fn ensured_ranges_read_the_object_and_nothing_far_from_them() {
        let dir = tempfile::tempdir().unwrap();
        let data = object(1_000_003, 7);
        let (f, asked, _) = fill(dir.path(), &data);
        let file = File::open(f.part_path()).unwrap();
        let mut x = 99u64;
        for _ in 0..200 {
            x = x.wrapping_mul(6364136223846793005).wrapping_add(1442695040888963407);
            let start = (x >> 33) % data.len() as u64;
            let len = (x >> 20) % 3000;
            let end = (start + len).min(data.len() as u64);
            f.ensure(start..end).unwrap();
            let mut got = vec![0u8; (end - start) as usize];
            file.read_exact_at(&mut got, start).unwrap();
            assert_eq!(got, &data[start as usize..end as usize]);
        }
        // Each ensure fetched at most the pages its range touches.
        assert!(asked.load(Ordering::Relaxed) <= 200 * (3000 / PAGE + 2) * PAGE);
        assert!(!f.is_complete());
        f.warm().unwrap();
        assert!(f.is_complete());
        assert_eq!(std::fs::read(dir.path().join("x")).unwrap(), data);
        assert!(!f.part_path().exists());
        // Every page was fetched once: on-demand pages are not fetched again by the warmer.
        assert_eq!(f.fetched_bytes(), data.len() as u64);
        assert_eq!(asked.load(Ordering::Relaxed), data.len() as u64);
        assert_eq!(f.present_bytes(), data.len() as u64);
    }

    #[test]
    fn a_failed_fetch_marks_nothing_and_a_retry_completes() {
        let dir = tempfile::tempdir().unwrap();
        let data = object(300_000, 3);
        let (f, _, fail) = fill(dir.path(), &data);
        fail.store(true, Ordering::Relaxed);
        assert!(matches!(f.ensure(0..10), Err(StorageError::Object { .. })));
        assert!(f.warm().is_err());
        assert_eq!(f.present_bytes(), 0);
        fail.store(false, Ordering::Relaxed);
        f.warm().unwrap();
        assert_eq!(std::fs::read(f.path()).unwrap(), data);
    }

    #[test]
    fn a_wrong_checksum_is_refused_and_the_file_keeps_its_partial_name() {
        let dir = tempfile::tempdir().unwrap();
        let data = object(50_000, 5);
        let src = Mem {
            bytes: Arc::new(data.clone()),
            asked: Arc::new(AtomicU64::new(0)),
            fail: Arc::new(AtomicBool::new(false)),
        };
        let f = Fill::create(
            Box::new(src),
            &dir.path().join("y.part"),
            &dir.path().join("y"),
            data.len() as u64,
            1234,
        )
        .unwrap();
        let e = f.warm().unwrap_err().to_string();
        assert!(e.contains("crc32c"), "{e}");
        assert!(!f.is_complete() && !dir.path().join("y").exists());
    }

    #[test]
    fn concurrent_readers_and_the_warmer_agree() {
        let dir = tempfile::tempdir().unwrap();
        let data = object(2_000_000, 11);
        let (f, _, _) = fill(dir.path(), &data);
        let f = Arc::new(f);
        std::thread::scope(|s| {
            s.spawn(|| f.warm().unwrap());
            for t in 0..3u64 {
                let (f, data) = (f.clone(), &data);
                s.spawn(move || {
                    let file = File::open(f.part_path()).or_else(|_| File::open(f.path())).unwrap();
                    for i in 0..300u64 {
                        let start = (i * 7919 + t * 104729) * 13 % data.len() as u64;
                        let end = (start + 500).min(data.len() as u64);
                        f.ensure(start..end).unwrap();
                        let mut got = vec![0u8; (end - start) as usize];
                        file.read_exact_at(&mut got, start).unwrap();
                        assert_eq!(got, &data[start as usize..end as usize]);
                    }
                });
            }
        });
        assert!(f.is_complete());
        assert_eq!(std::fs::read(f.path()).unwrap(), data);
    }

    #[test]
    fn crc_of_file_matches_whole_file_crc() {
        let dir = tempfile::tempdir().unwrap();
        let data = object(3_500_000, 13);
        let p = dir.path().join("z");
        std::fs::write(&p, &data).unwrap();
        assert_eq!(crc_of_file(&p).unwrap(), (data.len() as u64, crc32c::crc32c(&data)));
    }
}
