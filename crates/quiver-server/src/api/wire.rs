//! The wire format: Qdrant's JSON parsed into library types (bodies, vectors, ids, selectors,
//! filters, search requests, `with_payload` / `with_vector`) and library answers serialised back.

use super::*;

pub(super) fn parse_body(body: &Bytes) -> Result<Map<String, Value>, ApiError> {
    if body.is_empty() {
        return Ok(Map::new());
    }
    match serde_json::from_slice::<Value>(body) {
        Ok(Value::Object(m)) => Ok(m),
        Ok(_) => Err(ApiError::bad("Format error in JSON body: expected an object")),
        Err(e) => Err(ApiError::bad(format!("Format error in JSON body: {e}"))),
    }
}

pub(super) fn field_usize(body: &Map<String, Value>, key: &str, default: usize) -> Result<usize, ApiError> {
    match body.get(key) {
        None | Some(Value::Null) => Ok(default),
        Some(v) => v
            .as_u64()
            .map(|n| n as usize)
            .ok_or_else(|| ApiError::bad(format!("{key} must be a non-negative integer, got {v}"))),
    }
}

/// A `limit`: like Qdrant, one past the largest page is clamped to it, not refused.
pub(super) fn field_limit(body: &Map<String, Value>, default: usize) -> Result<usize, ApiError> {
    Ok(field_usize(body, "limit", default)?.min(quiver::SEARCH_LIMIT_MAX))
}

pub(super) fn field_filter(body: &Map<String, Value>) -> Result<Option<Filter>, ApiError> {
    match body.get("filter") {
        None | Some(Value::Null) => Ok(None),
        Some(v) => Ok(Some(Filter::from_json(v)?)),
    }
}

pub(super) fn reject_present(body: &Map<String, Value>, keys: &[&str]) -> Result<(), ApiError> {
    for k in keys {
        if body.get(*k).is_some_and(|v| !v.is_null()) {
            return Err(ApiError::unsupported(&format!("the {k:?} field")));
        }
    }
    Ok(())
}

/// `using`: the vector space a query searches (`None`: absent or `null`, the main vector; the
/// name `""` is Qdrant's unnamed vector, which LangChain, LlamaIndex and Haystack name).
pub(super) fn field_using(o: &Map<String, Value>) -> Result<Option<String>, ApiError> {
    match o.get("using") {
        None | Some(Value::Null) => Ok(None),
        Some(Value::String(s)) => Ok(Some(s.clone())),
        Some(other) => Err(ApiError::bad(format!("using must be a vector name, got {other}"))),
    }
}

/// Paths that search the main vector only: `using` absent, `null` or `""` (a query naming another
/// space goes through the query stages, see `search::needs_stages`).
pub(super) fn main_using(o: &Map<String, Value>) -> Result<(), ApiError> {
    match field_using(o)? {
        None => Ok(()),
        Some(s) if s.is_empty() => Ok(()),
        Some(s) => Err(ApiError::bad(format!("Wrong input: Not existing vector name error: {s}"))),
    }
}

/// A point's `vector` field: a list (the main vector), a list of lists (an unnamed
/// multivector) or a map of named vectors of any kind.
pub(super) fn parse_point_vectors(v: &Value, what: &str) -> Result<(Vec<f32>, quiver::NamedVectors), ApiError> {
    match v {
        Value::Object(o) if o.contains_key("text") && o.contains_key("model") => Err(ApiError::unsupported(&format!(
            "{what}: documents here (they are taken in points, batch vectors and queries)"
        ))),
        Value::Object(o) => Ok((Vec::new(), quiver::named_vectors_from_json(o).map_err(|e| vector_error(what, e))?)),
        Value::Array(rows) if rows.first().is_some_and(Value::is_array) => {
            let named = quiver::vector_data_from_json("", v).map_err(|e| vector_error(what, e))?;
            Ok((Vec::new(), [(String::new(), named)].into()))
        }
        other => Ok((parse_vector(other, what)?, quiver::NamedVectors::new())),
    }
}

