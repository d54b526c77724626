//! `quiver ingest` and `quiver context`: documents in, chunks stored, context out.
//!
//! Ingestion: files (.txt, .md, .html) and folders are read, HTML is reduced to its text, the
//! text is split into chunks of about `max_tokens` model tokens that end at sentence ends and
//! prefer paragraph ends, with about `overlap` tokens repeated between neighbours. Each chunk is
//! embedded and stored with its source path, chunk number, character offsets and the file's
//! content hash. Chunk ids are derived from (path, chunk number), so re-ingesting replaces them:
//! an unchanged file is skipped, a changed file's chunks are upserted (one atomic batch) and its
//! surplus old chunks deleted, and `--prune` deletes the chunks of files that no longer exist.

use super::{text, Ctx, ModelDirArg};
use crate::render::{count, Message, Output};
use anyhow::{bail, Context, Result};
use clap::Args;
use indicatif::{ProgressBar, ProgressStyle};
use quiver::{Collection, Filter, Payload, Point, PointId, PointSelector, ScrollRequest};
use quiver_embed::{Embedder, MiniLm};
use serde_json::{json, Value};
use std::collections::BTreeMap;
use std::path::{Path, PathBuf};

use quiver::chunking::{chunk, chunk_id, content_hash, html_text, kind_of};
use quiver::context::{CHUNK_KEY, SOURCE_KEY};
const HASH_KEY: &str = "file_hash";

#[derive(Args)]
pub struct IngestArgs {
    /// The collection's name.
    collection: String,
    /// Files (.txt, .md, .html) and folders.
    #[arg(required = true)]
    paths: Vec<PathBuf>,
    /// Chunk size in model tokens.
    #[arg(long, default_value_t = 200)]
    max_tokens: usize,
    /// Tokens repeated between neighbouring chunks.
    #[arg(long, default_value_t = 40)]
    overlap: usize,
    /// Delete the chunks of files that no longer exist.
    #[arg(long)]
    prune: bool,
    #[command(flatten)]
    model: ModelDirArg,
}

pub fn command(ctx: &Ctx, a: &IngestArgs) -> Result<Box<dyn Output>> {
    let db = ctx.db()?;
    let c = db.collection(&a.collection)?;
    let model = text::collection_embedder(&c, &a.model)?;
    let opts = IngestOptions {
        max_tokens: a.max_tokens,
        overlap: a.overlap,
        prune: a.prune,
    };
    let r = ingest(&c, &model, &a.paths, &opts, ctx.json)?;
    let rate = r.chunks_written as f64 / r.seconds.max(1e-9);
    let pruned = if r.pruned_files > 0 {
        format!(", {} pruned", count(r.pruned_files, "missing file"))
    } else {
        String::new()
    };
    Ok(Box::new(Message::new(
        json!({"files": r.files, "unchanged": r.unchanged, "updated": r.updated, "chunks_written": r.chunks_written,
               "chunks_deleted": r.chunks_deleted, "pruned_files": r.pruned_files, "seconds": r.seconds, "chunks_per_s": rate}),
        format!(
            "{}: {} updated, {} unchanged; {} written ({rate:.1}/s), {} deleted{pruned}; {:.1} s",
            count(r.files, "file"),
            r.updated,
            r.unchanged,
            count(r.chunks_written, "chunk"),
            r.chunks_deleted,
            r.seconds
        ),
    )))
}

/// The files under `paths` that ingestion reads, sorted; hidden files and folders are skipped.
pub fn collect_files(paths: &[PathBuf]) -> Result<Vec<PathBuf>> {
    fn walk(p: &Path, out: &mut Vec<PathBuf>) -> Result<()> {
        let meta = std::fs::metadata(p).with_context(|| format!("cannot read {}", p.display()))?;
        if meta.is_dir() {
            let mut entries: Vec<PathBuf> = std::fs::read_dir(p)
                .with_context(|| format!("cannot list {}", p.display()))?
                .filter_map(|e| e.ok().map(|e| e.path()))
                .filter(|e| !e.file_name().is_some_and(|n| n.to_string_lossy().starts_with('.')))
                .collect();
            entries.sort();
            for e in entries {
                walk(&e, out)?;
            }
        } else if kind_of(p).is_some() {
            // One canonical path per file: `docs`, `./docs`, `../x/docs` and `/abs/x/docs` are
            // the same source, so re-ingesting from elsewhere never duplicates chunks.
            out.push(std::fs::canonicalize(p).with_context(|| format!("cannot resolve {}", p.display()))?);
        }
        Ok(())
    }
    let mut out = Vec::new();
    for p in paths {
        if std::fs::metadata(p).is_ok_and(|m| m.is_file()) && kind_of(p).is_none() {
            bail!("{}: not a .txt, .md or .html file", p.display());
        }
        walk(p, &mut out)?;
    }
    out.sort();
    out.dedup();
    Ok(out)
}

