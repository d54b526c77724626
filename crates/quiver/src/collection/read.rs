//! The read path: get, count, scroll, and vector search (exact or through the approximate index,
//! one query or a batch), with the recall check that `quiver explain` prints.

use super::*;

impl Collection {
    pub(super) fn record(st: &State, row: u32, with_payload: bool, with_vector: bool) -> Record {
        Record {
            id: st.id_at(row as usize),
            payload: if with_payload {
                Some(st.payload_at(row as usize).map(|p| p.into_owned()).unwrap_or_default())
            } else {
                None
            },
            // Asked for: the main vector, empty when the point has none.
            vector: with_vector.then(|| {
                if st.is_searchable(row) {
                    st.vector(row).to_vec()
                } else {
                    Vec::new()
                }
            }),
            vectors: named::named_for_record(st, row, with_vector),
        }
    }

    /// The points with these ids, in the order asked, skipping ids that do not exist.
    pub fn get(&self, ids: &[PointId], with: With) -> Result<Vec<Record>> {
        Self::check_ids(ids)?;
        let st = self.inner.state.read();
        Ok(ids
            .iter()
            .filter_map(|id| st.row_of(id).map(|r| Self::record(&st, r, with.payload, with.vector)))
            .collect())
    }

    /// Counts points, optionally only those matching `filter`.
    pub fn count(&self, filter: Option<&Filter>) -> usize {
        let st = self.inner.state.read();
        let plan = st.plan(filter);
        st.plan_len(&plan)
    }

    /// One page of points in id order. Pages are stable: a point that exists throughout is
    /// returned exactly once across the pages.
    pub fn scroll(&self, req: &ScrollRequest) -> Result<ScrollPage> {
        if req.limit == 0 || req.limit > SEARCH_LIMIT_MAX {
            return Err(Error::InvalidRequest(format!("scroll limit must be 1..={SEARCH_LIMIT_MAX}")));
        }
        let st = self.inner.state.read();
        let mut points = Vec::with_capacity(req.limit.min(1024));
        let mut next_offset = None;
        for (id, row) in st.ids_from(req.offset.as_ref()) {
            if let Some(f) = &req.filter {
                if !st.row_matches(row, f) {
                    continue;
                }
            }
            if points.len() == req.limit {
                next_offset = Some(id);
                break;
            }
            points.push(Self::record(&st, row, req.with_payload, req.with_vector));
        }
        Ok(ScrollPage { points, next_offset })
    }

    /// Checks a search request without running it: the errors `search` would return for it.
    /// (`search_batch` refuses the whole batch if one request is bad; callers that batch
    /// requests from different sources check each first.)
    pub fn check_search(&self, req: &SearchRequest) -> Result<()> {
        if self.dim() == 0 {
            return Err(Error::VectorNameNotFound(self.inner.config.vectors.main.clone()));
        }
        validate_vector(&req.vector, self.dim(), None)?;
        self.check_limits(req)
    }

    /// The limit, offset and `ef` checks of a search, whatever its vector.
    pub(super) fn check_limits(&self, req: &SearchRequest) -> Result<()> {
        let want = req.limit.saturating_add(req.offset);
        if req.limit == 0 || want > SEARCH_LIMIT_MAX {
            return Err(Error::InvalidRequest(format!(
                "limit must be at least 1 and limit + offset at most {SEARCH_LIMIT_MAX}"
            )));
        }
        if let Some(ef) = req.ef.filter(|ef| !(1..=crate::types::EF_MAX).contains(ef)) {
            return Err(Error::InvalidRequest(format!(
                "ef must be between 1 and {}, got {ef}",
                crate::types::EF_MAX
            )));
        }
        Ok(())
    }

    pub(super) fn prepare_query(&self, req: &SearchRequest) -> Result<Vec<f32>> {
        self.check_search(req)?;
        let mut q = req.vector.clone();
        if self.inner.config.metric == Metric::Cosine {
            quiver_kernels::normalize(&mut q);
        }
        Ok(q)
    }

    pub(super) fn finish_hits(&self, st: &State, req: &SearchRequest, hits: Vec<quiver_kernels::Scored>) -> Vec<ScoredPoint> {
        self.finish_hits_in(st, req, hits, self.inner.config.metric)
    }

