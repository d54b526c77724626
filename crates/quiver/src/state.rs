//! The in-memory state of one collection: vectors in one row-major matrix, ids, payloads, the
//! live-row bitset, the id map and the payload indexes. Every change goes through
//! [`State::apply`], both for new writes and for recovery, so replay and live writes cannot
//! disagree.
//!
//! Invariants: `rows` (ids, payloads, named vectors) and the matrix (the base segment's map for
//! rows below `vec_from`, `vectors` after) have one entry per row; a row is live iff its bit is
//! set in `alive`, and then `row_of(id_at(row)) == row`; dead rows have no payload and no
//! named vectors and are in no payload index. A row's bit in `searchable` is set iff it is live
//! and holds a main vector (a row without one keeps zeros, which no search reads). `dirty`
//! holds the ids changed since the last flush. A mapped base (see `rows.rs`) is attached to an
//! empty state only, so its rows are rows `0..n` and every later row is in memory.

use crate::filter::KeyPath;
use crate::payload_index::{FieldIndex, PayloadIndexType, PayloadIndexes};
use crate::rows::Rows;
use crate::segment::{BaseIndexBytes, BaseIndexes};
use crate::segment::{BaseSegment, SegmentData};
use crate::sparse_index::SparseIndex;
use crate::store::Op;
use crate::text_index::TextIndex;
use crate::types::{Payload, Point, PointId};
use crate::vector_model::{NamedVectors, VectorData, VectorSchema};
use crate::vectors::VectorBuf;
use roaring::RoaringBitmap;
use std::borrow::Cow;
use std::collections::{BTreeMap, BTreeSet};
use std::path::Path;
use std::sync::Arc;

mod matrix;
mod plan;
mod prefilter;

pub use plan::Plan;

#[derive(Debug)]
pub struct State {
    dim: usize,
    /// The main vectors of rows `vec_from..`; rows below are read from the base segment's map.
    vectors: VectorBuf,
    vec_from: usize,
    rows: Rows,
    /// `on_disk_payload` (see [`State::set_payloads_on_disk`]), kept across rebases.
    payloads_on_disk: bool,
    alive: Vec<u64>,
    /// Live rows holding a main vector.
    searchable: Vec<u64>,
    n_alive: usize,
    /// Live rows without a main vector.
    n_no_main: usize,
    /// The named spaces, and an inverted index per sparse space.
    schema: VectorSchema,
    sparse: BTreeMap<String, SparseIndex>,
    indexes: PayloadIndexes,
    dirty: BTreeSet<PointId>,
    /// Bumped whenever rows are renumbered (compaction): row numbers from an older generation
    /// mean nothing now.
    generation: u64,
    /// Full-text indexes (BM25) on payload keys, keyed by point id (rows change, ids do not).
    text: Vec<(KeyPath, TextIndex)>,
    /// The segment whose rows are rows `0..rows` here, in its order (`None`: unknown, e.g.
    /// after rows were renumbered in memory only).
    base: Option<BaseId>,
    /// Int8 codes of the rows for large exact scans, made by the first one (see `prefilter`).
    scan_codes: parking_lot::Mutex<Option<Arc<prefilter::ScanCodes>>>,
}

/// A segment named by its number and checksum, and the rows it holds: in any process that
/// opened (or compacted into) it, rows `0..rows` are its rows, with the same ids and vectors,
/// so an index file saved against it can name nodes by row.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct BaseId {
    pub segment: u64,
    pub checksum: u32,
    pub rows: usize,
}

/// The text at `key` in a payload: its string values joined by newlines (`None` if none).
pub fn text_at(key: &KeyPath, p: &Payload) -> Option<String> {
    let parts: Vec<&str> = key.leaf_values(p).into_iter().filter_map(|v| v.as_str()).collect();
    (!parts.is_empty()).then(|| parts.join("\n"))
}

impl State {
    pub fn new(dim: usize, schema: &VectorSchema) -> State {
        State {
            dim,
            vectors: VectorBuf::new(),
            vec_from: 0,
            rows: Rows::default(),
            payloads_on_disk: false,
            alive: Vec::new(),
            searchable: Vec::new(),
            n_alive: 0,
            n_no_main: 0,
            sparse: schema.sparse.keys().map(|k| (k.clone(), SparseIndex::default())).collect(),
            schema: schema.clone(),
            indexes: PayloadIndexes::default(),
            dirty: BTreeSet::new(),
            generation: 0,
            text: Vec::new(),
            base: None,
            scan_codes: parking_lot::Mutex::new(None),
        }
    }

