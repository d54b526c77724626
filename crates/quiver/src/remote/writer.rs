//! The writer's side of a collection on object storage: group commits of the WAL's
//! transactions into log entries, checkpoints after flushes, index files, and the lease.
//!
//! One uploader thread owns the log's tail. Writers hand it their transaction and wait
//! ([`Ticket::wait`]); it waits `group_commit` for more, then creates the next entry with all of
//! them. A failed request is retried (by `object_store`, then here with backoff, forever, the
//! same bytes at the same place); writers waiting on it are told after the first failure that
//! their write is not acknowledged (it may still land). Finding the place taken by another
//! writer fences this one for good: every later write fails with [`Error::Fenced`].

use super::log::{self, Entry, FileRef};
use super::{hex, Home, RemoteStatus};
use crate::error::{Error, Result};
use parking_lot::{Condvar, Mutex};
use quiver_storage::fsio;
use quiver_storage::object::Created;
use std::collections::{HashMap, VecDeque};
use std::path::Path;
use std::sync::Arc;
use std::time::{Duration, Instant};

enum Item {
    Txn(u64, Vec<Vec<u8>>),
    Entry(Entry),
}

struct Queue {
    items: VecDeque<(u64, Item, Instant)>,
    /// Tickets handed out so far; ticket `t` is durable once `durable >= t`.
    submitted: u64,
    durable: u64,
    /// The next log entry to create.
    next_entry: u64,
    /// Bumped at every failed upload: waiters from before it give up.
    failures: u64,
    error: Option<String>,
    fenced: Option<String>,
    stop: bool,
    /// Recent acknowledgement latencies of transactions, in milliseconds.
    latencies: VecDeque<f64>,
    acked: u64,
}

pub(crate) struct LogWriter {
    home: Arc<Home>,
    name: String,
    prefix: String,
    queue: Mutex<Queue>,
    wake: Condvar,
    done: Condvar,
    /// Files already in the store: local name -> reference.
    uploaded: Mutex<HashMap<String, FileRef>>,
    /// What the store must keep (see [`LogWriter::collect_garbage`]).
    kept: Mutex<Kept>,
    /// The newest index file in the store.
    last_index: Mutex<Option<FileRef>>,
    thread: Mutex<Option<std::thread::JoinHandle<()>>>,
}

/// A submitted item: wait for it to be durable.
pub(crate) struct Ticket<'a> {
    writer: &'a LogWriter,
    no: u64,
    failures: u64,
}

const LATENCY_WINDOW: usize = 4096;

/// After this many group commits without a checkpoint the writer asks for one (a flush), so
/// that an open reads a bounded tail of the log.
pub(crate) const CHECKPOINT_ENTRIES: u64 = 1024;

/// The checkpoints from the log's floor on (entry number, file keys, when appended: `None` for
/// the one found on open) and the last two index files: the store keeps the log from the
/// floor on and the files these name, so that a reader restoring from any of them finds its
/// files.
#[derive(Default)]
struct Kept {
    checkpoints: VecDeque<(u64, Vec<String>, Option<Instant>)>,
    index_keys: VecDeque<String>,
    txn_entries: u64,
}

impl LogWriter {
    /// Starts the uploader for `name`, whose log ends at entry `next_entry - 1` (this writer's
    /// `Open`), with the last checkpoint's files already in the store.
    pub fn start(home: Arc<Home>, name: &str, next_entry: u64, restored: &super::Restored) -> Result<Arc<LogWriter>> {
        let files = restored.files.clone();
        let mut kept = Kept::default();
        kept.checkpoints
            .push_back((restored.checkpoint, files.iter().map(|f| f.key.clone()).collect(), None));
        kept.index_keys.extend(restored.index.iter().map(|f| f.key.clone()));
        let w = Arc::new(LogWriter {
            prefix: Home::prefix(name),
            name: name.to_string(),
            home,
            queue: Mutex::new(Queue {
                items: VecDeque::new(),
                submitted: 0,
                durable: 0,
                next_entry,
                failures: 0,
                error: None,
                fenced: None,
                stop: false,
                latencies: VecDeque::new(),
                acked: 0,
            }),
            wake: Condvar::new(),
            done: Condvar::new(),
            uploaded: Mutex::new(files.into_iter().map(|f| (f.local.clone(), f)).collect()),
            kept: Mutex::new(kept),
            last_index: Mutex::new(restored.index.clone()),
            thread: Mutex::new(None),
        });
        w.renew_lease();
        let me = w.clone();
        let handle = std::thread::Builder::new()
            .name(format!("quiver-log-{name}"))
            .spawn(move || me.run())
            .map_err(|e| {
                Error::Storage(quiver_storage::StorageError::Io {
                    path: name.into(),
                    cause: e,
                })
            })?;
        *w.thread.lock() = Some(handle);
        Ok(w)
    }

