//! Recommendation (Qdrant's `recommend` query): points like the positive examples and unlike
//! the negative ones. Examples are vectors here; the server turns example ids into vectors and
//! excludes those points from the answer.

use super::*;
use crate::vector_model::{max_sim, QueryVector};

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

/// A recommendation: examples and a strategy. In a dense space the examples are dense
/// vectors; in a multivector space they are multivectors (a dense vector is a one-row one) and
/// similarities are MaxSim.
#[derive(Clone, Debug, Default, PartialEq)]
pub struct Recommend {
    /// Vectors the answer should be like.
    pub positive: Vec<QueryVector>,
    /// Vectors the answer should be unlike.
    pub negative: Vec<QueryVector>,
    /// How they combine.
    pub strategy: RecommendStrategy,
    /// The dense or multivector space the examples and the answer are in (`None`: the main
    /// vector).
    pub using: Option<String>,
}

/// Discovery (Qdrant's `discover` and `context` queries): points on the positive side of
/// every context pair, then nearest to the target.
#[derive(Clone, Debug, Default, PartialEq)]
pub struct Discover {
    /// The target: with one, each point scores the number of pairs whose positive it is closer
    /// to, minus those whose negative it is closer to, plus `sigmoid(similarity to the target)`
    /// in (0, 1). Without one (a context search), each pair adds
    /// `fast_sigmoid(min(sim(positive) - sim(negative) - epsilon, 0))`: 0 on the positive
    /// side, down to -1 far on the negative side.
    pub target: Option<Vec<f32>>,
    /// (positive, negative) pairs.
    pub context: Vec<(Vec<f32>, Vec<f32>)>,
    /// The dense vector space (`None`: the main vector).
    pub using: Option<String>,
}

/// Relevance feedback (Qdrant's `relevance_feedback` query, the naive strategy): a target
/// and examples a judge scored. Each point scores `a * sim(target)` plus, for every ordered
/// pair of examples whose judged scores differ by more than 0, `(difference)^b * c *
/// (sim(better) - sim(worse))`. With fewer than two examples it is the plain similarity
/// (times `a`).
#[derive(Clone, Debug, PartialEq)]
pub struct Feedback {
    /// The query vector.
    pub target: Vec<f32>,
    /// Examples and their judged relevance.
    pub feedback: Vec<(Vec<f32>, f32)>,
    /// Weight of the target similarity.
    pub a: f32,
    /// Exponent of a pair's confidence (its score difference); 0 or more.
    pub b: f32,
    /// Weight of the pairs.
    pub c: f32,
    /// The dense space (`None`: the main vector).
    pub using: Option<String>,
}

/// Qdrant's stand-in for a sigmoid, `x / (1 + |x|)`.
fn fast_sigmoid(x: f32) -> f32 {
    x / (1.0 + x.abs())
}

/// [`fast_sigmoid`] moved to (0, 1).
fn scaled_fast_sigmoid(x: f32) -> f32 {
    0.5 * (fast_sigmoid(x) + 1.0)
}

