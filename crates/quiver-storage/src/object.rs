//! Object storage as the home of files: an S3-API bucket (AWS S3, MinIO, Ceph, R2, ...), Google
//! Cloud Storage, Azure Blob Storage or a local folder, through the `object_store` crate, behind
//! a small blocking interface ([`Bucket`]).
//!
//! What the layers above rely on:
//! - **Whole objects.** A put is atomic: a reader sees the old object, the new one, or none,
//!   never part of one. Large files go up in parts ([`Bucket::upload`]) and appear at once.
//! - **Create if absent** ([`Bucket::create`]): of several writers creating the same key,
//!   exactly one gets [`Created::New`]. On S3 this is `If-None-Match: *`; on a local folder a
//!   hard link that refuses to replace. It is the only conditional write used: a log of
//!   numbered objects built from it fences writers on every store.
//! - **Strongly consistent listing** (S3 since 2020, GCS, Azure, a folder): an object whose put
//!   returned is in the next listing.
//!
//! Errors are retried with exponential backoff by `object_store` (timeouts, 5xx, throttling)
//! for at most [`retry_timeout`] (30 s unless `QUIVER_OBJECT_RETRY_SECS` says otherwise); what
//! still fails comes back as [`StorageError::Object`] naming the store and the key.
//!
//! Credentials and endpoints come from the standard environment variables of each store
//! (`AWS_ACCESS_KEY_ID`, `AWS_SECRET_ACCESS_KEY`, `AWS_REGION`, `AWS_ENDPOINT_URL`,
//! `AWS_ALLOW_HTTP`, `GOOGLE_SERVICE_ACCOUNT`, `AZURE_STORAGE_ACCOUNT_NAME`, ...).
//!
//! The interface is blocking (the library is): every call runs on the bucket's own small tokio
//! runtime and the caller waits on a channel, so it may be called from any thread, including a
//! thread of another runtime.

use crate::error::{StorageError, StorageResult};
use futures::StreamExt;
use object_store::path::Path as ObjectPath;
use object_store::{ObjectStore, ObjectStoreExt, PutMode, PutOptions, PutPayload};
use std::future::Future;
use std::path::Path;
use std::sync::Arc;
use std::time::Duration;
use tokio::io::{AsyncReadExt, AsyncWriteExt};

/// How long `object_store` keeps retrying one request before the error is returned.
pub fn retry_timeout() -> Duration {
    let secs = std::env::var("QUIVER_OBJECT_RETRY_SECS")
        .ok()
        .and_then(|s| s.parse::<u64>().ok())
        .unwrap_or(30);
    Duration::from_secs(secs)
}

/// What [`Bucket::create`] found.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Created {
    /// The object was written by this call.
    New,
    /// An object already had that key; nothing was written.
    Exists,
}

/// One object of a listing.
#[derive(Clone, Debug)]
pub struct Listed {
    /// The key, relative to the bucket's prefix.
    pub key: String,
    pub size: u64,
    /// Milliseconds since the Unix epoch, by the store's clock.
    pub modified_ms: i64,
}

/// A store and a prefix in it: the keys of every call are relative to the prefix.
pub struct Bucket {
    store: Arc<dyn ObjectStore>,
    prefix: String,
    url: String,
    rt: tokio::runtime::Runtime,
}

impl std::fmt::Debug for Bucket {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Bucket").field("url", &self.url).finish()
    }
}

