//! Files: flush (dirty points to a new segment), compaction, the manifest, and the cleanup of
//! what a failed step leaves (a segment no durable manifest names, the `FLUSH_ERROR` report).

use super::*;

impl Collection {
    /// Writes every change since the last flush into a new segment and empties the WAL.
    pub fn flush(&self) -> Result<()> {
        let mut w = self.writer()?;
        self.flush_locked(&mut w).inspect_err(|e| self.note_flush_error(&mut w, e))
    }

    pub(super) fn flush_locked(&self, w: &mut Writer) -> Result<()> {
        let dir = &self.inner.dir;
        if w.manifest.segments.len() >= SEGMENTS_MAX {
            return self.compact_locked(w);
        }
        let mut m = w.manifest.clone();
        let mut new_segment = None;
        {
            // Written under the state's read lock (searches go on; writes wait on the writer
            // mutex this flush holds anyway), streamed: no copy of the segment in memory.
            let st = self.inner.state.read();
            if st.dirty().is_empty() {
                if w.manifest.flushed_seq == w.last_seq {
                    return Ok(());
                }
            } else {
                let mut live = Vec::new();
                let mut tombstones = Vec::new();
                for id in st.dirty() {
                    match st.row_of(id) {
                        Some(row) => live.push(row),
                        None => tombstones.push(*id),
                    }
                }
                let no = m.next_segment_no;
                write_segment(dir, no, st.dim(), live.len(), &|i| st.segment_row(live[i]), &tombstones)?;
                m.segments.push(no);
                m.next_segment_no = no + 1;
                new_segment = Some(no);
            }
        }
        m.flushed_seq = w.last_seq;
        commit_manifest(dir, &m, new_segment)?;
        w.manifest = m;
        // The segment is durable and named: the dirty points are safe even if the new WAL
        // file cannot be started (replay skips what the manifest covers).
        self.inner.state.write().clear_dirty();
        // On object storage the checkpoint goes first: it lands after every transaction queued
        // before it, so once it is in, the local WAL (which `--wal local` recovers from) may go.
        self.publish(&w.manifest)?;
        w.wal.restart_at(w.last_seq + 1)?;
        self.clear_flush_error(w);
        Ok(())
    }

    /// Records a flush failure: in memory for `info`, and in `FLUSH_ERROR` (best effort: the
    /// disk may be full) so that a new process reports it too until a flush succeeds.
    pub(super) fn note_flush_error(&self, w: &mut Writer, e: &Error) {
        let msg = e.to_string();
        let _ = fsio::replace_file_atomic(&self.inner.dir.join(FLUSH_ERROR_FILE), msg.as_bytes());
        w.flush_error = Some(msg);
    }

    pub(super) fn clear_flush_error(&self, w: &mut Writer) {
        if w.flush_error.take().is_some() {
            let _ = fsio::remove_file_if_exists(&self.inner.dir.join(FLUSH_ERROR_FILE));
        }
    }

    /// Rewrites the collection as one segment of its live points, reclaiming the space of
    /// deleted and overwritten points on disk and in memory.
    pub fn compact(&self) -> Result<()> {
        let mut w = self.writer()?;
        self.compact_locked(&mut w).inspect_err(|e| self.note_flush_error(&mut w, e))
    }