impl Collection {
    /// The `req.limit` points (after `req.offset`, under `req.filter` and its threshold) that
    /// `rec` recommends; `req.vector` is ignored. Average-vector scores are similarities in the
    /// collection's metric; the other strategies' scores are theirs.
    pub fn search_recommend(&self, req: &SearchRequest, rec: &Recommend) -> Result<Vec<ScoredPoint>> {
        if rec.positive.is_empty() && (rec.negative.is_empty() || rec.strategy == RecommendStrategy::AverageVector) {
            return Err(Error::InvalidRequest(
                "recommend needs at least one positive example (or, with best_score or sum_scores, a negative one)".into(),
            ));
        }
        let name = rec.using.clone().unwrap_or_else(|| self.inner.config.vectors.main.clone());
        if let Some(d) = self.inner.config.vectors.dense.get(&name).filter(|d| d.multivector) {
            let (dim, metric) = (d.dim, d.metric);
            return self.recommend_multi(req, rec, &name, dim, metric);
        }
        let (using, dim, metric, main) = self.dense_space(rec.using.as_deref())?;
        let dense = |vs: &[QueryVector]| -> Result<Vec<Vec<f32>>> {
            vs.iter()
                .map(|q| match q {
                    QueryVector::Dense(v) => Ok(v.clone()),
                    other => Err(Error::InvalidVector {
                        name: using.clone(),
                        reason: format!(
                            "the examples of a dense space are dense vectors, got {}",
                            super::named::query_kind(other)
                        ),
                    }),
                })
                .collect()
        };
        let (positive, negative) = (dense(&rec.positive)?, dense(&rec.negative)?);
        let rec = Dense {
            positive,
            negative,
            strategy: rec.strategy,
        };
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
            if !main {
                return self.search_named(&using, &crate::vector_model::QueryVector::Dense(vector), req);
            }
            return self.search(&SearchRequest { vector, ..req.clone() });
        }
        self.check_limits(req)?;
        let kind = metric.score_kind();
        let (pos, neg) = (prepare_examples(&rec.positive, metric), prepare_examples(&rec.negative, metric));
        let strategy = rec.strategy;
        let score = |row: &[f32]| -> f32 {
            // Raw similarities, higher is closer (negated squared L2 for euclid), as Qdrant scores examples.
            let sims = |vs: &[Vec<f32>]| vs.iter().map(|v| kind.score(v, row)).collect::<Vec<f32>>();
            combine(strategy, &sims(&pos), &sims(&neg))
        };
        Ok(self.scan_scored(req, &using, main, score))
    }

    /// Recommendation in a multivector space: average-vector concatenates the positive rows
    /// and the negated negative rows into one MaxSim query (Qdrant's rule); best-score and
    /// sum-of-scores compare each point's multivector with each example by MaxSim.
    fn recommend_multi(&self, req: &SearchRequest, rec: &Recommend, using: &str, dim: usize, metric: Metric) -> Result<Vec<ScoredPoint>> {
        let rows_of = |q: &QueryVector| -> Result<Vec<Vec<f32>>> {
            let mut rows = match q {
                QueryVector::Dense(v) => vec![v.clone()],
                QueryVector::Multi(r) if !r.is_empty() => r.clone(),
                other => {
                    return Err(Error::InvalidVector {
                        name: using.to_string(),
                        reason: format!(
                            "the examples of a multivector space are multivectors or dense vectors, got {}",
                            super::named::query_kind(other)
                        ),
                    })
                }
            };
            for r in &mut rows {
                crate::types::validate_vector(r, dim, None)?;
                if metric == Metric::Cosine {
                    quiver_kernels::normalize(r);
                }
            }
            Ok(rows)
        };
        let pos = rec.positive.iter().map(rows_of).collect::<Result<Vec<_>>>()?;
        let neg = rec.negative.iter().map(rows_of).collect::<Result<Vec<_>>>()?;
        if rec.strategy == RecommendStrategy::AverageVector {
            let mut rows: Vec<Vec<f32>> = pos.concat();
            rows.extend(neg.concat().into_iter().map(|r| r.into_iter().map(|x| -x).collect::<Vec<f32>>()));
            return self.search_named(using, &QueryVector::Multi(rows), req);
        }
        self.check_limits(req)?;
        let kind = metric.score_kind();
        let strategy = rec.strategy;
        let st = self.inner.state.read();
        let plan = st.plan(req.filter.as_ref());
        let mut top = quiver_kernels::TopK::new(req.limit + req.offset);
        quiver_kernels::scan::for_each_allowed(plan.allowed(&st), st.n_rows(), |r| {
            let Some(crate::vector_model::VectorData::Multi(doc)) = st.named_at(r).and_then(|m| m.get(using)) else {
                return;
            };
            let sims = |exs: &[Vec<Vec<f32>>]| exs.iter().map(|e| max_sim(e, doc, |a, b| kind.score(a, b))).collect::<Vec<f32>>();
            let (p, n) = (sims(&pos), sims(&neg));
            top.push(r, combine(strategy, &p, &n));
        });
        Ok(self.finish_scan(&st, req, top))
    }

    /// Relevance feedback (see [`Feedback`]): an exact scan of the allowed points holding the
    /// space's vector.
    pub fn search_feedback(&self, req: &SearchRequest, f: &Feedback) -> Result<Vec<ScoredPoint>> {
        let (using, dim, metric, main) = self.dense_space(f.using.as_deref())?;
        if f.feedback.is_empty() {
            return Err(Error::InvalidRequest("feedback elements must be non-empty".into()));
        }
        if f.b.is_nan() || f.b < 0.0 {
            return Err(Error::Validation {
                field: "query.relevance_feedback.strategy.naive.b".into(),
                problem: format!("value {:?} invalid, must be 0.0 or larger", f.b),
            });
        }
        for v in std::iter::once(&f.target).chain(f.feedback.iter().map(|(v, _)| v)) {
            crate::types::validate_vector(v, dim, None)?;
        }
        self.check_limits(req)?;
        let kind = metric.score_kind();
        let target = prepare_examples(std::slice::from_ref(&f.target), metric).remove(0);
        let examples = prepare_examples(&f.feedback.iter().map(|(v, _)| v.clone()).collect::<Vec<_>>(), metric);
        // Ordered pairs with a positive difference of judged scores, with their weights.
        let mut pairs: Vec<(usize, usize, f32)> = Vec::new();
        for (i, (_, si)) in f.feedback.iter().enumerate() {
            for (j, (_, sj)) in f.feedback.iter().enumerate() {
                let confidence = si - sj;
                if i != j && confidence > 0.0 {
                    pairs.push((i, j, confidence.powf(f.b) * f.c));
                }
            }
        }
        let (a, pairs) = (f.a, pairs);
        let score = |row: &[f32]| -> f32 {
            let mut s = a * kind.score(&target, row);
            for &(i, j, w) in &pairs {
                s += w * (kind.score(&examples[i], row) - kind.score(&examples[j], row));
            }
            s
        };
        Ok(self.scan_scored(req, &using, main, score))
    }

    /// Discovery and context search (see [`Discover`]): an exact scan of the allowed points
    /// holding the space's vector. Scores are Qdrant's.
    pub fn search_discover(&self, req: &SearchRequest, d: &Discover) -> Result<Vec<ScoredPoint>> {
        let (using, dim, metric, main) = self.dense_space(d.using.as_deref())?;
        if d.context.is_empty() && d.target.is_none() {
            return Err(Error::InvalidRequest("discover needs a target or context pairs".into()));
        }
        for v in d.target.iter().chain(d.context.iter().flat_map(|(p, n)| [p, n])) {
            crate::types::validate_vector(v, dim, None)?;
        }
        self.check_limits(req)?;
        let kind = metric.score_kind();
        let target = d
            .target
            .as_ref()
            .map(|t| prepare_examples(std::slice::from_ref(t), metric).remove(0));
        let pairs: Vec<(Vec<f32>, Vec<f32>)> = d
            .context
            .iter()
            .map(|(p, n)| {
                let mut both = prepare_examples(&[p.clone(), n.clone()], metric);
                let n = both.pop().expect("two");
                (both.pop().expect("two"), n)
            })
            .collect();
        let score = |row: &[f32]| -> f32 {
            let sims = pairs.iter().map(|(p, n)| (kind.score(p, row), kind.score(n, row)));
            match &target {
                Some(t) => {
                    let rank: i32 = sims.map(|(p, n)| p.total_cmp(&n) as i32).sum();
                    rank as f32 + scaled_fast_sigmoid(kind.score(t, row))
                }
                None => sims.map(|(p, n)| fast_sigmoid((p - n - f32::EPSILON).min(0.0))).sum(),
            }
        };
        Ok(self.scan_scored(req, &using, main, score))
    }

    /// The dense space `using` names (`None`: the main vector): its name, size, metric, and
    /// whether it is the main vector.
    pub(super) fn dense_space(&self, using: Option<&str>) -> Result<(String, usize, Metric, bool)> {
        let config = &self.inner.config;
        let using = using.map_or_else(|| config.vectors.main.clone(), str::to_string);
        if using == config.vectors.main && config.dim > 0 {
            return Ok((using, config.dim, config.metric, true));
        }
        match config.vectors.dense.get(&using) {
            Some(d) if !d.multivector => Ok((using, d.dim, d.metric, false)),
            Some(_) => Err(Error::Unsupported(format!("examples on the multivector {using:?}"))),
            None => Err(Error::VectorNameNotFound(using)),
        }
    }

    /// Scores every allowed point holding the space's vector with `score` (higher is better)
    /// and returns the best, after the request's offset and threshold.
    fn scan_scored(&self, req: &SearchRequest, using: &str, main: bool, score: impl Fn(&[f32]) -> f32) -> Vec<ScoredPoint> {
        let st = self.inner.state.read();
        let plan = if main {
            st.search_plan(req.filter.as_ref())
        } else {
            st.plan(req.filter.as_ref())
        };
        let mut top = quiver_kernels::TopK::new(req.limit + req.offset);
        quiver_kernels::scan::for_each_allowed(plan.allowed(&st), st.n_rows(), |r| {
            if main {
                top.push(r, score(st.vector(r)));
            } else if let Some(crate::vector_model::VectorData::Dense(v)) = st.named_at(r).and_then(|m| m.get(using)) {
                top.push(r, score(v));
            }
        });
        self.finish_scan(&st, req, top)
    }

    /// The best hits of a scan, after the request's offset and threshold, as records.
    fn finish_scan(&self, st: &State, req: &SearchRequest, top: quiver_kernels::TopK) -> Vec<ScoredPoint> {
        top.into_sorted()
            .into_iter()
            .skip(req.offset)
            .filter(|h| req.score_threshold.is_none_or(|t| h.score >= t))
            .map(|h| {
                let r = Self::record(st, h.row, req.with_payload, req.with_vector);
                r.scored(h.score)
            })
            .collect()
    }
}

/// Dense examples of a recommendation, checked.
struct Dense {
    positive: Vec<Vec<f32>>,
    negative: Vec<Vec<f32>>,
    strategy: RecommendStrategy,
}

/// A point's score from its similarities to the positive and the negative examples: the sum
/// of the positives' minus the negatives' (sum_scores), or Qdrant's best-score rule.
fn combine(strategy: RecommendStrategy, p: &[f32], n: &[f32]) -> f32 {
    match strategy {
        RecommendStrategy::SumScores => p.iter().sum::<f32>() - n.iter().sum::<f32>(),
        _ => {
            let best = |s: &[f32]| s.iter().copied().fold(f32::NEG_INFINITY, f32::max);
            let (bp, bn) = (best(p), best(n));
            if bp > bn {
                scaled_fast_sigmoid(bp)
            } else {
                -scaled_fast_sigmoid(bn)
            }
        }
    }
}

/// Examples as the space stores vectors (normalised for cosine).
fn prepare_examples(vs: &[Vec<f32>], metric: Metric) -> Vec<Vec<f32>> {
    vs.iter()
        .map(|v| {
            let mut v = v.clone();
            if metric == Metric::Cosine {
                quiver_kernels::normalize(&mut v);
            }
            v
        })
        .collect()
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
