//! The index against exact search: recall on random and clustered data for every metric and
//! encoding, filters, persistence, inserts during searches, and corrupted files. Seeds are
//! fixed and printed.

use quiver_index::{Codes, Hnsw, HnswParams, Quantization, Scratch};
use quiver_kernels::{normalize, scan_top_k, Allowed, ScoreKind};
use quiver_storage::aligned::{AlignedBlob, AlignedWriter};
use quiver_storage::map::PrivateMap;
use rand::{Rng, SeedableRng};
use rand_chacha::ChaCha8Rng;
use std::sync::Arc;

/// `n` points around `clusters` random centres (clusters = 0: uniform in [-1, 1]).
fn data(seed: u64, n: usize, dim: usize, clusters: usize, unit: bool) -> Vec<f32> {
    let mut rng = ChaCha8Rng::seed_from_u64(seed);
    let centres: Vec<Vec<f32>> = (0..clusters)
        .map(|_| (0..dim).map(|_| rng.gen_range(-1.0..1.0)).collect())
        .collect();
    let mut out = Vec::with_capacity(n * dim);
    for _ in 0..n {
        let mut v: Vec<f32> = if clusters == 0 {
            (0..dim).map(|_| rng.gen_range(-1.0..1.0)).collect()
        } else {
            let c = &centres[rng.gen_range(0..clusters)];
            c.iter().map(|x| x + rng.gen_range(-0.25..0.25)).collect()
        };
        if unit {
            normalize(&mut v);
        }
        out.extend(v);
    }
    out
}

/// Base rows and queries from the same distribution (the same centres).
fn split(seed: u64, n: usize, nq: usize, dim: usize, clusters: usize, unit: bool) -> (Vec<f32>, Vec<f32>) {
    let mut all = data(seed, n + nq, dim, clusters, unit);
    let queries = all.split_off(n * dim);
    (all, queries)
}

/// Builds on one thread, so that the graph (and every recall below) is deterministic.
fn build(dim: usize, kind: ScoreKind, quant: Quantization, params: HnswParams, rows: &[f32]) -> Hnsw {
    let pool = rayon::ThreadPoolBuilder::new().num_threads(1).build().unwrap();
    pool.install(|| quiver_index::build(dim, kind, quant, params, rows))
}

fn exact(kind: ScoreKind, rows: &[f32], dim: usize, q: &[f32], k: usize, allowed: &[u64]) -> Vec<u32> {
    scan_top_k(kind, q, rows, dim, Allowed::Mask(allowed), k)
        .into_iter()
        .map(|s| s.row)
        .collect()
}

/// Mean recall@k of the index (with rescoring for quantized codes) over `queries`.
#[allow(clippy::too_many_arguments)]
fn recall(index: &Hnsw, kind: ScoreKind, rows: &[f32], dim: usize, queries: &[f32], k: usize, ef: usize, allowed: Option<&[u64]>) -> f64 {
    let all = vec![u64::MAX; (rows.len() / dim).div_ceil(64)];
    let mask = allowed.unwrap_or(&all);
    let ok = |n: u32| mask[n as usize / 64] >> (n % 64) & 1 == 1;
    let mut scratch = Scratch::new();
    let mut found = 0;
    let mut total = 0;
    for q in queries.chunks(dim) {
        let truth = exact(kind, rows, dim, q, k, mask);
        let mut got = index.search(q, ef, allowed.map(|_| &ok as &dyn Fn(u32) -> bool), &mut scratch);
        for g in &got {
            assert!(ok(g.row), "a node the filter rejects was returned");
        }
        if !index.codes().is_exact() {
            for g in &mut got {
                g.score = kind.score(q, &rows[g.row as usize * dim..(g.row as usize + 1) * dim]);
            }
            got.sort_by(|a, b| b.score.total_cmp(&a.score));
        }
        let got: Vec<u32> = got.iter().take(k).map(|s| s.row).collect();
        found += truth.iter().filter(|t| got.contains(t)).count();
        total += truth.len();
    }
    found as f64 / total as f64
}

const PARAMS: HnswParams = HnswParams {
    m: 12,
    ef_construct: 100,
    seed: 7,
};

