//! The write-ahead log: checksummed records grouped into transactions, in numbered files.
//!
//! Files are `<dir>/<first_seq as 20 digits>.wal`, each starting with the magic `QVWAL001`.
//! A record is `len u32 | crc32c u32 | seq u64 | flags u8 | payload[len]`; the checksum covers
//! `len`, `seq`, `flags` and the payload. One transaction is one or more consecutive records with
//! the same `seq`; the last carries [`FLAG_COMMIT`]. Recovery yields whole committed transactions
//! only, so a batch split over many records survives a crash entirely or not at all.
//!
//! Torn tail: only the newest file can end in a partial write. A record that runs past the end
//! of that file, or fails its checksum while being the last thing in it (or followed only by
//! zeros), is a torn tail: it and any uncommitted records before it are dropped and the file is
//! truncated. Any other bad record is corruption, reported with the file and offset, because
//! dropping it would lose acknowledged writes.

use crate::codec::{Decoder, Encoder};
use crate::fsio;
use crate::{StorageError, StorageResult};
use std::fs::{self, File, OpenOptions};
use std::io::{Seek, SeekFrom, Write};
use std::path::{Path, PathBuf};

pub const WAL_MAGIC: &[u8; 8] = b"QVWAL001";
/// Bytes before a record's payload.
pub const RECORD_HEADER_BYTES: usize = 17;
/// The largest payload of one record. Larger batches are split into several records of one
/// transaction by the caller.
pub const WAL_RECORD_BYTES_MAX: usize = 64 << 20;
/// Set on the last record of a transaction.
pub const FLAG_COMMIT: u8 = 1;

const _: () = assert!(WAL_RECORD_BYTES_MAX < u32::MAX as usize);

/// One recovered, committed transaction.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct WalTxn {
    pub seq: u64,
    pub records: Vec<Vec<u8>>,
}

/// An open log, positioned for appending to its newest file.
#[derive(Debug)]
pub struct Wal {
    dir: PathBuf,
    file: File,
    path: PathBuf,
    file_bytes: u64,
    poisoned: bool,
    unsynced: bool,
}

fn file_name(first_seq: u64) -> String {
    format!("{first_seq:020}.wal")
}

/// The WAL files in `dir`, oldest first, with their first sequence numbers.
fn list_files(dir: &Path) -> StorageResult<Vec<(u64, PathBuf)>> {
    let mut out = Vec::new();
    for entry in fs::read_dir(dir).map_err(StorageError::io(dir))? {
        let entry = entry.map_err(StorageError::io(dir))?;
        let name = entry.file_name();
        let name = name.to_string_lossy();
        if let Some(stem) = name.strip_suffix(".wal") {
            if let Ok(seq) = stem.parse::<u64>() {
                out.push((seq, entry.path()));
            }
        }
    }
    out.sort();
    Ok(out)
}

/// Parses the record at the start of `rest`: `(seq, flags, record length)` when its header is
/// complete, its length fits and its checksum matches.
fn parse_record(rest: &[u8]) -> Option<(u64, u8, usize)> {
    if rest.len() < RECORD_HEADER_BYTES {
        return None;
    }
    let mut d = Decoder::new(rest);
    let len = d.u32().ok()? as usize;
    let crc = d.u32().ok()?;
    let seq = d.u64().ok()?;
    let flags = d.u8().ok()?;
    if len > WAL_RECORD_BYTES_MAX || RECORD_HEADER_BYTES + len > rest.len() {
        return None;
    }
    let end = RECORD_HEADER_BYTES + len;
    let computed = crc32c::crc32c_append(crc32c::crc32c(&rest[0..4]), &rest[8..end]);
    (computed == crc).then_some((seq, flags, end))
}

/// `true` when a valid record starts anywhere at or after `from` (used only on the error path).
fn valid_record_follows(data: &[u8], from: usize) -> bool {
    (from..data.len().saturating_sub(RECORD_HEADER_BYTES - 1)).any(|p| parse_record(&data[p..]).is_some())
}

/// What scanning one file found.
struct Scan {
    txns: Vec<WalTxn>,
    /// The length to truncate the file to (the end of the last good committed record).
    good_bytes: u64,
}

