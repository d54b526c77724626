//! Text collections on the command line: `create --model`, `add`, `search --text` and
//! `explain`. A collection records its embedder's name; this module runs the model (steps 1-4
//! of the pipeline) and hands the vectors to the library (steps 5-8). The text itself is kept in
//! the payload under `document`, as Chroma keeps documents.

use super::{parse_limit, parse_payload, Ctx, FilterArg, ModelDirArg};
use crate::render::{count, Message, Output};
use anyhow::{bail, Context, Result};
use clap::Args;
use indicatif::{ProgressBar, ProgressStyle};
use quiver::{Collection, EmbedPrecision, Filter, Payload, Point, PointId, SearchRequest};
use quiver_embed::{Embedder, MiniLm};
use serde_json::{json, Value};
use std::path::{Path, PathBuf};
use std::time::Instant;

/// The payload key that holds a point's text.
pub use quiver::collection::DOCUMENT_KEY;
/// Texts embedded per batch while adding.
const ADD_BATCH: usize = 64;

#[derive(Args)]
#[command(group(clap::ArgGroup::new("input").required(true).args(["text", "file", "lines"])))]
pub struct AddArgs {
    /// The collection's name.
    collection: String,
    /// One text.
    #[arg(long)]
    text: Option<String>,
    /// Its id (default: a random UUID).
    #[arg(long, requires = "text")]
    id: Option<String>,
    /// Its payload, a JSON object.
    #[arg(long, requires = "text")]
    payload: Option<String>,
    /// JSON lines: {"id": .., "text": .., "payload": {..}} (id optional).
    #[arg(long)]
    file: Option<PathBuf>,
    /// Plain text, one text per line (blank lines skipped), each with a random UUID.
    #[arg(long)]
    lines: Option<PathBuf>,
    #[command(flatten)]
    model: ModelDirArg,
}

pub fn add_command(ctx: &Ctx, a: &AddArgs) -> Result<Box<dyn Output>> {
    let db = ctx.db()?;
    let c = db.collection(&a.collection)?;
    let model = collection_embedder(&c, &a.model)?;
    let docs = match (&a.text, &a.file, &a.lines) {
        (Some(t), _, _) => {
            let payload = a.payload.as_deref().map(parse_payload).transpose()?.unwrap_or_default();
            let id = match &a.id {
                Some(i) => i.parse::<PointId>()?,
                None => PointId::Uuid(uuid::Uuid::new_v4()),
            };
            vec![Doc {
                id,
                text: t.clone(),
                payload,
            }]
        }
        (None, Some(f), _) => read_docs(f)?,
        (None, None, Some(f)) => read_lines(f)?,
        (None, None, None) => bail!("give --text, --file or --lines"),
    };
    let t0 = Instant::now();
    let n = add(&c, &model, docs)?;
    let secs = t0.elapsed().as_secs_f64();
    Ok(Box::new(Message::new(
        json!({"added": n, "seconds": secs}),
        format!(
            "added {} to {:?} in {secs:.2}s ({:.0} texts/s, durable)",
            count(n, "text"),
            a.collection,
            n as f64 / secs
        ),
    )))
}

#[derive(Args)]
pub struct ExplainArgs {
    /// The collection's name.
    collection: String,
    /// The text query whose steps are shown.
    #[arg(long, required_unless_present = "using", conflicts_with = "using")]
    text: Option<String>,
    /// Explain a sparse query instead: the sparse vector's name (see `create --sparse`).
    #[arg(long, requires = "vector")]
    using: Option<String>,
    /// With --using: the sparse query, '{"indices": [..], "values": [..]}'.
    #[arg(long, requires = "using")]
    vector: Option<String>,
    /// Results to return.
    #[arg(short = 'k', long = "limit", visible_alias = "k", default_value_t = 10, value_parser = parse_limit)]
    k: usize,
    #[command(flatten)]
    filter: FilterArg,
    #[command(flatten)]
    model: ModelDirArg,
}

/// `quiver explain`: the steps of the walkthrough with real numbers for one text query.
pub fn explain(ctx: &Ctx, a: &ExplainArgs) -> Result<Box<dyn Output>> {
    let db = ctx.db()?;
    let c = db.collection(&a.collection)?;
    if let (Some(using), Some(v)) = (&a.using, &a.vector) {
        return Ok(Box::new(explain_sparse(&c, using, v, a.k, a.filter.parse()?)?));
    }
    let model = collection_embedder(&c, &a.model)?;
    let text = a.text.as_deref().unwrap_or_default();
    Ok(Box::new(explain_query(&c, &model, text, a.k, a.filter.parse()?)?))
}

