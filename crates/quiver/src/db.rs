//! The database: a data folder holding collections, owned by one process at a time.
//!
//! Layout: `<root>/LOCK` (held while open), `<root>/collections/<name>/` per collection.
//! Creating a collection builds it under `.create-<name>` and renames it into place; dropping
//! renames it to `.drop-<name>` before deleting, so a crash never leaves half a collection under
//! a real name. Folders named `.create-*` or `.drop-*` are leftovers of such steps and are
//! removed on open; anything else Quiver did not make (a `.DS_Store`, a user's `.backup`
//! folder, a stray file) is left alone and ignored. `<root>/ALIASES` holds the aliases (see
//! `aliases`).

use crate::aliases::{self, AliasAction};
use crate::collection::{self, Collection};
use crate::error::{Error, Result};
use crate::remote::{Home, RemoteOptions};
use crate::settings::CollectionSettings;
use crate::snapshot::{self, SnapshotInfo};
use crate::types::{validate_name, CollectionConfig};
use parking_lot::Mutex;
use quiver_storage::{fsio, lock::DirLock, StorageError};
use std::collections::{BTreeMap, HashMap};
use std::path::{Path, PathBuf};
use std::sync::Arc;

/// An open data folder.
pub struct Database {
    root: PathBuf,
    _lock: DirLock,
    open: Mutex<HashMap<String, Collection>>,
    /// Alias -> collection. Taken after `open` when both are needed.
    aliases: Mutex<BTreeMap<String, String>>,
    /// The object store that is the collections' home, when there is one (`open_url`); the
    /// folder is then a cache of it.
    home: Option<Arc<Home>>,
}

impl std::fmt::Debug for Database {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Database").field("root", &self.root).finish()
    }
}

impl Database {
    /// Opens (creating if needed) the data folder at `root` and takes its lock. A second opener,
    /// in this or another process, gets a [`StorageError::Locked`] error at once.
    pub fn open(root: impl AsRef<Path>) -> Result<Database> {
        let root = root.as_ref().to_path_buf();
        fsio::create_dir_durable(&root)?;
        let lock = DirLock::acquire(&root)?;
        let cdir = root.join("collections");
        fsio::create_dir_durable(&cdir)?;
        // A snapshot recovery swaps folders in two renames (`NAME` -> `.replaced-NAME`, the
        // staging folder -> `NAME`). Interrupted between them, the old collection comes back;
        // after them, the old folder is removed.
        for entry in std::fs::read_dir(&cdir).map_err(StorageError::io(&cdir))? {
            let entry = entry.map_err(StorageError::io(&cdir))?;
            let name = entry.file_name().to_string_lossy().into_owned();
            let Some(coll) = name.strip_prefix(".replaced-").filter(|c| validate_name(c).is_ok()) else {
                continue;
            };
            let (old, live) = (entry.path(), cdir.join(coll));
            if collection::manifest_path(&live).exists() {
                std::fs::remove_dir_all(&old).map_err(StorageError::io(&old))?;
            } else {
                if live.exists() {
                    std::fs::remove_dir_all(&live).map_err(StorageError::io(&live))?;
                }
                std::fs::rename(&old, &live).map_err(StorageError::io(&live))?;
                fsio::fsync_dir(&cdir)?;
            }
        }
        for entry in std::fs::read_dir(&cdir).map_err(StorageError::io(&cdir))? {
            let entry = entry.map_err(StorageError::io(&cdir))?;
            let name = entry.file_name().to_string_lossy().into_owned();
            let ours = [".create-", ".drop-", ".recover-"]
                .iter()
                .any(|prefix| name.strip_prefix(prefix).is_some_and(|rest| validate_name(rest).is_ok()));
            if ours && entry.file_type().is_ok_and(|t| t.is_dir()) {
                let p = entry.path();
                std::fs::remove_dir_all(&p).map_err(StorageError::io(&p))?;
            }
        }
        let aliases = aliases::load(&root)?;
        Ok(Database {
            root,
            _lock: lock,
            open: Mutex::new(HashMap::new()),
            aliases: Mutex::new(aliases),
            home: None,
        })
    }