    /// Whether writes are acknowledged from the local WAL (see `RemoteOptions::wal_local`).
    pub fn wal_local(&self) -> bool {
        self.home.options.wal_local
    }

    /// Keeps a message for `status` (until the next successful upload).
    pub fn note(&self, msg: String) {
        self.queue.lock().error = Some(msg);
    }

    /// Refuses early when this writer has been fenced.
    pub fn check(&self) -> Result<()> {
        match &self.queue.lock().fenced {
            Some(msg) => Err(Error::Fenced(msg.clone())),
            None => Ok(()),
        }
    }

    fn submit(&self, item: Item) -> Result<Ticket<'_>> {
        let mut q = self.queue.lock();
        if let Some(msg) = &q.fenced {
            return Err(Error::Fenced(msg.clone()));
        }
        if q.stop {
            return Err(Error::CollectionNotFound(format!("{} (closed)", self.name)));
        }
        q.submitted += 1;
        let no = q.submitted;
        q.items.push_back((no, item, Instant::now()));
        let failures = q.failures;
        drop(q);
        self.wake.notify_all();
        Ok(Ticket {
            writer: self,
            no,
            failures,
        })
    }

    /// Queues a WAL transaction for the next group commit.
    pub fn txn(&self, seq: u64, records: Vec<Vec<u8>>) -> Result<Ticket<'_>> {
        self.submit(Item::Txn(seq, records))
    }

    /// Uploads the files `manifest` names that the store does not hold yet (segments and the
    /// first one's index sidecar), then appends a checkpoint and waits for it.
    pub fn checkpoint(&self, dir: &Path, manifest: &crate::store::Manifest) -> Result<()> {
        let mut files = Vec::new();
        for (i, &no) in manifest.segments.iter().enumerate() {
            let seg = super::segment_local(no);
            files.push(self.upload(dir, &seg, false)?);
            let sidecar = format!("segments/{no:020}.pidx");
            if i == 0 && dir.join(&sidecar).exists() {
                // Rewritten in place when rebuilt: checked every time (it is small).
                files.push(self.upload(dir, &sidecar, true)?);
            }
        }
        // The newest index file uploaded, so that an open from this checkpoint need not
        // rebuild the graph (it may be older or newer than the checkpoint: an index file is
        // mapped onto the rows by id either way).
        files.extend(self.last_index.lock().clone());
        let spath = dir.join(crate::settings::SETTINGS_FILE);
        let settings = if spath.exists() { Some(fsio::read_file(&spath)?) } else { None };
        let entry = Entry::Checkpoint {
            manifest: crate::store::encode_manifest(manifest),
            settings,
            files,
        };
        self.submit(Item::Entry(entry))?.wait()
    }

    /// Uploads the collection's index file and appends an entry naming it (not waited for:
    /// an index is a cache, a lost one is rebuilt).
    pub fn publish_index(&self, dir: &Path) -> Result<()> {
        let f = self.upload(dir, crate::ann::INDEX_FILE, true)?;
        *self.last_index.lock() = Some(f.clone());
        self.submit(Item::Entry(Entry::Index(f)))?;
        Ok(())
    }

    fn upload(&self, dir: &Path, local: &str, recheck: bool) -> Result<FileRef> {
        if !recheck {
            if let Some(f) = self.uploaded.lock().get(local) {
                return Ok(f.clone());
            }
        }
        let path = dir.join(local);
        let (len, crc) = quiver_storage::fill::crc_of_file(&path)?;
        if let Some(f) = self.uploaded.lock().get(local) {
            if (f.len, f.crc) == (len, crc) {
                return Ok(f.clone());
            }
        }
        let base = local.rsplit('/').next().unwrap_or(local);
        let key = format!("files/{}-{crc:08x}-{base}", &hex(&self.home.writer_id)[..16]);
        if local == crate::ann::INDEX_FILE {
            // Kept from before its upload, so a cleanup meanwhile cannot take it.
            let mut k = self.kept.lock();
            k.index_keys.push_back(key.clone());
            if k.index_keys.len() > 2 {
                k.index_keys.pop_front();
            }
        }
        self.home.bucket.upload(&format!("{}/{key}", self.prefix), &path)?;
        let f = FileRef {
            local: local.to_string(),
            key,
            len,
            crc,
        };
        self.uploaded.lock().insert(local.to_string(), f.clone());
        Ok(f)
    }

    pub fn status(&self) -> RemoteStatus {
        let q = self.queue.lock();
        let mut l: Vec<f64> = q.latencies.iter().copied().collect();
        l.sort_by(f64::total_cmp);
        let pick = |p: f64| (!l.is_empty()).then(|| l[((l.len() - 1) as f64 * p).round() as usize]);
        RemoteStatus {
            url: self.home.bucket.url().to_string(),
            role: "writer",
            entry: q.next_entry.saturating_sub(1),
            staleness_ms: None,
            ack_p50_ms: pick(0.5),
            ack_p99_ms: pick(0.99),
            acked_writes: q.acked,
            error: q.fenced.clone().or_else(|| q.error.clone()),
            ..Default::default()
        }
    }

    fn lease_key(&self) -> String {
        format!("{}/lease", self.prefix)
    }

    fn renew_lease(&self) {
        let body = format!("{} {}\n", hex(&self.home.writer_id), self.name);
        if let Err(e) = self.home.bucket.put(&self.lease_key(), body.into_bytes()) {
            self.queue.lock().error = Some(e.to_string());
        }
    }

    /// The uploader: group commits, checkpoints and index entries, in submission order; the
    /// lease renewed while idle.
    fn run(&self) {
        let renew_every = self.home.options.lease / 3;
        let mut renewed = Instant::now();
        loop {
            let (batch, last_ticket, entry_no) = {
                let mut q = self.queue.lock();
                loop {
                    if q.fenced.is_some() || (q.stop && q.items.is_empty()) {
                        drop(q);
                        if self.queue.lock().fenced.is_none() {
                            // A clean stop: the next writer need not wait for the lease.
                            let _ = self.home.bucket.delete(&self.lease_key());
                        }
                        return;
                    }
                    if !q.items.is_empty() {
                        break;
                    }
                    let left = renew_every.saturating_sub(renewed.elapsed());
                    if left.is_zero() {
                        break;
                    }
                    self.wake.wait_for(&mut q, left);
                }
                if q.items.is_empty() {
                    drop(q);
                    self.renew_lease();
                    renewed = Instant::now();
                    continue;
                }
                if matches!(q.items.front(), Some((_, Item::Txn(..), _))) && !q.stop {
                    // Group commit: let more transactions join for a moment.
                    let until = Instant::now() + self.home.options.group_commit;
                    while !q.stop {
                        let now = Instant::now();
                        if now >= until {
                            break;
                        }
                        self.wake.wait_for(&mut q, until - now);
                    }
                }
                let mut batch = Vec::new();
                while let Some((no, item, at)) = q.items.pop_front() {
                    let is_txn = matches!(item, Item::Txn(..));
                    if !batch.is_empty() && !is_txn {
                        q.items.push_front((no, item, at));
                        break;
                    }
                    batch.push((no, item, at));
                    if !is_txn {
                        break;
                    }
                }
                let last = batch.last().map(|b| b.0).unwrap_or(0);
                (batch, last, q.next_entry)
            };
            let mut starts = Vec::new();
            let entry = if matches!(batch[0].1, Item::Txn(..)) {
                let mut txns = Vec::with_capacity(batch.len());
                for (_, item, at) in batch {
                    if let Item::Txn(seq, records) = item {
                        txns.push((seq, records));
                        starts.push(at);
                    }
                }
                Entry::Txns(txns)
            } else {
                match batch.into_iter().next() {
                    Some((_, Item::Entry(e), _)) => e,
                    _ => unreachable!("a batch of one entry"),
                }
            };
            let bytes = log::encode(&self.home.writer_id, &entry);
            let checkpoint_keys = match &entry {
                Entry::Checkpoint { files, .. } => Some(files.iter().map(|f| f.key.clone()).collect::<Vec<_>>()),
                _ => None,
            };
            let is_txns = matches!(entry, Entry::Txns(_));
            drop(entry);
            let outcome = self.append(entry_no, bytes);
            if outcome.is_ok() {
                let mut k = self.kept.lock();
                if is_txns {
                    k.txn_entries += 1;
                }
                if let Some(keys) = checkpoint_keys {
                    k.txn_entries = 0;
                    k.checkpoints.push_back((entry_no, keys, Some(Instant::now())));
                    // The floor: the newest checkpoint older than the grace period.
                    let grace = self.home.options.garbage_grace;
                    let old = |c: &(u64, Vec<String>, Option<Instant>)| c.2.is_none_or(|t| t.elapsed() >= grace);
                    while k.checkpoints.len() > 1 && old(&k.checkpoints[1]) {
                        k.checkpoints.pop_front();
                    }
                    drop(k);
                    // Best effort: what is not removed now is removed after the next checkpoint.
                    let _ = self.collect_garbage();
                }
            }
            let mut q = self.queue.lock();
            match outcome {
                Ok(()) => {
                    q.next_entry = entry_no + 1;
                    q.durable = last_ticket;
                    q.error = None;
                    for at in starts {
                        if q.latencies.len() == LATENCY_WINDOW {
                            q.latencies.pop_front();
                        }
                        q.latencies.push_back(at.elapsed().as_secs_f64() * 1e3);
                        q.acked += 1;
                    }
                }
                Err(msg) => {
                    q.fenced = Some(msg);
                }
            }
            drop(q);
            self.done.notify_all();
            if renewed.elapsed() >= renew_every {
                self.renew_lease();
                renewed = Instant::now();
            }
        }
    }

    /// Whether enough group commits have gone by for a checkpoint to be worth it.
    pub fn wants_checkpoint(&self) -> bool {
        self.kept.lock().txn_entries >= CHECKPOINT_ENTRIES
    }

    /// Removes log entries before the floor (see [`Kept`]), and files that no checkpoint from
    /// the floor on nor the last two index uploads name (left by compactions, by earlier
    /// writers, or by uploads whose checkpoint never landed).
    fn collect_garbage(&self) -> Result<()> {
        let (floor, keep) = {
            let k = self.kept.lock();
            let Some(&(floor, _, _)) = k.checkpoints.front() else {
                return Ok(());
            };
            let mut keep: std::collections::HashSet<String> = k.checkpoints.iter().flat_map(|(_, keys, _)| keys.iter().cloned()).collect();
            keep.extend(k.index_keys.iter().cloned());
            (floor, keep)
        };
        for l in self.home.bucket.list(&format!("{}/log", self.prefix), None)? {
            if log::entry_no(&l.key).is_some_and(|n| n < floor) {
                self.home.bucket.delete(&l.key)?;
            }
        }
        let files = format!("{}/files/", self.prefix);
        for l in self.home.bucket.list(&format!("{}/files", self.prefix), None)? {
            let rel = l.key.strip_prefix(&files).map(|r| format!("files/{r}"));
            if rel.is_some_and(|r| !keep.contains(&r)) {
                self.home.bucket.delete(&l.key)?;
            }
        }
        Ok(())
    }

    /// Creates log entry `no`, retrying until it lands. `Err` means another writer has it.
    fn append(&self, no: u64, bytes: Vec<u8>) -> std::result::Result<(), String> {
        let key = log::entry_key(&self.prefix, no);
        let mut backoff = Duration::from_millis(100);
        loop {
            let r = self.home.bucket.create(&key, bytes.clone()).and_then(|c| match c {
                Created::New => Ok(None),
                // Ours if a retried request landed after all: same bytes.
                Created::Exists => self.home.bucket.get(&key).map(|got| Some(got.as_deref() == Some(&bytes[..]))),
            });
            match r {
                Ok(None) | Ok(Some(true)) => return Ok(()),
                Ok(Some(false)) => {
                    return Err(format!(
                        "collection {:?} on {} was taken over by another writer (log entry {no} is theirs): this process can no longer write it; reopen to follow the new writer, or take it back with --takeover",
                        self.name,
                        self.home.bucket.url()
                    ))
                }
                Err(e) => {
                    {
                        let mut q = self.queue.lock();
                        q.failures += 1;
                        q.error = Some(e.to_string());
                    }
                    self.done.notify_all();
                    let stop = self.queue.lock().stop;
                    if stop && backoff >= Duration::from_secs(5) {
                        return Err(format!("stopped with log entry {no} not written: {e}"));
                    }
                    std::thread::sleep(backoff);
                    backoff = (backoff * 2).min(Duration::from_secs(5));
                }
            }
        }
    }

    /// Stops the uploader after it has written everything queued.
    pub fn stop(&self) {
        self.queue.lock().stop = true;
        self.wake.notify_all();
        if let Some(h) = self.thread.lock().take() {
            let _ = h.join();
        }
    }
}

impl Ticket<'_> {
    /// Waits until the item is durable in the store. Fails when this writer is fenced, or when
    /// an upload failed meanwhile (the item is not acknowledged; it may still land).
    pub fn wait(self) -> Result<()> {
        let w = self.writer;
        let mut q = w.queue.lock();
        loop {
            if q.durable >= self.no {
                return Ok(());
            }
            if let Some(msg) = &q.fenced {
                return Err(Error::Fenced(msg.clone()));
            }
            if q.failures > self.failures {
                let cause = q.error.clone().unwrap_or_default();
                return Err(quiver_storage::StorageError::Object {
                    url: w.home.bucket.url().to_string(),
                    key: log::entry_key(&w.prefix, q.next_entry),
                    cause: format!("{cause} (the write is not acknowledged; it is retried and may still become durable)"),
                }
                .into());
            }
            w.done.wait(&mut q);
        }
    }
}
