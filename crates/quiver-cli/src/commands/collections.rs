//! Collections: create, list, info, drop, payload indexes, build-index, compact.

use super::{text, Ctx};
use crate::render::{count, Message, Output};
use anyhow::{bail, Context, Result};
use clap::Args;
use quiver::vector_model::{DenseParams, SparseParams};
use quiver::{CollectionConfig, Durability, Metric, PayloadIndexType};
use serde_json::{json, Value};

/// The approximate index of a new collection.
#[derive(Args)]
pub struct IndexArgs {
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
    /// The most threads a build of the index uses (0 = every core). With 1 the same writes
    /// always give the same graph.
    #[arg(long, default_value_t = 0)]
    build_threads: usize,
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
            build_threads: self.build_threads,
        })
    }
}

#[derive(Args)]
pub struct CreateArgs {
    /// The collection's name.
    collection: String,
    /// Vector dimension (1..=65536); with --model it comes from the model.
    #[arg(long, required_unless_present_any = ["model", "vector", "sparse"])]
    dim: Option<usize>,
    /// A named dense vector, NAME:DIM[:METRIC][:multi] (repeatable); `multi` makes it a
    /// multivector scored by MaxSim. Without --dim/--model the first one is the main vector
    /// (the one the HNSW index serves); the others are searched exactly.
    #[arg(long = "vector", value_name = "NAME:DIM[:METRIC][:multi]")]
    vector: Vec<String>,
    /// A named sparse vector, NAME[:idf] (repeatable); `idf` weights queries by inverse
    /// document frequency (BM25-style scores from term counts).
    #[arg(long = "sparse", value_name = "NAME[:idf]")]
    sparse: Vec<String>,
    /// Make a text collection embedded by this model (all-minilm-l6-v2): `quiver add` and
    /// `search --text` then take text.
    #[arg(long)]
    model: Option<String>,
    /// How the model computes for this collection: float (the default: the reference
    /// embeddings to cosine 0.9999) or int8 (about 1.6x faster, cosine 0.996 on average with
    /// them). Recorded:
    /// `add`, `ingest` and `search --text` then run at it.
    #[arg(long, requires = "model", value_parser = super::parse_precision)]
    precision: Option<quiver::EmbedPrecision>,
    /// cosine | dot | euclid | manhattan
    #[arg(long, default_value = "cosine")]
    metric: String,
    /// Group commit: fsync at most every N milliseconds instead of on every write (writes
    /// still survive a process crash; a power loss may lose the last N ms).
    #[arg(long)]
    group_commit_ms: Option<u32>,
    /// Keep the main vectors on disk (Qdrant's `on_disk`): a file the kernel pages in and out,
    /// so the collection may be larger than memory; the graph and its codes stay in memory.
    #[arg(long)]
    on_disk: bool,
    #[command(flatten)]
    index: IndexArgs,
}