    /// Opens a database whose home is object storage (`s3://bucket/prefix`, `gs://`, `az://`,
    /// `file:///folder`; see [`quiver_storage::object`] for credentials), with `cache` as its
    /// local folder: collections are restored from the store into it when they open, and
    /// every write is acknowledged once it is durable in the store (see [`crate::remote`]).
    /// With `options.read_only` it is a replica that follows the writer and refuses writes.
    pub fn open_url(url: &str, cache: impl AsRef<Path>, options: RemoteOptions) -> Result<Database> {
        let bucket = quiver_storage::object::Bucket::open(url)?;
        let mut db = Database::open(cache)?;
        // Reach the store now, so a wrong bucket, endpoint or key shows at once.
        bucket.list("collections", Some("collections/~"))?;
        let id_path = db.root.join("WRITER_ID");
        let id = match std::fs::read(&id_path).ok().and_then(|b| <[u8; 16]>::try_from(b).ok()) {
            Some(id) => id,
            None => {
                let id = *uuid::Uuid::new_v4().as_bytes();
                fsio::replace_file_atomic(&id_path, &id)?;
                id
            }
        };
        db.home = Some(Arc::new(Home::new(bucket, options, id)));
        Ok(db)
    }

    /// Where the collections live when that is object storage: its URL and whether this
    /// process is a read-only replica.
    pub fn storage_url(&self) -> Option<(&str, bool)> {
        self.home.as_ref().map(|h| (h.bucket.url(), h.options.read_only))
    }

    fn writable(&self) -> Result<()> {
        match &self.home {
            Some(h) if h.options.read_only => Err(Error::ReadOnly(format!("database on {}", h.bucket.url()))),
            _ => Ok(()),
        }
    }

    /// Opens a collection's folder; on object storage, restores it first, then keeps the
    /// cache under its cap by removing the folders of collections not open, least recently
    /// opened first.
    fn open_dir(&self, name: &str, dir: &Path, open: &HashMap<String, Collection>) -> Result<Collection> {
        let Some(home) = &self.home else {
            return Collection::open(name, dir);
        };
        let c = crate::remote::open_collection(home, name, dir)?;
        if let Some(cap) = home.options.cache_max_bytes {
            let mut keep: std::collections::HashSet<String> = open.keys().cloned().collect();
            keep.insert(name.to_string());
            crate::remote::trim_cache(&self.collections_dir(), cap, &keep)?;
        }
        Ok(c)
    }

    /// On object storage: the bytes the cache folder's collections take, and its cap.
    pub fn cache_usage(&self) -> Option<(u64, Option<u64>)> {
        let home = self.home.as_ref()?;
        Some((crate::remote::cache_bytes(&self.collections_dir()), home.options.cache_max_bytes))
    }

    /// The data folder.
    pub fn root(&self) -> &Path {
        &self.root
    }

    fn collections_dir(&self) -> PathBuf {
        self.root.join("collections")
    }

    /// Creates a collection; fails with [`Error::CollectionExists`] if the name is taken.
    pub fn create_collection(&self, name: &str, config: CollectionConfig) -> Result<Collection> {
        self.create_collection_with(name, config, &CollectionSettings::default())
    }

    /// Creates a collection with its settings (metadata, strict mode, hints) in place from
    /// the start: the folder appears with both or not at all.
    pub fn create_collection_with(&self, name: &str, config: CollectionConfig, settings: &CollectionSettings) -> Result<Collection> {
        validate_name(name)?;
        config.validate()?;
        if let Some(sm) = &settings.strict_mode {
            sm.validate()?;
        }
        self.writable()?;
        let mut open = self.open.lock();
        let dir = self.collections_dir().join(name);
        if let Some(home) = &self.home {
            if open.contains_key(name) || home.exists(name)? {
                return Err(Error::CollectionExists(name.to_string()));
            }
            // A folder the store does not know is a stale cache (dropped elsewhere).
            if dir.exists() {
                std::fs::remove_dir_all(&dir).map_err(StorageError::io(&dir))?;
            }
        }
        if dir.exists() {
            return Err(Error::CollectionExists(name.to_string()));
        }
        if self.aliases.lock().contains_key(name) {
            return Err(Error::InvalidRequest(format!(
                "{name:?} is an alias; a collection cannot take its name (delete or rename the alias first)"
            )));
        }
        let tmp = self.collections_dir().join(format!(".create-{name}"));
        if tmp.exists() {
            std::fs::remove_dir_all(&tmp).map_err(StorageError::io(&tmp))?;
        }
        collection::create_files(&tmp, &config)?;
        if *settings != CollectionSettings::default() {
            crate::settings::save(&tmp, settings)?;
        }
        if let Some(home) = &self.home {
            // Entry 0 of its log: of two processes creating it, one wins.
            home.create(name, &tmp)?;
        }
        std::fs::rename(&tmp, &dir).map_err(StorageError::io(&dir))?;
        fsio::fsync_dir(&self.collections_dir())?;
        let c = self.open_dir(name, &dir, &open)?;
        open.insert(name.to_string(), c.clone());
        Ok(c)
    }

