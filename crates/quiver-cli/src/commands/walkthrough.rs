//! `quiver walkthrough`: the exercise "Vector Database by Hand", computed by the real engine.
//! The classroom model (quiver-embed) turns each sentence into a 2-d index vector; the vectors
//! are stored in a real collection and the query is answered by the same exact search users
//! get. Every matrix of every step is printed the way the sheet draws it: matrices side by side,
//! coloured by stage, within 80 columns, with a plot of the 2-d index; `--step N` shows one
//! step; `--json` gives every intermediate matrix.

use super::Ctx;
use crate::render::{Message, Output};
use anyhow::{Context, Result};
use clap::Args;
use quiver_embed::{ByHandModel, Trace};
use std::io::IsTerminal;

use quiver_server::steps::{WALKTHROUGH_DATASET as DATASET, WALKTHROUGH_QUERY as QUERY};

/// The terminal width the walkthrough is laid out for.
const WIDTH: usize = 80;

#[derive(Args)]
pub struct WalkthroughArgs {
    /// Show only this step of the sheet (1 to 10).
    #[arg(long, value_parser = clap::value_parser!(u8).range(1..=10))]
    step: Option<u8>,
}

#[derive(Clone, Copy)]
enum Stage {
    Embedding,
    Encoding,
    Indexing,
    Query,
    Plain,
}

/// A named matrix laid out as lines of plain text, painted when printed.
struct Block {
    stage: Stage,
    lines: Vec<String>,
}

impl Block {
    /// `name` above a matrix with aligned columns and optional column labels.
    fn matrix(stage: Stage, name: &str, cols: Option<&[String]>, rows: &[Vec<f32>]) -> Block {
        let cell = |v: f32| if v.fract() == 0.0 { format!("{v:.0}") } else { format!("{v:.2}") };
        let width = rows
            .iter()
            .flatten()
            .map(|v| cell(*v).len())
            .chain(cols.into_iter().flatten().map(|c| c.len()))
            .max()
            .unwrap_or(1);
        let mut lines = vec![name.to_string()];
        if let Some(cols) = cols {
            let header: Vec<String> = cols.iter().map(|c| format!("{c:>width$}")).collect();
            lines.push(format!("  {} ", header.join(" ")));
        }
        for row in rows {
            let cells: Vec<String> = row.iter().map(|v| format!("{:>width$}", cell(*v))).collect();
            lines.push(format!("[ {} ]", cells.join(" ")));
        }
        Block { stage, lines }
    }

    fn text(stage: Stage, lines: Vec<String>) -> Block {
        Block { stage, lines }
    }

    fn width(&self) -> usize {
        self.lines.iter().map(|l| l.chars().count()).max().unwrap_or(0)
    }
}

/// Lays blocks out side by side, as many per row as fit in `WIDTH`, painting each by stage.
struct Sheet {
    color: bool,
    out: Vec<String>,
}

impl Sheet {
    fn paint(&self, stage: Stage, text: &str) -> String {
        let code = match stage {
            Stage::Embedding => "33",
            Stage::Encoding => "32",
            Stage::Indexing => "34",
            Stage::Query => "31",
            Stage::Plain => return text.to_string(),
        };
        if self.color {
            format!("\x1b[{code}m{text}\x1b[0m")
        } else {
            text.to_string()
        }
    }

    fn line(&mut self, text: impl Into<String>) {
        self.out.push(text.into());
    }

    fn row(&mut self, blocks: Vec<Block>) {
        const GAP: usize = 3;
        let mut rows: Vec<Vec<Block>> = vec![Vec::new()];
        let mut used = 0;
        for b in blocks {
            let w = b.width();
            let last = rows.last_mut().expect("one row");
            if !last.is_empty() && used + GAP + w > WIDTH - 2 {
                rows.push(vec![b]);
                used = w;
            } else {
                used += if last.is_empty() { w } else { GAP + w };
                last.push(b);
            }
        }
        for row in rows {
            let height = row.iter().map(|b| b.lines.len()).max().unwrap_or(0);
            for i in 0..height {
                let mut line = String::from("  ");
                for (j, b) in row.iter().enumerate() {
                    let cell = b.lines.get(i).map(String::as_str).unwrap_or("");
                    let pad = b.width() - cell.chars().count();
                    line.push_str(&self.paint(b.stage, cell));
                    if j + 1 < row.len() {
                        line.push_str(&" ".repeat(pad + GAP));
                    }
                }
                self.out.push(line.trim_end().to_string());
            }
            self.out.push(String::new());
        }
    }
}

fn column(v: &[f32]) -> Vec<Vec<f32>> {
    v.iter().map(|x| vec![*x]).collect()
}

