//! Segment files: the full state of some points, and the ids deleted since the segments before
//! them; immutable, named by the manifest (layouts in `docs/format.md`).
//!
//! Format 2 (written now) is an aligned blob of columns: fixed-width ids, the vector matrix,
//! a bitmap of rows holding the main vector, payloads and named vectors as byte ranges with
//! their end offsets. Every section starts on a 64-byte boundary and has its own checksum, so
//! a mapped segment can be used in place ([`BaseSegment`]): row `i`'s vector is a slice of the
//! map, its id a fixed-width record (binary search when the ids are sorted), its payload
//! decoded only when asked for. Format 1 (a plain blob, whole-file checksum, variable-width
//! ids) is still read and applied row by row; compaction rewrites it as format 2.

use crate::store::{get_id, get_named, get_payload, payload_bytes, put_id, put_named};
use crate::types::{Payload, PointId};
use crate::vector_model::NamedVectors;
use quiver_storage::aligned::{self, AlignedBlob, AlignedWriter};
use quiver_storage::codec::{DecodeError, Decoder, Encoder};
use quiver_storage::fill::Fill;
use quiver_storage::map::MappedFile;
use quiver_storage::{blob, StorageError};
use std::path::{Path, PathBuf};
use std::sync::Arc;

pub const SEGMENT_MAGIC: &[u8; 8] = b"QVSEG001";

// Mapped floats and words are read in place: the files are little-endian.
const _: () = assert!(cfg!(target_endian = "little"), "segment files are mapped as little-endian");

/// Format 2's sections.
const HEADER: usize = 0;
const IDS: usize = 1;
const VECTORS: usize = 2;
const MAIN: usize = 3;
const PAYLOAD_ENDS: usize = 4;
const PAYLOADS: usize = 5;
const TOMBSTONES: usize = 6;
const NAMED_ENDS: usize = 7;
const NAMED: usize = 8;
const SECTIONS: usize = 9;
/// Sections checked when a segment is mapped as the base: all but the three that grow with
/// the data (vectors, payloads, named vectors), which are checked in the background.
const SMALL: [usize; 6] = [HEADER, IDS, MAIN, PAYLOAD_ENDS, TOMBSTONES, NAMED_ENDS];
const LARGE: [usize; 3] = [VECTORS, PAYLOADS, NAMED];

/// Header flag: ids strictly ascending and no tombstones (the segment can be a base).
const FLAG_SORTED: u32 = 1;
/// A fixed-width id: tag (0 integer, 1 UUID) and 16 bytes (the integer little-endian and
/// zero-padded, or the UUID's bytes).
pub(crate) const ID_BYTES: usize = 17;

/// The contents of one segment: the full state of some points, and ids deleted since the
/// segments before it.
#[derive(Debug, Default, PartialEq)]
pub struct SegmentData<'a> {
    pub ids: Vec<PointId>,
    /// `ids.len() * dim` little-endian floats, row-major, as they lie in the file (borrowed:
    /// a segment larger than memory is read through the page cache, row by row).
    pub vectors: &'a [u8],
    pub payloads: Vec<Option<Payload>>,
    pub tombstones: Vec<PointId>,
    /// Per row: whether it holds its main vector (else its `vectors` row is zeros) and its
    /// named vectors. Empty when every row holds the main vector and none has named ones.
    pub extras: Vec<(bool, Option<NamedVectors>)>,
}

/// Row `i` of a segment's vector section, decoded into `out` (`out.len()` floats a row).
pub fn decode_row(vectors: &[u8], i: usize, out: &mut [f32]) {
    let dim = out.len();
    let bytes = &vectors[i * dim * 4..(i + 1) * dim * 4];
    for (o, c) in out.iter_mut().zip(bytes.chunks_exact(4)) {
        *o = f32::from_le_bytes(c.try_into().expect("4 bytes"));
    }
}

/// One row of a segment to write: id, main vector (empty: none), named vectors, payload.
pub type SegmentRow<'a> = (PointId, &'a [f32], Option<&'a NamedVectors>, Option<std::borrow::Cow<'a, Payload>>);

pub(crate) fn put_fixed_id(out: &mut Vec<u8>, id: &PointId) {
    match id {
        PointId::Num(n) => {
            out.push(0);
            out.extend_from_slice(&n.to_le_bytes());
            out.extend_from_slice(&[0; 8]);
        }
        PointId::Uuid(u) => {
            out.push(1);
            out.extend_from_slice(u.as_bytes());
        }
    }
}

