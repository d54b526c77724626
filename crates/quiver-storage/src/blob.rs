//! Immutable, checksummed blob files: the container for segments and manifests.
//!
//! Layout (little-endian): `magic[8] | version u32 | n_sections u32 | n_sections x length u64 |
//! section bytes... | crc32c u32` where the checksum covers every byte before it. A blob is
//! written once under a fresh name (or replaced atomically, for the manifest) and never modified.

use crate::codec::{Decoder, Encoder};
use crate::fsio;
use crate::{StorageError, StorageResult};
use std::path::Path;

pub const BLOB_VERSION: u32 = 1;
/// No blob has more sections than this; a larger count read from disk is corruption.
pub const BLOB_SECTIONS_MAX: u32 = 64;

/// Encodes sections into a blob image (in memory).
pub fn encode(magic: &[u8; 8], sections: &[&[u8]]) -> Vec<u8> {
    assert!(sections.len() as u32 <= BLOB_SECTIONS_MAX);
    let total: usize = sections.iter().map(|s| s.len()).sum();
    let mut e = Encoder::with_capacity(16 + 8 * sections.len() + total + 4);
    e.raw(magic);
    e.u32(BLOB_VERSION);
    e.u32(sections.len() as u32);
    for s in sections {
        e.u64(s.len() as u64);
    }
    for s in sections {
        e.raw(s);
    }
    let crc = crc32c::crc32c(&e.buf);
    e.u32(crc);
    e.buf
}

/// Checks and splits a blob image; `path` only names the file in errors.
pub fn decode<'a>(path: &Path, magic: &[u8; 8], data: &'a [u8]) -> StorageResult<Vec<&'a [u8]>> {
    let corrupt = |offset: usize, reason: String| StorageError::corrupt(path, offset as u64, reason);
    if data.len() < 20 {
        return Err(corrupt(0, format!("file of {} bytes is too short to be a blob", data.len())));
    }
    let (body, tail) = data.split_at(data.len() - 4);
    let stored = u32::from_le_bytes(tail.try_into().expect("4 bytes"));
    let actual = crc32c::crc32c(body);
    if stored != actual {
        return Err(corrupt(
            body.len(),
            format!("checksum mismatch (stored {stored:#010x}, computed {actual:#010x})"),
        ));
    }
    let mut d = Decoder::new(body);
    let got_magic = d.take(8).map_err(|e| corrupt(e.offset, e.reason))?;
    if got_magic != magic {
        return Err(corrupt(
            0,
            format!(
                "wrong magic {:?}, expected {:?}",
                String::from_utf8_lossy(got_magic),
                String::from_utf8_lossy(magic)
            ),
        ));
    }
    let version = d.u32().map_err(|e| corrupt(e.offset, e.reason))?;
    if version != BLOB_VERSION {
        return Err(corrupt(8, format!("unsupported version {version}")));
    }
    let n = d.u32().map_err(|e| corrupt(e.offset, e.reason))?;
    if n > BLOB_SECTIONS_MAX {
        return Err(corrupt(12, format!("{n} sections exceeds the limit {BLOB_SECTIONS_MAX}")));
    }
    let mut lens = Vec::with_capacity(n as usize);
    for _ in 0..n {
        lens.push(d.u64().map_err(|e| corrupt(e.offset, e.reason))?);
    }
    let mut out = Vec::with_capacity(n as usize);
    for len in lens {
        let len = usize::try_from(len).map_err(|_| corrupt(d.position(), "section length overflows".into()))?;
        out.push(d.take(len).map_err(|e| corrupt(e.offset, e.reason))?);
    }
    d.finish().map_err(|e| corrupt(e.offset, e.reason))?;
    Ok(out)
}

/// Writes a new blob file durably (the caller makes it visible, e.g. through the manifest).
pub fn write_new(path: &Path, magic: &[u8; 8], sections: &[&[u8]]) -> StorageResult<()> {
    fsio::write_new_file(path, &encode(magic, sections))
}

/// Replaces a blob file atomically and durably.
pub fn replace_atomic(path: &Path, magic: &[u8; 8], sections: &[&[u8]]) -> StorageResult<()> {
    fsio::replace_file_atomic(path, &encode(magic, sections))
}

/// Writes a blob file section by section without holding it in memory: the section lengths
/// are given first (they are in the header), then the bytes of every section in order through
/// [`BlobWriter::write`] (in pieces of any size), and [`BlobWriter::finish`] checks that exactly
/// the declared bytes came, appends the checksum and fsyncs. The file is the same, byte for
/// byte, as [`write_new`] of the same sections. Like `write_new`, the caller makes it visible.
pub struct BlobWriter {
    path: std::path::PathBuf,
    file: std::io::BufWriter<std::fs::File>,
    crc: u32,
    expected: u64,
    written: u64,
}