    /// The segment whose rows are this state's first rows, when known.
    pub fn base(&self) -> Option<BaseId> {
        self.base
    }

    /// Records that rows `0..base.rows` are `base.segment`'s rows, in its order.
    pub fn set_base(&mut self, base: BaseId) {
        debug_assert!(base.rows <= self.n_rows());
        self.base = Some(base);
    }

    /// A copy of the whole matrix in memory when the base's rows are read in place (`None`
    /// otherwise): its vectors, then the rows after it. For [`State::use_matrix`].
    pub fn matrix_in_memory(&self) -> Option<VectorBuf> {
        let base = self.rows.base().filter(|_| self.vec_from > 0)?;
        let mut buf = self.vectors.empty_like(self.vec_from * self.dim + self.vectors.len());
        for chunk in base.vectors().chunks((1 << 20) * self.dim.max(1)) {
            buf.extend_from_slice(chunk);
        }
        buf.extend_from_slice(&self.vectors[..]);
        Some(buf)
    }

    /// Holds every row's vector in `matrix` (made by [`State::matrix_in_memory`] with no row
    /// added since) from now on, none read from the base's map.
    pub fn use_matrix(&mut self, matrix: VectorBuf) {
        assert_eq!(matrix.len(), self.n_rows() * self.dim, "the matrix holds every row");
        self.vectors = matrix;
        self.vec_from = 0;
    }

    /// Keeps the main vectors in a scratch file in `dir` from now on (call before any row).
    pub fn keep_vectors_on_disk(&mut self, dir: &Path) {
        debug_assert!(self.vectors.is_empty());
        self.vectors = VectorBuf::on_disk(dir);
    }

    /// Where the main vectors live, in bytes, and whether they were meant for disk but fell
    /// back to memory (the reason).
    pub fn vectors_footprint(&self) -> (crate::vectors::Footprint, bool, Option<String>) {
        let (disk, why) = self.vectors.on_disk_state();
        let mut fp = self.vectors.footprint();
        // Rows read in place from the base segment: their resident pages (the file itself is
        // counted with the segments).
        if let Some(b) = self.rows.base().filter(|_| self.vec_from > 0) {
            fp.memory += b.vectors_resident();
        }
        (fp, disk, why.map(str::to_string))
    }

    /// Bytes of the base segment read in place: its vectors (0 when they were copied into
    /// memory) and its payloads.
    pub fn base_bytes_in_place(&self) -> (usize, usize) {
        match self.rows.base() {
            Some(b) => {
                let (v, p) = b.section_bytes();
                (if self.vec_from > 0 { v } else { 0 }, p)
            }
            None => (0, 0),
        }
    }

    /// Estimated bytes in memory of the payloads (the deep size of up to 1,000 payloads spread
    /// over the rows, scaled to all: nothing here reads every point) and of the payload
    /// indexes.
    pub fn payload_memory(&self) -> (usize, usize) {
        let n = self.rows.len() - self.rows.base_len();
        let (bytes, slots) = self.rows.payload_bytes(crate::projection::deep_size, n.div_ceil(1000));
        let indexes = self.indexes.fields.iter().map(|f| f.memory_bytes()).sum();
        (bytes + slots, indexes)
    }