    /// Hits (kernel scores, higher is better) as scored points in `metric`, after the
    /// request's offset and threshold.
    pub(super) fn finish_hits_in(
        &self,
        st: &State,
        req: &SearchRequest,
        hits: Vec<quiver_kernels::Scored>,
        metric: Metric,
    ) -> Vec<ScoredPoint> {
        hits.into_iter()
            .skip(req.offset)
            .map(|h| (h.row, metric.user_score(h.score)))
            .filter(|&(_, score)| match req.score_threshold {
                None => true,
                Some(t) if metric.higher_is_better() => score >= t,
                Some(t) => score <= t,
            })
            .map(|(row, score)| {
                let r = Self::record(st, row, req.with_payload, req.with_vector);
                r.scored(score)
            })
            .collect()
    }

    pub(super) fn search_in(&self, st: &State, req: &SearchRequest, query: &[f32]) -> Vec<ScoredPoint> {
        self.search_traced(st, req, query).0
    }

    pub(super) fn search_traced(&self, st: &State, req: &SearchRequest, query: &[f32]) -> (Vec<ScoredPoint>, SearchPath) {
        let k = req.limit + req.offset;
        let mut path = None;
        if req.exact {
            path = Some(SearchPath::Exact {
                scored: 0,
                reason: "the request asked for exact search",
            });
        } else {
            let (hits, sampled) = self.inner.ann.search(st, req.filter.as_ref(), query, k, req.ef, &mut path);
            if sampled {
                self.kick_monitor();
            }
            if let Some(hits) = hits {
                return (self.finish_hits(st, req, hits), path.expect("the index names its path"));
            }
        }
        let plan = st.search_plan(req.filter.as_ref());
        let hits = st.scan_top_k(self.inner.config.metric.score_kind(), query, plan.allowed(st), k);
        let scored = st.plan_len(&plan);
        let reason = match path {
            Some(SearchPath::Exact { reason, .. }) => reason,
            _ => "exact",
        };
        (self.finish_hits(st, req, hits), SearchPath::Exact { scored, reason })
    }

    /// Searches like [`Collection::search`] and also says how the answer was found.
    pub fn search_explained(&self, req: &SearchRequest) -> Result<(Vec<ScoredPoint>, SearchPath)> {
        let query = self.prepare_query(req)?;
        let st = self.inner.state.read();
        Ok(self.search_traced(&st, req, &query))
    }

    /// How good an approximate answer to `req` is: recall@k of `hits` against an exact scan
    /// (by score, so ties between equal vectors count as found). What `quiver explain` reports
    /// for a search that ran on the graph.
    pub fn recall_of(&self, req: &SearchRequest, hits: &[ScoredPoint]) -> Result<f64> {
        let mut exact = req.clone();
        exact.exact = true;
        let want = self.search(&exact)?;
        let higher = self.inner.config.metric.higher_is_better();
        // Scores as "higher is better" for the shared recall rule.
        let key = |s: f32| if higher { s } else { -s };
        let want: Vec<f32> = want.iter().map(|h| key(h.score)).collect();
        let got: Vec<f32> = hits.iter().map(|h| key(h.score)).collect();
        Ok(crate::monitor::recall(&want, &got))
    }

    /// Exact nearest neighbours of one query: every allowed point is scored.
    pub fn search(&self, req: &SearchRequest) -> Result<Vec<ScoredPoint>> {
        let query = self.prepare_query(req)?;
        let st = self.inner.state.read();
        Ok(self.search_in(&st, req, &query))
    }

    /// Maximal marginal relevance (Qdrant's `nearest` with `mmr`): the `candidates` nearest
    /// points to `req.vector` (under its filter and threshold) are fetched, then chosen one at a
    /// time: first the most relevant, then always the one maximising
    /// `(1 - diversity) * relevance - diversity * (its greatest similarity to one already chosen)`,
    /// relevance and similarity in the collection's metric. `diversity` 0 gives the plain
    /// ranking, 1 the most spread-out set. Hits keep their similarity to the query as score.
    pub fn search_mmr(&self, req: &SearchRequest, diversity: f32, candidates: usize) -> Result<Vec<ScoredPoint>> {
        if !(0.0..=1.0).contains(&diversity) {
            return Err(Error::InvalidRequest(format!(
                "mmr diversity must be between 0 and 1, got {diversity}"
            )));
        }
        if candidates == 0 || candidates > SEARCH_LIMIT_MAX {
            return Err(Error::InvalidRequest(format!(
                "mmr candidates_limit must be 1..={SEARCH_LIMIT_MAX}, got {candidates}"
            )));
        }
        let query = self.prepare_query(req)?;
        let want = req.limit + req.offset;
        let mut pre = req.clone();
        pre.limit = candidates.max(want).min(SEARCH_LIMIT_MAX);
        pre.offset = 0;
        pre.with_vector = true;
        let mut hits = self.search(&pre)?;
        let kind = self.inner.config.metric.score_kind();
        let vectors: Vec<Vec<f32>> = hits.iter_mut().map(|h| h.vector.take().unwrap_or_default()).collect();
        let chosen = mmr_order(&query, &vectors, kind, 1.0 - diversity, want);
        Ok(chosen
            .into_iter()
            .skip(req.offset)
            .map(|i| {
                let mut h = hits[i].clone();
                if req.with_vector {
                    h.vector = Some(vectors[i].clone());
                }
                h
            })
            .collect())
    }

