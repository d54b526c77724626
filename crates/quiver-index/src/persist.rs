//! Saving and loading an index as byte sections (the library wraps them in a checksummed blob,
//! see `docs/format.md`). Loading checks every structural invariant (list counts within
//! capacity, every neighbour id a node, the entry point on its level) and returns a typed error
//! instead of trusting the bytes.
//!
//! Sections, all little-endian:
//! 0. header: `dim, kind, quantization, m, ef_construct, seed, nodes, entry` as u64;
//! 1. levels: one byte per node;
//! 2. level-0 lists: `nodes * (2m + 1)` u32;
//! 3. upper lists: for each node in order, `level * (m + 1)` u32;
//! 4. codes: f32 rows, or int8 `lo, step` (f32), codes (u8) and squared norms (f32), or binary
//!    means (f32), codes (u64) and squared norms (f32).

use crate::cells::Cells;
use crate::codes::{Codes, Int8Params, Quantization, Store};
use crate::hnsw::{Hnsw, HnswParams, UpperSpans, LEVEL_MAX, M_MAX};
use quiver_kernels::ScoreKind;
use quiver_storage::map::PrivateMap;
use std::sync::atomic::{AtomicU32, AtomicU64, Ordering::Relaxed};

#[derive(Debug, thiserror::Error)]
#[error("index file is invalid: {0}")]
pub struct PersistError(pub String);

fn bad(msg: impl Into<String>) -> PersistError {
    PersistError(msg.into())
}

fn kind_tag(k: ScoreKind) -> u64 {
    match k {
        ScoreKind::Dot => 0,
        ScoreKind::NegL2Squared => 1,
        ScoreKind::NegL1 => 2,
    }
}

fn put_u32s(out: &mut Vec<u8>, it: impl Iterator<Item = u32>) {
    for v in it {
        out.extend_from_slice(&v.to_le_bytes());
    }
}

fn put_f32s(out: &mut Vec<u8>, v: &[f32]) {
    out.reserve(v.len() * 4);
    for x in v {
        out.extend_from_slice(&x.to_le_bytes());
    }
}

fn u32s(b: &[u8]) -> Result<Vec<u32>, PersistError> {
    if !b.len().is_multiple_of(4) {
        return Err(bad("u32 section length is not a multiple of 4"));
    }
    Ok(b.chunks_exact(4)
        .map(|c| u32::from_le_bytes(c.try_into().expect("4 bytes")))
        .collect())
}

fn f32s(b: &[u8]) -> Result<Vec<f32>, PersistError> {
    Ok(u32s(b)?.into_iter().map(f32::from_bits).collect())
}

/// Reads `n` items of `size` bytes from the front of `b`.
fn split<'a>(b: &mut &'a [u8], n: usize, size: usize) -> Result<&'a [u8], PersistError> {
    let len = n.checked_mul(size).ok_or_else(|| bad("size overflow"))?;
    if b.len() < len {
        return Err(bad("codes section is too short"));
    }
    let (head, tail) = b.split_at(len);
    *b = tail;
    Ok(head)
}

impl Hnsw {
    /// The codes' drift counts (what [`Codes::drifted`] judges) as bytes, for an index file
    /// that wants to skip counting every vector again when it is loaded.
    pub fn drift_bytes(&self) -> Vec<u8> {
        let d = &self.codes.drift;
        let mut out = Vec::with_capacity(20 + 8 * (d.clamped.len() + d.sum.len() + d.sum_sq.len()));
        out.extend_from_slice(&d.rows.to_le_bytes());
        for part in [d.clamped.len(), d.sum.len(), d.sum_sq.len()] {
            out.extend_from_slice(&(part as u32).to_le_bytes());
        }
        for v in &d.clamped {
            out.extend_from_slice(&v.to_le_bytes());
        }
        for v in d.sum.iter().chain(&d.sum_sq) {
            out.extend_from_slice(&v.to_le_bytes());
        }
        out
    }

