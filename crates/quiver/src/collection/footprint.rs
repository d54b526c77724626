//! Where a collection's bytes are: in memory now, and on disk, by component. Cheap enough for
//! an info screen on any size: nothing here reads every point (payload sizes are sampled,
//! resident pages are asked of the kernel).

use super::{segment_path, Collection};

/// Bytes of one component of a collection.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct ComponentBytes {
    /// `vectors` (the main vectors' working copy: in memory, in a scratch file, or read in
    /// place from the base segment), `codes` (the graph's quantized or float codes), `graph`
    /// (the HNSW lists and node map), `scan_codes` (int8 codes that large exact scans read
    /// first, made by the first one), `payloads` (decoded in memory; on disk, the base
    /// segment's payloads, read in place), `payload_indexes`, `segments` (the rest of the
    /// segment files) or `wal`.
    pub name: &'static str,
    /// Bytes in memory now (for a mapped file: its resident pages; payloads and their indexes
    /// are estimates).
    pub memory: u64,
    /// Bytes on disk.
    pub disk: u64,
}

/// A collection's bytes by component, and where its main vectors live.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Footprint {
    /// One entry per component, in a fixed order.
    pub components: Vec<ComponentBytes>,
    /// The main vectors are kept on disk (the collection's `on_disk` setting).
    pub vectors_on_disk: bool,
    /// Why vectors meant for disk are in memory instead (the disk refused to grow their file).
    pub vectors_fallback: Option<String>,
}

impl Footprint {
    /// Total bytes in memory.
    pub fn memory(&self) -> u64 {
        self.components.iter().map(|c| c.memory).sum()
    }

    /// Total bytes on disk.
    pub fn disk(&self) -> u64 {
        self.components.iter().map(|c| c.disk).sum()
    }

    /// One component by name.
    pub fn get(&self, name: &str) -> Option<&ComponentBytes> {
        self.components.iter().find(|c| c.name == name)
    }
}

fn file_len(path: &std::path::Path) -> u64 {
    std::fs::metadata(path).map_or(0, |m| m.len())
}

impl Collection {
    /// Bytes in memory and on disk, by component (`quiver info`, `GET /collections/{name}`).
    pub fn footprint(&self) -> Footprint {
        let (segments, wal) = {
            let w = self.inner.writer.lock();
            let seg: u64 = w
                .manifest
                .segments
                .iter()
                .map(|&no| file_len(&segment_path(&self.inner.dir, no)))
                .sum();
            (seg, w.wal.file_bytes())
        };
        let (vectors, on_disk, fallback, payloads, indexes, (base_vectors, base_payloads), scan_codes) = {
            let st = self.inner.state.read();
            let (fp, on_disk, why) = st.vectors_footprint();
            let (payloads, indexes) = st.payload_memory();
            (fp, on_disk, why, payloads, indexes, st.base_bytes_in_place(), st.scan_codes_bytes())
        };
        // What the base segment holds and is read in place is counted with its component.
        let segments = segments.saturating_sub((base_vectors + base_payloads) as u64);
        let (codes, graph, index_file) = self.inner.ann.footprint();
        let c = |name, memory: usize, disk: u64| ComponentBytes {
            name,
            memory: memory as u64,
            disk,
        };
        Footprint {
            components: vec![
                c("vectors", vectors.memory, (vectors.disk + base_vectors) as u64),
                c("codes", codes, 0),
                c("graph", graph, index_file),
                c("scan_codes", scan_codes, 0),
                c("payloads", payloads, base_payloads as u64),
                c("payload_indexes", indexes, 0),
                c("segments", 0, segments),
                c("wal", 0, wal),
            ],
            vectors_on_disk: on_disk,
            vectors_fallback: fallback,
        }
    }
}