pub fn create(ctx: &Ctx, a: &CreateArgs) -> Result<Box<dyn Output>> {
    let metric: Metric = a.metric.parse()?;
    let info = a.model.as_deref().map(text::model_info).transpose()?;
    let dim = match (info, a.dim) {
        (Some(m), d) => {
            if let Some(d) = d.filter(|d| *d != m.dim) {
                bail!("--dim {d} differs from the dimension of {} ({})", m.name, m.dim);
            }
            m.dim
        }
        (None, Some(d)) => d,
        (None, None) if !a.vector.is_empty() || !a.sparse.is_empty() => 0,
        (None, None) => bail!("give --dim, --model, --vector or --sparse"),
    };
    let mut dense = Vec::new();
    if dim > 0 {
        dense.push((
            String::new(),
            DenseParams {
                dim,
                metric,
                multivector: false,
            },
        ));
    }
    for spec in &a.vector {
        dense.push(parse_dense_spec(spec)?);
    }
    let mut sparse = std::collections::BTreeMap::new();
    for spec in &a.sparse {
        let (name, idf) = match spec.split_once(':') {
            Some((n, "idf")) => (n, true),
            Some((_, other)) => bail!("--sparse {spec}: expected NAME or NAME:idf, not {other:?}"),
            None => (spec.as_str(), false),
        };
        sparse.insert(name.to_string(), SparseParams { idf });
    }
    let (dim, metric, schema) = quiver::VectorSchema::from_spaces(dense, sparse)?;
    let mut config = CollectionConfig::new(dim, metric);
    config.vectors = schema;
    config.embedder = info.map(|m| m.name.to_string());
    config.embed_precision = a.precision.unwrap_or_default();
    if let Some(ms) = a.group_commit_ms {
        config.durability = Durability::Periodic { interval_ms: ms };
    }
    config.index = a.index.config(metric)?;
    let mut settings = quiver::CollectionSettings::default();
    if a.on_disk {
        let section = format!("vectors.{}", config.vectors.main);
        settings.merge_hint(&section, &serde_json::Map::from_iter([("on_disk".to_string(), json!(true))]));
    }
    ctx.db_or_create()?.create_collection_with(&a.collection, config, &settings)?;
    Ok(Box::new(Message::new(
        json!({"created": a.collection, "dim": dim, "metric": metric.name(), "on_disk": a.on_disk}),
        format!("created collection {:?} (dim {dim}, {})", a.collection, metric.name()),
    )))
}

/// `NAME:DIM[:METRIC][:multi]`.
fn parse_dense_spec(spec: &str) -> Result<(String, DenseParams)> {
    let parts: Vec<&str> = spec.split(':').collect();
    let usage = || anyhow::anyhow!("--vector {spec}: expected NAME:DIM[:METRIC][:multi], e.g. image:512:cosine");
    let (name, dim) = match parts.as_slice() {
        [name, dim, ..] => (name.to_string(), dim.parse::<usize>().map_err(|_| usage())?),
        _ => return Err(usage()),
    };
    let mut metric = Metric::Cosine;
    let mut multivector = false;
    for p in &parts[2..] {
        match *p {
            "multi" => multivector = true,
            m => metric = m.parse().map_err(|_| usage())?,
        }
    }
    Ok((name, DenseParams { dim, metric, multivector }))
}

/// A collection's name, for the commands that take nothing else.
#[derive(Args)]
pub struct NameArg {
    /// The collection's name.
    collection: String,
}

#[derive(Args)]
pub struct ConfigureArgs {
    /// The collection's name.
    collection: String,
    /// Keep the main vectors on disk (true) or in memory (false); takes effect at once (the
    /// collection is reopened).
    #[arg(long, value_name = "BOOL")]
    on_disk: Option<bool>,
}

pub fn configure(ctx: &Ctx, a: &ConfigureArgs) -> Result<Box<dyn Output>> {
    let db = ctx.db()?;
    let c = db.collection(&a.collection)?;
    let Some(on_disk) = a.on_disk else {
        bail!("nothing to change: give --on-disk true|false");
    };
    let section = format!("vectors.{}", c.config().vectors.main);
    c.update_settings(|s| {
        s.merge_hint(&section, &serde_json::Map::from_iter([("on_disk".to_string(), json!(on_disk))]));
        Ok(())
    })?;
    let c = db.reopen_collection(c.name())?;
    let f = c.footprint();
    let place = if f.vectors_on_disk { "on disk" } else { "in memory" };
    Ok(Box::new(Message::new(
        json!({"collection": c.name(), "vectors_on_disk": f.vectors_on_disk}),
        format!("{:?}: main vectors {place}", c.name()),
    )))
}

pub fn drop(ctx: &Ctx, a: &NameArg) -> Result<Box<dyn Output>> {
    ctx.db()?.drop_collection(&a.collection)?;
    Ok(Box::new(Message::new(
        json!({"dropped": a.collection}),
        format!("dropped collection {:?}", a.collection),
    )))
}

