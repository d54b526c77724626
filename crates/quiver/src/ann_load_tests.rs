//! Loading an index file: nodes named by the rows of a base segment are mapped without lookups
//! only when the state opened that very segment; otherwise by id, each checked against its
//! row's vector. Both ways give the same map.

use super::*;
use crate::state::BaseId;
use crate::store::Op;
use crate::types::{CollectionConfig, Metric, Point};

const DIM: usize = 8;
const N: usize = 3000;

fn vector(seed: u64) -> Vec<f32> {
    // A small deterministic generator (splitmix64): no test depends on an RNG crate's stream.
    let mut x = seed.wrapping_mul(0x9E37_79B9_7F4A_7C15);
    (0..DIM)
        .map(|_| {
            x = x.wrapping_add(0x9E37_79B9_7F4A_7C15);
            let mut z = x;
            z = (z ^ (z >> 30)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
            z = (z ^ (z >> 27)).wrapping_mul(0x94D0_49BB_1331_11EB);
            ((z ^ (z >> 31)) >> 40) as f32 / (1u64 << 24) as f32 - 0.5
        })
        .collect()
}

fn state(base: Option<BaseId>) -> State {
    let config = CollectionConfig::new(DIM, Metric::Dot);
    let mut st = State::new(DIM, &config.vectors);
    st.apply(&Op::Upsert((0..N as u64).map(|i| Point::new(i, vector(i))).collect()), false);
    if let Some(b) = base {
        st.set_base(b);
    }
    st
}

fn ann(dir: &Path) -> Ann {
    let mut config = CollectionConfig::new(DIM, Metric::Dot).index;
    config.full_scan_threshold = 10;
    Ann::new(config, ScoreKind::Dot, DIM, dir)
}

fn node_rows(b: &Built) -> Vec<u32> {
    b.map.read().node_row.to_vec()
}

#[test]
fn nodes_are_mapped_by_row_only_against_the_same_base() {
    let dir = tempfile::tempdir().unwrap();
    let base = BaseId {
        segment: 1,
        checksum: 0xfeed,
        rows: N,
    };
    let saver = ann(dir.path());
    let st = RwLock::new(state(Some(base)));
    {
        let st = st.read();
        let snap = Ann::snapshot_full(&st);
        let graph = saver.build(&snap);
        assert!(saver.install_full(&st, graph, snap));
    }
    saver.save(&st).unwrap();
    assert!(!saver.save_is_stale(&st.read()));
    let want = node_rows(saver.built.read().as_ref().unwrap());
    assert_eq!(want.len(), N);

    // The same base: every node by its saved row.
    let (built, by_row) = ann(dir.path()).try_load(&st.read()).unwrap();
    assert_eq!((by_row, node_rows(&built)), (N, want.clone()));

    // Another segment (or the same number with other contents): every node by id, same map.
    for other in [
        BaseId { checksum: 0xbeef, ..base },
        BaseId { segment: 2, ..base },
        BaseId { rows: N - 1, ..base },
    ] {
        let (built, by_row) = ann(dir.path()).try_load(&state(Some(other))).unwrap();
        assert_eq!((by_row, node_rows(&built)), (0, want.clone()), "{other:?}");
    }
    let (built, by_row) = ann(dir.path()).try_load(&state(None)).unwrap();
    assert_eq!((by_row, node_rows(&built)), (0, want.clone()));

    // Points overwritten after the save: their base rows are dead, so their nodes map to
    // nothing either way (the new rows are uncovered: scanned exactly, then linked).
    let moved: Vec<u64> = (0..N as u64).step_by(97).collect();
    let rewrite = Op::Upsert(moved.iter().map(|&i| Point::new(i, vector(i + 1_000_000))).collect());
    let mut same = state(Some(base));
    same.apply(&rewrite, false);
    let mut other = state(Some(BaseId { checksum: 1, ..base }));
    other.apply(&rewrite, false);
    let (fast, _) = ann(dir.path()).try_load(&same).unwrap();
    let (slow, _) = ann(dir.path()).try_load(&other).unwrap();
    let expect: Vec<u32> = want.iter().map(|&r| if moved.contains(&(r as u64)) { NO_ROW } else { r }).collect();
    // The fast open keeps the dead base rows in its map (read in place, never rewritten):
    // what counts is the rows a search can return, which every search checks are live.
    let live = |b: &Built, st: &State| -> Vec<u32> {
        node_rows(b)
            .into_iter()
            .map(|r| if r != NO_ROW && st.is_searchable(r) { r } else { NO_ROW })
            .collect()
    };
    assert_eq!(live(&fast, &same), expect);
    assert_eq!(node_rows(&slow), expect);
    let new_rows: Vec<u32> = (N as u32..(N + moved.len()) as u32).collect();
    assert_eq!(fast.map.read().tail, new_rows);
    assert_eq!(slow.map.read().tail, new_rows);
}

#[test]
fn a_file_saved_without_a_base_names_nodes_by_id_and_is_stale_once_one_is_known() {
    let dir = tempfile::tempdir().unwrap();
    let saver = ann(dir.path());
    let st = RwLock::new(state(None));
    {
        let st = st.read();
        let snap = Ann::snapshot_full(&st);
        let graph = saver.build(&snap);
        assert!(saver.install_full(&st, graph, snap));
    }
    saver.save(&st).unwrap();
    assert!(!saver.save_is_stale(&st.read()), "no base: nothing better to write");
    let base = BaseId {
        segment: 4,
        checksum: 9,
        rows: N,
    };
    st.write().set_base(base);
    assert!(saver.save_is_stale(&st.read()));
    let (_, by_row) = ann(dir.path()).try_load(&st.read()).unwrap();
    assert_eq!(by_row, 0);
    saver.save(&st).unwrap();
    let (_, by_row) = ann(dir.path()).try_load(&st.read()).unwrap();
    assert_eq!(by_row, N);
}
