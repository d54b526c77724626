//! `quiver`: the command line over the Quiver library. Glue only: parse arguments, read input
//! files, call the library, print results for people (default) or scripts (`--json`).
//! Exit status: 0 on success, 1 on any error (printed as one line on stderr), 2 on bad usage.

use anyhow::{bail, Context, Result};
use clap::{Args, Parser, Subcommand};
use indicatif::{ProgressBar, ProgressStyle};
use quiver::{
    npy, CollectionConfig, Database, Durability, Filter, Metric, PayloadIndexType, Point, PointId, PointSelector, Record, ScoredPoint,
    ScrollRequest, SearchRequest,
};
use serde_json::{json, Value};
use std::io::{BufRead, Read};
use std::path::{Path, PathBuf};
use std::time::Instant;

#[derive(Parser)]
#[command(
    name = "quiver",
    version,
    about = "Quiver: an embedded vector database. Data lives in a local folder; no server needed."
)]
struct Cli {
    /// The data folder.
    #[arg(long, global = true, env = "QUIVER_DATA_DIR", default_value = "./quiver-data")]
    data_dir: PathBuf,
    /// Print JSON for scripts instead of tables for people.
    #[arg(long, global = true)]
    json: bool,
    #[command(subcommand)]
    command: Command,
}

/// The approximate index of a new collection.
#[derive(clap::Args)]
struct IndexArgs {
    /// HNSW neighbours per node (twice that on the bottom level).
    #[arg(long, default_value_t = 16)]
    m: usize,
    /// HNSW candidate list while building.
    #[arg(long, default_value_t = 100)]
    ef_construct: usize,
    /// Default search list size (a search can override it with --ef).
    #[arg(long, default_value_t = 128)]
    ef: usize,
    /// Below this many points every search is an exact scan and no index is built.
    #[arg(long, default_value_t = 10_000)]
    index_threshold: usize,
    /// Codes the graph is searched with: int8 (a quarter of the vectors' size) | none (a
    /// second full-precision copy) | binary (1/32, high dimensions). Candidates are always
    /// rescored with the full vectors.
    /// [default: int8, none for manhattan]
    #[arg(long)]
    quantization: Option<String>,
    /// The recall@k a search without --ef aims for: the collection measures its index on
    /// sampled searches and uses the smallest ef that reached it (0 = always --ef).
    #[arg(long, default_value_t = quiver::TARGET_RECALL_DEFAULT)]
    target_recall: f32,
    /// Never build an approximate index (every search is exact).
    #[arg(long)]
    no_index: bool,
}

impl IndexArgs {
    fn config(&self, metric: Metric) -> Result<quiver::IndexConfig> {
        let quantization = match &self.quantization {
            None => quiver::IndexConfig::default_for(metric).quantization,
            Some(q) => quiver::Quantization::parse(q).with_context(|| format!("--quantization must be none, int8 or binary, got {q:?}"))?,
        };
        Ok(quiver::IndexConfig {
            enabled: !self.no_index,
            m: self.m,
            ef_construct: self.ef_construct,
            ef: self.ef,
            full_scan_threshold: self.index_threshold,
            quantization,
            target_recall: self.target_recall,
        })
    }
}

