//! Bytes and files: the write-ahead log, checksummed immutable blob files (segments and
//! manifests), atomic replacement, and the data-folder lock.
//!
//! This crate knows nothing about vectors, payloads or collections: the `quiver` crate encodes
//! those into bytes with [`codec`] and hands them here. Every IO error names its file.
//! The byte layouts are documented in `docs/format.md`.

// `unsafe` is denied everywhere but `map` (mapping files), which says why it is sound.
#![deny(unsafe_code)]

pub mod aligned;
pub mod blob;
pub mod codec;
pub mod error;
pub mod fault;
pub mod fill;
pub mod fsio;
pub mod lock;
pub mod map;
pub mod object;
pub mod wal;

pub use error::{StorageError, StorageResult};