/// `quiver explain --using NAME --vector JSON`: a sparse query's weights, posting lists, what
/// pruning skipped, and the hits.
fn explain_sparse(c: &Collection, using: &str, vector: &str, k: usize, filter: Option<Filter>) -> Result<Message> {
    let json: Value = serde_json::from_str(vector).context("--vector must be JSON")?;
    let quiver::VectorData::Sparse(q) = quiver::vector_data_from_json(using, &json)? else {
        bail!("--vector must be a sparse vector here: {{\"indices\": [..], \"values\": [..]}}");
    };
    let mut req = SearchRequest::new(Vec::new(), k);
    req.filter = filter;
    let (hits, ex) = c.explain_sparse(using, &q, &req)?;
    let mut text = format!(
        "sparse query on {using:?}: {} indices over {} points holding the vector\n\n",
        ex.terms.len(),
        ex.docs
    );
    text.push_str("   index     value       idf    weight   points  postings  read\n");
    for t in &ex.terms {
        let read = if t.postings == 0 {
            "absent"
        } else if t.read_in_full {
            "in full"
        } else {
            "lookups only (pruned)"
        };
        text.push_str(&format!(
            "{:>8}  {:>8.4}  {:>8}  {:>8.4}  {:>7}  {:>8}  {read}\n",
            t.index,
            t.value,
            t.idf.map_or("-".to_string(), |x| format!("{x:.4}")),
            t.weight,
            t.df,
            t.postings
        ));
    }
    text.push_str(&format!(
        "\n{} posting entries read in full; {}\n\n",
        ex.entries_read,
        if ex.candidates > 0 {
            format!(
                "then the k-th best score beat what the remaining indices could add, so only {} candidates were looked up",
                ex.candidates
            )
        } else {
            "no pruning (every index read in full)".to_string()
        }
    ));
    for (rank, h) in hits.iter().enumerate() {
        text.push_str(&format!("{:>4}  {:>10.4}  {}\n", rank + 1, h.score, h.id));
    }
    let terms: Vec<Value> = ex
        .terms
        .iter()
        .map(|t| json!({"index": t.index, "value": t.value, "idf": t.idf, "weight": t.weight, "points": t.df, "postings": t.postings, "read_in_full": t.read_in_full}))
        .collect();
    let hits: Vec<Value> = hits.iter().map(|h| json!({"id": h.id.to_json(), "score": h.score})).collect();
    Ok(Message::new(
        json!({"using": using, "points_with_vector": ex.docs, "terms": terms, "entries_read": ex.entries_read, "candidates": ex.candidates, "hits": hits}),
        text,
    ))
}

/// Loads the model an embedder name stands for, at `--precision` (else the default).
pub fn load_embedder(name: &str, model: &ModelDirArg) -> Result<MiniLm> {
    load_at(name, model, model.precision.unwrap_or_default())
}

fn load_at(name: &str, model: &ModelDirArg, precision: EmbedPrecision) -> Result<MiniLm> {
    model_info(name)?;
    Ok(MiniLm::load_with(&quiver_embed::find_model(model.get())?, precision)?)
}

/// The registry's entry for a model name, or an error that lists the models Quiver runs.
pub fn model_info(name: &str) -> Result<&'static quiver_embed::registry::ModelInfo> {
    quiver_embed::registry::lookup(name)
        .with_context(|| format!("unknown model {name:?}; Quiver runs: {}", quiver_embed::registry::names()))
}

/// The embedder of a text collection, at the collection's precision unless `--precision` says
/// otherwise, or an error that says the collection takes vectors.
pub fn collection_embedder(c: &Collection, model: &ModelDirArg) -> Result<MiniLm> {
    match &c.config().embedder {
        Some(name) => load_at(name, model, model.precision.unwrap_or(c.config().embed_precision)),
        None => bail!(
            "collection {:?} has no embedder: create it with --model all-minilm-l6-v2 to give it text",
            c.name()
        ),
    }
}

/// One text to add.
pub struct Doc {
    pub id: PointId,
    pub text: String,
    pub payload: Payload,
}

/// Reads `{"id": .., "text": .., "payload": {..}}` lines; a missing id gets a random UUID.
pub fn read_docs(path: &Path) -> Result<Vec<Doc>> {
    let text = std::fs::read_to_string(path).with_context(|| format!("cannot read {}", path.display()))?;
    let mut docs = Vec::new();
    for (n, line) in text.lines().enumerate() {
        if line.trim().is_empty() {
            continue;
        }
        let at = || format!("{} line {}", path.display(), n + 1);
        let v: Value = serde_json::from_str(line).with_context(|| {
            format!(
                "{}: malformed JSON (--file takes JSON lines, {{\"text\": ...}}; for plain text, one text per line, use --lines)",
                at()
            )
        })?;
        let o = v.as_object().with_context(|| format!("{}: expected an object with text", at()))?;
        for k in o.keys() {
            if !matches!(k.as_str(), "id" | "text" | "payload") {
                bail!("{}: unknown field {k:?} (expected id, text, payload)", at());
            }
        }
        let text = o
            .get("text")
            .and_then(Value::as_str)
            .with_context(|| format!("{}: text must be a string", at()))?
            .to_string();
        let id = match o.get("id") {
            None | Some(Value::Null) => PointId::Uuid(uuid_v4()),
            Some(v) => PointId::from_json(v).with_context(at)?,
        };
        let payload = match o.get("payload") {
            None | Some(Value::Null) => Payload::new(),
            Some(Value::Object(p)) => p.clone(),
            Some(_) => bail!("{}: payload must be an object", at()),
        };
        docs.push(Doc { id, text, payload });
    }
    Ok(docs)
}

