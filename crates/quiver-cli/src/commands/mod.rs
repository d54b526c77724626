//! One module per command group. Each command is an argument struct (clap) and a function that
//! does the work through the library and returns a value for `render::emit`; none prints its
//! result itself (progress bars and the walkthrough's colours go to the terminal directly).

use anyhow::{bail, Context, Result};
use clap::Args;
use quiver::{Database, Filter, PointId, PointSelector};
use quiver_embed::minilm::Precision;
use std::path::{Path, PathBuf};

pub mod bench;
pub mod bench_query;
pub mod bench_sparse;
pub mod bench_storage;
pub mod collections;
pub mod embed;
pub mod ingest;
pub mod model;
pub mod points;
pub mod query;
pub mod search;
pub mod serve;
pub mod snapshot;
pub mod text;
pub mod walkthrough;

/// Where the collections live when that is object storage (global options).
#[derive(Args, Clone, Debug)]
pub struct StorageArgs {
    /// Keep the collections in object storage: s3://bucket/prefix (also MinIO, Ceph, R2 through
    /// AWS_ENDPOINT_URL), gs://bucket/prefix, az://container/prefix or file:///folder;
    /// credentials from the store's usual environment variables. --data-dir is then a cache.
    #[arg(long, global = true, env = "QUIVER_STORAGE", value_name = "URL")]
    pub storage: Option<String>,
    /// With --storage: follow the writer and serve reads only (a replica).
    #[arg(long, global = true, requires = "storage")]
    pub read_only: bool,
    /// With --storage: take the collections over from a writer that still holds them (it can
    /// no longer commit; nothing it acknowledged is lost).
    #[arg(long, global = true, requires = "storage", conflicts_with = "read_only")]
    pub takeover: bool,
    /// With --storage: where a write is durable when it is acknowledged. `store` (default): in
    /// the object store (it waits for its group commit). `local`: in the local WAL, uploaded
    /// right after; faster, but lost with this machine's disk, or if another writer takes over
    /// before the upload.
    #[arg(long, global = true, value_parser = ["store", "local"], default_value = "store")]
    pub wal: String,
    /// With --storage: the most GiB the cache folder may hold; collections not open are
    /// removed from it, least recently opened first (open ones stay).
    #[arg(long, global = true, value_name = "GIB")]
    pub cache_max_gb: Option<f64>,
    /// With --storage: milliseconds a group commit waits for more writes before uploading.
    #[arg(long, global = true, default_value_t = 20, value_parser = clap::value_parser!(u64).range(0..=10_000))]
    pub storage_group_ms: u64,
    /// With --storage --read-only: milliseconds between looks at the writer's log.
    #[arg(long, global = true, default_value_t = 500, value_parser = clap::value_parser!(u64).range(10..=600_000))]
    pub storage_poll_ms: u64,
    /// With --storage --read-only: how a collection missing from the cache opens. `lazy`
    /// (default): at once, its base segment's pages fetched as searches need them while the
    /// rest downloads in the background. `eager`: after downloading everything. `on-demand`:
    /// at once, and only the pages searches read are ever fetched.
    #[arg(long, global = true, value_parser = ["lazy", "eager", "on-demand"], default_value = "lazy")]
    pub cold_start: String,
    /// With --storage: seconds a writer's lease lasts without renewal.
    #[arg(long, global = true, default_value_t = 10, value_parser = clap::value_parser!(u64).range(1..=3_600))]
    pub storage_lease_secs: u64,
}

impl StorageArgs {
    fn options(&self) -> quiver::remote::RemoteOptions {
        quiver::remote::RemoteOptions {
            read_only: self.read_only,
            takeover: self.takeover,
            wal_local: self.wal == "local",
            cache_max_bytes: self.cache_max_gb.map(|g| (g * (1u64 << 30) as f64) as u64),
            group_commit: std::time::Duration::from_millis(self.storage_group_ms),
            poll: std::time::Duration::from_millis(self.storage_poll_ms),
            lease: std::time::Duration::from_secs(self.storage_lease_secs),
            cold_start: match self.cold_start.as_str() {
                "eager" => quiver::remote::ColdStart::Eager,
                "on-demand" => quiver::remote::ColdStart::OnDemand,
                _ => quiver::remote::ColdStart::Lazy,
            },
            ..Default::default()
        }
    }
}

/// What every command gets besides its own arguments.
pub struct Ctx {
    /// The data folder (`--data-dir`); a cache when `--storage` is given.
    pub data_dir: PathBuf,
    /// `--json`: the result is printed as JSON; progress bars stay quiet.
    pub json: bool,
    /// `--storage` and its options.
    pub storage: StorageArgs,
}

impl Ctx {
    /// Opens the data folder. Only `create` makes a new one: every other command works on
    /// collections that must exist, so a mistyped `--data-dir` is an error that says so instead
    /// of a new empty folder.
    pub fn db(&self) -> Result<Database> {
        if self.storage.storage.is_none() && !self.has_data() {
            bail!(
                "no Quiver data folder at {} (set --data-dir or QUIVER_DATA_DIR; `quiver create` makes one)",
                self.data_dir.display()
            );
        }
        self.open_db()
    }

    /// Opens the data folder, creating it when missing (`create` only).
    pub fn db_or_create(&self) -> Result<Database> {
        self.open_db()
    }

