//! Routes on points: upsert, retrieve, delete, payload updates, scroll and count.

use super::*;

/// Parses a body and embeds the documents in it (see [`crate::documents`]).
pub(super) async fn body_with_vectors(state: &AppState, name: &str, body: &Bytes) -> Result<Map<String, Value>, ApiError> {
    let mut map = parse_body(body)?;
    if !crate::documents::has_documents(&map) {
        return Ok(map);
    }
    let (state, name) = (state.clone(), name.to_string());
    tokio::task::spawn_blocking(move || {
        crate::documents::resolve(&state, &name, &mut map)?;
        Ok(map)
    })
    .await
    .unwrap_or_else(|e| Err(ApiError::new(StatusCode::INTERNAL_SERVER_ERROR, format!("internal error: {e}"))))
}

pub(super) async fn upsert_points(State(state): State<AppState>, Path(name): Path<String>, body: Bytes) -> Response {
    let start = Instant::now();
    let (points, mode, condition) = match body_with_vectors(&state, &name, &body).await.and_then(|b| parse_upsert(&b)) {
        Ok(p) => p,
        Err(e) => return e.into_response(),
    };
    // wait=false is answered after the write is durable too: Quiver has no update queue.
    respond(
        start,
        blocking(move || {
            Ok(update_json(collection(&state, &name)?.upsert_if(
                points,
                mode,
                condition.as_ref(),
            )?))
        })
        .await,
    )
}

pub(super) async fn retrieve_points(State(state): State<AppState>, Path(name): Path<String>, body: Bytes) -> Response {
    let start = Instant::now();
    let parsed = (|| {
        let body = parse_body(&body)?;
        reject_present(&body, &["shard_key"])?;
        let ids = parse_ids(body.get("ids").ok_or_else(|| ApiError::bad("ids is required"))?)?;
        Ok::<_, ApiError>((
            ids,
            parse_with_payload(&body, true)?,
            parse_with_vector(&body)?,
            vector_names(&body),
        ))
    })();
    let (ids, sel, with_vector, names) = match parsed {
        Ok(x) => x,
        Err(e) => return e.into_response(),
    };
    respond(
        start,
        blocking(move || {
            let c = collection(&state, &name)?;
            let records = c.get(
                &ids,
                quiver::With {
                    payload: !matches!(sel, PayloadSelect::None),
                    vector: with_vector,
                },
            )?;
            let mut out = Value::Array(records.into_iter().map(|r| record_json(r, &sel)).collect());
            select_vectors(&c, names.as_deref(), &mut out)?;
            Ok(out)
        })
        .await,
    )
}

pub(super) async fn get_point(State(state): State<AppState>, Path((name, id)): Path<(String, String)>) -> Response {
    let start = Instant::now();
    respond(
        start,
        blocking(move || {
            let id: PointId = id.parse()?;
            let mut records = collection(&state, &name)?.get(&[id], quiver::With::ALL)?;
            match records.pop() {
                Some(r) => Ok(record_json(r, &PayloadSelect::All)),
                None => Err(ApiError::new(
                    StatusCode::NOT_FOUND,
                    format!("Not found: Point with id {id} does not exist"),
                )),
            }
        })
        .await,
    )
}

/// Runs a selector-based update.
pub(super) async fn selected_update(
    state: AppState,
    name: String,
    body: Bytes,
    fields: &'static [&'static str],
    f: impl FnOnce(&Collection, PointSelector, &Map<String, Value>) -> Result<WriteAck, ApiError> + Send + 'static,
) -> Response {
    let start = Instant::now();
    let parsed = parse_body(&body).and_then(|b| {
        only_fields(&b, fields, "body")?;
        reject_present(&b, &["shard_key"])?;
        Ok((parse_selector(&b)?, b))
    });
    let (selector, body) = match parsed {
        Ok(x) => x,
        Err(e) => return e.into_response(),
    };
    respond(
        start,
        blocking(move || Ok(update_json(f(&collection(&state, &name)?, selector, &body)?))).await,
    )
}

