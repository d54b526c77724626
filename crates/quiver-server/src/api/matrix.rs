//! The distance matrix routes: `/points/search/matrix/pairs` (a list of `{a, b, score}`) and
//! `/points/search/matrix/offsets` (a sparse matrix: rows, columns, scores and the ids they
//! index). The work is the library's `Collection::distance_matrix`.

use super::*;

/// `{"sample" (10), "limit" (3), "filter", "using"}`.
fn parse(body: &Bytes) -> Result<(usize, usize, Option<Filter>, Option<String>), ApiError> {
    let b = parse_body(body)?;
    only_fields(
        &b,
        &["sample", "limit", "filter", "using", "shard_key", "timeout"],
        "matrix request",
    )?;
    reject_present(&b, &["shard_key"])?;
    let using = match b.get("using") {
        None | Some(Value::Null) => None,
        Some(Value::String(u)) => Some(u.clone()),
        Some(other) => return Err(ApiError::bad(format!("using must be a vector name, got {other}"))),
    };
    Ok((
        field_usize(&b, "sample", 10)?,
        field_usize(&b, "limit", 3)?,
        field_filter(&b)?,
        using,
    ))
}

async fn matrix(state: AppState, name: String, body: Bytes, render: fn(quiver::collection::DistanceMatrix) -> Value) -> Response {
    let start = Instant::now();
    let (sample, limit, filter, using) = match parse(&body) {
        Ok(x) => x,
        Err(e) => return e.into_response(),
    };
    respond(
        start,
        blocking(move || {
            let m = collection(&state, &name)?.distance_matrix(sample, limit, filter.as_ref(), using.as_deref())?;
            Ok(render(m))
        })
        .await,
    )
}

pub(super) async fn matrix_pairs(State(state): State<AppState>, Path(name): Path<String>, body: Bytes) -> Response {
    matrix(state, name, body, |m| {
        let mut pairs = Vec::new();
        for (i, row) in m.neighbours.iter().enumerate() {
            for &(j, score) in row {
                pairs.push(json!({"a": m.ids[i].to_json(), "b": m.ids[j].to_json(), "score": f32_json(score)}));
            }
        }
        json!({ "pairs": pairs })
    })
    .await
}

pub(super) async fn matrix_offsets(State(state): State<AppState>, Path(name): Path<String>, body: Bytes) -> Response {
    matrix(state, name, body, |m| {
        let (mut rows, mut cols, mut scores) = (Vec::new(), Vec::new(), Vec::new());
        for (i, row) in m.neighbours.iter().enumerate() {
            for &(j, score) in row {
                rows.push(i);
                cols.push(j);
                scores.push(f32_json(score));
            }
        }
        json!({"offsets_row": rows, "offsets_col": cols, "scores": scores,
               "ids": m.ids.iter().map(|id| id.to_json()).collect::<Vec<_>>()})
    })
    .await
}