    pub(super) fn compact_locked(&self, w: &mut Writer) -> Result<()> {
        let dir = &self.inner.dir;
        let no = w.manifest.next_segment_no;
        {
            let mut st = self.inner.state.write();
            // The live points in id order: the new segment is sorted, so it is used in place
            // as the state's rows from now on (and by every later open). If the manifest is
            // not committed, the file goes but the map stays valid and the rows are the same.
            let live: Vec<u32> = st.ids_from(None).map(|(_, r)| r).collect();
            write_segment(dir, no, st.dim(), live.len(), &|i| st.segment_row(live[i]), &[])?;
            let path = segment_path(dir, no);
            let base = crate::segment::BaseSegment::open(&path, no, st.dim())
                .and_then(|b| b.ok_or_else(|| StorageError::corrupt(&path, 0, "a compacted segment is not sorted")));
            let base = match base {
                Ok(b) => Arc::new(b),
                Err(e) => {
                    let _ = fsio::remove_file_if_exists(&path);
                    return Err(e.into());
                }
            };
            let before = self.inner.ann.before_compact(&st);
            st.rebase(base.clone());
            self.inner.ann.after_compact(before, &st);
            // The payload, full-text and sparse indexes are over exactly the new base's rows now: keep them beside
            // it for the next open (a cache; it is removed with its segment).
            let indexes = st.base_index_bytes();
            if !indexes.is_empty() {
                let _ = crate::segment::write_index_sidecar(&base, &indexes);
            }
        }
        let old = std::mem::take(&mut w.manifest.segments);
        let mut m = w.manifest.clone();
        m.segments = vec![no];
        m.next_segment_no = no + 1;
        m.flushed_seq = w.last_seq;
        if let Err(e) = commit_manifest(dir, &m, Some(no)) {
            w.manifest.segments = old;
            return Err(e);
        }
        w.manifest = m;
        // Everything is in the new segment now, and the old ones are garbage: clear the dirty
        // set and remove them before anything else can fail (one that cannot be removed now
        // is removed by the next open, which drops segments no manifest names).
        self.inner.state.write().clear_dirty();
        let mut removed: Result<()> = Ok(());
        for o in old {
            let path = segment_path(dir, o);
            let sidecar = crate::segment::index_sidecar_path(&path);
            for p in [path, sidecar] {
                if let Err(e) = fsio::remove_file_if_exists(&p) {
                    removed = removed.and(Err(e.into()));
                }
            }
        }
        removed?;
        fsio::fsync_dir(&dir.join("segments"))?;
        self.publish(&w.manifest)?;
        w.wal.restart_at(w.last_seq + 1)?;
        self.clear_flush_error(w);
        // The graph's rows were renumbered: an index file written now names them by the new
        // segment's rows, so the next open needs no lookups (compaction is a whole rewrite
        // already; a failure here costs a slower open, never an answer).
        let stale = self.inner.ann.save_is_stale(&self.inner.state.read());
        if stale {
            match self.inner.ann.save(&self.inner.state) {
                Ok(()) => self.publish_index(),
                Err(e) => *self.inner.ann.last_error.lock() = Some(e.to_string()),
            }
        }
        Ok(())
    }

    /// Compacts the in-memory rows once dead rows outnumber the live ones (and 4,096): after
    /// every write, and after every transaction a replica applies.
    pub(super) fn compact_if_sparse(&self, st: &mut State) {
        if st.dead_rows() > st.n_alive().max(4096) {
            self.compact_state(st);
        }
    }

    /// Compacts the in-memory rows, remapping the index's nodes in the same step.
    pub(super) fn compact_state(&self, st: &mut State) {
        let before = self.inner.ann.before_compact(st);
        st.compact_rows();
        self.inner.ann.after_compact(before, st);
    }
}

pub(super) fn segment_path(dir: &Path, no: u64) -> PathBuf {
    dir.join("segments").join(format!("{no:020}.seg"))
}

impl Collection {
    /// Puts a consistent copy of the collection's files in `staging` (for a snapshot): under
    /// the writer lock, the WAL is flushed into a segment, then the manifest is written from
    /// memory and the segments it names are hard-linked (copied where links fail). Writes
    /// wait for the flush and the links only.
    pub(crate) fn stage_snapshot(&self, staging: &Path) -> Result<()> {
        let mut w = self.writer()?;
        self.flush_locked(&mut w)?;
        let segs = staging.join("segments");
        std::fs::create_dir_all(&segs).map_err(StorageError::io(&segs))?;
        let mpath = staging.join("MANIFEST");
        std::fs::write(&mpath, store::encode_manifest(&w.manifest)).map_err(StorageError::io(&mpath))?;
        for &no in &w.manifest.segments {
            let from = segment_path(&self.inner.dir, no);
            let to = segment_path(staging, no);
            if std::fs::hard_link(&from, &to).is_err() {
                std::fs::copy(&from, &to).map_err(StorageError::io(&to))?;
            }
        }
        let settings = self.inner.dir.join(crate::settings::SETTINGS_FILE);
        if settings.exists() {
            let to = staging.join(crate::settings::SETTINGS_FILE);
            std::fs::copy(&settings, &to).map_err(StorageError::io(&to))?;
        }
        Ok(())
    }

