//! Every SIMD kernel against its scalar twin, and every scan against a brute-force model.

use proptest::prelude::*;
use quiver_kernels::simd::{Isa, Kernels};
use quiver_kernels::{batch_top_k, scalar, scan_top_k, Allowed, ScoreKind};
use rand::{Rng, SeedableRng};
use rand_chacha::ChaCha8Rng;

/// Relative tolerance for a different summation order in f32.
fn close(simd: f32, reference: f32, magnitude: f32) -> bool {
    (simd - reference).abs() <= 1e-5 * magnitude.max(1.0)
}

fn vectors() -> impl Strategy<Value = (Vec<f32>, Vec<f32>)> {
    (0usize..300).prop_flat_map(|n| {
        (
            prop::collection::vec(-100.0f32..100.0, n),
            prop::collection::vec(-100.0f32..100.0, n),
        )
    })
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(512))]

    #[test]
    fn simd_matches_scalar((a, b) in vectors()) {
        let abs_dot: f32 = a.iter().zip(&b).map(|(x, y)| (x * y).abs()).sum();
        let l2_mag: f32 = a.iter().zip(&b).map(|(x, y)| (x - y) * (x - y)).sum();
        let l1_mag: f32 = a.iter().zip(&b).map(|(x, y)| (x - y).abs()).sum();
        for isa in Isa::available() {
            let k = Kernels::for_isa(isa).unwrap();
            prop_assert!(close((k.dot)(&a, &b), scalar::dot(&a, &b), abs_dot), "{isa:?} dot n={}", a.len());
            prop_assert!(close((k.l2_squared)(&a, &b), scalar::l2_squared(&a, &b), l2_mag), "{isa:?} l2 n={}", a.len());
            prop_assert!(close((k.l1)(&a, &b), scalar::l1(&a, &b), l1_mag), "{isa:?} l1 n={}", a.len());
        }
    }
}

fn blocks() -> impl Strategy<Value = (Vec<f32>, Vec<f32>, usize)> {
    (1usize..140, 0usize..70).prop_flat_map(|(dim, n)| {
        (
            prop::collection::vec(-100.0f32..100.0, dim),
            prop::collection::vec(-100.0f32..100.0, dim * n),
            Just(n),
        )
    })
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(512))]

    /// The block kernel of every ISA against one scalar dot per row: any dimension (whole
    /// vectors and masked tails), any number of rows (whole blocks of four and the rest).
    #[test]
    fn block_kernels_match_scalar((q, rows, n) in blocks()) {
        let dim = q.len();
        for isa in Isa::available() {
            let k = Kernels::for_isa(isa).unwrap();
            let mut out = vec![f32::NAN; n];
            (k.dot_rows)(&q, &rows, &mut out);
            for (i, row) in rows.chunks(dim).enumerate() {
                let mag: f32 = q.iter().zip(row).map(|(x, y)| (x * y).abs()).sum();
                prop_assert!(close(out[i], scalar::dot(&q, row), mag), "{isa:?} dim={dim} n={n} row {i}: {} vs {}", out[i], scalar::dot(&q, row));
                // The one-row twin is the block's arithmetic, bit for bit.
                prop_assert_eq!((k.dot_one)(&q, row).to_bits(), out[i].to_bits(), "{:?} dim={} n={} row {}", isa, dim, n, i);
            }
        }
    }
}

