//! A collection's rows apart from their main vectors: ids, payloads, named vectors, and the map
//! from a live point's id to its row.
//!
//! Rows `0..base_len()` may be a mapped base segment's (`segment::BaseSegment`: sorted ids, no
//! tombstones): their ids are read from the map (a binary search finds one), their payloads and
//! named vectors are decoded the first time they are asked for and kept (an edit replaces the
//! kept value). Nothing about them is read when the base is attached, so attaching is constant
//! time. Rows from `base_len()` on (the *tail*: later segments, the WAL, new writes) are held
//! in memory, their live ids in a `BTreeMap`.
//!
//! Invariants: a live id is in at most one place: a base row (its liveness is the caller's
//! bitmask) or the tail map. Overwriting or deleting a base point kills its base row (the
//! caller's mask) and never touches the map; the tail map holds only tail rows.

use crate::segment::BaseSegment;
use crate::types::{Payload, PointId};
use crate::vector_model::NamedVectors;
use std::borrow::Cow;
use std::collections::BTreeMap;
use std::sync::{Arc, OnceLock};

/// Values of base rows, decoded on first use: chunks of cells allocated when first touched, so
/// an untouched base costs one word per chunk.
#[derive(Debug)]
struct Lazy<T> {
    chunks: Vec<OnceLock<Chunk<T>>>,
}

/// One chunk's cells: unset until decoded, then the row's value (`None`: it has none).
type Chunk<T> = Box<[OnceLock<Option<Box<T>>>]>;

const CHUNK: usize = 4096;

impl<T> Lazy<T> {
    fn new(n: usize) -> Lazy<T> {
        Lazy {
            chunks: (0..n.div_ceil(CHUNK)).map(|_| OnceLock::new()).collect(),
        }
    }

    fn chunk(&self, i: usize) -> &[OnceLock<Option<Box<T>>>] {
        self.chunks[i / CHUNK].get_or_init(|| (0..CHUNK).map(|_| OnceLock::new()).collect())
    }

    fn get(&self, i: usize, decode: impl FnOnce() -> Option<T>) -> Option<&T> {
        self.chunk(i)[i % CHUNK].get_or_init(|| decode().map(Box::new)).as_deref()
    }

    /// The cell of row `i` if it was decoded (or edited) before.
    fn peek(&self, i: usize) -> Option<Option<&T>> {
        let cell = self.chunks[i / CHUNK].get()?.get(i % CHUNK)?.get()?;
        Some(cell.as_deref())
    }

    fn get_mut(&mut self, i: usize, decode: impl FnOnce() -> Option<T>) -> &mut Option<Box<T>> {
        self.chunk(i);
        let chunk = self.chunks[i / CHUNK].get_mut().expect("initialised above");
        let cell = &mut chunk[i % CHUNK];
        if cell.get().is_none() {
            let _ = cell.set(decode().map(Box::new));
        }
        cell.get_mut().expect("set above")
    }

    /// Cells decoded so far (for the footprint).
    fn decoded(&self) -> impl Iterator<Item = &T> {
        self.chunks
            .iter()
            .filter_map(|c| c.get())
            .flat_map(|c| c.iter().filter_map(|cell| cell.get().and_then(|v| v.as_deref())))
    }
}

#[derive(Debug, Default)]
pub(crate) struct Rows {
    base: Option<Arc<BaseSegment>>,
    base_payloads: Option<Lazy<Payload>>,
    base_named: Option<Lazy<NamedVectors>>,
    /// The tail: row `base_len() + i` is entry `i`.
    ids: Vec<PointId>,
    /// Boxed: an empty slot is one word (an unboxed map is 72 bytes a row, with or without
    /// a payload: 340 MB at 5 million points).
    payloads: Vec<Option<Box<Payload>>>,
    /// Each row's named vectors (`None`: none, or a dead row).
    extras: Vec<Option<Box<NamedVectors>>>,
    /// Live tail points.
    tail_map: BTreeMap<PointId, u32>,
    /// The first base payload or named vector that could not be decoded (the row reads as
    /// having none; `info` reports the damage).
    damage: OnceLock<String>,
    /// `on_disk_payload`: a base payload read is decoded from the segment each time, not kept
    /// (only edited ones live in memory).
    payloads_on_disk: bool,
}