#[test]
fn recall_against_exact_for_every_metric_and_encoding() {
    for (seed, clusters) in [(11u64, 0usize), (12, 40)] {
        for (kind, quant, dim, unit, want) in [
            (ScoreKind::Dot, Quantization::None, 24, true, 0.95),
            (ScoreKind::NegL2Squared, Quantization::None, 24, false, 0.95),
            (ScoreKind::NegL1, Quantization::None, 16, false, 0.95),
            (ScoreKind::Dot, Quantization::Int8, 24, true, 0.95),
            (ScoreKind::NegL2Squared, Quantization::Int8, 24, false, 0.95),
        ] {
            eprintln!("seed {seed} clusters {clusters} {kind:?} {quant:?}");
            let (rows, queries) = split(seed, 4000, 100, dim, clusters, unit);
            let index = build(dim, kind, quant, PARAMS, &rows);
            assert_eq!(index.len(), 4000);
            let r = recall(&index, kind, &rows, dim, &queries, 10, 64, None);
            eprintln!("  recall@10 {r:.4}");
            assert!(r >= want, "seed {seed} {kind:?} {quant:?}: recall {r} < {want}");
        }
    }
}

#[test]
fn binary_codes_with_rescoring_keep_recall_in_high_dimensions() {
    let (seed, dim) = (21u64, 256);
    eprintln!("seed {seed}");
    let (rows, queries) = split(seed, 3000, 50, dim, 30, true);
    let index = build(dim, ScoreKind::Dot, Quantization::Binary, PARAMS, &rows);
    let r = recall(&index, ScoreKind::Dot, &rows, dim, &queries, 10, 200, None);
    eprintln!("binary recall@10 {r:.4}");
    assert!(r >= 0.9, "binary recall {r}");
    // The codes are 32x smaller than the vectors.
    assert_eq!(index.codes().memory_bytes() - dim * 4 - 3000 * 4, 3000 * dim / 8);
}

#[test]
fn filtered_search_returns_only_allowed_nodes_and_keeps_recall() {
    let (seed, dim, n) = (31u64, 16, 5000);
    eprintln!("seed {seed}");
    let (rows, queries) = split(seed, n, 50, dim, 20, true);
    let index = build(dim, ScoreKind::Dot, Quantization::None, PARAMS, &rows);
    let mut rng = ChaCha8Rng::seed_from_u64(seed + 2);
    for share in [0.5, 0.1] {
        let mut mask = vec![0u64; n.div_ceil(64)];
        for r in 0..n {
            if rng.gen_bool(share) {
                mask[r / 64] |= 1 << (r % 64);
            }
        }
        // The graph alone, with a list large enough for the selectivity.
        let r = recall(
            &index,
            ScoreKind::Dot,
            &rows,
            dim,
            &queries,
            10,
            (64.0 / share) as usize,
            Some(&mask),
        );
        eprintln!("share {share}: recall@10 {r:.4}");
        assert!(r >= 0.95, "share {share}: recall {r}");
    }
}

#[test]
fn persistence_round_trip_gives_identical_results() {
    let (seed, dim) = (41u64, 20);
    for quant in [Quantization::None, Quantization::Int8, Quantization::Binary] {
        let rows = data(seed, 2000, dim, 10, true);
        let index = build(dim, ScoreKind::Dot, quant, PARAMS, &rows);
        let sections = index.to_sections();
        let refs: Vec<&[u8]> = sections.iter().map(|s| s.as_slice()).collect();
        let loaded = Hnsw::from_sections(&refs).unwrap();
        assert_eq!(loaded.len(), index.len());
        let mut s1 = Scratch::new();
        let mut s2 = Scratch::new();
        for q in data(seed + 1, 30, dim, 10, true).chunks(dim) {
            assert_eq!(index.search(q, 40, None, &mut s1), loaded.search(q, 40, None, &mut s2), "{quant:?}");
        }
        for node in 0..2000u32 {
            assert!(loaded.codes().matches(node, &rows[node as usize * dim..(node as usize + 1) * dim]));
        }
        // Drift counts come back exactly; a loaded index without them counts nothing, so
        // sorted data's drift would be missed after a reload without them.
        let mut loaded = loaded;
        let shifted: Vec<f32> = rows.iter().map(|x| x + 3.0).collect();
        let mut drifting = Hnsw::from_sections(&refs).unwrap();
        drifting.observe(&shifted);
        loaded.restore_drift(&drifting.drift_bytes()).unwrap();
        assert_eq!(loaded.drift_bytes(), drifting.drift_bytes(), "{quant:?}");
        assert_eq!(loaded.codes().drifted(), drifting.codes().drifted(), "{quant:?}");
        if quant != Quantization::None {
            assert!(loaded.codes().drifted(), "{quant:?}: shifted data drifts");
        }
        assert!(loaded.restore_drift(&[1, 2, 3]).is_err());
        let mut wrong_dim = drifting.drift_bytes();
        if quant == Quantization::Int8 {
            wrong_dim[8] = 7;
            assert!(loaded.restore_drift(&wrong_dim).is_err());
        }
    }
}

