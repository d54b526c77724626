//! A collection's side of object storage (see `crate::remote`): checkpoints after the manifest
//! changes, index files after they are saved, and a replica applying the writer's log.

use super::*;
use crate::remote::log::Entry;
use crate::remote::{Follower, RemoteStatus};

impl Collection {
    /// On object storage, makes the manifest `m` (just written locally) durable there: its new
    /// files uploaded, then a checkpoint appended. Nothing to do for a local collection.
    pub(super) fn publish(&self, m: &Manifest) -> Result<()> {
        match &self.inner.remote {
            Some(Link::Writer(lw)) => lw.checkpoint(&self.inner.dir, m),
            _ => Ok(()),
        }
    }

    /// On object storage, uploads the index file just saved (best effort: a replica or the
    /// next writer without it builds its own).
    pub(super) fn publish_index(&self) {
        if let Some(Link::Writer(lw)) = &self.inner.remote {
            if let Err(e) = lw.publish_index(&self.inner.dir) {
                *self.inner.ann.last_error.lock() = Some(format!("uploading the index file: {e}"));
            }
        }
    }

    /// Where the collection lives when its home is object storage: role, log position,
    /// staleness (replicas), acknowledgement latency (writers), the last error.
    pub fn remote_status(&self) -> Option<RemoteStatus> {
        let mut s = match &self.inner.remote {
            Some(Link::Writer(lw)) => lw.status(),
            Some(Link::Replica(f)) => f.status(),
            None => return None,
        };
        if let Some(f) = self.inner.state.read().base_segment().and_then(|b| b.fill().cloned()) {
            s.base_bytes = Some(f.len());
            s.base_present_bytes = Some(f.present_bytes());
            s.base_fetched_bytes = Some(f.fetched_bytes());
            if s.error.is_none() {
                s.error = f.last_error().map(|e| format!("fetching the base segment: {e}"));
            }
        }
        Some(s)
    }

    /// The rest of a lazy cold start: fetches what is still missing of a base opened while its
    /// file fills (retried while the store fails, as long as the collection is open with this
    /// base), checks its large sections, then, when the collection keeps its vectors in
    /// memory, copies them there as an ordinary open would have (under an upgradable read
    /// lock: searches go on; writes wait for the copy).
    pub(super) fn warm_in_background(&self, base: Arc<crate::segment::BaseSegment>, into_memory: bool) {
        self.in_background("warm", move |weak| {
            let current = |inner: &Inner| inner.state.read().base_segment().is_some_and(|b| Arc::ptr_eq(b, &base));
            let mut wait = Duration::from_millis(200);
            while let Err(e) = base.warm() {
                if let Some(f) = base.fill() {
                    f.note_error(&e);
                }
                match weak.upgrade() {
                    Some(inner) if current(&inner) => {}
                    _ => return,
                }
                std::thread::sleep(wait);
                wait = (wait * 2).min(Duration::from_secs(10));
            }
            let Some(inner) = weak.upgrade() else { return };
            if let Err(e) = base.verify_large() {
                if current(&inner) {
                    inner.state.read().note_damage(e);
                }
                return;
            }
            if into_memory {
                let st = inner.state.upgradable_read();
                if st.base_segment().is_some_and(|b| Arc::ptr_eq(b, &base)) {
                    if let Some(m) = st.matrix_in_memory() {
                        parking_lot::RwLockUpgradableReadGuard::upgrade(st).use_matrix(m);
                    }
                }
            }
        });
    }

    /// A replica that can no longer follow its log (the collection was dropped, or it fell
    /// behind the writer's cleanup): the database retires it and restores it afresh.
    pub(crate) fn replica_lost(&self) -> Option<crate::remote::follower::Lost> {
        match &self.inner.remote {
            Some(Link::Replica(f)) => f.lost(),
            _ => None,
        }
    }

    /// Reads the writer's log up to its end now (a replica does this every poll interval on its
    /// own). Returns the number of entries applied.
    pub fn catch_up(&self) -> Result<usize> {
        match &self.inner.remote {
            Some(Link::Replica(f)) => f.clone().catch_up(self),
            _ => Ok(0),
        }
    }

    /// Starts a replica's thread: every poll interval, apply what the writer appended. It ends
    /// when the collection is closed.
    pub(super) fn follow(&self, f: Arc<Follower>) -> Result<()> {
        let weak = Arc::downgrade(&self.inner);
        let every = f.poll_interval();
        std::thread::Builder::new()
            .name(format!("quiver-follow-{}", self.inner.name))
            .spawn(move || loop {
                std::thread::park_timeout(every);
                let Some(inner) = weak.upgrade() else { return };
                let c = Collection { inner };
                // Errors are kept for `remote_status` and retried at the next poll.
                let _ = f.catch_up(&c);
            })
            .map_err(|e| StorageError::Io {
                path: self.inner.dir.clone(),
                cause: e,
            })?;
        Ok(())
    }
}

impl crate::remote::follower::Apply for Collection {
    fn apply_entry(&self, entry: Entry) -> Result<()> {
        match entry {
            Entry::Txns(txns) => {
                let mut w = self.inner.writer.lock();
                let mut applied = false;
                for (seq, records) in txns {
                    if seq <= w.last_seq {
                        continue;
                    }
                    let mut ops = Vec::with_capacity(records.len());
                    for r in &records {
                        let op = store::decode_op(r, self.dim())
                            .map_err(|e| StorageError::corrupt(format!("transaction {seq}"), e.offset as u64, e.reason))?;
                        ops.push(op);
                    }
                    let mut st = self.inner.state.write();
                    for op in &ops {
                        st.apply(op, false);
                    }
                    self.compact_if_sparse(&mut st);
                    w.last_seq = seq;
                    applied = true;
                }
                drop(w);
                if applied {
                    self.kick_index();
                }
            }
            Entry::Checkpoint { manifest, settings, .. } => {
                let path = manifest_path(&self.inner.dir);
                let m = store::decode_manifest(&path, &manifest)?;
                let mut w = self.inner.writer.lock();
                w.manifest.flushed_seq = m.flushed_seq;
                w.manifest.segments = m.segments;
                w.manifest.next_segment_no = m.next_segment_no;
                drop(w);
                if let Some(s) = settings {
                    // Settings this build cannot read are an error the replica reports (and
                    // retries at every poll), not settings it silently keeps the old ones of.
                    let s = serde_json::from_slice::<CollectionSettings>(&s).map_err(|e| {
                        StorageError::corrupt(
                            crate::settings::SETTINGS_FILE,
                            e.column() as u64,
                            format!("a checkpoint's settings: {e}"),
                        )
                    })?;
                    *self.inner.rates.lock() = Rates::of(&s);
                    *self.inner.settings.write() = s;
                }
            }
            Entry::Open | Entry::Index(_) => {}
        }
        Ok(())
    }
}
