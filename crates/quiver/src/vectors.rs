//! The growable row-major matrix that holds a collection's vectors in memory.
//!
//! Why not a `Vec<f32>`: an exact scan streams the whole matrix for every query, and with 4 KiB
//! pages a 150 MB matrix costs tens of thousands of TLB misses per scan. Large matrices here live
//! in an anonymous memory map advised for transparent huge pages (`MADV_HUGEPAGE`), which made
//! single-query scans of 100,000 x 384 vectors about 25% faster on our 2-core machine
//! (`quiver bench exact`, glibc's huge-page tunable on vs off). Small matrices stay in a `Vec`.
//!
//! A collection whose main vectors are kept on disk (Qdrant's `vectors.on_disk`) holds its
//! matrix in a [`ScratchMap`] instead: a map of an unnamed file in the collection's folder. The
//! kernel reads its pages in on demand and writes them out under memory pressure, so the matrix
//! may be larger than the memory the process is allowed; the durable copy of every vector stays
//! in the segments and the WAL. If the disk refuses to grow the file (full), the matrix moves
//! to memory and says so ([`VectorBuf::fallback`]): answers never depend on the scratch file.

use memmap2::{MmapMut, MmapOptions};
use quiver_storage::map::{self, ScratchMap};
use std::ops::Deref;
use std::path::{Path, PathBuf};

/// Matrices at least this large (in bytes) are memory-mapped and advised for huge pages.
const HUGE_BYTES_MIN: usize = 8 << 20;

#[derive(Debug)]
enum Buf {
    Heap(Vec<f32>),
    /// `len` floats in use at the start of the map.
    Mapped {
        map: MmapMut,
        len: usize,
    },
    /// `len` floats in use at the start of a map of an unnamed file in `dir` (made on the first
    /// reserve).
    Disk {
        dir: PathBuf,
        map: Option<ScratchMap>,
        len: usize,
    },
}

/// An append-only (until cleared) buffer of `f32`.
#[derive(Debug)]
pub(crate) struct VectorBuf {
    buf: Buf,
    /// Why a buffer meant for disk lives in memory (the disk refused to grow its file).
    fallback: Option<String>,
}

impl Default for VectorBuf {
    fn default() -> VectorBuf {
        VectorBuf {
            buf: Buf::Heap(Vec::new()),
            fallback: None,
        }
    }
}

/// Where a buffer's floats live and how many bytes of them are in memory now.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub(crate) struct Footprint {
    /// Bytes in memory: the heap or anonymous map in use, or a disk map's resident pages.
    pub memory: usize,
    /// Bytes of the disk file backing the buffer (0 in memory).
    pub disk: usize,
}

fn floats(map: &MmapMut) -> &[f32] {
    // A map starts on a page boundary, so it is aligned for f32; its length is a multiple of 4.
    bytemuck::cast_slice(&map[..])
}

fn floats_mut(map: &mut MmapMut) -> &mut [f32] {
    bytemuck::cast_slice_mut(&mut map[..])
}

impl VectorBuf {
    pub fn new() -> VectorBuf {
        VectorBuf::default()
    }

    #[cfg(test)]
    pub fn with_capacity(n: usize) -> VectorBuf {
        let mut b = VectorBuf::new();
        b.reserve(n);
        b
    }

    /// An empty buffer whose floats will live in a scratch file in `dir`.
    pub fn on_disk(dir: &Path) -> VectorBuf {
        VectorBuf {
            buf: Buf::Disk {
                dir: dir.to_path_buf(),
                map: None,
                len: 0,
            },
            fallback: None,
        }
    }

    /// An empty buffer placed as this one is, with room for `n` floats.
    pub fn empty_like(&self, n: usize) -> VectorBuf {
        let mut b = match &self.buf {
            Buf::Disk { dir, .. } if self.fallback.is_none() => VectorBuf::on_disk(dir),
            _ => VectorBuf::new(),
        };
        b.reserve(n);
        b
    }

    /// Whether the floats are meant to live on disk, and why they do not if they do not.
    pub fn on_disk_state(&self) -> (bool, Option<&str>) {
        match &self.buf {
            Buf::Disk { .. } => (true, None),
            _ => (self.fallback.is_some(), self.fallback.as_deref()),
        }
    }

    /// Where the floats in use live, in bytes.
    pub fn footprint(&self) -> Footprint {
        match &self.buf {
            Buf::Heap(v) => Footprint {
                memory: v.capacity() * 4,
                disk: 0,
            },
            Buf::Mapped { map, .. } => Footprint {
                memory: map::resident_bytes(&map[..]).unwrap_or(map.len()),
                disk: 0,
            },
            Buf::Disk { map: None, .. } => Footprint::default(),
            Buf::Disk { map: Some(m), .. } => Footprint {
                memory: map::resident_bytes(m.bytes()).unwrap_or(0),
                disk: m.len(),
            },
        }
    }

    pub fn len(&self) -> usize {
        match &self.buf {
            Buf::Heap(v) => v.len(),
            Buf::Mapped { len, .. } | Buf::Disk { len, .. } => *len,
        }
    }

    fn capacity(&self) -> usize {
        match &self.buf {
            Buf::Heap(v) => v.capacity(),
            Buf::Mapped { map, .. } => map.len() / 4,
            Buf::Disk { map, .. } => map.as_ref().map_or(0, |m| m.len() / 4),
        }
    }