impl Rows {
    /// Rows over a mapped base (none yet in the tail).
    pub fn with_base(base: Arc<BaseSegment>) -> Rows {
        let n = base.len();
        Rows {
            base_payloads: Some(Lazy::new(n)),
            base_named: Some(Lazy::new(n)),
            base: Some(base),
            ..Rows::default()
        }
    }

    pub fn base(&self) -> Option<&Arc<BaseSegment>> {
        self.base.as_ref()
    }

    /// Rows of the base (0 without one).
    pub fn base_len(&self) -> usize {
        self.base.as_ref().map_or(0, |b| b.len())
    }

    pub fn len(&self) -> usize {
        self.base_len() + self.ids.len()
    }

    pub fn id(&self, row: usize) -> PointId {
        match row.checked_sub(self.base_len()) {
            Some(t) => self.ids[t],
            None => self.base.as_ref().expect("a base row").id(row),
        }
    }

    fn note<T>(&self, r: Result<Option<T>, quiver_storage::StorageError>) -> Option<T> {
        r.unwrap_or_else(|e| {
            let _ = self.damage.set(e.to_string());
            None
        })
    }

    /// Keeps base payloads on disk (`true`: decoded on every read, never kept) or in memory
    /// once read (`false`, the default).
    pub fn set_payloads_on_disk(&mut self, on_disk: bool) {
        self.payloads_on_disk = on_disk;
    }

    pub fn payload(&self, row: usize) -> Option<Cow<'_, Payload>> {
        match row.checked_sub(self.base_len()) {
            Some(t) => self.payloads[t].as_deref().map(Cow::Borrowed),
            None => {
                let base = self.base.as_ref().expect("a base row");
                let lazy = self.base_payloads.as_ref()?;
                if self.payloads_on_disk {
                    return match lazy.peek(row) {
                        Some(kept) => kept.map(Cow::Borrowed),
                        None => self.note(base.payload(row)).map(Cow::Owned),
                    };
                }
                lazy.get(row, || self.note(base.payload(row))).map(Cow::Borrowed)
            }
        }
    }

    /// The payload slot of a row, for an edit (a base row's payload is decoded first).
    pub fn payload_mut(&mut self, row: usize) -> &mut Option<Box<Payload>> {
        let b = self.base_len();
        let (base, damage) = (self.base.clone(), &self.damage);
        slot_mut(&mut self.payloads, self.base_payloads.as_mut(), b, row, damage, |r| {
            base.as_ref().expect("a base row").payload(r)
        })
    }

    pub fn named(&self, row: usize) -> Option<&NamedVectors> {
        match row.checked_sub(self.base_len()) {
            Some(t) => self.extras[t].as_deref(),
            None => {
                let base = self.base.as_ref().expect("a base row");
                if !base.has_named() {
                    return None;
                }
                self.base_named.as_ref()?.get(row, || self.note(base.named(row)))
            }
        }
    }

    /// The named-vector slot of a row, for removal (a base row's are decoded first).
    pub fn named_mut(&mut self, row: usize) -> &mut Option<Box<NamedVectors>> {
        let b = self.base_len();
        let (base, damage) = (self.base.clone(), &self.damage);
        slot_mut(&mut self.extras, self.base_named.as_mut(), b, row, damage, |r| {
            base.as_ref().expect("a base row").named(r)
        })
    }

    /// Appends a tail row and returns its number (the caller maps its id with `map`).
    pub fn push(&mut self, id: PointId, payload: Option<Box<Payload>>, extras: Option<Box<NamedVectors>>) -> u32 {
        let row = u32::try_from(self.len()).expect("row count is bounded by ROWS_MAX");
        self.ids.push(id);
        self.payloads.push(payload);
        self.extras.push(extras);
        row
    }

    /// Maps a live tail point's id to its row.
    pub fn map(&mut self, id: PointId, row: u32) {
        debug_assert!(row as usize >= self.base_len());
        self.tail_map.insert(id, row);
    }

    /// Forgets a tail point's id (deleted or overwritten).
    pub fn unmap(&mut self, id: &PointId) {
        self.tail_map.remove(id);
    }

    /// The row of `id` if it is live: the tail map, else the base row when `alive` says so.
    pub fn row_of(&self, id: &PointId, alive: impl Fn(u32) -> bool) -> Option<u32> {
        if let Some(&r) = self.tail_map.get(id) {
            return Some(r);
        }
        let r = self.base.as_ref()?.find(id)? as u32;
        alive(r).then_some(r)
    }

    /// Live points in id order from `start` (inclusive), with their rows: the base's live
    /// rows and the tail map, merged.
    pub fn ids_from<'a>(&'a self, start: Option<&PointId>, alive: impl Fn(u32) -> bool + 'a) -> impl Iterator<Item = (PointId, u32)> + 'a {
        let from = match (start, &self.base) {
            (Some(s), Some(b)) => b.lower_bound(s),
            _ => 0,
        };
        let base = (from..self.base_len())
            .map(|r| r as u32)
            .filter(move |&r| alive(r))
            .map(|r| (self.id(r as usize), r));
        let tail = match start {
            Some(s) => self.tail_map.range(s..),
            None => self.tail_map.range(..),
        }
        .map(|(id, &r)| (*id, r));
        Merge {
            a: base.peekable(),
            b: tail.peekable(),
        }
    }

    /// Bytes of payloads held in memory: decoded base payloads and tail payloads, each by
    /// `size`, plus the tail's slots.
    pub fn payload_bytes(&self, size: impl Fn(&Payload) -> usize, sample_step: usize) -> (usize, usize) {
        let (mut sampled, mut bytes) = (0usize, 0usize);
        for p in self.payloads.iter().step_by(sample_step.max(1)) {
            sampled += 1;
            bytes += p.as_deref().map_or(0, &size);
        }
        let tail = (bytes * self.payloads.len()).checked_div(sampled).unwrap_or(0);
        let decoded: usize = self.base_payloads.iter().flat_map(|l| l.decoded()).map(size).sum();
        (tail + decoded, self.payloads.len() * std::mem::size_of::<Option<Box<Payload>>>())
    }

    /// Records damage found in the base (the first is kept).
    pub fn note_damage(&self, e: impl std::fmt::Display) {
        let _ = self.damage.set(e.to_string());
    }

    /// The first damage found while decoding base rows.
    pub fn damage(&self) -> Option<&str> {
        self.damage.get().map(String::as_str)
    }
}

