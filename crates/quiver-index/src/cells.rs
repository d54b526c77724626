//! A column of fixed-size values (codes, norms, neighbour lists, levels) that is either owned
//! (a `Vec`) or read in place from a mapped index file ([`PrivateMap`]). Reading is the same
//! either way (`Deref` to a slice); the first change to a mapped column copies it into memory
//! ([`Cells::to_mut`]), so an index opened from its file costs a map until something is added.

use quiver_storage::map::PrivateMap;
use std::marker::PhantomData;
use std::ops::Deref;
use std::sync::atomic::{AtomicU32, Ordering::Relaxed};
use std::sync::Arc;

/// A value a column can hold in place.
pub trait Cell: Sized {
    /// `len` values at byte `offset` of the map, or `None` when they are not all inside it or
    /// not aligned for `Self`.
    fn view(map: &PrivateMap, offset: usize, len: usize) -> Option<&[Self]>;
    /// An owned copy.
    fn copy_all(src: &[Self]) -> Vec<Self>;
}

macro_rules! plain_cell {
    ($($t:ty),*) => {$(
        impl Cell for $t {
            fn view(map: &PrivateMap, offset: usize, len: usize) -> Option<&[$t]> {
                let end = len.checked_mul(std::mem::size_of::<$t>())?.checked_add(offset)?;
                bytemuck::try_cast_slice(map.bytes().get(offset..end)?).ok()
            }
            fn copy_all(src: &[$t]) -> Vec<$t> {
                src.to_vec()
            }
        }
    )*};
}
plain_cell!(u8, u32, u64, f32);

impl Cell for AtomicU32 {
    fn view(map: &PrivateMap, offset: usize, len: usize) -> Option<&[AtomicU32]> {
        map.atomic_u32s(offset, len)
    }
    fn copy_all(src: &[AtomicU32]) -> Vec<AtomicU32> {
        src.iter().map(|a| AtomicU32::new(a.load(Relaxed))).collect()
    }
}

/// Owned values, or values in place in a mapped file.
pub enum Cells<T> {
    Owned(Vec<T>),
    Mapped {
        map: Arc<PrivateMap>,
        offset: usize,
        len: usize,
        _values: PhantomData<T>,
    },
}

impl<T: Cell> Cells<T> {
    /// `len` values at byte `offset` of `map`, used in place; `None` when they do not fit the
    /// map or its alignment, or on a big-endian machine (files are little-endian).
    pub fn mapped(map: Arc<PrivateMap>, offset: usize, len: usize) -> Option<Cells<T>> {
        if cfg!(target_endian = "big") {
            return None;
        }
        T::view(&map, offset, len)?;
        Some(Cells::Mapped {
            map,
            offset,
            len,
            _values: PhantomData,
        })
    }

    /// The values as a vector to change; a mapped column is copied into memory first.
    pub fn to_mut(&mut self) -> &mut Vec<T> {
        if let Cells::Mapped { .. } = self {
            *self = Cells::Owned(T::copy_all(self));
        }
        match self {
            Cells::Owned(v) => v,
            Cells::Mapped { .. } => unreachable!("copied above"),
        }
    }

    /// Bytes of memory the column owns (nothing while it is mapped: those pages belong to the
    /// page cache until written).
    pub fn heap_bytes(&self) -> usize {
        match self {
            Cells::Owned(v) => v.len() * std::mem::size_of::<T>(),
            Cells::Mapped { .. } => 0,
        }
    }

    /// An owned copy of the values (a mapped column read into memory).
    pub fn owned(&self) -> Cells<T> {
        Cells::Owned(T::copy_all(self))
    }

    /// The map the values are read from, if they are.
    pub fn map(&self) -> Option<&Arc<PrivateMap>> {
        match self {
            Cells::Owned(_) => None,
            Cells::Mapped { map, .. } => Some(map),
        }
    }

    /// Bytes read in place from a mapped file.
    pub fn mapped_bytes(&self) -> usize {
        match self {
            Cells::Owned(_) => 0,
            Cells::Mapped { len, .. } => len * std::mem::size_of::<T>(),
        }
    }
}

impl<T: Cell> Deref for Cells<T> {
    type Target = [T];
    #[inline(always)]
    fn deref(&self) -> &[T] {
        match self {
            Cells::Owned(v) => v,
            Cells::Mapped { map, offset, len, .. } => T::view(map, *offset, *len).expect("checked when mapped"),
        }
    }
}

impl<T> Default for Cells<T> {
    fn default() -> Self {
        Cells::Owned(Vec::new())
    }
}

impl<T> From<Vec<T>> for Cells<T> {
    fn from(v: Vec<T>) -> Self {
        Cells::Owned(v)
    }
}

impl<T> FromIterator<T> for Cells<T> {
    fn from_iter<I: IntoIterator<Item = T>>(it: I) -> Self {
        Cells::Owned(it.into_iter().collect())
    }
}

impl<T: Cell> Clone for Cells<T> {
    fn clone(&self) -> Self {
        match self {
            Cells::Owned(v) => Cells::Owned(T::copy_all(v)),
            Cells::Mapped { map, offset, len, .. } => Cells::Mapped {
                map: map.clone(),
                offset: *offset,
                len: *len,
                _values: PhantomData,
            },
        }
    }
}

impl<T: Cell> std::fmt::Debug for Cells<T> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Cells::Owned(v) => write!(f, "Cells::Owned({} values)", v.len()),
            Cells::Mapped { offset, len, .. } => write!(f, "Cells::Mapped({len} values at {offset})"),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_mapped_column_reads_in_place_and_copies_on_change() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("f");
        let words: Vec<u8> = (0u32..32).flat_map(|w| w.to_le_bytes()).collect();
        std::fs::write(&path, &words).unwrap();
        let map = Arc::new(PrivateMap::open(&path).unwrap());
        let mut c = Cells::<u32>::mapped(map.clone(), 8, 4).unwrap();
        assert_eq!(&c[..], &[2, 3, 4, 5]);
        assert_eq!((c.heap_bytes(), c.mapped_bytes()), (0, 16));
        assert!(Cells::<u32>::mapped(map.clone(), 2, 1).is_none(), "misaligned");
        assert!(Cells::<u32>::mapped(map.clone(), 120, 3).is_none(), "past the end");
        c.to_mut().push(9);
        assert_eq!(&c[..], &[2, 3, 4, 5, 9]);
        let a = Cells::<AtomicU32>::mapped(map, 0, 32).unwrap();
        a[3].store(77, Relaxed);
        assert_eq!(a[3].load(Relaxed), 77);
        // A private map: the file is unchanged.
        assert_eq!(std::fs::read(&path).unwrap(), words);
    }
}
