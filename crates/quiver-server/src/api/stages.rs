//! The Query API's general form, on the library's query stages: which bodies need them,
//! parsing a body into a tree of stages (prefetches, vector / sparse / multi queries, fusion,
//! recommend, discover, context, samples), turning example ids into vectors (`Resolver`, with
//! `lookup_from`), and grouped queries.

use super::*;

/// True when a search body needs the library's query stages rather than the batched dense
/// search: prefetches (other than Quiver's dense + keyword hybrid), a `using` other than the
/// unnamed vector, a sparse or multi query, a fusion, or the search API's `{"name", "vector"}`.
pub(super) fn needs_stages(body: &Map<String, Value>) -> bool {
    let prefetch = crate::documents::prefetches(body);
    if !prefetch.is_empty() {
        return !prefetch.iter().any(|p| crate::documents::is_keyword_prefetch(p));
    }
    if body.get("using").and_then(Value::as_str).is_some_and(|u| !u.is_empty()) || body.get("lookup_from").is_some_and(|l| !l.is_null()) {
        return true;
    }
    let not_dense = |q: &Value| match q {
        Value::Array(items) => items.first().is_some_and(Value::is_array),
        Value::Object(o) => o.contains_key("indices") || o.contains_key("name"),
        _ => false,
    };
    match body.get("query").or_else(|| body.get("vector")) {
        Some(Value::Object(o))
            if [
                "fusion",
                "rrf",
                "recommend",
                "discover",
                "context",
                "sample",
                "order_by",
                "formula",
                "relevance_feedback",
            ]
            .iter()
            .any(|k| o.contains_key(*k)) =>
        {
            true
        }
        Some(Value::Object(o)) if o.get("nearest").is_some_and(|n| n.is_number() || n.is_string()) => true,
        Some(Value::Number(_)) => true,
        Some(Value::String(s)) => s.parse::<uuid::Uuid>().is_ok(),
        Some(Value::Object(o)) if o.contains_key("nearest") => not_dense(&o["nearest"]),
        Some(q) => not_dense(q),
        // No query: a listing, or a stage Qdrant refuses (the stages say why).
        None => true,
    }
}

