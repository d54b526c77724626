//! Named, sparse and multi vectors (see [`crate::vector_model`]): checking them on the way in,
//! searching a named space, replacing and deleting single vectors of a point, and changing a
//! sparse space's IDF setting.
//!
//! Only the main vector has an approximate index: a named dense or multivector space is
//! scanned exactly (every allowed point holding it is scored), a sparse space is answered
//! exactly by its inverted index (`sparse_index.rs`).

use super::*;
use crate::state::Plan;
use crate::vector_model::{
    max_sim, DenseParams, NamedVectors, QueryVector, SparseParams, SparseVector, VectorData, MULTIVECTOR_ROWS_MAX, POINT_VECTOR_BYTES_MAX,
};
use quiver_kernels::{Scored, TopK};

impl Collection {
    /// Sorts out a point's vectors: the main one given by name moves to `vector`, every other
    /// one must be declared, of its space's kind and size, finite; cosine spaces are
    /// normalised and sparse vectors sorted.
    pub(super) fn prepare_vectors(&self, p: &mut Point) -> Result<()> {
        let config = &self.inner.config;
        let schema = &config.vectors;
        let point = Some(p.id.to_string());
        if config.dim > 0 {
            if let Some(main) = p.vectors.remove(&schema.main) {
                match main {
                    VectorData::Dense(v) if p.vector.is_empty() => p.vector = v,
                    VectorData::Dense(_) => {
                        return Err(Error::InvalidRequest(format!(
                            "point {} gives its main vector {:?} twice",
                            p.id, schema.main
                        )))
                    }
                    other => {
                        return Err(Error::InvalidVector {
                            name: schema.main.clone(),
                            reason: format!("expected a dense vector, got a {} one", other.kind()),
                        })
                    }
                }
            }
            // A plain collection's points always carry its one vector.
            if !p.vector.is_empty() || schema.is_plain() {
                validate_vector(&p.vector, config.dim, Some(&p.id))?;
                if config.metric == Metric::Cosine {
                    quiver_kernels::normalize(&mut p.vector);
                }
            }
        } else if !p.vector.is_empty() {
            // The unnamed space is a multivector: a bare vector is one row of it.
            match schema.dense.get("") {
                Some(d) if d.multivector && !p.vectors.contains_key("") => {
                    p.vectors.insert(String::new(), VectorData::Dense(std::mem::take(&mut p.vector)));
                }
                _ => return Err(Error::VectorNameNotFound(schema.main.clone())),
            }
        }
        let named = std::mem::take(&mut p.vectors);
        let bytes: usize = named.values().map(VectorData::bytes).sum();
        if bytes > POINT_VECTOR_BYTES_MAX {
            return Err(Error::InvalidRequest(format!(
                "point {}: its named vectors take {bytes} bytes, more than the limit of {POINT_VECTOR_BYTES_MAX}",
                p.id
            )));
        }
        for (name, v) in named {
            let v = match (v, schema.dense.get(&name)) {
                (VectorData::Dense(v), _) if v.is_empty() => {
                    return Err(Error::InvalidVector {
                        name,
                        reason: "dense vector must not be empty".into(),
                    })
                }
                // A dense vector given to a multivector space is a multivector of one row.
                (VectorData::Dense(v), Some(d)) if d.multivector => VectorData::Multi(vec![v]),
                (v, _) => v,
            };
            let v = match (v, schema.dense.get(&name), schema.sparse.get(&name)) {
                (VectorData::Dense(mut v), Some(d), _) if !d.multivector => {
                    validate_vector(&v, d.dim, Some(&p.id))?;
                    if d.metric == Metric::Cosine {
                        quiver_kernels::normalize(&mut v);
                    }
                    VectorData::Dense(v)
                }
                (VectorData::Multi(mut rows), Some(d), _) if d.multivector => {
                    if rows.is_empty() || rows.len() > MULTIVECTOR_ROWS_MAX {
                        return Err(Error::InvalidVector {
                            name,
                            reason: format!("a multivector holds 1 to {MULTIVECTOR_ROWS_MAX} vectors, got {}", rows.len()),
                        });
                    }
                    for r in &mut rows {
                        validate_vector(r, d.dim, Some(&p.id))?;
                        if d.metric == Metric::Cosine {
                            quiver_kernels::normalize(r);
                        }
                    }
                    VectorData::Multi(rows)
                }
                (VectorData::Sparse(sv), _, Some(_)) => VectorData::Sparse(sv.validated(&name)?),
                (_, None, None) => return Err(Error::VectorNameNotFound(name)),
                (v, d, _) => {
                    let want = match d {
                        Some(d) if d.multivector => "multi",
                        Some(_) => "dense",
                        None => "sparse",
                    };
                    return Err(Error::InvalidVector {
                        reason: format!(
                            "expected a {want} vector, got a {} one (point {})",
                            v.kind(),
                            point.as_deref().unwrap_or("")
                        ),
                        name,
                    });
                }
            };
            p.vectors.insert(name, v);
        }
        Ok(())
    }

