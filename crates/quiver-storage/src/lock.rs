//! One process owns a data folder at a time: an exclusive advisory lock on `<dir>/LOCK`, taken
//! without waiting. The operating system releases it when the process dies, even by SIGKILL, so
//! a crash never leaves a stale lock behind.

use crate::{StorageError, StorageResult};
use std::fs::{File, OpenOptions, TryLockError};
use std::path::{Path, PathBuf};

/// Holds the lock until dropped.
#[derive(Debug)]
pub struct DirLock {
    _file: File,
    path: PathBuf,
}

impl DirLock {
    /// Takes the lock on `dir` (which must exist) or fails at once with [`StorageError::Locked`].
    pub fn acquire(dir: &Path) -> StorageResult<DirLock> {
        let path = dir.join("LOCK");
        let file = OpenOptions::new()
            .create(true)
            .truncate(false)
            .read(true)
            .write(true)
            .open(&path)
            .map_err(StorageError::io(&path))?;
        match file.try_lock() {
            Ok(()) => Ok(DirLock { _file: file, path }),
            Err(TryLockError::WouldBlock) => Err(StorageError::Locked { path: dir.to_path_buf() }),
            Err(TryLockError::Error(e)) => Err(StorageError::Io { path, cause: e }),
        }
    }

    pub fn path(&self) -> &Path {
        &self.path
    }
}