pub(crate) fn get_fixed_id(b: &[u8]) -> Result<PointId, String> {
    match b[0] {
        0 => Ok(PointId::Num(u64::from_le_bytes(b[1..9].try_into().expect("8 bytes")))),
        1 => Ok(PointId::Uuid(uuid::Uuid::from_bytes(b[1..17].try_into().expect("16 bytes")))),
        t => Err(format!("unknown id tag {t}")),
    }
}

/// Writes a segment file (format 2) of `n` rows (`row(i)` gives each) and the tombstones,
/// fsynced, with the vectors streamed from the rows in 1 MiB pieces: a segment of any size is
/// written without a copy of its vectors in memory (they may be on disk, larger than memory).
/// The caller makes the file visible (the manifest names it). Returns the file's fingerprint
/// (see [`segment_checksum`]).
pub fn write_segment_file<'a>(
    path: &Path,
    dim: usize,
    n: usize,
    row: &dyn Fn(usize) -> SegmentRow<'a>,
    tombstones: &[PointId],
) -> Result<u32, StorageError> {
    let mut ids = Vec::with_capacity(n * ID_BYTES);
    let mut main = vec![0u64; n.div_ceil(64)];
    let mut payload_ends = Vec::with_capacity(n * 8);
    let mut payloads = Vec::new();
    let mut named_ends = Vec::with_capacity(n * 8);
    let mut named = Encoder::new();
    let mut sorted = tombstones.is_empty();
    let mut prev: Option<PointId> = None;
    for i in 0..n {
        let (id, v, nv, p) = row(i);
        assert!(v.is_empty() || v.len() == dim, "segment rows must have the collection's dimension");
        sorted &= prev.is_none_or(|q| q < id);
        prev = Some(id);
        put_fixed_id(&mut ids, &id);
        if !v.is_empty() || dim == 0 {
            main[i / 64] |= 1 << (i % 64);
        }
        payloads.extend_from_slice(&payload_bytes(p.as_deref()));
        payload_ends.extend_from_slice(&(payloads.len() as u64).to_le_bytes());
        if let Some(nv) = nv.filter(|m| !m.is_empty()) {
            put_named(&mut named, Some(nv));
        }
        named_ends.extend_from_slice(&(named.len() as u64).to_le_bytes());
    }
    if named.is_empty() {
        named_ends.clear();
    }
    let mut header = Encoder::new();
    header.u32(dim as u32);
    header.u64(n as u64);
    header.u64(tombstones.len() as u64);
    header.u32(if sorted { FLAG_SORTED } else { 0 });
    let mut tomb = Encoder::with_capacity(tombstones.len() * 9);
    for t in tombstones {
        put_id(&mut tomb, t);
    }
    let main: Vec<u8> = main.iter().flat_map(|w| w.to_le_bytes()).collect();
    let lens = [
        header.len(),
        ids.len(),
        n * dim * 4,
        main.len(),
        payload_ends.len(),
        payloads.len(),
        tomb.len(),
        named_ends.len(),
        named.len(),
    ]
    .map(|l| l as u64);
    let mut w = AlignedWriter::create(path, SEGMENT_MAGIC, &lens)?;
    w.write(&header.buf)?;
    w.write(&ids)?;
    let zeros = vec![0.0f32; dim];
    let mut buf: Vec<u8> = Vec::with_capacity((1 << 20) + dim * 4);
    for i in 0..n {
        let v = row(i).1;
        buf.extend_from_slice(bytemuck::cast_slice(if v.is_empty() { &zeros[..] } else { v }));
        if buf.len() >= 1 << 20 {
            w.write(&buf)?;
            buf.clear();
        }
    }
    w.write(&buf)?;
    w.write(&main)?;
    w.write(&payload_ends)?;
    w.write(&payloads)?;
    w.write(&tomb.buf)?;
    w.write(&named_ends)?;
    w.write(&named.buf)?;
    w.finish()
}

/// A segment's fingerprint (its last four bytes: format 1's whole-file checksum, format 2's
/// checksum of the header and every section's checksum), given its checked image; with the
/// segment number, the identity of the rows it holds (see `State::base`).
pub fn segment_checksum(image: &[u8]) -> u32 {
    u32::from_le_bytes(
        image[image.len() - 4..]
            .try_into()
            .expect("a checked segment is longer than 4 bytes"),
    )
}

fn corrupt(path: &Path, e: DecodeError, section: &str) -> StorageError {
    StorageError::corrupt(path, e.offset as u64, format!("{section}: {}", e.reason))
}

/// Format 2's header and the checks of its section sizes.
struct Shape {
    n: usize,
    n_tomb: usize,
    sorted: bool,
    named: bool,
}

