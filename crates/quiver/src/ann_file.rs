//! The index file (`index.hnsw`): how a collection's graph is written and opened again.
//!
//! Written as an aligned blob (`quiver_storage::aligned`, twelve sections, each with its own
//! checksum) so that an open maps it and uses the graph and the codes in place
//! ([`Hnsw::from_mapped`]): opening costs the small sections, not the graph. Sections:
//! * 0-6: the graph and its codes ([`Hnsw::mapped_section_lens`]);
//! * 7: the base segment the rows below are numbered against (number, fingerprint, rows; or
//!   `u64::MAX` for none) and the codes' drift counts;
//! * 8: per node, its row in that base segment, or `NO_ROW`;
//! * 9: per node, its point id (17 bytes: tag, 16 bytes; tag `NO_ID` for none);
//! * 10: the nodes whose point is outside the base (node `u32` and id, 21 bytes each);
//! * 11: the base rows no node covers (`u32`), scanned exactly.
//!
//! An open of the same base (the common case: compaction and builds write the file against
//! the base they see) reads sections 0, 1, 3, 4, 7, 8, 10, 11 (checked), maps nodes to rows
//! from section 8 in place, and looks up only the nodes of section 10 by id. The large
//! sections used in place (level-0 lists, codes, norms, ids) are checked afterwards by
//! [`Ann::verify_mapped`] (a low-priority thread of the collection); damage found there drops
//! the graph, which is rebuilt: until then a damaged neighbour id is skipped by the search,
//! and every answer is rescored against the collection's vectors anyway.
//! An open of another base (a crash between a compaction and the index save) maps every node
//! by its id and checks its code against the point's vector, as before. Files written before
//! the aligned layout (plain blobs, `QVRHNSW1` version 1) are still read, by copying.

use super::*;
use crate::segment::{get_fixed_id, put_fixed_id, ID_BYTES};
use quiver_index::cells::Cells;
use quiver_storage::aligned::{self, AlignedBlob, AlignedWriter};
use quiver_storage::map::PrivateMap;

/// The id tag of a node without a point (one being added when the file was written).
const NO_ID: u8 = 0xff;
const SECTIONS: usize = quiver_index::persist::MAPPED_SECTIONS + 5;
const META: usize = 7;
const ROWS: usize = 8;
const IDS: usize = 9;
const LOOSE: usize = 10;
const BASE_TAIL: usize = 11;
/// Sections checked when the file opens; the others are checked by [`Ann::verify_mapped`].
const CHECKED_ON_OPEN: [usize; 8] = [0, 1, 3, 4, META, ROWS, LOOSE, BASE_TAIL];
const CHECKED_LATER: [usize; 4] = [2, 5, 6, IDS];

/// The large sections of the index file in use, not yet checked: `(offset, length,
/// checksum)` each, and the graph they belong to.
#[derive(Clone)]
pub(crate) struct Unverified {
    sections: Vec<(u64, u64, u32)>,
    /// The file as it was opened (checked through its map: a later save replaces the name).
    map: Arc<PrivateMap>,
    built: Arc<Built>,
}

