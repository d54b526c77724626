//! The growable row-major matrix that holds a collection's vectors in memory.
//!
//! Why not a `Vec<f32>`: an exact scan streams the whole matrix for every query, and with 4 KiB
//! pages a 150 MB matrix costs tens of thousands of TLB misses per scan. Large matrices here live
//! in an anonymous memory map advised for transparent huge pages (`MADV_HUGEPAGE`), which made
//! single-query scans of 100,000 x 384 vectors about 25% faster on our 2-core machine
//! (`quiver bench exact`, glibc's huge-page tunable on vs off). Small matrices stay in a `Vec`.

use memmap2::{MmapMut, MmapOptions};
use std::ops::Deref;

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
}

/// An append-only (until cleared) buffer of `f32`.
#[derive(Debug)]
pub(crate) struct VectorBuf {
    buf: Buf,
}

impl Default for VectorBuf {
    fn default() -> VectorBuf {
        VectorBuf {
            buf: Buf::Heap(Vec::new()),
        }
    }
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

    pub fn with_capacity(n: usize) -> VectorBuf {
        let mut b = VectorBuf::new();
        b.reserve(n);
        b
    }

    pub fn len(&self) -> usize {
        match &self.buf {
            Buf::Heap(v) => v.len(),
            Buf::Mapped { len, .. } => *len,
        }
    }

    fn capacity(&self) -> usize {
        match &self.buf {
            Buf::Heap(v) => v.capacity(),
            Buf::Mapped { map, .. } => map.len() / 4,
        }
    }

    /// Makes room for `additional` more floats.
    pub fn reserve(&mut self, additional: usize) {
        let need = self.len() + additional;
        if need <= self.capacity() {
            return;
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

    fn make_heap(&mut self) -> &mut Vec<f32> {
        if let Buf::Mapped { .. } = self.buf {
            let v = self[..].to_vec();
            self.buf = Buf::Heap(v);
        }
        match &mut self.buf {
            Buf::Heap(v) => v,
            Buf::Mapped { .. } => unreachable!("converted above"),
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
        }
    }
}

impl Deref for VectorBuf {
    type Target = [f32];
    fn deref(&self) -> &[f32] {
        match &self.buf {
            Buf::Heap(v) => v,
            Buf::Mapped { map, len } => &floats(map)[..*len],
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
        let mut small = VectorBuf::with_capacity(10);
        small.extend_from_slice(&[1.0, 2.0]);
        assert_eq!(&small[..], &[1.0, 2.0]);
    }
}