    /// Opens a collection by its name or an alias (recovering it on first use in this process).
    pub fn collection(&self, name: &str) -> Result<Collection> {
        validate_name(name)?;
        let mut open = self.open.lock();
        let name = if open.contains_key(name) || self.collection_exists(name) {
            name.to_string()
        } else {
            self.aliases
                .lock()
                .get(name)
                .cloned()
                .ok_or_else(|| Error::CollectionNotFound(name.to_string()))?
        };
        let name = name.as_str();
        let dir = self.collections_dir().join(name);
        if let Some(c) = open.get(name) {
            let Some(lost) = c.replica_lost() else {
                return Ok(c.clone());
            };
            // A replica that can no longer follow its log: retired, and restored afresh below
            // if the collection is still in the store (it fell behind the writer's cleanup).
            c.retire();
            open.remove(name);
            if lost == crate::remote::follower::Lost::Dropped {
                let _ = std::fs::remove_dir_all(&dir);
                return Err(Error::CollectionNotFound(name.to_string()));
            }
        }
        if self.home.is_none() && !collection::manifest_path(&dir).exists() {
            return Err(Error::CollectionNotFound(name.to_string()));
        }
        let c = self.open_dir(name, &dir, &open)?;
        open.insert(name.to_string(), c.clone());
        Ok(c)
    }

    /// Changes a collection's index configuration (HNSW `m`, `ef_construct`, quantization,
    /// thresholds): the manifest is rewritten, then the collection is reopened with it, so the
    /// graph is rebuilt in the background when its shape changed (searches stay exact until
    /// it is ready). Handles taken before the change fail their next write with
    /// [`Error::CollectionNotFound`]; take a new one.
    pub fn reconfigure_index(&self, name: &str, index: crate::IndexConfig) -> Result<Collection> {
        let c = self.collection(name)?;
        let mut open = self.open.lock();
        if c.config().index == index {
            return Ok(c);
        }
        c.set_index_config(index)?;
        self.reopen_locked(&mut open, c)
    }

    /// Closes and opens a collection again, so that settings read on open (where the main
    /// vectors live: `on_disk`) take effect. Handles taken before fail their next write with
    /// [`Error::CollectionNotFound`]; take a new one.
    pub fn reopen_collection(&self, name: &str) -> Result<Collection> {
        let c = self.collection(name)?;
        let mut open = self.open.lock();
        self.reopen_locked(&mut open, c)
    }

    fn reopen_locked(&self, open: &mut HashMap<String, Collection>, c: Collection) -> Result<Collection> {
        let real = c.name().to_string();
        c.retire();
        open.remove(&real);
        drop(c);
        let fresh = self.open_dir(&real, &self.collections_dir().join(&real), open)?;
        open.insert(real, fresh.clone());
        Ok(fresh)
    }

    /// `true` when the collection exists (by its own name, not an alias).
    pub fn has_collection(&self, name: &str) -> bool {
        validate_name(name).is_ok() && self.collection_exists(name)
    }

    fn collection_exists(&self, name: &str) -> bool {
        match &self.home {
            Some(home) => home.exists(name).unwrap_or(false),
            None => collection::manifest_path(&self.collections_dir().join(name)).exists(),
        }
    }

    /// Applies alias changes in order, all or nothing: each alias must name an existing
    /// collection and no collection's own name; deleting or renaming an alias that does not
    /// exist is [`Error::AliasNotFound`].
    pub fn update_aliases(&self, actions: &[AliasAction]) -> Result<()> {
        self.writable()?;
        let _open = self.open.lock();
        let mut aliases = self.aliases.lock();
        let next = aliases::apply(&aliases, actions, |n| validate_name(n).is_ok() && self.collection_exists(n))?;
        aliases::save(&self.root, &next)?;
        *aliases = next;
        Ok(())
    }

    /// Every alias and the collection it names, sorted by alias.
    pub fn list_aliases(&self) -> Vec<(String, String)> {
        self.aliases.lock().iter().map(|(a, c)| (a.clone(), c.clone())).collect()
    }

    /// Names of every collection, sorted.
    pub fn list_collections(&self) -> Result<Vec<String>> {
        if let Some(home) = &self.home {
            return home.names();
        }
        let cdir = self.collections_dir();
        let mut names = Vec::new();
        for entry in std::fs::read_dir(&cdir).map_err(StorageError::io(&cdir))? {
            let entry = entry.map_err(StorageError::io(&cdir))?;
            let name = entry.file_name().to_string_lossy().into_owned();
            if validate_name(&name).is_ok() && collection::manifest_path(&entry.path()).exists() {
                names.push(name);
            }
        }
        names.sort();
        Ok(names)
    }

