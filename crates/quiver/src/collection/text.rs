//! Full-text search (BM25 over a text payload index) and hybrid search (dense + BM25 fused).

use super::*;

/// How deep each ranking of a hybrid search goes when the caller does not say: four times the
/// results wanted, at least 20 (a passage ranked 15th by one side and 2nd by the other must
/// still be fused). The CLI, the context retriever and the benchmarks all use this.
pub fn hybrid_depth(limit: usize) -> usize {
    limit.saturating_mul(4).max(20)
}

impl Collection {
    /// The `limit` best points for `query` by BM25 over the full-text index on `key` (the first
    /// text index when `None`), among points matching `filter`; scores are BM25 scores.
    pub fn search_text(
        &self,
        query: &str,
        key: Option<&str>,
        limit: usize,
        filter: Option<&Filter>,
        with: With,
    ) -> Result<Vec<ScoredPoint>> {
        crate::text_index::check_query_text(query)?;
        if limit == 0 || limit > SEARCH_LIMIT_MAX {
            return Err(Error::InvalidRequest(format!("limit must be 1..={SEARCH_LIMIT_MAX}")));
        }
        let st = self.inner.state.read();
        let Some((index_key, t)) = st.text_indexes().iter().find(|(k, _)| key.is_none_or(|key| k.text == key)) else {
            return Err(Error::InvalidRequest(match key {
                Some(k) => format!("no full-text index on {k:?}; create one (payload index type text)"),
                None => "this collection has no full-text index; create one (payload index type text)".into(),
            }));
        };
        // Over-fetch when filtering, doubling until enough points pass or none are left.
        let mut fetch = if filter.is_some() { limit * 4 } else { limit };
        loop {
            let found = t.bm25(query, fetch).map_err(|reason| Error::TextIndexUnavailable {
                key: index_key.text.clone(),
                reason,
            })?;
            let exhausted = found.len() < fetch;
            let hits: Vec<ScoredPoint> = found
                .into_iter()
                .filter_map(|(id, score)| {
                    let row = st.row_of(&id)?;
                    if filter.is_some_and(|f| !st.row_matches(row, f)) {
                        return None;
                    }
                    let r = Self::record(&st, row, with.payload, with.vector);
                    Some(r.scored(score))
                })
                .take(limit)
                .collect();
            if hits.len() >= limit || exhausted {
                return Ok(hits);
            }
            fetch *= 2;
        }
    }

    /// Hybrid search: the dense ranking of `req` and the BM25 ranking of `text` (each `prefetch`
    /// deep, both under `req.filter`) fused by reciprocal rank fusion; scores are fused scores.
    /// When `text` names a rare identifier (an error code, a part number: see
    /// [`crate::text_index::TextIndex::rare_identifiers`]), the fused points that contain it
    /// come first (their fused score raised by the best one), in fused order: rank fusion alone lets the dense side's generic matches ("how
    /// do I fix") outrank the only passage with the identifier.
    pub fn hybrid(&self, req: &SearchRequest, text: &str, fusion: &Fusion, prefetch: usize) -> Result<Vec<ScoredPoint>> {
        let depth = prefetch.max(req.limit + req.offset);
        let mut dense_req = req.clone();
        dense_req.limit = depth;
        dense_req.offset = 0;
        dense_req.with_payload = false;
        dense_req.with_vector = false;
        dense_req.score_threshold = None;
        let dense: Vec<PointId> = self.search(&dense_req)?.into_iter().map(|h| h.id).collect();
        let sparse: Vec<PointId> = self
            .search_text(text, None, depth, req.filter.as_ref(), With::NOTHING)?
            .into_iter()
            .map(|h| h.id)
            .collect();
        let mut fused = crate::text_index::rrf(&[(fusion.dense_weight, dense), (fusion.text_weight, sparse)], fusion.k, usize::MAX);
        let st = self.inner.state.read();
        if let Some((_, t)) = st.text_indexes().first() {
            let rare = t.rare_identifiers(text);
            if !rare.is_empty() {
                let holders: std::collections::HashSet<PointId> =
                    rare.iter().filter_map(|term| t.matching(term, false)).flatten().collect();
                // Holders get the best fused score on top of their own, so they come first, in
                // fused order, and scores still fall down the list.
                let top = fused.first().map_or(0.0, |f| f.1);
                for (id, score) in fused.iter_mut() {
                    if holders.contains(id) {
                        *score += top;
                    }
                }
                fused.sort_by(|a, b| b.1.total_cmp(&a.1));
            }
        }
        fused.truncate(req.limit + req.offset);
        Ok(fused
            .into_iter()
            .skip(req.offset)
            .filter_map(|(id, score)| {
                let row = st.row_of(&id)?;
                let r = Self::record(&st, row, req.with_payload, req.with_vector);
                Some(r.scored(score))
            })
            .collect())
    }
}
