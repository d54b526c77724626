//! The distance matrix (Qdrant's `/points/search/matrix/pairs` and `/offsets`): a random
//! sample of the allowed points holding a dense vector, each with its `limit` nearest others
//! within the sample. Exact: every pair of the sample is scored once.

use super::query::Rng;
use super::*;

/// The sample (sorted by id) and, for each of its points, its nearest others in the sample
/// as (index into `ids`, score), best first. Scores are in the space's metric, as searches
/// report them.
#[derive(Clone, Debug, PartialEq)]
pub struct DistanceMatrix {
    /// The sampled points, in id order.
    pub ids: Vec<PointId>,
    /// Per sampled point: its `limit` nearest others.
    pub neighbours: Vec<Vec<(usize, f32)>>,
}

/// The largest sample: the matrix costs sample² scores.
pub const MATRIX_SAMPLE_MAX: usize = 10_000;

impl Collection {
    /// Samples up to `sample` points (under `filter`, holding the dense vector `using`, the
    /// main one by default) and finds each one's `limit` nearest others among them.
    pub fn distance_matrix(&self, sample: usize, limit: usize, filter: Option<&Filter>, using: Option<&str>) -> Result<DistanceMatrix> {
        if sample == 0 || sample > MATRIX_SAMPLE_MAX {
            return Err(Error::InvalidRequest(format!(
                "sample must be 1..={MATRIX_SAMPLE_MAX}, got {sample}"
            )));
        }
        if limit == 0 {
            return Err(Error::InvalidRequest("limit must be at least 1".into()));
        }
        let (using, _dim, metric, main) = self.dense_space(using)?;
        let st = self.inner.state.read();
        let plan = if main { st.search_plan(filter) } else { st.plan(filter) };
        let vector_of = |r: u32| -> Option<&[f32]> {
            if main {
                Some(st.vector(r))
            } else {
                match st.named_at(r).and_then(|m| m.get(&using)) {
                    Some(crate::vector_model::VectorData::Dense(v)) => Some(v.as_slice()),
                    _ => None,
                }
            }
        };
        // Reservoir sampling over the allowed rows that hold the vector.
        let mut rng = Rng::seeded();
        let mut rows: Vec<u32> = Vec::with_capacity(sample.min(st.n_rows()));
        let mut seen = 0u64;
        quiver_kernels::scan::for_each_allowed(plan.allowed(&st), st.n_rows(), |r| {
            if vector_of(r).is_none() {
                return;
            }
            seen += 1;
            if rows.len() < sample {
                rows.push(r);
            } else {
                let j = rng.below(seen) as usize;
                if j < sample {
                    rows[j] = r;
                }
            }
        });
        rows.sort_unstable_by_key(|&r| st.id_at(r as usize));
        let kind = metric.score_kind();
        let vectors: Vec<&[f32]> = rows.iter().map(|&r| vector_of(r).expect("sampled rows hold the vector")).collect();
        let neighbours = (0..rows.len())
            .into_par_iter()
            .map(|i| {
                let mut top = quiver_kernels::TopK::new(limit);
                for (j, v) in vectors.iter().enumerate() {
                    if j != i {
                        top.push(j as u32, kind.score(vectors[i], v));
                    }
                }
                top.into_sorted()
                    .into_iter()
                    .map(|h| (h.row as usize, metric.user_score(h.score)))
                    .collect()
            })
            .collect();
        Ok(DistanceMatrix {
            ids: rows.iter().map(|&r| st.id_at(r as usize)).collect(),
            neighbours,
        })
    }
}
