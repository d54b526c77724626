//! Micro-batching of searches, for any program that serves concurrent searches (the server uses
//! it; an application that links the library gets the same). An exact scan is bound by memory
//! bandwidth: two scans at once on two cores each stream the whole matrix and fight for the same
//! memory bus. So concurrent searches are not run side by side; they queue here, and one
//! dispatcher thread takes every request waiting (up to [`BATCH_MAX`]) and answers them with one
//! [`Collection::search_batch`](crate::Collection::search_batch) per collection, which reads the
//! vectors once for the whole batch (a tiled matrix product on every core).
//!
//! At low load a request finds the queue empty and runs at once as a single search, so latency
//! is that of one scan; under load, throughput grows with the batch instead of collapsing.
//! Bad requests are checked one by one first, so they cannot spoil a batch.

use crate::error::{Error, Result};
use crate::{Database, ScoredPoint, SearchRequest};
use std::collections::BTreeMap;
use std::sync::mpsc;
use std::sync::{Arc, Mutex};

/// The most requests answered by one batch.
pub const BATCH_MAX: usize = 256;

/// What receives a search's answer (called once, on a dispatcher thread).
pub type Reply = Box<dyn FnOnce(Result<Vec<ScoredPoint>>) + Send>;

struct Job {
    collection: String,
    request: SearchRequest,
    reply: Reply,
}

/// The queue of searches; dispatcher threads end when it is dropped.
pub struct SearchBatcher {
    tx: mpsc::Sender<Job>,
}

impl std::fmt::Debug for SearchBatcher {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("SearchBatcher").finish_non_exhaustive()
    }
}

impl SearchBatcher {
    /// Starts one dispatcher thread per core. With several dispatchers, requests arriving one at
    /// a time still use every core (one scan each), while a queue under load is split into a few
    /// large batches.
    pub fn start(db: Arc<Database>) -> SearchBatcher {
        let (tx, rx) = mpsc::channel::<Job>();
        let rx = Arc::new(Mutex::new(rx));
        let n = std::thread::available_parallelism().map_or(1, |n| n.get());
        for i in 0..n {
            let (db, rx) = (db.clone(), rx.clone());
            std::thread::Builder::new()
                .name(format!("quiver-search-{i}"))
                .spawn(move || dispatch(db, rx))
                .expect("spawning a search dispatcher thread");
        }
        SearchBatcher { tx }
    }

    /// Queues one search; `reply` gets its answer. False (and `reply` is dropped unanswered)
    /// when the dispatchers are gone.
    pub fn submit(&self, collection: String, request: SearchRequest, reply: Reply) -> bool {
        self.tx
            .send(Job {
                collection,
                request,
                reply,
            })
            .is_ok()
    }

    /// Queues one search and waits for its answer on this thread.
    pub fn search(&self, collection: &str, request: SearchRequest) -> Result<Vec<ScoredPoint>> {
        let (tx, rx) = mpsc::channel();
        let queued = self.submit(
            collection.to_string(),
            request,
            Box::new(move |r| {
                let _ = tx.send(r);
            }),
        );
        let stopped = || Error::InvalidRequest("the search dispatchers have stopped".into());
        if !queued {
            return Err(stopped());
        }
        rx.recv().unwrap_or_else(|_| Err(stopped()))
    }
}

fn dispatch(db: Arc<Database>, rx: Arc<Mutex<mpsc::Receiver<Job>>>) {
    loop {
        // Take everything waiting, up to BATCH_MAX, then let the next dispatcher in.
        let jobs = {
            let Ok(rx) = rx.lock() else { return };
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
        Err(_) => {
            // Every job gets its own copy of the error.
            for j in jobs {
                (j.reply)(db.collection(name).map(|_| Vec::new()));
            }
            return;
        }
    };
    let mut good = Vec::with_capacity(jobs.len());
    for j in jobs {
        match c.check_search(&j.request) {
            Ok(()) => good.push(j),
            Err(e) => (j.reply)(Err(e)),
        }
    }
    if good.is_empty() {
        return;
    }
    let (requests, replies): (Vec<SearchRequest>, Vec<Reply>) = good.into_iter().map(|j| (j.request, j.reply)).unzip();
    let results = if requests.len() == 1 {
        c.search(&requests[0]).map(|r| vec![r])
    } else {
        c.search_batch(&requests)
    };
    match results {
        Ok(results) => {
            for (reply, hits) in replies.into_iter().zip(results) {
                reply(Ok(hits));
            }
        }
        // A batch that fails as a whole (a collection dropped meanwhile): each request again on
        // its own, so each gets its own error.
        Err(_) => {
            for (reply, request) in replies.into_iter().zip(&requests) {
                reply(c.search(request));
            }
        }
    }
}