    /// Makes room for `additional` more floats.
    pub fn reserve(&mut self, additional: usize) {
        let need = self.len() + additional;
        if need <= self.capacity() {
            return;
        }
        let doubled = self.capacity_hint();
        if let Buf::Disk { dir, map, .. } = &mut self.buf {
            let bytes = need.max(doubled) * 4;
            let grown = match map {
                Some(m) => m.grow(bytes),
                None => ScratchMap::new(dir, bytes).map(|m| *map = Some(m)),
            };
            match grown {
                Ok(()) => return,
                Err(e) => {
                    // The disk is full or refuses: keep the vectors in memory, and say why.
                    self.fallback = Some(e.to_string());
                    self.make_heap().reserve(additional);
                    return;
                }
            }
        }
        if need * 4 < HUGE_BYTES_MIN {
            if let Buf::Heap(v) = &mut self.buf {
                v.reserve(additional);
                return;
            }
        }
        let cap_floats = need.max(self.capacity() * 2);
        // Round up to whole 2 MiB huge pages.
        let bytes = (cap_floats * 4).div_ceil(2 << 20) * (2 << 20);
        let map = match MmapOptions::new().len(bytes).map_anon() {
            Ok(m) => m,
            Err(_) => {
                // No mapping (address space or limits): fall back to the heap.
                self.make_heap().reserve(additional);
                return;
            }
        };
        #[cfg(target_os = "linux")]
        {
            // Advice only: without transparent huge pages this changes nothing.
            let _ = map.advise(memmap2::Advice::HugePage);
        }
        let mut map = map;
        let len = self.len();
        floats_mut(&mut map)[..len].copy_from_slice(&self[..]);
        self.buf = Buf::Mapped { map, len };
    }

    /// Growth doubles the capacity (amortised appends).
    fn capacity_hint(&self) -> usize {
        self.capacity() * 2
    }

    fn make_heap(&mut self) -> &mut Vec<f32> {
        if !matches!(self.buf, Buf::Heap(_)) {
            let v = self[..].to_vec();
            self.buf = Buf::Heap(v);
        }
        match &mut self.buf {
            Buf::Heap(v) => v,
            _ => unreachable!("converted above"),
        }
    }

    pub fn extend_from_slice(&mut self, values: &[f32]) {
        self.reserve(values.len());
        match &mut self.buf {
            Buf::Heap(v) => v.extend_from_slice(values),
            Buf::Mapped { map, len } => {
                floats_mut(map)[*len..*len + values.len()].copy_from_slice(values);
                *len += values.len();
            }
            Buf::Disk { map, len, .. } => {
                if values.is_empty() {
                    return;
                }
                let m = map.as_mut().expect("reserved above");
                let floats: &mut [f32] = bytemuck::cast_slice_mut(m.bytes_mut());
                floats[*len..*len + values.len()].copy_from_slice(values);
                *len += values.len();
            }
        }
    }
}

impl Deref for VectorBuf {
    type Target = [f32];
    fn deref(&self) -> &[f32] {
        match &self.buf {
            Buf::Heap(v) => v,
            Buf::Mapped { map, len } => &floats(map)[..*len],
            Buf::Disk { map: None, .. } => &[],
            Buf::Disk { map: Some(m), len, .. } => &bytemuck::cast_slice::<u8, f32>(m.bytes())[..*len],
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Against a Vec model, across the heap-to-map switch and map regrowth.
    #[test]
    fn behaves_like_a_vec() {
        let mut model = Vec::new();
        let mut buf = VectorBuf::new();
        let mut x = 0.0f32;
        for round in 0..40 {
            let chunk: Vec<f32> = (0..(round * 37_000 + 3))
                .map(|_| {
                    x += 0.5;
                    x
                })
                .collect();
            model.extend_from_slice(&chunk);
            buf.extend_from_slice(&chunk);
            assert_eq!(buf.len(), model.len());
        }
        assert!(matches!(buf.buf, Buf::Mapped { .. }), "large buffers are mapped");
        assert_eq!(&buf[..], &model[..]);
        let dir = tempfile::tempdir().unwrap();
        let mut disk = VectorBuf::on_disk(dir.path());
        assert!(disk.is_empty());
        let mut model = Vec::new();
        for round in 0..30 {
            let chunk: Vec<f32> = (0..(round * 41_000 + 5)).map(|i| (i + round) as f32).collect();
            model.extend_from_slice(&chunk);
            disk.extend_from_slice(&chunk);
            assert_eq!(&disk[..], &model[..]);
        }
        let fp = disk.footprint();
        assert!(fp.disk >= model.len() * 4, "{fp:?}");
        assert_eq!(disk.on_disk_state(), (true, None));
        let mut again = disk.empty_like(10);
        again.extend_from_slice(&[1.0]);
        assert!(matches!(again.buf, Buf::Disk { .. }), "placement carries over");
        // Nothing named is left in the folder.
        assert_eq!(std::fs::read_dir(dir.path()).unwrap().count(), 0);
        let mut small = VectorBuf::with_capacity(10);
        small.extend_from_slice(&[1.0, 2.0]);
        assert_eq!(&small[..], &[1.0, 2.0]);
    }

    /// A disk that refuses the scratch file (here: a folder that does not exist) moves the
    /// floats to memory, keeps every one, and says why.
    #[test]
    fn a_refused_scratch_file_falls_back_to_memory() {
        let dir = tempfile::tempdir().unwrap();
        let gone = dir.path().join("missing");
        let mut buf = VectorBuf::on_disk(&gone);
        buf.extend_from_slice(&[1.0, 2.0, 3.0]);
        buf.extend_from_slice(&[4.0]);
        assert_eq!(&buf[..], &[1.0, 2.0, 3.0, 4.0]);
        let (meant, why) = buf.on_disk_state();
        assert!(meant);
        assert!(why.unwrap().contains("missing"), "{why:?}");
        assert_eq!(buf.footprint().disk, 0);
        // What it makes next stays in memory too.
        assert!(matches!(buf.empty_like(4).buf, Buf::Heap(_)));
    }
}