pub fn list(ctx: &Ctx) -> Result<Box<dyn Output>> {
    // No data folder yet: nothing to list (and nothing is created).
    let names = if ctx.has_data() {
        ctx.db()?.list_collections()?
    } else {
        Vec::new()
    };
    let text = if names.is_empty() {
        format!("(no collections in {})", ctx.data_dir.display())
    } else {
        names.join("\n")
    };
    Ok(Box::new(Message::new(json!(names), text)))
}

#[derive(Args)]
pub struct IndexKeyArgs {
    /// The collection's name.
    collection: String,
    /// The payload key (a dotted path reaches into objects: `meta.lang`).
    key: String,
    /// keyword | integer | float | bool | text (text: a BM25 full-text index, for keyword
    /// and hybrid search and `match: {text}` filters)
    #[arg(long = "type")]
    kind: String,
}

pub fn payload_index(ctx: &Ctx, a: &IndexKeyArgs) -> Result<Box<dyn Output>> {
    let kind: PayloadIndexType = a.kind.parse()?;
    ctx.db()?.collection(&a.collection)?.create_payload_index(&a.key, kind)?;
    Ok(Box::new(Message::new(
        json!({"indexed": a.key, "type": kind.name()}),
        format!("created {} index on {:?}", kind.name(), a.key),
    )))
}

pub fn build_index(ctx: &Ctx, a: &NameArg) -> Result<Box<dyn Output>> {
    let db = ctx.db()?;
    let c = db.collection(&a.collection)?;
    let t0 = std::time::Instant::now();
    c.build_index()?;
    let s = c.index_status();
    let secs = t0.elapsed().as_secs_f64();
    Ok(Box::new(Message::new(
        json!({"collection": a.collection, "nodes": s.nodes, "seconds": secs, "memory_bytes": s.memory_bytes}),
        format!(
            "index of {}: {} in the graph, built in {secs:.1} s, {:.1} MiB",
            a.collection,
            count(s.nodes, "point"),
            s.memory_bytes as f64 / 1048576.0
        ),
    )))
}

pub fn compact(ctx: &Ctx, a: &NameArg) -> Result<Box<dyn Output>> {
    let db = ctx.db()?;
    let c = db.collection(&a.collection)?;
    let before = c.info();
    c.compact()?;
    let after = c.info();
    Ok(Box::new(Message::new(
        json!({"segments_before": before.segments, "segments_after": after.segments, "dead_rows_freed": before.dead_rows}),
        format!(
            "compacted {:?}: {} -> {}, {} freed",
            a.collection,
            count(before.segments, "segment"),
            count(after.segments, "segment"),
            count(before.dead_rows, "dead row")
        ),
    )))
}