    /// Attaches a mapped base segment as this (empty) state's rows `0..base.len()`: nothing
    /// about its rows is read, except that the declared payload indexes not in `persisted`
    /// (the base's sidecar), the full-text and the sparse indexes are filled from it (payloads
    /// decoded one at a time, not kept). True when some payload index had to be built. With `copy_vectors` the
    /// matrix is copied into memory (the collection keeps its vectors in memory); otherwise it
    /// is read from the map.
    pub fn attach_base(&mut self, base: Arc<BaseSegment>, copy_vectors: bool, persisted: BaseIndexes) -> bool {
        let BaseIndexes {
            fields: mut persisted,
            text: mut persisted_text,
            sparse: mut persisted_sparse,
        } = persisted;
        assert_eq!(self.n_rows(), 0, "a base is attached to an empty state");
        let n = base.len();
        if copy_vectors {
            self.vectors.reserve(n * self.dim);
            for chunk in base.vectors().chunks((1 << 20) * self.dim.max(1)) {
                self.vectors.extend_from_slice(chunk);
            }
            self.vec_from = 0;
        } else {
            self.vec_from = n;
        }
        self.alive = vec![u64::MAX; n.div_ceil(64)];
        if !n.is_multiple_of(64) {
            *self.alive.last_mut().expect("n > 0") = (1u64 << (n % 64)) - 1;
        }
        self.searchable = base.main_words().to_vec();
        let with_main: usize = self.searchable.iter().map(|w| w.count_ones() as usize).sum();
        self.n_alive = n;
        self.n_no_main = n - with_main;
        self.base = Some(BaseId {
            segment: base.number(),
            checksum: base.fingerprint(),
            rows: n,
        });
        self.rows = Rows::with_base(base.clone());
        self.rows.set_payloads_on_disk(self.payloads_on_disk);
        // Payload indexes saved for this base are taken as they are; the others are built.
        let mut missing = Vec::new();
        for f in &mut self.indexes.fields {
            match persisted.iter().position(|p| p.key.text == f.key.text && p.kind == f.kind) {
                Some(i) => *f = persisted.swap_remove(i),
                None => missing.push(FieldIndex::new(f.key.clone(), f.kind)),
            }
        }
        // Full-text and sparse indexes saved for this base likewise.
        let mut text_missing = Vec::new();
        for (key, t) in &mut self.text {
            match persisted_text.iter().position(|(k, _)| *k == key.text) {
                Some(i) => *t = persisted_text.swap_remove(i).1,
                None => text_missing.push(key.text.clone()),
            }
        }
        let mut sparse_missing = Vec::new();
        for (name, ix) in &mut self.sparse {
            match persisted_sparse.iter().position(|(n, _)| n == name) {
                Some(i) => *ix = persisted_sparse.swap_remove(i).1,
                None => sparse_missing.push(name.clone()),
            }
        }
        let built = !missing.is_empty() || !text_missing.is_empty() || !sparse_missing.is_empty();
        if built && base.fill().is_some() {
            // Every row is read below: one streamed fetch rather than a request per row (rows
            // still fetch their own bytes if this fails).
            let _ = base.warm();
        }
        if !missing.is_empty() || !text_missing.is_empty() {
            let mut build = PayloadIndexes { fields: missing };
            for r in 0..n {
                let Some(p) = base.payload(r).unwrap_or_else(|e| {
                    self.rows.note_damage(e);
                    None
                }) else {
                    continue;
                };
                build.insert(r as u32, &p);
                let id = base.id(r);
                for (key, t) in &mut self.text {
                    if !text_missing.contains(&key.text) {
                        continue;
                    }
                    if let Some(text) = text_at(key, &p) {
                        t.set(&id, Some(&text));
                    }
                }
            }
            self.commit_text();
            for f in build.fields {
                let at = self
                    .indexes
                    .fields
                    .iter()
                    .position(|g| g.key.text == f.key.text && g.kind == f.kind);
                self.indexes.fields[at.expect("built for a declared index")] = f;
            }
        }
        if !sparse_missing.is_empty() && base.has_named() {
            for r in 0..n {
                if let Some(named) = self.rows.named(r) {
                    for (name, v) in named.iter() {
                        if !sparse_missing.contains(name) {
                            continue;
                        }
                        if let (VectorData::Sparse(sv), Some(ix)) = (v, self.sparse.get_mut(name)) {
                            ix.insert(r as u32, sv);
                        }
                    }
                }
            }
        }
        built
    }

    /// Every index over the base's rows as bytes (payload, full-text, sparse), for its
    /// sidecar; only meaningful when the state's rows are exactly the base's (after an open
    /// or a compaction). A broken full-text index is left out (it is rebuilt on open).
    pub fn base_index_bytes(&mut self) -> BaseIndexBytes {
        BaseIndexBytes {
            fields: self.indexes.fields.iter().map(|f| f.encode()).collect(),
            text: self
                .text
                .iter_mut()
                .filter_map(|(k, t)| Some((k.text.clone(), t.encode()?)))
                .collect(),
            sparse: self.sparse.iter().map(|(n, ix)| (n.clone(), ix.encode())).collect(),
        }
    }

    /// The mapped base segment, if one is attached.
    pub fn base_segment(&self) -> Option<&Arc<BaseSegment>> {
        self.rows.base()
    }

    /// Whether the base segment is still being fetched from object storage (a replica's cold
    /// start): work that reads every row can wait for it rather than fetch it all now.
    pub fn base_filling(&self) -> bool {
        self.rows.base().and_then(|b| b.fill()).is_some_and(|f| !f.is_complete())
    }

    /// The first damage found in the base's rows (a row read as having none) or reported by
    /// the background check of its sections.
    pub fn damage(&self) -> Option<&str> {
        self.rows.damage()
    }

    /// Records damage found in the base (the first is kept).
    pub fn note_damage(&self, e: impl std::fmt::Display) {
        self.rows.note_damage(e);
    }

    /// Whether the main vectors live in a file (a read may be a page fault).
    pub fn vectors_on_disk(&self) -> bool {
        self.vectors.on_disk_state() == (true, None)
    }