#[derive(Subcommand)]
enum Command {
    /// Create a collection.
    Create {
        /// The collection's name.
        collection: String,
        /// Vector dimension (1..=65536); with --model it comes from the model.
        #[arg(long, required_unless_present = "model")]
        dim: Option<usize>,
        /// Make a text collection embedded by this model (all-minilm-l6-v2): `quiver add` and
        /// `search --text` then take text.
        #[arg(long)]
        model: Option<String>,
        /// cosine | dot | euclid | manhattan
        #[arg(long, default_value = "cosine")]
        metric: String,
        /// Group commit: fsync at most every N milliseconds instead of on every write (writes
        /// still survive a process crash; a power loss may lose the last N ms).
        #[arg(long)]
        group_commit_ms: Option<u32>,
        #[command(flatten)]
        index: IndexArgs,
    },
    /// Insert or replace points from a JSON-lines file or a .npy float32 matrix, as one atomic batch.
    Upsert {
        /// The collection's name.
        collection: String,
        /// `.npy` (ids start at --start-id) or JSON lines: {"id":1,"vector":[..],"payload":{..}}; `-` reads JSON lines from stdin.
        #[arg(long)]
        file: PathBuf,
        /// First id for rows of a .npy file.
        #[arg(long, default_value_t = 0)]
        start_id: u64,
    },
    /// Nearest-neighbour search: through the HNSW index when the collection has one (with the
    /// ef that reaches its target recall), else an exact scan; `--exact` always scans. Give the
    /// query as --vector, --text (text collections) or --file (many queries).
    Search {
        /// The collection's name.
        collection: String,
        /// One query vector as JSON, e.g. '[0.1, 0.2]'.
        #[arg(long, conflicts_with_all = ["file", "text"])]
        vector: Option<String>,
        /// A text query (text collections): embedded with the collection's model.
        #[arg(long, conflicts_with = "file")]
        text: Option<String>,
        /// The model folder for --text (default: the usual search).
        #[arg(long)]
        model_dir: Option<PathBuf>,
        /// Many queries: a .npy float32 matrix, one query per row.
        #[arg(long)]
        file: Option<PathBuf>,
        /// Results to return.
        #[arg(short = 'k', long = "limit", visible_alias = "k", default_value_t = 10, value_parser = parse_limit)]
        k: usize,
        /// Skip this many best results first.
        #[arg(long, default_value_t = 0)]
        offset: usize,
        #[command(flatten)]
        filter: FilterArg,
        /// Keep only results at least this similar (cosine, dot) or at most this far (euclid, manhattan).
        #[arg(long)]
        threshold: Option<f32>,
        /// The index's search list size, 1 to 4096 (larger: better recall, slower).
        #[arg(long, value_parser = parse_ef)]
        ef: Option<usize>,
        /// Score every point (the exact oracle), even when an index exists.
        #[arg(long)]
        exact: bool,
        /// With --text: fuse the dense ranking with the BM25 ranking of the same words
        /// (reciprocal rank fusion), so exact terms (names, codes, errors) count too.
        #[arg(long, requires = "text", conflicts_with = "keyword")]
        hybrid: bool,
        /// With --text: BM25 keyword search only (no embedding).
        #[arg(long, requires = "text")]
        keyword: bool,
        /// With --hybrid: the weight of the BM25 ranking against the dense one (1: plain RRF).
        #[arg(long, default_value_t = 1.0)]
        text_weight: f32,
        #[command(flatten)]
        with: WithArgs,
    },
    /// Add text to a text collection: embedded with its model, stored with the text (payload
    /// key `document`), as one atomic batch.
    Add {
        /// The collection's name.
        collection: String,
        /// One text.
        #[arg(long, conflicts_with = "file", required_unless_present = "file")]
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
        /// The model folder (default: the usual search).
        #[arg(long)]
        model_dir: Option<PathBuf>,
    },
    /// Show the work for one text query: tokens, embeddings, pooled vector, search path,
    /// distances computed, results.
    Explain {
        /// The collection's name.
        collection: String,
        #[arg(long)]
        text: String,
        /// Results to return.
        #[arg(short = 'k', long = "limit", visible_alias = "k", default_value_t = 10, value_parser = parse_limit)]
        k: usize,
        #[command(flatten)]
        filter: FilterArg,
        #[arg(long)]
        model_dir: Option<PathBuf>,
    },
    /// Count points, optionally only those matching a filter.
    Count {
        /// The collection's name.
        collection: String,
        #[command(flatten)]
        filter: FilterArg,
    },
    /// Show points by id.
    Get {
        /// The collection's name.
        collection: String,
        ids: Vec<String>,
        #[command(flatten)]
        with: WithArgs,
    },
    /// Delete points by id or by filter.
    Delete {
        /// The collection's name.
        collection: String,
        ids: Vec<String>,
        #[command(flatten)]
        filter: FilterArg,
    },
    /// Page through points in id order.
    Scroll {
        /// The collection's name.
        collection: String,
        #[arg(long, default_value_t = 10)]
        limit: usize,
        /// Start at this id (the `next` value printed by the previous page).
        #[arg(long)]
        offset: Option<String>,
        #[command(flatten)]
        filter: FilterArg,
        #[command(flatten)]
        with: WithArgs,
    },
    /// Merge keys into the payloads of points (by id or filter).
    SetPayload {
        /// The collection's name.
        collection: String,
        ids: Vec<String>,
        /// A JSON object.
        #[arg(long)]
        payload: String,
        #[command(flatten)]
        filter: FilterArg,
    },
    /// Create a payload index that makes filters on KEY cheap.
    Index {
        /// The collection's name.
        collection: String,
        key: String,
        /// keyword | integer | float | bool | text (text: a BM25 full-text index, for keyword
        /// and hybrid search and `match: {text}` filters)
        #[arg(long = "type")]
        kind: String,
    },
    /// Ingest documents (.txt, .md, .html files and folders) into a text collection: split into
    /// chunks of about --max-tokens, embed, store with source, chunk number and offsets.
    /// Re-running skips unchanged files and replaces the chunks of changed ones.
    Ingest {
        /// The collection's name.
        collection: String,
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
        #[arg(long)]
        model_dir: Option<PathBuf>,
    },
    /// The best passages for a question, adjacent chunks merged, with their sources: ready to
    /// paste into a language model's prompt.
    Context {
        /// The collection's name.
        collection: String,
        question: String,
        /// Chunks to retrieve.
        #[arg(short = 'k', long, default_value_t = 5, value_parser = parse_limit)]
        limit: usize,
        /// Stop adding passages before this many tokens.
        #[arg(long, default_value_t = 1000)]
        max_tokens: usize,
        #[command(flatten)]
        filter: FilterArg,
        #[arg(long)]
        model_dir: Option<PathBuf>,
    },
    /// Rewrite a collection's files without deleted points.
    Compact { collection: String },
    /// Build (or bring up to date) the approximate index now, instead of in the background.
    BuildIndex { collection: String },
    /// Show a collection's configuration and state.
    Info { collection: String },
    /// List collections.
    List,
    /// Delete a collection and its files.
    Drop { collection: String },
    /// Serve the Qdrant-compatible REST API over the data folder (Ctrl-C or SIGTERM stops it
    /// cleanly; every acknowledged write is already durable).
    Serve {
        #[arg(long, default_value = "127.0.0.1")]
        host: String,
        #[arg(long, default_value_t = 6333)]
        port: u16,
        /// Require this key (`api-key` header or `Authorization: Bearer`) for every request.
        #[arg(long, env = "QUIVER_API_KEY", hide_env_values = true)]
        api_key: Option<String>,
        /// A second key that may only read and search.
        #[arg(long, env = "QUIVER_READ_ONLY_API_KEY", hide_env_values = true)]
        read_only_api_key: Option<String>,
        /// The largest request body, in MiB.
        #[arg(long, default_value_t = 64)]
        max_body_mb: usize,
        /// Serve HTTPS with this PEM certificate chain (needs --tls-key).
        #[arg(long, requires = "tls_key")]
        tls_cert: Option<PathBuf>,
        /// The PEM private key for --tls-cert.
        #[arg(long, requires = "tls_cert")]
        tls_key: Option<PathBuf>,
        /// Let pages of this origin (`https://app.example.com`) call the API from a browser;
        /// repeat for several. None by default: no web page can use the API.
        #[arg(long = "cors-origin", value_name = "ORIGIN")]
        cors_origins: Vec<String>,
        /// Open connections at once; more are closed as soon as they arrive.
        #[arg(long, default_value_t = quiver_server::CONNECTIONS_MAX_DEFAULT)]
        max_connections: usize,
        /// Seconds a client may take to send a request's headers before it is cut off.
        #[arg(long, default_value_t = 10, value_parser = clap::value_parser!(u64).range(1..=3600))]
        header_timeout: u64,
    },
    /// The exercise "Vector Database by Hand", step by step, computed by the real engine.
    Walkthrough,
    /// Embed texts (one per line) with all-MiniLM-L6-v2: one L2-normalised 384-d vector per line.
    Embed {
        /// The model, by name (as on `create --model`).
        #[arg(long, default_value = quiver_embed::minilm::MODEL_NAME)]
        model: String,
        /// The model's folder (else QUIVER_MODEL_DIR, Quiver's cache, the Hugging Face cache;
        /// scripts/fetch-model.sh fills Quiver's cache).
        #[arg(long)]
        model_dir: Option<PathBuf>,
        /// Texts, one per line (default: standard input).
        #[arg(long)]
        file: Option<PathBuf>,
        /// Write a float32 .npy matrix here instead of JSON lines on standard output.
        #[arg(long)]
        out: Option<PathBuf>,
        /// JSON lines on standard output (the default without --out).
        #[arg(long, conflicts_with = "out")]
        jsonl: bool,
    },
    /// Benchmarks (see bench/ for the side-by-side comparisons with other engines).
    #[command(subcommand)]
    Bench(BenchCommand),
}

