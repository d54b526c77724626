//! The library's one error type. Variants are grouped by who must act: the caller (bad input),
//! the caller's view of the world (not found / already exists), or the operator (storage).

use quiver_storage::StorageError;

pub type Result<T, E = Error> = std::result::Result<T, E>;

/// Who must act on an error; the server maps this to an HTTP status in one place.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum ErrorKind {
    /// The request is wrong; retrying it unchanged fails again (HTTP 400).
    BadInput,
    /// A named thing does not exist (HTTP 404).
    NotFound,
    /// A named thing exists already (HTTP 409).
    Conflict,
    /// The data folder is held by another process (HTTP 503 / exit status 3).
    Locked,
    /// The disk or the files failed; an operator must look (HTTP 500).
    Storage,
}

#[derive(Debug, thiserror::Error)]
pub enum Error {
    #[error("invalid collection name {name:?}: {reason}")]
    InvalidName { name: String, reason: &'static str },
    #[error("invalid dimension {dim}: must be between 1 and {max}")]
    InvalidDimension { dim: usize, max: usize },
    #[error("vector dimension error: expected {expected}, got {got}{}", point_suffix(.point))]
    DimensionMismatch {
        expected: usize,
        got: usize,
        point: Option<String>,
    },
    #[error("vector{} contains {what} at position {index}; only finite numbers are allowed", point_suffix(.point))]
    NonFiniteVector {
        what: &'static str,
        index: usize,
        point: Option<String>,
    },
    #[error("vector{} is too large: its length is {norm:.3e}, the largest allowed is {max:.0e} (so that every distance stays a finite float)", point_suffix(.point))]
    VectorTooLarge { norm: f64, max: f64, point: Option<String> },
    #[error("write refused: the write-ahead log holds {} MiB because flushing it into a segment keeps failing ({cause}); free disk space, then retry", bytes >> 20)]
    WalFull { bytes: u64, cause: String },
    #[error("empty batch: give at least one point")]
    EmptyBatch,
    #[error("batch of {got} points exceeds the limit of {max} per request; split it")]
    BatchTooLarge { got: usize, max: usize },
    #[error("invalid point id {0}: an id is an unsigned 64-bit integer or a UUID")]
    InvalidId(String),
    #[error("invalid payload{}: {reason}", point_suffix(.point))]
    InvalidPayload { reason: String, point: Option<String> },
    #[error("invalid filter: {0}")]
    InvalidFilter(String),
    #[error("unsupported: {0}")]
    Unsupported(String),
    #[error("invalid request: {0}")]
    InvalidRequest(String),
    #[error("collection {0:?} not found")]
    CollectionNotFound(String),
    #[error("collection {0:?} already exists")]
    CollectionExists(String),
    #[error("payload index on {0:?} not found")]
    IndexNotFound(String),
    #[error("the full-text index on {key:?} is unavailable ({reason}); it is rebuilt at the next write or open")]
    TextIndexUnavailable { key: String, reason: String },
    #[error(transparent)]
    Storage(#[from] StorageError),
}

fn point_suffix(point: &Option<String>) -> String {
    match point {
        Some(p) => format!(" (point {p})"),
        None => String::new(),
    }
}

impl Error {
    pub fn kind(&self) -> ErrorKind {
        match self {
            Error::InvalidName { .. }
            | Error::InvalidDimension { .. }
            | Error::DimensionMismatch { .. }
            | Error::NonFiniteVector { .. }
            | Error::VectorTooLarge { .. }
            | Error::EmptyBatch
            | Error::BatchTooLarge { .. }
            | Error::InvalidId(_)
            | Error::InvalidPayload { .. }
            | Error::InvalidFilter(_)
            | Error::Unsupported(_)
            | Error::InvalidRequest(_) => ErrorKind::BadInput,
            Error::CollectionNotFound(_) | Error::IndexNotFound(_) => ErrorKind::NotFound,
            Error::CollectionExists(_) => ErrorKind::Conflict,
            Error::Storage(StorageError::Locked { .. }) => ErrorKind::Locked,
            Error::Storage(_) | Error::TextIndexUnavailable { .. } | Error::WalFull { .. } => ErrorKind::Storage,
        }
    }
}
