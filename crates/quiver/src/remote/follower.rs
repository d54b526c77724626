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
    /// Set when this replica can no longer follow the log (for good: the next open restores).
    lost: Mutex<Option<Lost>>,
}

/// Why a replica stopped following its collection's log.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum Lost {
    /// The log is gone: the writer dropped the collection.
    Dropped,
    /// Entries it had not read yet were removed by the writer's cleanup (it fell behind by more
    /// than `garbage_grace`): only a new restore can bring it up to date.
    Behind,
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
            lost: Mutex::new(None),
        })
    }

    pub fn poll_interval(&self) -> std::time::Duration {
        self.home.options.poll
    }

    /// Whether the replica stopped following, and why.
    pub fn lost(&self) -> Option<Lost> {
        *self.lost.lock()
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
        if let Some(lost) = self.lost() {
            return Err(lost_error(&self.prefix, lost));
        }
        let applied = self.applied.load(Ordering::Acquire);
        // From the last entry applied on: the writer's cleanup never removes the newest entry,
        // so an empty listing means the log itself is gone.
        let after = applied.checked_sub(1).map(|a| log::entry_key(&self.prefix, a));
        let listed = self.home.bucket.list(&format!("{}/log", self.prefix), after.as_deref())?;
        let mut nos: Vec<u64> = listed
            .iter()
            .filter_map(|l| log::entry_no(&l.key))
            .filter(|&n| n >= applied)
            .collect();
        if nos.is_empty() {
            *self.lost.lock() = Some(Lost::Dropped);
            return Err(lost_error(&self.prefix, Lost::Dropped));
        }
        nos.retain(|&n| n > applied);
        nos.sort_unstable();
        let mut count = 0;
        for chunk in nos.chunks(32) {
            let keys: Vec<String> = chunk.iter().map(|&n| log::entry_key(&self.prefix, n)).collect();
            let got = self.home.bucket.get_many(&keys)?;
            for ((&no, key), bytes) in chunk.iter().zip(&keys).zip(got) {
                let expected = self.applied.load(Ordering::Acquire) + 1;
                if no != expected {
                    *self.lost.lock() = Some(Lost::Behind);
                    return Err(lost_error(&self.prefix, Lost::Behind));
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

fn lost_error(prefix: &str, lost: Lost) -> crate::Error {
    let reason = match lost {
        Lost::Dropped => "the collection's log is gone: the writer dropped it",
        Lost::Behind => "log entries this replica had not read were removed by the writer's cleanup (it fell behind); the next open of the collection restores it",
    };
    quiver_storage::StorageError::corrupt(format!("{prefix}/log"), 0, reason).into()
}
