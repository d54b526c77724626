//! Qdrant's Query API as a tree of stages: each stage first runs its prefetches (to any depth),
//! then either searches the whole collection (no prefetch), rescores the union of its
//! prefetches' candidates exactly with its own query (multi-stage search: cheap candidates
//! from one vector space, the final order from another, such as a ColBERT multivector), or
//! fuses its prefetches' rankings (reciprocal rank fusion, or distribution-based score fusion).
//! Every stage has its own vector space (`using`), filter, limit and score threshold.

use super::*;
use crate::vector_model::QueryVector;
use std::collections::HashMap;

/// How a stage fuses its prefetches' rankings.
#[derive(Clone, Debug, PartialEq)]
pub enum FusionKind {
    /// Reciprocal rank fusion as Qdrant computes it: a point at position p (from 0) of a
    /// ranking scores `1 / ((p + 1) / weight + k - 1)` (0 for a weight of 0), summed over the
    /// rankings; Qdrant's default k is 2, so the first place scores 1/2.
    Rrf {
        /// The rank constant.
        k: f32,
        /// One weight per prefetch (all 1 when `None`).
        weights: Option<Vec<f32>>,
    },
    /// Distribution-based score fusion: each ranking's scores are mapped linearly so that
    /// mean - 3 sd is 0 and mean + 3 sd is 1 (sample standard deviation), then summed.
    Dbsf,
}

/// What a stage does with its candidates.
#[derive(Clone, Debug, PartialEq)]
pub enum StageQuery {
    /// Nearest points to a vector (dense, sparse or multi) in the stage's space.
    Nearest(QueryVector),
    /// Fuses the prefetches' rankings.
    Fusion(FusionKind),
    /// Recommends from examples (its `using` names the space; the stage's is ignored).
    Recommend(super::Recommend),
    /// Discovery or context search (its `using` names the space).
    Discover(super::Discover),
    /// A uniform random sample of the candidates (or of the allowed points), in random order,
    /// different at each call; every score is 0.
    Sample,
    /// Relevance feedback (its `using` names the space).
    Feedback(super::Feedback),
    /// Rescores the prefetches' candidates with a formula (`$score[i]` is a point's score in
    /// prefetch `i`); best first.
    Formula(crate::formula::Formula),
    /// The candidates (or the allowed points) in the order of a payload value, through the
    /// key's index when it has one; each score is the point's value.
    OrderBy {
        /// The payload key (numbers, or RFC 3339 datetimes).
        key: String,
        /// Largest first.
        descending: bool,
        /// Start at this value (inclusive), in the direction of the order.
        start_from: Option<f64>,
    },
}

/// One stage of a query.
#[derive(Clone, Debug, PartialEq)]
pub struct QueryStage {
    /// Stages run first; their results are this stage's candidates.
    pub prefetch: Vec<QueryStage>,
    /// The stage's query; `None` passes its one prefetch's results through, or without
    /// prefetches lists points in id order (score 0), as a scroll.
    pub query: Option<StageQuery>,
    /// The vector space of a `Nearest` query (`None`: the main vector).
    pub using: Option<String>,
    /// Only points matching this filter.
    pub filter: Option<Filter>,
    /// Results of this stage.
    pub limit: usize,
    /// Keep results at least this good (a distance at most this, for distance metrics).
    pub score_threshold: Option<f32>,
    /// Score every allowed point instead of walking the graph.
    pub exact: bool,
    /// The graph's list size for this stage.
    pub ef: Option<usize>,
}

impl QueryStage {
    /// A stage that finds the `limit` nearest points to `query` in the main vector space.
    pub fn nearest(query: QueryVector, limit: usize) -> QueryStage {
        QueryStage {
            prefetch: Vec::new(),
            query: Some(StageQuery::Nearest(query)),
            using: None,
            filter: None,
            limit,
            score_threshold: None,
            exact: false,
            ef: None,
        }
    }
}

