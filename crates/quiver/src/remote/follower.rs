//! A read replica's side of a collection on object storage: every `poll`, list the log after
//! the last entry applied, read the new entries in order and apply them to the open collection
//! (transactions into its state, checkpoints into its manifest). The replica never writes the
//! store; its data folder is a cache that the next open rebuilds.

use super::log::{self, Entry};
use super::{Home, RemoteStatus};
use parking_lot::Mutex;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;
use std::time::Instant;

pub(crate) struct Follower {
    home: Arc<Home>,
    prefix: String,
    /// The last entry applied.
    applied: AtomicU64,
    /// When the log was last read up to its end.
    caught_up: Mutex<Instant>,
    error: Mutex<Option<String>>,
}

/// What a replica does with a new entry (implemented by the collection).
pub(crate) trait Apply {
    fn apply_entry(&self, entry: Entry) -> crate::Result<()>;
}

impl Follower {
    pub fn new(home: Arc<Home>, name: &str, applied: u64) -> Arc<Follower> {
        Arc::new(Follower {
            home,
            prefix: Home::prefix(name),
            applied: AtomicU64::new(applied),
            caught_up: Mutex::new(Instant::now()),
            error: Mutex::new(None),
        })
    }

    pub fn poll_interval(&self) -> std::time::Duration {
        self.home.options.poll
    }

    /// Reads and applies every entry after the last one applied. Returns how many it applied.
    pub fn catch_up(&self, target: &dyn Apply) -> crate::Result<usize> {
        let started = Instant::now();
        let r = self.catch_up_inner(target);
        match &r {
            Ok(_) => {
                *self.caught_up.lock() = started;
                *self.error.lock() = None;
            }
            Err(e) => *self.error.lock() = Some(e.to_string()),
        }
        r
    }

    fn catch_up_inner(&self, target: &dyn Apply) -> crate::Result<usize> {
        let applied = self.applied.load(Ordering::Acquire);
        let after = log::entry_key(&self.prefix, applied);
        let listed = self.home.bucket.list(&format!("{}/log", self.prefix), Some(&after))?;
        let mut nos: Vec<u64> = listed
            .iter()
            .filter_map(|l| log::entry_no(&l.key))
            .filter(|&n| n > applied)
            .collect();
        nos.sort_unstable();
        let mut count = 0;
        for chunk in nos.chunks(32) {
            let keys: Vec<String> = chunk.iter().map(|&n| log::entry_key(&self.prefix, n)).collect();
            let got = self.home.bucket.get_many(&keys)?;
            for ((&no, key), bytes) in chunk.iter().zip(&keys).zip(got) {
                let expected = self.applied.load(Ordering::Acquire) + 1;
                if no != expected {
                    return Err(quiver_storage::StorageError::corrupt(
                        key,
                        0,
                        format!("log entry {expected} is missing: this replica fell behind the writer's cleanup; restart it"),
                    )
                    .into());
                }
                let bytes = bytes.ok_or_else(|| quiver_storage::StorageError::corrupt(key, 0, "a listed log entry is gone"))?;
                target.apply_entry(log::decode(key, &bytes)?.entry)?;
                self.applied.store(no, Ordering::Release);
                count += 1;
            }
        }
        Ok(count)
    }

    pub fn status(&self) -> RemoteStatus {
        RemoteStatus {
            url: self.home.bucket.url().to_string(),
            role: "replica",
            entry: self.applied.load(Ordering::Acquire),
            staleness_ms: Some(self.caught_up.lock().elapsed().as_millis() as u64),
            ack_p50_ms: None,
            ack_p99_ms: None,
            acked_writes: 0,
            error: self.error.lock().clone(),
            ..Default::default()
        }
    }
}