    /// Points in the order of their values at `key` (Qdrant's scroll `order_by`): ascending or
    /// descending, from `start_from` on (inclusive), under `req`'s filter, at most `req.limit`;
    /// a point holding several values comes once per value. Each record comes with the value
    /// it was ordered by. Needs an integer or float payload index on `key`; `req.offset` must be
    /// `None` (paging goes by `start_from`).
    pub fn scroll_ordered(&self, req: &ScrollRequest, key: &str, descending: bool, start_from: Option<f64>) -> Result<Vec<(Record, f64)>> {
        if req.limit == 0 || req.limit > SEARCH_LIMIT_MAX {
            return Err(Error::InvalidRequest(format!("scroll limit must be 1..={SEARCH_LIMIT_MAX}")));
        }
        if req.offset.is_some() {
            return Err(Error::InvalidRequest(
                "an offset cannot be combined with order_by: page with order_by.start_from".into(),
            ));
        }
        let st = self.inner.state.read();
        let plan = st.plan(req.filter.as_ref());
        let mut allowed = roaring::RoaringBitmap::new();
        quiver_kernels::scan::for_each_allowed(plan.allowed(&st), st.n_rows(), |r| {
            allowed.insert(r);
        });
        let rows = st.ordered_rows(key, descending, start_from, &allowed, req.limit).ok_or_else(|| {
            Error::InvalidRequest(format!(
                "No range index for `order_by` key: {key:?}; create an integer or float index on it"
            ))
        })?;
        Ok(rows
            .into_iter()
            .map(|(r, v)| (Self::record(&st, r, req.with_payload, req.with_vector), v))
            .collect())
    }

    /// Facet counts (Qdrant's `/points/facet`): the values of `key` among the points matching
    /// `filter`, each with the number of points holding it, most common first (ties by value),
    /// at most `limit`. Needs a keyword, integer or bool payload index on `key`; the counts come
    /// from the index's bitmaps (no payload is read) and are exact.
    pub fn facet(&self, key: &str, filter: Option<&Filter>, limit: usize) -> Result<Vec<(serde_json::Value, u64)>> {
        if limit == 0 || limit > SEARCH_LIMIT_MAX {
            return Err(Error::InvalidRequest(format!("facet limit must be 1..={SEARCH_LIMIT_MAX}")));
        }
        let st = self.inner.state.read();
        let plan = st.plan(filter);
        let mut allowed = roaring::RoaringBitmap::new();
        quiver_kernels::scan::for_each_allowed(plan.allowed(&st), st.n_rows(), |r| {
            allowed.insert(r);
        });
        let mut counts = st.facet_counts(key, &allowed).ok_or_else(|| {
            Error::InvalidRequest(format!(
                "facet needs a keyword, integer or bool payload index on {key:?}; create one first"
            ))
        })?;
        let order = |v: &serde_json::Value| match v {
            serde_json::Value::Number(n) => (0, n.as_i64().unwrap_or(0), String::new()),
            serde_json::Value::Bool(b) => (1, *b as i64, String::new()),
            other => (2, 0, other.as_str().unwrap_or("").to_string()),
        };
        counts.sort_by(|a, b| b.1.cmp(&a.1).then_with(|| order(&a.0).cmp(&order(&b.0))));
        counts.truncate(limit);
        Ok(counts)
    }

