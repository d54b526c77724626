//! Snapshots: a collection (or every collection) as one file at a point in time, to copy
//! elsewhere and recover from (Qdrant's snapshot API, in Quiver's own format).
//!
//! A collection snapshot is a tar archive of `MANIFEST`, the segments it names and `SETTINGS`,
//! under `collection/`. It is consistent because it is taken under the writer lock: the WAL is
//! flushed into a segment, then the manifest and its (immutable) segments are hard-linked into
//! a staging folder; the archive is written from there after the lock is released, so writes
//! wait only for the flush and the links. The approximate index is not included (it is rebuilt
//! in the background after recovery; searches stay exact until then).
//!
//! Files live in `<root>/snapshots/<collection>/<name>.snapshot`, each with a
//! `<name>.snapshot.checksum` beside it holding the SHA-256 of the archive in hex. Full
//! snapshots (`<root>/snapshots/.full/`) hold one collection snapshot per collection plus the
//! alias map.
//!
//! Recovery checks, in order: the checksum (when given), that the archive holds only a
//! collection's files, and that the collection opens (every segment's checksums are verified
//! by the decoder). Only then does it replace the collection, by renames: a failure or a crash
//! leaves the data folder as it was.

use crate::collection::Collection;
use crate::error::{Error, Result};
use quiver_storage::{fsio, StorageError};
use sha2::{Digest, Sha256};
use std::fs;
use std::io::{Read, Write};
use std::path::{Path, PathBuf};

/// A snapshot file as listed.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct SnapshotInfo {
    /// The file name (`<collection>-<unix millis>.snapshot`).
    pub name: String,
    /// When it was written (RFC 3339, UTC, seconds).
    pub creation_time: Option<String>,
    /// Its size in bytes.
    pub size: u64,
    /// The SHA-256 of the file, hex.
    pub checksum: Option<String>,
}

/// The suffix of snapshot files.
pub const SNAPSHOT_SUFFIX: &str = ".snapshot";
pub(crate) const CHECKSUM_SUFFIX: &str = ".checksum";
/// The folder of full snapshots, inside the snapshots folder (a collection cannot be named so).
pub(crate) const FULL_DIR: &str = ".full";

/// The snapshots folder of a data folder.
pub fn snapshots_root(root: &Path) -> PathBuf {
    root.join("snapshots")
}

/// `name` is a plain snapshot file name: no separators, no `..`, the right suffix.
pub fn valid_snapshot_name(name: &str) -> bool {
    name.ends_with(SNAPSHOT_SUFFIX)
        && !name.starts_with('.')
        && !name.contains(['/', '\\', '\0'])
        && !name.contains("..")
        && name.len() <= 255
}

/// The SHA-256 of a file, in hex.
pub fn sha256_file(path: &Path) -> Result<String> {
    let mut f = fs::File::open(path).map_err(StorageError::io(path))?;
    let mut h = Sha256::new();
    let mut buf = vec![0u8; 1 << 20];
    loop {
        let n = f.read(&mut buf).map_err(StorageError::io(path))?;
        if n == 0 {
            break;
        }
        h.update(&buf[..n]);
    }
    Ok(h.finalize().iter().map(|b| format!("{b:02x}")).collect())
}

/// The snapshots in `dir`, newest last.
pub(crate) fn list(dir: &Path) -> Result<Vec<SnapshotInfo>> {
    if !dir.exists() {
        return Ok(Vec::new());
    }
    let mut out = Vec::new();
    for entry in fs::read_dir(dir).map_err(StorageError::io(dir))? {
        let entry = entry.map_err(StorageError::io(dir))?;
        let name = entry.file_name().to_string_lossy().into_owned();
        if !valid_snapshot_name(&name) {
            continue;
        }
        let meta = entry.metadata().map_err(StorageError::io(&entry.path()))?;
        let checksum = fs::read_to_string(dir.join(format!("{name}{CHECKSUM_SUFFIX}")))
            .ok()
            .map(|s| s.trim().to_string());
        let creation_time = meta.modified().ok().map(rfc3339);
        out.push(SnapshotInfo {
            name,
            creation_time,
            size: meta.len(),
            checksum,
        });
    }
    out.sort_by(|a, b| a.creation_time.cmp(&b.creation_time).then(a.name.cmp(&b.name)));
    Ok(out)
}