    /// Deletes a collection and its files. Handles to it that others still hold fail on their
    /// next write.
    pub fn drop_collection(&self, name: &str) -> Result<()> {
        validate_name(name)?;
        self.writable()?;
        let mut open = self.open.lock();
        let dir = self.collections_dir().join(name);
        if let Some(home) = &self.home {
            if !home.exists(name)? {
                return Err(Error::CollectionNotFound(name.to_string()));
            }
            if let Some(c) = open.remove(name) {
                c.retire();
            }
            home.delete(name)?;
            std::fs::create_dir_all(&dir).map_err(StorageError::io(&dir))?;
        }
        if !dir.exists() {
            return Err(Error::CollectionNotFound(name.to_string()));
        }
        if let Some(c) = open.remove(name) {
            c.retire();
        }
        let doomed = self.collections_dir().join(format!(".drop-{name}"));
        if doomed.exists() {
            std::fs::remove_dir_all(&doomed).map_err(StorageError::io(&doomed))?;
        }
        std::fs::rename(&dir, &doomed).map_err(StorageError::io(&dir))?;
        fsio::fsync_dir(&self.collections_dir())?;
        std::fs::remove_dir_all(&doomed).map_err(StorageError::io(&doomed))?;
        // Aliases of a dropped collection go with it (as in Qdrant).
        let mut aliases = self.aliases.lock();
        if aliases.values().any(|c| c == name) {
            let mut next = aliases.clone();
            next.retain(|_, c| c != name);
            aliases::save(&self.root, &next)?;
            *aliases = next;
        }
        Ok(())
    }

    fn snapshots_dir(&self, collection: &str) -> PathBuf {
        snapshot::snapshots_root(&self.root).join(collection)
    }

    /// Takes a snapshot of a collection (see [`crate::snapshot`]): a consistent point in time
    /// while writes continue.
    pub fn create_snapshot(&self, name: &str) -> Result<SnapshotInfo> {
        let c = self.collection(name)?;
        let dir = self.snapshots_dir(c.name());
        let info = snapshot::create(&c, &dir)?;
        self.upload_snapshot(&dir, &info)?;
        Ok(info)
    }

    /// On object storage, puts a snapshot just taken in the store (where it is listed,
    /// downloaded and deleted from); a failed upload is the caller's error.
    fn upload_snapshot(&self, dir: &Path, info: &SnapshotInfo) -> Result<()> {
        if let Some(home) = &self.home {
            crate::remote::snapshots::upload(home, dir, info)?;
        }
        Ok(())
    }

    /// A collection's snapshots, oldest first (the collection must exist).
    pub fn list_snapshots(&self, name: &str) -> Result<Vec<SnapshotInfo>> {
        let c = self.collection(name)?;
        match &self.home {
            Some(home) => crate::remote::snapshots::list(home, &self.snapshots_dir(c.name())),
            None => snapshot::list(&self.snapshots_dir(c.name())),
        }
    }

    /// The file of one snapshot of a collection, if it exists (`None` for any name that is not
    /// a plain snapshot file name).
    pub fn snapshot_file(&self, name: &str, snapshot: &str) -> Result<Option<PathBuf>> {
        let c = self.collection(name)?;
        if let Some(home) = &self.home {
            return crate::remote::snapshots::file(home, &self.snapshots_dir(c.name()), snapshot);
        }
        let path = self.snapshots_dir(c.name()).join(snapshot);
        Ok((snapshot::valid_snapshot_name(snapshot) && path.is_file()).then_some(path))
    }

    /// Deletes one snapshot of a collection; `false` when there is no such snapshot.
    pub fn delete_snapshot(&self, name: &str, snapshot: &str) -> Result<bool> {
        let c = self.collection(name)?;
        if let Some(home) = &self.home {
            self.writable()?;
            return crate::remote::snapshots::delete(home, &self.snapshots_dir(c.name()), snapshot);
        }
        snapshot::delete(&self.snapshots_dir(c.name()), snapshot)
    }

