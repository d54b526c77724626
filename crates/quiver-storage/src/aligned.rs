//! Aligned blobs (blob version 2): immutable files whose sections can be mapped and used in
//! place, each with its own checksum, so a reader can check the small sections when it opens
//! the file and the large ones later (or never re-read them whole on open).
//!
//! Layout (little-endian): `magic[8] | version u32 (2) | n_sections u32 | n_sections x length
//! u64 | zeros to 64 | section 0 | zeros to 64 | section 1 | ... | zeros to 64 | n_sections x
//! crc32c u32 | crc32c u32` where each section's checksum covers its bytes (not the padding),
//! and the last checksum covers the header (magic to the last length) and the checksum table.
//! Every section starts at a multiple of [`SECTION_ALIGN`] bytes from the start of the file:
//! mapped (a map starts on a page), a section of `f32`s or `u64`s is aligned for them.

use crate::codec::Decoder;
use crate::{StorageError, StorageResult};
use std::io::Write;
use std::path::{Path, PathBuf};

/// The blob version of aligned blobs (plain blobs are version 1, [`crate::blob`]).
pub const ALIGNED_VERSION: u32 = 2;
/// Where sections start: a multiple of this many bytes from the start of the file.
pub const SECTION_ALIGN: usize = 64;

fn pad(n: u64) -> u64 {
    n.div_ceil(SECTION_ALIGN as u64) * SECTION_ALIGN as u64 - n
}

fn header_len(n: usize) -> u64 {
    16 + 8 * n as u64
}

/// Writes an aligned blob section by section without holding it in memory: the lengths come
/// first (they are in the header), then the bytes of every section in order (in pieces of any
/// size, across section boundaries too), then [`AlignedWriter::finish`] checks the count,
/// writes the checksums and fsyncs. The caller makes the file visible (a manifest names it).
pub struct AlignedWriter {
    path: PathBuf,
    file: std::io::BufWriter<std::fs::File>,
    lens: Vec<u64>,
    crcs: Vec<u32>,
    header_crc: u32,
    /// The section being written and how many of its bytes came.
    section: usize,
    in_section: u64,
}

impl AlignedWriter {
    /// Creates `path` and writes the header of a blob whose sections have lengths `lens`.
    pub fn create(path: &Path, magic: &[u8; 8], lens: &[u64]) -> StorageResult<AlignedWriter> {
        assert!(lens.len() as u32 <= crate::blob::BLOB_SECTIONS_MAX);
        crate::fault::check(crate::fault::Step::Write, path).map_err(StorageError::io(path))?;
        let file = std::fs::OpenOptions::new()
            .create(true)
            .write(true)
            .truncate(true)
            .open(path)
            .map_err(StorageError::io(path))?;
        let mut header = Vec::with_capacity(header_len(lens.len()) as usize);
        header.extend_from_slice(magic);
        header.extend_from_slice(&ALIGNED_VERSION.to_le_bytes());
        header.extend_from_slice(&(lens.len() as u32).to_le_bytes());
        for &l in lens {
            header.extend_from_slice(&l.to_le_bytes());
        }
        let mut w = AlignedWriter {
            path: path.to_path_buf(),
            file: std::io::BufWriter::with_capacity(1 << 20, file),
            lens: lens.to_vec(),
            crcs: vec![0; lens.len()],
            header_crc: crc32c::crc32c(&header),
            section: 0,
            in_section: 0,
        };
        w.put(&header)?;
        w.zeros(pad(header.len() as u64))?;
        w.skip_empty()?;
        Ok(w)
    }

    fn put(&mut self, bytes: &[u8]) -> StorageResult<()> {
        self.file.write_all(bytes).map_err(StorageError::io(&self.path))
    }

    fn zeros(&mut self, n: u64) -> StorageResult<()> {
        self.put(&[0u8; SECTION_ALIGN][..n as usize])
    }