/// The fields of a set / overwrite payload body (`key` is refused by name when present).
pub(super) const PAYLOAD_FIELDS: &[&str] = &["payload", "points", "filter", "key", "shard_key"];

pub(super) async fn delete_points(State(state): State<AppState>, Path(name): Path<String>, body: Bytes) -> Response {
    selected_update(state, name, body, &["points", "filter", "shard_key"], |c, sel, _| {
        Ok(c.delete(&sel)?)
    })
    .await
}

pub(super) async fn set_payload(State(state): State<AppState>, Path(name): Path<String>, body: Bytes) -> Response {
    selected_update(state, name, body, PAYLOAD_FIELDS, |c, sel, b| match payload_key(b)? {
        Some(key) => Ok(c.set_payload_at(&sel, payload_field(b)?, &key)?),
        None => Ok(c.set_payload(&sel, payload_field(b)?)?),
    })
    .await
}

pub(super) async fn overwrite_payload(State(state): State<AppState>, Path(name): Path<String>, body: Bytes) -> Response {
    selected_update(state, name, body, PAYLOAD_FIELDS, |c, sel, b| {
        reject_present(b, &["key"])?;
        Ok(c.overwrite_payload(&sel, payload_field(b)?)?)
    })
    .await
}

pub(super) async fn delete_payload(State(state): State<AppState>, Path(name): Path<String>, body: Bytes) -> Response {
    selected_update(state, name, body, &["keys", "points", "filter", "shard_key"], |c, sel, b| {
        Ok(c.delete_payload_keys(&sel, parse_payload_keys(b)?)?)
    })
    .await
}

pub(super) async fn clear_payload(State(state): State<AppState>, Path(name): Path<String>, body: Bytes) -> Response {
    selected_update(state, name, body, &["points", "filter", "shard_key"], |c, sel, _| {
        Ok(c.clear_payload(&sel)?)
    })
    .await
}

/// Scroll's `order_by`: a key, or `{"key", "direction": "asc" | "desc", "start_from"}`.
pub(super) struct OrderBy {
    pub(super) key: String,
    pub(super) descending: bool,
    pub(super) start_from: Option<f64>,
}

pub(super) fn parse_order_by(v: &Value) -> Result<Option<OrderBy>, ApiError> {
    match v {
        Value::Null => Ok(None),
        Value::String(k) => Ok(Some(OrderBy {
            key: k.clone(),
            descending: false,
            start_from: None,
        })),
        Value::Object(o) => {
            only_fields(o, &["key", "direction", "start_from"], "order_by")?;
            let key = o
                .get("key")
                .and_then(Value::as_str)
                .ok_or_else(|| ApiError::bad("order_by.key must be a payload key"))?
                .to_string();
            let descending = match o.get("direction") {
                None | Some(Value::Null) => false,
                Some(d) if d == "asc" => false,
                Some(d) if d == "desc" => true,
                Some(other) => {
                    return Err(ApiError::bad(format!(
                        "order_by.direction must be \"asc\" or \"desc\", got {other}"
                    )))
                }
            };
            let start_from = match o.get("start_from") {
                None | Some(Value::Null) => None,
                Some(Value::String(t)) => Some(
                    quiver::parse_datetime(t)
                        .ok_or_else(|| ApiError::bad(format!("order_by.start_from {t:?} is neither a number nor an RFC 3339 datetime")))?
                        as f64,
                ),
                Some(v) => Some(
                    v.as_f64()
                        .ok_or_else(|| ApiError::bad(format!("order_by.start_from must be a number or a datetime, got {v}")))?,
                ),
            };
            Ok(Some(OrderBy {
                key,
                descending,
                start_from,
            }))
        }
        other => Err(ApiError::bad(format!("order_by must be a key or an object, got {other}"))),
    }
}