#[derive(Subcommand)]
enum BenchCommand {
    /// Exact search through the collection API: loads --base into a fresh collection in a
    /// temporary folder (timed, durable), runs the queries one at a time on one thread, then all
    /// at once as a batch, and prints one JSON line with the rates.
    Exact(bench::ExactArgs),
    /// Embedding throughput: loads the model (not timed), then embeds the texts of --file (one
    /// per line) in batches, and prints one JSON line with texts per second.
    Embed(bench::EmbedArgs),
    /// Builds an approximate index over a .npy matrix and measures recall, QPS and latency
    /// per `ef`, one query at a time on one thread.
    Ann(bench::AnnArgs),
    /// Recall@k and MRR of dense, BM25 and hybrid retrieval on a question set.
    Retrieval(bench::RetrievalArgs),
}

#[derive(Args)]
struct FilterArg {
    /// A filter in Qdrant's JSON form, e.g. '{"must":[{"key":"color","match":{"value":"red"}}]}'.
    #[arg(long)]
    filter: Option<String>,
}

impl FilterArg {
    fn parse(&self) -> Result<Option<Filter>> {
        self.filter.as_deref().map(Filter::parse).transpose().map_err(Into::into)
    }
}

#[derive(Args)]
struct WithArgs {
    /// Include vectors in the output.
    #[arg(long)]
    with_vector: bool,
    /// Leave payloads out of the output.
    #[arg(long)]
    no_payload: bool,
}

mod bench;
mod ingest;
mod text;
mod walkthrough;

fn main() {
    let cli = Cli::parse();
    if let Err(e) = run(cli) {
        let msg = format!("{e:#}").replace('\n', " ");
        eprintln!("error: {msg}");
        std::process::exit(1);
    }
}

fn parse_ids(ids: &[String]) -> Result<Vec<PointId>> {
    ids.iter().map(|s| s.parse::<PointId>().map_err(Into::into)).collect()
}

fn selector(ids: &[String], filter: &FilterArg) -> Result<PointSelector> {
    match (ids.is_empty(), filter.parse()?) {
        (false, None) => Ok(PointSelector::Ids(parse_ids(ids)?)),
        (true, Some(f)) => Ok(PointSelector::Filter(f)),
        (false, Some(_)) => bail!("give ids or --filter, not both"),
        (true, None) => bail!("give point ids or --filter"),
    }
}

/// `-k/--limit`: at least one result, refused in the flag's words otherwise.
fn parse_limit(s: &str) -> std::result::Result<usize, String> {
    match s.parse::<usize>() {
        Ok(k) if (1..=quiver::SEARCH_LIMIT_MAX).contains(&k) => Ok(k),
        _ => Err(format!("-k/--limit must be a whole number from 1 to {}", quiver::SEARCH_LIMIT_MAX)),
    }
}

/// `--ef`: a list size the library accepts, refused in the flag's words otherwise.
fn parse_ef(s: &str) -> std::result::Result<usize, String> {
    match s.parse::<usize>() {
        Ok(ef) if (1..=quiver::EF_MAX).contains(&ef) => Ok(ef),
        _ => Err(format!("--ef must be a whole number from 1 to {}", quiver::EF_MAX)),
    }
}

fn parse_vector(text: &str) -> Result<Vec<f32>> {
    let v: Vec<f64> = serde_json::from_str(text).context("--vector must be a JSON array of numbers")?;
    Ok(v.into_iter().map(|x| x as f32).collect())
}

fn record_json(id: &PointId, score: Option<f32>, payload: &Option<quiver::Payload>, vector: &Option<Vec<f32>>) -> Value {
    let mut o = serde_json::Map::new();
    o.insert("id".into(), id.to_json());
    if let Some(s) = score {
        o.insert("score".into(), json!(s));
    }
    if let Some(p) = payload {
        o.insert("payload".into(), Value::Object(p.clone()));
    }
    if let Some(v) = vector {
        o.insert("vector".into(), json!(v));
    }
    Value::Object(o)
}

/// Search hits as the JSON array `--json` prints.
fn hits_json(hits: &[ScoredPoint]) -> Value {
    Value::Array(
        hits.iter()
            .map(|h| record_json(&h.id, Some(h.score), &h.payload, &h.vector))
            .collect(),
    )
}

fn short(v: &Value, max: usize) -> String {
    let s = v.to_string();
    if s.chars().count() <= max {
        s
    } else {
        format!("{}…", s.chars().take(max - 1).collect::<String>())
    }
}