    /// The `limit` best points for a query against the vector space `using` (the main one, a
    /// named dense or multivector space, or a sparse space), under `req`'s filter, offset,
    /// threshold and `with_*` (its `vector` is ignored). Points without that vector are never
    /// returned. Scores are in the space's metric; sparse scores are dot products (with IDF
    /// weights when the space has the modifier).
    pub fn search_named(&self, using: &str, query: &QueryVector, req: &SearchRequest) -> Result<Vec<ScoredPoint>> {
        let config = &self.inner.config;
        if using == config.vectors.main && config.dim > 0 {
            let vector = match query {
                QueryVector::Dense(v) => v.clone(),
                other => {
                    return Err(Error::InvalidVector {
                        name: using.to_string(),
                        reason: format!("expected a dense query, got {}", query_kind(other)),
                    })
                }
            };
            return self.search(&SearchRequest { vector, ..req.clone() });
        }
        let mut probe = req.clone();
        probe.vector = vec![0.0; config.dim];
        self.check_limits(&probe)?;
        let k = req.limit + req.offset;
        if let Some(params) = config.vectors.dense.get(using) {
            let query = self.prepare_dense_query(using, params, query)?;
            let st = self.inner.state.read();
            let kind = params.metric.score_kind();
            let plan = st.plan(req.filter.as_ref());
            let mut top = TopK::new(k);
            quiver_kernels::scan::for_each_allowed(plan.allowed(&st), st.n_rows(), |r| {
                match st.named_at(r).and_then(|m| m.get(using)) {
                    Some(VectorData::Dense(v)) => top.push(r, kind.score(&query[0], v)),
                    Some(VectorData::Multi(rows)) => top.push(r, max_sim(&query, rows, |a, b| kind.score(a, b))),
                    _ => {}
                }
            });
            let hits = top.into_sorted();
            // MaxSim sums the kernel's similarities (negated squared distances for euclid), and
            // the sum is reported in the metric's terms, as Qdrant does.
            return Ok(self.finish_hits_in(&st, req, hits, params.metric));
        }
        if config.vectors.sparse.contains_key(using) {
            let QueryVector::Sparse(q) = query else {
                return Err(Error::InvalidVector {
                    name: using.to_string(),
                    reason: format!("expected a sparse query, got {}", query_kind(query)),
                });
            };
            return Ok(self.explain_sparse(using, q, req)?.0);
        }
        Err(Error::VectorNameNotFound(using.to_string()))
    }