    /// Moves past finished sections (an empty one is finished at once), padding each.
    fn skip_empty(&mut self) -> StorageResult<()> {
        while self.section < self.lens.len() && self.in_section == self.lens[self.section] {
            self.zeros(pad(self.lens[self.section]))?;
            self.section += 1;
            self.in_section = 0;
        }
        Ok(())
    }

    /// Appends section bytes (the sections' bytes in order, split anywhere).
    pub fn write(&mut self, mut bytes: &[u8]) -> StorageResult<()> {
        while !bytes.is_empty() {
            assert!(self.section < self.lens.len(), "more section bytes than declared");
            let room = (self.lens[self.section] - self.in_section) as usize;
            let (now, rest) = bytes.split_at(room.min(bytes.len()));
            self.crcs[self.section] = crc32c::crc32c_append(self.crcs[self.section], now);
            self.put(now)?;
            self.in_section += now.len() as u64;
            bytes = rest;
            self.skip_empty()?;
        }
        Ok(())
    }

    /// Checks that every declared byte came, writes the checksums, and fsyncs the file.
    /// Returns the last checksum (the file's last four bytes), which covers the header and
    /// every section's checksum: a fingerprint of the whole contents.
    pub fn finish(mut self) -> StorageResult<u32> {
        assert_eq!(self.section, self.lens.len(), "fewer section bytes than declared");
        let mut table = Vec::with_capacity(4 * self.crcs.len() + 4);
        for c in &self.crcs {
            table.extend_from_slice(&c.to_le_bytes());
        }
        let all = crc32c::crc32c_append(self.header_crc, &table);
        table.extend_from_slice(&all.to_le_bytes());
        self.put(&table)?;
        let file = self.file.into_inner().map_err(|e| StorageError::Io {
            path: self.path.clone(),
            cause: e.into_error(),
        })?;
        crate::fault::check(crate::fault::Step::Sync, &self.path).map_err(StorageError::io(&self.path))?;
        file.sync_all().map_err(StorageError::io(&self.path))?;
        Ok(all)
    }
}

/// An aligned blob's sections, its header and checksum table checked, the sections' own
/// checksums not yet (see [`AlignedBlob::verify`]).
#[derive(Debug)]
pub struct AlignedBlob<'a> {
    sections: Vec<&'a [u8]>,
    offsets: Vec<u64>,
    crcs: Vec<u32>,
}

/// Where each section starts, and where the checksum table starts, for these section lengths
/// (`None` when they overflow).
fn offsets_of(lens: &[u64]) -> Option<(Vec<u64>, u64)> {
    let header = header_len(lens.len());
    let mut offsets = Vec::with_capacity(lens.len());
    let mut at = header + pad(header);
    for &l in lens {
        offsets.push(at);
        at = at.checked_add(l.checked_add(pad(l))?)?;
    }
    Some((offsets, at))
}

/// The most bytes an aligned blob's header takes (magic to the last length).
pub const HEADER_MAX: u64 = 16 + 8 * crate::blob::BLOB_SECTIONS_MAX as u64;

/// What the header at the start of a blob (`head`, at least 16 bytes) says of its layout: each
/// section's `(offset, length)` and the file's length. `None` when `head` is not the start of
/// an aligned blob with this magic or is too short to hold the whole header. Nothing is
/// checked against checksums: [`AlignedBlob::open`] does that. For readers that fetch a
/// blob's parts separately (a lazily filled file) and must know where they are.
pub fn layout(magic: &[u8; 8], head: &[u8]) -> Option<(Vec<(u64, u64)>, u64)> {
    if !is_aligned(magic, head) || head.len() < 16 {
        return None;
    }
    let n = u32::from_le_bytes(head[12..16].try_into().ok()?);
    if n > crate::blob::BLOB_SECTIONS_MAX {
        return None;
    }
    let lens: Vec<u64> = head
        .get(16..16 + 8 * n as usize)?
        .chunks_exact(8)
        .map(|c| u64::from_le_bytes(c.try_into().expect("8 bytes")))
        .collect();
    let (offsets, table) = offsets_of(&lens)?;
    let total = table.checked_add(4 * n as u64 + 4)?;
    Some((offsets.into_iter().zip(lens).collect(), total))
}