/// A vector that does not parse: Qdrant's 422 for a validation error, else a 400 naming where.
fn vector_error(what: &str, e: Error) -> ApiError {
    match e {
        Error::Validation { .. } => ApiError::from(e),
        other => ApiError::bad(format!("{what}: {other}")),
    }
}

/// A query vector of any kind: a list (dense), a list of lists (multi) or
/// `{"indices", "values"}` (sparse).
pub(super) fn parse_query_vector(v: &Value, what: &str) -> Result<quiver::QueryVector, ApiError> {
    let parsed = quiver::vector_data_from_json(what, v).map_err(|e| vector_error(what, e))?;
    match parsed {
        quiver::VectorData::Dense(d) => Ok(quiver::QueryVector::Dense(d)),
        quiver::VectorData::Multi(m) => Ok(quiver::QueryVector::Multi(m)),
        quiver::VectorData::Sparse(s) => Ok(quiver::QueryVector::Sparse(s)),
    }
}

/// A dense vector where only a dense vector can go (`{"": [..]}` is the unnamed one).
pub(super) fn parse_vector(v: &Value, what: &str) -> Result<Vec<f32>, ApiError> {
    match v {
        Value::Object(o) if o.len() == 1 && o.contains_key("") => parse_vector(&o[""], what),
        Value::Object(o) if o.contains_key("text") => Err(ApiError::unsupported(&format!(
            "{what}: documents here (they are taken in points, batch vectors and queries)"
        ))),
        Value::Object(o) if o.contains_key("indices") => Err(ApiError::bad(format!("{what}: a sparse vector cannot go here"))),
        Value::Object(_) => Err(ApiError::bad(format!("{what}: named vectors cannot go here"))),
        other => quiver::vector_from_json(other).map_err(|e| vector_error(what, e)),
    }
}

pub(super) fn parse_ids(v: &Value) -> Result<Vec<PointId>, ApiError> {
    let list = v.as_array().ok_or_else(|| ApiError::bad("ids must be a list"))?;
    list.iter().map(|x| PointId::from_json(x).map_err(ApiError::from)).collect()
}

/// `{"points": [ids]}` or `{"filter": {...}}` (Qdrant's PointsSelector).
pub(super) fn parse_selector(body: &Map<String, Value>) -> Result<PointSelector, ApiError> {
    match (
        body.get("points").filter(|v| !v.is_null()),
        body.get("filter").filter(|v| !v.is_null()),
    ) {
        (Some(ids), None) => Ok(PointSelector::Ids(parse_ids(ids)?)),
        (None, Some(f)) => Ok(PointSelector::Filter(Filter::from_json(f)?)),
        (Some(_), Some(_)) => Err(ApiError::bad("give either points or filter, not both")),
        (None, None) => Err(ApiError::bad("a points list or a filter is required")),
    }
}

/// What `with_payload` asks for: everything, nothing, or some keys.
#[derive(Clone)]
pub(super) enum PayloadSelect {
    All,
    None,
    Include(Vec<String>),
    Exclude(Vec<String>),
}

pub(super) fn parse_with_payload(body: &Map<String, Value>, default: bool) -> Result<PayloadSelect, ApiError> {
    let strings = |v: &Value| -> Result<Vec<String>, ApiError> {
        v.as_array()
            .ok_or_else(|| ApiError::bad("with_payload keys must be a list"))?
            .iter()
            .map(|s| {
                s.as_str()
                    .map(str::to_string)
                    .ok_or_else(|| ApiError::bad("with_payload keys must be strings"))
            })
            .collect()
    };
    Ok(match body.get("with_payload") {
        None | Some(Value::Null) => {
            if default {
                PayloadSelect::All
            } else {
                PayloadSelect::None
            }
        }
        Some(Value::Bool(true)) => PayloadSelect::All,
        Some(Value::Bool(false)) => PayloadSelect::None,
        Some(v @ Value::Array(_)) => PayloadSelect::Include(strings(v)?),
        Some(Value::Object(o)) if o.contains_key("include") => PayloadSelect::Include(strings(&o["include"])?),
        Some(Value::Object(o)) if o.contains_key("exclude") => PayloadSelect::Exclude(strings(&o["exclude"])?),
        Some(other) => {
            return Err(ApiError::bad(format!(
                "with_payload must be a bool, a list of keys, or include/exclude, got {other}"
            )))
        }
    })
}