fn scan_file(path: &Path, data: &[u8], is_last_file: bool, mut last_seq: u64) -> StorageResult<Scan> {
    let mut txns = Vec::new();
    if data.len() < WAL_MAGIC.len() {
        if is_last_file && WAL_MAGIC.starts_with(data) {
            return Ok(Scan { txns, good_bytes: 0 });
        }
        return Err(StorageError::corrupt(path, 0, "file is too short for the WAL header"));
    }
    if &data[..8] != WAL_MAGIC {
        return Err(StorageError::corrupt(path, 0, "wrong WAL magic"));
    }
    let mut pos = WAL_MAGIC.len();
    let mut good_bytes = pos as u64;
    let mut pending: Option<WalTxn> = None;
    while pos < data.len() {
        let rest = &data[pos..];
        let record = parse_record(rest);
        let Some((seq, flags, end)) = record else {
            // A bad record is a torn tail only in the newest file and only when no valid record
            // follows it; otherwise dropping it would drop acknowledged writes after it.
            if is_last_file && !valid_record_follows(data, pos + 1) {
                break;
            }
            return Err(StorageError::corrupt(
                path,
                pos as u64,
                "invalid record (bad length or checksum) followed by valid records, or in a WAL file that is not the newest",
            ));
        };
        if flags & !FLAG_COMMIT != 0 {
            return Err(StorageError::corrupt(
                path,
                pos as u64,
                format!("unknown record flags {flags:#04x}"),
            ));
        }
        let payload = rest[RECORD_HEADER_BYTES..end].to_vec();
        match &mut pending {
            Some(txn) if txn.seq == seq => txn.records.push(payload),
            Some(txn) => {
                return Err(StorageError::corrupt(
                    path,
                    pos as u64,
                    format!("record of transaction {seq} inside uncommitted transaction {}", txn.seq),
                ));
            }
            None => {
                if seq <= last_seq {
                    return Err(StorageError::corrupt(
                        path,
                        pos as u64,
                        format!("sequence number {seq} does not increase (previous {last_seq})"),
                    ));
                }
                pending = Some(WalTxn {
                    seq,
                    records: vec![payload],
                });
            }
        }
        pos += end;
        if flags & FLAG_COMMIT != 0 {
            let txn = pending.take().expect("a pending transaction was just extended");
            last_seq = txn.seq;
            txns.push(txn);
            good_bytes = pos as u64;
        }
    }
    if pending.is_some() && !is_last_file {
        return Err(StorageError::corrupt(
            path,
            good_bytes,
            "uncommitted transaction in a WAL file that is not the newest",
        ));
    }
    Ok(Scan { txns, good_bytes })
}

impl Wal {
    /// Opens (creating if needed) the log in `dir` and recovers it: returns every committed
    /// transaction with `seq > after_seq`, oldest first, and truncates a torn tail so the next
    /// append starts on a clean boundary. A new, empty log starts at `after_seq + 1`.
    pub fn open(dir: &Path, after_seq: u64) -> StorageResult<(Wal, Vec<WalTxn>)> {
        fsio::create_dir_durable(dir)?;
        let files = list_files(dir)?;
        let mut txns = Vec::new();
        let mut last_seq = 0u64;
        let mut tail: Option<(PathBuf, u64)> = None;
        for (i, (_, path)) in files.iter().enumerate() {
            let is_last = i + 1 == files.len();
            let data = fsio::read_file(path)?;
            let scan = scan_file(path, &data, is_last, last_seq)?;
            if let Some(t) = scan.txns.last() {
                last_seq = t.seq;
            }
            txns.extend(scan.txns.into_iter().filter(|t| t.seq > after_seq));
            if is_last {
                tail = Some((path.clone(), scan.good_bytes));
            }
        }
        let (path, good_bytes) = match tail {
            Some(t) => t,
            None => (dir.join(file_name(after_seq.max(last_seq) + 1)), 0),
        };
        let mut file = OpenOptions::new()
            .create(true)
            .read(true)
            .write(true)
            .truncate(false)
            .open(&path)
            .map_err(StorageError::io(&path))?;
        let on_disk = file.metadata().map_err(StorageError::io(&path))?.len();
        let mut file_bytes = good_bytes;
        if good_bytes < WAL_MAGIC.len() as u64 {
            file.set_len(0).map_err(StorageError::io(&path))?;
            file.write_all(WAL_MAGIC).map_err(StorageError::io(&path))?;
            file.sync_all().map_err(StorageError::io(&path))?;
            fsio::fsync_dir(dir)?;
            file_bytes = WAL_MAGIC.len() as u64;
        } else if on_disk != good_bytes {
            file.set_len(good_bytes).map_err(StorageError::io(&path))?;
            file.sync_all().map_err(StorageError::io(&path))?;
        }
        file.seek(SeekFrom::Start(file_bytes)).map_err(StorageError::io(&path))?;
        Ok((
            Wal {
                dir: dir.to_path_buf(),
                file,
                path,
                file_bytes,
                poisoned: false,
                unsynced: false,
            },
            txns,
        ))
    }