/// One stage of a query from its JSON: `prefetch`, `query`, `using`, `filter`, `limit`,
/// `score_threshold`, `params` (and the search API's `vector`, `{"name", "vector"}` included).
pub(super) fn parse_stage(o: &Map<String, Value>, depth: usize, r: &Resolver<'_>) -> Result<quiver::QueryStage, ApiError> {
    use quiver::{FusionKind, StageQuery};
    if depth > quiver::collection::QUERY_DEPTH_MAX {
        return Err(ApiError::bad(format!(
            "prefetches nest at most {} deep",
            quiver::collection::QUERY_DEPTH_MAX
        )));
    }
    reject_present(o, &["shard_key"])?;
    let lookup = parse_lookup(o, r)?;
    let mut used = Vec::new();
    let prefetch = crate::documents::prefetches(o)
        .into_iter()
        .map(|p| {
            parse_stage(
                p.as_object().ok_or_else(|| ApiError::bad("a prefetch must be an object"))?,
                depth + 1,
                r,
            )
        })
        .collect::<Result<Vec<_>, _>>()?;
    let mut using = field_using(o)?;
    let query = match o.get("query").or_else(|| o.get("vector")) {
        None | Some(Value::Null) => None,
        Some(Value::Object(q)) if q.contains_key("name") && q.contains_key("vector") => {
            using = Some(
                q["name"]
                    .as_str()
                    .ok_or_else(|| ApiError::bad("vector.name must be a vector name"))?
                    .to_string(),
            );
            Some(StageQuery::Nearest(parse_query_vector(&q["vector"], "vector.vector")?))
        }
        Some(Value::Object(q)) if q.contains_key("nearest") && is_id(&q["nearest"]) => Some(StageQuery::Nearest(r.stored(
            &q["nearest"],
            using.as_deref(),
            &lookup,
            &mut used,
        )?)),
        Some(Value::Object(q)) if q.contains_key("nearest") => {
            reject_present(q, &["mmr"])?;
            Some(StageQuery::Nearest(parse_query_vector(&q["nearest"], "query.nearest")?))
        }
        Some(Value::Object(q)) if q.contains_key("recommend") => {
            let rec = q["recommend"]
                .as_object()
                .ok_or_else(|| ApiError::bad("recommend must be an object"))?;
            only_fields(rec, &["positive", "negative", "strategy"], "recommend")?;
            let mut list = |k: &str| -> Result<Vec<quiver::QueryVector>, ApiError> {
                match rec.get(k) {
                    None | Some(Value::Null) => Ok(Vec::new()),
                    Some(Value::Array(items)) => items
                        .iter()
                        .map(|v| r.example_any(v, using.as_deref(), &lookup, &mut used))
                        .collect(),
                    Some(other) => Err(ApiError::bad(format!("recommend.{k} must be a list, got {other}"))),
                }
            };
            let (positive, negative) = (list("positive")?, list("negative")?);
            if positive.is_empty() && negative.is_empty() {
                return Err(ApiError::validation(
                    "recommend",
                    "at least one positive or negative example is required",
                ));
            }
            let strategy = match rec.get("strategy").and_then(Value::as_str) {
                None | Some("average_vector") => quiver::RecommendStrategy::AverageVector,
                Some("best_score") => quiver::RecommendStrategy::BestScore,
                Some("sum_scores") => quiver::RecommendStrategy::SumScores,
                Some(other) => {
                    return Err(ApiError::bad(format!(
                        "recommend.strategy {other:?}: expected average_vector, best_score or sum_scores"
                    )))
                }
            };
            Some(StageQuery::Recommend(quiver::Recommend {
                positive,
                negative,
                strategy,
                using: using.clone(),
            }))
        }
        Some(Value::Object(q)) if q.contains_key("discover") || q.contains_key("context") => {
            let (target, pairs) = match (q.get("discover"), q.get("context")) {
                (Some(d), _) => {
                    let d = d
                        .as_object()
                        .ok_or_else(|| ApiError::bad("discover must be an object {target, context}"))?;
                    only_fields(d, &["target", "context"], "discover")?;
                    let t = d.get("target").ok_or_else(|| ApiError::bad("discover.target is required"))?;
                    (
                        Some(r.example(t, using.as_deref(), &lookup, &mut used)?),
                        d.get("context").cloned().unwrap_or(Value::Null),
                    )
                }
                (None, Some(c)) => (None, c.clone()),
                (None, None) => unreachable!("checked"),
            };
            let pairs = match pairs {
                Value::Null => Vec::new(),
                Value::Array(list) => list,
                single @ Value::Object(_) => vec![single],
                other => {
                    return Err(ApiError::bad(format!(
                        "context must be a list of {{positive, negative}} pairs, got {other}"
                    )))
                }
            };
            let mut context = Vec::with_capacity(pairs.len());
            for p in &pairs {
                let p = p
                    .as_object()
                    .ok_or_else(|| ApiError::bad("a context pair must be {positive, negative}"))?;
                only_fields(p, &["positive", "negative"], "context pair")?;
                let get = |k: &str| p.get(k).ok_or_else(|| ApiError::bad(format!("a context pair needs {k}")));
                let pos = r.example(get("positive")?, using.as_deref(), &lookup, &mut used)?;
                let neg = r.example(get("negative")?, using.as_deref(), &lookup, &mut used)?;
                context.push((pos, neg));
            }
            Some(StageQuery::Discover(quiver::Discover {
                target,
                context,
                using: using.clone(),
            }))
        }
        Some(Value::Object(q)) if q.contains_key("relevance_feedback") => {
            let f = q["relevance_feedback"]
                .as_object()
                .ok_or_else(|| ApiError::bad("relevance_feedback must be an object {target, feedback, strategy}"))?;
            only_fields(f, &["target", "feedback", "strategy"], "relevance_feedback")?;
            let naive = f
                .get("strategy")
                .and_then(|s| s.get("naive"))
                .and_then(Value::as_object)
                .ok_or_else(|| ApiError::bad("relevance_feedback.strategy must be {\"naive\": {a, b, c}}"))?;
            let coef = |k: &str| -> Result<f32, ApiError> {
                naive
                    .get(k)
                    .and_then(Value::as_f64)
                    .map(|x| x as f32)
                    .ok_or_else(|| ApiError::bad(format!("relevance_feedback.strategy.naive.{k} must be a number")))
            };
            let (a, b, c) = (coef("a")?, coef("b")?, coef("c")?);
            if b < 0.0 {
                return Err(ApiError::validation(
                    "internal.query.relevance_feedback.strategy.naive.b",
                    &format!("value {b:?} invalid, must be 0.0 or larger"),
                ));
            }
            // Feedback examples are judged results: they stay in the answer.
            let mut judged = Vec::new();
            let target = r.example(
                f.get("target")
                    .ok_or_else(|| ApiError::bad("relevance_feedback.target is required"))?,
                using.as_deref(),
                &lookup,
                &mut judged,
            )?;
            let items = f
                .get("feedback")
                .and_then(Value::as_array)
                .ok_or_else(|| ApiError::bad("relevance_feedback.feedback must be a list of {example, score}"))?;
            let mut feedback = Vec::with_capacity(items.len());
            for item in items {
                let ex = item
                    .get("example")
                    .ok_or_else(|| ApiError::bad("a feedback element needs an example"))?;
                let score = item
                    .get("score")
                    .and_then(Value::as_f64)
                    .ok_or_else(|| ApiError::bad("a feedback element needs a score"))? as f32;
                feedback.push((r.example(ex, using.as_deref(), &lookup, &mut judged)?, score));
            }
            Some(StageQuery::Feedback(quiver::collection::Feedback {
                target,
                feedback,
                a,
                b,
                c,
                using: using.clone(),
            }))
        }
        Some(Value::Object(q)) if q.contains_key("formula") => {
            only_fields(q, &["formula", "defaults"], "query")?;
            Some(StageQuery::Formula(quiver::formula::Formula::from_json(
                &q["formula"],
                q.get("defaults"),
            )?))
        }
        Some(Value::Object(q)) if q.contains_key("order_by") => {
            let o = parse_order_by(&q["order_by"])?.ok_or_else(|| ApiError::bad("order_by needs a payload key"))?;
            Some(StageQuery::OrderBy {
                key: o.key,
                descending: o.descending,
                start_from: o.start_from,
            })
        }
        Some(Value::Object(q)) if q.contains_key("sample") => match q["sample"].as_str() {
            Some("random") => Some(StageQuery::Sample),
            _ => return Err(ApiError::bad(format!("sample must be \"random\", got {}", q["sample"]))),
        },
        Some(Value::Object(q)) if q.contains_key("fusion") => match q["fusion"].as_str() {
            Some("rrf") => Some(StageQuery::Fusion(FusionKind::Rrf { k: 2.0, weights: None })),
            Some("dbsf") => Some(StageQuery::Fusion(FusionKind::Dbsf)),
            _ => return Err(ApiError::bad(format!("fusion must be \"rrf\" or \"dbsf\", got {}", q["fusion"]))),
        },
        Some(Value::Object(q)) if q.contains_key("rrf") => {
            let r = q["rrf"]
                .as_object()
                .ok_or_else(|| ApiError::bad("rrf must be an object {k, weights}"))?;
            only_fields(r, &["k", "weights"], "rrf")?;
            let k = match r.get("k") {
                None | Some(Value::Null) => 2.0,
                Some(k) => k
                    .as_f64()
                    .filter(|k| *k >= 0.0)
                    .ok_or_else(|| ApiError::bad("rrf.k must be a non-negative number"))? as f32,
            };
            let weights = match r.get("weights") {
                None | Some(Value::Null) => None,
                Some(w) => Some(
                    w.as_array()
                        .and_then(|a| a.iter().map(|x| x.as_f64().filter(|x| *x >= 0.0).map(|x| x as f32)).collect())
                        .ok_or_else(|| ApiError::bad("rrf.weights must be non-negative numbers, one per prefetch"))?,
                ),
            };
            Some(StageQuery::Fusion(FusionKind::Rrf { k, weights }))
        }
        Some(v @ Value::Object(q)) if q.contains_key("indices") => Some(StageQuery::Nearest(parse_query_vector(v, "query")?)),
        Some(Value::Object(q)) => {
            let kind = q.keys().next().cloned().unwrap_or_default();
            return Err(ApiError::unsupported(&format!(
                "query type {kind:?} in a prefetch or beside named vectors"
            )));
        }
        Some(v @ Value::Array(_)) => Some(StageQuery::Nearest(parse_query_vector(v, "query")?)),
        Some(v) if is_id(v) => Some(StageQuery::Nearest(r.stored(v, using.as_deref(), &lookup, &mut used)?)),
        Some(other) => {
            return Err(ApiError::bad(format!(
                "query must be a vector, a point id or a query object, got {other}"
            )))
        }
    };
    if matches!(query, Some(StageQuery::Fusion(_))) && using.is_some() {
        return Err(ApiError::bad(
            "Bad request: Fusion queries cannot be combined with the 'using' field.",
        ));
    }
    let (exact, ef) = check_params(o)?;
    let score_threshold = match o.get("score_threshold") {
        None | Some(Value::Null) => None,
        Some(v) => Some(v.as_f64().ok_or_else(|| ApiError::bad("score_threshold must be a number"))? as f32),
    };
    // Qdrant's rules for what a stage without a query, or ordered by a payload key, may hold.
    match (&query, prefetch.is_empty(), score_threshold.is_some()) {
        (None, false, _) => {
            return Err(ApiError::bad(
                "Bad request: A query is needed to merge the prefetches. Can't have prefetches without defining a query.",
            ))
        }
        (None, true, true) => {
            return Err(ApiError::bad(
                "Bad request: A query is needed to use the score_threshold. Can't have score_threshold without defining a query.",
            ))
        }
        (Some(StageQuery::OrderBy { .. }), _, true) => {
            return Err(ApiError::bad("Bad request: Can't use score_threshold with an order_by query."))
        }
        _ => {}
    }
    if o.get("limit").and_then(Value::as_u64) == Some(0) {
        return Err(ApiError::validation("internal.limit", "value 0 invalid, must be 1 or larger"));
    }
    // Examples taken from this collection are not part of the answer (as in Qdrant).
    let filter = field_filter(o)?;
    let filter = if lookup.is_none() {
        quiver::Filter::excluding(filter, &used)
    } else {
        filter
    };
    Ok(quiver::QueryStage {
        prefetch,
        query,
        using,
        filter,
        limit: field_limit(o, 10)?,
        score_threshold,
        exact,
        ef,
    })
}

