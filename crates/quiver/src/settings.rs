//! A collection's settings beside its data: the user's metadata, strict mode, and the storage
//! hints a client declared. They change without touching points, so they are not in the
//! manifest (whose format the data's readers depend on) but in `<collection>/SETTINGS`, a JSON
//! document replaced atomically. A missing file means the defaults; a damaged one is an error
//! that names it (never silently reset: strict mode is a promise to the operator).
//!
//! The hints are Qdrant's placement and optimizer knobs (`on_disk`, `memory`, per-vector
//! `hnsw_config` / `quantization_config`, `optimizers_config`, `on_disk_payload`, a sparse
//! space's `index` options). Quiver keeps them as given and reports them back, so a client
//! reading its configuration sees what it set; the engine's own placement (everything in
//! memory, named spaces scanned exactly) is documented in docs/api.md.

use crate::error::Result;
use crate::strict_mode::StrictMode;
use quiver_storage::{fsio, StorageError};
use serde::{Deserialize, Serialize};
use serde_json::{Map, Value};
use std::path::Path;

/// The settings file's name in a collection's folder.
pub(crate) const SETTINGS_FILE: &str = "SETTINGS";

/// Everything a collection keeps beside its data.
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct CollectionSettings {
    /// Free-form metadata (Qdrant's collection `metadata`).
    #[serde(default, skip_serializing_if = "Map::is_empty")]
    pub metadata: Map<String, Value>,
    /// The limits requests must keep to.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub strict_mode: Option<StrictMode>,
    /// Storage and optimizer hints as the client declared them, by section (`vectors.<name>`,
    /// `sparse_vectors.<name>`, `optimizers_config`, `params`).
    #[serde(default, skip_serializing_if = "Map::is_empty")]
    pub hints: Map<String, Value>,
    /// The options each payload index was created with (Qdrant's `field_schema` object, less
    /// its `type`), by key; what strict mode reads (`lookup`, `range`, `prefix`) and what
    /// `payload_schema` reports.
    #[serde(default, skip_serializing_if = "Map::is_empty")]
    pub index_options: Map<String, Value>,
}

impl CollectionSettings {
    /// Merges `patch` into the metadata: a key set to null is removed, others replace.
    pub fn merge_metadata(&mut self, patch: &Map<String, Value>) {
        for (k, v) in patch {
            if v.is_null() {
                self.metadata.remove(k);
            } else {
                self.metadata.insert(k.clone(), v.clone());
            }
        }
    }

    /// Whether the main vector (named `main`, `""` for Qdrant's unnamed one) is declared
    /// `on_disk`: its full-precision vectors then live in a file the kernel pages in and out.
    pub fn main_vectors_on_disk(&self, main: &str) -> bool {
        self.hint(&format!("vectors.{main}")).get("on_disk").and_then(Value::as_bool) == Some(true)
    }

    /// Whether the main vector's graph stays on disk (`hnsw_config.on_disk`, the vector's own
    /// or the collection's): read in place from the index file as searches need it, instead
    /// of copied into memory after an open.
    pub fn graph_on_disk(&self, main: &str) -> bool {
        let on_disk = |h: Map<String, Value>| h.get("hnsw_config").and_then(|c| c.get("on_disk")).and_then(Value::as_bool);
        on_disk(self.hint(&format!("vectors.{main}")))
            .or_else(|| on_disk(self.hint("collection")))
            .unwrap_or(false)
    }

    /// Whether the main vector's quantized codes are kept in memory: `always_ram` of its
    /// `quantization_config` (the vector's own or the collection's) when given, else with the
    /// graph.
    pub fn codes_in_memory(&self, main: &str) -> bool {
        let always_ram = |h: Map<String, Value>| {
            h.get("quantization_config")
                .and_then(Value::as_object)
                .and_then(|q| q.values().find_map(|kind| kind.get("always_ram").and_then(Value::as_bool)))
        };
        always_ram(self.hint(&format!("vectors.{main}")))
            .or_else(|| always_ram(self.hint("collection")))
            .unwrap_or(!self.graph_on_disk(main))
    }