/// Steps [2]-[5] for one sentence, as the sheet draws them: words, then W X + b and the ReLU,
/// then pooling, then the projection.
fn sheet_trace(s: &mut Sheet, t: &Trace, model: &ByHandModel, query: bool, steps: &[u8]) {
    let st = |stage| if query { Stage::Query } else { stage };
    if steps.contains(&2) {
        s.line(format!("  tokens {:?} -> vocabulary ids {:?}", t.tokens, t.token_ids));
        s.row(vec![Block::matrix(st(Stage::Embedding), "X (word columns)", Some(&t.tokens), &t.x)]);
    }
    if steps.contains(&3) {
        s.line("  encode: H = ReLU(W X + b)");
        s.row(vec![
            Block::matrix(st(Stage::Encoding), "W", None, &model.weights()),
            Block::matrix(st(Stage::Embedding), "X", Some(&t.tokens), &t.x),
            Block::matrix(st(Stage::Encoding), "b", None, &column(&model.bias())),
            Block::matrix(st(Stage::Encoding), "W X + b", Some(&t.tokens), &t.z),
            Block::matrix(st(Stage::Encoding), "H = ReLU", Some(&t.tokens), &t.h),
        ]);
    }
    let pooled = Block::matrix(st(Stage::Encoding), "mean", None, &column(&t.pooled));
    let vector = Block::matrix(st(Stage::Indexing), "vector", None, &column(&t.index_vector));
    match (steps.contains(&4), steps.contains(&5)) {
        (true, true) => {
            s.line("  mean pooling over the words, then the 2-d index vector = P x mean");
            s.row(vec![
                Block::matrix(st(Stage::Encoding), "H", Some(&t.tokens), &t.h),
                pooled,
                Block::matrix(st(Stage::Indexing), "P", None, &model.projection()),
                vector,
            ]);
        }
        (true, false) => {
            s.line("  mean pooling over the words (the columns of H)");
            s.row(vec![Block::matrix(st(Stage::Encoding), "H", Some(&t.tokens), &t.h), pooled]);
        }
        (false, true) => {
            s.line("  index: the 2-d vector = P x mean");
            s.row(vec![
                Block::matrix(st(Stage::Indexing), "P", None, &model.projection()),
                pooled,
                vector,
            ]);
        }
        (false, false) => {}
    }
}

/// An ASCII plot of the 2-d index: stored points by number, the query as `q` and its nearest
/// neighbour in brackets when given. Points that fall on the same spot are listed together
/// (`1,2`: the tie of step [10]).
fn plot(stored: &[Vec<f32>], query: Option<(&[f32], usize)>) -> Vec<String> {
    const W: usize = 41;
    const H: usize = 13;
    let all: Vec<&[f32]> = stored.iter().map(Vec::as_slice).chain(query.map(|(q, _)| q)).collect();
    let range = |axis: usize| {
        let lo = all.iter().map(|v| v[axis]).fold(0.0f32, f32::min).floor();
        let hi = all.iter().map(|v| v[axis]).fold(0.0f32, f32::max).ceil();
        (lo, hi.max(lo + 1.0))
    };
    let ((x0, x1), (y0, y1)) = (range(0), range(1));
    let col = |x: f32| (((x - x0) / (x1 - x0)) * (W - 1) as f32).round() as usize;
    let row = |y: f32| (((y1 - y) / (y1 - y0)) * (H - 1) as f32).round() as usize;
    let mut grid = vec![vec![' '; W]; H];
    let (c0, r0) = (col(0.0), row(0.0));
    for (r, line) in grid.iter_mut().enumerate() {
        line[c0] = '|';
        if r == r0 {
            for (c, ch) in line.iter_mut().enumerate() {
                *ch = if c == c0 { '+' } else { '-' };
            }
        }
    }
    let mut labels: std::collections::BTreeMap<(usize, usize), Vec<usize>> = Default::default();
    for (i, v) in stored.iter().enumerate() {
        labels.entry((row(v[1]), col(v[0]))).or_default().push(i + 1);
    }
    for (&(r, c), ids) in &labels {
        let text = ids.iter().map(|n| n.to_string()).collect::<Vec<_>>().join(",");
        let text = match query {
            Some((_, best)) if ids.contains(&(best + 1)) => format!("[{text}]"),
            _ => text,
        };
        for (k, ch) in text.chars().enumerate() {
            if c + k < W {
                grid[r][c + k] = ch;
            }
        }
    }
    if let Some((q, _)) = query {
        grid[row(q[1])][col(q[0])] = 'q';
    }
    let mut lines = vec![format!("y {y1}")];
    lines.extend(
        grid.into_iter()
            .map(|r| format!("  {}", r.into_iter().collect::<String>().trim_end())),
    );
    lines.push(format!("  x from {x0} to {x1}, y from {y0} to {y1}"));
    lines.push(match query {
        Some(_) => "  1-3: the stored points, q: the query, [n]: its nearest".to_string(),
        None => "  1-3: the stored points".to_string(),
    });
    lines
}