/// What one stage of a query did (see [`Collection::query_explained`]).
#[derive(Clone, Debug, PartialEq)]
pub struct StageTrace {
    /// 0 for the top stage, 1 for its prefetches, and so on.
    pub depth: usize,
    /// The kind of query (`nearest dense`, `fusion rrf`, `recommend`, ...).
    pub query: &'static str,
    /// The vector space it used.
    pub using: String,
    /// Its limit.
    pub limit: usize,
    /// It had a filter (its own or inherited).
    pub filtered: bool,
    /// Candidates its prefetches handed it (0 for a stage without prefetches).
    pub candidates: usize,
    /// Points it passed on.
    pub hits: usize,
    /// Its best point and score.
    pub best: Option<(PointId, f32)>,
    /// Time spent, its prefetches included, in microseconds.
    pub micros: u64,
}

fn stage_kind(s: &QueryStage) -> &'static str {
    match &s.query {
        Some(StageQuery::Nearest(QueryVector::Dense(_))) => "nearest (dense)",
        Some(StageQuery::Nearest(QueryVector::Multi(_))) => "nearest (multivector, MaxSim)",
        Some(StageQuery::Nearest(QueryVector::Sparse(_))) => "nearest (sparse)",
        Some(StageQuery::Fusion(FusionKind::Rrf { .. })) => "fusion (rrf)",
        Some(StageQuery::Fusion(FusionKind::Dbsf)) => "fusion (dbsf)",
        Some(StageQuery::Recommend(_)) => "recommend",
        Some(StageQuery::Discover(d)) if d.target.is_some() => "discover",
        Some(StageQuery::Discover(_)) => "context",
        Some(StageQuery::Sample) => "sample (random)",
        Some(StageQuery::Feedback(_)) => "relevance feedback",
        Some(StageQuery::Formula(_)) => "formula",
        Some(StageQuery::OrderBy { .. }) => "order_by",
        None if s.prefetch.is_empty() => "listing (id order)",
        None => "pass-through",
    }
}

/// The most stages one query may hold, and how deep they may nest.
pub const QUERY_STAGES_MAX: usize = 64;
/// How deep prefetches may nest.
pub const QUERY_DEPTH_MAX: usize = 8;

/// A ranking: ids best first with their scores, and whether a higher score is better.
struct Ranking {
    hits: Vec<(PointId, f32)>,
    higher_is_better: bool,
}

impl Ranking {
    fn empty() -> Ranking {
        Ranking {
            hits: Vec::new(),
            higher_is_better: true,
        }
    }
}

impl Collection {
    /// Runs a query tree and returns its best `limit` points after `offset`, with what `with`
    /// asks for. Scores are those of the top stage (a fused score, for a fusion).
    pub fn query(&self, stage: &QueryStage, offset: usize, with: With) -> Result<Vec<ScoredPoint>> {
        Ok(self.query_explained(stage, offset, with)?.0)
    }

    /// [`Collection::query`] with what each stage did: one [`StageTrace`] per stage, the top
    /// stage first and each stage's prefetches after it (depth first), as `quiver query
    /// --explain` prints them.
    pub fn query_explained(&self, stage: &QueryStage, offset: usize, with: With) -> Result<(Vec<ScoredPoint>, Vec<StageTrace>)> {
        check_tree(stage, 0, &mut 0)?;
        let mut top = stage.clone();
        top.limit = stage.limit.saturating_add(offset).min(SEARCH_LIMIT_MAX);
        inherit_filters(&mut top, None);
        let mut trace = Vec::new();
        let ranking = self.run_stage(&top, &mut trace, 0)?;
        let ids: Vec<PointId> = ranking.hits.iter().skip(offset).map(|h| h.0).collect();
        let records = self.get(&ids, with)?;
        let by_id: HashMap<PointId, Record> = records.into_iter().map(|r| (r.id, r)).collect();
        let hits = ranking
            .hits
            .into_iter()
            .skip(offset)
            .filter_map(|(id, score)| {
                let r = by_id.get(&id)?.clone();
                Some(r.scored(score))
            })
            .collect();
        Ok((hits, trace))
    }

    fn higher_is_better(&self, using: &str) -> bool {
        let config = &self.inner.config;
        if using == config.vectors.main && config.dim > 0 {
            return config.metric.higher_is_better();
        }
        config.vectors.dense.get(using).is_none_or(|d| d.metric.higher_is_better())
    }