impl Ann {
    /// Writes the index file (atomically replaced). Nodes are named by point id, and by row
    /// when the state's first rows are a known segment's (see [`crate::state::BaseId`]): then a
    /// process that opens the same segment maps them without looking anything up.
    pub fn save(&self, state: &RwLock<State>) -> Result<(), StorageError> {
        let retired = self.retired.lock();
        if *retired {
            return Ok(());
        }
        let Some(b) = self.built.read().clone() else { return Ok(()) };
        // Ids and rows under the state's read lock (lock order: state, map, graph); the
        // graph's sections after the state is released: writers wait for the ids only.
        let st = state.read();
        let map = b.map.read();
        let h = b.hnsw.read();
        if map.generation != st.generation() {
            // Rows were renumbered and the map not yet rebuilt: the next build saves.
            return Ok(());
        }
        let base = st.base();
        let nodes = h.len();
        let mut meta = Encoder::with_capacity(64);
        match base {
            Some(base) => {
                meta.u64(base.segment);
                meta.u32(base.checksum);
                meta.u64(base.rows as u64);
            }
            None => {
                meta.u64(u64::MAX);
                meta.u32(0);
                meta.u64(0);
            }
        }
        meta.bytes(&h.drift_bytes());
        let base_rows = base.map_or(0, |b| b.rows);
        let mut rows = Vec::with_capacity(4 * nodes);
        let mut ids = Vec::with_capacity(ID_BYTES * nodes);
        let mut loose = Vec::new();
        for node in 0..nodes {
            let row = map.node_row.get(node).copied().unwrap_or(NO_ROW);
            let in_base = (row as usize) < base_rows;
            rows.extend_from_slice(&(if in_base { row } else { NO_ROW }).to_le_bytes());
            if row != NO_ROW && (row as usize) < st.n_rows() {
                let id = st.id_at(row as usize);
                put_fixed_id(&mut ids, &id);
                if !in_base {
                    loose.extend_from_slice(&(node as u32).to_le_bytes());
                    put_fixed_id(&mut loose, &id);
                }
            } else {
                ids.push(NO_ID);
                ids.extend_from_slice(&[0; ID_BYTES - 1]);
            }
        }
        let mut base_tail = Vec::new();
        let uncovered = map
            .tail
            .iter()
            .copied()
            .chain(map.rows_seen as u32..base_rows.max(map.rows_seen) as u32);
        for r in uncovered.filter(|&r| (r as usize) < base_rows) {
            base_tail.extend_from_slice(&r.to_le_bytes());
        }
        drop(st);
        drop(map);
        // The graph is streamed from memory (or its own map) to the file under its read lock:
        // searches go on, inserts wait.
        let graph = h.mapped_section_lens();
        let mut lens = graph.to_vec();
        lens.extend([&meta.buf, &rows, &ids, &loose, &base_tail].map(|s| s.len() as u64));
        quiver_storage::fsio::replace_with(&self.path, |tmp| {
            let mut w = AlignedWriter::create(tmp, INDEX_MAGIC, &lens)?;
            h.write_mapped_sections(&mut |bytes| w.write(bytes))?;
            for s in [&meta.buf, &rows, &ids, &loose, &base_tail] {
                w.write(s)?;
            }
            w.finish().map(|_| ())
        })?;
        drop(h);
        *self.saved_base.lock() = base;
        Ok(())
    }

    /// Whether the index file should be written again because it does not name its nodes
    /// by the rows of the state's base segment (an open would look every node up).
    pub fn save_is_stale(&self, st: &State) -> bool {
        let built = self
            .built
            .read()
            .as_ref()
            .is_some_and(|b| b.map.read().generation == st.generation());
        built && st.base().is_some() && *self.saved_base.lock() != st.base()
    }

    /// Loads the index file, if any, and maps its nodes onto `st`'s rows. A missing file is not
    /// an error; an unreadable one is reported and ignored (the index is rebuilt).
    pub fn load(&self, st: &State) {
        if !self.config.enabled || !self.path.exists() {
            return;
        }
        match self.try_load(st) {
            Ok((built, _)) => *self.built.write() = Some(built),
            Err(e) => *self.last_error.lock() = Some(format!("index file ignored, it will be rebuilt: {e}")),
        }
    }

    /// Checks the large sections of the index file opened in place (see the module notes).
    /// Damage drops the graph (searches scan until it is rebuilt), is reported as the index's
    /// error, and is returned.
    pub fn verify_mapped(&self) -> Result<(), StorageError> {
        // Cloned, not taken: a second caller (the background check and `verify_data`) checks
        // too instead of returning before the first one knows.
        let Some(u) = self.unverified.lock().clone() else { return Ok(()) };
        for &(offset, len, crc) in &u.sections {
            let bytes = &u.map.bytes()[offset as usize..(offset + len) as usize];
            if let Err(e) = aligned::verify_section(&self.path, offset, bytes, crc) {
                let mut built = self.built.write();
                if built.as_ref().is_some_and(|b| Arc::ptr_eq(b, &u.built)) {
                    *built = None;
                    *self.last_error.lock() = Some(format!("index file damaged, the index is rebuilt: {e}"));
                }
                *self.unverified.lock() = None;
                return Err(e);
            }
        }
        let mut left = self.unverified.lock();
        if left.as_ref().is_some_and(|l| Arc::ptr_eq(&l.built, &u.built)) {
            *left = None;
        }
        Ok(())
    }

    /// Puts the index opened in place where the collection's placement wants it: the graph
    /// (levels and lists) and the codes each copied into memory when `graph` / `codes`, else
    /// left mapped, read from the page cache and the disk as searches need them
    /// (`hnsw_config.on_disk`, `quantization_config.*.always_ram`). Searches go on meanwhile;
    /// inserts wait for the copy.
    pub fn place(&self, graph: bool, codes: bool) {
        let Some(b) = self.built.read().clone() else { return };
        let h = b.hnsw.upgradable_read();
        if !h.is_mapped() {
            return;
        }
        let copy = h.copy_mapped(graph, codes);
        let mut h = parking_lot::RwLockUpgradableReadGuard::upgrade(h);
        h.install(copy);
        if h.is_mapped() {
            h.advise_random();
        }
    }