fn vector_text(v: &[f32]) -> String {
    let head: Vec<String> = v.iter().take(6).map(|x| format!("{x:.4}")).collect();
    if v.len() > 6 {
        format!("[{}, … ({} dims)]", head.join(", "), v.len())
    } else {
        format!("[{}]", head.join(", "))
    }
}

fn print_hits(hits: &[ScoredPoint]) {
    if hits.is_empty() {
        println!("(no results)");
        return;
    }
    println!("{:>4}  {:<38} {:>10}  payload", "rank", "id", "score");
    for (i, h) in hits.iter().enumerate() {
        let payload = h.payload.as_ref().map(|p| short(&Value::Object(p.clone()), 60)).unwrap_or_default();
        println!("{:>4}  {:<38} {:>10.4}  {}", i + 1, h.id.to_string(), h.score, payload);
        if let Some(v) = &h.vector {
            println!("      vector {}", vector_text(v));
        }
    }
}

fn print_records(records: &[Record]) {
    for r in records {
        let payload = r.payload.as_ref().map(|p| short(&Value::Object(p.clone()), 70)).unwrap_or_default();
        println!("{:<38} {}", r.id.to_string(), payload);
        if let Some(v) = &r.vector {
            println!("{:<38} vector {}", "", vector_text(v));
        }
    }
}

fn spinner(msg: &str) -> ProgressBar {
    let pb = ProgressBar::new_spinner();
    pb.set_message(msg.to_string());
    pb.enable_steady_tick(std::time::Duration::from_millis(120));
    pb
}

/// Reads points from JSON lines, with a byte-based progress bar for large files.
fn read_jsonl(path: &Path) -> Result<Vec<Point>> {
    let (reader, total): (Box<dyn Read>, u64) = if path == Path::new("-") {
        (Box::new(std::io::stdin()), 0)
    } else {
        let f = std::fs::File::open(path).with_context(|| format!("cannot open {}", path.display()))?;
        let len = f.metadata().map(|m| m.len()).unwrap_or(0);
        (Box::new(f), len)
    };
    let pb = if total > 8 << 20 {
        let pb = ProgressBar::new(total);
        pb.set_style(
            ProgressStyle::with_template("reading {bar:40} {bytes}/{total_bytes} {bytes_per_sec} eta {eta}").expect("valid template"),
        );
        pb
    } else {
        ProgressBar::hidden()
    };
    let mut points = Vec::new();
    let reader = std::io::BufReader::with_capacity(1 << 20, pb.wrap_read(reader));
    for (n, line) in reader.lines().enumerate() {
        let line = line.with_context(|| format!("{}: cannot read line {}", path.display(), n + 1))?;
        if line.trim().is_empty() {
            continue;
        }
        let at = || format!("{} line {}", path.display(), n + 1);
        let v: Value = serde_json::from_str(&line).with_context(|| format!("{}: malformed JSON", at()))?;
        let obj = v
            .as_object()
            .with_context(|| format!("{}: expected an object with id and vector", at()))?;
        for key in obj.keys() {
            if !matches!(key.as_str(), "id" | "vector" | "payload") {
                bail!("{}: unknown field {key:?} (expected id, vector, payload)", at());
            }
        }
        let id = PointId::from_json(obj.get("id").with_context(|| format!("{}: missing id", at()))?).with_context(at)?;
        let vector: Vec<f32> = match obj.get("vector") {
            Some(Value::Array(items)) => items
                .iter()
                .map(|x| {
                    x.as_f64()
                        .map(|f| f as f32)
                        .with_context(|| format!("{}: vector holds a non-number {x}", at()))
                })
                .collect::<Result<_>>()?,
            _ => bail!("{}: vector must be an array of numbers", at()),
        };
        let payload = match obj.get("payload") {
            None | Some(Value::Null) => None,
            Some(Value::Object(p)) => Some(p.clone()),
            Some(other) => bail!("{}: payload must be a JSON object, not {}", at(), short(other, 30)),
        };
        points.push(Point { id, vector, payload });
    }
    pb.finish_and_clear();
    Ok(points)
}

fn read_points(path: &Path, start_id: u64) -> Result<Vec<Point>> {
    if path.extension().is_some_and(|e| e == "npy") {
        let m = npy::read(path)?;
        let last = start_id
            .checked_add(m.rows as u64)
            .context("--start-id plus the row count overflows u64")?;
        let _ = last;
        Ok(m.data
            .chunks(m.cols.max(1))
            .enumerate()
            .map(|(i, row)| Point::new(start_id + i as u64, row.to_vec()))
            .collect())
    } else {
        read_jsonl(path)
    }
}

fn serve(data_dir: &Path, config: quiver_server::ServerConfig) -> Result<()> {
    use std::io::IsTerminal;
    // Quiver's own lines at info (one per request), libraries' only when they warn (tantivy
    // logs every segment merge at info); RUST_LOG overrides. Colour only on a terminal.
    tracing_subscriber::fmt()
        .with_env_filter(
            tracing_subscriber::EnvFilter::try_from_default_env()
                .unwrap_or_else(|_| tracing_subscriber::EnvFilter::new("warn,quiver=info,quiver_server=info,quiver_cli=info")),
        )
        .with_ansi(std::io::stderr().is_terminal())
        .with_writer(std::io::stderr)
        .init();
    let db = std::sync::Arc::new(Database::open(data_dir).with_context(|| format!("cannot open data folder {}", data_dir.display()))?);
    let runtime = tokio::runtime::Builder::new_multi_thread().enable_all().build()?;
    runtime.block_on(async move {
        let shutdown = async {
            let ctrl_c = tokio::signal::ctrl_c();
            let mut term = tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate()).expect("SIGTERM handler");
            tokio::select! {
                _ = ctrl_c => {}
                _ = term.recv() => {}
            }
            tracing::info!("shutting down: finishing in-flight requests");
        };
        quiver_server::serve(db, config, shutdown).await
    })?;
    Ok(())
}