/// Another collection a request reads from (`lookup_from`, `with_lookup`), with Qdrant's
/// wording when it does not exist.
fn other_collection(db: &quiver::Database, name: &str) -> Result<Collection, ApiError> {
    db.collection(name).map_err(|e| match e {
        Error::CollectionNotFound(_) => ApiError::new(StatusCode::NOT_FOUND, format!("Not found: Collection {name} not found")),
        other => other.into(),
    })
}

fn is_id(v: &Value) -> bool {
    v.is_number() || v.as_str().is_some_and(|s| s.parse::<uuid::Uuid>().is_ok())
}

/// `lookup_from`: another collection (and vector) example ids are taken from.
pub(super) struct Lookup {
    collection: Collection,
    vector: Option<String>,
}

fn parse_lookup(o: &Map<String, Value>, r: &Resolver<'_>) -> Result<Option<Lookup>, ApiError> {
    match o.get("lookup_from") {
        None | Some(Value::Null) => Ok(None),
        Some(Value::Object(l)) => {
            only_fields(l, &["collection", "vector"], "lookup_from")?;
            let name = l
                .get("collection")
                .and_then(Value::as_str)
                .ok_or_else(|| ApiError::bad("lookup_from.collection must be a collection name"))?;
            let found = other_collection(r.db, name)?;
            Ok(Some(Lookup {
                collection: found,
                vector: l.get("vector").and_then(Value::as_str).map(str::to_string),
            }))
        }
        Some(other) => Err(ApiError::bad(format!("lookup_from must be an object, got {other}"))),
    }
}

