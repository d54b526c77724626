//! The storage error type: every variant that involves a file names it.

use std::path::PathBuf;

pub type StorageResult<T> = Result<T, StorageError>;

#[derive(Debug, thiserror::Error)]
pub enum StorageError {
    /// The OS error is part of the message, and so deliberately not also the error's `source`:
    /// printers of error chains (anyhow's `{:#}`) would repeat it.
    #[error("I/O error on {path}: {cause}")]
    Io { path: PathBuf, cause: std::io::Error },
    #[error("data folder {path} is in use by another process (its LOCK file is held); stop that process or use another --data-dir")]
    Locked { path: PathBuf },
    #[error("corrupt file {path} at byte {offset}: {reason}")]
    Corrupt { path: PathBuf, offset: u64, reason: String },
    #[error("a write-ahead log record of {bytes} bytes exceeds the limit of {max} bytes")]
    RecordTooLarge { bytes: usize, max: usize },
    #[error("object storage {url}{}: {cause}", if key.is_empty() { String::new() } else { format!(", object {key}") })]
    Object { url: String, key: String, cause: String },
    #[error("the write-ahead log {path} failed earlier and refuses writes until the collection is reopened")]
    Poisoned { path: PathBuf },
}

impl StorageError {
    /// Wraps an IO error with the path it happened on.
    pub fn io(path: impl Into<PathBuf>) -> impl FnOnce(std::io::Error) -> StorageError {
        let path = path.into();
        move |cause| StorageError::Io { path, cause }
    }

    pub fn corrupt(path: impl Into<PathBuf>, offset: u64, reason: impl Into<String>) -> StorageError {
        StorageError::Corrupt {
            path: path.into(),
            offset,
            reason: reason.into(),
        }
    }
}