/// `with_vector`: a boolean, or a list of names (every vector of the point is returned).
pub(super) fn parse_with_vector(body: &Map<String, Value>) -> Result<bool, ApiError> {
    match body.get("with_vector").or_else(|| body.get("with_vectors")) {
        None | Some(Value::Null) => Ok(false),
        Some(Value::Bool(b)) => Ok(*b),
        Some(Value::Array(names)) => {
            if let Some(n) = names.iter().find(|n| !n.is_string()) {
                return Err(ApiError::bad(format!("with_vector: a vector name must be a string, got {n}")));
            }
            Ok(!names.is_empty())
        }
        Some(other) => Err(ApiError::bad(format!("with_vector must be a boolean, got {other}"))),
    }
}

/// `with_vector` given as a list of names: those names (`None` for a boolean).
pub(super) fn vector_names(body: &Map<String, Value>) -> Option<Vec<String>> {
    match body.get("with_vector").or_else(|| body.get("with_vectors")) {
        Some(Value::Array(names)) => Some(names.iter().filter_map(Value::as_str).map(str::to_string).collect()),
        _ => None,
    }
}

/// Keeps only the named vectors in every record of `out` (records are found by their
/// `vector` maps, in arrays and under `points`), after checking each name exists.
pub(super) fn select_vectors(c: &Collection, names: Option<&[String]>, out: &mut Value) -> Result<(), ApiError> {
    let Some(names) = names else { return Ok(()) };
    let known = c.config().vectors.names(c.dim());
    if let Some(bad) = names.iter().find(|n| !known.iter().any(|k| k == *n)) {
        return Err(Error::VectorNameNotFound(bad.clone()).into());
    }
    fn walk(v: &mut Value, names: &[String]) {
        match v {
            Value::Array(items) => items.iter_mut().for_each(|i| walk(i, names)),
            Value::Object(o) => {
                if let Some(Value::Object(vectors)) = o.get_mut("vector") {
                    vectors.retain(|k, _| names.contains(k));
                }
                if let Some(p) = o.get_mut("points") {
                    walk(p, names);
                }
            }
            _ => {}
        }
    }
    walk(out, names);
    Ok(())
}

pub(super) fn select_payload(p: Option<Payload>, sel: &PayloadSelect) -> Option<Value> {
    let p = p?;
    match sel {
        PayloadSelect::All => Some(Value::Object(p)),
        PayloadSelect::None => None,
        PayloadSelect::Include(keys) => Some(Value::Object(quiver::payload_include(&p, keys))),
        PayloadSelect::Exclude(keys) => Some(Value::Object(quiver::payload_exclude(&p, keys))),
    }
}

pub(super) fn record_json(r: Record, sel: &PayloadSelect) -> Value {
    json!({"id": r.id.to_json(), "payload": select_payload(r.payload, sel), "vector": vectors_json(r.vector, r.vectors)})
}

pub(super) fn scored_json(h: ScoredPoint, sel: &PayloadSelect) -> Value {
    json!({"id": h.id.to_json(), "version": 0, "score": f32_json(h.score), "payload": select_payload(h.payload, sel),
           "vector": vectors_json(h.vector, h.vectors)})
}