    /// True when the data folder exists and holds Quiver's layout.
    pub fn has_data(&self) -> bool {
        self.data_dir.join("collections").is_dir()
    }

    /// Opens the data folder, or the object store with the data folder as its cache.
    pub fn open_db(&self) -> Result<Database> {
        match &self.storage.storage {
            Some(url) => Database::open_url(url, &self.data_dir, self.storage.options())
                .with_context(|| format!("cannot open {url} (cache {})", self.data_dir.display())),
            None => Database::open(&self.data_dir).with_context(|| format!("cannot open data folder {}", self.data_dir.display())),
        }
    }

    /// A "collection not found" error with the folder it looked in and the collections there.
    pub fn explain_not_found(&self, e: anyhow::Error) -> anyhow::Error {
        let Some(quiver::Error::CollectionNotFound(name)) = e.downcast_ref::<quiver::Error>() else {
            return e;
        };
        if let Some(url) = &self.storage.storage {
            return anyhow::anyhow!("collection {name:?} not found in {url}");
        }
        let dir = self.data_dir.join("collections");
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
}

/// `--filter`, on every command that selects points.
#[derive(Args)]
pub struct FilterArg {
    /// A filter in Qdrant's JSON form, e.g. '{"must":[{"key":"color","match":{"value":"red"}}]}'.
    #[arg(long)]
    pub filter: Option<String>,
}

impl FilterArg {
    pub fn parse(&self) -> Result<Option<Filter>> {
        self.filter.as_deref().map(Filter::parse).transpose().map_err(Into::into)
    }
}

/// What a listing of points shows.
#[derive(Args)]
pub struct WithArgs {
    /// Include vectors in the output.
    #[arg(long)]
    pub with_vector: bool,
    /// Leave payloads out of the output.
    #[arg(long)]
    pub no_payload: bool,
}

impl WithArgs {
    pub fn get(&self) -> quiver::With {
        quiver::With {
            payload: !self.no_payload,
            vector: self.with_vector,
        }
    }
}

/// `--model-dir`: the same on every command that runs a model.
#[derive(Args)]
pub struct ModelDirArg {
    /// The model's folder (else QUIVER_MODEL_DIR, Quiver's model cache, the Hugging Face
    /// cache; `quiver model pull` fills Quiver's cache).
    #[arg(long)]
    pub model_dir: Option<PathBuf>,
    /// How the model computes: `float` (the default: the reference embeddings to cosine
    /// 0.9999) or `int8` (int8 weights and activations: about 1.6x faster, cosine 0.996 on
    /// average with them). A text
    /// collection runs at the precision it was created with unless this says otherwise.
    #[arg(long, value_parser = parse_precision)]
    pub precision: Option<Precision>,
}

impl ModelDirArg {
    pub fn get(&self) -> Option<&Path> {
        self.model_dir.as_deref()
    }
}

/// `--precision`: `float` or `int8`, refused in the flag's words otherwise.
pub fn parse_precision(s: &str) -> std::result::Result<Precision, String> {
    Precision::parse(s).ok_or_else(|| format!("{s:?}: expected float or int8"))
}

pub fn parse_ids(ids: &[String]) -> Result<Vec<PointId>> {
    ids.iter().map(|s| s.parse::<PointId>().map_err(Into::into)).collect()
}

/// Points by ids or by `--filter`, exactly one of the two.
pub fn selector(ids: &[String], filter: &FilterArg) -> Result<PointSelector> {
    match (ids.is_empty(), filter.parse()?) {
        (false, None) => Ok(PointSelector::Ids(parse_ids(ids)?)),
        (true, Some(f)) => Ok(PointSelector::Filter(f)),
        (false, Some(_)) => bail!("give ids or --filter, not both"),
        (true, None) => bail!("give point ids or --filter"),
    }
}

/// `-k/--limit`: at least one result, refused in the flag's words otherwise.
pub fn parse_limit(s: &str) -> std::result::Result<usize, String> {
    match s.parse::<usize>() {
        Ok(k) if (1..=quiver::SEARCH_LIMIT_MAX).contains(&k) => Ok(k),
        _ => Err(format!("-k/--limit must be a whole number from 1 to {}", quiver::SEARCH_LIMIT_MAX)),
    }
}

/// `--ef`: a list size the library accepts, refused in the flag's words otherwise.
pub fn parse_ef(s: &str) -> std::result::Result<usize, String> {
    match s.parse::<usize>() {
        Ok(ef) if (1..=quiver::EF_MAX).contains(&ef) => Ok(ef),
        _ => Err(format!("--ef must be a whole number from 1 to {}", quiver::EF_MAX)),
    }
}

/// A `--payload` argument: a JSON object.
pub fn parse_payload(text: &str) -> Result<quiver::Payload> {
    match serde_json::from_str::<serde_json::Value>(text).context("--payload must be JSON")? {
        serde_json::Value::Object(o) => Ok(o),
        _ => bail!("--payload must be a JSON object"),
    }
}

/// A spinner for a long step that has no count to show (hidden unless stderr is a terminal).
pub fn spinner(msg: &str) -> indicatif::ProgressBar {
    let pb = indicatif::ProgressBar::new_spinner();
    pb.set_message(msg.to_string());
    pb.enable_steady_tick(std::time::Duration::from_millis(120));
    pb
}
