//! File-system steps with the fsync discipline spelled out once.
//!
//! A file that replaces another is written to `NAME.tmp`, fsynced, renamed over `NAME`, and the
//! folder is fsynced so that the rename itself is durable. A crash at any moment leaves either
//! the old or the new file under `NAME` (POSIX rename is atomic); a stray `.tmp` is garbage that
//! the next open removes.

use crate::fault::{check, Step};
use crate::{StorageError, StorageResult};
use std::fs::{self, File, OpenOptions};
use std::io::Write;
use std::path::Path;

/// The folder holding `path`: its parent, or `.` for a bare relative name (whose parent is
/// the empty path, which cannot be opened).
pub fn parent_dir(path: &Path) -> &Path {
    match path.parent() {
        Some(p) if !p.as_os_str().is_empty() => p,
        _ => Path::new("."),
    }
}

/// fsyncs a folder, making renames, creations and removals inside it durable. The empty path
/// means the current folder.
pub fn fsync_dir(dir: &Path) -> StorageResult<()> {
    let dir = if dir.as_os_str().is_empty() { Path::new(".") } else { dir };
    check(Step::Sync, dir).map_err(StorageError::io(dir))?;
    let f = File::open(dir).map_err(StorageError::io(dir))?;
    f.sync_all().map_err(StorageError::io(dir))
}

/// Creates `path` (and parents), then fsyncs its parent so the new folder survives power loss.
pub fn create_dir_durable(path: &Path) -> StorageResult<()> {
    check(Step::Write, path).map_err(StorageError::io(path))?;
    fs::create_dir_all(path).map_err(StorageError::io(path))?;
    fsync_dir(parent_dir(path))
}

/// Writes `bytes` as a new file at `path` (which must not be visible to readers yet), fsynced.
pub fn write_new_file(path: &Path, bytes: &[u8]) -> StorageResult<()> {
    check(Step::Write, path).map_err(StorageError::io(path))?;
    let mut f = OpenOptions::new()
        .create(true)
        .write(true)
        .truncate(true)
        .open(path)
        .map_err(StorageError::io(path))?;
    f.write_all(bytes).map_err(StorageError::io(path))?;
    check(Step::Sync, path).map_err(StorageError::io(path))?;
    f.sync_all().map_err(StorageError::io(path))
}

/// Replaces `path` with `bytes` atomically and durably (see the module comment).
pub fn replace_file_atomic(path: &Path, bytes: &[u8]) -> StorageResult<()> {
    replace_with(path, |tmp| write_new_file(tmp, bytes))
}

/// Replaces `path` atomically and durably with the file `write` creates and fsyncs at the
/// temporary path it is given (for files written in pieces, never whole in memory).
pub fn replace_with(path: &Path, write: impl FnOnce(&Path) -> StorageResult<()>) -> StorageResult<()> {
    let tmp = path.with_extension("tmp");
    write(&tmp)?;
    check(Step::Rename, path).map_err(StorageError::io(path))?;
    fs::rename(&tmp, path).map_err(StorageError::io(path))?;
    fsync_dir(parent_dir(path))
}

/// Reads a whole file.
pub fn read_file(path: &Path) -> StorageResult<Vec<u8>> {
    fs::read(path).map_err(StorageError::io(path))
}

/// Removes a file if it exists.
pub fn remove_file_if_exists(path: &Path) -> StorageResult<()> {
    check(Step::Remove, path).map_err(StorageError::io(path))?;
    match fs::remove_file(path) {
        Ok(()) => Ok(()),
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(()),
        Err(e) => Err(StorageError::Io {
            path: path.to_path_buf(),
            cause: e,
        }),
    }
}