/// A point's vectors as Qdrant prints them: the bare unnamed vector when it is the only one,
/// else a map by name (`""` for the unnamed one).
pub(super) fn vectors_json(main: Option<Vec<f32>>, named: quiver::NamedVectors) -> Value {
    // Asked for, but the point has no main vector: `None` here.
    let (asked, main) = match main {
        Some(v) if v.is_empty() => (true, None),
        Some(v) => (true, Some(v)),
        None => (false, None),
    };
    if named.is_empty() {
        return match main {
            Some(v) => vector_json(&v),
            None if asked => json!({}),
            None => Value::Null,
        };
    }
    let one = |v: &quiver::VectorData| match v {
        quiver::VectorData::Dense(d) => vector_json(d),
        quiver::VectorData::Multi(rows) => Value::Array(rows.iter().map(|r| vector_json(r)).collect()),
        quiver::VectorData::Sparse(s) => json!({"indices": s.indices, "values": vector_json(&s.values)}),
    };
    if named.len() == 1 && main.is_none() {
        if let Some(v) = named.get("") {
            return one(v);
        }
    }
    let mut m: Map<String, Value> = named.iter().map(|(k, v)| (k.clone(), one(v))).collect();
    // A named main vector is in `named` already, under its name (the library's Record keeps
    // it in both places); only an unnamed one is printed as "".
    if let Some(v) = main.filter(|v| !named.values().any(|n| matches!(n, quiver::VectorData::Dense(d) if d == v))) {
        m.entry(String::new()).or_insert_with(|| vector_json(&v));
    }
    Value::Object(m)
}

/// An f32 as JSON the way Qdrant prints it: its shortest decimal that reads back as the same
/// f32 (`0.15`, not the f64 widening `0.15000000596046448`). Non-finite values (never stored)
/// become `null`.
pub(super) fn f32_json(x: f32) -> Value {
    if !x.is_finite() {
        return Value::Null;
    }
    let mut buf = ryu::Buffer::new();
    buf.format_finite(x).parse::<f64>().map_or(Value::Null, Value::from)
}

/// A vector as JSON, each element as [`f32_json`] prints it.
pub(super) fn vector_json(v: &[f32]) -> Value {
    Value::Array(v.iter().map(|&x| f32_json(x)).collect())
}

pub(super) fn update_json(ack: WriteAck) -> Value {
    json!({"operation_id": ack.seq, "status": "completed"})
}

pub(super) fn metric_name(m: Metric) -> &'static str {
    match m {
        Metric::Cosine => "Cosine",
        Metric::Dot => "Dot",
        Metric::Euclid => "Euclid",
        Metric::Manhattan => "Manhattan",
    }
}

/// Refuses a field a body must not have, in Qdrant's words: a typo must not pass silently.
pub(super) fn only_fields(o: &Map<String, Value>, allowed: &[&str], what: &str) -> Result<(), ApiError> {
    match o.keys().find(|k| !allowed.contains(&k.as_str())) {
        Some(k) => Err(ApiError::bad(format!(
            "Format error in JSON body: {what}: unknown field `{k}`, expected one of {}",
            allowed.iter().map(|a| format!("`{a}`")).collect::<Vec<_>>().join(", ")
        ))),
        None => Ok(()),
    }
}

/// An upsert body: its points and its `update_mode`.
/// An upsert body: its points, `update_mode`, and `update_filter` (the condition an existing
/// point must meet to be replaced).
pub(super) type Upsert = (Vec<Point>, quiver::UpdateMode, Option<Filter>);

pub(super) fn parse_upsert(body: &Map<String, Value>) -> Result<Upsert, ApiError> {
    only_fields(body, &["points", "batch", "shard_key", "update_filter", "update_mode"], "upsert")?;
    let mode = match body.get("update_mode") {
        None | Some(Value::Null) => quiver::UpdateMode::Upsert,
        Some(Value::String(s)) if s == "upsert" => quiver::UpdateMode::Upsert,
        Some(Value::String(s)) if s == "insert_only" => quiver::UpdateMode::InsertOnly,
        Some(Value::String(s)) if s == "update_only" => quiver::UpdateMode::UpdateOnly,
        Some(other) => {
            return Err(ApiError::bad(format!(
                "update_mode must be \"upsert\", \"insert_only\" or \"update_only\", got {other}"
            )))
        }
    };
    Ok((parse_points(body)?, mode, update_filter(body)?))
}

