//! The vectors as the index sees them: full precision, int8 or binary codes, and the score of a
//! prepared query against one stored code. Every score is "higher is better", like
//! [`quiver_kernels::ScoreKind`].
//!
//! * `F32`: the vectors themselves; the score is exact.
//! * `Int8`: one byte per dimension, `x_i ~ lo_i + step_i * c_i` with `lo`/`step` learned per
//!   dimension from the data (0.05% and 99.95% quantiles; values outside are clamped). The query
//!   stays in floats (asymmetric distance): `<q, x> ~ sum (q_i step_i) c_i + sum q_i lo_i`, one
//!   `dot_u8` kernel call. Euclidean uses `-|q - x|^2 = 2<q, x> - |x|^2 - |q|^2`, where `|x|^2` of
//!   the dequantized vector is stored per code and `|q|^2` is dropped (constant per query).
//! * `Binary`: one bit per dimension, set when `x_i` is above the dimension's mean `m_i`; the
//!   code stands for `m + s` with `s_i = ±1`. The query stays in floats (asymmetric, much better
//!   than Hamming between two bit strings): `<q, m + s> = <q, m> - sum q_i + 2 sum_{bit i} q_i`,
//!   one `dot_bits` call. Euclidean ranks by `2<q, x> - |x|^2` with `|x|^2` stored per code.
//!   Coarse: meant for high dimensions and always followed by rescoring.
//!
//! Manhattan distance is only supported at full precision.

use crate::cells::Cells;
use crate::half_rows::HalfRows;
use quiver_kernels::quant::{advise_huge_spare, prefetch, QuantKernels};
use quiver_kernels::simd::Kernels;
use quiver_kernels::ScoreKind;

/// How stored vectors are encoded for traversal.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum Quantization {
    None,
    Int8,
    Binary,
}

impl Quantization {
    pub fn name(self) -> &'static str {
        match self {
            Quantization::None => "none",
            Quantization::Int8 => "int8",
            Quantization::Binary => "binary",
        }
    }

    pub fn parse(s: &str) -> Option<Quantization> {
        match s {
            "none" => Some(Quantization::None),
            "int8" => Some(Quantization::Int8),
            "binary" => Some(Quantization::Binary),
            _ => None,
        }
    }

    pub(crate) fn tag(self) -> u8 {
        match self {
            Quantization::None => 0,
            Quantization::Int8 => 1,
            Quantization::Binary => 2,
        }
    }

    pub(crate) fn from_tag(t: u8) -> Option<Quantization> {
        [Quantization::None, Quantization::Int8, Quantization::Binary]
            .into_iter()
            .find(|q| q.tag() == t)
    }
}

/// Per-dimension parameters of int8 codes.
#[derive(Clone, Debug, PartialEq)]
pub struct Int8Params {
    pub lo: Vec<f32>,
    pub step: Vec<f32>,
}

#[derive(Clone, Debug)]
pub(crate) enum Store {
    F32(Cells<f32>),
    /// A build copy in half precision (see `half_rows.rs`): made only by
    /// [`Codes::build_copy`], never saved, never a graph's search codes.
    Half(HalfRows),
    Int8 {
        params: Int8Params,
        codes: Cells<u8>,
        sq_norms: Cells<f32>,
    },
    Binary {
        mean: Vec<f32>,
        words: usize,
        codes: Cells<u64>,
        sq_norms: Cells<f32>,
    },
}

/// The stored codes of every node, in node order.
#[derive(Clone, Debug)]
pub struct Codes {
    pub(crate) kind: ScoreKind,
    pub(crate) dim: usize,
    pub(crate) store: Store,
    pub(crate) drift: Drift,
    kernels: Kernels,
    quant: QuantKernels,
}