/// Writes `index` in the mapped layout (an aligned blob) and maps it back in place.
fn write_and_map(index: &Hnsw, path: &std::path::Path) -> Hnsw {
    let lens = index.mapped_section_lens();
    let mut w = AlignedWriter::create(path, MAGIC, &lens).unwrap();
    index.write_mapped_sections(&mut |b| w.write(b)).unwrap();
    w.finish().unwrap();
    map_back(path).unwrap()
}

const MAGIC: &[u8; 8] = b"TESTHNSW";

fn map_back(path: &std::path::Path) -> Result<Hnsw, String> {
    let map = Arc::new(PrivateMap::open(path).unwrap());
    let blob = AlignedBlob::open(path, MAGIC, map.bytes()).map_err(|e| e.to_string())?;
    let spans: Vec<(usize, usize)> = (0..blob.len()).map(|i| (blob.offset(i) as usize, blob.section(i).len())).collect();
    Hnsw::from_mapped(map.clone(), &spans).map_err(|e| e.to_string())
}

/// Links `rows` as new nodes one at a time (deterministic, unlike `link_range`).
fn insert(index: &mut Hnsw, rows: &[f32]) {
    let dim = index.codes().dim();
    let first = index.add(rows);
    let mut scratch = Scratch::new();
    for (i, row) in rows.chunks(dim).enumerate() {
        index.link(first + i as u32, row, &mut scratch);
    }
}

#[test]
fn a_mapped_index_answers_like_its_source_and_copies_only_on_insert() {
    let (seed, dim) = (43u64, 24);
    let dir = tempfile::tempdir().unwrap();
    for (i, quant) in [Quantization::None, Quantization::Int8, Quantization::Binary]
        .into_iter()
        .enumerate()
    {
        let rows = data(seed, 2000, dim, 10, true);
        let mut index = build(dim, ScoreKind::Dot, quant, PARAMS, &rows);
        let path = dir.path().join(format!("index{i}"));
        let mut mapped = write_and_map(&index, &path);
        let file = std::fs::read(&path).unwrap();
        // In place: the graph and codes are the file's pages, not the heap.
        assert!(mapped.mapped_bytes() >= index.memory_bytes() / 2, "{quant:?}");
        assert!(mapped.memory_bytes() < index.memory_bytes() / 4, "{quant:?}");
        let queries = data(seed + 1, 30, dim, 10, true);
        let (mut s1, mut s2) = (Scratch::new(), Scratch::new());
        for q in queries.chunks(dim) {
            assert_eq!(index.search(q, 40, None, &mut s1), mapped.search(q, 40, None, &mut s2), "{quant:?}");
        }
        for node in (0..2000u32).step_by(7) {
            assert!(mapped.codes().matches(node, &rows[node as usize * dim..(node as usize + 1) * dim]));
        }
        // Inserting into both gives the same graph; the file is never written.
        let more = data(seed + 2, 300, dim, 10, true);
        insert(&mut index, &more);
        insert(&mut mapped, &more);
        assert_eq!(mapped.len(), 2300);
        for q in queries.chunks(dim) {
            assert_eq!(index.search(q, 40, None, &mut s1), mapped.search(q, 40, None, &mut s2), "{quant:?}");
        }
        assert_eq!(std::fs::read(&path).unwrap(), file, "{quant:?}: the file is unchanged");
        // Written again from the copy, it maps back to the same answers.
        let again = write_and_map(&mapped, &dir.path().join(format!("again{i}")));
        for q in queries.chunks(dim) {
            assert_eq!(index.search(q, 40, None, &mut s1), again.search(q, 40, None, &mut s2), "{quant:?}");
        }
    }
}