    /// A sparse search (see [`Collection::search_named`]) and how it was answered: each query
    /// index's weight (value times IDF when the space has the modifier), how many points hold
    /// it, and whether its posting list was read in full or only looked up for the candidates
    /// left after pruning. What `quiver explain --using` prints.
    pub fn explain_sparse(&self, using: &str, query: &SparseVector, req: &SearchRequest) -> Result<(Vec<ScoredPoint>, SparseExplain)> {
        if !self.inner.config.vectors.sparse.contains_key(using) {
            return Err(Error::VectorNameNotFound(using.to_string()));
        }
        let mut probe = req.clone();
        probe.vector = vec![0.0; self.inner.config.dim];
        self.check_limits(&probe)?;
        let q = query.clone().validated(using)?;
        let st = self.inner.state.read();
        let index = st.sparse_index(using).expect("every sparse space has an index");
        let use_idf = st.sparse_idf(using);
        let weights = index.query_weights(&q, use_idf);
        let plan = st.plan(req.filter.as_ref());
        let mask = plan_mask(&st, &plan);
        let allowed = |r: u32| mask.get(r as usize / 64).is_some_and(|w| w >> (r % 64) & 1 == 1);
        let (hits, stats) = index.search(&weights, req.limit + req.offset, st.n_rows(), allowed);
        let terms = q
            .indices
            .iter()
            .zip(&q.values)
            .zip(&weights)
            .map(|((&i, &value), &(_, weight))| {
                let (df, postings) = index.term(i);
                SparseTerm {
                    index: i,
                    value,
                    idf: use_idf.then(|| crate::vector_model::idf(index.docs(), df)),
                    weight,
                    df,
                    postings,
                    read_in_full: stats.full.contains(&i),
                }
            })
            .collect();
        let explain = SparseExplain {
            docs: index.docs(),
            terms,
            entries_read: stats.scanned,
            candidates: stats.candidates,
        };
        let hits = hits.into_iter().map(|(row, score)| Scored { row, score }).collect();
        Ok((self.finish_hits_in(&st, req, hits, Metric::Dot), explain))
    }

    fn prepare_dense_query(&self, using: &str, params: &DenseParams, query: &QueryVector) -> Result<Vec<Vec<f32>>> {
        let mut rows = match query {
            QueryVector::Dense(v) => vec![v.clone()],
            QueryVector::Multi(rows) if params.multivector && !rows.is_empty() => rows.clone(),
            other => {
                return Err(Error::InvalidVector {
                    name: using.to_string(),
                    reason: format!(
                        "expected a {} query, got {}",
                        if params.multivector { "dense or multi" } else { "dense" },
                        query_kind(other)
                    ),
                })
            }
        };
        for r in &mut rows {
            validate_vector(r, params.dim, None)?;
            if params.metric == Metric::Cosine {
                quiver_kernels::normalize(r);
            }
        }
        Ok(rows)
    }

    /// Replaces or adds vectors of existing points, keeping their other vectors and payloads
    /// (Qdrant's `PUT /points/vectors`). Each point gives the vectors to change (its payload is
    /// ignored). Every id must exist ([`Error::PointNotFound`] otherwise, and nothing is
    /// written); the check and the write happen under the writer lock.
    pub fn update_vectors(&self, updates: Vec<Point>) -> Result<WriteAck> {
        self.update_vectors_if(updates, None)
    }

    /// [`Collection::update_vectors`] with Qdrant's `update_filter`: only the points that match
    /// `condition` are changed (the others are left as they are, and not counted).
    pub fn update_vectors_if(&self, updates: Vec<Point>, condition: Option<&Filter>) -> Result<WriteAck> {
        if updates.is_empty() {
            return Err(Error::EmptyBatch);
        }
        let mut changes = Vec::with_capacity(updates.len());
        for mut p in updates {
            if p.vector.is_empty() && p.vectors.is_empty() {
                return Err(Error::InvalidRequest(format!("point {} gives no vector to update", p.id)));
            }
            self.prepare_vectors_partial(&mut p)?;
            changes.push(p);
        }
        let mut w = self.writer()?;
        let points = {
            let st = self.inner.state.read();
            // Updates of one point apply in order, each on top of the one before.
            let mut merged: Vec<Point> = Vec::new();
            let mut at: std::collections::HashMap<PointId, usize> = std::collections::HashMap::new();
            for p in changes {
                let row = st.row_of(&p.id).ok_or_else(|| Error::PointNotFound(p.id.to_string()))?;
                if condition.is_some_and(|f| !st.row_matches(row, f)) {
                    continue;
                }
                let i = *at.entry(p.id).or_insert_with(|| {
                    merged.push(Self::stored_point(&st, row));
                    merged.len() - 1
                });
                if !p.vector.is_empty() {
                    merged[i].vector = p.vector;
                }
                merged[i].vectors.extend(p.vectors);
            }
            merged
        };
        let affected = points.len();
        if points.is_empty() {
            return Ok(WriteAck {
                seq: w.last_seq,
                affected: 0,
            });
        }
        let seq = self.commit(&mut w, Op::Upsert(points))?;
        drop(w);
        self.kick_index();
        Ok(WriteAck { seq, affected })
    }