    /// The vector dimension.
    pub fn dim(&self) -> usize {
        self.dim
    }

    /// Live points.
    pub fn n_alive(&self) -> usize {
        self.n_alive
    }

    /// Bumped whenever rows are renumbered: row numbers of an older generation mean nothing.
    pub fn generation(&self) -> u64 {
        self.generation
    }

    /// The id of a row (live or dead).
    pub fn id_at(&self, row: usize) -> PointId {
        self.rows.id(row)
    }

    /// The payload of a row (decoded from the base segment, or kept in memory).
    pub fn payload_at(&self, row: usize) -> Option<Cow<'_, Payload>> {
        self.rows.payload(row)
    }

    /// `on_disk_payload`: base payloads are decoded on every read instead of kept once read.
    pub fn set_payloads_on_disk(&mut self, on_disk: bool) {
        self.payloads_on_disk = on_disk;
        self.rows.set_payloads_on_disk(on_disk);
    }

    /// The live row of a point.
    pub fn row_of(&self, id: &PointId) -> Option<u32> {
        self.rows.row_of(id, |r| self.is_alive(r))
    }

    /// True when the point exists.
    pub fn contains(&self, id: &PointId) -> bool {
        self.row_of(id).is_some()
    }

    /// Live points in id order from `start` (inclusive), with their rows.
    pub fn ids_from(&self, start: Option<&PointId>) -> impl Iterator<Item = (PointId, u32)> + '_ {
        self.rows.ids_from(start, |r| self.is_alive(r))
    }

    /// One bit per row, set for live rows.
    pub fn alive_mask(&self) -> &[u64] {
        &self.alive
    }

    /// One bit per row, set for live rows that hold a main vector (what a vector search and
    /// the graph may visit).
    pub fn searchable_mask(&self) -> &[u64] {
        &self.searchable
    }

    /// True when the row is live and holds a main vector.
    pub fn is_searchable(&self, row: u32) -> bool {
        self.searchable.get(row as usize / 64).is_some_and(|w| w >> (row % 64) & 1 == 1)
    }

    /// Live points holding a main vector.
    pub fn n_searchable(&self) -> usize {
        self.n_alive - self.n_no_main
    }

    /// True when the row holds the vector of this name (the main one or a named one).
    pub fn has_vector(&self, row: u32, name: &str) -> bool {
        if name == self.schema.main && self.dim > 0 {
            return self.is_searchable(row);
        }
        self.named_at(row).is_some_and(|m| m.contains_key(name))
    }

    /// A row as a segment stores it: id, main vector (empty when it has none), named vectors,
    /// payload.
    pub fn segment_row(&self, row: u32) -> crate::segment::SegmentRow<'_> {
        let main = if self.is_searchable(row) || self.dim == 0 {
            self.vector(row)
        } else {
            &[][..]
        };
        (self.id_at(row as usize), main, self.named_at(row), self.payload_at(row as usize))
    }

    /// A row's named vectors.
    pub fn named_at(&self, row: u32) -> Option<&NamedVectors> {
        self.rows.named(row as usize)
    }

    /// The main vector's name (`""`: unnamed).
    pub fn main_name(&self) -> &str {
        &self.schema.main
    }

    /// True when queries of the sparse space are weighted by IDF.
    pub fn sparse_idf(&self, name: &str) -> bool {
        self.schema.sparse.get(name).is_some_and(|p| p.idf)
    }

    /// Turns the IDF weighting of a sparse space on or off.
    pub fn set_sparse_idf(&mut self, name: &str, idf: bool) {
        if let Some(p) = self.schema.sparse.get_mut(name) {
            p.idf = idf;
        }
    }

    /// The inverted index of a sparse space.
    pub fn sparse_index(&self, name: &str) -> Option<&SparseIndex> {
        self.sparse.get(name)
    }

    /// Live points holding the named vector (`name` may be the main one).
    pub fn count_vector(&self, name: &str) -> usize {
        if name == self.schema.main && self.dim > 0 {
            return self.n_searchable();
        }
        if let Some(ix) = self.sparse.get(name) {
            return ix.docs();
        }
        (0..self.n_rows() as u32)
            .filter(|&r| self.is_alive(r) && self.named_at(r).is_some_and(|m| m.contains_key(name)))
            .count()
    }

    /// Bytes of the live points' vectors (main, named, multi, sparse) and of their payloads
    /// encoded as JSON: a scan of every live row.
    pub fn byte_sizes(&self) -> (usize, usize) {
        let (mut vectors, mut payloads) = (0usize, 0usize);
        for r in 0..self.n_rows() as u32 {
            if !self.is_alive(r) {
                continue;
            }
            if self.is_searchable(r) {
                vectors += self.dim * 4;
            }
            if let Some(named) = self.named_at(r) {
                vectors += named.values().map(|v| v.bytes()).sum::<usize>();
            }
            if let Some(p) = self.payload_at(r as usize) {
                payloads += serde_json::to_vec(&*p).map_or(0, |b| b.len());
            }
        }
        (vectors, payloads)
    }

    /// Points changed since the last flush (upserted, edited or deleted).
    pub fn dirty(&self) -> &BTreeSet<PointId> {
        &self.dirty
    }

    /// Every payload index: (key, type, points indexed, distinct values; 0 for text).
    pub fn index_summary(&self) -> Vec<(String, PayloadIndexType, u64, usize)> {
        self.indexes
            .fields
            .iter()
            .map(|f| (f.key.text.clone(), f.kind, f.points(), f.distinct_values()))
            .chain(
                self.text
                    .iter()
                    .map(|(k, t)| (k.text.clone(), PayloadIndexType::Text, t.len() as u64, 0)),
            )
            .collect()
    }

    /// Facet counts on `key` among `allowed` rows: every value a keyword, integer or bool index
    /// on `key` holds, with the number of allowed points holding it (a point counts once per
    /// value). `None` when no such index exists.
    pub fn facet_counts(&self, key: &str, allowed: &RoaringBitmap) -> Option<Vec<(serde_json::Value, u64)>> {
        let field = self.indexes.fields.iter().find(|f| f.key.text == key)?;
        let values = field.value_rows()?;
        Some(
            values
                .into_iter()
                .map(|(v, rows)| (v, rows.intersection_len(allowed)))
                .filter(|(_, n)| *n > 0)
                .collect(),
        )
    }

    /// Rows in the order of their values at `key` (an integer or float index), from
    /// `start_from` on, among `allowed`: `(row, value)`, a row once per value it holds, ties in
    /// id order, at most `limit`. `None` when `key` has no such index.
    pub fn ordered_rows(
        &self,
        key: &str,
        descending: bool,
        start_from: Option<f64>,
        allowed: &RoaringBitmap,
        limit: usize,
    ) -> Option<Vec<(u32, f64)>> {
        let field = self.indexes.fields.iter().find(|f| f.key.text == key)?;
        let mut out = Vec::new();
        for (value, rows) in field.ordered_values(descending, start_from)? {
            let mut tied: Vec<u32> = (rows & allowed).iter().collect();
            tied.sort_by_key(|&r| self.id_at(r as usize));
            for r in tied {
                if out.len() == limit {
                    return Some(out);
                }
                out.push((r, value));
            }
        }
        Some(out)
    }

    /// Forgets the changes since the last flush (they are in a durable segment now).
    pub fn clear_dirty(&mut self) {
        self.dirty.clear();
    }

    /// The full-text indexes, by payload key.
    pub fn text_indexes(&self) -> &[(KeyPath, TextIndex)] {
        &self.text
    }

    /// Declares an index on `key` while opening, before any point is loaded (points loaded
    /// afterwards fill it).
    pub fn declare_index(&mut self, key: KeyPath, kind: PayloadIndexType) {
        if kind == PayloadIndexType::Text {
            self.text.push((key, TextIndex::new()));
        } else {
            self.indexes.fields.push(FieldIndex::new(key, kind));
        }
    }

    /// Builds a payload index of `kind` on `key` over the current points (replacing one of the
    /// same key and kind).
    pub fn add_payload_index(&mut self, key: KeyPath, kind: PayloadIndexType) {
        if kind == PayloadIndexType::Text {
            return self.add_text_index(key);
        }
        self.indexes.fields.retain(|f| !(f.key.text == key.text && f.kind == kind));
        let mut index = FieldIndex::new(key, kind);
        for row in 0..self.n_rows() as u32 {
            if let (true, Some(p)) = (self.is_alive(row), self.payload_at(row as usize)) {
                index.insert(row, &p);
            }
        }
        self.indexes.fields.push(index);
    }

    /// Drops every payload and full-text index on `key`.
    pub fn drop_indexes(&mut self, key: &str) {
        self.indexes.fields.retain(|f| f.key.text != key);
        self.text.retain(|(k, _)| k.text != key);
    }

    pub fn n_rows(&self) -> usize {
        self.rows.len()
    }

    pub fn is_alive(&self, row: u32) -> bool {
        self.alive.get(row as usize / 64).is_some_and(|w| w >> (row % 64) & 1 == 1)
    }

    pub fn vector(&self, row: u32) -> &[f32] {
        let row = row as usize;
        match row.checked_sub(self.vec_from) {
            Some(r) => &self.vectors[r * self.dim..(r + 1) * self.dim],
            None => self.rows.base().expect("rows below vec_from are the base's").vector(row),
        }
    }

    fn kill_row(&mut self, row: u32) {
        debug_assert!(self.is_alive(row));
        if let Some(extras) = self.rows.named_mut(row as usize).take() {
            for (name, v) in extras.iter() {
                if let (VectorData::Sparse(sv), Some(ix)) = (v, self.sparse.get_mut(name)) {
                    ix.remove(sv);
                }
            }
        }
        if self.is_searchable(row) {
            self.searchable[row as usize / 64] &= !(1u64 << (row % 64));
        } else {
            self.n_no_main -= 1;
        }
        let id = self.id_at(row as usize);
        for (_, t) in &mut self.text {
            t.set(&id, None);
        }
        if let Some(p) = self.rows.payload_mut(row as usize).take() {
            self.indexes.remove(row, &p);
        }
        self.alive[row as usize / 64] &= !(1u64 << (row % 64));
        self.n_alive -= 1;
    }

    fn upsert_one(&mut self, id: PointId, vector: &[f32], extras: Option<Box<NamedVectors>>, payload: Option<Payload>) {
        let has_main = !vector.is_empty();
        assert!(
            !has_main || vector.len() == self.dim,
            "vectors are validated before they reach the state"
        );
        if let Some(old) = self.row_of(&id) {
            self.rows.unmap(&id);
            self.kill_row(old);
        }
        let row = u32::try_from(self.n_rows()).expect("row count is bounded by ROWS_MAX");
        if has_main {
            self.vectors.extend_from_slice(vector);
        } else {
            self.vectors.extend_from_slice(&vec![0.0; self.dim]);
            self.n_no_main += 1;
        }
        if let Some(extras) = &extras {
            for (name, v) in extras.iter() {
                if let (VectorData::Sparse(sv), Some(ix)) = (v, self.sparse.get_mut(name)) {
                    ix.insert(row, sv);
                }
            }
        }
        let extras = extras.filter(|e| !e.is_empty());
        if let Some(p) = &payload {
            self.indexes.insert(row, p);
            for (key, t) in &mut self.text {
                if let Some(text) = text_at(key, p) {
                    t.set(&id, Some(&text));
                }
            }
        }
        let pushed = self.rows.push(id, payload.map(Box::new), extras);
        debug_assert_eq!(pushed, row);
        if self.alive.len() * 64 <= row as usize {
            self.alive.push(0);
            self.searchable.push(0);
        }
        self.alive[row as usize / 64] |= 1u64 << (row % 64);
        if has_main {
            self.searchable[row as usize / 64] |= 1u64 << (row % 64);
        }
        self.n_alive += 1;
        self.rows.map(id, row);
    }

    fn delete_one(&mut self, id: &PointId) {
        if let Some(row) = self.row_of(id) {
            self.rows.unmap(id);
            self.kill_row(row);
        }
    }

    /// Changes the payload of a live point through `f`, keeping the indexes in step.
    fn edit_payload(&mut self, id: &PointId, f: impl FnOnce(&mut Payload)) -> bool {
        let Some(row) = self.row_of(id) else { return false };
        let mut p = self.rows.payload_mut(row as usize).take().map(|b| *b).unwrap_or_default();
        self.indexes.remove(row, &p);
        f(&mut p);
        self.indexes.insert(row, &p);
        for (key, t) in &mut self.text {
            t.set(id, text_at(key, &p).as_deref());
        }
        *self.rows.payload_mut(row as usize) = if p.is_empty() { None } else { Some(Box::new(p)) };
        true
    }

    /// Applies one operation. `track` marks touched ids dirty (live writes and WAL replay); a
    /// segment being loaded is already on disk and is not tracked.
    pub fn apply(&mut self, op: &Op, track: bool) {
        match op {
            Op::Upsert(points) => {
                self.vectors.reserve(points.len() * self.dim);
                for Point {
                    id,
                    vector,
                    vectors,
                    payload,
                } in points
                {
                    let extras = (!vectors.is_empty()).then(|| Box::new(vectors.clone()));
                    self.upsert_one(*id, vector, extras, payload.clone());
                    if track {
                        self.dirty.insert(*id);
                    }
                }
            }
            Op::Delete(ids) => {
                for id in ids {
                    self.delete_one(id);
                    if track {
                        self.dirty.insert(*id);
                    }
                }
            }
            Op::SetPayload { ids, payload } => self.edit_each(ids, track, |p| {
                for (k, v) in payload {
                    p.insert(k.clone(), v.clone());
                }
            }),
            Op::OverwritePayload { ids, payload } => self.edit_each(ids, track, |p| *p = payload.clone()),
            Op::DeletePayloadKeys { ids, keys } => self.edit_each(ids, track, |p| {
                for k in keys {
                    remove_key_path(p, k);
                }
            }),
            Op::ClearPayload { ids } => self.edit_each(ids, track, |p| p.clear()),
        }
        self.commit_text();
    }

    /// Makes text-index changes searchable (one tantivy commit per index with changes).
    /// A broken index (tantivy failed) is rebuilt from the payloads; if that fails too, it stays
    /// broken and is tried again at the next commit.
    pub fn commit_text(&mut self) {
        for (_, t) in &mut self.text {
            t.commit();
        }
        let broken: Vec<KeyPath> = self
            .text
            .iter()
            .filter(|(_, t)| t.error().is_some())
            .map(|(k, _)| k.clone())
            .collect();
        for key in broken {
            let i = self.text.iter().position(|(k, _)| k.text == key.text).expect("listed above");
            let rebuilt = self.build_text_index(&key);
            self.text[i].1 = rebuilt;
        }
    }

    /// Builds a full-text index on `key` over the current points.
    pub fn add_text_index(&mut self, key: KeyPath) {
        self.text.retain(|(k, _)| k.text != key.text);
        let t = self.build_text_index(&key);
        self.text.push((key, t));
    }

    fn build_text_index(&self, key: &KeyPath) -> TextIndex {
        let mut t = TextIndex::new();
        for row in 0..self.n_rows() {
            if let (true, Some(p)) = (self.is_alive(row as u32), self.payload_at(row)) {
                if let Some(text) = text_at(key, &p) {
                    t.set(&self.id_at(row), Some(&text));
                }
            }
        }
        t.commit();
        t
    }

    fn edit_each(&mut self, ids: &[PointId], track: bool, f: impl Fn(&mut Payload)) {
        for id in ids {
            if self.edit_payload(id, &f) && track {
                self.dirty.insert(*id);
            }
        }
    }

    /// Applies a segment loaded from disk: its points, then its tombstones.
    pub fn apply_segment(&mut self, seg: SegmentData<'_>) {
        self.vectors.reserve(seg.ids.len() * self.dim);
        let mut row = vec![0.0f32; self.dim];
        let SegmentData {
            ids,
            vectors,
            payloads,
            tombstones,
            extras,
        } = seg;
        let mut extras = extras.into_iter();
        for (i, (id, payload)) in ids.into_iter().zip(payloads).enumerate() {
            let (has_main, named) = extras.next().unwrap_or((true, None));
            let v = if has_main {
                crate::segment::decode_row(vectors, i, &mut row);
                &row[..]
            } else {
                &[][..]
            };
            self.upsert_one(id, v, named.map(Box::new), payload);
        }
        for id in &tombstones {
            self.delete_one(id);
        }
        self.commit_text();
    }

    /// Drops dead rows, renumbering the live ones in id order, and rebuilds the indexes. Every
    /// row ends up in memory (a mapped base is read out): compaction of a collection's files
    /// uses [`State::rebase`] instead.
    pub fn compact_rows(&mut self) {
        let dim = self.dim;
        let live: Vec<(PointId, u32)> = self.ids_from(None).collect();
        let mut vectors = self.vectors.empty_like(live.len() * dim);
        let mut rows = Rows::default();
        let mut searchable = vec![0u64; live.len().div_ceil(64)];
        for &(id, row) in &live {
            vectors.extend_from_slice(self.vector(row));
            let payload = self.rows.payload_mut(row as usize).take();
            let extras = self.rows.named_mut(row as usize).take();
            let new_row = rows.push(id, payload, extras);
            if self.is_searchable(row) {
                searchable[new_row as usize / 64] |= 1 << (new_row % 64);
            }
            rows.map(id, new_row);
        }
        let n = live.len();
        let mut alive = vec![0u64; n.div_ceil(64)];
        for r in 0..n {
            alive[r / 64] |= 1 << (r % 64);
        }
        for ix in self.sparse.values_mut() {
            *ix = SparseIndex::default();
        }
        for r in 0..n {
            for (name, v) in rows.named(r).iter().flat_map(|e| e.iter()) {
                if let (VectorData::Sparse(sv), Some(ix)) = (v, self.sparse.get_mut(name)) {
                    ix.insert(r as u32, sv);
                }
            }
        }
        let schema: Vec<FieldIndex> = self.indexes.fields.drain(..).map(|f| FieldIndex::new(f.key, f.kind)).collect();
        self.indexes.fields = schema;
        for r in 0..n {
            if let Some(p) = rows.payload(r) {
                self.indexes.insert(r as u32, &p);
            }
        }
        self.vectors = vectors;
        self.vec_from = 0;
        self.rows = rows;
        self.alive = alive;
        self.searchable = searchable;
        self.n_alive = n;
        self.generation += 1;
        self.base = None;
    }

    /// Replaces every row by `base`, a segment holding exactly the live points in id order
    /// (compaction wrote it from this state): rows are renumbered as [`State::compact_rows`]
    /// would, but they stay in the map instead of memory. The payload and sparse indexes are
    /// rebuilt from it; the full-text indexes (by id) carry over.
    pub fn rebase(&mut self, base: Arc<BaseSegment>) {
        debug_assert_eq!(base.len(), self.n_alive);
        let (on_disk, _) = self.vectors.on_disk_state();
        let mut fresh = State::new(self.dim, &self.schema);
        fresh.vectors = self.vectors.empty_like(0);
        fresh.indexes.fields = self.indexes.fields.iter().map(|f| FieldIndex::new(f.key.clone(), f.kind)).collect();
        fresh.generation = self.generation + 1;
        fresh.payloads_on_disk = self.payloads_on_disk;
        fresh.dirty = std::mem::take(&mut self.dirty);
        fresh.attach_base(base, !on_disk, BaseIndexes::default());
        fresh.text = std::mem::take(&mut self.text);
        *self = fresh;
    }

    /// Rows that hold no live point.
    pub fn dead_rows(&self) -> usize {
        self.n_rows() - self.n_alive
    }
}