/// A row's dot-product score in an exact scan does not depend on the path that reached it: a
/// block of 64 allowed rows, a lone allowed row in a partly allowed block, or a list. Each
/// equals `ScoreKind::score` (every rescoring of a row goes through it), bit for bit.
#[test]
fn a_rows_scan_score_does_not_depend_on_its_neighbours() {
    let mut rng = ChaCha8Rng::seed_from_u64(31);
    for dim in [1usize, 3, 8, 13, 32, 50, 100, 128, 384] {
        let n = 200;
        let rows: Vec<f32> = (0..n * dim).map(|_| rng.gen_range(-1.0..1.0)).collect();
        let q: Vec<f32> = (0..dim).map(|_| rng.gen_range(-1.0..1.0)).collect();
        let words = n.div_ceil(64);
        let all = vec![u64::MAX; words];
        let odd = vec![0xAAAA_AAAA_AAAA_AAAAu64; words];
        let list: Vec<u32> = (0..n as u32).rev().collect();
        for isa in Isa::available() {
            let k = Kernels::for_isa(isa).unwrap();
            let scores = |allowed: Allowed<'_>| {
                let mut top = quiver_kernels::TopK::new(n);
                quiver_kernels::scan::scan_rows_with(&k, ScoreKind::Dot, &q, &rows, dim, allowed, &mut top);
                let mut by_row = vec![None; n];
                for h in top.into_sorted() {
                    by_row[h.row as usize] = Some(h.score.to_bits());
                }
                by_row
            };
            let (blocks, lone, listed) = (
                scores(Allowed::Mask(&all)),
                scores(Allowed::Mask(&odd)),
                scores(Allowed::List(&list)),
            );
            for r in 0..n {
                let want = (k.dot_one)(&q, &rows[r * dim..(r + 1) * dim]).to_bits();
                assert_eq!(blocks[r], Some(want), "{isa:?} dim {dim} row {r}: in a block");
                assert_eq!(listed[r], Some(want), "{isa:?} dim {dim} row {r}: in a list");
                if r % 2 == 1 {
                    assert_eq!(lone[r], Some(want), "{isa:?} dim {dim} row {r}: alone");
                }
                if isa == quiver_kernels::isa() {
                    assert_eq!(ScoreKind::Dot.score(&q, &rows[r * dim..(r + 1) * dim]).to_bits(), want);
                }
            }
        }
    }
}

#[test]
fn every_isa_this_cpu_has_is_tested() {
    let isas = Isa::available();
    eprintln!("ISAs under test: {isas:?}; dispatched: {:?}", quiver_kernels::isa());
    assert_eq!(isas[0], Isa::Scalar);
    assert_eq!(*isas.last().unwrap(), quiver_kernels::isa());
}

/// The brute-force model: score every allowed row with the scalar kernel, sort everything.
fn model_top_k(kind: ScoreKind, q: &[f32], rows: &[f32], dim: usize, allowed: &[bool], k: usize) -> Vec<(u32, f32)> {
    let mut all: Vec<(u32, f32)> = rows
        .chunks(dim)
        .enumerate()
        .filter(|(r, _)| allowed[*r])
        .map(|(r, row)| (r as u32, kind.score_scalar(q, row)))
        .collect();
    all.sort_by(|a, b| b.1.total_cmp(&a.1).then(a.0.cmp(&b.0)));
    all.truncate(k);
    all
}

/// Results agree when each position has the model's score (within tolerance) and the set of rows
/// agrees except where scores tie within tolerance.
fn assert_same(got: &[(u32, f32)], want: &[(u32, f32)], context: &str) {
    assert_eq!(got.len(), want.len(), "{context}: length");
    for (i, (g, w)) in got.iter().zip(want).enumerate() {
        assert!(
            (g.1 - w.1).abs() <= 1e-3 * w.1.abs().max(1.0),
            "{context}: position {i}: got {g:?}, want {w:?}"
        );
    }
}