pub fn info(ctx: &Ctx, a: &NameArg) -> Result<Box<dyn Output>> {
    let c = ctx.db()?.collection(&a.collection)?;
    let info = c.info();
    let ix = &info.config.index;
    let status = c.index_status();
    let durability = match info.config.durability {
        Durability::Immediate => "fsync on every write".to_string(),
        Durability::Periodic { interval_ms } => format!("group commit, fsync every {interval_ms} ms"),
    };
    let indexes: Vec<Value> = info
        .payload_indexes
        .iter()
        .map(|(k, t, n, d)| json!({"key": k, "type": t.name(), "points": n, "distinct_values": d}))
        .collect();
    let v = &info.config.vectors;
    let named: Vec<Value> = v
        .dense
        .iter()
        .map(|(n, d)| json!({"name": n, "kind": if d.multivector { "multi" } else { "dense" }, "dim": d.dim, "metric": d.metric.name()}))
        .chain(v.sparse.iter().map(|(n, p)| json!({"name": n, "kind": "sparse", "idf": p.idf})))
        .collect();
    let mut json = json!({"name": info.name, "dim": info.config.dim, "main_vector": v.main, "named_vectors": named, "metric": info.config.metric.name(), "durability": durability,
           "points": info.points, "dead_rows": info.dead_rows, "segments": info.segments, "wal_bytes": info.wal_bytes,
           "last_seq": info.last_seq, "flushed_seq": info.flushed_seq, "payload_indexes": indexes,
           "kernel_isa": info.kernel_isa, "flush_error": info.flush_error, "damage": info.damage, "embedder": info.config.embedder,
           "embedder_precision": info.config.embedder.as_ref().map(|_| info.config.embed_precision.name()),
           "vector_index": {"enabled": ix.enabled, "m": ix.m, "ef_construct": ix.ef_construct, "ef": ix.ef,
                            "quantization": ix.quantization.name(), "full_scan_threshold": ix.full_scan_threshold,
                            "nodes": status.nodes, "tail": status.tail, "building": status.building,
                            "memory_bytes": status.memory_bytes, "error": status.error,
                            "target_recall": ix.target_recall, "ef_in_use": status.ef, "build_threads": ix.build_threads,
                            "estimated_recall": status.recall.map(|r| r.recall),
                            "recall_samples": status.recall.map_or(0, |r| r.samples)}});
    let footprint = c.footprint();
    json["footprint"] = json!({
        "vectors_on_disk": footprint.vectors_on_disk,
        "vectors_on_disk_fallback": footprint.vectors_fallback,
        "memory_bytes": footprint.memory(),
        "disk_bytes": footprint.disk(),
        "components": footprint.components.iter().map(|c| json!({"name": c.name, "memory_bytes": c.memory, "disk_bytes": c.disk})).collect::<Vec<_>>(),
    });

    let mut rows: Vec<(&str, String)> = vec![
        ("collection", info.name.clone()),
        ("dimension", info.config.dim.to_string()),
        ("metric", info.config.metric.name().to_string()),
    ];
    if !v.is_plain() {
        let mut parts: Vec<String> = Vec::new();
        if info.config.dim > 0 {
            parts.push(format!("{:?} (main, the dimension and metric above)", v.main));
        }
        for (n, d) in &v.dense {
            let kind = if d.multivector { "multivector" } else { "dense" };
            parts.push(format!("{n:?} {kind} {} {} (exact)", d.dim, d.metric.name()));
        }
        for (n, p) in &v.sparse {
            parts.push(format!("{n:?} sparse{}", if p.idf { " idf" } else { "" }));
        }
        rows.push(("vectors", parts.join(", ")));
    }
    if let Some(e) = &info.config.embedder {
        rows.push((
            "embedder",
            format!("{e}, {} (takes text: quiver add / search --text)", info.config.embed_precision),
        ));
    }
    rows.push(("durability", durability));
    rows.push((
        "points",
        format!("{} ({} awaiting compaction)", info.points, count(info.dead_rows, "dead row")),
    ));
    rows.push((
        "storage",
        format!(
            "{}, WAL {} bytes (seq {} written, {} in segments)",
            count(info.segments, "segment"),
            info.wal_bytes,
            info.last_seq,
            info.flushed_seq
        ),
    ));
    let mib = |b: u64| format!("{:.1} MiB", b as f64 / (1u64 << 20) as f64);
    let by = |pick: fn(&quiver::collection::ComponentBytes) -> u64| {
        footprint
            .components
            .iter()
            .filter(|c| pick(c) > 0)
            .map(|c| format!("{} {}", c.name, mib(pick(c))))
            .collect::<Vec<_>>()
            .join(", ")
    };
    let parts = by(|c| c.memory);
    rows.push((
        "memory",
        if parts.is_empty() {
            mib(footprint.memory())
        } else {
            format!("{} ({parts}; payloads estimated)", mib(footprint.memory()))
        },
    ));
    let placement = match (&footprint.vectors_fallback, footprint.vectors_on_disk) {
        (Some(why), _) => format!("; vectors meant for disk are in memory: {why}"),
        (None, true) => "; main vectors kept on disk".to_string(),
        (None, false) => String::new(),
    };
    let parts = format!("{}{placement}", by(|c| c.disk));
    let parts = parts.trim_start_matches("; ");
    rows.push((
        "disk",
        if parts.is_empty() {
            mib(footprint.disk())
        } else {
            format!("{} ({parts})", mib(footprint.disk()))
        },
    ));
    let index_text = if !ix.enabled {
        "none (every search is an exact scan)".to_string()
    } else {
        format!(
            "hnsw m={} ef_construct={} ef={} quantization={}{}, built above {} points: {} in the graph, {} scanned exactly{}",
            ix.m,
            ix.ef_construct,
            ix.ef,
            ix.quantization.name(),
            match ix.build_threads {
                0 => String::new(),
                n => format!(" build_threads={n}"),
            },
            ix.full_scan_threshold,
            status.nodes,
            status.tail,
            if status.building { ", building" } else { "" }
        )
    };
    rows.push(("vector index", index_text));
    if ix.enabled {
        let measured = match status.recall {
            Some(r) => format!(
                "estimated recall@10 {:.3} at ef {} ({} sampled searches)",
                r.recall, r.ef, r.samples
            ),
            None => "recall not measured yet (a server measures the searches it serves)".to_string(),
        };
        rows.push((
            "recall",
            format!("target {}: ef {} in use, {measured}", ix.target_recall, status.ef),
        ));
    }
    if let Some(e) = &status.error {
        rows.push(("index note", e.clone()));
    }
    rows.push(("kernels", info.kernel_isa.to_string()));
    for (k, t, n, d) in &info.payload_indexes {
        rows.push((
            "index",
            format!("{k} ({}): {}, {} distinct values", t.name(), count(*n as usize, "point"), d),
        ));
    }
    if let Some(e) = &info.flush_error {
        rows.push(("flush error", e.clone()));
    }
    if let Some(e) = &info.damage {
        rows.push(("DAMAGE", format!("{e} (answers may be wrong: restore a snapshot or a copy)")));
    }
    let text = rows.iter().map(|(k, v)| format!("{k:<12} {v}")).collect::<Vec<_>>().join("\n");
    Ok(Box::new(Message::new(json, text)))
}

