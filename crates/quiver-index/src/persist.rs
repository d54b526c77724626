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

use crate::codes::{Codes, Int8Params, Quantization, Store};
use crate::hnsw::{Hnsw, HnswParams, LEVEL_MAX, M_MAX};
use quiver_kernels::ScoreKind;
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
        let p = self.params();
        let mut header = Vec::new();
        for v in [
            c.dim as u64,
            kind_tag(c.kind),
            c.quantization().tag() as u64,
            p.m as u64,
            p.ef_construct as u64,
            p.seed,
            self.len() as u64,
            self.entry.load(Relaxed),
        ] {
            header.extend_from_slice(&v.to_le_bytes());
        }
        let mut links0 = Vec::with_capacity(self.links0.len() * 4);
        put_u32s(&mut links0, self.links0.iter().map(|a| a.load(Relaxed)));
        let mut upper = Vec::new();
        put_u32s(&mut upper, self.upper.iter().flat_map(|u| u.iter().map(|a| a.load(Relaxed))));
        let mut codes = Vec::new();
        match &c.store {
            Store::F32(v) => put_f32s(&mut codes, v),
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
                for w in b {
                    codes.extend_from_slice(&w.to_le_bytes());
                }
                put_f32s(&mut codes, sq_norms);
            }
        }
        vec![header, self.levels.clone(), links0, upper, codes]
    }

    /// Rebuilds an index from [`Hnsw::to_sections`]' output, checking it.
    pub fn from_sections(sections: &[&[u8]]) -> Result<Hnsw, PersistError> {
        let [header, levels, links0, upper, codes] = sections else {
            return Err(bad(format!("expected 5 sections, found {}", sections.len())));
        };
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
        let params = HnswParams {
            m,
            ef_construct: h[4] as usize,
            seed: h[5],
        };
        let n = h[6] as usize;
        if levels.len() != n {
            return Err(bad("levels section does not match the node count"));
        }
        if levels.iter().any(|&l| l > LEVEL_MAX) {
            return Err(bad("a node level is out of range"));
        }
        let mut rest: &[u8] = codes;
        let store = match quant {
            Quantization::None => Store::F32(f32s(split(&mut rest, n * dim, 4)?)?),
            Quantization::Int8 => {
                let lo = f32s(split(&mut rest, dim, 4)?)?;
                let step = f32s(split(&mut rest, dim, 4)?)?;
                let codes = split(&mut rest, n * dim, 1)?.to_vec();
                let sq_norms = f32s(split(&mut rest, n, 4)?)?;
                Store::Int8 {
                    params: Int8Params { lo, step },
                    codes,
                    sq_norms,
                }
            }
            Quantization::Binary => {
                let mean = f32s(split(&mut rest, dim, 4)?)?;
                let words = dim.div_ceil(64);
                let codes = split(&mut rest, n * words, 8)?
                    .chunks_exact(8)
                    .map(|c| u64::from_le_bytes(c.try_into().expect("8 bytes")))
                    .collect();
                let sq_norms = f32s(split(&mut rest, n, 4)?)?;
                Store::Binary {
                    mean,
                    words,
                    codes,
                    sq_norms,
                }
            }
        };
        if !rest.is_empty() {
            return Err(bad("trailing bytes after the codes"));
        }
        let mut index = Hnsw::new(params, Codes::from_store(dim, kind, Store::F32(Vec::new())));
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
        let check = |list: &[u32]| -> Result<(), PersistError> {
            let cnt = list[0] as usize;
            if cnt > list.len() - 1 || list[1..=cnt].iter().any(|&id| id as usize >= n) {
                return Err(bad("a neighbour list is out of range"));
            }
            Ok(())
        };
        for list in l0.chunks_exact(stride0) {
            check(list)?;
        }
        for list in up.chunks_exact(m + 1) {
            check(list)?;
        }
        index.levels = levels.to_vec();
        let mut links0 = Vec::with_capacity(l0.len());
        quiver_kernels::quant::advise_huge_spare(&links0);
        links0.extend(l0.into_iter().map(AtomicU32::new));
        index.links0 = links0;
        let mut off = 0;
        index.upper = levels
            .iter()
            .map(|&l| {
                let len = l as usize * (m + 1);
                let b: Box<[AtomicU32]> = up[off..off + len].iter().map(|&v| AtomicU32::new(v)).collect();
                off += len;
                b
            })
            .collect();
        index.reset_locks();
        let entry = h[7];
        if entry != u64::MAX {
            let (node, level) = (entry as u32 as usize, (entry >> 32) as u8);
            if node >= n || index.levels[node] != level || index.levels.iter().any(|&l| l > level) {
                return Err(bad("the entry point is not a node of the top level"));
            }
        } else if n > 0 {
            return Err(bad("a non-empty index without an entry point"));
        }
        index.entry = AtomicU64::new(entry);
        if index.codes.len() != n {
            return Err(bad("codes do not match the node count"));
        }
        Ok(index)
    }
}