/// What the encoding has seen of the data since it was trained, so the owner can tell when the
/// data moved away from what it learned (sorted or drifting data, a new cluster): counted by
/// [`Codes::push`] and [`Codes::observe`], saved beside an index file by [`crate::Hnsw::drift_bytes`].
#[derive(Clone, Debug, Default, PartialEq)]
pub(crate) struct Drift {
    /// Vectors counted.
    pub(crate) rows: u64,
    /// Int8: per dimension, values outside the trained range (clamped to code 0 or 255).
    pub(crate) clamped: Vec<u64>,
    /// Binary: per dimension, the sum and the sum of squares of the values.
    pub(crate) sum: Vec<f64>,
    pub(crate) sum_sq: Vec<f64>,
}

/// Int8 codes are retrained when more than this share of the values of one dimension were
/// clamped (the trained quantiles clamp 0.1% of the training sample).
pub const CLAMPED_SHARE_MAX: f64 = 0.01;
/// Binary codes are retrained when the mean of one dimension moved by more than this many
/// standard deviations from the trained mean.
pub const MEAN_SHIFT_MAX: f64 = 0.5;
/// Drift is judged only over at least this many vectors.
const DRIFT_ROWS_MIN: u64 = 1000;
/// Int8 ranges and binary means are learned from at most this many rows.
const TRAIN_ROWS_MAX: usize = 20_000;

impl Drift {
    fn observe(&mut self, store: &Store, dim: usize, rows: &[f32]) {
        match store {
            Store::F32(_) | Store::Half(_) => {}
            Store::Int8 { params, .. } => {
                self.clamped.resize(dim, 0);
                for row in rows.chunks_exact(dim) {
                    for (((&x, &lo), &step), n) in row.iter().zip(&params.lo).zip(&params.step).zip(self.clamped.iter_mut()) {
                        let c = (x - lo) / step;
                        *n += u64::from(!(-0.5..=255.5).contains(&c));
                    }
                }
            }
            Store::Binary { .. } => {
                self.sum.resize(dim, 0.0);
                self.sum_sq.resize(dim, 0.0);
                for row in rows.chunks_exact(dim) {
                    for ((&x, s), q) in row.iter().zip(self.sum.iter_mut()).zip(self.sum_sq.iter_mut()) {
                        *s += x as f64;
                        *q += x as f64 * x as f64;
                    }
                }
            }
        }
        self.rows += (rows.len() / dim) as u64;
    }

    fn drifted(&self, store: &Store) -> bool {
        if self.rows < DRIFT_ROWS_MIN {
            return false;
        }
        let rows = self.rows as f64;
        match store {
            Store::F32(_) | Store::Half(_) => false,
            Store::Int8 { .. } => self.clamped.iter().any(|&n| n as f64 > CLAMPED_SHARE_MAX * rows),
            Store::Binary { mean, .. } => self.sum.iter().zip(&self.sum_sq).zip(mean).any(|((&s, &q), &m)| {
                let mu = s / rows;
                let sd = (q / rows - mu * mu).max(0.0).sqrt();
                sd > 0.0 && (mu - m as f64).abs() > MEAN_SHIFT_MAX * sd
            }),
        }
    }
}

/// A query prepared for one [`Codes`]: reusable scratch, filled by [`Codes::prepare`].
#[derive(Clone, Debug, Default)]
pub struct Prepared {
    f: Vec<f32>,
    bias: f32,
    bits: Vec<u64>,
}