/// `update_filter` of a write, parsed.
pub(super) fn update_filter(body: &Map<String, Value>) -> Result<Option<Filter>, ApiError> {
    match body.get("update_filter") {
        None | Some(Value::Null) => Ok(None),
        Some(f) => Ok(Some(Filter::from_json(f)?)),
    }
}

/// A point object of a list, with its id and vectors parsed.
pub(super) type PointEntry<'a> = (&'a Map<String, Value>, PointId, Vec<f32>, quiver::NamedVectors);

/// `points[i]` of a points list: an object with only `fields`, its id and its vector (the
/// object is returned for the caller's other fields).
pub(super) fn parse_point_entry<'a>(p: &'a Value, i: usize, fields: &[&str]) -> Result<PointEntry<'a>, ApiError> {
    let o = p
        .as_object()
        .ok_or_else(|| ApiError::bad(format!("points[{i}] must be an object")))?;
    only_fields(o, fields, &format!("points[{i}]"))?;
    let id = PointId::from_json(o.get("id").ok_or_else(|| ApiError::bad(format!("points[{i}].id is required")))?)?;
    let v = o
        .get("vector")
        .ok_or_else(|| ApiError::bad(format!("points[{i}].vector is required")))?;
    if v.as_array().is_some_and(Vec::is_empty) {
        return Err(ApiError::validation(
            &format!("points[{i}].vector"),
            "dense vector must not be empty",
        ));
    }
    // A multivector with an empty row, named or not (Qdrant's wording and path).
    let empty_row = |x: &Value| {
        x.as_array()
            .is_some_and(|rows| rows.iter().any(|r| r.as_array().is_some_and(Vec::is_empty)))
    };
    if empty_row(v) || v.as_object().is_some_and(|o| o.values().any(empty_row)) {
        return Err(ApiError::validation(
            &format!("points[{i}].vector.?.data"),
            "all vectors must be non-empty",
        ));
    }
    // ... or with rows of different lengths: the first row's length is the expected one.
    let ragged = |x: &Value| -> Option<usize> {
        let rows = x.as_array().filter(|rows| rows.first().is_some_and(Value::is_array))?;
        let first = rows[0].as_array().map_or(0, Vec::len);
        rows.iter().map(|r| r.as_array().map_or(0, Vec::len)).find(|&n| n != first)
    };
    let odd = ragged(v).or_else(|| v.as_object().and_then(|o| o.values().find_map(ragged)));
    if let Some(n) = odd {
        return Err(ApiError::validation(
            &format!("points[{i}].vector.?.data"),
            &format!("all vectors must have the same dimension, found vector with dimension {n}"),
        ));
    }
    let (main, named) = parse_point_vectors(v, &format!("points[{i}].vector"))?;
    Ok((o, id, main, named))
}