    /// Replaces (or creates) collection `name` with the one in the snapshot `archive`, after
    /// checking its checksum (when given), its contents and that it opens. All or nothing: on
    /// any error the data folder is as it was.
    pub fn recover_snapshot(&self, name: &str, archive: &Path, checksum: Option<&str>) -> Result<Collection> {
        validate_name(name)?;
        self.writable()?;
        if self.home.is_some() {
            return Err(Error::Unsupported(
                "recovering a snapshot into a collection on object storage (recover it into a local data folder, then copy its points)"
                    .into(),
            ));
        }
        if !archive.is_file() {
            return Err(Error::InvalidRequest(format!(
                "Snapshot file {:?} does not exist",
                archive.display().to_string()
            )));
        }
        if let Some(sum) = checksum {
            snapshot::verify_checksum(archive, sum)?;
        }
        let staging = self.collections_dir().join(format!(".recover-{name}"));
        if staging.exists() {
            std::fs::remove_dir_all(&staging).map_err(StorageError::io(&staging))?;
        }
        let checked = snapshot::unpack(archive, &staging).and_then(|()| snapshot::check_opens(name, &staging));
        if let Err(e) = checked {
            let _ = std::fs::remove_dir_all(&staging);
            return Err(e);
        }
        if self.aliases.lock().contains_key(name) {
            let _ = std::fs::remove_dir_all(&staging);
            return Err(Error::InvalidRequest(format!(
                "{name:?} is an alias; recover into a collection name"
            )));
        }
        let mut open = self.open.lock();
        let dir = self.collections_dir().join(name);
        if dir.exists() {
            if let Some(c) = open.remove(name) {
                c.retire();
            }
            // Two renames; `Database::open` finishes or undoes a swap a crash interrupted.
            let replaced = self.collections_dir().join(format!(".replaced-{name}"));
            if replaced.exists() {
                std::fs::remove_dir_all(&replaced).map_err(StorageError::io(&replaced))?;
            }
            std::fs::rename(&dir, &replaced).map_err(StorageError::io(&dir))?;
            std::fs::rename(&staging, &dir).map_err(StorageError::io(&dir))?;
            fsio::fsync_dir(&self.collections_dir())?;
            let _ = std::fs::remove_dir_all(&replaced);
        } else {
            std::fs::rename(&staging, &dir).map_err(StorageError::io(&dir))?;
            fsio::fsync_dir(&self.collections_dir())?;
        }
        let c = Collection::open(name, &dir)?;
        open.insert(name.to_string(), c.clone());
        Ok(c)
    }

    /// The folder where snapshot files to recover from may be placed (`file://` locations
    /// must point inside it).
    pub fn snapshots_root(&self) -> PathBuf {
        snapshot::snapshots_root(&self.root)
    }

    fn full_dir(&self) -> PathBuf {
        snapshot::snapshots_root(&self.root).join(snapshot::FULL_DIR)
    }

    /// A snapshot of every collection and the aliases, as one archive of collection snapshots.
    pub fn create_full_snapshot(&self) -> Result<SnapshotInfo> {
        let info = snapshot::create_full(self, &self.full_dir())?;
        self.upload_snapshot(&self.full_dir(), &info)?;
        Ok(info)
    }

    /// The full snapshots, oldest first.
    pub fn list_full_snapshots(&self) -> Result<Vec<SnapshotInfo>> {
        match &self.home {
            Some(home) => crate::remote::snapshots::list(home, &self.full_dir()),
            None => snapshot::list(&self.full_dir()),
        }
    }

    /// The file of a full snapshot, if it exists (on object storage, downloaded first).
    pub fn full_snapshot_file(&self, snapshot: &str) -> Result<Option<PathBuf>> {
        if let Some(home) = &self.home {
            return crate::remote::snapshots::file(home, &self.full_dir(), snapshot);
        }
        let path = self.full_dir().join(snapshot);
        Ok((snapshot::valid_snapshot_name(snapshot) && path.is_file()).then_some(path))
    }

    /// Deletes a full snapshot; `false` when there is none of that name.
    pub fn delete_full_snapshot(&self, snapshot: &str) -> Result<bool> {
        if let Some(home) = &self.home {
            self.writable()?;
            return crate::remote::snapshots::delete(home, &self.full_dir(), snapshot);
        }
        snapshot::delete(&self.full_dir(), snapshot)
    }

    /// On object storage, lets every writer upload what it has queued and give up its lease
    /// (so the next writer need not wait for it to expire); later writes fail. Dropping the
    /// database does the same; a server calls this when it stops, whoever still holds a handle.
    pub fn close(&self) {
        for c in self.open.lock().values() {
            c.close_remote();
        }
    }

    /// Flushes every open collection's WAL into segments.
    pub fn flush(&self) -> Result<()> {
        let open: Vec<Collection> = self.open.lock().values().cloned().collect();
        for c in open {
            c.flush()?;
        }
        Ok(())
    }
}

impl Drop for Database {
    /// On object storage, every writer uploads what it has queued and gives up its lease, so
    /// that the next process (a new server, the next command) need not wait for it to expire.
    fn drop(&mut self) {
        self.close();
    }
}