    /// Restores drift counts written by [`Hnsw::drift_bytes`]; checked against the dimension.
    pub fn restore_drift(&mut self, bytes: &[u8]) -> Result<(), PersistError> {
        let mut rest = bytes;
        let word =
            |rest: &mut &[u8]| -> Result<u64, PersistError> { Ok(u64::from_le_bytes(split(rest, 1, 8)?.try_into().expect("8 bytes"))) };
        let count = |rest: &mut &[u8]| -> Result<usize, PersistError> {
            Ok(u32::from_le_bytes(split(rest, 1, 4)?.try_into().expect("4 bytes")) as usize)
        };
        let rows = word(&mut rest)?;
        let (nc, ns, nq) = (count(&mut rest)?, count(&mut rest)?, count(&mut rest)?);
        let dim = self.codes.dim;
        if [nc, ns, nq].iter().any(|&n| n != 0 && n != dim) {
            return Err(bad("drift counts do not match the dimension"));
        }
        let clamped = (0..nc).map(|_| word(&mut rest)).collect::<Result<Vec<u64>, _>>()?;
        let sum = (0..ns)
            .map(|_| word(&mut rest).map(f64::from_bits))
            .collect::<Result<Vec<f64>, _>>()?;
        let sum_sq = (0..nq)
            .map(|_| word(&mut rest).map(f64::from_bits))
            .collect::<Result<Vec<f64>, _>>()?;
        if !rest.is_empty() {
            return Err(bad("trailing bytes after the drift counts"));
        }
        self.codes.drift = crate::codes::Drift {
            rows,
            clamped,
            sum,
            sum_sq,
        };
        Ok(())
    }

    /// The index as sections (see the module documentation).
    pub fn to_sections(&self) -> Vec<Vec<u8>> {
        let c = self.codes();
        let header = Header::of(self);
        let mut links0 = Vec::with_capacity(self.links0.len() * 4);
        put_u32s(&mut links0, self.links0.iter().map(|a| a.load(Relaxed)));
        let mut upper = Vec::new();
        put_u32s(&mut upper, self.upper.iter().map(|a| a.load(Relaxed)));
        let mut codes = Vec::new();
        match &c.store {
            Store::F32(v) => put_f32s(&mut codes, v),
            Store::Half(_) => unreachable!("a graph's codes are never a build copy (Codes::build_copy is crate-private)"),
            Store::Int8 {
                params,
                codes: b,
                sq_norms,
            } => {
                put_f32s(&mut codes, &params.lo);
                put_f32s(&mut codes, &params.step);
                codes.extend_from_slice(b);
                put_f32s(&mut codes, sq_norms);
            }
            Store::Binary {
                mean, codes: b, sq_norms, ..
            } => {
                put_f32s(&mut codes, mean);
                for w in b.iter() {
                    codes.extend_from_slice(&w.to_le_bytes());
                }
                put_f32s(&mut codes, sq_norms);
            }
        }
        vec![header, self.levels.to_vec(), links0, upper, codes]
    }