pub(super) fn parse_points(body: &Map<String, Value>) -> Result<Vec<Point>, ApiError> {
    reject_present(body, &["shard_key"])?;
    let payload_of = |v: Option<&Value>| quiver::payload_from_json(v).map_err(ApiError::from);
    if let Some(points) = body.get("points") {
        let list = points.as_array().ok_or_else(|| ApiError::bad("points must be a list"))?;
        return list
            .iter()
            .enumerate()
            .map(|(i, p)| {
                let (o, id, vector, vectors) = parse_point_entry(p, i, &["id", "vector", "payload"])?;
                Ok(Point {
                    id,
                    vector,
                    vectors,
                    payload: payload_of(o.get("payload"))?,
                })
            })
            .collect();
    }
    if let Some(batch) = body.get("batch") {
        let b = batch.as_object().ok_or_else(|| ApiError::bad("batch must be an object"))?;
        let ids = parse_ids(b.get("ids").ok_or_else(|| ApiError::bad("batch.ids is required"))?)?;
        // Either one list of vectors, or a map from names to lists (one per id).
        let columns: Vec<(Option<&String>, &Vec<Value>)> = match b.get("vectors") {
            Some(Value::Object(o)) => o
                .iter()
                .map(|(name, list)| {
                    list.as_array()
                        .map(|l| (Some(name), l))
                        .ok_or_else(|| ApiError::bad(format!("batch.vectors.{name} must be a list of vectors")))
                })
                .collect::<Result<_, _>>()?,
            Some(Value::Array(list)) => vec![(None, list)],
            Some(_) => return Err(ApiError::bad("batch.vectors must be a list of vectors")),
            None => return Err(ApiError::bad("batch.vectors is required")),
        };
        for (_, list) in &columns {
            if list.len() != ids.len() {
                return Err(ApiError::bad(format!("batch has {} ids but {} vectors", ids.len(), list.len())));
            }
        }
        let payloads: Vec<Option<&Value>> = match b.get("payloads") {
            None | Some(Value::Null) => vec![None; ids.len()],
            Some(Value::Array(p)) if p.len() == ids.len() => p.iter().map(Some).collect(),
            Some(_) => return Err(ApiError::bad("batch.payloads must be a list as long as ids")),
        };
        return ids
            .into_iter()
            .zip(payloads)
            .enumerate()
            .map(|(i, (id, p))| {
                let mut point = Point::new(id, Vec::new());
                point.payload = payload_of(p)?;
                for (name, list) in &columns {
                    match name {
                        None => (point.vector, point.vectors) = parse_point_vectors(&list[i], &format!("batch.vectors[{i}]"))?,
                        // `null`: this point has no vector of that name.
                        Some(_) if list[i].is_null() => {}
                        Some(name) => {
                            let v = quiver::vector_data_from_json(name, &list[i])
                                .map_err(|e| vector_error(&format!("batch.vectors.{name}[{i}]"), e))?;
                            point.vectors.insert((*name).clone(), v);
                        }
                    }
                }
                Ok(point)
            })
            .collect();
    }
    Err(ApiError::bad("points or batch is required"))
}

/// `key` of a set-payload body: the nested object the payload goes into.
pub(super) fn payload_key(body: &Map<String, Value>) -> Result<Option<String>, ApiError> {
    match body.get("key") {
        None | Some(Value::Null) => Ok(None),
        Some(Value::String(k)) => Ok(Some(k.clone())),
        Some(other) => Err(ApiError::bad(format!("key must be a payload path, got {other}"))),
    }
}

pub(super) fn payload_field(body: &Map<String, Value>) -> Result<Payload, ApiError> {
    match body.get("payload") {
        Some(Value::Object(p)) => Ok(p.clone()),
        _ => Err(ApiError::bad("payload must be an object")),
    }
}

/// Search parameters: `hnsw_ef` (the list size), `exact` (score every point), and
/// `quantization` (accepted; quantized candidates are always rescored at full precision).
/// Returns `(exact, ef)`.
pub(super) fn check_params(body: &Map<String, Value>) -> Result<(bool, Option<usize>), ApiError> {
    let (mut exact, mut ef) = (false, None);
    match body.get("params") {
        None | Some(Value::Null) => {}
        Some(Value::Object(p)) => {
            for (k, v) in p {
                match k.as_str() {
                    "hnsw_ef" if v.is_null() => {}
                    "hnsw_ef" if v.as_u64() == Some(0) => {
                        return Err(ApiError::validation("params.hnsw_ef", "value 0 invalid, must be 1 or larger"))
                    }
                    "hnsw_ef" => {
                        let n = v.as_u64().filter(|n| (1..=4096).contains(n));
                        ef = Some(
                            n.ok_or_else(|| ApiError::bad(format!("params.hnsw_ef must be an integer in 1..=4096, got {v}")))? as usize,
                        );
                    }
                    "exact" => exact = v.as_bool().unwrap_or(false),
                    "indexed_only" => {}
                    "quantization" if v.is_null() || v.is_object() => {}
                    other => return Err(ApiError::unsupported(&format!("search parameter {other:?}"))),
                }
            }
        }
        Some(other) => return Err(ApiError::bad(format!("params must be an object, got {other}"))),
    }
    Ok((exact, ef))
}