/// A time as RFC 3339 (UTC, seconds), without a date library: days from the civil calendar.
pub(crate) fn rfc3339(t: std::time::SystemTime) -> String {
    let secs = t.duration_since(std::time::UNIX_EPOCH).map_or(0, |d| d.as_secs()) as i64;
    let (days, rem) = (secs.div_euclid(86_400), secs.rem_euclid(86_400));
    // Howard Hinnant's days-to-civil.
    let z = days + 719_468;
    let era = z.div_euclid(146_097);
    let doe = z - era * 146_097;
    let yoe = (doe - doe / 1460 + doe / 36_524 - doe / 146_096) / 365;
    let doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
    let mp = (5 * doy + 2) / 153;
    let d = doy - (153 * mp + 2) / 5 + 1;
    let m = if mp < 10 { mp + 3 } else { mp - 9 };
    let y = yoe + era * 400 + i64::from(m <= 2);
    format!("{y:04}-{m:02}-{d:02}T{:02}:{:02}:{:02}", rem / 3600, rem / 60 % 60, rem % 60)
}

/// A new snapshot's name: the collection's, then the time in milliseconds (unique per folder).
fn new_name(dir: &Path, prefix: &str) -> String {
    let millis = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(0, |d| d.as_millis());
    let mut n = 0;
    loop {
        let name = if n == 0 {
            format!("{prefix}-{millis}{SNAPSHOT_SUFFIX}")
        } else {
            format!("{prefix}-{millis}-{n}{SNAPSHOT_SUFFIX}")
        };
        if !dir.join(&name).exists() {
            return name;
        }
        n += 1;
    }
}

/// Writes a tar of `staging`'s files (paths under `prefix/`) to `dir/name` through a
/// temporary file, fsynced, then its checksum file. Returns the listing entry.
fn seal(staging: &Path, prefix: &str, dir: &Path, name: &str) -> Result<SnapshotInfo> {
    let tmp = dir.join(format!(".{name}.tmp"));
    let result = (|| -> Result<()> {
        let file = fs::File::create(&tmp).map_err(StorageError::io(&tmp))?;
        let mut tar = tar::Builder::new(std::io::BufWriter::new(file));
        tar.follow_symlinks(false);
        tar.append_dir_all(prefix, staging).map_err(StorageError::io(&tmp))?;
        let mut w = tar.into_inner().map_err(StorageError::io(&tmp))?;
        w.flush().map_err(StorageError::io(&tmp))?;
        w.get_ref().sync_all().map_err(StorageError::io(&tmp))?;
        Ok(())
    })();
    if let Err(e) = result {
        let _ = fs::remove_file(&tmp);
        return Err(e);
    }
    let checksum = sha256_file(&tmp)?;
    fsio::replace_file_atomic(&dir.join(format!("{name}{CHECKSUM_SUFFIX}")), checksum.as_bytes())?;
    let path = dir.join(name);
    fs::rename(&tmp, &path).map_err(StorageError::io(&path))?;
    fsio::fsync_dir(dir)?;
    let size = fs::metadata(&path).map_err(StorageError::io(&path))?.len();
    Ok(SnapshotInfo {
        name: name.to_string(),
        creation_time: Some(rfc3339(std::time::SystemTime::now())),
        size,
        checksum: Some(checksum),
    })
}

/// Takes a snapshot of `c` into `dir` (created if needed).
pub(crate) fn create(c: &Collection, dir: &Path) -> Result<SnapshotInfo> {
    fs::create_dir_all(dir).map_err(StorageError::io(dir))?;
    let name = new_name(dir, c.name());
    let staging = dir.join(format!(".{name}.staging"));
    if staging.exists() {
        fs::remove_dir_all(&staging).map_err(StorageError::io(&staging))?;
    }
    let result = c.stage_snapshot(&staging).and_then(|()| seal(&staging, "collection", dir, &name));
    let _ = fs::remove_dir_all(&staging);
    result
}

/// A full snapshot: each collection's snapshot and the alias map, in one archive.
pub(crate) fn create_full(db: &crate::Database, dir: &Path) -> Result<SnapshotInfo> {
    fs::create_dir_all(dir).map_err(StorageError::io(dir))?;
    let name = new_name(dir, "full-snapshot");
    let staging = dir.join(format!(".{name}.staging"));
    if staging.exists() {
        fs::remove_dir_all(&staging).map_err(StorageError::io(&staging))?;
    }
    let result = (|| {
        let parts = staging.join("collections");
        fs::create_dir_all(&parts).map_err(StorageError::io(&parts))?;
        for cname in db.list_collections()? {
            let c = db.collection(&cname)?;
            let info = create(&c, &parts)?;
            // One file per collection, named after it.
            let from = parts.join(&info.name);
            let to = parts.join(format!("{cname}{SNAPSHOT_SUFFIX}"));
            fs::rename(&from, &to).map_err(StorageError::io(&to))?;
            fs::rename(
                parts.join(format!("{}{CHECKSUM_SUFFIX}", info.name)),
                parts.join(format!("{cname}{SNAPSHOT_SUFFIX}{CHECKSUM_SUFFIX}")),
            )
            .map_err(StorageError::io(&parts))?;
        }
        let aliases = db.root().join(crate::aliases::ALIASES_FILE);
        if aliases.exists() {
            fs::copy(&aliases, staging.join(crate::aliases::ALIASES_FILE)).map_err(StorageError::io(&aliases))?;
        }
        seal(&staging, "full", dir, &name)
    })();
    let _ = fs::remove_dir_all(&staging);
    result
}