fn shape(path: &Path, blob: &AlignedBlob<'_>, dim: usize) -> Result<Shape, StorageError> {
    let bad = |reason: String| StorageError::corrupt(path, 0, reason);
    if blob.len() != SECTIONS {
        return Err(bad(format!("segment has {} sections, expected {SECTIONS}", blob.len())));
    }
    let mut h = Decoder::new(blob.section(HEADER));
    let (seg_dim, n, n_tomb, flags) =
        (|| Ok::<_, DecodeError>((h.u32()?, h.u64()?, h.u64()?, h.u32()?)))().map_err(|e| corrupt(path, e, "header"))?;
    if seg_dim as usize != dim {
        return Err(bad(format!("segment dimension {seg_dim} differs from the collection's {dim}")));
    }
    let n = usize::try_from(n).map_err(|_| bad(format!("row count {n} overflows")))?;
    let named = !blob.section(NAMED_ENDS).is_empty();
    for (section, want, name) in [
        (IDS, n.checked_mul(ID_BYTES), "ids"),
        (VECTORS, n.checked_mul(dim * 4), "vectors"),
        (MAIN, Some(n.div_ceil(64) * 8), "main-vector bitmap"),
        (PAYLOAD_ENDS, Some(n * 8), "payload offsets"),
        (NAMED_ENDS, Some(if named { n * 8 } else { 0 }), "named-vector offsets"),
    ] {
        if Some(blob.section(section).len()) != want {
            return Err(bad(format!(
                "{name} section holds {} bytes for {n} rows",
                blob.section(section).len()
            )));
        }
    }
    Ok(Shape {
        n,
        n_tomb: n_tomb as usize,
        sorted: flags & FLAG_SORTED != 0,
        named,
    })
}

/// Byte range `i` of a column given its end offsets (`ends`: u64 each); checked.
fn range(ends: &[u8], i: usize, len: usize) -> Result<std::ops::Range<usize>, String> {
    let end_at = |j: usize| u64::from_le_bytes(ends[j * 8..j * 8 + 8].try_into().expect("8 bytes")) as usize;
    let start = if i == 0 { 0 } else { end_at(i - 1) };
    let end = end_at(i);
    if start > end || end > len {
        return Err(format!("row {i}'s byte range {start}..{end} is outside the {len} bytes"));
    }
    Ok(start..end)
}

fn payload_of(bytes: &[u8]) -> Result<Option<Payload>, String> {
    if bytes.is_empty() {
        return Ok(None);
    }
    serde_json::from_slice::<Payload>(bytes)
        .map(Some)
        .map_err(|e| format!("payload is not a JSON object: {e}"))
}

fn named_of(bytes: &[u8]) -> Result<Option<NamedVectors>, String> {
    if bytes.is_empty() {
        return Ok(None);
    }
    let mut d = Decoder::new(bytes);
    let v = get_named(&mut d).map_err(|e| e.reason)?;
    d.finish().map_err(|e| e.reason)?;
    Ok(v)
}

/// Decodes a segment image read from `path` (either format), checking every section against
/// the collection's dimension and its checksum.
pub fn decode_segment<'a>(path: &Path, image: &'a [u8], dim: usize) -> Result<SegmentData<'a>, StorageError> {
    if !aligned::is_aligned(SEGMENT_MAGIC, image) {
        return decode_segment_v1(path, image, dim);
    }
    let blob = AlignedBlob::open(path, SEGMENT_MAGIC, image)?;
    for s in 0..blob.len() {
        blob.verify(path, s)?;
    }
    let shape = shape(path, &blob, dim)?;
    let n = shape.n;
    let at = |section: usize, i: usize, reason: String| StorageError::corrupt(path, blob.offset(section), format!("row {i}: {reason}"));
    let mut out = SegmentData {
        vectors: blob.section(VECTORS),
        ..SegmentData::default()
    };
    let ids = blob.section(IDS);
    for i in 0..n {
        out.ids
            .push(get_fixed_id(&ids[i * ID_BYTES..(i + 1) * ID_BYTES]).map_err(|e| at(IDS, i, e))?);
    }
    let (ends, payloads) = (blob.section(PAYLOAD_ENDS), blob.section(PAYLOADS));
    for i in 0..n {
        let r = range(ends, i, payloads.len()).map_err(|e| at(PAYLOAD_ENDS, i, e))?;
        out.payloads.push(payload_of(&payloads[r]).map_err(|e| at(PAYLOADS, i, e))?);
    }
    let mut d = Decoder::new(blob.section(TOMBSTONES));
    for _ in 0..shape.n_tomb {
        out.tombstones.push(get_id(&mut d).map_err(|e| corrupt(path, e, "tombstones"))?);
    }
    d.finish().map_err(|e| corrupt(path, e, "tombstones"))?;
    let main = blob.section(MAIN);
    let has_main = |i: usize| main[i / 8] >> (i % 8) & 1 == 1;
    if shape.named || (0..n).any(|i| !has_main(i)) {
        let (ends, named) = (blob.section(NAMED_ENDS), blob.section(NAMED));
        for i in 0..n {
            let nv = if shape.named {
                let r = range(ends, i, named.len()).map_err(|e| at(NAMED_ENDS, i, e))?;
                named_of(&named[r]).map_err(|e| at(NAMED, i, e))?
            } else {
                None
            };
            out.extras.push((has_main(i), nv));
        }
    }
    Ok(out)
}

