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
#![deny(missing_docs)]

mod aliases;
mod ann;
mod batcher;
pub mod chunking;
pub mod collection;
pub mod context;
mod db;
mod error;
mod filter;
pub mod formula;
pub mod geo;
mod monitor;
pub mod npy;
mod payload_index;
mod projection;
pub mod remote;
mod rows;
mod segment;
pub mod settings;
pub mod snapshot;
mod sparse_index;
mod state;
mod store;
pub mod strict_mode;
mod text_index;
mod types;
pub mod vector_model;
mod vectors;

pub use aliases::AliasAction;
pub use ann::{IndexStatus, SearchPath};
pub use batcher::SearchBatcher;
pub use collection::{
    Collection, CollectionInfo, Discover, Fusion, FusionKind, MapPoint, MapRequest, PointSelector, QueryStage, Recommend,
    RecommendStrategy, ScrollPage, ScrollRequest, SearchRequest, StageQuery, UpdateMode, VectorMap, With, WriteAck,
};
pub use db::Database;
pub use error::{Error, ErrorKind, Result};
pub use filter::Filter;
pub use monitor::RecallEstimate;
pub use payload_index::{parse_datetime, PayloadIndexType};
pub use projection::{payload_exclude, payload_include};
pub use quiver_storage::StorageError;
pub use settings::CollectionSettings;
pub use strict_mode::StrictMode;
pub use text_index::{check_query_text, rrf, tokens};
pub use types::{
    named_vectors_from_json, payload_from_json, validate_name, vector_data_from_json, vector_from_json, CollectionConfig, Durability,
    EmbedPrecision, IndexConfig, Metric, Payload, Point, PointId, Quantization, Record, ScoredPoint, BATCH_POINTS_MAX, BUILD_THREADS_MAX,
    DIMENSION_MAX, EF_MAX, FILTER_DEPTH_MAX, NAME_BYTES_MAX, PAYLOAD_BYTES_MAX, PERIODIC_INTERVAL_MS_MAX, SEARCH_LIMIT_MAX,
    TARGET_RECALL_DEFAULT, VECTOR_NORM_MAX,
};
pub use vector_model::{NamedVectors, QueryVector, SparseVector, VectorData, VectorSchema};

/// Reading a collection's files without opening it: for diagnostics and the storage tests.
pub mod inspect {
    use std::path::Path;

    /// The numbers of the segment files the manifest in `collection_dir` names, as they are on
    /// disk now (an open collection may hold a newer manifest in memory while a commit runs).
    pub fn manifest_segments(collection_dir: &Path) -> crate::Result<Vec<u64>> {
        let path = collection_dir.join("MANIFEST");
        let image = std::fs::read(&path).map_err(|cause| crate::StorageError::Io { path: path.clone(), cause })?;
        Ok(crate::store::decode_manifest(&path, &image)?.segments)
    }
}

/// The instruction set the distance kernels use on this CPU (detected once per process).
pub fn kernel_isa() -> &'static str {
    quiver_kernels::isa().name()
}