    /// Runs one stage and its prefetches, recording each in `trace`.
    fn run_stage(&self, s: &QueryStage, trace: &mut Vec<StageTrace>, depth: usize) -> Result<Ranking> {
        let slot = trace.len();
        trace.push(StageTrace {
            depth,
            query: stage_kind(s),
            using: s.using.clone().unwrap_or_else(|| self.inner.config.vectors.main.clone()),
            limit: s.limit,
            filtered: s.filter.is_some(),
            candidates: 0,
            hits: 0,
            best: None,
            micros: 0,
        });
        let t0 = std::time::Instant::now();
        let children = s
            .prefetch
            .iter()
            .map(|p| self.run_stage(p, trace, depth + 1))
            .collect::<Result<Vec<_>>>()?;
        let candidates = children.iter().map(|c| c.hits.len()).sum();
        let ranking = self.run_stage_on(s, children)?;
        let t = &mut trace[slot];
        t.candidates = candidates;
        t.hits = ranking.hits.len();
        t.best = ranking.hits.first().copied();
        t.micros = t0.elapsed().as_micros() as u64;
        Ok(ranking)
    }

    /// One stage's own work, on its prefetches' rankings.
    fn run_stage_on(&self, s: &QueryStage, children: Vec<Ranking>) -> Result<Ranking> {
        let using = s.using.clone().unwrap_or_else(|| self.inner.config.vectors.main.clone());
        let req = |filter: Option<Filter>| SearchRequest {
            vector: Vec::new(),
            limit: s.limit,
            offset: 0,
            filter,
            score_threshold: s.score_threshold,
            with_payload: false,
            with_vector: false,
            exact: s.exact,
            ef: s.ef,
        };
        match (&s.query, children.is_empty()) {
            (Some(StageQuery::Nearest(q)), true) => {
                let hits = self.search_named(&using, q, &req(s.filter.clone()))?;
                Ok(Ranking {
                    hits: hits.into_iter().map(|h| (h.id, h.score)).collect(),
                    higher_is_better: self.higher_is_better(&using),
                })
            }
            (Some(StageQuery::Nearest(q)), false) => {
                // Rescore the candidates exactly: the stage's filter and the candidate ids.
                let mut ids: Vec<PointId> = children.iter().flat_map(|c| c.hits.iter().map(|h| h.0)).collect();
                ids.sort_unstable();
                ids.dedup();
                if ids.is_empty() {
                    return Ok(Ranking {
                        hits: Vec::new(),
                        higher_is_better: true,
                    });
                }
                let mut r = req(Some(Filter::restricted_to(s.filter.clone(), &ids)));
                r.exact = true;
                let hits = self.search_named(&using, q, &r)?;
                Ok(Ranking {
                    hits: hits.into_iter().map(|h| (h.id, h.score)).collect(),
                    higher_is_better: self.higher_is_better(&using),
                })
            }
            (Some(StageQuery::Fusion(f)), false) => {
                let allowed = self.filtered_ids(s.filter.as_ref(), &children)?;
                let mut hits = match f {
                    FusionKind::Rrf { k, weights } => {
                        if let Some(w) = weights.as_ref().filter(|w| w.len() != children.len()) {
                            return Err(Error::InvalidRequest(format!(
                                "rrf has {} weights for {} prefetches",
                                w.len(),
                                children.len()
                            )));
                        }
                        let rankings: Vec<(f32, Vec<PointId>)> = children
                            .iter()
                            .enumerate()
                            .map(|(i, c)| (weights.as_ref().map_or(1.0, |w| w[i]), c.hits.iter().map(|h| h.0).collect()))
                            .collect();
                        rrf(&rankings, *k, allowed.as_ref())
                    }
                    FusionKind::Dbsf => dbsf(&children, allowed.as_ref()),
                };
                if let Some(t) = s.score_threshold {
                    hits.retain(|h| h.1 >= t);
                }
                hits.truncate(s.limit);
                Ok(Ranking {
                    hits,
                    higher_is_better: true,
                })
            }
            (None, false) if children.len() == 1 => {
                let mut only = children.into_iter().next().expect("one child");
                if let Some(allowed) = self.filtered_ids(s.filter.as_ref(), std::slice::from_ref(&only))? {
                    only.hits.retain(|h| allowed.contains(&h.0));
                }
                only.hits.truncate(s.limit);
                Ok(only)
            }
            (None, false) => Err(Error::InvalidRequest(
                "a query with several prefetches needs a query to combine them (fusion, or nearest to rescore)".into(),
            )),
            (Some(StageQuery::Recommend(rec)), none) => {
                let Some(filter) = self.stage_filter(s, &children) else {
                    return Ok(Ranking::empty());
                };
                let mut r = req(filter);
                r.exact |= !none;
                let hits = self.search_recommend(&r, rec)?;
                let average = rec.strategy == super::RecommendStrategy::AverageVector;
                let space = rec.using.clone().unwrap_or_else(|| self.inner.config.vectors.main.clone());
                Ok(Ranking {
                    hits: hits.into_iter().map(|h| (h.id, h.score)).collect(),
                    higher_is_better: !average || self.higher_is_better(&space),
                })
            }
            (Some(StageQuery::Discover(d)), _) => {
                let Some(filter) = self.stage_filter(s, &children) else {
                    return Ok(Ranking::empty());
                };
                let hits = self.search_discover(&req(filter), d)?;
                Ok(Ranking {
                    hits: hits.into_iter().map(|h| (h.id, h.score)).collect(),
                    higher_is_better: true,
                })
            }
            (Some(StageQuery::Feedback(f)), _) => {
                let Some(filter) = self.stage_filter(s, &children) else {
                    return Ok(Ranking::empty());
                };
                let hits = self.search_feedback(&req(filter), f)?;
                Ok(Ranking {
                    hits: hits.into_iter().map(|h| (h.id, h.score)).collect(),
                    higher_is_better: true,
                })
            }
            (Some(StageQuery::Formula(_)), true) => Err(Error::InvalidRequest(
                "a formula rescores the candidates of prefetches: give at least one prefetch".into(),
            )),
            (Some(StageQuery::Formula(f)), false) => {
                let allowed = self.filtered_ids(s.filter.as_ref(), &children)?;
                let scores: Vec<HashMap<PointId, f32>> = children.iter().map(|c| c.hits.iter().copied().collect()).collect();
                let mut ids: Vec<PointId> = children.iter().flat_map(|c| c.hits.iter().map(|h| h.0)).collect();
                ids.sort_unstable();
                ids.dedup();
                ids.retain(|id| allowed.as_ref().is_none_or(|a| a.contains(id)));
                let records = self.get(
                    &ids,
                    With {
                        payload: true,
                        vector: false,
                    },
                )?;
                let empty = Payload::new();
                let mut hits = Vec::with_capacity(records.len());
                for r in &records {
                    let score = f.eval(r.id, r.payload.as_ref().unwrap_or(&empty), &|i| {
                        scores.get(i).and_then(|m| m.get(&r.id)).copied()
                    })?;
                    if s.score_threshold.is_none_or(|t| score >= t) {
                        hits.push((r.id, score));
                    }
                }
                hits.sort_by(|a, b| b.1.total_cmp(&a.1).then(a.0.cmp(&b.0)));
                hits.truncate(s.limit);
                Ok(Ranking {
                    hits,
                    higher_is_better: true,
                })
            }
            (
                Some(StageQuery::OrderBy {
                    key,
                    descending,
                    start_from,
                }),
                none,
            ) => {
                let filter = if none {
                    s.filter.clone()
                } else {
                    let mut ids: Vec<PointId> = children.iter().flat_map(|c| c.hits.iter().map(|h| h.0)).collect();
                    ids.sort_unstable();
                    ids.dedup();
                    if ids.is_empty() {
                        return Ok(Ranking::empty());
                    }
                    Some(Filter::restricted_to(s.filter.clone(), &ids))
                };
                let scroll = ScrollRequest {
                    offset: None,
                    limit: s.limit,
                    filter,
                    with_payload: false,
                    with_vector: false,
                };
                let rows = self.scroll_ordered(&scroll, key, *descending, *start_from)?;
                Ok(Ranking {
                    hits: rows.into_iter().map(|(r, v)| (r.id, v as f32)).collect(),
                    higher_is_better: !*descending,
                })
            }
            (Some(StageQuery::Sample), none) => {
                let mut rng = Rng::seeded();
                let mut pool: Vec<PointId> = if none {
                    // Reservoir sampling over the allowed points: one pass, `limit` kept.
                    let st = self.inner.state.read();
                    let plan = st.plan(s.filter.as_ref());
                    let mut pool = Vec::with_capacity(s.limit);
                    let mut seen = 0u64;
                    quiver_kernels::scan::for_each_allowed(plan.allowed(&st), st.n_rows(), |r| {
                        seen += 1;
                        if pool.len() < s.limit {
                            pool.push(st.id_at(r as usize));
                        } else {
                            let j = rng.below(seen) as usize;
                            if j < s.limit {
                                pool[j] = st.id_at(r as usize);
                            }
                        }
                    });
                    pool
                } else {
                    let allowed = self.filtered_ids(s.filter.as_ref(), &children)?;
                    let mut ids: Vec<PointId> = children.iter().flat_map(|c| c.hits.iter().map(|h| h.0)).collect();
                    ids.sort_unstable();
                    ids.dedup();
                    ids.retain(|id| allowed.as_ref().is_none_or(|a| a.contains(id)));
                    ids
                };
                for i in (1..pool.len()).rev() {
                    pool.swap(i, rng.below(i as u64 + 1) as usize);
                }
                pool.truncate(s.limit);
                Ok(Ranking {
                    hits: pool.into_iter().map(|id| (id, 0.0)).collect(),
                    higher_is_better: true,
                })
            }
            (Some(StageQuery::Fusion(_)), true) => Err(Error::InvalidRequest("fusion needs prefetches to fuse".into())),
            (None, true) => {
                let page = self.scroll(&ScrollRequest {
                    offset: None,
                    limit: s.limit,
                    filter: s.filter.clone(),
                    with_payload: false,
                    with_vector: false,
                })?;
                Ok(Ranking {
                    hits: page.points.into_iter().map(|r| (r.id, 0.0)).collect(),
                    higher_is_better: true,
                })
            }
        }
    }