/// The text ingestion reads from a file.
pub fn read_text(p: &Path) -> Result<String> {
    let raw = std::fs::read(p).with_context(|| format!("cannot read {}", p.display()))?;
    let text = String::from_utf8(raw).with_context(|| format!("{} is not UTF-8 text", p.display()))?;
    Ok(if kind_of(p) == Some("html") { html_text(&text) } else { text })
}

/// Every stored chunk: source -> (chunk number -> file hash).
fn stored_chunks(c: &Collection) -> Result<BTreeMap<String, BTreeMap<u64, String>>> {
    let mut out: BTreeMap<String, BTreeMap<u64, String>> = BTreeMap::new();
    let filter = Filter::from_json(&json!({"must": [{"key": SOURCE_KEY, "values_count": {"gte": 1}}]}))?;
    let mut offset = None;
    loop {
        let page = c.scroll(&ScrollRequest {
            offset,
            limit: 1000,
            filter: Some(filter.clone()),
            with_payload: true,
            with_vector: false,
        })?;
        for r in &page.points {
            let p = r.payload.as_ref();
            let get = |k: &str| p.and_then(|p| p.get(k));
            if let (Some(src), Some(n)) = (get(SOURCE_KEY).and_then(Value::as_str), get(CHUNK_KEY).and_then(Value::as_u64)) {
                let hash = get(HASH_KEY).and_then(Value::as_str).unwrap_or("").to_string();
                out.entry(src.to_string()).or_default().insert(n, hash);
            }
        }
        match page.next_offset {
            Some(n) => offset = Some(n),
            None => return Ok(out),
        }
    }
}

pub struct IngestOptions {
    pub max_tokens: usize,
    pub overlap: usize,
    pub prune: bool,
}

/// What an ingestion did.
#[derive(Debug, Default)]
pub struct IngestReport {
    pub files: usize,
    pub unchanged: usize,
    pub updated: usize,
    pub chunks_written: usize,
    pub chunks_deleted: usize,
    pub pruned_files: usize,
    pub seconds: f64,
}

