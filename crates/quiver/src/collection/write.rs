//! The write path: validate and prepare points, log and apply operations (`commit`), large
//! batches straight to a segment (`bulk_upsert`), selectors, payload updates and payload indexes.

use super::*;

impl Collection {
    /// Validates and prepares points: dimension, finite values, payload size; normalises for
    /// cosine. Returns the points as they will be stored.
    pub(super) fn prepare_points(&self, mut points: Vec<Point>) -> Result<Vec<Point>> {
        if points.is_empty() {
            return Err(Error::EmptyBatch);
        }
        if points.len() > BATCH_POINTS_MAX {
            return Err(Error::BatchTooLarge {
                got: points.len(),
                max: BATCH_POINTS_MAX,
            });
        }
        points.par_iter_mut().try_for_each(|p| -> Result<()> {
            self.prepare_vectors(p)?;
            if let Some(payload) = &p.payload {
                let bytes = serde_json::to_vec(payload).expect("a JSON map always serialises").len();
                if bytes > PAYLOAD_BYTES_MAX {
                    return Err(Error::InvalidPayload {
                        reason: format!("{bytes} bytes exceeds the limit of {PAYLOAD_BYTES_MAX}"),
                        point: Some(p.id.to_string()),
                    });
                }
                if payload.is_empty() {
                    p.payload = None;
                }
            }
            Ok(())
        })?;
        Ok(points)
    }

    /// Inserts or replaces points, atomically: after a crash either all of them are there or
    /// none. Returns once the batch is durable (per the collection's durability).
    pub fn upsert(&self, points: Vec<Point>) -> Result<WriteAck> {
        self.upsert_with(points, UpdateMode::Upsert)
    }

    /// [`Collection::upsert`] with Qdrant's `update_mode`: `InsertOnly` writes only the points
    /// whose ids do not exist yet, `UpdateOnly` only those that do; the others are left as they
    /// are. The choice is made under the writer lock, so no concurrent write slips between.
    /// `affected` counts the points written.
    pub fn upsert_with(&self, points: Vec<Point>, mode: UpdateMode) -> Result<WriteAck> {
        self.upsert_if(points, mode, None)
    }

    /// [`Collection::upsert_with`] with Qdrant's `update_filter` (a conditional update): a
    /// point that exists is replaced only when it matches `condition` (for example
    /// `version < 4`); points that do not exist are inserted. Decided under the writer lock.
    pub fn upsert_if(&self, points: Vec<Point>, mode: UpdateMode, condition: Option<&Filter>) -> Result<WriteAck> {
        let mut points = self.prepare_points(points)?;
        let mut w = self.writer()?;
        if mode != UpdateMode::Upsert || condition.is_some() {
            let st = self.inner.state.read();
            points.retain(|p| match st.row_of(&p.id) {
                None => mode != UpdateMode::UpdateOnly,
                Some(row) => mode != UpdateMode::InsertOnly && condition.is_none_or(|f| st.row_matches(row, f)),
            });
            if points.is_empty() {
                return Ok(WriteAck {
                    seq: w.last_seq,
                    affected: 0,
                });
            }
        }
        {
            let st = self.inner.state.read();
            if st.n_rows() + points.len() > ROWS_MAX {
                return Err(Error::BatchTooLarge {
                    got: points.len(),
                    max: ROWS_MAX - st.n_rows(),
                });
            }
        }
        let affected = points.len();
        let approx_bytes = points.len() * (self.dim() * 4 + 16);
        if approx_bytes >= BULK_SEGMENT_BYTES {
            return self.bulk_upsert(&mut w, points, affected);
        }
        let seq = self.commit(&mut w, Op::Upsert(points))?;
        drop(w);
        self.kick_index();
        Ok(WriteAck { seq, affected })
    }

