//! Recommendation (Qdrant's `recommend` query): points like the positive examples and unlike
//! the negative ones. Examples are vectors here; the server turns example ids into vectors and
//! excludes those points from the answer.

use super::*;

/// How examples become scores (Qdrant's three strategies).
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub enum RecommendStrategy {
    /// One query vector, `avg(positive) + (avg(positive) - avg(negative))` (just the positive
    /// average without negatives), searched as usual (the index can answer it).
    #[default]
    AverageVector,
    /// Every point scored against every example: when its best similarity to a positive beats
    /// its best to a negative, `sigmoid(best positive)`, else `-sigmoid(best negative)`, with
    /// Qdrant's fast sigmoid scaled to (0, 1). An exact scan.
    BestScore,
    /// Every point scored as the sum of its similarities to the positives minus the sum of its
    /// similarities to the negatives. An exact scan.
    SumScores,
}

/// A recommendation: examples and a strategy.
#[derive(Clone, Debug, Default, PartialEq)]
pub struct Recommend {
    /// Vectors the answer should be like.
    pub positive: Vec<Vec<f32>>,
    /// Vectors the answer should be unlike.
    pub negative: Vec<Vec<f32>>,
    /// How they combine.
    pub strategy: RecommendStrategy,
}

/// Qdrant's stand-in for a sigmoid, `x / (1 + |x|)` moved to (0, 1).
fn scaled_fast_sigmoid(x: f32) -> f32 {
    0.5 * (x / (1.0 + x.abs()) + 1.0)
}

impl Collection {
    /// The `req.limit` points (after `req.offset`, under `req.filter` and its threshold) that
    /// `rec` recommends; `req.vector` is ignored. Average-vector scores are similarities in the
    /// collection's metric; the other strategies' scores are theirs.
    pub fn search_recommend(&self, req: &SearchRequest, rec: &Recommend) -> Result<Vec<ScoredPoint>> {
        let dim = self.dim();
        if rec.positive.is_empty() && (rec.negative.is_empty() || rec.strategy == RecommendStrategy::AverageVector) {
            return Err(Error::InvalidRequest(
                "recommend needs at least one positive example (or, with best_score or sum_scores, a negative one)".into(),
            ));
        }
        for v in rec.positive.iter().chain(&rec.negative) {
            crate::types::validate_vector(v, dim, None)?;
        }
        if rec.strategy == RecommendStrategy::AverageVector {
            let mean = |vs: &[Vec<f32>]| -> Vec<f32> {
                let mut m = vec![0.0f32; dim];
                for v in vs {
                    m.iter_mut().zip(v).for_each(|(a, b)| *a += b);
                }
                m.iter_mut().for_each(|a| *a /= vs.len().max(1) as f32);
                m
            };
            let pos = mean(&rec.positive);
            let vector = if rec.negative.is_empty() {
                pos
            } else {
                let neg = mean(&rec.negative);
                pos.iter().zip(&neg).map(|(p, n)| p + (p - n)).collect()
            };
            return self.search(&SearchRequest { vector, ..req.clone() });
        }
        let mut probe = req.clone();
        probe.vector = rec.positive.first().or(rec.negative.first()).cloned().unwrap_or_default();
        self.check_search(&probe)?;
        let metric = self.inner.config.metric;
        let kind = metric.score_kind();
        let prepare = |vs: &[Vec<f32>]| -> Vec<Vec<f32>> {
            vs.iter()
                .map(|v| {
                    let mut v = v.clone();
                    if metric == Metric::Cosine {
                        quiver_kernels::normalize(&mut v);
                    }
                    v
                })
                .collect()
        };
        let (pos, neg) = (prepare(&rec.positive), prepare(&rec.negative));
        let strategy = rec.strategy;
        let score = |row: &[f32]| -> f32 {
            // Raw similarities, higher is closer (negated squared L2 for euclid), as Qdrant scores examples.
            let sims = |vs: &[Vec<f32>]| vs.iter().map(|v| kind.score(v, row)).collect::<Vec<f32>>();
            let (p, n) = (sims(&pos), sims(&neg));
            match strategy {
                RecommendStrategy::SumScores => p.iter().sum::<f32>() - n.iter().sum::<f32>(),
                _ => {
                    let best = |s: &[f32]| s.iter().copied().fold(f32::NEG_INFINITY, f32::max);
                    let (bp, bn) = (best(&p), best(&n));
                    if bp > bn {
                        scaled_fast_sigmoid(bp)
                    } else {
                        -scaled_fast_sigmoid(bn)
                    }
                }
            }
        };
        let st = self.inner.state.read();
        let plan = st.search_plan(req.filter.as_ref());
        let mut top = quiver_kernels::TopK::new(req.limit + req.offset);
        quiver_kernels::scan::for_each_allowed(plan.allowed(&st), st.n_rows(), |r| top.push(r, score(st.vector(r))));
        Ok(top
            .into_sorted()
            .into_iter()
            .skip(req.offset)
            .filter(|h| req.score_threshold.is_none_or(|t| h.score >= t))
            .map(|h| {
                let r = Self::record(&st, h.row, req.with_payload, req.with_vector);
                ScoredPoint {
                    id: r.id,
                    score: h.score,
                    payload: r.payload,
                    vector: r.vector,
                    vectors: r.vectors,
                }
            })
            .collect())
    }
}

#[cfg(test)]
mod tests {
    use super::scaled_fast_sigmoid;

    #[test]
    fn sigmoid_as_qdrant_scales_it() {
        assert_eq!(scaled_fast_sigmoid(0.0), 0.5);
        assert_eq!(scaled_fast_sigmoid(1.0), 0.75);
        assert_eq!(scaled_fast_sigmoid(-1.0), 0.25);
    }
}
