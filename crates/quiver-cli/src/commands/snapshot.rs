//! `quiver snapshot`: take, list and restore collection snapshots (the library's
//! `quiver::snapshot`; the same files the server's snapshot API reads and writes).

use super::*;
use crate::render::{Message, Output};
use clap::Subcommand;
use serde_json::json;

#[derive(Subcommand)]
pub enum SnapshotCommand {
    /// Write a snapshot of COLLECTION (consistent while writes go on) into the data folder's
    /// snapshots/COLLECTION/ folder, with its SHA-256.
    Create {
        /// The collection (or an alias).
        collection: String,
    },
    /// The snapshots of COLLECTION.
    List {
        /// The collection (or an alias).
        collection: String,
    },
    /// Replace (or create) COLLECTION with the one in FILE. Checked first (the checksum when
    /// given, the archive's contents, every segment): a bad file changes nothing.
    Restore {
        /// The collection to recover into.
        collection: String,
        /// The snapshot file.
        file: PathBuf,
        /// The expected SHA-256 of FILE (hex); also read from FILE.checksum when that exists.
        #[arg(long)]
        checksum: Option<String>,
    },
}

fn info_json(s: &quiver::snapshot::SnapshotInfo) -> serde_json::Value {
    json!({"name": s.name, "creation_time": s.creation_time, "size": s.size, "checksum": s.checksum})
}

pub fn run(ctx: &Ctx, cmd: &SnapshotCommand) -> Result<Box<dyn Output>> {
    let db = ctx.db()?;
    Ok(Box::new(match cmd {
        SnapshotCommand::Create { collection } => {
            let s = db.create_snapshot(collection)?;
            let path = db.snapshot_file(collection, &s.name)?.unwrap_or_default();
            Message::new(
                info_json(&s),
                format!(
                    "{} ({} bytes, sha256 {})",
                    path.display(),
                    s.size,
                    s.checksum.clone().unwrap_or_default()
                ),
            )
        }
        SnapshotCommand::List { collection } => {
            let list = db.list_snapshots(collection)?;
            let text = if list.is_empty() {
                format!("(no snapshots of {collection})")
            } else {
                list.iter()
                    .map(|s| format!("{}  {}  {} bytes", s.name, s.creation_time.clone().unwrap_or_default(), s.size))
                    .collect::<Vec<_>>()
                    .join("\n")
            };
            Message::new(json!(list.iter().map(info_json).collect::<Vec<_>>()), text)
        }
        SnapshotCommand::Restore {
            collection,
            file,
            checksum,
        } => {
            if !file.is_file() {
                bail!("snapshot file {} does not exist", file.display());
            }
            let side = PathBuf::from(format!("{}.checksum", file.display()));
            let checksum = checksum
                .clone()
                .or_else(|| std::fs::read_to_string(&side).ok().map(|s| s.trim().to_string()));
            let c = db
                .recover_snapshot(collection, file, checksum.as_deref())
                .with_context(|| format!("restoring {collection} from {}", file.display()))?;
            Message::new(
                json!({"collection": collection, "points": c.len(), "checksum_verified": checksum.is_some()}),
                format!(
                    "restored {collection}: {} points{}",
                    c.len(),
                    if checksum.is_some() { " (checksum verified)" } else { "" }
                ),
            )
        }
    }))
}
