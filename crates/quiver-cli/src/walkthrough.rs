//! `quiver walkthrough`: the exercise "Vector Database by Hand", computed by the real engine.
//! The classroom model (quiver-embed) turns each sentence into a 2-d index vector; the vectors
//! are stored in a real collection and the query is answered by the same exact search users
//! get. Every matrix of every step is printed (colour by stage) or emitted as JSON.

use anyhow::{Context, Result};
use quiver::{CollectionConfig, Database, Metric, Point, SearchRequest};
use quiver_embed::{ByHandModel, Trace};
use serde_json::{json, Value};
use std::io::IsTerminal;

const DATASET: [&str; 3] = ["how are you", "who are you", "who am I"];
const QUERY: &str = "am I you";

#[derive(Clone, Copy)]
enum Stage {
    Embedding,
    Encoding,
    Indexing,
    Query,
}

struct Painter {
    color: bool,
}

impl Painter {
    fn paint(&self, stage: Stage, text: &str) -> String {
        if !self.color {
            return text.to_string();
        }
        let code = match stage {
            Stage::Embedding => "33",
            Stage::Encoding => "32",
            Stage::Indexing => "34",
            Stage::Query => "31",
        };
        format!("\x1b[{code}m{text}\x1b[0m")
    }

    /// Prints a matrix with aligned columns, optional column labels, and a name on the left.
    fn matrix(&self, stage: Stage, name: &str, cols: Option<&[String]>, rows: &[Vec<f32>]) {
        let cell = |v: f32| if v.fract() == 0.0 { format!("{v:.0}") } else { format!("{v:.2}") };
        let width = rows
            .iter()
            .flatten()
            .map(|v| cell(*v).len())
            .chain(cols.into_iter().flatten().map(|c| c.len()))
            .max()
            .unwrap_or(1)
            .max(2);
        let pad = name.chars().count();
        if let Some(cols) = cols {
            let header: Vec<String> = cols.iter().map(|c| format!("{c:>width$}")).collect();
            println!("{:pad$}   {}", "", self.paint(stage, &header.join(" ")));
        }
        for (i, row) in rows.iter().enumerate() {
            let label = if i == rows.len() / 2 { name.to_string() } else { " ".repeat(pad) };
            let cells: Vec<String> = row.iter().map(|v| format!("{:>width$}", cell(*v))).collect();
            println!("{label} [ {} ]", self.paint(stage, &cells.join(" ")));
        }
    }
}

fn column(v: &[f32]) -> Vec<Vec<f32>> {
    v.iter().map(|x| vec![*x]).collect()
}

fn trace_json(t: &Trace, model: &ByHandModel) -> Value {
    json!({
        "text": t.text, "tokens": t.tokens, "token_ids": t.token_ids,
        "X": t.x, "W": model.weights(), "b": model.bias(), "Z": t.z, "H": t.h,
        "pooled": t.pooled, "P": model.projection(), "index_vector": t.index_vector,
    })
}

fn print_trace(p: &Painter, t: &Trace, model: &ByHandModel, stage_words: Stage, stage_enc: Stage, stage_idx: Stage) {
    println!("  tokens {:?} -> ids {:?}", t.tokens, t.token_ids);
    p.matrix(stage_words, "X =", Some(&t.tokens), &t.x);
    println!("  encode: H = ReLU(W X + b)");
    p.matrix(stage_enc, "W =", None, &model.weights());
    p.matrix(stage_enc, "b =", None, &column(&model.bias()));
    p.matrix(stage_enc, "W X + b =", Some(&t.tokens), &t.z);
    p.matrix(stage_enc, "H =", Some(&t.tokens), &t.h);
    println!("  mean pooling over the words:");
    p.matrix(stage_enc, "pooled =", None, &column(&t.pooled));
    println!("  index: 2-d vector = P x pooled");
    p.matrix(stage_idx, "P =", None, &model.projection());
    p.matrix(stage_idx, "vector =", None, &column(&t.index_vector));
}