    /// Merges `payload` into the object at `key` inside the selected points' payloads (Qdrant's
    /// set payload with a `key`, such as `"meta.author"` or `"chunks[].source"`; see
    /// [`crate::projection::set_at`]). Logged as the points' new contents.
    pub fn set_payload_at(&self, selector: &PointSelector, payload: Payload, key: &str) -> Result<WriteAck> {
        let path = crate::filter::KeyPath::parse(key).map_err(|e| Error::InvalidRequest(format!("payload key: {e}")))?;
        let mut w = self.writer()?;
        let points: Vec<Point> = {
            let st = self.inner.state.read();
            self.selected_rows(&st, selector)
                .into_iter()
                .map(|row| {
                    let mut p = Self::stored_point(&st, row);
                    let mut merged = p.payload.take().unwrap_or_default();
                    crate::projection::set_at(&mut merged, &path, &payload);
                    let bytes = serde_json::to_vec(&merged).map_or(0, |b| b.len());
                    if bytes > PAYLOAD_BYTES_MAX {
                        return Err(Error::InvalidPayload {
                            reason: format!("{bytes} bytes exceeds the limit of {PAYLOAD_BYTES_MAX}"),
                            point: Some(p.id.to_string()),
                        });
                    }
                    p.payload = Some(merged);
                    Ok(p)
                })
                .collect::<Result<_>>()?
        };
        if points.is_empty() {
            return Ok(WriteAck {
                seq: w.last_seq,
                affected: 0,
            });
        }
        let affected = points.len();
        let seq = self.commit(&mut w, Op::Upsert(points))?;
        Ok(WriteAck { seq, affected })
    }

    /// Removes the named vectors (the main one too, by its name) from the selected points,
    /// keeping everything else (Qdrant's `POST /points/vectors/delete`). Names the collection
    /// does not declare are an error.
    pub fn delete_vectors(&self, selector: &PointSelector, names: &[String]) -> Result<WriteAck> {
        let schema = &self.inner.config.vectors;
        let main_dim = self.inner.config.dim;
        if let Some(n) = names.iter().find(|n| !schema.names(main_dim).contains(&n.as_str())) {
            return Err(Error::VectorNameNotFound(n.clone()));
        }
        let mut w = self.writer()?;
        let points: Vec<Point> = {
            let st = self.inner.state.read();
            self.selected_rows(&st, selector)
                .into_iter()
                .map(|row| {
                    let mut p = Self::stored_point(&st, row);
                    for n in names {
                        if *n == schema.main && main_dim > 0 {
                            p.vector.clear();
                        }
                        p.vectors.remove(n);
                    }
                    p
                })
                .collect()
        };
        if points.is_empty() {
            return Ok(WriteAck {
                seq: w.last_seq,
                affected: 0,
            });
        }
        let affected = points.len();
        let seq = self.commit(&mut w, Op::Upsert(points))?;
        Ok(WriteAck { seq, affected })
    }

    /// Turns the IDF modifier of a sparse space on or off (Qdrant's `PATCH /collections/{name}`
    /// with `sparse_vectors`): recorded in the manifest, used by the next query.
    pub fn set_sparse_params(&self, name: &str, params: SparseParams) -> Result<()> {
        if !self.inner.config.vectors.sparse.contains_key(name) {
            return Err(Error::VectorNameNotFound(name.to_string()));
        }
        let mut w = self.writer()?;
        let mut m = w.manifest.clone();
        m.config.vectors.sparse.insert(name.to_string(), params.clone());
        write_manifest(&self.inner.dir, &m)?;
        w.manifest = m;
        self.publish(&w.manifest)?;
        self.inner.state.write().set_sparse_idf(name, params.idf);
        Ok(())
    }

    /// Live points holding the vector `name` (the main one included).
    pub fn count_vector(&self, name: &str) -> Result<usize> {
        if !self.inner.config.vectors.names(self.inner.config.dim).contains(&name) {
            return Err(Error::VectorNameNotFound(name.to_string()));
        }
        Ok(self.inner.state.read().count_vector(name))
    }

