//! Snapshots of collections on object storage live in the store, beside the collections:
//! `snapshots/<collection>/<file>` (full snapshots under `snapshots/.full/`), each with its
//! `<file>.checksum` object. A node's `snapshots/` folder is a cache of them: a snapshot is
//! taken locally as on a local data folder, uploaded, and listed, downloaded and deleted
//! through the store, so that it outlives the node and every replica can serve it.

use super::Home;
use crate::error::Result;
use crate::snapshot::{self, SnapshotInfo, CHECKSUM_SUFFIX};
use quiver_storage::{fsio, StorageError};
use std::path::{Path, PathBuf};

/// The store's folder of the snapshots kept locally in `local` (`.../snapshots/<folder>`).
fn prefix(local: &Path) -> String {
    let folder = local.file_name().map(|n| n.to_string_lossy().into_owned()).unwrap_or_default();
    format!("snapshots/{folder}")
}

/// Uploads the snapshot just written as `local/<name>` and its checksum file.
pub(crate) fn upload(home: &Home, local: &Path, info: &SnapshotInfo) -> Result<()> {
    let p = prefix(local);
    let checksum = local.join(format!("{}{CHECKSUM_SUFFIX}", info.name));
    if checksum.exists() {
        home.bucket.upload(&format!("{p}/{}{CHECKSUM_SUFFIX}", info.name), &checksum)?;
    }
    // The snapshot last: a listing shows it only once its checksum is there too.
    home.bucket.upload(&format!("{p}/{}", info.name), &local.join(&info.name))?;
    Ok(())
}

/// The snapshots in the store for the local folder `local`, oldest first.
pub(crate) fn list(home: &Home, local: &Path) -> Result<Vec<SnapshotInfo>> {
    let p = prefix(local);
    let listed: Vec<_> = home
        .bucket
        .list(&p, None)?
        .into_iter()
        .filter(|o| o.key.rsplit('/').next().is_some_and(snapshot::valid_snapshot_name) && o.key.starts_with(&format!("{p}/")))
        .collect();
    let sums = home
        .bucket
        .get_many(&listed.iter().map(|o| format!("{}{CHECKSUM_SUFFIX}", o.key)).collect::<Vec<_>>())?;
    let mut out: Vec<SnapshotInfo> = listed
        .into_iter()
        .zip(sums)
        .map(|(o, sum)| SnapshotInfo {
            name: o.key.rsplit('/').next().unwrap_or_default().to_string(),
            creation_time: Some(snapshot::rfc3339(
                std::time::UNIX_EPOCH + std::time::Duration::from_millis(o.modified_ms.max(0) as u64),
            )),
            size: o.size,
            checksum: sum.map(|s| String::from_utf8_lossy(&s).trim().to_string()),
        })
        .collect();
    out.sort_by(|a, b| a.creation_time.cmp(&b.creation_time).then(a.name.cmp(&b.name)));
    Ok(out)
}

/// The local file of snapshot `name`, downloaded from the store unless the cache holds it
/// already (same size); `None` when the store has no such snapshot.
pub(crate) fn file(home: &Home, local: &Path, name: &str) -> Result<Option<PathBuf>> {
    if !snapshot::valid_snapshot_name(name) {
        return Ok(None);
    }
    let key = format!("{}/{name}", prefix(local));
    let Some(head) = home.bucket.head(&key)? else {
        return Ok(None);
    };
    let path = local.join(name);
    if std::fs::metadata(&path).is_ok_and(|m| m.len() == head.size) {
        return Ok(Some(path));
    }
    std::fs::create_dir_all(local).map_err(StorageError::io(local))?;
    if let Some(sum) = home.bucket.get(&format!("{key}{CHECKSUM_SUFFIX}"))? {
        fsio::replace_file_atomic(&local.join(format!("{name}{CHECKSUM_SUFFIX}")), &sum)?;
    }
    Ok(home.bucket.download(&key, &path)?.map(|_| path))
}

/// Deletes snapshot `name` from the store and the cache; `false` when the store had none.
pub(crate) fn delete(home: &Home, local: &Path, name: &str) -> Result<bool> {
    if !snapshot::valid_snapshot_name(name) {
        return Ok(false);
    }
    let key = format!("{}/{name}", prefix(local));
    let existed = home.bucket.head(&key)?.is_some();
    home.bucket.delete(&key)?;
    home.bucket.delete(&format!("{key}{CHECKSUM_SUFFIX}"))?;
    snapshot::delete(local, name)?;
    Ok(existed)
}