    /// The filter a stage searches under: its own without prefetches, else narrowed to their
    /// candidates; `None` when the prefetches found nothing.
    fn stage_filter(&self, s: &QueryStage, children: &[Ranking]) -> Option<Option<Filter>> {
        if children.is_empty() {
            return Some(s.filter.clone());
        }
        self.candidates_filter(s, children).map(Some)
    }

    /// The stage's filter narrowed to its prefetches' candidates; `None` when there are none.
    fn candidates_filter(&self, s: &QueryStage, children: &[Ranking]) -> Option<Filter> {
        let mut ids: Vec<PointId> = children.iter().flat_map(|c| c.hits.iter().map(|h| h.0)).collect();
        ids.sort_unstable();
        ids.dedup();
        (!ids.is_empty()).then(|| Filter::restricted_to(s.filter.clone(), &ids))
    }

    /// The candidates of `children` that match `filter` (`None` when there is no filter).
    fn filtered_ids(&self, filter: Option<&Filter>, children: &[Ranking]) -> Result<Option<std::collections::HashSet<PointId>>> {
        let Some(filter) = filter else { return Ok(None) };
        let mut ids: Vec<PointId> = children.iter().flat_map(|c| c.hits.iter().map(|h| h.0)).collect();
        ids.sort_unstable();
        ids.dedup();
        let st = self.inner.state.read();
        Ok(Some(
            ids.into_iter()
                .filter(|id| st.row_of(id).is_some_and(|r| st.row_matches(r, filter)))
                .collect(),
        ))
    }
}