#[test]
fn a_damaged_mapped_index_is_an_error_or_searches_without_panicking() {
    let dim = 8;
    let rows = data(53, 600, dim, 5, true);
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("index");
    for quant in [Quantization::None, Quantization::Int8] {
        let index = build(dim, ScoreKind::Dot, quant, PARAMS, &rows);
        write_and_map(&index, &path);
        let good = std::fs::read(&path).unwrap();
        let mut rng = ChaCha8Rng::seed_from_u64(54);
        let (mut loaded_ok, mut refused) = (0, 0);
        for _ in 0..400 {
            // Damage inside the sections (the header and checksums are the blob's to check,
            // and the section checksums are not looked at here: this is what a search meets
            // before the background check finds the damage).
            let mut bad = good.clone();
            let at = rng.gen_range(64..bad.len() - 64);
            bad[at] ^= 1 << rng.gen_range(0..8);
            if rng.gen_bool(0.3) {
                // A neighbour id far out of range.
                let word = at & !3;
                bad[word..word + 4].copy_from_slice(&u32::MAX.to_le_bytes());
            }
            std::fs::write(&path, &bad).unwrap();
            let Ok(loaded) = map_back(&path) else {
                refused += 1;
                continue;
            };
            loaded_ok += 1;
            let mut scratch = Scratch::new();
            for q in rows.chunks(dim).take(5) {
                let got = loaded.search(q, 20, None, &mut scratch);
                assert!(got.iter().all(|g| (g.row as usize) < loaded.len()));
            }
        }
        eprintln!("{quant:?}: {loaded_ok} damaged files searched, {refused} refused");
        assert!(loaded_ok > 100 && refused > 0);
    }
}

#[test]
fn corrupted_sections_are_errors_not_panics() {
    let dim = 8;
    let rows = data(51, 500, dim, 5, true);
    let index = build(dim, ScoreKind::Dot, Quantization::None, PARAMS, &rows);
    let sections = index.to_sections();
    let mut rng = ChaCha8Rng::seed_from_u64(52);
    for trial in 0..300 {
        let mut broken = sections.clone();
        let s = trial % broken.len();
        match trial % 3 {
            0 if !broken[s].is_empty() => {
                let at = rng.gen_range(0..broken[s].len());
                broken[s][at] ^= 1 << rng.gen_range(0..8);
            }
            1 => {
                let keep = rng.gen_range(0..=broken[s].len());
                broken[s].truncate(keep);
            }
            _ => broken[s].extend_from_slice(&[0xff; 4]),
        }
        let refs: Vec<&[u8]> = broken.iter().map(|s| s.as_slice()).collect();
        // Either an error, or a structurally valid index that can be searched.
        if let Ok(loaded) = Hnsw::from_sections(&refs) {
            let mut scratch = Scratch::new();
            let got = loaded.search(&rows[..dim], 20, None, &mut scratch);
            assert!(got.iter().all(|g| (g.row as usize) < loaded.len()));
        }
    }
    let refs: Vec<&[u8]> = sections[..4].iter().map(|s| s.as_slice()).collect();
    assert!(Hnsw::from_sections(&refs).is_err());
}

#[test]
fn inserts_during_searches_stay_consistent() {
    let (seed, dim) = (61u64, 16);
    eprintln!("seed {seed}");
    let (rows, queries) = split(seed, 6000, 40, dim, 30, true);
    let first_half = &rows[..3000 * dim];
    let mut index = build(dim, ScoreKind::Dot, Quantization::None, PARAMS, first_half);
    let start = index.add(&rows[3000 * dim..]);
    assert_eq!(start, 3000);
    let index = index;
    std::thread::scope(|s| {
        s.spawn(|| index.link_range(start, &rows[3000 * dim..]));
        s.spawn(|| {
            let mut scratch = Scratch::new();
            for _ in 0..20 {
                for q in queries.chunks(dim) {
                    let got = index.search(q, 32, None, &mut scratch);
                    assert!(!got.is_empty());
                    assert!(got.iter().all(|g| (g.row as usize) < 6000));
                    assert!(got.windows(2).all(|w| w[0].score >= w[1].score));
                }
            }
        });
    });
    let r = recall(&index, ScoreKind::Dot, &rows, dim, &queries, 10, 64, None);
    eprintln!("recall after concurrent inserts {r:.4}");
    assert!(r >= 0.95, "recall {r}");
}