/// A row's slot: in the tail vector, or a base row's lazy cell (decoded first by `decode`;
/// damage is noted and reads as none).
fn slot_mut<'a, T>(
    tail: &'a mut [Option<Box<T>>],
    lazy: Option<&'a mut Lazy<T>>,
    base_len: usize,
    row: usize,
    damage: &OnceLock<String>,
    decode: impl FnOnce(usize) -> Result<Option<T>, quiver_storage::StorageError>,
) -> &'a mut Option<Box<T>> {
    match row.checked_sub(base_len) {
        Some(t) => &mut tail[t],
        None => lazy.expect("a base").get_mut(row, || {
            decode(row).unwrap_or_else(|e| {
                let _ = damage.set(e.to_string());
                None
            })
        }),
    }
}

/// Two id-sorted iterators merged (their ids are disjoint).
struct Merge<A: Iterator<Item = (PointId, u32)>, B: Iterator<Item = (PointId, u32)>> {
    a: std::iter::Peekable<A>,
    b: std::iter::Peekable<B>,
}

impl<A: Iterator<Item = (PointId, u32)>, B: Iterator<Item = (PointId, u32)>> Iterator for Merge<A, B> {
    type Item = (PointId, u32);

    fn next(&mut self) -> Option<(PointId, u32)> {
        match (self.a.peek(), self.b.peek()) {
            (Some(x), Some(y)) if x.0 <= y.0 => self.a.next(),
            (Some(_), Some(_)) => self.b.next(),
            (Some(_), None) => self.a.next(),
            (None, _) => self.b.next(),
        }
    }
}