    /// Appends one transaction made of `records` (at least one), all with sequence number `seq`,
    /// which must exceed every earlier one. With `sync`, returns only once the bytes are on disk.
    /// On an IO error the partial transaction is cut off again; if even that fails the log is
    /// poisoned and refuses writes until reopened, so a later commit can never adopt the
    /// orphaned records.
    pub fn append(&mut self, seq: u64, records: &[&[u8]], sync: bool) -> StorageResult<()> {
        assert!(!records.is_empty(), "a transaction has at least one record");
        if self.poisoned {
            return Err(StorageError::Poisoned { path: self.path.clone() });
        }
        let total: usize = records.iter().map(|r| RECORD_HEADER_BYTES + r.len()).sum();
        let mut e = Encoder::with_capacity(total);
        for (i, r) in records.iter().enumerate() {
            if r.len() > WAL_RECORD_BYTES_MAX {
                return Err(StorageError::RecordTooLarge {
                    bytes: r.len(),
                    max: WAL_RECORD_BYTES_MAX,
                });
            }
            let flags = if i + 1 == records.len() { FLAG_COMMIT } else { 0 };
            let start = e.len();
            e.u32(r.len() as u32);
            e.u32(0); // checksum, filled in below
            e.u64(seq);
            e.u8(flags);
            e.raw(r);
            let crc = crc32c::crc32c_append(crc32c::crc32c(&e.buf[start..start + 4]), &e.buf[start + 8..]);
            e.buf[start + 4..start + 8].copy_from_slice(&crc.to_le_bytes());
        }
        let result = self
            .file
            .write_all(&e.buf)
            .and_then(|_| if sync { self.file.sync_data() } else { Ok(()) });
        match result {
            Ok(()) => {
                self.file_bytes += e.len() as u64;
                self.unsynced = !sync;
                Ok(())
            }
            Err(source) => {
                let undo = self
                    .file
                    .set_len(self.file_bytes)
                    .and_then(|_| self.file.seek(SeekFrom::Start(self.file_bytes)).map(|_| ()));
                if undo.is_err() {
                    self.poisoned = true;
                }
                Err(StorageError::Io {
                    path: self.path.clone(),
                    cause: source,
                })
            }
        }
    }

    /// Makes every appended byte durable (the group-commit path calls this periodically).
    pub fn sync(&mut self) -> StorageResult<()> {
        if self.unsynced {
            self.file.sync_data().map_err(StorageError::io(&self.path))?;
            self.unsynced = false;
        }
        Ok(())
    }

    /// `true` when bytes were appended without an fsync since.
    pub fn has_unsynced(&self) -> bool {
        self.unsynced
    }

    /// Bytes in the current file, header included.
    pub fn file_bytes(&self) -> u64 {
        self.file_bytes
    }

    /// Starts a new file for transactions from `next_seq` on, after syncing the current one,
    /// and removes every older file. Call it only once everything up to `next_seq - 1` is safe
    /// elsewhere (flushed to a segment named by a durable manifest).
    pub fn restart_at(&mut self, next_seq: u64) -> StorageResult<()> {
        self.sync()?;
        let path = self.dir.join(file_name(next_seq));
        crate::fault::check(crate::fault::Step::Write, &path).map_err(StorageError::io(&path))?;
        let mut file = OpenOptions::new()
            .create(true)
            .read(true)
            .write(true)
            .truncate(true)
            .open(&path)
            .map_err(StorageError::io(&path))?;
        file.write_all(WAL_MAGIC).map_err(StorageError::io(&path))?;
        file.sync_all().map_err(StorageError::io(&path))?;
        fsio::fsync_dir(&self.dir)?;
        self.file = file;
        self.path = path;
        self.file_bytes = WAL_MAGIC.len() as u64;
        self.poisoned = false;
        for (seq, old) in list_files(&self.dir)? {
            if seq < next_seq {
                fsio::remove_file_if_exists(&old)?;
            }
        }
        fsio::fsync_dir(&self.dir)
    }