/// Plain text, one document per non-blank line, each with a random UUID and no payload.
pub fn read_lines(path: &Path) -> Result<Vec<Doc>> {
    let text = std::fs::read_to_string(path).with_context(|| format!("cannot read {}", path.display()))?;
    Ok(text
        .lines()
        .filter(|l| !l.trim().is_empty())
        .map(|l| Doc {
            id: PointId::Uuid(uuid_v4()),
            text: l.to_string(),
            payload: Payload::new(),
        })
        .collect())
}

fn uuid_v4() -> uuid::Uuid {
    uuid::Uuid::new_v4()
}

/// Embeds and stores documents as one atomic batch, with a progress bar and ETA for large inputs.
pub fn add(c: &Collection, model: &MiniLm, docs: Vec<Doc>) -> Result<usize> {
    if docs.is_empty() {
        bail!("nothing to add");
    }
    let pb = if docs.len() >= 256 {
        let pb = ProgressBar::new(docs.len() as u64);
        pb.set_style(ProgressStyle::with_template("embedding {bar:40} {pos}/{len} texts {per_sec} eta {eta}").expect("valid template"));
        pb
    } else {
        ProgressBar::hidden()
    };
    let mut points = Vec::with_capacity(docs.len());
    for chunk in docs.chunks(ADD_BATCH) {
        let texts: Vec<&str> = chunk.iter().map(|d| d.text.as_str()).collect();
        let vectors = model.embed(&texts)?;
        for (d, v) in chunk.iter().zip(vectors) {
            let mut payload = d.payload.clone();
            payload.insert(DOCUMENT_KEY.into(), Value::String(d.text.clone()));
            points.push(Point::new(d.id, v).with_payload(payload));
        }
        pb.inc(chunk.len() as u64);
    }
    pb.finish_and_clear();
    let n = points.len();
    c.upsert(points)?;
    Ok(n)
}

/// The steps of one text query: tokens, embeddings, pooling, search path, results (computed by
/// `quiver_server::steps`, which the dashboard draws too; printed here).
fn explain_query(c: &Collection, model: &MiniLm, text: &str, k: usize, filter: Option<Filter>) -> Result<Message> {
    let ex = quiver_server::steps::explain(c, quiver_server::steps::ExplainQuery::Text { model, text }, k, filter)?;
    let json = ex.to_json(false);
    let e = ex.embedding.as_ref().expect("a text query has its embedding steps");
    let (tokens, ids, hidden, pooled_norm, embed_ms) = (&e.tokens, &e.token_ids, e.hidden, e.pooled_norm, e.ms);
    let (hits, path, scanned, search_ms, checked, target) = (&ex.hits, &ex.plan, ex.distances, ex.search_ms, ex.recall, ex.target_recall);
    let head = |v: &[f32]| v.iter().take(8).map(|x| (x * 10_000.0).round() / 10_000.0).collect::<Vec<f32>>();
    let (pooled, query) = (&e.pooled, &ex.query);
    let recall_note = checked.map(|r| {
        let low = if r < target as f64 {
            format!(" - below the target {target}: the graph missed neighbours here; a larger --ef finds them")
        } else {
            String::new()
        };
        format!("checked against an exact scan: recall@{} {r:.2}{low}", hits.len())
    });
    let mut out: Vec<String> = Vec::new();
    out.push(format!("[1] tokens ({}): {}", tokens.len(), tokens.join(" ")));
    out.push(format!("    ids: {ids:?}"));
    out.push(format!(
        "[2]-[3] token embeddings after {} encoder layers ({} arithmetic): {} x {hidden} matrix",
        model.layers(),
        model.precision(),
        ids.len()
    ));
    out.push(format!("[4] mean pooling -> {hidden}-d sentence embedding, norm {pooled_norm:.4}"));
    out.push(format!("    first dims {:?}", head(pooled)));
    out.push(format!("[5] normalised query vector (norm 1), first dims {:?}", head(query)));
    out.push(format!("    embedding took {embed_ms:.1} ms"));
    out.push(format!("[6]-[9] search path: {path}"));
    out.push(format!(
        "    {} in the collection, {scanned} distances computed, {search_ms:.2} ms",
        crate::render::count(ex.points, "point")
    ));
    if let Some(note) = &recall_note {
        out.push(format!("    {note}"));
    }
    out.push(format!("[10] top {}:", hits.len()));
    let ids: Vec<String> = hits.iter().map(|h| h.id.to_string()).collect();
    let id_w = ids.iter().map(|s| s.len()).max().unwrap_or(2);
    let rank_w = hits.len().to_string().len();
    let width = crate::render::width();
    for (i, (h, id)) in hits.iter().zip(&ids).enumerate() {
        let head = format!("    {:>rank_w$}. {:>9.4}  {id:<id_w$}  ", i + 1, h.score);
        let doc = h.payload.as_ref().map(crate::render::payload_line).unwrap_or_default();
        let room = width.saturating_sub(head.chars().count());
        out.push(format!("{head}{}", crate::render::cut(&doc, room)));
    }
    Ok(Message::new(json, out.join("\n")))
}
