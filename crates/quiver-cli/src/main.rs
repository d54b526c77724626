//! `quiver`: the command line over the Quiver library. Dispatch only: each command lives in a
//! module of `commands/` (its arguments and a function that returns a value), and `render`
//! prints that value for people (default) or scripts (`--json`).
//! Exit status: 0 on success, 1 on any error (printed as one line on stderr), 2 on bad usage.

use clap::{Parser, Subcommand};
use commands::{
    bench, bench_query, bench_sparse, bench_storage, collections, embed, ingest, model, points, query, search, serve, snapshot, text,
    walkthrough, Ctx,
};
use std::path::PathBuf;

mod commands;
mod render;

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
    #[command(flatten)]
    storage: commands::StorageArgs,
    #[command(subcommand)]
    command: Command,
}

#[derive(Subcommand)]
enum Command {
    /// Create a collection.
    Create(collections::CreateArgs),
    /// Insert or replace points from a JSON-lines file or a .npy float32 matrix, as one atomic batch.
    Upsert(points::UpsertArgs),
    /// Nearest-neighbour search: through the HNSW index when the collection has one (with the
    /// ef that reaches its target recall), else an exact scan; `--exact` always scans. Give the
    /// query as --vector, --text (text collections) or --file (many queries).
    Search(search::SearchArgs),
    /// Qdrant's Query API on the data folder: a JSON body (nearest, recommend, discover,
    /// context, order_by, sample, prefetch + fusion), optionally grouped (--group-by).
    Query(query::QueryArgs),
    /// Count the values of a payload key (from its index), the most frequent first.
    Facet(query::FacetArgs),
    /// Add text to a text collection: embedded with its model, stored with the text (payload
    /// key `document`), as one atomic batch.
    Add(text::AddArgs),
    /// Show the work for one text query: tokens, embeddings, pooled vector, search path,
    /// distances computed, results.
    Explain(text::ExplainArgs),
    /// Count points, optionally only those matching a filter.
    Count(points::CountArgs),
    /// Show points by id.
    Get(points::GetArgs),
    /// Delete points by id or by filter.
    Delete(points::DeleteArgs),
    /// Page through points in id order.
    Scroll(points::ScrollArgs),
    /// Merge keys into the payloads of points (by id or filter).
    SetPayload(points::SetPayloadArgs),
    /// Create a payload index that makes filters on KEY cheap (`--type text`: a BM25 full-text
    /// index for keyword and hybrid search).
    Index(collections::IndexKeyArgs),
    /// Ingest documents (.txt, .md, .html files and folders) into a text collection: split into
    /// chunks of about --max-tokens, embed, store with source, chunk number and offsets.
    /// Re-running skips unchanged files and replaces the chunks of changed ones.
    Ingest(ingest::IngestArgs),
    /// The best passages for a question, adjacent chunks merged, with their sources: ready to
    /// paste into a language model's prompt.
    Context(search::ContextArgs),
    /// Rewrite a collection's files without deleted points.
    Compact(collections::NameArg),
    /// Build (or bring up to date) the approximate index now, instead of in the background.
    BuildIndex(collections::NameArg),
    /// Change where a collection keeps its main vectors (`--on-disk true|false`)
    Configure(collections::ConfigureArgs),
    /// Show a collection's configuration and state.
    Info(collections::NameArg),
    /// List collections.
    List,
    /// Delete a collection and its files (its aliases go with it).
    Drop(collections::NameArg),
    /// Other names for collections: every command takes an alias where a collection goes.
    #[command(subcommand)]
    Alias(collections::AliasCommand),
    /// Snapshots of a collection: create, list, restore.
    #[command(subcommand)]
    Snapshot(snapshot::SnapshotCommand),
    /// Serve the Qdrant-compatible REST API over the data folder (Ctrl-C or SIGTERM stops it
    /// cleanly; every acknowledged write is already durable).
    Serve(serve::ServeArgs),
    /// The exercise "Vector Database by Hand", step by step, computed by the real engine.
    Walkthrough(walkthrough::WalkthroughArgs),
    /// Embed texts (one per line) with all-MiniLM-L6-v2: one L2-normalised 384-d vector per line.
    Embed(embed::EmbedArgs),
    /// The embedding models: list them, pull one into Quiver's cache.
    #[command(subcommand)]
    Model(model::ModelCommand),
    /// Benchmarks (see bench/ for the side-by-side comparisons with other engines).
    #[command(subcommand)]
    Bench(BenchCommand),
}