/// Removes `a.b.c` from a payload (a plain key when no such path exists but the key does).
fn remove_key_path(p: &mut Payload, key: &str) {
    if p.remove(key).is_some() {
        return;
    }
    let mut parts = key.split('.').peekable();
    let mut cur: &mut Payload = p;
    while let Some(part) = parts.next() {
        if parts.peek().is_none() {
            cur.remove(part);
            return;
        }
        match cur.get_mut(part) {
            Some(serde_json::Value::Object(next)) => cur = next,
            _ => return,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::filter::Filter;
    use crate::store::Op;
    use crate::types::Point;

    fn doc(id: u64, text: &str) -> Point {
        let mut p = Payload::new();
        p.insert("document".into(), serde_json::json!(text));
        Point::new(id, vec![1.0, 0.0]).with_payload(p)
    }

    /// A broken text index (tantivy failed) never panics: text filters fall back to evaluating
    /// each point with the same answer, and the next commit rebuilds the index from payloads.
    #[test]
    fn a_broken_text_index_falls_back_and_is_rebuilt() {
        let mut st = State::new(2, &VectorSchema::default());
        st.add_text_index(KeyPath::parse("document").unwrap());
        st.apply(
            &Op::Upsert(vec![doc(1, "red apples"), doc(2, "green apples"), doc(3, "red cars")]),
            false,
        );
        let filter = Filter::parse(r#"{"must": [{"key": "document", "match": {"text": "red"}}]}"#).unwrap();
        let rows = |st: &State| -> Vec<u32> {
            match st.plan(Some(&filter)) {
                Plan::List(l) => l,
                Plan::Mask(m) => (0..st.n_rows() as u32)
                    .filter(|&r| m[r as usize / 64] >> (r % 64) & 1 == 1)
                    .collect(),
                Plan::AllLive | Plan::AllSearchable => unreachable!("a filter was given"),
            }
        };
        let want = rows(&st);
        assert_eq!(want, vec![0, 2]);
        assert!(matches!(st.plan(Some(&filter)), Plan::List(_)), "the index gives candidates");
        st.text[0].1.break_for_test();
        assert!(st.text[0].1.bm25("red", 10).is_err());
        assert!(matches!(st.plan(Some(&filter)), Plan::Mask(_)), "a broken index gives none");
        assert_eq!(rows(&st), want);
        // Writes while broken are absorbed; the commit at the end of the op rebuilds.
        st.apply(&Op::Upsert(vec![doc(4, "red wine")]), false);
        assert!(st.text[0].1.error().is_none());
        let hits: Vec<PointId> = st.text[0].1.bm25("red", 10).unwrap().into_iter().map(|(id, _)| id).collect();
        assert_eq!(hits.len(), 3);
        assert!(hits.contains(&PointId::Num(4)));
    }
}