    /// Whether an index file opened in place still has sections to check.
    pub fn has_unverified(&self) -> bool {
        self.unverified.lock().is_some()
    }

    /// The index file's graph mapped onto `st`, and how many nodes were mapped by their saved
    /// row (the rest by id, each checked against its row's vector).
    pub(super) fn try_load(&self, st: &State) -> Result<(Arc<Built>, usize), IndexFileError> {
        let map = Arc::new(PrivateMap::open(&self.path)?);
        if !aligned::is_aligned(INDEX_MAGIC, map.bytes()) {
            return self.load_plain(st, map.bytes()).map(|(b, n)| (Arc::new(b), n));
        }
        let blob = AlignedBlob::open(&self.path, INDEX_MAGIC, map.bytes())?;
        if blob.len() != SECTIONS {
            return Err(IndexFileError::Sections(blob.len()));
        }
        for i in CHECKED_ON_OPEN {
            blob.verify(&self.path, i)?;
        }
        let spans: Vec<(usize, usize)> = (0..quiver_index::persist::MAPPED_SECTIONS)
            .map(|i| (blob.offset(i) as usize, blob.section(i).len()))
            .collect();
        let mut hnsw = Hnsw::from_mapped(map.clone(), &spans)?;
        self.check_params(&hnsw)?;
        let n = hnsw.len();
        let mut meta = Decoder::new(blob.section(META));
        let (segment, checksum, base_rows) = (meta.u64()?, meta.u32()?, meta.u64()? as usize);
        hnsw.restore_drift(meta.bytes()?)?;
        meta.finish()?;
        if blob.section(ROWS).len() != 4 * n || blob.section(IDS).len() != ID_BYTES * n {
            return Err(IndexFileError::NodeIds(format!("the row and id sections do not hold {n} nodes")));
        }
        let saved = crate::state::BaseId {
            segment,
            checksum,
            rows: base_rows,
        };
        let same_base = segment != u64::MAX && st.base() == Some(saved) && base_rows <= st.n_rows();
        let (map_rows, by_row) = if same_base {
            *self.saved_base.lock() = Some(saved);
            self.rows_in_place(st, &hnsw, &blob, &map, base_rows)?
        } else {
            blob.verify(&self.path, IDS)?;
            let ids = blob.section(IDS);
            let nodes = (0..n).map(|node| {
                let b = &ids[node * ID_BYTES..(node + 1) * ID_BYTES];
                (b[0] != NO_ID)
                    .then(|| get_fixed_id(b))
                    .transpose()
                    .map_err(IndexFileError::NodeIds)
            });
            (self.rows_by_id(st, &hnsw, nodes)?, 0)
        };
        let built = Arc::new(Built {
            hnsw: RwLock::new(hnsw),
            map: RwLock::new(map_rows),
        });
        let later = CHECKED_LATER
            .iter()
            .filter(|&&i| same_base || i != IDS)
            .map(|&i| (blob.offset(i), blob.section(i).len() as u64, blob.checksum(i)))
            .collect();
        *self.unverified.lock() = Some(Unverified {
            sections: later,
            map,
            built: built.clone(),
        });
        Ok((built, by_row))
    }

    fn check_params(&self, hnsw: &Hnsw) -> Result<(), IndexFileError> {
        let (p, c) = (hnsw.params(), hnsw.codes());
        if p.m != self.config.m || c.quantization() != self.config.quantization || c.dim() != self.dim || c.kind() != self.kind {
            return Err(IndexFileError::OtherParameters);
        }
        Ok(())
    }