/// Format 1: a plain blob of five sections (header, ids, vectors, payloads, tombstones) and a
/// sixth for rows without the main vector or with named ones.
fn decode_segment_v1<'a>(path: &Path, image: &'a [u8], dim: usize) -> Result<SegmentData<'a>, StorageError> {
    let sections = blob::decode(path, SEGMENT_MAGIC, image)?;
    if !(5..=6).contains(&sections.len()) {
        return Err(StorageError::corrupt(
            path,
            0,
            format!("segment has {} sections, expected 5 or 6", sections.len()),
        ));
    }
    let mut h = Decoder::new(sections[0]);
    let (seg_dim, n, n_tomb) = (|| Ok::<_, DecodeError>((h.u32()?, h.u64()?, h.u64()?)))().map_err(|e| corrupt(path, e, "header"))?;
    if seg_dim as usize != dim {
        return Err(StorageError::corrupt(
            path,
            0,
            format!("segment dimension {seg_dim} differs from the collection's {dim}"),
        ));
    }
    let n = n as usize;
    if sections[2].len() != n * dim * 4 {
        return Err(StorageError::corrupt(
            path,
            0,
            format!("vector section holds {} bytes, expected {}", sections[2].len(), n * dim * 4),
        ));
    }
    let mut out = SegmentData::default();
    let mut d = Decoder::new(sections[1]);
    for _ in 0..n {
        out.ids.push(get_id(&mut d).map_err(|e| corrupt(path, e, "ids"))?);
    }
    d.finish().map_err(|e| corrupt(path, e, "ids"))?;
    out.vectors = sections[2];
    let mut d = Decoder::new(sections[3]);
    for _ in 0..n {
        out.payloads.push(get_payload(&mut d).map_err(|e| corrupt(path, e, "payloads"))?);
    }
    d.finish().map_err(|e| corrupt(path, e, "payloads"))?;
    let mut d = Decoder::new(sections[4]);
    for _ in 0..n_tomb {
        out.tombstones.push(get_id(&mut d).map_err(|e| corrupt(path, e, "tombstones"))?);
    }
    d.finish().map_err(|e| corrupt(path, e, "tombstones"))?;
    if let Some(section) = sections.get(5) {
        let mut d = Decoder::new(section);
        for _ in 0..n {
            let row = (|| {
                let has_main = match d.u8()? {
                    0 => false,
                    1 => true,
                    t => return Err(d.error(format!("unknown main-vector flag {t}"))),
                };
                Ok((has_main, get_named(&mut d)?))
            })()
            .map_err(|e| corrupt(path, e, "named vectors"))?;
            out.extras.push(row);
        }
        d.finish().map_err(|e| corrupt(path, e, "named vectors"))?;
    }
    Ok(out)
}

/// A format-2 segment with sorted ids and no tombstones, mapped and used in place as a
/// collection's first rows: ids, vectors and the main-vector bitmap read from the map,
/// payloads and named vectors decoded when asked for. Opening it reads its header, checksum
/// table and small sections (ids, bitmap, offsets); [`BaseSegment::verify_large`] checks the
/// rest when the caller chooses (in the background).
///
/// A base may be *filling*: its file is being fetched from object storage on demand (a read
/// replica's cold start, [`BaseSegment::open_filled`]). Every read of its large sections then
/// goes through the [`Fill`] first, so nothing reads a page the store has not delivered: the
/// map is private to this type, and each accessor asks for exactly the bytes it returns.
#[derive(Debug)]
pub struct BaseSegment {
    path: PathBuf,
    map: MappedFile,
    number: u64,
    fingerprint: u32,
    n: usize,
    dim: usize,
    named: bool,
    /// Per section: where it starts in the file, its length, its stored checksum.
    sections: Vec<(usize, usize, u32)>,
    fill: Option<Arc<Fill>>,
}

