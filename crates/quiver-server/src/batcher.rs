//! The server's side of search batching: the library's [`quiver::SearchBatcher`] queues and
//! batches searches (see there why), and this wraps its replies for async handlers.

use crate::api::ApiError;
use quiver::{Database, ScoredPoint, SearchBatcher, SearchRequest};
use std::sync::Arc;
use tokio::sync::oneshot;

/// The queue handle kept in the server state.
pub struct Batcher {
    inner: SearchBatcher,
}

impl Batcher {
    /// Starts the library's dispatcher threads (one per core).
    pub fn start(db: Arc<Database>) -> Batcher {
        Batcher {
            inner: SearchBatcher::start(db),
        }
    }

    /// Queues one search at once; await the returned [`Answer`] for its result.
    pub fn submit(&self, collection: String, request: SearchRequest) -> Answer {
        let (reply, answer) = oneshot::channel();
        let queued = self.inner.submit(
            collection,
            request,
            Box::new(move |r| {
                let _ = reply.send(r.map_err(ApiError::from));
            }),
        );
        Answer { queued, answer }
    }
}

/// The pending answer of a queued search.
pub struct Answer {
    queued: bool,
    answer: oneshot::Receiver<Result<Vec<ScoredPoint>, ApiError>>,
}

impl Answer {
    pub async fn wait(self) -> Result<Vec<ScoredPoint>, ApiError> {
        if !self.queued {
            return Err(ApiError::new(axum::http::StatusCode::SERVICE_UNAVAILABLE, "shutting down"));
        }
        self.answer.await.unwrap_or_else(|_| {
            Err(ApiError::new(
                axum::http::StatusCode::INTERNAL_SERVER_ERROR,
                "search dispatcher stopped",
            ))
        })
    }
}