impl Codes {
    /// Empty codes. `sample` (row-major, `dim` columns) trains the int8 ranges and the binary
    /// means; it may be empty for `Quantization::None`.
    pub fn new(dim: usize, kind: ScoreKind, quantization: Quantization, sample: &[f32]) -> Codes {
        assert!(dim > 0 && sample.len().is_multiple_of(dim));
        let store = match quantization {
            Quantization::None => Store::F32(Cells::default()),
            Quantization::Int8 => Store::Int8 {
                params: train_int8(dim, sample),
                codes: Cells::default(),
                sq_norms: Cells::default(),
            },
            Quantization::Binary => {
                let rows = sample.len() / dim;
                let take = rows.clamp(1, TRAIN_ROWS_MAX);
                let mut sum = vec![0.0f64; dim];
                for i in 0..rows.min(take) {
                    let r = i * rows / take;
                    for (m, x) in sum.iter_mut().zip(&sample[r * dim..(r + 1) * dim]) {
                        *m += *x as f64;
                    }
                }
                let mean: Vec<f32> = sum.iter().map(|s| (s / take as f64) as f32).collect();
                Store::Binary {
                    mean,
                    words: dim.div_ceil(64),
                    codes: Cells::default(),
                    sq_norms: Cells::default(),
                }
            }
        };
        Codes::from_store(dim, kind, store)
    }

    /// The full-precision copy a quantized graph links new nodes with, holding `rows`
    /// (row-major): in half precision around the rows' mean where they fit (see
    /// `half_rows.rs`), else in `f32`. Rows pushed later that do not fit the half-precision
    /// frame turn the whole copy into `f32`.
    pub(crate) fn build_copy(dim: usize, kind: ScoreKind, rows: &[f32]) -> Codes {
        if let Some(h) = HalfRows::for_rows(dim, kind, rows) {
            let mut copy = Codes::from_store(dim, kind, Store::Half(h));
            copy.push(rows);
            return copy;
        }
        let mut exact = Codes::new(dim, kind, Quantization::None, &[]);
        exact.push(rows);
        exact
    }

    pub(crate) fn from_store(dim: usize, kind: ScoreKind, store: Store) -> Codes {
        Codes {
            kind,
            dim,
            store,
            drift: Drift::default(),
            kernels: *Kernels::best(),
            quant: *QuantKernels::best(),
        }
    }

    pub fn dim(&self) -> usize {
        self.dim
    }

    pub fn kind(&self) -> ScoreKind {
        self.kind
    }

    pub fn quantization(&self) -> Quantization {
        match self.store {
            // A build copy stands for the full-precision vectors.
            Store::F32(_) | Store::Half(_) => Quantization::None,
            Store::Int8 { .. } => Quantization::Int8,
            Store::Binary { .. } => Quantization::Binary,
        }
    }

    /// Whether [`Codes::score_nodes`] scores two nodes from their rows (full precision, and
    /// the half-precision build copy).
    pub fn scores_nodes(&self) -> bool {
        matches!(self.store, Store::F32(_) | Store::Half(_))
    }

    /// Whether scores are exact (no rescoring needed).
    pub fn is_exact(&self) -> bool {
        matches!(self.store, Store::F32(_))
    }