pub(super) async fn scroll_points(State(state): State<AppState>, Path(name): Path<String>, body: Bytes) -> Response {
    let start = Instant::now();
    let parsed = (|| {
        let body = parse_body(&body)?;
        reject_present(&body, &["shard_key"])?;
        let offset = match body.get("offset") {
            None | Some(Value::Null) => None,
            Some(v) => Some(PointId::from_json(v)?),
        };
        let order = parse_order_by(body.get("order_by").unwrap_or(&Value::Null))?;
        let req = ScrollRequest {
            offset,
            limit: field_limit(&body, 10)?,
            filter: field_filter(&body)?,
            with_payload: true,
            with_vector: parse_with_vector(&body)?,
        };
        Ok::<_, ApiError>((req, parse_with_payload(&body, true)?, order, vector_names(&body)))
    })();
    let (mut req, sel, order, names) = match parsed {
        Ok(x) => x,
        Err(e) => return e.into_response(),
    };
    req.with_payload = !matches!(sel, PayloadSelect::None);
    respond(
        start,
        blocking(move || {
            let c = collection(&state, &name)?;
            if let Some(o) = order {
                // Points in value order, each with the value it was ordered by; paging goes by
                // `start_from`, so there is no next offset (as in Qdrant).
                let rows = c.scroll_ordered(&req, &o.key, o.descending, o.start_from)?;
                let points: Vec<Value> = rows
                    .into_iter()
                    .map(|(r, v)| {
                        let mut p = record_json(r, &sel);
                        p["order_value"] = if v.fract() == 0.0 && v.abs() < 9.0e15 {
                            json!(v as i64)
                        } else {
                            json!(v)
                        };
                        p
                    })
                    .collect();
                let mut out = json!({"points": points, "next_page_offset": null});
                select_vectors(&c, names.as_deref(), &mut out)?;
                return Ok(out);
            }
            let page = c.scroll(&req)?;
            let mut out = json!({"points": page.points.into_iter().map(|r| record_json(r, &sel)).collect::<Vec<_>>(),
                                 "next_page_offset": page.next_offset.map(|o| o.to_json())});
            select_vectors(&c, names.as_deref(), &mut out)?;
            Ok(out)
        })
        .await,
    )
}

pub(super) async fn count_points(State(state): State<AppState>, Path(name): Path<String>, body: Bytes) -> Response {
    let start = Instant::now();
    let filter = match parse_body(&body).and_then(|b| {
        reject_present(&b, &["shard_key"])?;
        field_filter(&b)
    }) {
        Ok(f) => f,
        Err(e) => return e.into_response(),
    };
    respond(
        start,
        blocking(move || Ok(json!({"count": collection(&state, &name)?.count(filter.as_ref())}))).await,
    )
}

/// `PUT /points/vectors`: `{"points": [{"id", "vector"}]}` replaces or adds the given vectors
/// of existing points and keeps their other vectors and payloads; a missing id is a 404 and
/// nothing is written.
pub(super) async fn update_vectors(State(state): State<AppState>, Path(name): Path<String>, body: Bytes) -> Response {
    let start = Instant::now();
    let (updates, condition) = match parse_body(&body).and_then(|b| parse_vector_updates(&b)) {
        Ok(u) => u,
        Err(e) => return e.into_response(),
    };
    respond(
        start,
        blocking(move || {
            Ok(update_json(
                collection(&state, &name)?.update_vectors_if(updates, condition.as_ref())?,
            ))
        })
        .await,
    )
}