    pub fn path(&self) -> &Path {
        &self.path
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn payloads(n: usize, seed: u8) -> Vec<Vec<u8>> {
        (0..n).map(|i| vec![seed.wrapping_add(i as u8); 3 + i * 5]).collect()
    }

    #[test]
    fn append_reopen_and_restart() {
        let dir = tempfile::tempdir().unwrap();
        let (mut wal, txns) = Wal::open(dir.path(), 0).unwrap();
        assert!(txns.is_empty());
        let p1 = payloads(1, 1);
        let p2 = payloads(3, 9);
        wal.append(1, &[&p1[0]], true).unwrap();
        wal.append(2, &p2.iter().map(|p| p.as_slice()).collect::<Vec<_>>(), true).unwrap();
        drop(wal);
        let (mut wal, txns) = Wal::open(dir.path(), 0).unwrap();
        assert_eq!(
            txns,
            vec![
                WalTxn {
                    seq: 1,
                    records: p1.clone()
                },
                WalTxn {
                    seq: 2,
                    records: p2.clone()
                }
            ]
        );
        wal.restart_at(3).unwrap();
        wal.append(3, &[b"x"], false).unwrap();
        wal.sync().unwrap();
        drop(wal);
        let (_, txns) = Wal::open(dir.path(), 2).unwrap();
        assert_eq!(
            txns,
            vec![WalTxn {
                seq: 3,
                records: vec![b"x".to_vec()]
            }]
        );
        assert_eq!(list_files(dir.path()).unwrap().len(), 1);
    }

    /// Truncating inside a multi-record transaction drops the whole transaction and nothing
    /// before it; flipping a byte before the last record is a typed error, never a silent loss;
    /// flipping one inside the last record reads as a torn write and drops its transaction.
    #[test]
    fn torn_and_corrupted_tails() {
        let dir = tempfile::tempdir().unwrap();
        let (mut wal, _) = Wal::open(dir.path(), 0).unwrap();
        let p1 = payloads(2, 1);
        let p2 = payloads(4, 7);
        wal.append(1, &p1.iter().map(|p| p.as_slice()).collect::<Vec<_>>(), true).unwrap();
        let before_last = wal.file_bytes() as usize;
        wal.append(2, &p2.iter().map(|p| p.as_slice()).collect::<Vec<_>>(), true).unwrap();
        let path = wal.path().to_path_buf();
        drop(wal);
        let image = std::fs::read(&path).unwrap();
        let first = vec![WalTxn {
            seq: 1,
            records: p1.clone(),
        }];
        let last_record = image.len() - RECORD_HEADER_BYTES - p2[3].len();
        for cut in before_last..image.len() {
            std::fs::write(&path, &image[..cut]).unwrap();
            let (_, txns) = Wal::open(dir.path(), 0).unwrap();
            assert_eq!(txns, first, "cut at {cut}");
            assert_eq!(
                std::fs::metadata(&path).unwrap().len() as usize,
                before_last,
                "tail truncated at {cut}"
            );
        }
        for i in 0..image.len() {
            let mut bad = image.clone();
            bad[i] ^= 0x10;
            std::fs::write(&path, &bad).unwrap();
            match Wal::open(dir.path(), 0) {
                Ok((_, txns)) => {
                    assert!(i >= last_record, "flip at {i} before the last record was not reported");
                    assert_eq!(txns, first, "flip at {i}");
                }
                Err(e) => {
                    assert!(i < last_record, "flip at {i} inside the last record should read as torn: {e}");
                    assert!(e.to_string().contains(".wal"), "{e}");
                }
            }
        }
    }

    #[test]
    fn lock_is_exclusive() {
        let dir = tempfile::tempdir().unwrap();
        let first = crate::lock::DirLock::acquire(dir.path()).unwrap();
        let second = crate::lock::DirLock::acquire(dir.path());
        assert!(matches!(second, Err(StorageError::Locked { .. })));
        drop(first);
        crate::lock::DirLock::acquire(dir.path()).unwrap();
    }
}