    /// `on_disk_payload`: payloads of the base segment are decoded from it on every read
    /// instead of kept in memory once read.
    pub fn payloads_on_disk(&self) -> bool {
        self.hint("params").get("on_disk_payload").and_then(Value::as_bool) == Some(true)
    }

    /// The hints of one section (an empty object when none were given).
    pub fn hint(&self, section: &str) -> Map<String, Value> {
        self.hints.get(section).and_then(Value::as_object).cloned().unwrap_or_default()
    }

    /// Merges `patch` into a section's hints, one level deep for objects (a patch of
    /// `hnsw_config: {m}` keeps the section's other `hnsw_config` keys); null removes a key.
    pub fn merge_hint(&mut self, section: &str, patch: &Map<String, Value>) {
        let mut cur = self.hint(section);
        for (k, v) in patch {
            match (cur.get_mut(k), v) {
                // Qdrant's way of removing a vector's own quantization.
                (_, Value::String(d)) if k == "quantization_config" && d == "Disabled" => {
                    cur.remove(k);
                }
                (_, Value::Null) => {
                    cur.remove(k);
                }
                (Some(Value::Object(old)), Value::Object(new)) if k == "hnsw_config" || k == "index" || k == "payload" => {
                    for (ik, iv) in new {
                        old.insert(ik.clone(), iv.clone());
                    }
                }
                _ => {
                    cur.insert(k.clone(), v.clone());
                }
            }
        }
        if cur.is_empty() {
            self.hints.remove(section);
        } else {
            self.hints.insert(section.to_string(), Value::Object(cur));
        }
    }
}

/// Reads a collection's settings (the defaults when it has none).
pub(crate) fn load(dir: &Path) -> Result<CollectionSettings> {
    let path = dir.join(SETTINGS_FILE);
    if !path.exists() {
        return Ok(CollectionSettings::default());
    }
    let bytes = fsio::read_file(&path)?;
    serde_json::from_slice(&bytes).map_err(|e| StorageError::corrupt(&path, 0, format!("not a settings document: {e}")).into())
}

/// Writes a collection's settings durably (atomically replaced).
pub(crate) fn save(dir: &Path, s: &CollectionSettings) -> Result<()> {
    let bytes = serde_json::to_vec_pretty(s).expect("settings serialise");
    fsio::replace_file_atomic(&dir.join(SETTINGS_FILE), &bytes)?;
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn settings_survive_a_round_trip_and_damage_is_reported() {
        let dir = tempfile::tempdir().unwrap();
        assert_eq!(load(dir.path()).unwrap(), CollectionSettings::default());
        let mut s = CollectionSettings::default();
        s.merge_metadata(json!({"owner": "search-team", "gone": null}).as_object().unwrap());
        s.strict_mode = Some(StrictMode {
            enabled: Some(true),
            max_query_limit: Some(10),
            ..StrictMode::default()
        });
        s.merge_hint("vectors.", json!({"on_disk": true, "hnsw_config": {"m": 32}}).as_object().unwrap());
        s.merge_hint("vectors.", json!({"hnsw_config": {"ef_construct": 50}}).as_object().unwrap());
        save(dir.path(), &s).unwrap();
        let back = load(dir.path()).unwrap();
        assert_eq!(back, s);
        assert_eq!(back.hint("vectors.")["hnsw_config"], json!({"m": 32, "ef_construct": 50}));
        std::fs::write(dir.path().join(SETTINGS_FILE), b"{\"metadata\": [").unwrap();
        let e = load(dir.path()).unwrap_err().to_string();
        assert!(e.contains("SETTINGS"), "{e}");
    }

    #[test]
    fn metadata_null_removes_a_key() {
        let mut s = CollectionSettings::default();
        s.merge_metadata(json!({"a": 1, "b": 2}).as_object().unwrap());
        s.merge_metadata(json!({"b": null, "a": 3}).as_object().unwrap());
        assert_eq!(Value::Object(s.metadata), json!({"a": 3}));
    }
}