impl Bucket {
    /// Opens `url`: `s3://bucket/prefix`, `gs://bucket/prefix`, `az://container/prefix`
    /// (or the stores' https forms), `file:///absolute/folder`, or `memory://` (this process
    /// only, for tests). Nothing is read yet; a wrong bucket or key shows at the first call.
    pub fn open(url: &str) -> StorageResult<Bucket> {
        let bad = |reason: String| StorageError::Object {
            url: url.to_string(),
            key: String::new(),
            cause: reason,
        };
        let parsed = url::Url::parse(url).map_err(|e| bad(format!("not a URL: {e}")))?;
        let retry = object_store::RetryConfig {
            retry_timeout: retry_timeout(),
            ..Default::default()
        };
        let (store, prefix): (Arc<dyn ObjectStore>, String) = match parsed.scheme() {
            "file" => {
                let dir = parsed
                    .to_file_path()
                    .map_err(|_| bad("a file:// URL needs an absolute path".into()))?;
                std::fs::create_dir_all(&dir).map_err(StorageError::io(&dir))?;
                let fs = object_store::local::LocalFileSystem::new_with_prefix(&dir).map_err(|e| bad(e.to_string()))?;
                (Arc::new(fs.with_automatic_cleanup(true)), String::new())
            }
            "memory" => (Arc::new(object_store::memory::InMemory::new()), String::new()),
            scheme => {
                let (_, path) = object_store::ObjectStoreScheme::parse(&parsed).map_err(|e| bad(e.to_string()))?;
                let prefix = path.as_ref().trim_matches('/').to_string();
                let store: Arc<dyn ObjectStore> = match scheme {
                    "s3" | "s3a" => Arc::new(
                        object_store::aws::AmazonS3Builder::from_env()
                            .with_url(url)
                            .with_retry(retry)
                            .build()
                            .map_err(|e| bad(e.to_string()))?,
                    ),
                    "gs" => Arc::new(
                        object_store::gcp::GoogleCloudStorageBuilder::from_env()
                            .with_url(url)
                            .with_retry(retry)
                            .build()
                            .map_err(|e| bad(e.to_string()))?,
                    ),
                    "az" | "azure" | "abfs" | "abfss" => Arc::new(
                        object_store::azure::MicrosoftAzureBuilder::from_env()
                            .with_url(url)
                            .with_retry(retry)
                            .build()
                            .map_err(|e| bad(e.to_string()))?,
                    ),
                    other => {
                        return Err(bad(format!(
                            "unsupported scheme {other:?} (s3://, gs://, az://, file:// or memory://)"
                        )))
                    }
                };
                (store, prefix)
            }
        };
        Ok(Bucket::from_store(store, &prefix, url))
    }

    /// A bucket over a store made elsewhere (tests wrap one to inject failures).
    pub fn from_store(store: Arc<dyn ObjectStore>, prefix: &str, url: &str) -> Bucket {
        let rt = tokio::runtime::Builder::new_multi_thread()
            .worker_threads(2)
            .thread_name("quiver-object")
            .enable_all()
            .build()
            .expect("a tokio runtime for object storage");
        Bucket {
            store,
            prefix: prefix.trim_matches('/').to_string(),
            url: url.to_string(),
            rt,
        }
    }

    /// The URL the bucket was opened with.
    pub fn url(&self) -> &str {
        &self.url
    }

    fn path(&self, key: &str) -> ObjectPath {
        if self.prefix.is_empty() {
            ObjectPath::from(key)
        } else {
            ObjectPath::from(format!("{}/{key}", self.prefix))
        }
    }

    fn relative(&self, p: &ObjectPath) -> String {
        let s = p.as_ref();
        if self.prefix.is_empty() {
            s.to_string()
        } else {
            s.strip_prefix(&self.prefix)
                .map(|r| r.trim_start_matches('/'))
                .unwrap_or(s)
                .to_string()
        }
    }

    fn err(&self, key: &str, e: impl std::fmt::Display) -> StorageError {
        StorageError::Object {
            url: self.url.clone(),
            key: key.to_string(),
            cause: e.to_string(),
        }
    }