#[derive(Subcommand)]
enum BenchCommand {
    /// Exact search through the collection API: loads --base into a fresh collection without a
    /// graph index in a temporary folder (timed, durable), runs the queries one at a time on one
    /// thread, then all at once as a batch, and prints one JSON line with the rates.
    Exact(bench::ExactArgs),
    /// Embedding throughput: loads the model (not timed), then embeds the texts of --file (one
    /// per line) in batches, and prints one JSON line with texts per second.
    Embed(bench::EmbedArgs),
    /// Builds an approximate index over a .npy matrix and measures recall, QPS and latency
    /// per `ef`, one query at a time on one thread.
    Ann(bench::AnnArgs),
    /// Recall@k and MRR of dense, BM25 and hybrid retrieval on a question set.
    Retrieval(bench::RetrievalArgs),
    /// BM25 as sparse vectors: Quiver's sparse index against a brute-force scan and tantivy's
    /// BM25 over the same documents and queries (synthetic Zipf terms or a folder of text).
    Sparse(bench_sparse::SparseArgs),
    /// Facet counts and order_by from payload indexes, beside a scan of every payload.
    Payload(bench_query::PayloadArgs),
    /// A two-stage query (quantized-graph prefetch, full-precision rescoring) beside the
    /// single-stage search: recall and queries per second.
    Multistage(bench_query::MultistageArgs),
    /// An existing collection as its server sees it: open time, resident memory, footprint,
    /// and queries per second with recall per `ef` (run it in a memory cgroup to measure a
    /// collection larger than its memory: bench/on_disk.sh).
    Collection(bench_storage::CollectionBenchArgs),
}

fn main() {
    let cli = Cli::parse();
    let ctx = Ctx {
        data_dir: cli.data_dir,
        json: cli.json,
        storage: cli.storage,
    };
    match run(&ctx, &cli.command) {
        Ok(out) => render::emit(out.as_ref(), ctx.json),
        Err(e) => {
            let msg = format!("{:#}", ctx.explain_not_found(e)).replace('\n', " ");
            eprintln!("error: {msg}");
            std::process::exit(1);
        }
    }
}

fn run(ctx: &Ctx, command: &Command) -> anyhow::Result<Box<dyn render::Output>> {
    match command {
        Command::Create(a) => collections::create(ctx, a),
        Command::Upsert(a) => points::upsert(ctx, a),
        Command::Search(a) => search::search(ctx, a),
        Command::Query(a) => query::query(ctx, a),
        Command::Facet(a) => query::facet(ctx, a),
        Command::Add(a) => text::add_command(ctx, a),
        Command::Explain(a) => text::explain(ctx, a),
        Command::Count(a) => points::count_points(ctx, a),
        Command::Get(a) => points::get(ctx, a),
        Command::Delete(a) => points::delete(ctx, a),
        Command::Scroll(a) => points::scroll(ctx, a),
        Command::SetPayload(a) => points::set_payload(ctx, a),
        Command::Index(a) => collections::payload_index(ctx, a),
        Command::Ingest(a) => ingest::command(ctx, a),
        Command::Context(a) => search::context(ctx, a),
        Command::Compact(a) => collections::compact(ctx, a),
        Command::BuildIndex(a) => collections::build_index(ctx, a),
        Command::Configure(a) => collections::configure(ctx, a),
        Command::Info(a) => collections::info(ctx, a),
        Command::List => collections::list(ctx),
        Command::Drop(a) => collections::drop(ctx, a),
        Command::Alias(a) => collections::alias(ctx, a),
        Command::Snapshot(a) => snapshot::run(ctx, a),
        Command::Serve(a) => serve::serve(ctx, a),
        Command::Walkthrough(a) => walkthrough::run(ctx, a),
        Command::Embed(a) => embed::embed(a),
        Command::Model(m) => model::run(ctx, m),
        Command::Bench(b) => {
            match b {
                BenchCommand::Exact(a) => bench::exact(a)?,
                BenchCommand::Embed(a) => bench::embed(a)?,
                BenchCommand::Ann(a) => bench::ann(a)?,
                BenchCommand::Retrieval(a) => bench::retrieval(&ctx.db()?, a)?,
                BenchCommand::Sparse(a) => bench_sparse::sparse(a)?,
                BenchCommand::Payload(a) => bench_query::payload(a)?,
                BenchCommand::Multistage(a) => bench_query::multistage(a)?,
                BenchCommand::Collection(a) => bench_storage::collection(ctx, a)?,
            }
            Ok(Box::new(render::Many(Vec::new())))
        }
    }
}
