//! Aliases through the database: resolution, atomic switches, persistence across reopen, and
//! what dropping a collection does to them.

use quiver::{AliasAction, CollectionConfig, Database, Error, Metric, Point, SearchRequest};

fn create(a: &str, c: &str) -> AliasAction {
    AliasAction::Create {
        alias: a.into(),
        collection: c.into(),
    }
}

#[test]
fn aliases_resolve_switch_persist_and_go_with_their_collection() {
    let tmp = tempfile::tempdir().unwrap();
    {
        let db = Database::open(tmp.path()).unwrap();
        for (name, v) in [("v1", [1.0, 0.0]), ("v2", [0.0, 1.0])] {
            let c = db.create_collection(name, CollectionConfig::new(2, Metric::Dot)).unwrap();
            c.upsert(vec![Point::new(1u64, v.to_vec())]).unwrap();
        }
        db.update_aliases(&[create("prod", "v1")]).unwrap();
        let hit = |db: &Database| {
            db.collection("prod")
                .unwrap()
                .search(&SearchRequest::new(vec![1.0, 0.0], 1))
                .unwrap()[0]
                .score
        };
        assert_eq!(hit(&db), 1.0);
        // Switch every reader at once.
        db.update_aliases(&[AliasAction::Delete { alias: "prod".into() }, create("prod", "v2")])
            .unwrap();
        assert_eq!(hit(&db), 0.0);
        // A failing batch changes nothing; a collection cannot take an alias's name.
        assert!(matches!(
            db.update_aliases(&[create("other", "v1"), create("x", "missing")]),
            Err(Error::CollectionNotFound(_))
        ));
        assert_eq!(db.list_aliases(), vec![("prod".to_string(), "v2".to_string())]);
        assert!(db.create_collection("prod", CollectionConfig::new(2, Metric::Dot)).is_err());
    }
    let db = Database::open(tmp.path()).unwrap();
    assert_eq!(db.list_aliases(), vec![("prod".to_string(), "v2".to_string())]);
    assert_eq!(db.collection("prod").unwrap().name(), "v2");
    db.drop_collection("v2").unwrap();
    assert!(db.list_aliases().is_empty());
    assert!(matches!(db.collection("prod"), Err(Error::CollectionNotFound(_))));
}