impl BaseSegment {
    /// Maps segment `number` at `path` as a base if it is format 2 with sorted ids and no
    /// tombstones (`Ok(None)` otherwise: apply it row by row); checks its small sections.
    pub fn open(path: &Path, number: u64, dim: usize) -> Result<Option<BaseSegment>, StorageError> {
        BaseSegment::open_filled(path, number, dim, None)
    }

    /// [`BaseSegment::open`] of a file being filled by `fill` (whose final path is `path`):
    /// the header, the checksum table, the padding and the small sections are fetched now, the
    /// large sections when they are read. `Ok(None)`: not a base; the caller must complete the
    /// fill before reading the file another way.
    pub fn open_filled(path: &Path, number: u64, dim: usize, fill: Option<Arc<Fill>>) -> Result<Option<BaseSegment>, StorageError> {
        let map = match &fill {
            Some(f) => {
                f.ensure(0..aligned::HEADER_MAX)?;
                let map = MappedFile::open(f.part_path())?;
                let head = &map[..(aligned::HEADER_MAX as usize).min(map.len())];
                let Some((spans, _)) = aligned::layout(SEGMENT_MAGIC, head) else {
                    return Ok(None);
                };
                // Everything but the large sections' bytes (their padding included).
                let mut at = 0u64;
                for &(o, l) in LARGE.iter().filter_map(|&s| spans.get(s)) {
                    f.ensure(at..o)?;
                    at = at.max(o + l);
                }
                f.ensure(at..f.len())?;
                map
            }
            None => MappedFile::open(path)?,
        };
        if !aligned::is_aligned(SEGMENT_MAGIC, &map) {
            return Ok(None);
        }
        let (shape, sections) = {
            let blob = AlignedBlob::open(path, SEGMENT_MAGIC, &map)?;
            for s in SMALL {
                blob.verify(path, s)?;
            }
            let shape = shape(path, &blob, dim)?;
            let sections = (0..blob.len())
                .map(|s| (blob.offset(s) as usize, blob.section(s).len(), blob.checksum(s)))
                .collect();
            (shape, sections)
        };
        if !shape.sorted {
            return Ok(None);
        }
        // Used in place, a row at a time (binary searches, rescoring, payloads).
        map.advise_random();
        let fingerprint = segment_checksum(&map);
        Ok(Some(BaseSegment {
            path: path.to_path_buf(),
            map,
            number,
            fingerprint,
            n: shape.n,
            dim,
            named: shape.named,
            sections,
            fill,
        }))
    }

    fn section(&self, s: usize) -> &[u8] {
        let (at, len, _) = self.sections[s];
        &self.map[at..at + len]
    }

    /// Bytes `range` of section `s`, fetched first if the file is filling. A fetch that fails
    /// is retried (the store's own retries, then backoff here) until it succeeds: a reader
    /// waits for the store rather than read bytes it has not delivered.
    fn part(&self, s: usize, range: std::ops::Range<usize>) -> &[u8] {
        let at = self.sections[s].0;
        if let Some(f) = self.fill.as_deref().filter(|f| !f.is_complete()) {
            let mut wait = std::time::Duration::from_millis(100);
            while let Err(e) = f.ensure((at + range.start) as u64..(at + range.end) as u64) {
                f.note_error(&e);
                std::thread::sleep(wait);
                wait = (wait * 2).min(std::time::Duration::from_secs(5));
            }
        }
        &self.map[at + range.start..at + range.end]
    }

    /// The fill this base's file is coming from, while it is (or was) fetched on demand.
    pub fn fill(&self) -> Option<&Arc<Fill>> {
        self.fill.as_ref()
    }

    /// Fetches what is still missing of a filling file and completes it (nothing to do for a
    /// local one).
    pub fn warm(&self) -> Result<(), StorageError> {
        match &self.fill {
            Some(f) => f.warm(),
            None => Ok(()),
        }
    }

    /// Checks the sections that grow with the data (vectors, payloads, named vectors)
    /// against their checksums: reads them whole, through the file rather than the map (the
    /// map is advised for random reads; a file read gets the kernel's read-ahead). A filling
    /// file is completed first.
    pub fn verify_large(&self) -> Result<(), StorageError> {
        self.warm()?;
        for s in LARGE {
            let (at, len, crc) = self.sections[s];
            aligned::verify_file_section(&self.path, at as u64, len as u64, crc)?;
        }
        Ok(())
    }