    /// Rebuilds an index from [`Hnsw::to_sections`]' output, checking it.
    pub fn from_sections(sections: &[&[u8]]) -> Result<Hnsw, PersistError> {
        let [header, levels, links0, upper, codes] = sections else {
            return Err(bad(format!("expected 5 sections, found {}", sections.len())));
        };
        let Header {
            dim,
            kind,
            quant,
            params,
            nodes: n,
            entry,
        } = Header::parse(header)?;
        let m = params.m;
        check_levels(levels, n)?;
        let mut rest: &[u8] = codes;
        let store = match quant {
            Quantization::None => Store::F32(f32s(split(&mut rest, n * dim, 4)?)?.into()),
            Quantization::Int8 => {
                let lo = f32s(split(&mut rest, dim, 4)?)?;
                let step = f32s(split(&mut rest, dim, 4)?)?;
                let codes = split(&mut rest, n * dim, 1)?.to_vec();
                let sq_norms = f32s(split(&mut rest, n, 4)?)?;
                Store::Int8 {
                    params: Int8Params { lo, step },
                    codes: codes.into(),
                    sq_norms: sq_norms.into(),
                }
            }
            Quantization::Binary => {
                let mean = f32s(split(&mut rest, dim, 4)?)?;
                let words = dim.div_ceil(64);
                let codes = split(&mut rest, n * words, 8)?
                    .chunks_exact(8)
                    .map(|c| u64::from_le_bytes(c.try_into().expect("8 bytes")))
                    .collect::<Vec<u64>>()
                    .into();
                let sq_norms = f32s(split(&mut rest, n, 4)?)?;
                Store::Binary {
                    mean,
                    words,
                    codes,
                    sq_norms: sq_norms.into(),
                }
            }
        };
        if !rest.is_empty() {
            return Err(bad("trailing bytes after the codes"));
        }
        let mut index = Hnsw::new(params, Codes::from_store(dim, kind, Store::F32(Cells::default())));
        index.codes = Codes::from_store(dim, kind, store);
        index.finish_build();
        let stride0 = 2 * m + 1;
        let l0 = u32s(links0)?;
        if l0.len() != n * stride0 {
            return Err(bad("level-0 section does not match the node count"));
        }
        let up = u32s(upper)?;
        let want_up: usize = levels.iter().map(|&l| l as usize * (m + 1)).sum();
        if up.len() != want_up {
            return Err(bad("upper-level section does not match the levels"));
        }
        for list in l0.chunks_exact(stride0) {
            check_list(list, n)?;
        }
        for list in up.chunks_exact(m + 1) {
            check_list(list, n)?;
        }
        index.levels = levels.to_vec().into();
        let mut links0 = Vec::with_capacity(l0.len());
        quiver_kernels::quant::advise_huge_spare(&links0);
        links0.extend(l0.into_iter().map(AtomicU32::new));
        index.links0 = links0.into();
        index.upper = up.into_iter().map(AtomicU32::new).collect::<Vec<_>>().into();
        index.upper_spans = upper_spans(levels, m);
        check_entry(entry, levels)?;
        index.entry = AtomicU64::new(entry);
        if index.codes.len() != n {
            return Err(bad("codes do not match the node count"));
        }
        Ok(index)
    }
}

/// An index's header section: `dim, kind, quantization, m, ef_construct, seed, nodes, entry`.
struct Header {
    dim: usize,
    kind: ScoreKind,
    quant: Quantization,
    params: HnswParams,
    nodes: usize,
    entry: u64,
}

impl Header {
    fn of(index: &Hnsw) -> Vec<u8> {
        let (c, p) = (index.codes(), index.params());
        let mut header = Vec::with_capacity(64);
        for v in [
            c.dim as u64,
            kind_tag(c.kind),
            c.quantization().tag() as u64,
            p.m as u64,
            p.ef_construct as u64,
            p.seed,
            index.len() as u64,
            index.entry.load(Relaxed),
        ] {
            header.extend_from_slice(&v.to_le_bytes());
        }
        header
    }

    fn parse(header: &[u8]) -> Result<Header, PersistError> {
        if header.len() != 64 {
            return Err(bad("header must be 64 bytes"));
        }
        let h: Vec<u64> = header
            .chunks_exact(8)
            .map(|c| u64::from_le_bytes(c.try_into().expect("8 bytes")))
            .collect();
        let dim = h[0] as usize;
        let kind = match h[1] {
            0 => ScoreKind::Dot,
            1 => ScoreKind::NegL2Squared,
            2 => ScoreKind::NegL1,
            k => return Err(bad(format!("unknown metric tag {k}"))),
        };
        let quant = u8::try_from(h[2])
            .ok()
            .and_then(Quantization::from_tag)
            .ok_or_else(|| bad("unknown quantization"))?;
        let m = h[3] as usize;
        if !(2..=M_MAX).contains(&m) || dim == 0 || dim > 1 << 20 {
            return Err(bad(format!("implausible m {m} or dimension {dim}")));
        }
        if h[6] > u32::MAX as u64 {
            return Err(bad("implausible node count"));
        }
        Ok(Header {
            dim,
            kind,
            quant,
            params: HnswParams {
                m,
                ef_construct: h[4] as usize,
                seed: h[5],
            },
            nodes: h[6] as usize,
            entry: h[7],
        })
    }
}