    /// Search for many queries at once. Unfiltered exact queries with one `limit` (every query
    /// is exact where there is no graph) share a matrix product; the others run in parallel,
    /// one search each.
    pub fn search_batch(&self, reqs: &[SearchRequest]) -> Result<Vec<Vec<ScoredPoint>>> {
        let queries: Vec<Vec<f32>> = reqs.iter().map(|r| self.prepare_query(r)).collect::<Result<_>>()?;
        let st = self.inner.state.read();
        let shared_k = reqs.first().map(|r| r.limit + r.offset);
        let indexed = st.n_alive() >= self.inner.config.index.full_scan_threshold && self.inner.ann.status(&st).nodes > 0;
        // Exact requests share one matrix product even where a graph exists.
        let exact = !indexed || reqs.iter().all(|r| r.exact);
        let gemm_ok = exact && reqs.iter().all(|r| r.filter.is_none() && Some(r.limit + r.offset) == shared_k);
        if !gemm_ok {
            // One search per query, each under its own hold of the state's read lock: a writer
            // waits for one search, not for the whole batch (and readers queued behind it wait
            // no longer either).
            drop(st);
            return Ok(reqs
                .par_iter()
                .zip(queries.par_iter())
                .map(|(r, q)| {
                    let st = self.inner.state.read();
                    self.search_in(&st, r, q)
                })
                .collect());
        }
        if !reqs.is_empty() {
            let flat: Vec<f32> = queries.concat();
            let hits = st.batch_top_k(self.inner.config.metric.score_kind(), &flat, st.alive_mask(), shared_k.unwrap_or(0));
            return Ok(hits.into_iter().zip(reqs).map(|(h, r)| self.finish_hits(&st, r, h)).collect());
        }
        Ok(Vec::new())
    }
}

/// The greedy MMR choice of `want` rows of `vectors` (indices, in the order chosen):
/// `lambda` weighs relevance to `query` against the greatest similarity to a row already
/// chosen. Each row's greatest similarity is kept up to date as rows are chosen, so the whole
/// choice costs one score per (candidate, chosen) pair. Ties go to the more relevant row.
pub(crate) fn mmr_order(query: &[f32], vectors: &[Vec<f32>], kind: quiver_kernels::ScoreKind, lambda: f32, want: usize) -> Vec<usize> {
    let n = vectors.len();
    let relevance: Vec<f32> = vectors.iter().map(|v| kind.score(query, v)).collect();
    let mut closest = vec![f32::NEG_INFINITY; n];
    let mut taken = vec![false; n];
    let mut chosen = Vec::with_capacity(want.min(n));
    while chosen.len() < want.min(n) {
        let mut best: Option<(usize, f32)> = None;
        for i in (0..n).filter(|&i| !taken[i]) {
            let value = if chosen.is_empty() {
                relevance[i]
            } else {
                lambda * relevance[i] - (1.0 - lambda) * closest[i]
            };
            let better = match best {
                None => true,
                Some((b, bv)) => value > bv || (value == bv && relevance[i] > relevance[b]),
            };
            if better {
                best = Some((i, value));
            }
        }
        let Some((pick, _)) = best else { break };
        taken[pick] = true;
        chosen.push(pick);
        for i in (0..n).filter(|&i| !taken[i]) {
            closest[i] = closest[i].max(kind.score(&vectors[i], &vectors[pick]));
        }
    }
    chosen
}

#[cfg(test)]
mod mmr_tests {
    use super::mmr_order;
    use quiver_kernels::ScoreKind;

    #[test]
    fn no_diversity_is_the_plain_ranking() {
        let q = [1.0, 0.0];
        let v = vec![vec![0.6, 0.8], vec![1.0, 0.0], vec![0.8, 0.6], vec![0.0, 1.0]];
        assert_eq!(mmr_order(&q, &v, ScoreKind::Dot, 1.0, 4), vec![1, 2, 0, 3]);
    }

    /// Three near-duplicates and one different point: with diversity, the different one comes
    /// second even though two duplicates are more relevant; computed by hand.
    #[test]
    fn diversity_skips_near_duplicates() {
        let q = [1.0, 0.0];
        let a = vec![1.0, 0.0];
        let a2 = vec![0.99, 0.141];
        let a3 = vec![0.98, 0.199];
        let b = vec![0.6, -0.8];
        let v = vec![a, a2, a3, b];
        // lambda 0.5: after 0 is chosen, 1 scores 0.5*0.99 - 0.5*0.99 = 0; 3 scores 0.5*0.6 - 0.5*0.6 = 0,
        // so take lambda 0.4: 1 scores 0.4*0.99 - 0.6*0.99 < 0.4*0.6 - 0.6*0.6 for 3.
        let got = mmr_order(&q, &v, ScoreKind::Dot, 0.4, 2);
        assert_eq!(got, vec![0, 3]);
        assert_eq!(mmr_order(&q, &v, ScoreKind::Dot, 1.0, 2), vec![0, 1]);
    }

    #[test]
    fn fewer_candidates_than_wanted() {
        let v = vec![vec![1.0f32], vec![2.0]];
        assert_eq!(mmr_order(&[1.0], &v, ScoreKind::NegL2Squared, 0.5, 5).len(), 2);
        assert!(mmr_order(&[1.0], &[], ScoreKind::Dot, 0.5, 3).is_empty());
    }
}