/// Texts per call to the embedder: enough to keep every core busy, small enough for a smooth
/// progress bar.
const EMBED_BATCH: usize = 64;

fn embed(model: Option<&Path>, file: Option<&Path>, out: Option<&Path>) -> Result<()> {
    use quiver_embed::Embedder;
    let dir = quiver_embed::find_model(model)?;
    let m = quiver_embed::MiniLm::load(&dir)?;
    let text = match file {
        Some(f) => std::fs::read_to_string(f).with_context(|| format!("cannot read {}", f.display()))?,
        None => {
            let mut s = String::new();
            std::io::stdin().read_to_string(&mut s).context("cannot read standard input")?;
            s
        }
    };
    let lines: Vec<&str> = text.lines().collect();
    let pb = if lines.len() >= 256 {
        let pb = ProgressBar::new(lines.len() as u64);
        pb.set_style(ProgressStyle::with_template("embedding {bar:40} {pos}/{len} texts {per_sec} eta {eta}").expect("valid template"));
        pb
    } else {
        ProgressBar::hidden()
    };
    let mut vectors: Vec<Vec<f32>> = Vec::with_capacity(lines.len());
    for chunk in lines.chunks(EMBED_BATCH) {
        vectors.extend(m.embed(chunk)?);
        pb.inc(chunk.len() as u64);
    }
    pb.finish_and_clear();
    match out {
        Some(path) => {
            let flat: Vec<f32> = vectors.concat();
            npy::write(path, &npy::encode_f32(vectors.len(), m.dim(), &flat))?;
            eprintln!("wrote {} x {} vectors to {}", vectors.len(), m.dim(), path.display());
        }
        None => {
            use std::io::Write;
            let stdout = std::io::stdout();
            let mut w = std::io::BufWriter::new(stdout.lock());
            for v in &vectors {
                writeln!(w, "{}", json!(v))?;
            }
        }
    }
    Ok(())
}

/// Opens the data folder. Only `create` makes a new one: every other command works on
/// collections that must exist, so a mistyped `--data-dir` is an error that says so instead of
/// a new empty folder.
fn open_db(data_dir: &Path, may_create: bool) -> Result<Database> {
    if !may_create && !data_dir.join("collections").is_dir() {
        bail!(
            "no Quiver data folder at {} (set --data-dir or QUIVER_DATA_DIR; `quiver create` makes one)",
            data_dir.display()
        );
    }
    Database::open(data_dir).with_context(|| format!("cannot open data folder {}", data_dir.display()))
}

/// A "collection not found" error with the folder it looked in and the collections there.
fn explain_not_found(e: anyhow::Error, data_dir: &Path) -> anyhow::Error {
    let Some(quiver::Error::CollectionNotFound(name)) = e.downcast_ref::<quiver::Error>() else {
        return e;
    };
    let dir = data_dir.join("collections");
    let mut there: Vec<String> = std::fs::read_dir(&dir)
        .map(|entries| {
            entries
                .filter_map(|e| e.ok())
                .filter(|e| e.path().join("MANIFEST").is_file())
                .map(|e| e.file_name().to_string_lossy().into_owned())
                .collect()
        })
        .unwrap_or_default();
    there.sort();
    let listing = if there.is_empty() {
        "there are no collections there".to_string()
    } else {
        format!("collections there: {}", there.join(", "))
    };
    anyhow::anyhow!("collection {name:?} not found in {} ({listing})", dir.display())
}

fn run(cli: Cli) -> Result<()> {
    let data_dir = cli.data_dir.clone();
    run_command(cli).map_err(|e| explain_not_found(e, &data_dir))
}

