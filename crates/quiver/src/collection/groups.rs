//! Grouped queries (Qdrant's `query/groups`): the best `limit` groups of points sharing a
//! payload value, each with at most `group_size` hits, groups in the order of their best hit.
//! A point whose key holds several values joins each of their groups; only string and integer
//! values form groups (points without one are skipped). The query runs on a growing pool of
//! hits until every group is full or the candidates are exhausted.

use super::*;
use crate::filter::KeyPath;
use serde_json::Value;

/// A group: its value and its hits, best first.
pub type Group = (Value, Vec<ScoredPoint>);

impl Collection {
    /// The best `stage.limit` groups by `group_by`, each holding up to `group_size` hits of the
    /// query `stage`, with what `with` asks for.
    pub fn query_groups(&self, stage: &QueryStage, group_by: &str, group_size: usize, with: With) -> Result<Vec<Group>> {
        let key = KeyPath::parse(group_by).map_err(|e| Error::InvalidRequest(format!("group_by: {e}")))?;
        if group_size == 0 || group_size > SEARCH_LIMIT_MAX || stage.limit == 0 || stage.limit > SEARCH_LIMIT_MAX {
            return Err(Error::InvalidRequest(format!(
                "limit and group_size must be 1..={SEARCH_LIMIT_MAX}"
            )));
        }
        let groups_wanted = stage.limit;
        let mut pool = groups_wanted
            .saturating_mul(group_size)
            .saturating_mul(2)
            .clamp(1, SEARCH_LIMIT_MAX);
        loop {
            let mut s = stage.clone();
            s.limit = pool;
            let hits = self.query(
                &s,
                0,
                With {
                    payload: true,
                    vector: with.vector,
                },
            )?;
            let exhausted = hits.len() < pool || pool == SEARCH_LIMIT_MAX;
            let groups = group_hits(hits, &key, group_size, groups_wanted);
            let full = groups.len() == groups_wanted && groups.iter().all(|g| g.1.len() == group_size);
            if full || exhausted {
                return Ok(groups
                    .into_iter()
                    .map(|(v, mut hits)| {
                        if !with.payload {
                            hits.iter_mut().for_each(|h| h.payload = None);
                        }
                        (v, hits)
                    })
                    .collect());
            }
            pool = pool.saturating_mul(4).min(SEARCH_LIMIT_MAX);
        }
    }
}

/// Hits (best first) into groups by their values at `key`.
fn group_hits(hits: Vec<ScoredPoint>, key: &KeyPath, group_size: usize, limit: usize) -> Vec<Group> {
    let mut groups: Vec<Group> = Vec::new();
    for h in hits {
        let values: Vec<Value> = h
            .payload
            .as_ref()
            .map(|p| {
                key.leaf_values(p)
                    .into_iter()
                    .filter(|v| v.is_string() || v.is_i64() || v.is_u64())
                    .cloned()
                    .collect()
            })
            .unwrap_or_default();
        let mut seen: Vec<&Value> = Vec::new();
        for v in &values {
            if seen.contains(&v) {
                continue;
            }
            seen.push(v);
            match groups.iter().position(|g| g.0 == *v) {
                Some(i) if groups[i].1.len() < group_size => groups[i].1.push(h.clone()),
                Some(_) => {}
                None if groups.len() < limit => groups.push((v.clone(), vec![h.clone()])),
                None => {}
            }
        }
    }
    groups
}

#[cfg(test)]
mod tests {
    use super::*;

    fn hit(id: u64, score: f32, payload: serde_json::Value) -> ScoredPoint {
        ScoredPoint {
            id: PointId::Num(id),
            score,
            payload: payload.as_object().cloned(),
            vector: None,
            vectors: Default::default(),
        }
    }

    #[test]
    fn hits_group_by_each_value_best_first() {
        let hits = vec![
            hit(1, 0.9, serde_json::json!({"doc": "a"})),
            hit(2, 0.8, serde_json::json!({"doc": ["a", "b"]})),
            hit(3, 0.7, serde_json::json!({"doc": "a"})),
            hit(4, 0.6, serde_json::json!({"doc": 7})),
            hit(5, 0.5, serde_json::json!({"doc": 1.5})),
            hit(6, 0.4, serde_json::json!({})),
            hit(7, 0.3, serde_json::json!({"doc": "c"})),
        ];
        let key = KeyPath::parse("doc").unwrap();
        let groups = group_hits(hits, &key, 2, 3);
        let ids: Vec<(Value, Vec<u64>)> = groups
            .into_iter()
            .map(|(v, hs)| {
                (
                    v,
                    hs.iter()
                        .map(|h| match h.id {
                            PointId::Num(n) => n,
                            PointId::Uuid(_) => unreachable!(),
                        })
                        .collect(),
                )
            })
            .collect();
        assert_eq!(
            ids,
            vec![
                (Value::from("a"), vec![1, 2]),
                (Value::from("b"), vec![2]),
                (Value::from(7), vec![4])
            ]
        );
    }
}