pub fn run(ctx: &Ctx, a: &WalkthroughArgs) -> Result<Box<dyn Output>> {
    let w = quiver_server::steps::walkthrough(QUERY).context("running the walkthrough on the engine")?;
    let model = &w.model;
    let traces = &w.sentences;
    let query = &w.query;
    let scores_by_point = &w.scores;
    let isa = w.kernels;
    let (best_id, best_score) = w.nearest;
    let best_text = DATASET[best_id as usize - 1];
    let json = w.to_json();
    if ctx.json {
        return Ok(Box::new(Message::new(json, String::new())));
    }

    let show = |n: u8| a.step.is_none_or(|s| s == n);
    let mut s = Sheet {
        color: std::io::stdout().is_terminal() && std::env::var_os("NO_COLOR").is_none(),
        out: Vec::new(),
    };
    if a.step.is_none() {
        s.line("Vector database by hand, computed by Quiver");
        s.line("");
    }
    if show(1) {
        s.line("[1] dataset: three sentences of three words");
        for (i, d) in DATASET.iter().enumerate() {
            s.line(format!("  {}: {d:?}", i + 1));
        }
        s.line("");
    }
    if show(2) {
        s.line("[2] word embeddings: one 4-d column per word of the 22-word vocabulary");
        let vocab: Vec<String> = model.vocabulary().iter().map(|w| w.to_string()).collect();
        let table = model.embedding_table();
        let half = vocab.len().div_ceil(2);
        for (part, range) in [(1, 0..half), (2, half..vocab.len())] {
            let rows: Vec<Vec<f32>> = table.iter().map(|r| r[range.clone()].to_vec()).collect();
            s.row(vec![Block::matrix(
                Stage::Embedding,
                &format!("E, words {}-{} of {}", range.start + 1, range.end, vocab.len()),
                Some(&vocab[range.clone()]),
                &rows,
            )]);
            let _ = part;
        }
    }
    let first: Vec<u8> = (2..=5).filter(|&n| show(n)).collect();
    if !first.is_empty() {
        let what = if a.step.is_some() { "" } else { "[2]-[5] " };
        s.line(format!("{what}sentence 1: {:?}", traces[0].text));
        sheet_trace(&mut s, &traces[0], model, false, &first);
    }
    if show(6) {
        s.line("[6] the same steps for the other sentences");
        for (i, t) in traces.iter().enumerate().skip(1) {
            s.line(format!("  sentence {}: {:?} -> ids {:?}", i + 1, t.text, t.token_ids));
            s.row(vec![
                Block::matrix(Stage::Embedding, "X", Some(&t.tokens), &t.x),
                Block::matrix(Stage::Encoding, "H", Some(&t.tokens), &t.h),
                Block::matrix(Stage::Encoding, "mean", None, &column(&t.pooled)),
                Block::matrix(Stage::Indexing, "vector", None, &column(&t.index_vector)),
            ]);
        }
    }
    let stored: Vec<Vec<f32>> = traces.iter().map(|t| t.index_vector.clone()).collect();
    if show(7) {
        s.line("[7] the index: the 2-d vectors, stored as points of a collection (dot product)");
        let labels: Vec<String> = vec!["x".into(), "y".into()];
        s.row(vec![
            Block::matrix(Stage::Indexing, "V (point 1-3)", Some(&labels), &stored),
            Block::text(Stage::Indexing, plot(&stored, None)),
        ]);
    }
    if show(8) {
        s.line(format!("[8] query {QUERY:?} goes through the same steps [2]-[5]"));
        sheet_trace(&mut s, query, model, true, &[2, 3, 4, 5]);
    }
    if show(9) {
        s.line("[9] dot products: stored vectors (one row per point) times the query vector");
        s.row(vec![
            Block::matrix(Stage::Indexing, "V", None, &stored),
            Block::matrix(Stage::Query, "q", None, &column(&query.index_vector)),
            Block::text(Stage::Plain, vec![String::new(), String::new(), "=".into()]),
            Block::matrix(Stage::Query, "V q", None, &column(scores_by_point)),
        ]);
        s.line(format!("  (computed by Quiver's exact search over the collection, kernels {isa})"));
        s.line("");
    }
    if show(10) {
        s.line(format!(
            "[10] nearest neighbour by linear scan: point {best_id}, {best_text:?} (score {best_score:.2})"
        ));
        for note in tie_notes(traces) {
            s.line(format!("     {note}"));
        }
        s.line("");
        for l in plot(&stored, Some((&query.index_vector, best_id as usize - 1))) {
            s.line(l);
        }
    }
    while s.out.last().is_some_and(|l| l.is_empty()) {
        s.out.pop();
    }
    Ok(Box::new(Message::new(json, s.out.join("\n"))))
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