fn run_command(cli: Cli) -> Result<()> {
    let json_out = cli.json;
    let may_create = matches!(cli.command, Command::Create { .. });
    let db = || open_db(&cli.data_dir, may_create);
    match &cli.command {
        Command::Create {
            collection,
            dim,
            metric,
            group_commit_ms,
            model,
            index,
        } => {
            let metric: Metric = metric.parse()?;
            let info = model.as_deref().map(text::model_info).transpose()?;
            let dim = match (info, dim) {
                (Some(m), d) => {
                    if let Some(d) = d.filter(|d| *d != m.dim) {
                        bail!("--dim {d} differs from the dimension of {} ({})", m.name, m.dim);
                    }
                    m.dim
                }
                (None, Some(d)) => *d,
                (None, None) => bail!("give --dim or --model"),
            };
            let mut config = CollectionConfig::new(dim, metric);
            config.embedder = info.map(|m| m.name.to_string());
            if let Some(ms) = group_commit_ms {
                config.durability = Durability::Periodic { interval_ms: *ms };
            }
            config.index = index.config(metric)?;
            db()?.create_collection(collection, config)?;
            if json_out {
                println!("{}", json!({"created": collection, "dim": dim, "metric": metric.name()}));
            } else {
                println!("created collection {collection:?} (dim {dim}, {})", metric.name());
            }
        }
        Command::Upsert {
            collection,
            file,
            start_id,
        } => {
            let db = db()?;
            let c = db.collection(collection)?;
            let t0 = Instant::now();
            let points = read_points(file, *start_id)?;
            let n = points.len();
            let read_s = t0.elapsed().as_secs_f64();
            let pb = if n >= 50_000 {
                spinner(&format!("upserting {n} points (validate, log, fsync)"))
            } else {
                ProgressBar::hidden()
            };
            let t1 = Instant::now();
            let ack = c.upsert(points)?;
            pb.finish_and_clear();
            let write_s = t1.elapsed().as_secs_f64();
            if json_out {
                println!(
                    "{}",
                    json!({"upserted": n, "seq": ack.seq, "read_s": read_s, "write_s": write_s, "points_per_s": n as f64 / (read_s + write_s)})
                );
            } else {
                println!(
                    "upserted {n} points into {collection:?} in {:.2}s ({:.0} points/s, durable)",
                    read_s + write_s,
                    n as f64 / (read_s + write_s)
                );
            }
        }
        Command::Search {
            collection,
            vector,
            file,
            text: query_text,
            model_dir,
            k,
            offset,
            filter,
            threshold,
            ef,
            exact,
            hybrid,
            keyword,
            text_weight,
            with,
        } => {
            let db = db()?;
            let c = db.collection(collection)?;
            let filter = filter.parse()?;
            let make = |v: Vec<f32>| SearchRequest {
                vector: v,
                limit: *k,
                offset: *offset,
                filter: filter.clone(),
                score_threshold: *threshold,
                with_payload: !with.no_payload,
                with_vector: with.with_vector,
                exact: *exact,
                ef: *ef,
            };
            if let Some(t) = query_text {
                use quiver_embed::Embedder;
                quiver::text_index::check_query_text(t)?;
                let hits = if *keyword {
                    c.search_text(t, None, *k + *offset, filter.as_ref(), !with.no_payload)?
                        .into_iter()
                        .skip(*offset)
                        .collect()
                } else {
                    let model = text::collection_embedder(&c, model_dir.as_deref())?;
                    let q = model.embed(&[t.as_str()])?.pop().context("the model returned no vector")?;
                    if *hybrid {
                        let fusion = quiver::Fusion {
                            text_weight: *text_weight,
                            ..quiver::Fusion::default()
                        };
                        c.hybrid(&make(q), t, &fusion, (*k * 4).max(20))?
                    } else {
                        c.search(&make(q))?
                    }
                };
                if json_out {
                    println!("{}", hits_json(&hits));
                } else if hits.is_empty() {
                    println!("(no results)");
                } else {
                    println!("{:>4}  {:>8}  text", "rank", "score");
                    for (i, h) in hits.iter().enumerate() {
                        let doc = h
                            .payload
                            .as_ref()
                            .and_then(|p| p.get(text::DOCUMENT_KEY))
                            .and_then(Value::as_str)
                            .unwrap_or("");
                        println!("{:>4}  {:>8.4}  {doc}    [id {}]", i + 1, h.score, h.id);
                    }
                }
                return Ok(());
            }
            match (vector, file) {
                (Some(v), _) => {
                    let hits = c.search(&make(parse_vector(v)?))?;
                    if json_out {
                        println!("{}", hits_json(&hits));
                    } else {
                        print_hits(&hits);
                    }
                }
                (None, Some(f)) => {
                    let m = npy::read(f)?;
                    let reqs: Vec<SearchRequest> = m.data.chunks(m.cols.max(1)).map(|q| make(q.to_vec())).collect();
                    let t0 = Instant::now();
                    let all = c.search_batch(&reqs)?;
                    let secs = t0.elapsed().as_secs_f64();
                    if json_out {
                        for hits in &all {
                            println!("{}", hits_json(hits));
                        }
                    } else {
                        for (i, hits) in all.iter().enumerate() {
                            println!("query {i}:");
                            print_hits(hits);
                        }
                        eprintln!("{} queries in {:.3}s ({:.0} queries/s)", reqs.len(), secs, reqs.len() as f64 / secs);
                    }
                }
                (None, None) => bail!("search needs a query: --vector JSON, --text TEXT (text collections) or --file QUERIES.npy"),
            }
        }
        Command::Add {
            collection,
            text: one,
            id,
            payload,
            file,
            model_dir,
        } => {
            let db = db()?;
            let c = db.collection(collection)?;
            let model = text::collection_embedder(&c, model_dir.as_deref())?;
            let docs = match (one, file) {
                (Some(t), _) => {
                    let payload = match payload {
                        Some(p) => match serde_json::from_str::<Value>(p).context("--payload must be JSON")? {
                            Value::Object(o) => o,
                            _ => bail!("--payload must be a JSON object"),
                        },
                        None => Default::default(),
                    };
                    let id = match id {
                        Some(i) => i.parse::<PointId>()?,
                        None => PointId::Uuid(uuid::Uuid::new_v4()),
                    };
                    vec![text::Doc {
                        id,
                        text: t.clone(),
                        payload,
                    }]
                }
                (None, Some(f)) => text::read_docs(f)?,
                (None, None) => bail!("give --text or --file"),
            };
            let t0 = Instant::now();
            let n = text::add(&c, &model, docs)?;
            let secs = t0.elapsed().as_secs_f64();
            if json_out {
                println!("{}", json!({"added": n, "seconds": secs}));
            } else {
                println!(
                    "added {n} texts to {collection:?} in {secs:.2}s ({:.0} texts/s, durable)",
                    n as f64 / secs
                );
            }
        }
        Command::Explain {
            collection,
            text: query,
            k,
            filter,
            model_dir,
        } => {
            let db = db()?;
            let c = db.collection(collection)?;
            let model = text::collection_embedder(&c, model_dir.as_deref())?;
            text::explain(&c, &model, query, *k, filter.parse()?, json_out)?;
        }
        Command::Count { collection, filter } => {
            let n = db()?.collection(collection)?.count(filter.parse()?.as_ref());
            if json_out {
                println!("{}", json!({"count": n}));
            } else {
                println!("{n}");
            }
        }
        Command::Get { collection, ids, with } => {
            let records = db()?
                .collection(collection)?
                .get(&parse_ids(ids)?, !with.no_payload, with.with_vector)?;
            if json_out {
                println!(
                    "{}",
                    Value::Array(records.iter().map(|r| record_json(&r.id, None, &r.payload, &r.vector)).collect())
                );
            } else if records.is_empty() {
                println!("(no such points)");
            } else {
                print_records(&records);
            }
        }
        Command::Delete { collection, ids, filter } => {
            let ack = db()?.collection(collection)?.delete(&selector(ids, filter)?)?;
            if json_out {
                println!("{}", json!({"deleted": ack.affected}));
            } else {
                println!("deleted {} points", ack.affected);
            }
        }
        Command::Scroll {
            collection,
            limit,
            offset,
            filter,
            with,
        } => {
            let offset = offset.as_deref().map(str::parse::<PointId>).transpose()?;
            let page = db()?.collection(collection)?.scroll(&ScrollRequest {
                offset,
                limit: *limit,
                filter: filter.parse()?,
                with_payload: !with.no_payload,
                with_vector: with.with_vector,
            })?;
            if json_out {
                println!(
                    "{}",
                    json!({"points": page.points.iter().map(|r| record_json(&r.id, None, &r.payload, &r.vector)).collect::<Vec<_>>(),
                           "next_offset": page.next_offset.map(|o| o.to_json())})
                );
            } else {
                print_records(&page.points);
                match page.next_offset {
                    Some(o) => println!("next: --offset {o}"),
                    None => println!("(end)"),
                }
            }
        }
        Command::SetPayload {
            collection,
            ids,
            payload,
            filter,
        } => {
            let p: Value = serde_json::from_str(payload).context("--payload must be JSON")?;
            let Value::Object(p) = p else {
                bail!("--payload must be a JSON object")
            };
            let ack = db()?.collection(collection)?.set_payload(&selector(ids, filter)?, p)?;
            if json_out {
                println!("{}", json!({"updated": ack.affected}));
            } else {
                println!("updated {} points", ack.affected);
            }
        }
        Command::Index { collection, key, kind } => {
            let kind: PayloadIndexType = kind.parse()?;
            db()?.collection(collection)?.create_payload_index(key, kind)?;
            if json_out {
                println!("{}", json!({"indexed": key, "type": kind.name()}));
            } else {
                println!("created {} index on {key:?}", kind.name());
            }
        }
        Command::Ingest {
            collection,
            paths,
            max_tokens,
            overlap,
            prune,
            model_dir,
        } => {
            let db = db()?;
            let c = db.collection(collection)?;
            let model = text::collection_embedder(&c, model_dir.as_deref())?;
            let opts = ingest::IngestOptions {
                max_tokens: *max_tokens,
                overlap: *overlap,
                prune: *prune,
            };
            let r = ingest::ingest(&c, &model, paths, &opts, json_out)?;
            let rate = r.chunks_written as f64 / r.seconds.max(1e-9);
            if json_out {
                println!(
                    "{}",
                    json!({"files": r.files, "unchanged": r.unchanged, "updated": r.updated, "chunks_written": r.chunks_written,
                           "chunks_deleted": r.chunks_deleted, "pruned_files": r.pruned_files, "seconds": r.seconds, "chunks_per_s": rate})
                );
            } else {
                println!(
                    "{} files: {} updated, {} unchanged; {} chunks written ({rate:.1}/s), {} deleted{}; {:.1} s",
                    r.files,
                    r.updated,
                    r.unchanged,
                    r.chunks_written,
                    r.chunks_deleted,
                    if r.pruned_files > 0 {
                        format!(", {} missing files pruned", r.pruned_files)
                    } else {
                        String::new()
                    },
                    r.seconds
                );
            }
        }
        Command::Context {
            collection,
            question,
            limit,
            max_tokens,
            filter,
            model_dir,
        } => {
            use quiver_embed::Embedder;
            let db = db()?;
            let c = db.collection(collection)?;
            let model = text::collection_embedder(&c, model_dir.as_deref())?;
            let q = model.embed(&[question.as_str()])?.pop().context("the model returned no vector")?;
            let count = |s: &str| model.tokenize(s).map(|(_, ids)| ids.len().saturating_sub(2)).unwrap_or(0);
            let passages = quiver::context::retrieve(&c, question, q, *limit, filter.parse()?, *max_tokens, &count)?;
            if json_out {
                let list: Vec<Value> = passages
                    .iter()
                    .map(|p| json!({"source": p.source, "chunks": [p.first_chunk, p.last_chunk], "start": p.start, "end": p.end, "score": p.score, "text": p.text}))
                    .collect();
                println!("{}", json!({"question": question, "passages": list}));
            } else if passages.is_empty() {
                println!("(no context found)");
            } else {
                for (i, p) in passages.iter().enumerate() {
                    let chunks = if p.first_chunk == p.last_chunk {
                        format!("chunk {}", p.first_chunk)
                    } else {
                        format!("chunks {}-{}", p.first_chunk, p.last_chunk)
                    };
                    println!(
                        "[{}] {} ({chunks}, characters {}-{})\n{}\n",
                        i + 1,
                        p.source,
                        p.start,
                        p.end,
                        p.text.trim()
                    );
                }
            }
        }
        Command::BuildIndex { collection } => {
            let db = db()?;
            let c = db.collection(collection)?;
            let t0 = std::time::Instant::now();
            c.build_index()?;
            let s = c.index_status();
            let secs = t0.elapsed().as_secs_f64();
            if json_out {
                println!(
                    "{}",
                    json!({"collection": collection, "nodes": s.nodes, "seconds": secs, "memory_bytes": s.memory_bytes})
                );
            } else {
                println!(
                    "index of {collection}: {} points in the graph, built in {secs:.1} s, {:.1} MiB",
                    s.nodes,
                    s.memory_bytes as f64 / 1048576.0
                );
            }
        }
        Command::Compact { collection } => {
            let db = db()?;
            let c = db.collection(collection)?;
            let before = c.info();
            c.compact()?;
            let after = c.info();
            if json_out {
                println!(
                    "{}",
                    json!({"segments_before": before.segments, "segments_after": after.segments, "dead_rows_freed": before.dead_rows})
                );
            } else {
                println!(
                    "compacted {collection:?}: {} -> {} segments, {} dead rows freed",
                    before.segments, after.segments, before.dead_rows
                );
            }
        }
        Command::Info { collection } => {
            let c = db()?.collection(collection)?;
            let info = c.info();
            let ix = &info.config.index;
            let status = c.index_status();
            let index_text = if !ix.enabled {
                "none (every search is an exact scan)".to_string()
            } else {
                format!(
                    "hnsw m={} ef_construct={} ef={} quantization={}, built above {} points: {} in the graph, {} scanned exactly{}",
                    ix.m,
                    ix.ef_construct,
                    ix.ef,
                    ix.quantization.name(),
                    ix.full_scan_threshold,
                    status.nodes,
                    status.tail,
                    if status.building { ", building" } else { "" }
                )
            };
            let durability = match info.config.durability {
                Durability::Immediate => "fsync on every write".to_string(),
                Durability::Periodic { interval_ms } => format!("group commit, fsync every {interval_ms} ms"),
            };
            let indexes: Vec<Value> = info
                .payload_indexes
                .iter()
                .map(|(k, t, n, d)| json!({"key": k, "type": t.name(), "points": n, "distinct_values": d}))
                .collect();
            if json_out {
                println!(
                    "{}",
                    json!({"name": info.name, "dim": info.config.dim, "metric": info.config.metric.name(), "durability": durability,
                           "points": info.points, "dead_rows": info.dead_rows, "segments": info.segments, "wal_bytes": info.wal_bytes,
                           "last_seq": info.last_seq, "flushed_seq": info.flushed_seq, "payload_indexes": indexes,
                           "kernel_isa": info.kernel_isa, "flush_error": info.flush_error, "embedder": info.config.embedder,
                           "vector_index": {"enabled": ix.enabled, "m": ix.m, "ef_construct": ix.ef_construct, "ef": ix.ef,
                                            "quantization": ix.quantization.name(), "full_scan_threshold": ix.full_scan_threshold,
                                            "nodes": status.nodes, "tail": status.tail, "building": status.building,
                                            "memory_bytes": status.memory_bytes, "error": status.error,
                                            "target_recall": ix.target_recall, "ef_in_use": status.ef,
                                            "estimated_recall": status.recall.map(|r| r.recall),
                                            "recall_samples": status.recall.map_or(0, |r| r.samples)}})
                );
            } else {
                println!("collection   {}", info.name);
                println!("dimension    {}", info.config.dim);
                println!("metric       {}", info.config.metric.name());
                if let Some(e) = &info.config.embedder {
                    println!("embedder     {e} (takes text: quiver add / search --text)");
                }
                println!("durability   {durability}");
                println!("points       {} ({} dead rows awaiting compaction)", info.points, info.dead_rows);
                println!(
                    "storage      {} segments, WAL {} bytes (seq {} written, {} in segments)",
                    info.segments, info.wal_bytes, info.last_seq, info.flushed_seq
                );
                println!("vector index {index_text}");
                if ix.enabled {
                    let measured = match status.recall {
                        Some(r) => format!(
                            "estimated recall@10 {:.3} at ef {} ({} sampled searches)",
                            r.recall, r.ef, r.samples
                        ),
                        None => "recall not measured yet (a server measures the searches it serves)".to_string(),
                    };
                    println!("recall       target {}: ef {} in use, {measured}", ix.target_recall, status.ef);
                }
                if let Some(e) = &status.error {
                    println!("index note   {e}");
                }
                println!("kernels      {}", info.kernel_isa);
                for (k, t, n, d) in &info.payload_indexes {
                    println!("index        {k} ({}): {n} points, {d} distinct values", t.name());
                }
                if let Some(e) = info.flush_error {
                    println!("flush error  {e}");
                }
            }
        }
        Command::List => {
            // No data folder yet: nothing to list (and nothing is created).
            let names = if cli.data_dir.join("collections").is_dir() {
                db()?.list_collections()?
            } else {
                Vec::new()
            };
            if json_out {
                println!("{}", json!(names));
            } else if names.is_empty() {
                println!("(no collections in {})", cli.data_dir.display());
            } else {
                for n in names {
                    println!("{n}");
                }
            }
        }
        Command::Bench(BenchCommand::Exact(args)) => bench::exact(args)?,
        Command::Bench(BenchCommand::Embed(args)) => bench::embed(args)?,
        Command::Bench(BenchCommand::Ann(args)) => bench::ann(args)?,
        Command::Bench(BenchCommand::Retrieval(args)) => bench::retrieval(&db()?, args)?,
        Command::Walkthrough => walkthrough::run(json_out)?,
        Command::Embed {
            model,
            model_dir,
            file,
            out,
            jsonl: _,
        } => {
            text::model_info(model)?;
            embed(model_dir.as_deref(), file.as_deref(), out.as_deref())?
        }
        Command::Serve {
            host,
            port,
            api_key,
            read_only_api_key,
            max_body_mb,
            tls_cert,
            tls_key,
            cors_origins,
            max_connections,
            header_timeout,
        } => {
            let addr: std::net::SocketAddr = format!("{host}:{port}")
                .parse()
                .with_context(|| format!("bad --host/--port {host}:{port}"))?;
            let mut config = quiver_server::ServerConfig::new(addr);
            config.api_key = api_key.clone();
            config.read_only_api_key = read_only_api_key.clone();
            config.body_bytes_max = max_body_mb.checked_mul(1 << 20).context("--max-body-mb is too large")?;
            if let (Some(cert), Some(key)) = (tls_cert, tls_key) {
                config.tls = Some(quiver_server::TlsFiles {
                    cert: cert.clone(),
                    key: key.clone(),
                });
            }
            config.cors_origins = cors_origins.clone();
            config.connections_max = *max_connections;
            config.header_timeout = std::time::Duration::from_secs(*header_timeout);
            config.validate().map_err(|e| anyhow::anyhow!(e))?;
            serve(&cli.data_dir, config)?
        }
        Command::Drop { collection } => {
            db()?.drop_collection(collection)?;
            if json_out {
                println!("{}", json!({"dropped": collection}));
            } else {
                println!("dropped collection {collection:?}");
            }
        }
    }
    Ok(())
}