/// Qdrant's reciprocal rank fusion (see [`FusionKind::Rrf`]), points outside `allowed` left
/// out; ties in first-seen order.
fn rrf(rankings: &[(f32, Vec<PointId>)], k: f32, allowed: Option<&std::collections::HashSet<PointId>>) -> Vec<(PointId, f32)> {
    let mut total: HashMap<PointId, (f32, usize)> = HashMap::new();
    let mut order = 0;
    for (weight, ranking) in rankings {
        for (pos, id) in ranking.iter().enumerate() {
            if allowed.is_some_and(|a| !a.contains(id)) {
                continue;
            }
            let score = if *weight <= 0.0 {
                0.0
            } else {
                1.0 / ((pos as f32 + 1.0) / weight + k - 1.0)
            };
            let e = total.entry(*id).or_insert_with(|| {
                order += 1;
                (0.0, order)
            });
            e.0 += score;
        }
    }
    let mut out: Vec<(PointId, f32, usize)> = total.into_iter().map(|(id, (s, o))| (id, s, o)).collect();
    out.sort_by(|a, b| b.1.total_cmp(&a.1).then(a.2.cmp(&b.2)));
    out.into_iter().map(|(id, s, _)| (id, s)).collect()
}

/// Distribution-based score fusion over rankings (each mapped so that its mean ± 3 sample
/// standard deviations become 0 and 1; distances turned around so that higher is better),
/// summed; ties in first-seen order.
fn dbsf(children: &[Ranking], allowed: Option<&std::collections::HashSet<PointId>>) -> Vec<(PointId, f32)> {
    let mut total: HashMap<PointId, (f32, usize)> = HashMap::new();
    let mut order = 0;
    for c in children {
        if c.hits.is_empty() {
            continue;
        }
        let sign = if c.higher_is_better { 1.0 } else { -1.0 };
        let scores: Vec<f64> = c.hits.iter().map(|h| (sign * h.1) as f64).collect();
        let n = scores.len() as f64;
        let mean = scores.iter().sum::<f64>() / n;
        let sd = if scores.len() > 1 {
            (scores.iter().map(|s| (s - mean).powi(2)).sum::<f64>() / (n - 1.0)).sqrt()
        } else {
            0.0
        };
        let (lo, hi) = (mean - 3.0 * sd, mean + 3.0 * sd);
        for (h, s) in c.hits.iter().zip(&scores) {
            if allowed.is_some_and(|a| !a.contains(&h.0)) {
                continue;
            }
            let norm = if hi > lo { (s - lo) / (hi - lo) } else { 0.5 };
            let e = total.entry(h.0).or_insert_with(|| {
                order += 1;
                (0.0, order)
            });
            e.0 += norm as f32;
        }
    }
    let mut out: Vec<(PointId, f32, usize)> = total.into_iter().map(|(id, (s, o))| (id, s, o)).collect();
    out.sort_by(|a, b| b.1.total_cmp(&a.1).then(a.2.cmp(&b.2)));
    out.into_iter().map(|(id, s, _)| (id, s)).collect()
}

