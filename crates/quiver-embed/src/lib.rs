//! Text in, vectors out: steps 1 to 5 of the "vector database by hand" pipeline.
//!
//! Today this crate holds the classroom model of the exercise ([`ByHandModel`]): whitespace
//! tokens, a table of 4-d word embeddings, a one-layer perceptron (linear layer + ReLU), mean
//! pooling, and a projection to a 2-d index vector. It is small enough to check by hand, and
//! [`ByHandModel::trace`] returns every intermediate matrix so that `quiver walkthrough` can
//! show its work. Beside it, behind the same [`Embedder`] trait, [`MiniLm`] runs a real
//! sentence-transformers model (all-MiniLM-L6-v2) in pure Rust.

#![forbid(unsafe_code)]

mod byhand;
pub mod minilm;
pub mod pull;
pub mod registry;

pub use byhand::{ByHandModel, Trace};
pub use minilm::{find_model, MiniLm};

/// Why text could not be embedded.
#[derive(Debug, thiserror::Error, PartialEq, Eq)]
pub enum EmbedError {
    #[error("word {word:?} is not in the model's vocabulary ({vocabulary})")]
    UnknownWord { word: String, vocabulary: String },
    #[error("empty text: give at least one word")]
    EmptyText,
    #[error("{0}")]
    ModelNotFound(String),
    #[error("model error: {0}")]
    Model(String),
}

/// Turns texts into vectors of a fixed dimension.
pub trait Embedder {
    /// The dimension of every vector this embedder returns.
    fn dim(&self) -> usize;
    /// One vector per text, in order.
    fn embed(&self, texts: &[&str]) -> Result<Vec<Vec<f32>>, EmbedError>;
}
