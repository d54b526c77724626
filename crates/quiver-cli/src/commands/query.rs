//! `quiver query` and `quiver facet`: the server's Query API on the data folder, without a
//! server. A query body is Qdrant's JSON (`{"query": ..., "prefetch": ..., "filter": ...}`:
//! nearest, recommend, discover, context, order_by, sample, fusion, groups), parsed and answered
//! by the same code as `POST /collections/{name}/points/query`.

use super::*;
use crate::render::{payload_line, Message, Output};
use serde_json::{json, Map, Value};

#[derive(Args)]
pub struct QueryArgs {
    /// The collection (or an alias).
    pub collection: String,
    /// The query body as JSON, or @FILE to read it from a file.
    #[arg(long)]
    pub body: String,
    /// Group the hits by this payload key (`group_by`; the body may set `group_size`).
    #[arg(long)]
    pub group_by: Option<String>,
    /// Show what each stage did: its query, space, candidates in, points out, best hit, time.
    #[arg(long, conflicts_with = "group_by")]
    pub explain: bool,
}

#[derive(Args)]
pub struct FacetArgs {
    /// The collection (or an alias).
    pub collection: String,
    /// The payload key whose values are counted.
    pub key: String,
    #[command(flatten)]
    pub filter: FilterArg,
    /// How many values (the most frequent first).
    #[arg(long, default_value_t = 10)]
    pub limit: usize,
}

fn read_body(arg: &str) -> Result<Map<String, Value>> {
    let text = match arg.strip_prefix('@') {
        Some(path) => std::fs::read_to_string(path).with_context(|| format!("reading the query body from {path}"))?,
        None => arg.to_string(),
    };
    match serde_json::from_str(&text).context("the query body is not valid JSON")? {
        Value::Object(o) => Ok(o),
        other => bail!("the query body must be a JSON object, got {other}"),
    }
}

/// One hit as a line: id, score, payload.
fn hit_line(h: &Value) -> String {
    let payload = h["payload"].as_object().map(payload_line).unwrap_or_default();
    let score = h["score"].as_f64().map_or(String::new(), |s| format!("{s:.4}"));
    format!("{:<12} {:>10}  {}", h["id"].to_string(), score, payload)
}

/// One stage of `--explain`, indented by its depth.
fn stage_line(t: &Value) -> String {
    let best = match &t["best"] {
        Value::Null => "-".to_string(),
        b => format!("{} ({})", b["id"], b["score"]),
    };
    let input = match t["candidates"].as_u64() {
        Some(0) | None => "the collection".to_string(),
        Some(n) => format!("{n} candidates"),
    };
    format!(
        "{}{} on {:?}{}: {} -> {} of limit {}, best {}, {} us",
        "  ".repeat(t["depth"].as_u64().unwrap_or(0) as usize),
        t["query"].as_str().unwrap_or("?"),
        t["using"].as_str().unwrap_or(""),
        if t["filtered"] == true { " (filtered)" } else { "" },
        input,
        t["hits"],
        t["limit"],
        best,
        t["micros"]
    )
}

pub fn query(ctx: &Ctx, a: &QueryArgs) -> Result<Box<dyn Output>> {
    let db = ctx.db()?;
    let mut body = read_body(&a.body)?;
    let answer = match &a.group_by {
        Some(key) => {
            body.insert("group_by".into(), json!(key));
            quiver_server::api::query_groups_json(&db, &a.collection, &body)
        }
        None if a.explain => quiver_server::api::query_json_explained(&db, &a.collection, &body),
        None => quiver_server::api::query_json(&db, &a.collection, &body),
    }
    .map_err(|e| anyhow::anyhow!("{}", e.message))?;
    let text = if let Some(groups) = answer["groups"].as_array() {
        groups
            .iter()
            .map(|g| {
                let hits: Vec<String> = g["hits"]
                    .as_array()
                    .into_iter()
                    .flatten()
                    .map(|h| format!("  {}", hit_line(h)))
                    .collect();
                format!("{}\n{}", g["id"], hits.join("\n"))
            })
            .collect::<Vec<_>>()
            .join("\n")
    } else {
        let hits = answer["points"]
            .as_array()
            .into_iter()
            .flatten()
            .map(hit_line)
            .collect::<Vec<_>>()
            .join("\n");
        match answer["stages"].as_array() {
            Some(stages) => format!("{}\n\n{hits}", stages.iter().map(stage_line).collect::<Vec<_>>().join("\n")),
            None => hits,
        }
    };
    Ok(Box::new(Message::new(
        answer,
        if text.is_empty() { "(no hits)".to_string() } else { text },
    )))
}

pub fn facet(ctx: &Ctx, a: &FacetArgs) -> Result<Box<dyn Output>> {
    let db = ctx.db()?;
    let c = db.collection(&a.collection)?;
    let hits = c.facet(&a.key, a.filter.parse()?.as_ref(), a.limit)?;
    let text = hits.iter().map(|(v, n)| format!("{v:<30} {n}")).collect::<Vec<_>>().join("\n");
    Ok(Box::new(Message::new(
        json!(hits.iter().map(|(v, n)| json!({"value": v, "count": n})).collect::<Vec<_>>()),
        if text.is_empty() {
            format!("(no values of {} under an index)", a.key)
        } else {
            text
        },
    )))
}