    /// [`Collection::prepare_vectors`] for a partial update: the main vector may be absent
    /// even in a collection of one vector.
    fn prepare_vectors_partial(&self, p: &mut Point) -> Result<()> {
        let schema = &self.inner.config.vectors;
        if schema.is_plain() && p.vector.is_empty() && !p.vectors.contains_key(&schema.main) {
            return Err(Error::VectorNameNotFound(p.vectors.keys().next().cloned().unwrap_or_default()));
        }
        self.prepare_vectors(p)
    }

    /// A stored point as a [`Point`] again (main vector empty when it has none).
    pub(super) fn stored_point(st: &State, row: u32) -> Point {
        Point {
            id: st.id_at(row as usize),
            vector: if st.is_searchable(row) {
                st.vector(row).to_vec()
            } else {
                Vec::new()
            },
            vectors: st.named_at(row).cloned().unwrap_or_default(),
            payload: st.payload_at(row as usize).map(|p| p.into_owned()),
        }
    }

    fn selected_rows(&self, st: &State, selector: &PointSelector) -> Vec<u32> {
        match selector {
            PointSelector::Ids(ids) => ids.iter().filter_map(|id| st.row_of(id)).collect(),
            PointSelector::Filter(f) => {
                let plan = st.plan(Some(f));
                let mut rows = Vec::with_capacity(st.plan_len(&plan));
                quiver_kernels::scan::for_each_allowed(plan.allowed(st), st.n_rows(), |r| rows.push(r));
                rows
            }
        }
    }
}

/// How a sparse query was answered ([`Collection::explain_sparse`]).
#[derive(Clone, Debug, PartialEq)]
pub struct SparseExplain {
    /// Live points holding a vector of the space (the `n` of IDF).
    pub docs: usize,
    /// One entry per query index, in index order.
    pub terms: Vec<SparseTerm>,
    /// Posting entries read in full passes.
    pub entries_read: usize,
    /// Candidates left when pruning stopped the full passes (0: every term was read in full).
    pub candidates: usize,
}

/// One index of a sparse query ([`SparseExplain`]).
#[derive(Clone, Debug, PartialEq)]
pub struct SparseTerm {
    /// The index.
    pub index: u32,
    /// Its value in the query.
    pub value: f32,
    /// Its IDF, when the space has the modifier.
    pub idf: Option<f32>,
    /// The weight it was searched with (value, times IDF).
    pub weight: f32,
    /// Live points holding it.
    pub df: usize,
    /// Entries of its posting list (deleted points included until compaction).
    pub postings: usize,
    /// Read in full; otherwise looked up for the surviving candidates only (or absent).
    pub read_in_full: bool,
}

/// A plan as a bitset of rows.
fn plan_mask(st: &State, plan: &Plan) -> Vec<u64> {
    match plan {
        Plan::AllLive => st.alive_mask().to_vec(),
        Plan::AllSearchable => st.searchable_mask().to_vec(),
        Plan::Mask(m) => m.clone(),
        Plan::List(l) => {
            let mut m = vec![0u64; st.n_rows().div_ceil(64)];
            for &r in l {
                m[r as usize / 64] |= 1 << (r % 64);
            }
            m
        }
    }
}

pub(super) fn query_kind(q: &QueryVector) -> &'static str {
    match q {
        QueryVector::Dense(_) => "a dense one",
        QueryVector::Multi(_) => "a multivector",
        QueryVector::Sparse(_) => "a sparse one",
    }
}

/// Named vectors for a record, when asked for: all of them, and a *named* main vector under
/// its name too (so a reader sees every vector by the name it was written with).
pub(super) fn named_for_record(st: &State, row: u32, with_vector: bool) -> NamedVectors {
    if !with_vector {
        return NamedVectors::new();
    }
    let mut out = st.named_at(row).cloned().unwrap_or_default();
    if !st.main_name().is_empty() && st.is_searchable(row) {
        out.insert(st.main_name().to_string(), VectorData::Dense(st.vector(row).to_vec()));
    }
    out
}