    pub fn len(&self) -> usize {
        match &self.store {
            Store::F32(v) => v.len() / self.dim,
            Store::Half(h) => h.len(),
            Store::Int8 { sq_norms, .. } => sq_norms.len(),
            Store::Binary { sq_norms, .. } => sq_norms.len(),
        }
    }

    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }

    /// Bytes held by the codes.
    pub fn memory_bytes(&self) -> usize {
        match &self.store {
            Store::F32(v) => v.heap_bytes(),
            Store::Half(h) => h.memory_bytes(),
            Store::Int8 { codes, sq_norms, params } => codes.heap_bytes() + sq_norms.heap_bytes() + params.lo.len() * 8,
            Store::Binary { codes, mean, sq_norms, .. } => codes.heap_bytes() + mean.len() * 4 + sq_norms.heap_bytes(),
        }
    }

    /// Bytes of codes read in place from a mapped index file.
    pub fn mapped_bytes(&self) -> usize {
        match &self.store {
            Store::F32(v) => v.mapped_bytes(),
            Store::Half(_) => 0,
            Store::Int8 { codes, sq_norms, .. } => codes.mapped_bytes() + sq_norms.mapped_bytes(),
            Store::Binary { codes, sq_norms, .. } => codes.mapped_bytes() + sq_norms.mapped_bytes(),
        }
    }

    /// Counts `rows` (row-major, `dim` columns) in the drift statistics without storing them:
    /// for codes loaded from a file, whose vectors were counted in another process.
    pub fn observe(&mut self, rows: &[f32]) {
        assert_eq!(rows.len() % self.dim, 0);
        self.drift.observe(&self.store, self.dim, rows);
    }

    /// Whether the data counted so far (see [`Codes::observe`]) moved away from what the
    /// encoding was trained on: for int8, more than [`CLAMPED_SHARE_MAX`] of one dimension's
    /// values fell outside its range; for binary, one dimension's mean moved by more than
    /// [`MEAN_SHIFT_MAX`] standard deviations. Full precision never drifts.
    pub fn drifted(&self) -> bool {
        self.drift.drifted(&self.store)
    }

    /// Whether adding `rows` would leave the codes drifted: asked before new nodes are linked,
    /// so that they are linked with codes that fit them.
    pub fn drifted_with(&self, rows: &[f32]) -> bool {
        let mut d = self.drift.clone();
        d.observe(&self.store, self.dim, rows);
        d.drifted(&self.store)
    }

    /// The same encoding trained anew on a sample spread over `rows` and `extra` (row-major,
    /// `dim` columns), with the codes of `rows` (every node's vector, in node order): the codes
    /// that replace drifted ones. `extra` are vectors about to be added.
    pub fn retrained(&self, rows: &[f32], extra: &[f32]) -> Codes {
        let dim = self.dim;
        let (a, b) = (rows.len() / dim, extra.len() / dim);
        let total = a + b;
        let take = total.min(TRAIN_ROWS_MAX);
        let mut sample = Vec::with_capacity(take * dim);
        for i in 0..take {
            let r = i * total / take.max(1);
            let row = if r < a {
                &rows[r * dim..(r + 1) * dim]
            } else {
                &extra[(r - a) * dim..(r - a + 1) * dim]
            };
            sample.extend_from_slice(row);
        }
        let mut c = Codes::new(dim, self.kind, self.quantization(), &sample);
        c.push(rows);
        c
    }

    /// Appends the codes of `rows` (row-major, `dim` columns).
    pub fn push(&mut self, rows: &[f32]) {
        assert_eq!(rows.len() % self.dim, 0);
        self.observe(rows);
        let dim = self.dim;
        let mut widened = None;
        match &mut self.store {
            Store::F32(v) => {
                let v = v.to_mut();
                v.reserve(rows.len());
                advise_huge_spare(v);
                v.extend_from_slice(rows)
            }
            Store::Half(h) => {
                if !h.push(rows) {
                    // Beyond the frame: the copy goes on in full precision.
                    let mut all = Vec::with_capacity(h.len() * dim + rows.len());
                    let mut one = Vec::with_capacity(dim);
                    for node in 0..h.len() as u32 {
                        h.decode(node, &mut one);
                        all.extend_from_slice(&one);
                    }
                    all.extend_from_slice(rows);
                    widened = Some(Store::F32(all.into()));
                }
            }
            Store::Int8 { params, codes, sq_norms } => {
                let (codes, sq_norms) = (codes.to_mut(), sq_norms.to_mut());
                codes.reserve(rows.len());
                advise_huge_spare(codes);
                for row in rows.chunks_exact(dim) {
                    let mut sq = 0.0f32;
                    for ((&x, &lo), &step) in row.iter().zip(&params.lo).zip(&params.step) {
                        let c = ((x - lo) / step).round().clamp(0.0, 255.0);
                        let back = lo + step * c;
                        sq += back * back;
                        codes.push(c as u8);
                    }
                    sq_norms.push(sq);
                }
            }
            Store::Binary {
                mean,
                words,
                codes,
                sq_norms,
            } => {
                let (codes, sq_norms) = (codes.to_mut(), sq_norms.to_mut());
                for row in rows.chunks_exact(dim) {
                    let start = codes.len();
                    codes.resize(start + *words, 0);
                    let mut sq = 0.0f32;
                    for (i, (&x, &m)) in row.iter().zip(mean.iter()).enumerate() {
                        let back = if x > m { m + 1.0 } else { m - 1.0 };
                        sq += back * back;
                        if x > m {
                            codes[start + i / 64] |= 1 << (i % 64);
                        }
                    }
                    sq_norms.push(sq);
                }
            }
        }
        if let Some(store) = widened {
            self.store = store;
        }
    }

    /// Whether node `node`'s code is the code `vector` would get (exact equality at full
    /// precision): how a reopened index checks that a node still stands for a point's vector.
    pub fn matches(&self, node: u32, vector: &[f32]) -> bool {
        let n = node as usize;
        let dim = self.dim;
        if n >= self.len() || vector.len() != dim {
            return false;
        }
        match &self.store {
            Store::F32(v) => v[n * dim..(n + 1) * dim]
                .iter()
                .zip(vector)
                .all(|(a, b)| a.to_bits() == b.to_bits()),
            _ => {
                let mut one = Codes::from_store(dim, self.kind, self.empty_like());
                one.push(vector);
                match (&self.store, &one.store) {
                    (Store::Half(a), Store::Half(b)) => a.row(node) == b.row(0),
                    (Store::Int8 { codes: a, .. }, Store::Int8 { codes: b, .. }) => a[n * dim..(n + 1) * dim] == b[..],
                    (Store::Binary { codes: a, words, .. }, Store::Binary { codes: b, .. }) => a[n * words..(n + 1) * words] == b[..],
                    _ => false,
                }
            }
        }
    }

    /// The same encoding with no codes.
    fn empty_like(&self) -> Store {
        match &self.store {
            Store::F32(_) => Store::F32(Cells::default()),
            Store::Half(h) => Store::Half(h.emptied()),
            Store::Int8 { params, .. } => Store::Int8 {
                params: params.clone(),
                codes: Cells::default(),
                sq_norms: Cells::default(),
            },
            Store::Binary { mean, words, .. } => Store::Binary {
                mean: mean.clone(),
                words: *words,
                codes: Cells::default(),
                sq_norms: Cells::default(),
            },
        }
    }

    /// Reorders the codes: new node `i` gets old node `order[i]`'s code.
    pub fn permute(&mut self, order: &[u32]) {
        fn gather<T: Copy>(v: &[T], width: usize, order: &[u32]) -> Vec<T> {
            let mut out = Vec::with_capacity(v.len());
            advise_huge_spare(&out);
            for &o in order {
                out.extend_from_slice(&v[o as usize * width..(o as usize + 1) * width]);
            }
            out
        }
        let dim = self.dim;
        match &mut self.store {
            Store::F32(v) => *v = gather(v, dim, order).into(),
            Store::Half(h) => h.permute(order),
            Store::Int8 { codes, sq_norms, .. } => {
                *codes = gather(codes, dim, order).into();
                *sq_norms = gather(sq_norms, 1, order).into();
            }
            Store::Binary {
                codes, sq_norms, words, ..
            } => {
                *codes = gather(codes, *words, order).into();
                *sq_norms = gather(sq_norms, 1, order).into();
            }
        }
    }

    /// The vector a code stands for (exact for `F32`, dequantized for int8, the ±1-around-mean
    /// vector for binary), written into `out`.
    pub fn decode(&self, node: u32, out: &mut Vec<f32>) {
        out.clear();
        let n = node as usize;
        let dim = self.dim;
        match &self.store {
            Store::F32(v) => out.extend_from_slice(&v[n * dim..(n + 1) * dim]),
            Store::Half(h) => h.decode(node, out),
            Store::Int8 { params, codes, .. } => {
                let c = &codes[n * dim..(n + 1) * dim];
                out.extend(
                    c.iter()
                        .zip(&params.lo)
                        .zip(&params.step)
                        .map(|((&c, &lo), &step)| lo + step * c as f32),
                );
            }
            Store::Binary { mean, words, codes, .. } => {
                let c = &codes[n * words..(n + 1) * words];
                out.extend((0..dim).map(|i| {
                    if c[i / 64] >> (i % 64) & 1 == 1 {
                        mean[i] + 1.0
                    } else {
                        mean[i] - 1.0
                    }
                }));
            }
        }
    }

    /// The score of node `a`'s vector against node `b`'s, straight from the rows, where the
    /// codes are exact (`F32`); the same value as preparing `a`'s decoded vector and scoring
    /// `b`, without the two copies. A half-precision build copy scores the two decoded
    /// vectors (within rounding of that value). `None` for quantized codes.
    #[inline]
    pub fn score_nodes(&self, a: u32, b: u32) -> Option<f32> {
        if let Store::Half(h) = &self.store {
            return Some(h.score_nodes(a, b));
        }
        let Store::F32(v) = &self.store else { return None };
        let dim = self.dim;
        let (a, b) = (
            &v[a as usize * dim..(a as usize + 1) * dim],
            &v[b as usize * dim..(b as usize + 1) * dim],
        );
        Some(match self.kind {
            ScoreKind::Dot => (self.kernels.dot)(a, b),
            ScoreKind::NegL2Squared => -(self.kernels.l2_squared)(a, b),
            ScoreKind::NegL1 => -(self.kernels.l1)(a, b),
        })
    }

    /// Prepares `query` (already normalised for cosine) for scoring against the codes.
    pub fn prepare(&self, query: &[f32], p: &mut Prepared) {
        debug_assert_eq!(query.len(), self.dim);
        p.f.clear();
        p.bits.clear();
        p.bias = 0.0;
        if self.kind == ScoreKind::NegL2Squared {
            // Keeps quantized Euclidean scores true distances (not shifted by |q|^2), so the
            // neighbour heuristic can compare scores measured from different bases.
            p.bias -= query.iter().map(|q| q * q).sum::<f32>();
        }
        match &self.store {
            Store::F32(_) => p.f.extend_from_slice(query),
            Store::Half(h) => p.bias = h.prepare(query, &mut p.f),
            Store::Int8 { params, .. } => {
                let scale = if self.kind == ScoreKind::NegL2Squared { 2.0 } else { 1.0 };
                p.f.extend(query.iter().zip(&params.step).map(|(q, s)| scale * q * s));
                p.bias += scale * query.iter().zip(&params.lo).map(|(q, lo)| q * lo).sum::<f32>();
            }
            Store::Binary { mean, .. } => {
                // <q, m + s> = <q, m> - sum q + 2 sum_{bit} q: the set bits select 2q.
                let scale = if self.kind == ScoreKind::NegL2Squared { 2.0 } else { 1.0 };
                p.f.extend(query.iter().map(|q| 2.0 * scale * q));
                p.bias += scale * query.iter().zip(mean).map(|(q, m)| q * m - q).sum::<f32>();
            }
        }
    }

    /// The score of a prepared query against node `node`'s code.
    #[inline]
    pub fn score(&self, p: &Prepared, node: u32) -> f32 {
        let n = node as usize;
        let dim = self.dim;
        match &self.store {
            Store::F32(v) => {
                let row = &v[n * dim..(n + 1) * dim];
                match self.kind {
                    ScoreKind::Dot => (self.kernels.dot)(&p.f, row),
                    ScoreKind::NegL2Squared => -(self.kernels.l2_squared)(&p.f, row),
                    ScoreKind::NegL1 => -(self.kernels.l1)(&p.f, row),
                }
            }
            Store::Half(h) => h.score(&p.f, p.bias, node),
            Store::Int8 { codes, sq_norms, .. } => {
                let s = (self.quant.dot_u8)(&p.f, &codes[n * dim..(n + 1) * dim]) + p.bias;
                match self.kind {
                    ScoreKind::NegL2Squared => s - sq_norms[n],
                    _ => s,
                }
            }
            Store::Binary {
                words, codes, sq_norms, ..
            } => {
                let s = (self.quant.dot_bits)(&p.f, &codes[n * words..(n + 1) * words]) + p.bias;
                match self.kind {
                    ScoreKind::NegL2Squared => s - sq_norms[n],
                    _ => s,
                }
            }
        }
    }

    /// Hints the CPU to fetch node `node`'s code.
    #[inline(always)]
    pub fn prefetch(&self, node: u32) {
        let n = node as usize;
        let dim = self.dim;
        match &self.store {
            Store::F32(v) => {
                if let Some(row) = v.get(n * dim..(n + 1) * dim) {
                    prefetch(row)
                }
            }
            Store::Half(h) => h.prefetch(node),
            Store::Int8 { codes, .. } => {
                if let Some(row) = codes.get(n * dim..(n + 1) * dim) {
                    prefetch(row)
                }
            }
            Store::Binary { words, codes, .. } => {
                if let Some(row) = codes.get(n * words..(n + 1) * words) {
                    prefetch(row)
                }
            }
        }
    }
}