#[test]
fn every_list_respects_its_capacity_and_names_real_nodes() {
    let dim = 12;
    let rows = data(71, 3000, dim, 0, true);
    let index = build(
        dim,
        ScoreKind::Dot,
        Quantization::None,
        HnswParams {
            m: 6,
            ef_construct: 40,
            seed: 3,
        },
        &rows,
    );
    for node in 0..3000u32 {
        for level in 0..=index.level(node) {
            let nb = index.neighbours(node, level);
            let cap = if level == 0 { 12 } else { 6 };
            assert!(nb.len() <= cap);
            assert!(nb.iter().all(|&x| x < 3000 && x != node));
            assert!(
                nb.iter().all(|&x| index.level(x) >= level),
                "a link to a node absent from the level"
            );
        }
    }
    let _ = Codes::new(dim, ScoreKind::Dot, Quantization::None, &[]);
}

#[test]
fn reordering_renumbers_nodes_without_changing_any_answer() {
    let dim = 16;
    let (rows, queries) = split(81, 3000, 30, dim, 20, true);
    for quant in [Quantization::None, Quantization::Int8] {
        let mut index = build(dim, ScoreKind::Dot, quant, PARAMS, &rows);
        let mut scratch = Scratch::new();
        // Nodes of equal score come in node order, which the renumbering changes: compare in
        // (score, original node) order.
        let canonical = |mut hits: Vec<(u32, f32)>| {
            hits.sort_by(|a, b| b.1.total_cmp(&a.1).then(a.0.cmp(&b.0)));
            hits
        };
        let before: Vec<Vec<(u32, f32)>> = queries
            .chunks(dim)
            .map(|q| canonical(index.search(q, 50, None, &mut scratch).iter().map(|s| (s.row, s.score)).collect()))
            .collect();
        let order = index.reorder();
        let mut sorted = order.clone();
        sorted.sort_unstable();
        assert_eq!(sorted, (0..3000).collect::<Vec<u32>>(), "order is a permutation");
        for (q, want) in queries.chunks(dim).zip(&before) {
            let got = canonical(
                index
                    .search(q, 50, None, &mut scratch)
                    .iter()
                    .map(|s| (order[s.row as usize], s.score))
                    .collect(),
            );
            assert_eq!(&got, want, "{quant:?}");
        }
        for (new, &old) in order.iter().enumerate() {
            assert!(index
                .codes()
                .matches(new as u32, &rows[old as usize * dim..(old as usize + 1) * dim]));
        }
    }
}