    /// The segment's number in the manifest.
    pub fn number(&self) -> u64 {
        self.number
    }

    /// The file's fingerprint (see [`segment_checksum`]).
    pub fn fingerprint(&self) -> u32 {
        self.fingerprint
    }

    /// Rows.
    pub fn len(&self) -> usize {
        self.n
    }

    /// Row `i`'s id (checked when the segment was opened: the ids section's checksum).
    pub fn id(&self, i: usize) -> PointId {
        let b = &self.section(IDS)[i * ID_BYTES..(i + 1) * ID_BYTES];
        get_fixed_id(b).unwrap_or(PointId::Num(u64::MAX))
    }

    /// The row holding `id`, by binary search (the ids are sorted).
    pub fn find(&self, id: &PointId) -> Option<usize> {
        let (mut lo, mut hi) = (0, self.n);
        while lo < hi {
            let mid = (lo + hi) / 2;
            match self.id(mid).cmp(id) {
                std::cmp::Ordering::Less => lo = mid + 1,
                std::cmp::Ordering::Greater => hi = mid,
                std::cmp::Ordering::Equal => return Some(mid),
            }
        }
        None
    }

    /// The first row whose id is at or after `id`.
    pub fn lower_bound(&self, id: &PointId) -> usize {
        let (mut lo, mut hi) = (0, self.n);
        while lo < hi {
            let mid = (lo + hi) / 2;
            if self.id(mid) < *id {
                lo = mid + 1;
            } else {
                hi = mid;
            }
        }
        lo
    }

    /// Every row's vector, row-major (rows without the main vector hold zeros).
    pub fn vectors(&self) -> &[f32] {
        // The section starts 64-byte aligned in a page-aligned map.
        bytemuck::cast_slice(self.part(VECTORS, 0..self.sections[VECTORS].1))
    }

    /// Row `i`'s vector (zeros when the row has no main vector).
    pub fn vector(&self, i: usize) -> &[f32] {
        let w = self.dim * 4;
        bytemuck::cast_slice(self.part(VECTORS, i * w..(i + 1) * w))
    }

    /// The vector section's bytes resident in memory now (nothing is fetched).
    pub fn vectors_resident(&self) -> usize {
        quiver_storage::map::resident_bytes(self.section(VECTORS)).unwrap_or(0)
    }

    /// One bit per row, set when the row holds the main vector (the last word's spare bits
    /// clear).
    pub fn main_words(&self) -> &[u64] {
        bytemuck::cast_slice(self.section(MAIN))
    }

    /// Row `i`'s payload, decoded.
    pub fn payload(&self, i: usize) -> Result<Option<Payload>, StorageError> {
        let at = |s: usize, e: String| StorageError::corrupt(&self.path, self.sections[s].0 as u64, format!("row {i}: {e}"));
        let r = range(self.section(PAYLOAD_ENDS), i, self.sections[PAYLOADS].1).map_err(|e| at(PAYLOAD_ENDS, e))?;
        payload_of(self.part(PAYLOADS, r)).map_err(|e| at(PAYLOADS, e))
    }

    /// Row `i`'s named vectors, decoded.
    pub fn named(&self, i: usize) -> Result<Option<NamedVectors>, StorageError> {
        if !self.named {
            return Ok(None);
        }
        let at = |s: usize, e: String| StorageError::corrupt(&self.path, self.sections[s].0 as u64, format!("row {i}: {e}"));
        let r = range(self.section(NAMED_ENDS), i, self.sections[NAMED].1).map_err(|e| at(NAMED_ENDS, e))?;
        named_of(self.part(NAMED, r)).map_err(|e| at(NAMED, e))
    }

    /// Bytes of the vector and payload sections (for the footprint).
    pub fn section_bytes(&self) -> (usize, usize) {
        (self.sections[VECTORS].1, self.sections[PAYLOADS].1)
    }

    /// Whether any row may hold named vectors.
    pub fn has_named(&self) -> bool {
        self.named
    }
}

/// Version 2: payload, full-text and sparse indexes (version 1 held payload indexes only and
/// is rebuilt when met).
const INDEX_SIDECAR_MAGIC: &[u8; 8] = b"QVPIDX02";

/// The indexes kept beside a base segment, built over exactly its rows.
#[derive(Default)]
pub struct BaseIndexes {
    pub fields: Vec<crate::payload_index::FieldIndex>,
    /// Full-text indexes by payload key.
    pub text: Vec<(String, crate::text_index::TextIndex)>,
    /// Sparse posting lists by vector name.
    pub sparse: Vec<(String, crate::sparse_index::SparseIndex)>,
}