    /// Runs `fut` on the bucket's runtime and waits for it (from any thread).
    fn run<T: Send + 'static>(&self, fut: impl Future<Output = T> + Send + 'static) -> T {
        let (tx, rx) = std::sync::mpsc::sync_channel(1);
        self.rt.spawn(async move {
            let _ = tx.send(fut.await);
        });
        rx.recv().expect("the object-storage runtime dropped a request")
    }

    /// The object's bytes, or `None` when there is no such key.
    pub fn get(&self, key: &str) -> StorageResult<Option<Vec<u8>>> {
        let (store, path) = (self.store.clone(), self.path(key));
        let got = self.run(async move {
            match store.get(&path).await {
                Ok(r) => r.bytes().await.map(Some),
                Err(object_store::Error::NotFound { .. }) => Ok(None),
                Err(e) => Err(e),
            }
        });
        got.map(|b| b.map(|b| b.to_vec())).map_err(|e| self.err(key, e))
    }

    /// The object's size and time, or `None` when there is no such key.
    pub fn head(&self, key: &str) -> StorageResult<Option<Listed>> {
        let (store, path) = (self.store.clone(), self.path(key));
        let r = self.run(async move {
            match store.head(&path).await {
                Ok(m) => Ok(Some(m)),
                Err(object_store::Error::NotFound { .. }) => Ok(None),
                Err(e) => Err(e),
            }
        });
        Ok(r.map_err(|e| self.err(key, e))?.map(|m| Listed {
            key: key.to_string(),
            size: m.size,
            modified_ms: m.last_modified.timestamp_millis(),
        }))
    }

    /// Several objects at once (up to 16 requests in flight), in the order of `keys`.
    pub fn get_many(&self, keys: &[String]) -> StorageResult<Vec<Option<Vec<u8>>>> {
        let store = self.store.clone();
        let paths: Vec<ObjectPath> = keys.iter().map(|k| self.path(k)).collect();
        let r = self.run(async move {
            let gets = paths.into_iter().map(|path| {
                let store = store.clone();
                async move {
                    match store.get(&path).await {
                        Ok(r) => r.bytes().await.map(|b| Some(b.to_vec())),
                        Err(object_store::Error::NotFound { .. }) => Ok(None),
                        Err(e) => Err(e),
                    }
                }
            });
            futures::stream::iter(gets).buffered(16).collect::<Vec<_>>().await
        });
        r.into_iter().zip(keys).map(|(g, k)| g.map_err(|e| self.err(k, e))).collect()
    }

    /// Writes the object, replacing any (for immutable files under names never reused).
    pub fn put(&self, key: &str, bytes: Vec<u8>) -> StorageResult<()> {
        let (store, path) = (self.store.clone(), self.path(key));
        self.run(async move { store.put(&path, PutPayload::from(bytes)).await })
            .map(|_| ())
            .map_err(|e| self.err(key, e))
    }

    /// Writes the object only if no object has the key. Of racing creators exactly one gets
    /// [`Created::New`]. A retried request whose first attempt landed also sees `Exists`:
    /// callers that must tell the two apart put something of their own in the bytes.
    pub fn create(&self, key: &str, bytes: Vec<u8>) -> StorageResult<Created> {
        let (store, path) = (self.store.clone(), self.path(key));
        let opts = PutOptions {
            mode: PutMode::Create,
            ..Default::default()
        };
        let r = self.run(async move { store.put_opts(&path, PutPayload::from(bytes), opts).await });
        match r {
            Ok(_) => Ok(Created::New),
            Err(object_store::Error::AlreadyExists { .. }) | Err(object_store::Error::Precondition { .. }) => Ok(Created::Exists),
            Err(e) => Err(self.err(key, e)),
        }
    }

    /// Deletes the object; a missing one is not an error.
    pub fn delete(&self, key: &str) -> StorageResult<()> {
        let (store, path) = (self.store.clone(), self.path(key));
        let r = self.run(async move {
            match store.delete(&path).await {
                Err(object_store::Error::NotFound { .. }) => Ok(()),
                other => other,
            }
        });
        r.map_err(|e| self.err(key, e))
    }

    /// Every object under `prefix` (a folder-like key ending without `/`), keys ascending,
    /// starting after `after` when given.
    pub fn list(&self, prefix: &str, after: Option<&str>) -> StorageResult<Vec<Listed>> {
        let (store, path) = (self.store.clone(), self.path(prefix));
        let offset = after.map(|a| self.path(a));
        let r = self.run(async move {
            let mut stream = match &offset {
                Some(o) => store.list_with_offset(Some(&path), o),
                None => store.list(Some(&path)),
            };
            let mut out = Vec::new();
            while let Some(m) = stream.next().await {
                out.push(m?);
            }
            Ok::<_, object_store::Error>(out)
        });
        let mut out: Vec<Listed> = r
            .map_err(|e| self.err(prefix, e))?
            .into_iter()
            .map(|m| Listed {
                key: self.relative(&m.location),
                size: m.size,
                modified_ms: m.last_modified.timestamp_millis(),
            })
            .collect();
        out.sort_by(|a, b| a.key.cmp(&b.key));
        Ok(out)
    }

    /// The names of the "folders" right under `prefix`.
    pub fn list_folders(&self, prefix: &str) -> StorageResult<Vec<String>> {
        let (store, path) = (self.store.clone(), self.path(prefix));
        let r = self.run(async move { store.list_with_delimiter(Some(&path)).await });
        let mut names: Vec<String> = r
            .map_err(|e| self.err(prefix, e))?
            .common_prefixes
            .iter()
            .filter_map(|p| p.filename().map(str::to_string))
            .collect();
        names.sort();
        Ok(names)
    }

    /// Uploads a local file, streamed in parts of 16 MiB (two in flight) when it is larger: the
    /// object appears whole when the upload completes, or not at all.
    pub fn upload(&self, key: &str, file: &Path) -> StorageResult<u64> {
        let (store, path) = (self.store.clone(), self.path(key));
        let local = file.to_path_buf();
        let r = self.run(async move {
            let mut f = tokio::fs::File::open(&local).await.map_err(|e| e.to_string())?;
            let len = f.metadata().await.map_err(|e| e.to_string())?.len();
            if len as usize <= PART_BYTES {
                let mut bytes = Vec::with_capacity(len as usize);
                f.read_to_end(&mut bytes).await.map_err(|e| e.to_string())?;
                store.put(&path, PutPayload::from(bytes)).await.map_err(|e| e.to_string())?;
                return Ok(len);
            }
            // Streamed: one part in memory while up to two are in flight.
            let mut w = object_store::buffered::BufWriter::with_capacity(store, path, PART_BYTES).with_max_concurrency(2);
            let put = async {
                let mut buf = vec![0u8; PART_BYTES];
                loop {
                    let n = f.read(&mut buf).await?;
                    if n == 0 {
                        break;
                    }
                    w.write_all(&buf[..n]).await?;
                }
                w.shutdown().await
            };
            if let Err(e) = put.await {
                let _ = w.abort().await;
                return Err(e.to_string());
            }
            Ok(len)
        });
        r.map_err(|e| self.err(key, e))
    }

    /// The bytes of several ranges of one object, in order: one request per range, up to 16 in
    /// flight. Ranges are not merged across gaps (`object_store`'s `get_ranges` would merge
    /// ranges up to 1 MiB apart, fetching the gaps): callers pass the runs they want.
    pub fn get_ranges(&self, key: &str, ranges: &[std::ops::Range<u64>]) -> StorageResult<Vec<Vec<u8>>> {
        let (store, path) = (self.store.clone(), self.path(key));
        let ranges = ranges.to_vec();
        let r = self.run(async move {
            let gets = ranges.into_iter().map(|range| {
                let (store, path) = (store.clone(), path.clone());
                async move { store.get_range(&path, range).await.map(|b| b.to_vec()) }
            });
            futures::stream::iter(gets).buffered(16).collect::<Vec<_>>().await
        });
        r.into_iter().map(|g| g.map_err(|e| self.err(key, e))).collect()
    }

    /// Downloads an object into `file`, streamed (written beside it, fsynced, then renamed
    /// into place); returns its length and crc32c, or `None` when there is no such key.
    pub fn download(&self, key: &str, file: &Path) -> StorageResult<Option<(u64, u32)>> {
        let (store, path) = (self.store.clone(), self.path(key));
        let tmp = crate::fsio::parent_dir(file).join(format!(
            ".{}.download",
            file.file_name().map(|n| n.to_string_lossy()).unwrap_or_default()
        ));
        let local = tmp.clone();
        let r = self.run(async move {
            let got = match store.get(&path).await {
                Ok(g) => g,
                Err(object_store::Error::NotFound { .. }) => return Ok(None),
                Err(e) => return Err(e.to_string()),
            };
            let mut out = tokio::fs::File::create(&local).await.map_err(|e| e.to_string())?;
            let (mut len, mut crc) = (0u64, 0u32);
            let mut stream = got.into_stream();
            while let Some(chunk) = stream.next().await {
                let chunk = chunk.map_err(|e| e.to_string())?;
                crc = crc32c::crc32c_append(crc, &chunk);
                len += chunk.len() as u64;
                out.write_all(&chunk).await.map_err(|e| e.to_string())?;
            }
            out.sync_all().await.map_err(|e| e.to_string())?;
            Ok(Some((len, crc)))
        });
        match r {
            Ok(Some(got)) => {
                std::fs::rename(&tmp, file).map_err(StorageError::io(file))?;
                crate::fsio::fsync_dir(crate::fsio::parent_dir(file))?;
                Ok(Some(got))
            }
            Ok(None) => Ok(None),
            Err(e) => {
                let _ = std::fs::remove_file(&tmp);
                Err(self.err(key, e))
            }
        }
    }
}

/// The part size of a multipart upload.
const PART_BYTES: usize = 16 << 20;