/// Codes notice when data leaves what they were trained on (sorted or drifting data), and codes
/// retrained on every row fit again: int8 values clamp no more, binary means are centred again.
/// Stationary data never counts as drift.
#[test]
fn codes_detect_drift_and_retraining_fits_the_data_again() {
    let dim = 8;
    let mut rng = ChaCha8Rng::seed_from_u64(5);
    let rows = |rng: &mut ChaCha8Rng, n: usize, shift: f32| -> Vec<f32> {
        (0..n * dim)
            .map(|i| rng.gen_range(-1.0f32..1.0) + if i % dim == 0 { shift } else { 0.0 })
            .collect()
    };
    for quant in [Quantization::Int8, Quantization::Binary] {
        let early = rows(&mut rng, 2000, 0.0);
        let mut codes = Codes::new(dim, ScoreKind::Dot, quant, &early);
        codes.push(&early);
        assert!(!codes.drifted(), "{quant:?}: the training data itself is no drift");
        // More of the same: still no drift.
        let same = rows(&mut rng, 4000, 0.0);
        assert!(!codes.drifted_with(&same), "{quant:?}: stationary data");
        codes.push(&same);
        assert!(!codes.drifted(), "{quant:?}");
        // Column 0 moves far out (sorted data): drift, before and after the rows are added.
        let late = rows(&mut rng, 4000, 5.0);
        assert!(codes.drifted_with(&late), "{quant:?}: a shifted column");
        assert!(!codes.drifted(), "drifted_with changes nothing");
        codes.push(&late);
        assert!(codes.drifted(), "{quant:?}");
        // Retrained on every row: fits again, and codes still rank late rows correctly.
        let all: Vec<f32> = [early, same, late].concat();
        let fresh = codes.retrained(&all, &[]);
        assert_eq!(fresh.len(), all.len() / dim);
        assert!(!fresh.drifted(), "{quant:?}: retrained codes fit");
        if quant == Quantization::Int8 {
            // Among the late rows, the best match of a query by code is the exact best far more
            // often with retrained codes than with the clamped ones.
            let n = all.len() / dim;
            let best_of = |c: &Codes, q: &[f32]| {
                let mut p = quiver_index::Prepared::default();
                c.prepare(q, &mut p);
                (n - 4000..n)
                    .max_by(|&a, &b| c.score(&p, a as u32).total_cmp(&c.score(&p, b as u32)))
                    .unwrap()
            };
            let (mut hits, mut stale_hits) = (0, 0);
            for r in n - 50..n {
                let q = &all[r * dim..(r + 1) * dim];
                let exact = (n - 4000..n)
                    .max_by(|&a, &b| {
                        let s = |o: usize| all[o * dim..(o + 1) * dim].iter().zip(q).map(|(x, y)| x * y).sum::<f32>();
                        s(a).total_cmp(&s(b))
                    })
                    .unwrap();
                hits += usize::from(best_of(&fresh, q) == exact);
                stale_hits += usize::from(best_of(&codes, q) == exact);
            }
            assert!(hits > stale_hits, "retrained {hits}, clamped {stale_hits} of 50");
            assert!(hits >= 40, "retrained int8 codes find the exact best late row {hits} of 50 times");
        }
    }
}

#[test]
fn nodes_added_to_a_quantized_graph_link_as_well_as_a_full_build_with_resume_build() {
    // Unit vectors packed in a narrow cone (as late points of drifting data are, and as sentence
    // embeddings often are): a neighbour is a step or two of int8 away, so quantized distances
    // choose links almost at random.
    let (dim, n, half) = (24, 6000, 3000);
    let mut rng = ChaCha8Rng::seed_from_u64(21);
    let axis: Vec<f32> = (0..dim).map(|_| rng.gen_range(-1.0f32..1.0)).collect();
    let wide = data(22, half, dim, 40, true);
    let mut rows = wide.clone();
    let mut cone = Vec::new();
    for _ in 0..half + 200 {
        let mut v: Vec<f32> = axis.iter().map(|a| 4.0 * a + rng.gen_range(-0.3f32..0.3)).collect();
        normalize(&mut v);
        cone.extend(v);
    }
    let queries = cone.split_off(half * dim);
    rows.extend_from_slice(&cone);
    assert_eq!(rows.len(), n * dim);
    let kind = ScoreKind::Dot;
    let full = build(dim, kind, Quantization::Int8, PARAMS, &rows);
    let recall_of = |index: &Hnsw| recall(index, kind, &rows, dim, &queries, 10, 64, None);
    let grown = |exact_links: bool| {
        // Codes trained on every row, so that only the linking differs from the full build.
        let mut index = Hnsw::new(PARAMS, Codes::new(dim, kind, Quantization::Int8, &rows));
        insert(&mut index, &wide);
        index.finish_build();
        if exact_links {
            assert!(index.resume_build(&wide));
        }
        insert(&mut index, &cone);
        index.finish_build();
        index
    };
    let (r_full, r_exact, r_quantized) = (recall_of(&full), recall_of(&grown(true)), recall_of(&grown(false)));
    eprintln!("recall@10 at ef 64: full build {r_full:.3}, grown with exact links {r_exact:.3}, with int8 links {r_quantized:.3}");
    assert!(
        r_exact >= r_full - 0.02,
        "exact links {r_exact:.3} against a full build {r_full:.3}"
    );
    assert!(
        r_exact >= r_quantized + 0.05,
        "exact links {r_exact:.3} against int8 links {r_quantized:.3}"
    );
    // Exact codes, or vectors that are not one per node, are refused.
    let mut plain = Hnsw::new(PARAMS, Codes::new(dim, kind, Quantization::None, &[]));
    insert(&mut plain, &wide);
    assert!(!plain.resume_build(&wide));
    let mut q = grown(false);
    assert!(!q.resume_build(&wide), "half of the nodes");
}
