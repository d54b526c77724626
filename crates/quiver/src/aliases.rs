//! Aliases: other names for collections (Qdrant's `POST /collections/aliases`), so an
//! application can query `products` while a new version of the collection is built beside the
//! old one, then switch every reader at once by moving the alias.
//!
//! The map lives in `<root>/ALIASES`, a JSON object `{"alias": "collection"}` replaced
//! atomically: a batch of changes is applied to a copy, checked, written, and only then made
//! visible, so a batch is all or nothing and a crash leaves the old or the new map.

use crate::error::{Error, Result};
use crate::types::validate_name;
use quiver_storage::{fsio, StorageError};
use std::collections::BTreeMap;
use std::path::Path;

/// One change to the aliases.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum AliasAction {
    /// `alias` names `collection` from now on (replacing what it named before).
    Create {
        /// The new name.
        alias: String,
        /// The collection it names.
        collection: String,
    },
    /// `alias` names nothing any more.
    Delete {
        /// The alias to remove.
        alias: String,
    },
    /// The alias `old` is called `new` from now on.
    Rename {
        /// Its current name.
        old: String,
        /// Its new name.
        new: String,
    },
}

/// The file name of the alias map in the data folder.
pub(crate) const ALIASES_FILE: &str = "ALIASES";

/// Reads the alias map (empty when the file does not exist yet).
pub(crate) fn load(root: &Path) -> Result<BTreeMap<String, String>> {
    let path = root.join(ALIASES_FILE);
    if !path.exists() {
        return Ok(BTreeMap::new());
    }
    let bytes = fsio::read_file(&path)?;
    serde_json::from_slice(&bytes).map_err(|e| StorageError::corrupt(&path, 0, format!("not an alias map: {e}")).into())
}

/// Writes the alias map durably.
pub(crate) fn save(root: &Path, map: &BTreeMap<String, String>) -> Result<()> {
    let bytes = serde_json::to_vec_pretty(map).expect("a map of strings serialises");
    fsio::replace_file_atomic(&root.join(ALIASES_FILE), &bytes)?;
    Ok(())
}

/// `map` with `actions` applied in order, or the first action's error. `is_collection` says
/// whether a collection of that name exists.
pub(crate) fn apply(
    map: &BTreeMap<String, String>,
    actions: &[AliasAction],
    is_collection: impl Fn(&str) -> bool,
) -> Result<BTreeMap<String, String>> {
    let mut next = map.clone();
    for a in actions {
        match a {
            AliasAction::Create { alias, collection } => {
                validate_name(alias)?;
                if !is_collection(collection) {
                    return Err(Error::CollectionNotFound(collection.clone()));
                }
                if is_collection(alias) {
                    return Err(Error::CollectionExists(alias.clone()));
                }
                next.insert(alias.clone(), collection.clone());
            }
            AliasAction::Delete { alias } => {
                if next.remove(alias).is_none() {
                    return Err(Error::AliasNotFound(alias.clone()));
                }
            }
            AliasAction::Rename { old, new } => {
                validate_name(new)?;
                if is_collection(new) {
                    return Err(Error::CollectionExists(new.clone()));
                }
                let target = next.remove(old).ok_or_else(|| Error::AliasNotFound(old.clone()))?;
                next.insert(new.clone(), target);
            }
        }
    }
    Ok(next)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn create(a: &str, c: &str) -> AliasAction {
        AliasAction::Create {
            alias: a.into(),
            collection: c.into(),
        }
    }

    #[test]
    fn a_batch_is_all_or_nothing_and_checked() {
        let exists = |n: &str| n == "v1" || n == "v2";
        let m = apply(&BTreeMap::new(), &[create("prod", "v1")], exists).unwrap();
        assert_eq!(m.get("prod").map(String::as_str), Some("v1"));
        // Switch in one batch: delete and create.
        let m2 = apply(&m, &[AliasAction::Delete { alias: "prod".into() }, create("prod", "v2")], exists).unwrap();
        assert_eq!(m2.get("prod").map(String::as_str), Some("v2"));
        // A failing action leaves the map as it was (the caller keeps `m`).
        let err = apply(&m, &[create("other", "v2"), create("x", "missing")], exists).unwrap_err();
        assert!(matches!(err, Error::CollectionNotFound(_)));
        assert!(matches!(
            apply(&m, &[create("v2", "v1")], exists).unwrap_err(),
            Error::CollectionExists(_)
        ));
        assert!(matches!(
            apply(&m, &[AliasAction::Delete { alias: "nope".into() }], exists).unwrap_err(),
            Error::AliasNotFound(_)
        ));
        let renamed = apply(
            &m,
            &[AliasAction::Rename {
                old: "prod".into(),
                new: "live".into(),
            }],
            exists,
        )
        .unwrap();
        assert_eq!(renamed.len(), 1);
        assert_eq!(renamed.get("live").map(String::as_str), Some("v1"));
    }
}