/// Deletes a snapshot and its checksum file; `false` when there was none.
pub(crate) fn delete(dir: &Path, name: &str) -> Result<bool> {
    if !valid_snapshot_name(name) {
        return Ok(false);
    }
    let path = dir.join(name);
    if !path.exists() {
        return Ok(false);
    }
    fs::remove_file(&path).map_err(StorageError::io(&path))?;
    fsio::remove_file_if_exists(&dir.join(format!("{name}{CHECKSUM_SUFFIX}")))?;
    fsio::fsync_dir(dir)?;
    Ok(true)
}

/// The files a collection snapshot may hold, relative to `collection/`.
fn allowed_entry(rel: &Path) -> bool {
    let parts: Vec<_> = rel.components().collect();
    match parts.as_slice() {
        [std::path::Component::Normal(f)] => *f == "MANIFEST" || *f == crate::settings::SETTINGS_FILE || *f == "segments",
        [std::path::Component::Normal(d), std::path::Component::Normal(f)] => *d == "segments" && f.to_string_lossy().ends_with(".seg"),
        _ => false,
    }
}

/// Unpacks a collection snapshot into `target` (which must not exist), refusing anything
/// that is not a collection's file. The error names the archive and what is wrong with it.
pub(crate) fn unpack(archive: &Path, target: &Path) -> Result<()> {
    let bad = |why: String| Error::InvalidRequest(format!("snapshot {}: {why}", archive.display()));
    let file = fs::File::open(archive).map_err(StorageError::io(archive))?;
    let mut tar = tar::Archive::new(std::io::BufReader::new(file));
    fs::create_dir_all(target.join("segments")).map_err(StorageError::io(target))?;
    fs::create_dir_all(target.join("wal")).map_err(StorageError::io(target))?;
    let mut saw_manifest = false;
    let entries = tar.entries().map_err(|e| bad(format!("not a tar archive ({e})")))?;
    for entry in entries {
        let mut entry = entry.map_err(|e| bad(format!("a damaged tar entry ({e})")))?;
        let path = entry
            .path()
            .map_err(|e| bad(format!("an entry without a readable path ({e})")))?
            .into_owned();
        let rel = path
            .strip_prefix("collection")
            .map_err(|_| {
                bad(format!(
                    "{} is not a collection file (is this a Quiver collection snapshot?)",
                    path.display()
                ))
            })?
            .to_path_buf();
        if rel.as_os_str().is_empty() {
            continue;
        }
        if !allowed_entry(&rel) {
            return Err(bad(format!("{} is not a collection file", path.display())));
        }
        match entry.header().entry_type() {
            tar::EntryType::Directory => continue,
            tar::EntryType::Regular => {}
            other => return Err(bad(format!("{} is a {other:?}, not a regular file", path.display()))),
        }
        saw_manifest |= rel == Path::new("MANIFEST");
        let dest = target.join(&rel);
        let mut out = fs::File::create(&dest).map_err(StorageError::io(&dest))?;
        std::io::copy(&mut entry, &mut out).map_err(|e| bad(format!("{} is truncated ({e})", path.display())))?;
        out.sync_all().map_err(StorageError::io(&dest))?;
    }
    if !saw_manifest {
        return Err(bad("it holds no MANIFEST (is this a Quiver collection snapshot?)".into()));
    }
    for d in [target.join("segments"), target.join("wal"), target.to_path_buf()] {
        fsio::fsync_dir(&d)?;
    }
    Ok(())
}

/// Checks `archive` against `checksum` (hex SHA-256, any case).
pub(crate) fn verify_checksum(archive: &Path, checksum: &str) -> Result<()> {
    let got = sha256_file(archive)?;
    if !got.eq_ignore_ascii_case(checksum.trim()) {
        return Err(Error::InvalidRequest(format!(
            "snapshot {}: checksum mismatch: expected {}, the file's SHA-256 is {got}",
            archive.display(),
            checksum.trim()
        )));
    }
    Ok(())
}

/// Opens the unpacked collection in `dir` once, to prove it whole, and closes it again.
pub(crate) fn check_opens(name: &str, dir: &Path) -> Result<()> {
    let c = Collection::open(name, dir)?;
    c.retire();
    drop(c);
    // The trial open may have written an index file or removed strays: harmless, but keep
    // the folder as the snapshot had it apart from that.
    let _ = fs::remove_file(dir.join(crate::ann::INDEX_FILE));
    Ok(())
}