    /// Records a new index configuration in the manifest. The handle keeps serving with the
    /// old one: [`crate::Database::reconfigure_index`] reopens the collection, and the graph
    /// is rebuilt when its shape (`m`, quantization) changed.
    pub(crate) fn set_index_config(&self, index: IndexConfig) -> Result<()> {
        index.validate()?;
        let mut w = self.writer()?;
        let mut next = w.manifest.clone();
        next.config.index = index;
        write_manifest(&self.inner.dir, &next)?;
        w.manifest = next;
        self.publish(&w.manifest)
    }
}

pub(super) fn write_manifest(dir: &Path, m: &Manifest) -> Result<()> {
    fsio::replace_file_atomic(&manifest_path(dir), &store::encode_manifest(m))?;
    Ok(())
}

/// Writes segment `no`; a failed write removes what it left (nothing names it yet).
pub(super) fn write_segment<'a>(
    dir: &Path,
    no: u64,
    dim: usize,
    n: usize,
    row: &dyn Fn(usize) -> crate::segment::SegmentRow<'a>,
    tombstones: &[PointId],
) -> Result<u32> {
    let path = segment_path(dir, no);
    crate::segment::write_segment_file(&path, dim, n, row, tombstones).map_err(|e| {
        let _ = fsio::remove_file_if_exists(&path);
        e.into()
    })
}

/// Writes the manifest `m` that names the new segment `no`. If that fails, the segment is
/// removed unless the manifest on disk names it after all (the rename happened but the folder's
/// fsync failed): then the collection goes on with that manifest's view on the next open.
pub(super) fn commit_manifest(dir: &Path, m: &Manifest, no: Option<u64>) -> Result<()> {
    let Err(e) = write_manifest(dir, m) else { return Ok(()) };
    if let Some(no) = no {
        let mpath = manifest_path(dir);
        let named = fsio::read_file(&mpath)
            .ok()
            .and_then(|bytes| store::decode_manifest(&mpath, &bytes).ok())
            .is_some_and(|on_disk| on_disk.segments.contains(&no));
        if !named {
            let _ = fsio::remove_file_if_exists(&segment_path(dir, no));
        }
    }
    Err(e)
}

/// Removes files a crash left behind: segments the manifest does not name (written before the
/// manifest that would have named them) and temporary files.
pub(super) fn remove_strays(dir: &Path, m: &Manifest) -> Result<()> {
    let segdir = dir.join("segments");
    let mut removed = false;
    for entry in std::fs::read_dir(&segdir).map_err(StorageError::io(&segdir))? {
        let entry = entry.map_err(StorageError::io(&segdir))?;
        let name = entry.file_name();
        let name = name.to_string_lossy();
        // Segments the manifest names, and the payload-index sidecar of its first one.
        let known = match (name.strip_suffix(".seg"), name.strip_suffix(".pidx")) {
            (Some(s), _) => s.parse::<u64>().is_ok_and(|no| m.segments.contains(&no)),
            (_, Some(s)) => s.parse::<u64>().is_ok_and(|no| m.segments.first() == Some(&no)),
            _ => false,
        };
        if !known {
            fsio::remove_file_if_exists(&entry.path())?;
            removed = true;
        }
    }
    if removed {
        fsio::fsync_dir(&segdir)?;
    }
    fsio::remove_file_if_exists(&dir.join("MANIFEST.tmp"))?;
    Ok(())
}