/// [`BaseIndexes`] as bytes, ready for [`write_index_sidecar`].
#[derive(Default)]
pub struct BaseIndexBytes {
    pub fields: Vec<Vec<u8>>,
    pub text: Vec<(String, Vec<u8>)>,
    pub sparse: Vec<(String, Vec<u8>)>,
}

impl BaseIndexBytes {
    pub fn is_empty(&self) -> bool {
        self.fields.is_empty() && self.text.is_empty() && self.sparse.is_empty()
    }
}

/// The index sidecar of the segment at `path` (`<number>.pidx` beside `<number>.seg`).
pub fn index_sidecar_path(segment: &Path) -> PathBuf {
    segment.with_extension("pidx")
}

/// Writes the indexes built over exactly a base's rows beside it (replaced atomically): a
/// cache, named by the base's number, fingerprint and row count, that an open loads instead
/// of decoding every payload and vector.
pub fn write_index_sidecar(base: &BaseSegment, indexes: &BaseIndexBytes) -> Result<(), StorageError> {
    let mut header = Encoder::new();
    header.u64(base.number);
    header.u32(base.fingerprint);
    header.u64(base.n as u64);
    header.u32(indexes.fields.len() as u32);
    header.u32(indexes.text.len() as u32);
    header.u32(indexes.sparse.len() as u32);
    let named: Vec<Vec<u8>> = indexes
        .text
        .iter()
        .chain(&indexes.sparse)
        .map(|(name, bytes)| {
            let mut e = Encoder::with_capacity(bytes.len() + name.len() + 16);
            e.bytes(name.as_bytes());
            e.bytes(bytes);
            e.buf
        })
        .collect();
    let mut sections: Vec<&[u8]> = vec![&header.buf];
    sections.extend(indexes.fields.iter().map(|e| e.as_slice()));
    sections.extend(named.iter().map(|e| e.as_slice()));
    blob::replace_atomic(&index_sidecar_path(&base.path), INDEX_SIDECAR_MAGIC, &sections)
}