fn check_levels(levels: &[u8], n: usize) -> Result<(), PersistError> {
    if levels.len() != n {
        return Err(bad("levels section does not match the node count"));
    }
    if levels.iter().any(|&l| l > LEVEL_MAX) {
        return Err(bad("a node level is out of range"));
    }
    Ok(())
}

fn check_list(list: &[u32], n: usize) -> Result<(), PersistError> {
    let cnt = list[0] as usize;
    if cnt > list.len() - 1 || list[1..=cnt].iter().any(|&id| id as usize >= n) {
        return Err(bad("a neighbour list is out of range"));
    }
    Ok(())
}

fn check_entry(entry: u64, levels: &[u8]) -> Result<(), PersistError> {
    if entry != u64::MAX {
        let (node, level) = (entry as u32 as usize, (entry >> 32) as u8);
        if node >= levels.len() || levels[node] != level || levels.iter().any(|&l| l > level) {
            return Err(bad("the entry point is not a node of the top level"));
        }
    } else if !levels.is_empty() {
        return Err(bad("a non-empty index without an entry point"));
    }
    Ok(())
}

/// Where each node's upper lists are (see [`Hnsw`]'s fields), from the levels.
fn upper_spans(levels: &[u8], m: usize) -> UpperSpans {
    let mut spans = UpperSpans::default();
    for &l in levels {
        spans.push(l as usize * (m + 1));
    }
    spans
}

/// Parts of a mapped index copied into memory ([`Hnsw::copy_mapped`]).
pub struct InMemory {
    graph: Option<(Cells<u8>, Cells<AtomicU32>, Cells<AtomicU32>)>,
    store: Option<Store>,
}

/// How many sections [`Hnsw::write_mapped_sections`] writes.
pub const MAPPED_SECTIONS: usize = 7;

/// Writes the values of `it` as little-endian bytes through `out`, a buffer at a time.
fn stream<E, const W: usize>(it: impl Iterator<Item = [u8; W]>, out: &mut dyn FnMut(&[u8]) -> Result<(), E>) -> Result<(), E> {
    let mut buf = Vec::with_capacity(1 << 16);
    for v in it {
        buf.extend_from_slice(&v);
        if buf.len() >= 1 << 16 {
            out(&buf)?;
            buf.clear();
        }
    }
    if buf.is_empty() {
        Ok(())
    } else {
        out(&buf)
    }
}

impl Hnsw {
    /// The lengths of the sections of the mapped layout, in order: header (64 bytes), levels
    /// (a byte a node), level-0 lists (`2m + 1` u32 a node), upper lists (u32, nodes above
    /// level 0 in order), code parameters (int8 `lo` then `step`, or binary means; f32), codes
    /// (f32 rows, u8 codes or u64 words), squared norms (f32 a node; none for f32 codes).
    /// Every section is a little-endian array, so a file whose sections start aligned (an
    /// aligned blob) can be used in place by [`Hnsw::from_mapped`].
    pub fn mapped_section_lens(&self) -> [u64; MAPPED_SECTIONS] {
        let (params, codes, norms) = match &self.codes.store {
            Store::F32(v) => (0, v.len() * 4, 0),
            Store::Half(_) => unreachable!("a graph's codes are never a build copy (Codes::build_copy is crate-private)"),
            Store::Int8 { params, codes, sq_norms } => (params.lo.len() * 8, codes.len(), sq_norms.len() * 4),
            Store::Binary { mean, codes, sq_norms, .. } => (mean.len() * 4, codes.len() * 8, sq_norms.len() * 4),
        };
        [
            64,
            self.levels.len(),
            self.links0.len() * 4,
            self.upper.len() * 4,
            params,
            codes,
            norms,
        ]
        .map(|l| l as u64)
    }

