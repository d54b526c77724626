//! Micro-batching of searches. An exact scan is bound by memory bandwidth: two scans at once on
//! two cores each stream the whole matrix and fight for the same memory bus. So concurrent search
//! requests are not run side by side; they queue here, and one dispatcher thread takes every
//! request waiting (up to `BATCH_MAX`) and answers them with one `search_batch` per collection,
//! which reads the vectors once for the whole batch (a tiled matrix product on every core).
//!
//! At low load a request finds the queue empty and runs at once as a single search, so latency
//! is that of one scan; under load, throughput grows with the batch instead of collapsing.

use crate::api::ApiError;
use quiver::{Database, ScoredPoint, SearchRequest};
use std::collections::BTreeMap;
use std::sync::mpsc;
use std::sync::{Arc, Mutex};
use tokio::sync::oneshot;

/// The most requests answered by one batch.
pub const BATCH_MAX: usize = 256;

struct Job {
    collection: String,
    request: SearchRequest,
    reply: oneshot::Sender<Result<Vec<ScoredPoint>, ApiError>>,
}

/// The queue handle kept in the server state.
pub struct Batcher {
    tx: mpsc::Sender<Job>,
}

impl Batcher {
    /// Starts one dispatcher thread per core; they end when the `Batcher` is dropped. With
    /// several dispatchers, requests arriving one at a time still use every core (one scan
    /// each), while a queue under load is split into a few large batches.
    pub fn start(db: Arc<Database>) -> Batcher {
        let (tx, rx) = mpsc::channel::<Job>();
        let rx = Arc::new(Mutex::new(rx));
        let n = std::thread::available_parallelism().map(|n| n.get()).unwrap_or(1);
        for i in 0..n {
            let (db, rx) = (db.clone(), rx.clone());
            std::thread::Builder::new()
                .name(format!("quiver-search-{i}"))
                .spawn(move || dispatch(db, rx))
                .expect("spawning a search dispatcher thread");
        }
        Batcher { tx }
    }

    /// Queues one search at once; await the returned [`Answer`] for its result.
    pub fn submit(&self, collection: String, request: SearchRequest) -> Answer {
        let (reply, answer) = oneshot::channel();
        let queued = self
            .tx
            .send(Job {
                collection,
                request,
                reply,
            })
            .is_ok();
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

fn dispatch(db: Arc<Database>, rx: Arc<Mutex<mpsc::Receiver<Job>>>) {
    loop {
        // Take everything waiting, up to BATCH_MAX, then let the next dispatcher in.
        let jobs = {
            let rx = rx.lock().expect("dispatcher lock");
            let Ok(first) = rx.recv() else { return };
            let mut jobs = vec![first];
            while jobs.len() < BATCH_MAX {
                match rx.try_recv() {
                    Ok(j) => jobs.push(j),
                    Err(_) => break,
                }
            }
            jobs
        };
        let mut by_collection: BTreeMap<String, Vec<Job>> = BTreeMap::new();
        for j in jobs {
            by_collection.entry(j.collection.clone()).or_default().push(j);
        }
        for (name, jobs) in by_collection {
            run(&db, &name, jobs);
        }
    }
}

fn run(db: &Database, name: &str, jobs: Vec<Job>) {
    let c = match db.collection(name) {
        Ok(c) => c,
        Err(e) => {
            let e = ApiError::from(e);
            for j in jobs {
                let _ = j.reply.send(Err(ApiError::new(e.status, e.message.clone())));
            }
            return;
        }
    };
    // Answer bad requests one by one so they cannot spoil the batch.
    let mut good = Vec::with_capacity(jobs.len());
    for j in jobs {
        match c.check_search(&j.request) {
            Ok(()) => good.push(j),
            Err(e) => {
                let _ = j.reply.send(Err(e.into()));
            }
        }
    }
    if good.is_empty() {
        return;
    }
    let (requests, replies): (Vec<SearchRequest>, Vec<_>) = good.into_iter().map(|j| (j.request, j.reply)).unzip();
    let results = if requests.len() == 1 {
        c.search(&requests[0]).map(|r| vec![r])
    } else {
        c.search_batch(&requests)
    };
    match results {
        Ok(results) => {
            for (reply, hits) in replies.into_iter().zip(results) {
                let _ = reply.send(Ok(hits));
            }
        }
        Err(e) => {
            let e = ApiError::from(e);
            for reply in replies {
                let _ = reply.send(Err(ApiError::new(e.status, e.message.clone())));
            }
        }
    }
}