#[test]
fn scans_match_brute_force() {
    let seed = 20261126u64;
    eprintln!("seed {seed}");
    let mut rng = ChaCha8Rng::seed_from_u64(seed);
    // (700, 384): more queries than one matrix product takes, so that a thread's share runs
    // in several products (with one thread: see below).
    for &(n_rows, dim) in &[(1usize, 1usize), (7, 3), (300, 17), (2500, 50), (1100, 128), (700, 384)] {
        let rows: Vec<f32> = (0..n_rows * dim).map(|_| rng.gen_range(-1.0..1.0)).collect();
        let n_queries = match n_rows {
            2500 => 150,
            700 => 600,
            _ => 37,
        };
        let queries: Vec<f32> = (0..n_queries * dim).map(|_| rng.gen_range(-1.0..1.0)).collect();
        // Every other size allows every row, so that whole 64-row words take the block path.
        let p_allowed = if (n_rows + dim) % 2 == 0 { 1.0 } else { 0.6 };
        let allowed: Vec<bool> = (0..n_rows).map(|_| rng.gen_bool(p_allowed)).collect();
        let mut mask = vec![0u64; n_rows.div_ceil(64)];
        let mut list = Vec::new();
        for (r, &a) in allowed.iter().enumerate() {
            if a {
                mask[r / 64] |= 1 << (r % 64);
                list.push(r as u32);
            }
        }
        for kind in [ScoreKind::Dot, ScoreKind::NegL2Squared, ScoreKind::NegL1] {
            for k in [1usize, 10, 100] {
                // One thread: its share is every query, whatever the machine's cores.
                let one = rayon::ThreadPoolBuilder::new().num_threads(1).build().unwrap();
                let batch_mask = one.install(|| batch_top_k(kind, &queries, &rows, dim, Allowed::Mask(&mask), k));
                let batch_list = batch_top_k(kind, &queries, &rows, dim, Allowed::List(&list), k);
                for (qi, q) in queries.chunks(dim).enumerate() {
                    let want = model_top_k(kind, q, &rows, dim, &allowed, k);
                    let ctx = format!("{kind:?} n={n_rows} dim={dim} k={k} q={qi}");
                    let single: Vec<_> = scan_top_k(kind, q, &rows, dim, Allowed::Mask(&mask), k)
                        .iter()
                        .map(|s| (s.row, s.score))
                        .collect();
                    assert_same(&single, &want, &format!("{ctx} single"));
                    let b: Vec<_> = batch_mask[qi].iter().map(|s| (s.row, s.score)).collect();
                    assert_same(&b, &want, &format!("{ctx} batch mask"));
                    let b: Vec<_> = batch_list[qi].iter().map(|s| (s.row, s.score)).collect();
                    assert_same(&b, &want, &format!("{ctx} batch list"));
                    for s in &single {
                        assert!(allowed[s.0 as usize], "{ctx}: returned a row outside the mask");
                        // Each score belongs to the row it is reported with.
                        let own = kind.score_scalar(q, &rows[s.0 as usize * dim..(s.0 as usize + 1) * dim]);
                        assert!(
                            (s.1 - own).abs() <= 1e-3 * own.abs().max(1.0),
                            "{ctx}: row {} scored {} but its score is {own}",
                            s.0,
                            s.1
                        );
                    }
                }
            }
        }
    }
}

#[test]
fn normalize_gives_unit_length_and_leaves_zero_alone() {
    let mut v = vec![3.0, 4.0];
    assert_eq!(quiver_kernels::normalize(&mut v), 5.0);
    assert!((v[0] - 0.6).abs() < 1e-6 && (v[1] - 0.8).abs() < 1e-6);
    let mut z = vec![0.0; 5];
    quiver_kernels::normalize(&mut z);
    assert_eq!(z, vec![0.0; 5]);
}

fn float_and_bytes() -> impl Strategy<Value = (Vec<f32>, Vec<u8>)> {
    (0usize..300).prop_flat_map(|n| (prop::collection::vec(-100.0f32..100.0, n), prop::collection::vec(any::<u8>(), n)))
}

fn word_pairs() -> impl Strategy<Value = (Vec<u64>, Vec<u64>)> {
    (0usize..40).prop_flat_map(|n| (prop::collection::vec(any::<u64>(), n), prop::collection::vec(any::<u64>(), n)))
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(512))]

    #[test]
    fn quantized_kernels_match_scalar((q, c) in float_and_bytes(), (a, b) in word_pairs()) {
        use quiver_kernels::quant::{dot_bits_scalar, dot_u8_scalar, hamming_scalar, QuantKernels};
        let mag: f32 = q.iter().zip(&c).map(|(x, y)| (x * *y as f32).abs()).sum();
        for k in QuantKernels::available() {
            prop_assert!(close((k.dot_u8)(&q, &c), dot_u8_scalar(&q, &c), mag), "dot_u8 n={}", q.len());
            prop_assert_eq!((k.hamming)(&a, &b), hamming_scalar(&a, &b));
            let n = q.len().min(a.len() * 64);
            let qmag: f32 = q[..n].iter().map(|x| x.abs()).sum();
            prop_assert!(close((k.dot_bits)(&q[..n], &a), dot_bits_scalar(&q[..n], &a), qmag), "dot_bits n={}", n);
        }
    }
}