    /// Writes the sections of [`Hnsw::mapped_section_lens`] through `out`, in order, in pieces.
    pub fn write_mapped_sections<E>(&self, out: &mut dyn FnMut(&[u8]) -> Result<(), E>) -> Result<(), E> {
        out(&Header::of(self))?;
        out(&self.levels)?;
        stream(self.links0.iter().map(|a| a.load(Relaxed).to_le_bytes()), out)?;
        stream(self.upper.iter().map(|a| a.load(Relaxed).to_le_bytes()), out)?;
        let f32s = |v: &[f32], out: &mut dyn FnMut(&[u8]) -> Result<(), E>| stream(v.iter().map(|x| x.to_le_bytes()), out);
        match &self.codes.store {
            Store::F32(v) => f32s(v, out),
            Store::Half(_) => unreachable!("a graph's codes are never a build copy (Codes::build_copy is crate-private)"),
            Store::Int8 { params, codes, sq_norms } => {
                f32s(&params.lo, out)?;
                f32s(&params.step, out)?;
                out(codes)?;
                f32s(sq_norms, out)
            }
            Store::Binary { mean, codes, sq_norms, .. } => {
                f32s(mean, out)?;
                stream(codes.iter().map(|w| w.to_le_bytes()), out)?;
                f32s(sq_norms, out)
            }
        }
    }

    /// An index used in place from `map`, whose sections (the layout of
    /// [`Hnsw::mapped_section_lens`]) are at `spans` (byte offset, length). Checks what is
    /// small (header, levels, upper lists, entry point, every length) and trusts the level-0
    /// lists and the codes to the caller's checksums: a search never indexes past a node with
    /// a damaged neighbour id (it skips it). The first insert copies what it changes into memory.
    pub fn from_mapped(map: std::sync::Arc<PrivateMap>, spans: &[(usize, usize)]) -> Result<Hnsw, PersistError> {
        let &[header, levels, links0, upper, params, codes, norms] = spans else {
            return Err(bad(format!("expected {MAPPED_SECTIONS} sections, found {}", spans.len())));
        };
        let bytes = |(off, len): (usize, usize)| -> Result<&[u8], PersistError> {
            map.bytes()
                .get(off..off + len)
                .ok_or_else(|| bad("a section lies outside the file"))
        };
        let Header {
            dim,
            kind,
            quant,
            params: hp,
            nodes: n,
            entry,
        } = Header::parse(bytes(header)?)?;
        let m = hp.m;
        let level_bytes = bytes(levels)?;
        check_levels(level_bytes, n)?;
        check_entry(entry, level_bytes)?;
        let spans = upper_spans(level_bytes, m);
        let cells = |(_, len): (usize, usize), size: usize, what: &str| -> Result<usize, PersistError> {
            if !len.is_multiple_of(size) {
                return Err(bad(format!("the {what} section is not whole values")));
            }
            Ok(len / size)
        };
        let exact = |span: (usize, usize), size: usize, want: usize, what: &str| -> Result<(), PersistError> {
            if cells(span, size, what)? != want {
                return Err(bad(format!("the {what} section does not match the node count")));
            }
            Ok(())
        };
        let mapped = |(off, len): (usize, usize), size: usize| Ok::<_, PersistError>((off, len / size));
        let put = |what: &str| bad(format!("the {what} section is not aligned for use in place"));
        exact(links0, 4, n * (2 * m + 1), "level-0 lists")?;
        exact(upper, 4, spans.total(), "upper-level")?;
        let (o, l) = mapped(upper, 4)?;
        let upper_cells = Cells::<AtomicU32>::mapped(map.clone(), o, l).ok_or_else(|| put("upper-level"))?;
        for list in upper_cells.chunks_exact(m + 1) {
            let words: Vec<u32> = list.iter().map(|a| a.load(Relaxed)).collect();
            check_list(&words, n)?;
        }
        let (o, l) = mapped(links0, 4)?;
        let links0_cells = Cells::<AtomicU32>::mapped(map.clone(), o, l).ok_or_else(|| put("level-0 lists"))?;
        let f32_params = |span: (usize, usize), want: usize| -> Result<Vec<f32>, PersistError> {
            exact(span, 4, want, "code parameters")?;
            f32s(bytes(span)?)
        };
        let norms_cells = |want: usize| -> Result<Cells<f32>, PersistError> {
            exact(norms, 4, want, "norms")?;
            let (o, l) = mapped(norms, 4)?;
            Cells::mapped(map.clone(), o, l).ok_or_else(|| put("norms"))
        };
        let store = match quant {
            Quantization::None => {
                exact(codes, 4, n * dim, "codes")?;
                exact(params, 4, 0, "code parameters")?;
                exact(norms, 4, 0, "norms")?;
                let (o, l) = mapped(codes, 4)?;
                Store::F32(Cells::mapped(map.clone(), o, l).ok_or_else(|| put("codes"))?)
            }
            Quantization::Int8 => {
                let both = f32_params(params, 2 * dim)?;
                exact(codes, 1, n * dim, "codes")?;
                Store::Int8 {
                    params: Int8Params {
                        lo: both[..dim].to_vec(),
                        step: both[dim..].to_vec(),
                    },
                    codes: Cells::mapped(map.clone(), codes.0, codes.1).ok_or_else(|| put("codes"))?,
                    sq_norms: norms_cells(n)?,
                }
            }
            Quantization::Binary => {
                let words = dim.div_ceil(64);
                let mean = f32_params(params, dim)?;
                exact(codes, 8, n * words, "codes")?;
                let (o, l) = mapped(codes, 8)?;
                Store::Binary {
                    mean,
                    words,
                    codes: Cells::mapped(map.clone(), o, l).ok_or_else(|| put("codes"))?,
                    sq_norms: norms_cells(n)?,
                }
            }
        };
        let (o, l) = levels;
        let level_cells = Cells::mapped(map.clone(), o, l).ok_or_else(|| put("levels"))?;
        let mut index = Hnsw::new(hp, Codes::from_store(dim, kind, Store::F32(Cells::default())));
        index.codes = Codes::from_store(dim, kind, store);
        index.finish_build();
        index.levels = level_cells;
        index.links0 = links0_cells;
        index.upper = upper_cells;
        index.upper_spans = spans;
        index.entry = AtomicU64::new(entry);
        Ok(index)
    }

