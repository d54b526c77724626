//! The library's one error type. Variants are grouped by who must act: the caller (bad input),
//! the caller's view of the world (not found / already exists), or the operator (storage).

use quiver_storage::StorageError;

/// The library's result type.
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
    /// A read-only replica refused a write (HTTP 403).
    ReadOnly,
    /// The disk or the files failed; an operator must look (HTTP 500).
    Storage,
    /// A rate limit of the collection's strict mode refused the request; retry later (HTTP 429).
    RateLimited,
}

/// Everything that can go wrong in the library. The message says what happened and, where it
/// helps, what to do; [`Error::kind`] says who must act.
#[derive(Debug, thiserror::Error)]
pub enum Error {
    /// A collection name that cannot be a folder name.
    #[error("invalid collection name {name:?}: {reason}")]
    InvalidName {
        /// The name given.
        name: String,
        /// What is wrong with it.
        reason: &'static str,
    },
    /// A vector dimension outside `1..=max`.
    #[error("invalid dimension {dim}: must be between 1 and {max}")]
    InvalidDimension {
        /// The dimension given.
        dim: usize,
        /// The largest allowed ([`crate::DIMENSION_MAX`]).
        max: usize,
    },
    /// A vector of another length than the collection's.
    #[error("Vector dimension error: expected dim: {expected}, got {got}{}", point_suffix(.point))]
    DimensionMismatch {
        /// The collection's dimension.
        expected: usize,
        /// The vector's length.
        got: usize,
        /// The point it belongs to, when a write carried it.
        point: Option<String>,
    },
    /// A vector holding NaN or an infinity.
    #[error("vector{} contains {what} at position {index}; only finite numbers are allowed", point_suffix(.point))]
    NonFiniteVector {
        /// `NaN` or `infinity`.
        what: &'static str,
        /// Its position in the vector.
        index: usize,
        /// The point it belongs to, when a write carried it.
        point: Option<String>,
    },
    /// A vector so long that distances would overflow a float.
    #[error("vector{} is too large: its length is {norm:.3e}, the largest allowed is {max:.0e} (so that every distance stays a finite float)", point_suffix(.point))]
    VectorTooLarge {
        /// Its Euclidean length.
        norm: f64,
        /// The largest allowed ([`crate::VECTOR_NORM_MAX`]).
        max: f64,
        /// The point it belongs to, when a write carried it.
        point: Option<String>,
    },
    /// A named, sparse or multi vector that is malformed.
    #[error("invalid vector {name:?}: {reason}")]
    InvalidVector {
        /// The vector's name.
        name: String,
        /// What is wrong with it.
        reason: String,
    },
    /// A vector name the collection does not declare (Qdrant's wording).
    #[error("Not existing vector name error: {0}")]
    VectorNameNotFound(String),
    /// Writes are refused: the WAL reached its cap because flushes keep failing.
    #[error("write refused: the write-ahead log holds {} MiB because flushing it into a segment keeps failing ({cause}); free disk space, then retry", bytes >> 20)]
    WalFull {
        /// The WAL's size.
        bytes: u64,
        /// Why the last flush failed.
        cause: String,
    },
    /// A write with no points.
    #[error("empty batch: give at least one point")]
    EmptyBatch,
    /// A write with more points than one batch may hold.
    #[error("batch of {got} points exceeds the limit of {max} per request; split it")]
    BatchTooLarge {
        /// Points in the batch.
        got: usize,
        /// The most allowed ([`crate::BATCH_POINTS_MAX`]).
        max: usize,
    },
    /// Neither an unsigned integer nor a UUID.
    #[error("invalid point id {0}: an id is an unsigned 64-bit integer or a UUID")]
    InvalidId(String),
    /// A payload that is not an object, or too large.
    #[error("invalid payload{}: {reason}", point_suffix(.point))]
    InvalidPayload {
        /// What is wrong with it.
        reason: String,
        /// The point it belongs to, when known.
        point: Option<String>,
    },
    /// A filter that does not parse or cannot be evaluated.
    #[error("invalid filter: {0}")]
    InvalidFilter(String),
    /// A feature Quiver does not have; the message names it.
    #[error("unsupported: {0}")]
    Unsupported(String),
    /// A well-formed request with a value out of bounds, in Qdrant's words (HTTP 422).
    #[error("Validation error in JSON body: [{field}: {problem}]")]
    Validation {
        /// Where in the request.
        field: String,
        /// What is wrong there.
        problem: String,
    },
    /// Any other wrong request; the message says what is wrong.
    #[error("invalid request: {0}")]
    InvalidRequest(String),
    /// No collection of that name.
    #[error("collection {0:?} not found")]
    CollectionNotFound(String),
    /// A collection of that name exists already.
    #[error("collection {0:?} already exists")]
    CollectionExists(String),
    /// No point with that id (where a write needs one to exist).
    #[error("No point with id {0} found")]
    PointNotFound(String),
    /// No alias of that name.
    #[error("alias {0:?} not found")]
    AliasNotFound(String),
    /// No payload index on that key.
    #[error("payload index on {0:?} not found")]
    IndexNotFound(String),
    /// The full-text index could not answer (it is rebuilt, never trusted half-written).
    #[error("the full-text index on {key:?} is unavailable ({reason}); it is rebuilt at the next write or open")]
    TextIndexUnavailable {
        /// The indexed payload key.
        key: String,
        /// What failed.
        reason: String,
    },
    /// Strict mode refused the request: what was refused, and how to get through.
    #[error("Strict mode error: {message}. Help: {help}")]
    StrictMode {
        /// What was refused.
        message: String,
        /// What the caller can do.
        help: String,
    },
    /// A write to a read-only replica of a collection on object storage.
    #[error("{0} is served read-only (quiver serve --read-only follows the writer through object storage): send writes to the writer")]
    ReadOnly(String),
    /// Another writer holds the collection on object storage: this one took over, or is
    /// holding it now. The message says which and what to do.
    #[error("{0}")]
    Fenced(String),
    /// A strict-mode rate limit refused the request (Qdrant's wording after the colon).
    #[error("Rate limiting exceeded: {message}")]
    RateLimited {
        /// Which limit, and what the request needed.
        message: String,
        /// Seconds until enough tokens are back (none when the request can never fit).
        retry_after: Option<u32>,
    },
    /// The disk or the files failed.
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
    /// Who must act on this error.
    pub fn kind(&self) -> ErrorKind {
        match self {
            Error::InvalidName { .. }
            | Error::InvalidDimension { .. }
            | Error::DimensionMismatch { .. }
            | Error::NonFiniteVector { .. }
            | Error::VectorTooLarge { .. }
            | Error::InvalidVector { .. }
            | Error::VectorNameNotFound(_)
            | Error::EmptyBatch
            | Error::BatchTooLarge { .. }
            | Error::InvalidId(_)
            | Error::InvalidPayload { .. }
            | Error::InvalidFilter(_)
            | Error::Unsupported(_)
            | Error::InvalidRequest(_)
            | Error::Validation { .. }
            | Error::StrictMode { .. } => ErrorKind::BadInput,
            Error::RateLimited { .. } => ErrorKind::RateLimited,
            Error::CollectionNotFound(_) | Error::IndexNotFound(_) | Error::AliasNotFound(_) | Error::PointNotFound(_) => {
                ErrorKind::NotFound
            }
            Error::CollectionExists(_) => ErrorKind::Conflict,
            Error::ReadOnly(_) => ErrorKind::ReadOnly,
            Error::Fenced(_) => ErrorKind::Locked,
            Error::Storage(StorageError::Locked { .. }) => ErrorKind::Locked,
            Error::Storage(_) | Error::TextIndexUnavailable { .. } | Error::WalFull { .. } => ErrorKind::Storage,
        }
    }
}