/// A small generator for random samples (splitmix64), seeded from the clock and a counter so
/// that two calls differ.
pub(super) struct Rng(u64);

impl Rng {
    pub(super) fn seeded() -> Rng {
        static CALLS: std::sync::atomic::AtomicU64 = std::sync::atomic::AtomicU64::new(0);
        let nanos = std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .map_or(0, |d| d.as_nanos() as u64);
        Rng(nanos
            ^ CALLS
                .fetch_add(1, std::sync::atomic::Ordering::Relaxed)
                .wrapping_mul(0x9e37_79b9_7f4a_7c15))
    }

    /// A generator that always gives the same sequence for `seed`.
    pub(super) fn with_seed(seed: u64) -> Rng {
        Rng(seed)
    }

    pub(super) fn below(&mut self, n: u64) -> u64 {
        self.0 = self.0.wrapping_add(0x9e37_79b9_7f4a_7c15);
        let mut z = self.0;
        z = (z ^ (z >> 30)).wrapping_mul(0xbf58_476d_1ce4_e5b9);
        z = (z ^ (z >> 27)).wrapping_mul(0x94d0_49bb_1331_11eb);
        (z ^ (z >> 31)) % n.max(1)
    }
}

/// As in Qdrant, a stage's filter applies to its prefetches too (each keeps its own as well).
fn inherit_filters(s: &mut QueryStage, inherited: Option<&Filter>) {
    if let Some(parent) = inherited {
        s.filter = Some(match s.filter.take() {
            Some(own) => Filter::all_of(own, parent.clone()),
            None => parent.clone(),
        });
    }
    let filter = s.filter.clone();
    for p in &mut s.prefetch {
        inherit_filters(p, filter.as_ref());
    }
}

fn check_tree(s: &QueryStage, depth: usize, count: &mut usize) -> Result<()> {
    *count += 1;
    if depth > QUERY_DEPTH_MAX || *count > QUERY_STAGES_MAX {
        return Err(Error::InvalidRequest(format!(
            "a query holds at most {QUERY_STAGES_MAX} stages nested at most {QUERY_DEPTH_MAX} deep"
        )));
    }
    if s.limit == 0 || s.limit > SEARCH_LIMIT_MAX {
        return Err(Error::InvalidRequest(format!(
            "limit must be 1..={SEARCH_LIMIT_MAX}, got {}",
            s.limit
        )));
    }
    s.prefetch.iter().try_for_each(|p| check_tree(p, depth + 1, count))
}