    /// Whether any part of the graph or the codes is read in place from a mapped file.
    pub fn is_mapped(&self) -> bool {
        self.mapped_bytes() > 0
    }

    /// Copies into memory the mapped parts an index should keep there: the graph (levels and
    /// lists) when `graph`, the codes when `codes`. Taken under a read lock that excludes
    /// writers (an upgradable one), installed by [`Hnsw::install`] under the write lock:
    /// searches go on while the bytes are copied.
    pub fn copy_mapped(&self, graph: bool, codes: bool) -> InMemory {
        let graph = graph && (self.links0.map().is_some() || self.upper.map().is_some() || self.levels.map().is_some());
        InMemory {
            graph: graph.then(|| (self.levels.owned(), self.links0.owned(), self.upper.owned())),
            store: (codes && self.codes.mapped_bytes() > 0).then(|| match &self.codes.store {
                Store::F32(v) => Store::F32(v.owned()),
                Store::Half(_) => unreachable!("a graph's codes are never a build copy (Codes::build_copy is crate-private)"),
                Store::Int8 { params, codes, sq_norms } => Store::Int8 {
                    params: params.clone(),
                    codes: codes.owned(),
                    sq_norms: sq_norms.owned(),
                },
                Store::Binary {
                    mean,
                    words,
                    codes,
                    sq_norms,
                } => Store::Binary {
                    mean: mean.clone(),
                    words: *words,
                    codes: codes.owned(),
                    sq_norms: sq_norms.owned(),
                },
            }),
        }
    }

    /// Installs what [`Hnsw::copy_mapped`] copied (the index must not have changed since:
    /// hold the lock that excluded writers across both).
    pub fn install(&mut self, copy: InMemory) {
        if let Some((levels, links0, upper)) = copy.graph {
            debug_assert_eq!(levels.len(), self.levels.len());
            (self.levels, self.links0, self.upper) = (levels, links0, upper);
        }
        if let Some(store) = copy.store {
            self.codes.store = store;
        }
    }

    /// Advice for the mapped pages an index leaves on disk (read when a search needs them):
    /// no read-ahead around them. Nothing for an index in memory.
    pub fn advise_random(&self) {
        // Every mapped column of an index comes from one file: its level-0 lists' map.
        if let Some(map) = self.links0.map() {
            map.advise(false);
        }
    }
}