#[test]
fn prefetch_is_only_a_hint() {
    let rows = vec![1.0f32; 1000];
    quiver_kernels::quant::prefetch(&rows[990..]);
    quiver_kernels::quant::prefetch::<f32>(&[]);
    assert_eq!(rows.iter().sum::<f32>(), 1000.0);
}

fn nn_rows() -> impl Strategy<Value = (Vec<f32>, usize)> {
    (1usize..8, 1usize..70).prop_flat_map(|(rows, h)| (prop::collection::vec(-30.0f32..30.0, rows * h), Just(h)))
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(300))]

    /// Every SIMD path of the embedder's element-wise kernels against the scalar twin, and the
    /// twin against the textbook formulas (softmax in f64, GELU with libm's `erff`).
    #[test]
    fn nn_kernels_match_scalar((x, h) in nn_rows(), scale in 0.01f32..2.0) {
        use quiver_kernels::nn::NnKernels;
        let twin = NnKernels::for_isa(Isa::Scalar).unwrap();
        let g: Vec<f32> = (0..h).map(|j| 0.5 + j as f32 * 0.01).collect();
        let b: Vec<f32> = (0..h).map(|j| j as f32 * -0.02).collect();
        // The twin's softmax against a plain f64 softmax.
        for row in x.chunks(h) {
            let mut got = row.to_vec();
            twin.softmax(&mut got, scale);
            let max = row.iter().cloned().fold(f64::NEG_INFINITY, |m, v| m.max(v as f64 * scale as f64));
            let e: Vec<f64> = row.iter().map(|&v| (v as f64 * scale as f64 - max).exp()).collect();
            let sum: f64 = e.iter().sum();
            for (gv, ev) in got.iter().zip(&e) {
                prop_assert!((*gv as f64 - ev / sum).abs() < 1e-6, "softmax {} vs {}", gv, ev / sum);
            }
        }
        let mut gelu = x.clone();
        twin.gelu(&mut gelu);
        for (gv, &v) in gelu.iter().zip(&x) {
            let want = 0.5 * v * (1.0 + libm::erff(v * std::f32::consts::FRAC_1_SQRT_2));
            prop_assert!((gv - want).abs() <= 2e-6 * (1.0 + want.abs()), "gelu({}) = {} vs {}", v, gv, want);
        }
        for k in NnKernels::available() {
            let (mut s_ref, mut s_got) = (x.clone(), x.clone());
            for (r, gr) in s_ref.chunks_mut(h).zip(s_got.chunks_mut(h)) {
                twin.softmax(r, scale);
                k.softmax(gr, scale);
            }
            let (mut g_ref, mut g_got) = (x.clone(), x.clone());
            twin.gelu(&mut g_ref);
            k.gelu(&mut g_got);
            let (mut l_ref, mut l_got) = (x.clone(), x.clone());
            twin.layer_norm(&mut l_ref, h, &g, &b, 1e-12);
            k.layer_norm(&mut l_got, h, &g, &b, 1e-12);
            for i in 0..x.len() {
                prop_assert!((s_ref[i] - s_got[i]).abs() <= 1e-6, "{:?} softmax {} vs {}", k.isa, s_got[i], s_ref[i]);
                prop_assert!((g_ref[i] - g_got[i]).abs() <= 1e-5 * (1.0 + g_ref[i].abs()), "{:?} gelu", k.isa);
                prop_assert!((l_ref[i] - l_got[i]).abs() <= 1e-4 * (1.0 + l_ref[i].abs()), "{:?} layer_norm", k.isa);
            }
        }
    }
}