/// Turns examples (point ids or vectors) into vectors: an id is looked up in the collection
/// (or `lookup_from`), in the vector space being searched (or `lookup_from.vector`).
pub(super) struct Resolver<'a> {
    pub(super) db: &'a quiver::Database,
    pub(super) c: &'a Collection,
}

impl Resolver<'_> {
    fn example(&self, v: &Value, using: Option<&str>, lookup: &Option<Lookup>, used: &mut Vec<PointId>) -> Result<Vec<f32>, ApiError> {
        if !is_id(v) {
            return parse_vector(v, "example");
        }
        match self.stored(v, using, lookup, used)? {
            quiver::QueryVector::Dense(d) => Ok(d),
            _ => Err(ApiError::bad(format!(
                "Wrong input: examples must be dense vectors, {:?} is not",
                using.unwrap_or("")
            ))),
        }
    }

    /// An example of any kind: a vector (dense, multi or sparse) or the vector of the point
    /// `v` names.
    fn example_any(
        &self,
        v: &Value,
        using: Option<&str>,
        lookup: &Option<Lookup>,
        used: &mut Vec<PointId>,
    ) -> Result<quiver::QueryVector, ApiError> {
        if is_id(v) {
            self.stored(v, using, lookup, used)
        } else {
            parse_query_vector(v, "example")
        }
    }

    /// The vector of the point `v` names (an id), of whatever kind, as a query.
    fn stored(
        &self,
        v: &Value,
        using: Option<&str>,
        lookup: &Option<Lookup>,
        used: &mut Vec<PointId>,
    ) -> Result<quiver::QueryVector, ApiError> {
        let id = PointId::from_json(v)?;
        let (source, name) = match lookup {
            Some(l) => (&l.collection, l.vector.as_deref().or(using)),
            None => {
                used.push(id);
                (self.c, using)
            }
        };
        let r = source
            .get(
                &[id],
                quiver::With {
                    payload: false,
                    vector: true,
                },
            )?
            .into_iter()
            .next()
            .ok_or_else(|| ApiError::new(StatusCode::NOT_FOUND, format!("Not found: No point with id {id} found")))?;
        if let Some(n) = name.filter(|n| !source.config().vectors.names(source.dim()).contains(n)) {
            return Err(Error::VectorNameNotFound(n.to_string()).into());
        }
        // The main vector is the row's own (when the collection has one); any other space,
        // the unnamed multivector included, is in the named map.
        let main = source.config().vectors.main.as_str();
        let named = match name {
            Some(n) if n != main || source.dim() == 0 => Some(n),
            None if source.dim() == 0 => Some(main),
            _ => None,
        };
        let found = match named {
            None => r.vector.filter(|v| !v.is_empty()).map(quiver::QueryVector::Dense),
            Some(n) => match r.vectors.get(n) {
                Some(quiver::VectorData::Dense(v)) => Some(quiver::QueryVector::Dense(v.clone())),
                Some(quiver::VectorData::Multi(m)) => Some(quiver::QueryVector::Multi(m.clone())),
                Some(quiver::VectorData::Sparse(sv)) => Some(quiver::QueryVector::Sparse(sv.clone())),
                None => None,
            },
        };
        found.ok_or_else(|| ApiError::bad(format!("Wrong input: point {id} has no vector {:?}", name.unwrap_or(""))))
    }
}