/// Whether `data` starts like an aligned blob (version 2) with this magic.
pub fn is_aligned(magic: &[u8; 8], data: &[u8]) -> bool {
    data.len() >= 12 && &data[..8] == magic && data[8..12] == ALIGNED_VERSION.to_le_bytes()
}

impl<'a> AlignedBlob<'a> {
    /// Checks the header and the checksum table of an aligned blob image (mapped or read) and
    /// splits it into sections; `path` only names the file in errors. Reads only the header
    /// and the table: the sections are checked by [`AlignedBlob::verify`].
    pub fn open(path: &Path, magic: &[u8; 8], data: &'a [u8]) -> StorageResult<AlignedBlob<'a>> {
        let corrupt = |offset: u64, reason: String| StorageError::corrupt(path, offset, reason);
        let mut d = Decoder::new(data);
        let got = d
            .take(8)
            .map_err(|_| corrupt(0, format!("file of {} bytes is too short to be a blob", data.len())))?;
        if got != magic {
            return Err(corrupt(
                0,
                format!(
                    "wrong magic {:?}, expected {:?}",
                    String::from_utf8_lossy(got),
                    String::from_utf8_lossy(magic)
                ),
            ));
        }
        let version = d.u32().map_err(|e| corrupt(e.offset as u64, e.reason))?;
        if version != ALIGNED_VERSION {
            return Err(corrupt(8, format!("unsupported version {version}")));
        }
        let n = d.u32().map_err(|e| corrupt(e.offset as u64, e.reason))?;
        if n > crate::blob::BLOB_SECTIONS_MAX {
            return Err(corrupt(
                12,
                format!("{n} sections exceeds the limit {}", crate::blob::BLOB_SECTIONS_MAX),
            ));
        }
        let n = n as usize;
        let mut lens = Vec::with_capacity(n);
        for _ in 0..n {
            lens.push(d.u64().map_err(|e| corrupt(e.offset as u64, e.reason))?);
        }
        let header = header_len(n);
        let (offsets, at) = offsets_of(&lens).ok_or_else(|| corrupt(16, "section lengths overflow".into()))?;
        let expected = at + 4 * n as u64 + 4;
        if data.len() as u64 != expected {
            return Err(corrupt(
                data.len() as u64,
                format!("file holds {} bytes, its header describes {expected}", data.len()),
            ));
        }
        let table = &data[at as usize..];
        let (crcs_bytes, all) = table.split_at(4 * n);
        let stored = u32::from_le_bytes(all.try_into().expect("4 bytes"));
        let actual = crc32c::crc32c_append(crc32c::crc32c(&data[..header as usize]), crcs_bytes);
        if stored != actual {
            return Err(corrupt(
                data.len() as u64 - 4,
                format!("header checksum mismatch (stored {stored:#010x}, computed {actual:#010x})"),
            ));
        }
        // The padding carries nothing and must be zeros: then every byte of the file is
        // checked by something (a changed padding byte is damage too, if harmless).
        let mut gap_start = header as usize;
        for (&o, &l) in offsets.iter().zip(&lens).chain(std::iter::once((&at, &0))) {
            if let Some(i) = data[gap_start..o as usize].iter().position(|&b| b != 0) {
                return Err(corrupt((gap_start + i) as u64, "padding byte is not zero".into()));
            }
            gap_start = (o + l) as usize;
        }
        let crcs = crcs_bytes
            .chunks_exact(4)
            .map(|c| u32::from_le_bytes(c.try_into().expect("4 bytes")))
            .collect();
        let sections = offsets
            .iter()
            .zip(&lens)
            .map(|(&o, &l)| &data[o as usize..(o + l) as usize])
            .collect();
        Ok(AlignedBlob { sections, offsets, crcs })
    }

    /// The number of sections.
    pub fn len(&self) -> usize {
        self.sections.len()
    }

    /// Whether the blob has no sections.
    pub fn is_empty(&self) -> bool {
        self.sections.is_empty()
    }

    /// Section `i`'s bytes (not checked yet).
    pub fn section(&self, i: usize) -> &'a [u8] {
        self.sections[i]
    }