/// `quiver alias`: other names for collections.
#[derive(clap::Subcommand)]
pub enum AliasCommand {
    /// Make ALIAS name COLLECTION (replacing what it named before, in one step).
    Create {
        /// The alias.
        alias: String,
        /// The collection it names.
        collection: String,
    },
    /// Remove an alias (the collection stays).
    Delete {
        /// The alias.
        alias: String,
    },
    /// Every alias and the collection it names.
    List,
}

pub fn alias(ctx: &Ctx, cmd: &AliasCommand) -> Result<Box<dyn Output>> {
    let db = ctx.db()?;
    Ok(Box::new(match cmd {
        AliasCommand::Create { alias, collection } => {
            db.update_aliases(&[quiver::AliasAction::Create {
                alias: alias.clone(),
                collection: collection.clone(),
            }])?;
            Message::new(
                json!({"alias": alias, "collection": collection}),
                format!("{alias} -> {collection}"),
            )
        }
        AliasCommand::Delete { alias } => {
            db.update_aliases(&[quiver::AliasAction::Delete { alias: alias.clone() }])?;
            Message::new(json!({"deleted_alias": alias}), format!("deleted alias {alias:?}"))
        }
        AliasCommand::List => {
            let list = db.list_aliases();
            let text = if list.is_empty() {
                "(no aliases)".to_string()
            } else {
                list.iter().map(|(a, c)| format!("{a} -> {c}")).collect::<Vec<_>>().join("\n")
            };
            Message::new(
                json!(list.iter().map(|(a, c)| json!({"alias": a, "collection": c})).collect::<Vec<_>>()),
                text,
            )
        }
    }))
}