/// A search request from the Query API (`query`) or the old search API (`vector`).
pub(super) fn parse_search(body: &Map<String, Value>, query_api: bool) -> Result<(SearchRequest, PayloadSelect), ApiError> {
    reject_present(body, &["prefetch", "lookup_from", "shard_key"])?;
    main_using(body)?;
    let (exact, ef) = check_params(body)?;
    let vector = if query_api {
        match body.get("query") {
            None | Some(Value::Null) => return Err(ApiError::unsupported("a query without a vector (use scroll)")),
            Some(v @ Value::Array(_)) => parse_vector(v, "query")?,
            Some(Value::Object(o)) if o.contains_key("nearest") => {
                reject_present(o, &["mmr"])?;
                parse_vector(&o["nearest"], "query.nearest")?
            }
            Some(Value::Object(o)) => {
                let kind = o.keys().next().cloned().unwrap_or_default();
                return Err(ApiError::unsupported(&format!("query type {kind:?}")));
            }
            Some(Value::String(s)) if s.parse::<uuid::Uuid>().is_err() => {
                return Err(ApiError::bad(format!(
                    "query is a bare string ({s:?}); to search by text send a document, \
                     {{\"query\": {{\"text\": \"...\", \"model\": \"sentence-transformers/all-MiniLM-L6-v2\"}}}} \
                     (the collection needs an embedder), or {{\"query\": \"...\", \"using\": \"bm25\"}} for keyword search"
                )))
            }
            Some(Value::Number(_)) | Some(Value::String(_)) => return Err(ApiError::unsupported("query by point id")),
            Some(other) => return Err(ApiError::bad(format!("query must be a vector, got {other}"))),
        }
    } else {
        reject_present(body, &["query"])?;
        parse_vector(body.get("vector").ok_or_else(|| ApiError::bad("vector is required"))?, "vector")?
    };
    let sel = parse_with_payload(body, !query_api)?;
    let threshold = match body.get("score_threshold") {
        None | Some(Value::Null) => None,
        Some(v) => Some(v.as_f64().ok_or_else(|| ApiError::bad("score_threshold must be a number"))? as f32),
    };
    let req = SearchRequest {
        vector,
        limit: field_limit(body, 10)?,
        offset: field_usize(body, "offset", 0)?,
        filter: field_filter(body)?,
        score_threshold: threshold,
        with_payload: !matches!(sel, PayloadSelect::None),
        with_vector: parse_with_vector(body)?,
        exact,
        ef,
    };
    Ok((req, sel))
}

pub(super) fn parse_batch(body: &Map<String, Value>, query_api: bool) -> Result<Vec<(SearchRequest, PayloadSelect)>, ApiError> {
    let list = body
        .get("searches")
        .and_then(Value::as_array)
        .ok_or_else(|| ApiError::bad("searches must be a list"))?;
    if list.len() > 1024 {
        return Err(ApiError::bad(format!(
            "{} searches in one batch exceeds the limit of 1024",
            list.len()
        )));
    }
    list.iter()
        .enumerate()
        .map(|(i, s)| {
            parse_search(
                s.as_object()
                    .ok_or_else(|| ApiError::bad(format!("searches[{i}] must be an object")))?,
                query_api,
            )
        })
        .collect()
}