    /// Nodes mapped to rows of the base they were saved against: section 8 used in place,
    /// the nodes outside the base looked up by id (and checked against their vector).
    fn rows_in_place(
        &self,
        st: &State,
        hnsw: &Hnsw,
        blob: &AlignedBlob<'_>,
        map: &Arc<PrivateMap>,
        base_rows: usize,
    ) -> Result<(NodeMap, usize), IndexFileError> {
        let n = hnsw.len();
        let mut node_row = Cells::<u32>::mapped(map.clone(), blob.offset(ROWS) as usize, n)
            .ok_or_else(|| IndexFileError::NodeIds("the row section cannot be used in place".into()))?;
        let loose = blob.section(LOOSE);
        if !loose.len().is_multiple_of(4 + ID_BYTES) {
            return Err(IndexFileError::NodeIds("the loose-node section is not whole entries".into()));
        }
        let mut covered = std::collections::HashSet::new();
        for entry in loose.chunks_exact(4 + ID_BYTES) {
            let node = u32::from_le_bytes(entry[..4].try_into().expect("4 bytes"));
            let id = get_fixed_id(&entry[4..]).map_err(IndexFileError::NodeIds)?;
            if node as usize >= n || node_row[node as usize] != NO_ROW {
                return Err(IndexFileError::NodeIds(format!("loose node {node} is not a node outside the base")));
            }
            let row = st
                .row_of(&id)
                .filter(|&r| r as usize >= base_rows && !covered.contains(&r) && hnsw.codes().matches(node, st.vector(r)));
            if let Some(r) = row {
                covered.insert(r);
                node_row.to_mut()[node as usize] = r;
            }
        }
        let base_tail = blob.section(BASE_TAIL);
        if !base_tail.len().is_multiple_of(4) {
            return Err(IndexFileError::NodeIds("the base-tail section is not whole rows".into()));
        }
        let tail = base_tail
            .chunks_exact(4)
            .map(|c| u32::from_le_bytes(c.try_into().expect("4 bytes")))
            .filter(|&r| (r as usize) < base_rows && st.is_searchable(r))
            .chain((base_rows as u32..st.n_rows() as u32).filter(|r| st.is_searchable(*r) && !covered.contains(r)))
            .collect();
        let by_row = n - loose.len() / (4 + ID_BYTES);
        let map = NodeMap {
            node_row,
            tail,
            rows_seen: st.n_rows(),
            generation: st.generation(),
        };
        Ok((map, by_row))
    }

    /// Nodes mapped to rows by their point ids (`None`: no point), each checked against the
    /// row's vector; every row no node covers is in the tail.
    fn rows_by_id(
        &self,
        st: &State,
        hnsw: &Hnsw,
        ids: impl Iterator<Item = Result<Option<PointId>, IndexFileError>>,
    ) -> Result<NodeMap, IndexFileError> {
        let mut node_row = Vec::with_capacity(hnsw.len());
        let mut covered = vec![0u64; st.n_rows().div_ceil(64)];
        for (node, id) in ids.enumerate() {
            let row = id?
                .and_then(|id| st.row_of(&id))
                .filter(|&r| !mask_has(&covered, r) && hnsw.codes().matches(node as u32, st.vector(r)));
            if let Some(r) = row {
                covered[r as usize / 64] |= 1 << (r % 64);
            }
            node_row.push(row.unwrap_or(NO_ROW));
        }
        let tail = (0..st.n_rows() as u32)
            .filter(|&r| st.is_searchable(r) && !mask_has(&covered, r))
            .collect();
        Ok(NodeMap {
            node_row: node_row.into(),
            tail,
            rows_seen: st.n_rows(),
            generation: st.generation(),
        })
    }
}

impl Ann {
    /// An index file of the plain layout (blob version 1, written before the aligned one):
    /// decoded and copied into memory, every node mapped by its id. The next save writes the
    /// aligned layout.
    fn load_plain(&self, st: &State, image: &[u8]) -> Result<(Built, usize), IndexFileError> {
        let sections = blob::decode(&self.path, INDEX_MAGIC, image)?;
        // Six sections: a file of an older version, without rows and drift counts.
        if !(6..=7).contains(&sections.len()) {
            return Err(IndexFileError::Sections(sections.len()));
        }
        let mut hnsw = Hnsw::from_sections(&sections[..5])?;
        self.check_params(&hnsw)?;
        let drift_saved = match sections.get(6) {
            Some(section) => {
                let mut r = Decoder::new(section);
                let _base = (r.u64()?, r.u32()?, r.u64()?);
                hnsw.restore_drift(r.bytes()?)?;
                true
            }
            None => false,
        };
        let mut d = Decoder::new(sections[5]);
        let n = d.u64()? as usize;
        if n != hnsw.len() {
            return Err(IndexFileError::NodeIds(format!("{n} ids for {} nodes", hnsw.len())));
        }
        let mut ids = Vec::with_capacity(n);
        for _ in 0..n {
            ids.push(if d.u8()? == 1 { Some(get_id(&mut d)?) } else { None });
        }
        d.finish()?;
        let map = self.rows_by_id(st, &hnsw, ids.into_iter().map(Ok))?;
        if !drift_saved {
            // An older file without drift counts: count the vectors again.
            for &r in map.node_row.iter().filter(|&&r| r != NO_ROW) {
                hnsw.observe(st.vector(r));
            }
        }
        let built = Built {
            hnsw: RwLock::new(hnsw),
            map: RwLock::new(map),
        };
        Ok((built, 0))
    }
}