/// Runs a body through the query stages: `(stage, offset, payload selection, with_vector)`.
pub(super) fn parse_staged(body: &Map<String, Value>, query_api: bool, r: &Resolver<'_>) -> Result<StagedQuery, ApiError> {
    Ok(StagedQuery {
        stage: parse_stage(body, 0, r)?,
        offset: field_usize(body, "offset", 0)?,
        sel: parse_with_payload(body, !query_api)?,
        with_vector: parse_with_vector(body)?,
    })
}

/// A parsed query for the stages.
pub(super) struct StagedQuery {
    stage: quiver::QueryStage,
    offset: usize,
    sel: PayloadSelect,
    with_vector: bool,
}

impl StagedQuery {
    /// Its hits as JSON (blocking: call inside `blocking`).
    pub(super) fn run(&self, c: &Collection) -> Result<Vec<Value>, ApiError> {
        let with = quiver::With {
            payload: !matches!(self.sel, PayloadSelect::None),
            vector: self.with_vector,
        };
        Ok(c.query(&self.stage, self.offset, with)?
            .into_iter()
            .map(|h| scored_json(h, &self.sel))
            .collect())
    }
}

/// `POST /points/query/groups` (and the older `/points/search/groups`): the query's hits
/// grouped by `group_by` (`group_size` per group, 3 by default; `limit` groups), each group
/// `{"id", "hits"}` and, with `with_lookup`, the point of that id from another collection.
pub(super) async fn groups(state: AppState, name: String, body: Map<String, Value>, query_api: bool) -> ApiResult {
    blocking(move || groups_sync(&state.db, &name, body, query_api)).await
}

/// A Query API body (`POST /collections/{name}/points/query`) run without a server: the same
/// parsing and answer (`{"points": [..]}`), for the command line's `quiver query`.
pub fn query_json(db: &quiver::Database, name: &str, body: &Map<String, Value>) -> ApiResult {
    let mut answer = query_json_explained(db, name, body)?;
    if let Some(o) = answer.as_object_mut() {
        o.remove("stages");
    }
    Ok(answer)
}

