//! `POST /collections/{name}/points/batch`: a list of update operations (upsert, delete,
//! payload and vector edits), applied in order. Every operation is parsed before the first is
//! applied, so a malformed one changes nothing; each applied operation is durable on its own
//! (the batch is not one transaction: a crash between two leaves the first ones applied, as
//! in Qdrant), and the batch holds no lock between them.

use super::*;

/// One operation of a batch, parsed.
enum BatchOp {
    Upsert(Upsert),
    Delete(PointSelector),
    SetPayload(PointSelector, Payload, Option<String>),
    OverwritePayload(PointSelector, Payload),
    DeletePayload(PointSelector, Vec<String>),
    ClearPayload(PointSelector),
    UpdateVectors(Vec<Point>, Option<Filter>),
    DeleteVectors(PointSelector, Vec<String>),
}

fn parse_op(op: &Value, i: usize) -> Result<BatchOp, ApiError> {
    let o = op.as_object().filter(|o| o.len() == 1).ok_or_else(|| {
        ApiError::bad(format!(
            "operations[{i}] must be an object with one operation, such as {{\"upsert\": {{..}}}}"
        ))
    })?;
    let (kind, body) = o.iter().next().expect("one entry");
    let b = body
        .as_object()
        .ok_or_else(|| ApiError::bad(format!("operations[{i}].{kind} must be an object")))?;
    let selected = |fields: &[&str]| -> Result<PointSelector, ApiError> {
        only_fields(b, fields, &format!("operations[{i}].{kind}"))?;
        reject_present(b, &["shard_key"])?;
        parse_selector(b)
    };
    Ok(match kind.as_str() {
        "upsert" => BatchOp::Upsert(parse_upsert(b)?),
        "delete" => BatchOp::Delete(selected(&["points", "filter", "shard_key"])?),
        "set_payload" => BatchOp::SetPayload(selected(PAYLOAD_FIELDS)?, payload_field(b)?, payload_key(b)?),
        "overwrite_payload" => {
            reject_present(b, &["key"])?;
            BatchOp::OverwritePayload(selected(PAYLOAD_FIELDS)?, payload_field(b)?)
        }
        "delete_payload" => BatchOp::DeletePayload(selected(&["keys", "points", "filter", "shard_key"])?, parse_payload_keys(b)?),
        "clear_payload" => BatchOp::ClearPayload(selected(&["points", "filter", "shard_key"])?),
        "update_vectors" => {
            let (points, condition) = parse_vector_updates(b)?;
            BatchOp::UpdateVectors(points, condition)
        }
        "delete_vectors" => {
            let (sel, names) = parse_delete_vectors(b)?;
            BatchOp::DeleteVectors(sel, names)
        }
        other => {
            return Err(ApiError::bad(format!(
                "operations[{i}]: unknown operation {other:?}; one of upsert, delete, set_payload, overwrite_payload, \
                 delete_payload, clear_payload, update_vectors, delete_vectors"
            )))
        }
    })
}

fn apply(c: &Collection, op: BatchOp) -> Result<WriteAck, ApiError> {
    Ok(match op {
        BatchOp::Upsert((points, mode, condition)) => c.upsert_if(points, mode, condition.as_ref())?,
        BatchOp::Delete(sel) => c.delete(&sel)?,
        BatchOp::SetPayload(sel, p, None) => c.set_payload(&sel, p)?,
        BatchOp::SetPayload(sel, p, Some(key)) => c.set_payload_at(&sel, p, &key)?,
        BatchOp::OverwritePayload(sel, p) => c.overwrite_payload(&sel, p)?,
        BatchOp::DeletePayload(sel, keys) => c.delete_payload_keys(&sel, keys)?,
        BatchOp::ClearPayload(sel) => c.clear_payload(&sel)?,
        BatchOp::UpdateVectors(points, condition) => c.update_vectors_if(points, condition.as_ref())?,
        BatchOp::DeleteVectors(sel, names) => c.delete_vectors(&sel, &names)?,
    })
}

pub(super) async fn points_batch(State(state): State<AppState>, Path(name): Path<String>, body: Bytes) -> Response {
    let start = Instant::now();
    let parsed = parse_body(&body).and_then(|b| {
        only_fields(&b, &["operations"], "body")?;
        b.get("operations")
            .and_then(Value::as_array)
            .ok_or_else(|| ApiError::bad("operations must be a list of update operations"))?
            .iter()
            .enumerate()
            .map(|(i, op)| parse_op(op, i))
            .collect::<Result<Vec<_>, _>>()
    });
    let ops = match parsed {
        Ok(ops) => ops,
        Err(e) => return e.into_response(),
    };
    respond(
        start,
        blocking(move || {
            let c = collection(&state, &name)?;
            let acks = ops
                .into_iter()
                .map(|op| apply(&c, op).map(update_json))
                .collect::<Result<Vec<_>, _>>()?;
            Ok(Value::Array(acks))
        })
        .await,
    )
}