pub fn run(json_out: bool) -> Result<()> {
    let model = ByHandModel::classroom();
    let traces: Vec<Trace> = DATASET.iter().map(|s| model.trace(s)).collect::<Result<_, _>>()?;
    let query = model.trace(QUERY)?;

    // Store and search with the real engine, in a throwaway data folder.
    let dir = std::env::temp_dir().join(format!("quiver-walkthrough-{}", std::process::id()));
    let _ = std::fs::remove_dir_all(&dir);
    let result = (|| -> Result<(Vec<(u64, f32)>, &'static str)> {
        let db = Database::open(&dir)?;
        let c = db.create_collection("walkthrough", CollectionConfig::new(2, Metric::Dot))?;
        let points = traces
            .iter()
            .enumerate()
            .map(|(i, t)| {
                Point::new(i as u64 + 1, t.index_vector.clone()).with_payload(json!({"text": t.text}).as_object().expect("object").clone())
            })
            .collect();
        c.upsert(points)?;
        let hits = c.search(&SearchRequest::new(query.index_vector.clone(), DATASET.len()))?;
        let scores = hits
            .iter()
            .map(|h| match h.id {
                quiver::PointId::Num(n) => Ok((n, h.score)),
                quiver::PointId::Uuid(_) => anyhow::bail!("unexpected id"),
            })
            .collect::<Result<Vec<_>>>()?;
        Ok((scores, quiver::kernel_isa()))
    })();
    let _ = std::fs::remove_dir_all(&dir);
    let (hits, isa) = result.context("running the walkthrough on the engine")?;
    let mut scores_by_point = vec![0.0f32; DATASET.len()];
    for (id, s) in &hits {
        scores_by_point[*id as usize - 1] = *s;
    }
    let (best_id, best_score) = hits[0];
    let best_text = DATASET[best_id as usize - 1];

    if json_out {
        let out = json!({
            "dataset": DATASET, "query": QUERY,
            "vocabulary": model.vocabulary(), "word_embeddings": model.embedding_table(),
            "sentences": traces.iter().enumerate().map(|(i, t)| {
                let mut v = trace_json(t, &model);
                v["point_id"] = json!(i + 1);
                v
            }).collect::<Vec<_>>(),
            "query_trace": trace_json(&query, &model),
            "dot_products": {
                "stored_vectors": traces.iter().map(|t| t.index_vector.clone()).collect::<Vec<_>>(),
                "query_vector": query.index_vector, "scores": scores_by_point, "computed_by": format!("exact search, kernels {isa}"),
            },
            "nearest": {"point_id": best_id, "text": best_text, "score": best_score},
        });
        println!("{out}");
        return Ok(());
    }

    let p = Painter {
        color: std::io::stdout().is_terminal() && std::env::var_os("NO_COLOR").is_none(),
    };
    println!("Vector database by hand, computed by Quiver");
    println!("\n[1] dataset: three sentences of three words");
    for (i, s) in DATASET.iter().enumerate() {
        println!("  {}: {s:?}", i + 1);
    }
    println!("\n[2] word embeddings: one 4-d column per word of the 22-word vocabulary");
    let vocab: Vec<String> = model.vocabulary().iter().map(|s| s.to_string()).collect();
    p.matrix(Stage::Embedding, "E =", Some(&vocab), &model.embedding_table());
    for (i, t) in traces.iter().enumerate() {
        let steps = if i == 0 { "[2]-[5]" } else { "[6]-[7] the same for" };
        println!("\n{steps} sentence {}: {:?}", i + 1, t.text);
        print_trace(&p, t, &model, Stage::Embedding, Stage::Encoding, Stage::Indexing);
        println!(
            "  stored as point {} in a throwaway collection (dot product; removed at the end)",
            i + 1
        );
    }
    println!("\n[8] query {QUERY:?} goes through the same steps [2]-[5]");
    print_trace(&p, &query, &model, Stage::Query, Stage::Query, Stage::Query);
    println!("\n[9] dot products: stored vectors (one row per point) times the query vector");
    let stored: Vec<Vec<f32>> = traces.iter().map(|t| t.index_vector.clone()).collect();
    p.matrix(Stage::Indexing, "V =", None, &stored);
    p.matrix(Stage::Query, "q =", None, &column(&query.index_vector));
    p.matrix(Stage::Query, "V q =", None, &column(&scores_by_point));
    println!("  (computed by Quiver's exact search over the collection, kernels {isa})");
    println!("\n[10] nearest neighbour by linear scan: point {best_id}, {best_text:?} (score {best_score:.2})");
    for note in tie_notes(&traces) {
        println!("     {note}");
    }
    Ok(())
}

/// Why two stored sentences get the same score: their 2-d index vectors are equal. Either they
/// were already equal after pooling, or the projection mapped different sentence embeddings to
/// the same point (the 2-d index keeps only part of what tells sentences apart).
fn tie_notes(traces: &[Trace]) -> Vec<String> {
    let fmt = |v: &[f32]| format!("[{}]", v.iter().map(|x| format!("{x:.2}")).collect::<Vec<_>>().join(", "));
    let mut notes = Vec::new();
    for i in 0..traces.len() {
        for j in i + 1..traces.len() {
            let (a, b) = (&traces[i], &traces[j]);
            if a.index_vector != b.index_vector {
                continue;
            }
            notes.push(format!("points {} and {} tie ({:?} and {:?}):", i + 1, j + 1, a.text, b.text));
            if a.pooled == b.pooled {
                notes.push(format!("  their sentence embeddings are equal already, {}.", fmt(&a.pooled)));
            } else {
                notes.push(format!("  their sentence embeddings differ, {} and", fmt(&a.pooled)));
                notes.push(format!(
                    "  {}, but the projection P maps both to {}:",
                    fmt(&b.pooled),
                    fmt(&a.index_vector)
                ));
                notes.push("  a 2-d index keeps only part of what tells sentences apart.".to_string());
            }
        }
    }
    notes
}