    /// Where section `i` starts in the file.
    pub fn offset(&self, i: usize) -> u64 {
        self.offsets[i]
    }

    /// Section `i`'s stored checksum.
    pub fn checksum(&self, i: usize) -> u32 {
        self.crcs[i]
    }

    /// Checks section `i` against its checksum (reads it whole).
    pub fn verify(&self, path: &Path, i: usize) -> StorageResult<()> {
        verify_section(path, self.offsets[i], self.sections[i], self.crcs[i])
    }
}

/// A section's stored checksum against the one computed; the error names the file and offset.
fn checked(path: &Path, offset: u64, stored: u32, actual: u32) -> StorageResult<()> {
    if actual != stored {
        return Err(StorageError::corrupt(
            path,
            offset,
            format!("section checksum mismatch (stored {stored:#010x}, computed {actual:#010x})"),
        ));
    }
    Ok(())
}

/// Checks bytes against a section checksum; the error names the file and the section's offset.
pub fn verify_section(path: &Path, offset: u64, bytes: &[u8], stored: u32) -> StorageResult<()> {
    let actual = crc32c::crc32c(bytes);
    checked(path, offset, stored, actual)
}

/// Checks `len` bytes of the file at `path` from `offset` against a section checksum, read in
/// 1 MiB pieces (not mapped): for a background check of a large section. On Linux the file is
/// read with `O_DIRECT` where the file system allows it, so the check neither fills the page
/// cache nor evicts what searches keep there (a process capped below its data would otherwise
/// lose its hot rows to the check); elsewhere, or when refused, through the page cache.
pub fn verify_file_section(path: &Path, offset: u64, len: u64, stored: u32) -> StorageResult<()> {
    let io = |cause| StorageError::Io {
        path: path.to_path_buf(),
        cause,
    };
    let actual = match direct_crc(path, offset, len) {
        Some(r) => r.map_err(io)?,
        None => buffered_crc(path, offset, len).map_err(io)?,
    };
    checked(path, offset, stored, actual)
}

fn buffered_crc(path: &Path, offset: u64, len: u64) -> std::io::Result<u32> {
    use std::io::{Read, Seek, SeekFrom};
    let mut file = std::fs::File::open(path)?;
    file.seek(SeekFrom::Start(offset))?;
    let mut buf = vec![0u8; (1usize << 20).min(len as usize)];
    let (mut left, mut crc) = (len, 0u32);
    while left > 0 {
        let n = (left as usize).min(buf.len());
        file.read_exact(&mut buf[..n])?;
        crc = crc32c::crc32c_append(crc, &buf[..n]);
        left -= n as u64;
    }
    Ok(crc)
}

/// The checksum of `offset..offset + len` read with `O_DIRECT` (reads of whole 4 KiB blocks
/// into a 4 KiB-aligned buffer); `None` when the file cannot be opened that way.
#[cfg(target_os = "linux")]
fn direct_crc(path: &Path, offset: u64, len: u64) -> Option<std::io::Result<u32>> {
    use std::os::unix::fs::{FileExt, OpenOptionsExt};
    const BLOCK: u64 = 4096;
    const PIECE: usize = 1 << 20;
    let file = std::fs::OpenOptions::new()
        .read(true)
        .custom_flags(libc::O_DIRECT)
        .open(path)
        .ok()?;
    // A buffer aligned to the block: a larger one, sliced where an aligned address falls.
    let mut raw = vec![0u8; PIECE + BLOCK as usize];
    let skip = raw.as_ptr().align_offset(BLOCK as usize);
    let buf = &mut raw[skip..skip + PIECE];
    let (end, mut at) = (offset + len, offset / BLOCK * BLOCK);
    let mut crc = 0u32;
    while at < end {
        let n = match file.read_at(buf, at) {
            Ok(0) => return Some(Err(std::io::ErrorKind::UnexpectedEof.into())),
            Ok(n) => n,
            // The file system refused direct reads after all: read through the cache.
            Err(e) if e.raw_os_error() == Some(libc::EINVAL) => return None,
            Err(e) => return Some(Err(e)),
        };
        let from = offset.saturating_sub(at) as usize;
        let to = ((end - at) as usize).min(n);
        if from < to {
            crc = crc32c::crc32c_append(crc, &buf[from..to]);
        }
        at += n as u64;
    }
    Some(Ok(crc))
}

