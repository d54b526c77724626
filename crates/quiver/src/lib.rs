//! Quiver: an embedded vector database.
//!
//! ```no_run
//! use quiver::{Database, CollectionConfig, Metric, Point, SearchRequest};
//! let db = Database::open("./quiver-data")?;
//! let docs = db.create_collection("docs", CollectionConfig::new(3, Metric::Cosine))?;
//! docs.upsert(vec![Point::new(1u64, vec![0.1, 0.2, 0.3])])?;
//! let hits = docs.search(&SearchRequest::new(vec![0.1, 0.2, 0.25], 10))?;
//! # Ok::<(), quiver::Error>(())
//! ```
//!
//! A write returns once it is durable (see [`Durability`]) and is visible to the very next
//! search. See `ARCHITECTURE.md` for the map and `docs/format.md` for the files.

#![forbid(unsafe_code)]

mod ann;
pub mod batcher;
pub mod chunking;
pub mod collection;
pub mod context;
pub mod db;
pub mod error;
pub mod filter;
mod monitor;
pub mod npy;
pub mod payload_index;
mod state;
pub mod store;
pub mod text_index;
pub mod types;
mod vectors;

pub use ann::{IndexStatus, SearchPath};
pub use batcher::SearchBatcher;
pub use collection::{Collection, CollectionInfo, Fusion, PointSelector, ScrollPage, ScrollRequest, SearchRequest, WriteAck};
pub use db::Database;
pub use error::{Error, ErrorKind, Result};
pub use filter::Filter;
pub use monitor::RecallEstimate;
pub use payload_index::PayloadIndexType;
pub use quiver_storage::StorageError;
pub use types::*;

/// The instruction set the distance kernels use on this CPU (detected once per process).
pub fn kernel_isa() -> &'static str {
    quiver_kernels::isa().name()
}