impl BlobWriter {
    /// Creates `path` and writes the header of a blob whose sections have lengths `lens`.
    pub fn create(path: &Path, magic: &[u8; 8], lens: &[u64]) -> StorageResult<BlobWriter> {
        assert!(lens.len() as u32 <= BLOB_SECTIONS_MAX);
        crate::fault::check(crate::fault::Step::Write, path).map_err(StorageError::io(path))?;
        let file = std::fs::OpenOptions::new()
            .create(true)
            .write(true)
            .truncate(true)
            .open(path)
            .map_err(StorageError::io(path))?;
        let mut e = Encoder::with_capacity(16 + 8 * lens.len());
        e.raw(magic);
        e.u32(BLOB_VERSION);
        e.u32(lens.len() as u32);
        for &l in lens {
            e.u64(l);
        }
        let mut w = BlobWriter {
            path: path.to_path_buf(),
            file: std::io::BufWriter::with_capacity(1 << 20, file),
            crc: 0,
            expected: lens.iter().sum(),
            written: 0,
        };
        w.put(&e.buf)?;
        Ok(w)
    }

    fn put(&mut self, bytes: &[u8]) -> StorageResult<()> {
        use std::io::Write;
        self.crc = crc32c::crc32c_append(self.crc, bytes);
        self.file.write_all(bytes).map_err(StorageError::io(&self.path))
    }

    /// Appends section bytes (the sections' bytes in order, split anywhere).
    pub fn write(&mut self, bytes: &[u8]) -> StorageResult<()> {
        self.written += bytes.len() as u64;
        assert!(self.written <= self.expected, "more section bytes than declared");
        self.put(bytes)
    }

    /// Checks the length, appends the checksum, and fsyncs the file; returns the checksum
    /// (the file's last four bytes: a fingerprint of its contents).
    pub fn finish(mut self) -> StorageResult<u32> {
        use std::io::Write;
        assert_eq!(self.written, self.expected, "fewer section bytes than declared");
        let crc = self.crc.to_le_bytes();
        self.file.write_all(&crc).map_err(StorageError::io(&self.path))?;
        let file = self.file.into_inner().map_err(|e| StorageError::Io {
            path: self.path.clone(),
            cause: e.into_error(),
        })?;
        crate::fault::check(crate::fault::Step::Sync, &self.path).map_err(StorageError::io(&self.path))?;
        file.sync_all().map_err(StorageError::io(&self.path))?;
        Ok(self.crc)
    }
}

/// Reads a whole blob file; decode it with [`decode`].
pub fn read(path: &Path) -> StorageResult<Vec<u8>> {
    fsio::read_file(path)
}

#[cfg(test)]
mod tests {
    use super::*;

    /// The streamed writer makes the same bytes as `encode`, however the sections are split.
    #[test]
    fn the_blob_writer_writes_what_encode_makes() {
        let dir = tempfile::tempdir().unwrap();
        let big: Vec<u8> = (0..100_000u32).map(|i| (i * 7 % 251) as u8).collect();
        let sections: Vec<&[u8]> = vec![b"head", b"", &big, b"tail"];
        for chunk in [1usize, 3, 4096, 1 << 20] {
            let path = dir.path().join(format!("b{chunk}"));
            let lens: Vec<u64> = sections.iter().map(|s| s.len() as u64).collect();
            let mut w = BlobWriter::create(&path, b"QVTEST01", &lens).unwrap();
            let all: Vec<u8> = sections.concat();
            for piece in all.chunks(chunk) {
                w.write(piece).unwrap();
            }
            w.finish().unwrap();
            assert_eq!(std::fs::read(&path).unwrap(), encode(b"QVTEST01", &sections), "chunks of {chunk}");
        }
    }

    #[test]
    fn round_trip_and_every_flipped_byte_is_caught() {
        let path = Path::new("test.blob");
        let image = encode(b"QVTEST01", &[b"abc", b"", &[1, 2, 3, 4, 5]]);
        let sections = decode(path, b"QVTEST01", &image).unwrap();
        assert_eq!(sections, vec![&b"abc"[..], &b""[..], &[1u8, 2, 3, 4, 5][..]]);
        assert!(decode(path, b"QVOTHER1", &image).is_err());
        for i in 0..image.len() {
            let mut bad = image.clone();
            bad[i] ^= 0x40;
            let err = decode(path, b"QVTEST01", &bad).unwrap_err();
            assert!(err.to_string().contains("test.blob"), "{err}");
        }
        for n in 0..image.len() {
            assert!(decode(path, b"QVTEST01", &image[..n]).is_err());
        }
    }
}