#[cfg(not(target_os = "linux"))]
fn direct_crc(_: &Path, _: u64, _: u64) -> Option<std::io::Result<u32>> {
    None
}

#[cfg(test)]
mod tests {
    use super::*;

    fn write(path: &Path, sections: &[&[u8]], chunk: usize) {
        let lens: Vec<u64> = sections.iter().map(|s| s.len() as u64).collect();
        let mut w = AlignedWriter::create(path, b"QVTEST02", &lens).unwrap();
        for piece in sections.concat().chunks(chunk) {
            w.write(piece).unwrap();
        }
        let fingerprint = w.finish().unwrap();
        let image = std::fs::read(path).unwrap();
        assert_eq!(image[image.len() - 4..], fingerprint.to_le_bytes());
    }

    #[test]
    fn sections_come_back_aligned_however_they_were_written() {
        let dir = tempfile::tempdir().unwrap();
        let big: Vec<u8> = (0..100_000u32).map(|i| (i * 7 % 251) as u8).collect();
        let sections: Vec<&[u8]> = vec![b"head", b"", &big, b"t", b""];
        let mut images = Vec::new();
        for chunk in [1usize, 3, 64, 4096, 1 << 20] {
            let path = dir.path().join(format!("b{chunk}"));
            write(&path, &sections, chunk);
            let image = std::fs::read(&path).unwrap();
            let blob = AlignedBlob::open(&path, b"QVTEST02", &image).unwrap();
            assert_eq!(blob.len(), sections.len());
            for (i, s) in sections.iter().enumerate() {
                assert_eq!(blob.section(i), *s, "chunks of {chunk}, section {i}");
                assert_eq!(blob.offset(i) % SECTION_ALIGN as u64, 0);
                blob.verify(&path, i).unwrap();
                verify_file_section(&path, blob.offset(i), blob.section(i).len() as u64, blob.checksum(i)).unwrap();
            }
            assert!(is_aligned(b"QVTEST02", &image));
            images.push(image);
        }
        assert!(images.windows(2).all(|w| w[0] == w[1]), "the same file for any split");
    }

    #[test]
    fn every_flipped_byte_is_caught_by_open_or_by_a_section_check() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("t.blob");
        write(&path, &[b"abc", b"", &[1, 2, 3, 4, 5]], 7);
        let image = std::fs::read(&path).unwrap();
        assert!(AlignedBlob::open(&path, b"QVOTHER2", &image).is_err());
        for i in 0..image.len() {
            let mut bad = image.clone();
            bad[i] ^= 0x40;
            let caught = match AlignedBlob::open(&path, b"QVTEST02", &bad) {
                Err(e) => {
                    assert!(e.to_string().contains("t.blob"), "{e}");
                    true
                }
                Ok(blob) => {
                    // The same verdict reading the file as reading the image.
                    std::fs::write(&path, &bad).unwrap();
                    let by_file = (0..blob.len())
                        .any(|s| verify_file_section(&path, blob.offset(s), blob.section(s).len() as u64, blob.checksum(s)).is_err());
                    let by_image = (0..blob.len()).any(|s| blob.verify(&path, s).is_err());
                    assert_eq!(by_file, by_image, "byte {i}");
                    by_image
                }
            };
            assert!(caught, "byte {i}");
        }
        for n in 0..image.len() {
            assert!(AlignedBlob::open(&path, b"QVTEST02", &image[..n]).is_err());
        }
    }
}
