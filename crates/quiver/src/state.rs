//! The in-memory state of one collection: vectors in one row-major matrix, ids, payloads, the
//! live-row bitset, the id map and the payload indexes. Every change goes through
//! [`State::apply`], both for new writes and for recovery, so replay and live writes cannot
//! disagree.
//!
//! Invariants: `ids`, `payloads`, `extras` and rows of `vectors` have one entry per row; a row is
//! live iff its bit is set in `alive`, and then `id_to_row[ids[row]] == row`; dead rows have no
//! payload and no named vectors and are in no payload index. A row's bit in `searchable` is set
//! iff it is live and holds a main vector (a row without one keeps zeros in `vectors`, which no
//! search reads). `dirty` holds the ids changed since the last flush.

use crate::filter::{Condition, FieldCheck, Filter, KeyPath};
use crate::payload_index::{FieldIndex, PayloadIndexType, PayloadIndexes};
use crate::sparse_index::SparseIndex;
use crate::store::{Op, SegmentData};
use crate::text_index::TextIndex;
use crate::types::{Payload, Point, PointId};
use crate::vector_model::{NamedVectors, VectorData, VectorSchema};
use crate::vectors::VectorBuf;
use quiver_kernels::Allowed;
use roaring::RoaringBitmap;
use std::collections::{BTreeMap, BTreeSet};
use std::path::Path;

/// Rows the scan may visit after a filter is planned.
pub enum Plan {
    /// Every live row (no filter).
    AllLive,
    /// Every live row holding a main vector (no filter, in a vector search).
    AllSearchable,
    /// A bitset of matching rows (the filter was evaluated on every live row).
    Mask(Vec<u64>),
    /// The matching rows, from index candidates.
    List(Vec<u32>),
}

impl Plan {
    pub fn allowed<'a>(&'a self, state: &'a State) -> Allowed<'a> {
        match self {
            Plan::AllLive => Allowed::Mask(&state.alive),
            Plan::AllSearchable => Allowed::Mask(&state.searchable),
            Plan::Mask(m) => Allowed::Mask(m),
            Plan::List(l) => Allowed::List(l),
        }
    }
}

#[derive(Debug)]
pub struct State {
    dim: usize,
    vectors: VectorBuf,
    ids: Vec<PointId>,
    /// Boxed: an empty slot is one word (an unboxed map is 72 bytes a row, with or without
    /// a payload: 340 MB at 5 million points).
    payloads: Vec<Option<Box<Payload>>>,
    /// Each row's named vectors (`None`: none, or a dead row).
    extras: Vec<Option<Box<NamedVectors>>>,
    alive: Vec<u64>,
    /// Live rows holding a main vector.
    searchable: Vec<u64>,
    n_alive: usize,
    /// Live rows without a main vector.
    n_no_main: usize,
    /// The named spaces, and an inverted index per sparse space.
    schema: VectorSchema,
    sparse: BTreeMap<String, SparseIndex>,
    id_to_row: BTreeMap<PointId, u32>,
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
            ids: Vec::new(),
            payloads: Vec::new(),
            extras: Vec::new(),
            alive: Vec::new(),
            searchable: Vec::new(),
            n_alive: 0,
            n_no_main: 0,
            sparse: schema.sparse.keys().map(|k| (k.clone(), SparseIndex::default())).collect(),
            schema: schema.clone(),
            id_to_row: BTreeMap::new(),
            indexes: PayloadIndexes::default(),
            dirty: BTreeSet::new(),
            generation: 0,
            text: Vec::new(),
            base: None,
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

    /// Keeps the main vectors in a scratch file in `dir` from now on (call before any row).
    pub fn keep_vectors_on_disk(&mut self, dir: &Path) {
        debug_assert!(self.vectors.is_empty());
        self.vectors = VectorBuf::on_disk(dir);
    }

    /// Where the main vectors live, in bytes, and whether they were meant for disk but fell
    /// back to memory (the reason).
    pub fn vectors_footprint(&self) -> (crate::vectors::Footprint, bool, Option<String>) {
        let (disk, why) = self.vectors.on_disk_state();
        (self.vectors.footprint(), disk, why.map(str::to_string))
    }