/// The body of a vector update: `{"points": [{id, vector}], "update_filter"}` (a point's
/// `payload` is ignored, as in Qdrant).
pub(super) fn parse_vector_updates(b: &Map<String, Value>) -> Result<(Vec<Point>, Option<Filter>), ApiError> {
    only_fields(b, &["points", "shard_key", "update_filter"], "update vectors")?;
    reject_present(b, &["shard_key"])?;
    let condition = update_filter(b)?;
    let points = b
        .get("points")
        .and_then(Value::as_array)
        .ok_or_else(|| ApiError::bad("points must be a list of {id, vector}"))?
        .iter()
        .enumerate()
        .map(|(i, p)| {
            let (_, id, vector, vectors) = parse_point_entry(p, i, &["id", "vector", "payload"])?;
            if vector.is_empty() && vectors.is_empty() {
                return Err(ApiError::validation(
                    &format!("points[{i}].vector"),
                    "must specify vectors to update for point",
                ));
            }
            Ok(Point {
                id,
                vector,
                vectors,
                payload: None,
            })
        })
        .collect::<Result<Vec<_>, ApiError>>()?;
    Ok((points, condition))
}

/// `POST /points/vectors/delete`: `{"points": [ids] | "filter", "vector": [names]}` removes
/// those vectors from the selected points, keeping everything else.
pub(super) async fn delete_vectors(State(state): State<AppState>, Path(name): Path<String>, body: Bytes) -> Response {
    let start = Instant::now();
    let (selector, names) = match parse_body(&body).and_then(|b| parse_delete_vectors(&b)) {
        Ok(x) => x,
        Err(e) => return e.into_response(),
    };
    respond(
        start,
        blocking(move || Ok(update_json(collection(&state, &name)?.delete_vectors(&selector, &names)?))).await,
    )
}

/// The body of a vector deletion: the points (`points` or `filter`) and the names.
pub(super) fn parse_delete_vectors(b: &Map<String, Value>) -> Result<(PointSelector, Vec<String>), ApiError> {
    only_fields(b, &["points", "filter", "vector", "shard_key"], "delete vectors")?;
    reject_present(b, &["shard_key"])?;
    let names: Vec<String> = b
        .get("vector")
        .and_then(Value::as_array)
        .ok_or_else(|| ApiError::bad("vector must be a list of vector names"))?
        .iter()
        .map(|v| {
            v.as_str()
                .map(str::to_string)
                .ok_or_else(|| ApiError::bad("vector names are strings"))
        })
        .collect::<Result<_, _>>()?;
    Ok((parse_selector(b)?, names))
}

/// The `keys` of a payload-key deletion.
pub(super) fn parse_payload_keys(b: &Map<String, Value>) -> Result<Vec<String>, ApiError> {
    b.get("keys")
        .and_then(Value::as_array)
        .ok_or_else(|| ApiError::bad("keys must be a list"))?
        .iter()
        .map(|k| k.as_str().map(str::to_string).ok_or_else(|| ApiError::bad("keys must be strings")))
        .collect()
}

/// `POST /facet`: `{"key", "filter", "limit" (10), "exact"}` -> `{"hits": [{"value", "count"}]}`,
/// counted from the key's payload index (always exact).
pub(super) async fn facet(State(state): State<AppState>, Path(name): Path<String>, body: Bytes) -> Response {
    let start = Instant::now();
    let parsed = parse_body(&body).and_then(|b| {
        only_fields(&b, &["key", "filter", "limit", "exact", "shard_key"], "facet")?;
        reject_present(&b, &["shard_key"])?;
        let key = b
            .get("key")
            .and_then(Value::as_str)
            .ok_or_else(|| ApiError::bad("key must be a payload key"))?
            .to_string();
        Ok::<_, ApiError>((key, field_filter(&b)?, field_limit(&b, 10)?))
    });
    let (key, filter, limit) = match parsed {
        Ok(x) => x,
        Err(e) => return e.into_response(),
    };
    respond(
        start,
        blocking(move || {
            let hits = collection(&state, &name)?.facet(&key, filter.as_ref(), limit)?;
            Ok(json!({"hits": hits.into_iter().map(|(v, n)| json!({"value": v, "count": n})).collect::<Vec<_>>()}))
        })
        .await,
    )
}