    /// A large batch becomes a segment directly: earlier changes are flushed first so that
    /// segment order is write order, then the batch's segment and the manifest naming it are
    /// made durable, and only then is the batch applied in memory and acknowledged.
    pub(super) fn bulk_upsert(&self, w: &mut Writer, points: Vec<Point>, affected: usize) -> Result<WriteAck> {
        self.flush_locked(w)?;
        let seq = w.last_seq + 1;
        let no = w.manifest.next_segment_no;
        let row = |i: usize| {
            let p: &Point = &points[i];
            (
                p.id,
                p.vector.as_slice(),
                Some(&p.vectors),
                p.payload.as_ref().map(std::borrow::Cow::Borrowed),
            )
        };
        write_segment(&self.inner.dir, no, self.dim(), points.len(), &row, &[])?;
        let mut m = w.manifest.clone();
        m.segments.push(no);
        m.next_segment_no = no + 1;
        m.flushed_seq = seq;
        commit_manifest(&self.inner.dir, &m, Some(no))?;
        // The manifest is durable: the batch is committed. Make it visible before anything
        // else can fail; a failure to start the new WAL file is harmless (older transactions
        // in the current file are at or below `flushed_seq` and skipped on replay).
        w.manifest = m;
        w.last_seq = seq;
        self.inner.state.write().apply(&Op::Upsert(points), false);
        if let Err(e) = w.wal.restart_at(seq + 1) {
            self.note_flush_error(w, &e.into());
        }
        // On object storage the batch is acknowledged once its checkpoint is in the log.
        self.publish(&w.manifest)?;
        self.kick_index();
        Ok(WriteAck { seq, affected })
    }

    /// Logs `op`, applies it, and flushes when the WAL is large. Holds the writer lock.
    pub(super) fn commit(&self, w: &mut parking_lot::MutexGuard<'_, Writer>, op: Op) -> Result<u64> {
        if w.wal.file_bytes() >= WAL_BYTES_MAX {
            // Flushes have been failing: one more try, then refuse rather than grow the log.
            if let Err(e) = self.flush_locked(w) {
                self.note_flush_error(w, &e);
                return Err(Error::WalFull {
                    bytes: w.wal.file_bytes(),
                    cause: e.to_string(),
                });
            }
        }
        let seq = w.last_seq + 1;
        let records = store::encode_op(&op, self.dim());
        let refs: Vec<&[u8]> = records.iter().map(|r| r.as_slice()).collect();
        // On object storage the log there is what makes a write durable; the local WAL is a
        // cache the next open rebuilds, so it is not synced.
        let writer = match &self.inner.remote {
            Some(Link::Writer(lw)) => Some(lw),
            _ => None,
        };
        let wal_local = writer.is_some_and(|lw| lw.wal_local());
        let sync = self.inner.config.durability == Durability::Immediate && (writer.is_none() || wal_local);
        w.wal.append(seq, &refs, sync)?;
        w.last_seq = seq;
        let ticket = match writer {
            Some(lw) => Some(lw.txn(seq, records)?),
            None => None,
        };
        {
            let mut st = self.inner.state.write();
            st.apply(&op, true);
            self.compact_if_sparse(&mut st);
        }
        let remote_wants = matches!(&self.inner.remote, Some(Link::Writer(lw)) if lw.wants_checkpoint());
        if w.wal.file_bytes() >= WAL_FLUSH_BYTES || remote_wants {
            // The write is durable in the WAL already; a failed flush is retried next time and
            // reported by `info`, it does not fail the acknowledged write.
            if let Err(e) = self.flush_locked(w) {
                self.note_flush_error(w, &e);
            }
        }
        if let Some(t) = ticket.filter(|_| !wal_local) {
            // Other writers go on while this one waits: they join the same group commit.
            parking_lot::MutexGuard::unlocked(w, || t.wait())?;
        }
        Ok(seq)
    }

    /// Resolves a selector to the ids of live points (in id order for filters).
    pub(super) fn resolve(&self, selector: &PointSelector) -> Vec<PointId> {
        match selector {
            PointSelector::Ids(ids) => ids.clone(),
            PointSelector::Filter(f) => {
                let st = self.inner.state.read();
                let plan = st.plan(Some(f));
                let mut ids = Vec::with_capacity(st.plan_len(&plan));
                quiver_kernels::scan::for_each_allowed(plan.allowed(&st), st.n_rows(), |r| ids.push(st.id_at(r as usize)));
                ids
            }
        }
    }

    pub(super) fn check_ids(ids: &[PointId]) -> Result<()> {
        if ids.len() > BATCH_POINTS_MAX {
            return Err(Error::BatchTooLarge {
                got: ids.len(),
                max: BATCH_POINTS_MAX,
            });
        }
        Ok(())
    }

    /// Runs a selector-based write: resolves the selector under the writer lock (so no write can
    /// slip between resolving and logging), then commits.
    pub(super) fn write_selected(&self, selector: &PointSelector, make: impl FnOnce(Vec<PointId>) -> Op) -> Result<WriteAck> {
        let mut w = self.writer()?;
        let ids = self.resolve(selector);
        Self::check_ids(&ids)?;
        let affected = {
            let st = self.inner.state.read();
            ids.iter().filter(|id| st.contains(id)).count()
        };
        if ids.is_empty() {
            return Ok(WriteAck {
                seq: w.last_seq,
                affected: 0,
            });
        }
        let seq = self.commit(&mut w, make(ids))?;
        Ok(WriteAck { seq, affected })
    }