    /// Estimated bytes in memory of the payloads (the deep size of up to 1,000 payloads spread
    /// over the rows, scaled to all: nothing here reads every point) and of the payload
    /// indexes.
    pub fn payload_memory(&self) -> (usize, usize) {
        let n = self.payloads.len();
        let step = n.div_ceil(1000).max(1);
        let (mut sampled, mut bytes) = (0usize, 0usize);
        for r in (0..n).step_by(step) {
            sampled += 1;
            bytes += self.payloads[r].as_deref().map_or(0, crate::projection::deep_size);
        }
        let payloads = (bytes * n).checked_div(sampled).unwrap_or(0) + n * std::mem::size_of::<Option<Box<Payload>>>();
        let indexes = self.indexes.fields.iter().map(|f| f.memory_bytes()).sum();
        (payloads, indexes)
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
    pub fn id_at(&self, row: usize) -> &PointId {
        &self.ids[row]
    }

    /// The payload of a row.
    pub fn payload_at(&self, row: usize) -> Option<&Payload> {
        self.payloads[row].as_deref()
    }

    /// The live row of a point.
    pub fn row_of(&self, id: &PointId) -> Option<u32> {
        self.id_to_row.get(id).copied()
    }

    /// True when the point exists.
    pub fn contains(&self, id: &PointId) -> bool {
        self.id_to_row.contains_key(id)
    }

    /// Live points in id order from `start` (inclusive), with their rows.
    pub fn ids_from(&self, start: Option<&PointId>) -> impl Iterator<Item = (&PointId, u32)> + '_ {
        let range = match start {
            Some(s) => self.id_to_row.range(s..),
            None => self.id_to_row.range(..),
        };
        range.map(|(id, &r)| (id, r))
    }

    /// Every row's vector, row after row (dead rows too: mask them with `alive_mask`).
    pub fn matrix(&self) -> &[f32] {
        &self.vectors
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
    pub fn segment_row(&self, row: u32) -> crate::store::SegmentRow<'_> {
        let main = if self.is_searchable(row) || self.dim == 0 {
            self.vector(row)
        } else {
            &[][..]
        };
        (
            &self.ids[row as usize],
            main,
            self.named_at(row),
            self.payloads[row as usize].as_deref(),
        )
    }