/// Ingests `paths` into the text collection `c` (see the module documentation).
pub fn ingest(c: &Collection, model: &MiniLm, paths: &[PathBuf], opts: &IngestOptions, quiet: bool) -> Result<IngestReport> {
    let t0 = std::time::Instant::now();
    if c.config().embedder.is_none() {
        bail!(
            "collection {:?} has no embedder: create it with --model all-minilm-l6-v2 to ingest documents",
            c.name()
        );
    }
    // Chunks are found by source: keep that cheap.
    if !c.info().payload_indexes.iter().any(|(k, _, _, _)| k == SOURCE_KEY) {
        c.create_payload_index(SOURCE_KEY, quiver::PayloadIndexType::Keyword)?;
    }
    let files = collect_files(paths)?;
    let stored = stored_chunks(c)?;
    let mut report = IngestReport {
        files: files.len(),
        ..IngestReport::default()
    };
    let count = |s: &str| {
        model
            .tokenize(s)
            .map(|(_, ids)| ids.len().saturating_sub(2))
            .unwrap_or(s.split_whitespace().count())
    };
    // First pass: which files changed, and how many chunks they make (the progress bar counts
    // chunks, the unit of the work: a file of 400 chunks is not one step like a file of 1).
    let mut todo: Vec<(&PathBuf, usize)> = Vec::new();
    for path in &files {
        let source = path.to_string_lossy();
        let text = read_text(path)?;
        let hash = content_hash(&text);
        let n = chunk(&text, opts.max_tokens, opts.overlap, &count).len();
        let old = stored.get(source.as_ref());
        if old.is_some_and(|o| o.len() == n && o.values().all(|h| *h == hash)) {
            report.unchanged += 1;
        } else {
            todo.push((path, n));
        }
    }
    let total: usize = todo.iter().map(|(_, n)| n).sum();
    let bar = if quiet {
        ProgressBar::hidden()
    } else {
        ProgressBar::new(total as u64)
    };
    bar.set_style(
        ProgressStyle::with_template("{bar:30} {pos}/{len} chunks {per_sec}, {msg} [{elapsed} < {eta}]").expect("a valid template"),
    );
    // Without a terminal (a log, CI), a plain line about every tenth of the chunks instead of a bar.
    let plain = !quiet && !std::io::IsTerminal::is_terminal(&std::io::stderr());
    let step = total.div_ceil(10).max(1);
    let mut next_line = step;
    for (i, &(path, _)) in todo.iter().enumerate() {
        let source = path.to_string_lossy().to_string();
        let text = read_text(path)?;
        let hash = content_hash(&text);
        let chunks = chunk(&text, opts.max_tokens, opts.overlap, &count);
        let old = stored.get(&source);
        bar.set_message(format!("file {}/{}", i + 1, todo.len()));
        // Byte offsets to character offsets.
        let char_at = |b: usize| text[..b].chars().count();
        let texts: Vec<&str> = chunks.iter().map(|ch| &text[ch.start..ch.end]).collect();
        let mut vectors = Vec::with_capacity(texts.len());
        for batch in texts.chunks(32) {
            vectors.extend(model.embed(batch)?);
            bar.inc(batch.len() as u64);
            let done = report.chunks_written + vectors.len();
            if plain && (done >= next_line || done == total) {
                next_line = done + step;
                eprintln!(
                    "ingest: {done}/{total} chunks embedded, file {}/{} ({} unchanged)",
                    i + 1,
                    todo.len(),
                    report.unchanged
                );
            }
        }
        let points: Vec<Point> = chunks
            .iter()
            .zip(vectors)
            .enumerate()
            .map(|(n, (ch, v))| {
                let mut p = Payload::new();
                p.insert(
                    quiver::collection::DOCUMENT_KEY.into(),
                    Value::String(text[ch.start..ch.end].to_string()),
                );
                p.insert(SOURCE_KEY.into(), Value::String(source.clone()));
                p.insert(CHUNK_KEY.into(), json!(n));
                p.insert("chunks".into(), json!(chunks.len()));
                p.insert("start".into(), json!(char_at(ch.start)));
                p.insert("end".into(), json!(char_at(ch.end)));
                p.insert(HASH_KEY.into(), Value::String(hash.clone()));
                Point::new(chunk_id(&source, n), v).with_payload(p)
            })
            .collect();
        report.chunks_written += points.len();
        if !points.is_empty() {
            c.upsert(points)?;
        }
        // Old chunks past the new count go after the new ones are stored.
        let surplus: Vec<PointId> = old.map_or(Vec::new(), |o| {
            o.keys()
                .filter(|&&n| n as usize >= chunks.len())
                .map(|&n| chunk_id(&source, n as usize))
                .collect()
        });
        if !surplus.is_empty() {
            report.chunks_deleted += surplus.len();
            c.delete(&PointSelector::Ids(surplus))?;
        }
        report.updated += 1;
    }
    // Chunks stored under another spelling of a file ingested now (a relative path, from
    // before sources were canonical) are duplicates of its chunks: remove them.
    let current: std::collections::HashSet<&Path> = files.iter().map(PathBuf::as_path).collect();
    for (source, chunks) in &stored {
        let alias = !current.contains(Path::new(source))
            && std::fs::canonicalize(source).is_ok_and(|canonical| current.contains(canonical.as_path()));
        if alias {
            report.chunks_deleted += chunks.len();
            c.delete(&PointSelector::Ids(chunks.keys().map(|&n| chunk_id(source, n as usize)).collect()))?;
        }
    }
    if opts.prune {
        for (source, chunks) in &stored {
            if !Path::new(source).exists() {
                report.pruned_files += 1;
                report.chunks_deleted += chunks.len();
                c.delete(&PointSelector::Ids(chunks.keys().map(|&n| chunk_id(source, n as usize)).collect()))?;
            }
        }
    }
    bar.finish_and_clear();
    report.seconds = t0.elapsed().as_secs_f64();
    Ok(report)
}