    /// Deletes points by id or by filter. `affected` counts points that existed.
    pub fn delete(&self, selector: &PointSelector) -> Result<WriteAck> {
        self.write_selected(selector, Op::Delete)
    }

    /// Merges `payload`'s keys into the selected points' payloads.
    pub fn set_payload(&self, selector: &PointSelector, payload: Payload) -> Result<WriteAck> {
        check_payload(&payload)?;
        self.write_selected(selector, |ids| Op::SetPayload { ids, payload })
    }

    /// Replaces the selected points' payloads with `payload`.
    pub fn overwrite_payload(&self, selector: &PointSelector, payload: Payload) -> Result<WriteAck> {
        check_payload(&payload)?;
        self.write_selected(selector, |ids| Op::OverwritePayload { ids, payload })
    }

    /// Removes keys (dotted paths reach into objects) from the selected points' payloads.
    pub fn delete_payload_keys(&self, selector: &PointSelector, keys: Vec<String>) -> Result<WriteAck> {
        self.write_selected(selector, |ids| Op::DeletePayloadKeys { ids, keys })
    }

    /// Removes every payload key of the selected points.
    pub fn clear_payload(&self, selector: &PointSelector) -> Result<WriteAck> {
        self.write_selected(selector, |ids| Op::ClearPayload { ids })
    }

    /// Creates (or replaces) a payload index on `key`; the schema change is durable on return.
    pub fn create_payload_index(&self, key: &str, kind: PayloadIndexType) -> Result<()> {
        let path = KeyPath::parse(key).map_err(|e| Error::InvalidRequest(format!("index key: {e}")))?;
        let mut w = self.writer()?;
        let mut m = w.manifest.clone();
        m.indexes.retain(|(k, t)| !(k == key && *t == kind));
        m.indexes.push((key.to_string(), kind));
        write_manifest(&self.inner.dir, &m)?;
        w.manifest = m;
        self.publish(&w.manifest)?;
        let mut st = self.inner.state.write();
        st.add_payload_index(path, kind);
        Ok(())
    }

    /// [`Collection::create_payload_index`] with Qdrant's index options (`is_tenant`,
    /// `prefix`, `lookup`, `range`, `on_disk`, ...): kept in the settings, reported by
    /// `payload_schema`, read by strict mode. An integer index must keep `lookup` or `range`.
    pub fn create_payload_index_with(
        &self,
        key: &str,
        kind: PayloadIndexType,
        options: serde_json::Map<String, serde_json::Value>,
    ) -> Result<()> {
        let off = |k: &str| options.get(k) == Some(&serde_json::Value::Bool(false));
        if kind == PayloadIndexType::Integer && off("lookup") && off("range") {
            return Err(Error::Validation {
                field: "field_schema".into(),
                problem: "Validation error: the 'lookup' and 'range' capabilities can't be both disabled".into(),
            });
        }
        self.update_settings(|s| {
            if options.is_empty() {
                s.index_options.remove(key);
            } else {
                s.index_options.insert(key.to_string(), serde_json::Value::Object(options.clone()));
            }
            Ok(())
        })?;
        self.create_payload_index(key, kind)
    }

    /// Drops every payload index on `key`.
    pub fn drop_payload_index(&self, key: &str) -> Result<()> {
        if self.inner.settings.read().index_options.contains_key(key) {
            self.update_settings(|s| {
                s.index_options.remove(key);
                Ok(())
            })?;
        }
        let mut w = self.writer()?;
        if !w.manifest.indexes.iter().any(|(k, _)| k == key) {
            return Err(Error::IndexNotFound(key.to_string()));
        }
        let mut m = w.manifest.clone();
        m.indexes.retain(|(k, _)| k != key);
        write_manifest(&self.inner.dir, &m)?;
        w.manifest = m;
        self.publish(&w.manifest)?;
        let mut st = self.inner.state.write();
        st.drop_indexes(key);
        Ok(())
    }
}

pub(super) fn check_payload(p: &Payload) -> Result<()> {
    let bytes = serde_json::to_vec(p).expect("a JSON map always serialises").len();
    if bytes > PAYLOAD_BYTES_MAX {
        return Err(Error::InvalidPayload {
            reason: format!("{bytes} bytes exceeds the limit of {PAYLOAD_BYTES_MAX}"),
            point: None,
        });
    }
    Ok(())
}