    /// A row's named vectors.
    pub fn named_at(&self, row: u32) -> Option<&NamedVectors> {
        self.extras[row as usize].as_deref()
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
            if let Some(p) = &self.payloads[r as usize] {
                payloads += serde_json::to_vec(p).map_or(0, |b| b.len());
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
            tied.sort_by_key(|&r| self.ids[r as usize]);
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
        for (row, p) in self.payloads.iter().enumerate() {
            if let (true, Some(p)) = (self.is_alive(row as u32), p) {
                index.insert(row as u32, p);
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
        self.ids.len()
    }

    pub fn is_alive(&self, row: u32) -> bool {
        self.alive.get(row as usize / 64).is_some_and(|w| w >> (row % 64) & 1 == 1)
    }

    pub fn vector(&self, row: u32) -> &[f32] {
        let start = row as usize * self.dim;
        &self.vectors[start..start + self.dim]
    }

    fn kill_row(&mut self, row: u32) {
        debug_assert!(self.is_alive(row));
        if let Some(extras) = self.extras[row as usize].take() {
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
        let id = self.ids[row as usize];
        for (_, t) in &mut self.text {
            t.set(&id, None);
        }
        if let Some(p) = self.payloads[row as usize].take() {
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
        if let Some(&old) = self.id_to_row.get(&id) {
            self.kill_row(old);
        }
        let row = u32::try_from(self.ids.len()).expect("row count is bounded by ROWS_MAX");
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
        self.extras.push(extras.filter(|e| !e.is_empty()));
        self.ids.push(id);
        if let Some(p) = &payload {
            self.indexes.insert(row, p);
            for (key, t) in &mut self.text {
                if let Some(text) = text_at(key, p) {
                    t.set(&id, Some(&text));
                }
            }
        }
        self.payloads.push(payload.map(Box::new));
        if self.alive.len() * 64 <= row as usize {
            self.alive.push(0);
            self.searchable.push(0);
        }
        self.alive[row as usize / 64] |= 1u64 << (row % 64);
        if has_main {
            self.searchable[row as usize / 64] |= 1u64 << (row % 64);
        }
        self.n_alive += 1;
        self.id_to_row.insert(id, row);
    }

    fn delete_one(&mut self, id: &PointId) {
        if let Some(row) = self.id_to_row.remove(id) {
            self.kill_row(row);
        }
    }

    /// Changes the payload of a live point through `f`, keeping the indexes in step.
    fn edit_payload(&mut self, id: &PointId, f: impl FnOnce(&mut Payload)) -> bool {
        let Some(&row) = self.id_to_row.get(id) else { return false };
        let mut p = self.payloads[row as usize].take().unwrap_or_default();
        self.indexes.remove(row, &p);
        f(&mut p);
        self.indexes.insert(row, &p);
        for (key, t) in &mut self.text {
            t.set(id, text_at(key, &p).as_deref());
        }
        self.payloads[row as usize] = if p.is_empty() { None } else { Some(p) };
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
        for (row, p) in self.payloads.iter().enumerate() {
            if let (true, Some(p)) = (self.is_alive(row as u32), p) {
                if let Some(text) = text_at(key, p) {
                    t.set(&self.ids[row], Some(&text));
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
                crate::store::decode_row(vectors, i, &mut row);
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

    /// Drops dead rows, renumbering the live ones in id order, and rebuilds the indexes.
    pub fn compact_rows(&mut self) {
        let dim = self.dim;
        let mut vectors = self.vectors.empty_like(self.n_alive * dim);
        let mut ids = Vec::with_capacity(self.n_alive);
        let mut payloads = Vec::with_capacity(self.n_alive);
        let mut extras = Vec::with_capacity(self.n_alive);
        let mut id_to_row = BTreeMap::new();
        let mut searchable = vec![0u64; self.n_alive.div_ceil(64)];
        for (id, &row) in &self.id_to_row {
            let new_row = ids.len() as u32;
            vectors.extend_from_slice(self.vector(row));
            if self.is_searchable(row) {
                searchable[new_row as usize / 64] |= 1 << (new_row % 64);
            }
            ids.push(*id);
            payloads.push(self.payloads[row as usize].take());
            extras.push(self.extras[row as usize].take());
            id_to_row.insert(*id, new_row);
        }
        let n = ids.len();
        let mut alive = vec![0u64; n.div_ceil(64)];
        for r in 0..n {
            alive[r / 64] |= 1 << (r % 64);
        }
        for ix in self.sparse.values_mut() {
            *ix = SparseIndex::default();
        }
        for (r, e) in extras.iter().enumerate() {
            for (name, v) in e.iter().flat_map(|e| e.iter()) {
                if let (VectorData::Sparse(sv), Some(ix)) = (v, self.sparse.get_mut(name)) {
                    ix.insert(r as u32, sv);
                }
            }
        }
        let schema: Vec<FieldIndex> = self.indexes.fields.drain(..).map(|f| FieldIndex::new(f.key, f.kind)).collect();
        self.indexes.fields = schema;
        for (r, p) in payloads.iter().enumerate() {
            if let Some(p) = p {
                self.indexes.insert(r as u32, p);
            }
        }
        self.vectors = vectors;
        self.ids = ids;
        self.payloads = payloads;
        self.extras = extras;
        self.alive = alive;
        self.searchable = searchable;
        self.n_alive = n;
        self.id_to_row = id_to_row;
        self.generation += 1;
        self.base = None;
    }

    /// Rows that hold no live point.
    pub fn dead_rows(&self) -> usize {
        self.n_rows() - self.n_alive
    }

    /// Which rows a filter lets through: from index candidates when an index (or `has_id`)
    /// narrows the field, else by evaluating the filter on every live row.
    pub fn plan(&self, filter: Option<&Filter>) -> Plan {
        let Some(filter) = filter else { return Plan::AllLive };
        let (mut candidates, mut exact) = match self.indexes.candidates(filter) {
            Some((set, exact)) => (Some(set), exact),
            None => (None, false),
        };
        for c in &filter.must {
            let rows: Option<RoaringBitmap> = match c {
                Condition::HasId(ids) => Some(ids.iter().filter_map(|id| self.id_to_row.get(id).copied()).collect()),
                // Text conditions on a key with a full-text index: the index's matches.
                Condition::Field(f) => f.checks.iter().find_map(|check| {
                    let (q, phrase) = match check {
                        FieldCheck::Text(q) => (q, false),
                        FieldCheck::Phrase(q) => (q, true),
                        _ => return None,
                    };
                    let (_, t) = self.text.iter().find(|(k, _)| k.text == f.key.text)?;
                    let ids = t.matching(q, phrase)?;
                    Some(ids.iter().filter_map(|id| self.id_to_row.get(id).copied()).collect())
                }),
                _ => None,
            };
            if let Some(rows) = rows {
                // Text matches are re-checked by the filter's own tokeniser.
                exact &= matches!(c, Condition::HasId(_));
                candidates = Some(match candidates {
                    Some(set) => set & rows,
                    None => rows,
                });
            }
        }
        match candidates {
            // An exact candidate set is the answer (for live rows); otherwise each candidate is
            // checked against the whole filter.
            Some(set) if exact => Plan::List(set.iter().filter(|&r| self.is_alive(r)).collect()),
            Some(set) => Plan::List(set.iter().filter(|&r| self.is_alive(r) && self.row_matches(r, filter)).collect()),
            None => {
                let mut mask = vec![0u64; self.alive.len()];
                quiver_kernels::scan::for_each_allowed(Allowed::Mask(&self.alive), self.n_rows(), |r| {
                    if self.row_matches(r, filter) {
                        mask[r as usize / 64] |= 1 << (r % 64);
                    }
                });
                Plan::Mask(mask)
            }
        }
    }

    /// An estimate of how many live rows `filter` matches, from the filter evaluated on up to
    /// `ESTIMATE_SAMPLE` evenly spaced rows (about 20 us), capped by the size of the
    /// payload-index candidate set when an index covers the filter. Deterministic: the same
    /// state and filter give the same estimate. Used to choose between the graph and a scan.
    pub fn estimate(&self, filter: &Filter) -> usize {
        const ESTIMATE_SAMPLE: usize = 256;
        let n = self.n_rows();
        let step = n.div_ceil(ESTIMATE_SAMPLE).max(1);
        let (mut sampled, mut hits) = (0usize, 0usize);
        for r in (0..n as u32).step_by(step) {
            if self.is_alive(r) {
                sampled += 1;
                hits += self.row_matches(r, filter) as usize;
            }
        }
        if sampled == 0 {
            return 0;
        }
        (self.n_alive as f64 * hits as f64 / sampled as f64).ceil() as usize
    }

    pub fn row_matches(&self, row: u32, filter: &Filter) -> bool {
        static EMPTY: std::sync::OnceLock<Payload> = std::sync::OnceLock::new();
        let p = self.payloads[row as usize]
            .as_deref()
            .unwrap_or_else(|| EMPTY.get_or_init(Payload::new));
        filter.matches_point(self.ids[row as usize], p, &|name| self.has_vector(row, name))
    }

    /// [`State::plan`] for a search of the main vector: rows without one are left out.
    pub fn search_plan(&self, filter: Option<&Filter>) -> Plan {
        match self.plan(filter) {
            Plan::AllLive if self.n_no_main > 0 => Plan::AllSearchable,
            Plan::Mask(mut m) if self.n_no_main > 0 => {
                for (w, s) in m.iter_mut().zip(&self.searchable) {
                    *w &= s;
                }
                Plan::Mask(m)
            }
            Plan::List(mut l) if self.n_no_main > 0 => {
                l.retain(|&r| self.is_searchable(r));
                Plan::List(l)
            }
            plan => plan,
        }
    }

    /// Number of rows a plan lets through.
    pub fn plan_len(&self, plan: &Plan) -> usize {
        match plan {
            Plan::AllLive => self.n_alive,
            Plan::AllSearchable => self.n_searchable(),
            Plan::Mask(m) => m.iter().map(|w| w.count_ones() as usize).sum(),
            Plan::List(l) => l.len(),
        }
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