/// [`query_json`] with what each stage did (`{"points": [..], "stages": [..]}`, the top stage
/// first, each stage's prefetches after it): `quiver query --explain`.
pub fn query_json_explained(db: &quiver::Database, name: &str, body: &Map<String, Value>) -> ApiResult {
    let c = db.collection(name)?;
    let q = parse_staged(body, true, &Resolver { db, c: &c })?;
    let with = quiver::With {
        payload: !matches!(q.sel, PayloadSelect::None),
        vector: q.with_vector,
    };
    let (hits, trace) = c.query_explained(&q.stage, q.offset, with)?;
    let stages: Vec<Value> = trace
        .into_iter()
        .map(|t| {
            json!({"depth": t.depth, "query": t.query, "using": t.using, "limit": t.limit, "filtered": t.filtered,
                   "candidates": t.candidates, "hits": t.hits,
                   "best": t.best.map(|(id, s)| json!({"id": id.to_json(), "score": f32_json(s)})), "micros": t.micros})
        })
        .collect();
    Ok(json!({"points": hits.into_iter().map(|h| scored_json(h, &q.sel)).collect::<Vec<_>>(), "stages": stages}))
}

/// A grouped Query API body (`POST /collections/{name}/points/query/groups`) run without a
/// server (`{"groups": [..]}`).
pub fn query_groups_json(db: &quiver::Database, name: &str, body: &Map<String, Value>) -> ApiResult {
    groups_sync(db, name, body.clone(), true)
}

fn groups_sync(db: &quiver::Database, name: &str, body: Map<String, Value>, query_api: bool) -> ApiResult {
    {
        let c = db.collection(name)?;
        let mut body = body;
        let group_by = match body.remove("group_by") {
            Some(Value::String(k)) => k,
            _ => return Err(ApiError::bad("group_by must be a payload key")),
        };
        let group_size = field_usize(&body, "group_size", 3)?;
        body.remove("group_size");
        let lookup = match body.remove("with_lookup") {
            None | Some(Value::Null) => None,
            Some(Value::String(other)) => Some((other_collection(db, &other)?, PayloadSelect::All, false)),
            Some(Value::Object(l)) => {
                only_fields(&l, &["collection", "with_payload", "with_vectors", "with_vector"], "with_lookup")?;
                let other = l
                    .get("collection")
                    .and_then(Value::as_str)
                    .ok_or_else(|| ApiError::bad("with_lookup.collection must be a collection name"))?;
                Some((other_collection(db, other)?, parse_with_payload(&l, true)?, parse_with_vector(&l)?))
            }
            Some(other) => {
                return Err(ApiError::bad(format!(
                    "with_lookup must be a collection name or an object, got {other}"
                )))
            }
        };
        let q = parse_staged(&body, query_api, &Resolver { db, c: &c })?;
        let with = quiver::With {
            payload: !matches!(q.sel, PayloadSelect::None),
            vector: q.with_vector,
        };
        let found = c.query_groups(&q.stage, &group_by, group_size, with)?;
        let mut out = Vec::with_capacity(found.len());
        for (id, hits) in found {
            let mut g = json!({"id": id, "hits": hits.into_iter().map(|h| scored_json(h, &q.sel)).collect::<Vec<_>>()});
            if let Some((other, sel, vectors)) = &lookup {
                let point = PointId::from_json(&id).ok().and_then(|pid| {
                    other
                        .get(
                            &[pid],
                            quiver::With {
                                payload: !matches!(sel, PayloadSelect::None),
                                vector: *vectors,
                            },
                        )
                        .ok()?
                        .pop()
                });
                g["lookup"] = point.map_or(Value::Null, |r| record_json(r, sel));
            }
            out.push(g);
        }
        Ok(json!({ "groups": out }))
    }
}

pub(super) async fn query_groups(State(state): State<AppState>, Path(name): Path<String>, body: Bytes) -> Response {
    let start = Instant::now();
    match body_with_vectors(&state, &name, &body).await {
        Ok(b) => respond(start, groups(state, name, b, true).await),
        Err(e) => e.into_response(),
    }
}

pub(super) async fn search_groups(State(state): State<AppState>, Path(name): Path<String>, body: Bytes) -> Response {
    let start = Instant::now();
    match parse_body(&body) {
        Ok(b) => respond(start, groups(state, name, b, false).await),
        Err(e) => e.into_response(),
    }
}