/// The indexes of a base's sidecar, if there is one written for this very base and it is
/// whole (its checksum, then each index's own checks): any damage, another base, or a missing
/// file gives `None`, and they are rebuilt.
pub fn read_index_sidecar(base: &BaseSegment) -> Option<BaseIndexes> {
    let path = index_sidecar_path(&base.path);
    let image = std::fs::read(&path).ok()?;
    let sections = blob::decode(&path, INDEX_SIDECAR_MAGIC, &image).ok()?;
    let mut h = Decoder::new(sections.first()?);
    let (number, fingerprint, rows) = (h.u64().ok()?, h.u32().ok()?, h.u64().ok()?);
    if (number, fingerprint, rows) != (base.number, base.fingerprint, base.n as u64) {
        return None;
    }
    let (n_fields, n_text, n_sparse) = (h.u32().ok()? as usize, h.u32().ok()? as usize, h.u32().ok()? as usize);
    if sections.len() != 1 + n_fields + n_text + n_sparse {
        return None;
    }
    let named = |s: &[u8]| -> Option<(String, Vec<u8>)> {
        let mut d = Decoder::new(s);
        let name = String::from_utf8(d.bytes().ok()?.to_vec()).ok()?;
        let bytes = d.bytes().ok()?.to_vec();
        d.finish().ok()?;
        Some((name, bytes))
    };
    let fields = sections[1..=n_fields]
        .iter()
        .map(|s| crate::payload_index::FieldIndex::decode(s).ok())
        .collect::<Option<Vec<_>>>()?;
    let text = sections[1 + n_fields..1 + n_fields + n_text]
        .iter()
        .map(|s| {
            let (name, bytes) = named(s)?;
            Some((name, crate::text_index::TextIndex::decode(&bytes).ok()?))
        })
        .collect::<Option<Vec<_>>>()?;
    let sparse = sections[1 + n_fields + n_text..]
        .iter()
        .map(|s| {
            let (name, bytes) = named(s)?;
            Some((name, crate::sparse_index::SparseIndex::decode(&bytes, base.n).ok()?))
        })
        .collect::<Option<Vec<_>>>()?;
    Some(BaseIndexes { fields, text, sparse })
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::types::Point;

    fn named_points() -> Vec<Point> {
        let mut points = crate::store::tests::named_points();
        points.push(Point::new(uuid::Uuid::from_u128(77), vec![5.0, 6.0]));
        points
    }

    fn write(path: &Path, points: &[Point], tombstones: &[PointId]) -> u32 {
        let rows = |i: usize| -> SegmentRow<'_> {
            let p = &points[i];
            (
                p.id,
                p.vector.as_slice(),
                Some(&p.vectors),
                p.payload.as_ref().map(std::borrow::Cow::Borrowed),
            )
        };
        write_segment_file(path, 2, points.len(), &rows, tombstones).unwrap()
    }

    /// Rows with and without the main vector, named vectors of each kind, payloads, UUIDs and
    /// tombstones come back exactly; the file is aligned and its fingerprint is its tail.
    #[test]
    fn segments_round_trip() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("seg");
        let points = named_points();
        let fp = write(&path, &points, &[PointId::Num(9)]);
        let image = std::fs::read(&path).unwrap();
        assert_eq!(segment_checksum(&image), fp);
        let seg = decode_segment(&path, &image, 2).unwrap();
        assert_eq!(seg.ids, points.iter().map(|p| p.id).collect::<Vec<_>>());
        let mut row = [0.0f32; 2];
        decode_row(seg.vectors, 0, &mut row);
        assert_eq!(row, [1.0, 2.0]);
        for i in 1..3 {
            decode_row(seg.vectors, i, &mut row);
            assert_eq!(row, [0.0; 2], "a row without its main vector holds zeros");
        }
        let flags: Vec<bool> = seg.extras.iter().map(|e| e.0).collect();
        assert_eq!(flags, vec![true, false, false, true, true]);
        for (p, (_, named)) in points.iter().zip(&seg.extras) {
            assert_eq!(named.clone().unwrap_or_default(), p.vectors);
        }
        assert_eq!(seg.payloads, points.iter().map(|p| p.payload.clone()).collect::<Vec<_>>());
        assert_eq!(seg.tombstones, vec![PointId::Num(9)]);
        assert!(decode_segment(&path, &image, 3).is_err(), "another dimension");
        // Tombstones: not a base.
        assert!(BaseSegment::open(&path, 1, 2).unwrap().is_none());
    }

    #[test]
    fn a_sorted_segment_is_a_base_read_in_place() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("seg");
        let points = named_points();
        let fp = write(&path, &points, &[]);
        let base = BaseSegment::open(&path, 5, 2).unwrap().expect("sorted, no tombstones");
        assert_eq!((base.number(), base.fingerprint(), base.len()), (5, fp, points.len()));
        base.verify_large().unwrap();
        for (i, p) in points.iter().enumerate() {
            assert_eq!(base.id(i), p.id);
            assert_eq!(base.find(&p.id), Some(i));
            assert_eq!(base.lower_bound(&p.id), i);
            assert_eq!(base.payload(i).unwrap(), p.payload);
            assert_eq!(base.named(i).unwrap().unwrap_or_default(), p.vectors);
            let has_main = base.main_words()[0] >> i & 1 == 1;
            assert_eq!(has_main, !p.vector.is_empty());
            if has_main {
                assert_eq!(&base.vectors()[i * 2..i * 2 + 2], p.vector.as_slice());
            }
        }
        assert_eq!(base.find(&PointId::Num(0)), None);
        assert_eq!(base.find(&PointId::Num(5)), None);
        assert_eq!(base.lower_bound(&PointId::Num(5)), 4);
        assert_eq!(base.lower_bound(&PointId::Uuid(uuid::Uuid::from_u128(78))), 5);
        // Unsorted ids: applied row by row, never a base.
        let mut shuffled = named_points();
        shuffled.swap(0, 3);
        write(&path, &shuffled, &[]);
        assert!(BaseSegment::open(&path, 5, 2).unwrap().is_none());
    }

    /// Every flipped byte is caught: by the open (header, table, small sections) or by the
    /// check of the large sections; a full decode catches all of them.
    #[test]
    fn every_flipped_byte_of_a_base_is_caught() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("seg");
        write(&path, &named_points(), &[]);
        let good = std::fs::read(&path).unwrap();
        for i in 0..good.len() {
            let mut bad = good.clone();
            bad[i] ^= 0x10;
            std::fs::write(&path, &bad).unwrap();
            let caught = match BaseSegment::open(&path, 1, 2) {
                Err(e) => {
                    assert!(e.to_string().contains("seg"), "{e}");
                    true
                }
                // A changed magic or version: not taken for format 2 (the full decode refuses it).
                Ok(None) => i < 12,
                Ok(Some(b)) => b.verify_large().is_err(),
            };
            // Padding must be zeros, so every byte is covered.
            assert!(caught, "byte {i}");
            assert!(decode_segment(&path, &bad, 2).is_err(), "byte {i}");
        }
    }
}