/// Learns per-dimension ranges from a sample: the 0.05% and 99.95% quantiles of each dimension
/// (so one outlier does not waste the 256 levels), at most 20,000 rows spread over it. Also
/// used by the library's exact scans through codes.
pub fn train_int8(dim: usize, sample: &[f32]) -> Int8Params {
    let rows = sample.len() / dim;
    let take = rows.min(TRAIN_ROWS_MAX);
    let mut lo = vec![0.0f32; dim];
    let mut step = vec![1.0f32; dim];
    let mut col = Vec::with_capacity(take);
    for d in 0..dim {
        col.clear();
        // Rows spread evenly over the sample (not a stride rounded down, which would leave its
        // end out: data often arrives sorted).
        col.extend((0..take).map(|i| sample[(i * rows / take) * dim + d]).filter(|x| x.is_finite()));
        if col.is_empty() {
            continue;
        }
        col.sort_by(f32::total_cmp);
        let q = |f: f64| col[((col.len() - 1) as f64 * f).round() as usize];
        let (a, b) = (q(0.0005), q(0.9995));
        lo[d] = a;
        step[d] = if b > a { (b - a) / 255.0 } else { 1.0 };
    }
    Int8Params { lo, step }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Scoring two nodes straight from their rows gives exactly what the neighbour heuristic
    /// got before by decoding one and preparing it as a query; quantized codes decline.
    #[test]
    fn node_pairs_score_as_decoded_queries() {
        let dim = 37;
        let rows: Vec<f32> = (0..dim * 9).map(|i| ((i * 7919) % 113) as f32 / 50.0 - 1.1).collect();
        for kind in [ScoreKind::Dot, ScoreKind::NegL2Squared, ScoreKind::NegL1] {
            let mut codes = Codes::new(dim, kind, Quantization::None, &[]);
            codes.push(&rows);
            let (mut decoded, mut p) = (Vec::new(), Prepared::default());
            for a in 0..9u32 {
                codes.decode(a, &mut decoded);
                codes.prepare(&decoded, &mut p);
                for b in 0..9u32 {
                    assert_eq!(
                        codes.score_nodes(a, b).map(f32::to_bits),
                        Some(codes.score(&p, b).to_bits()),
                        "{kind:?} {a} {b}"
                    );
                }
            }
            let mut int8 = Codes::new(dim, kind, Quantization::Int8, &rows);
            int8.push(&rows);
            assert_eq!(int8.score_nodes(0, 1), None);
        }
    }
}
