//! The panels' tests: every path against a schoolbook product and against the baseline twin.

use super::*;

pub(super) fn values(len: usize, seed: usize) -> Vec<f32> {
    (0..len).map(|i| (((i + seed) * 7919) % 2003) as f32 / 1001.0 - 1.0).collect()
}

/// Every path of `Panels<T>` (the baseline twin included) against the product in `f64` of
/// the weights as `T` stores them, with and without accumulation, for row counts below, at
/// and past each strip height, block size and the few-rows split, and input widths that are
/// not multiples of a vector.
pub(super) fn check_against_schoolbook<F: Format>(stored_w: fn(f32) -> f32, stored_x: fn(f32) -> f32) {
    for (n, k) in [(16, 1), (48, 37), (32, 384), (128, 40), (16, 1536)] {
        let w = values(n * k, 3);
        let panels = Panels::<F>::pack(&w, n, k).unwrap();
        assert_eq!((panels.outputs(), panels.inputs()), (n, k));
        let stored: Vec<f64> = w.iter().map(|&v| stored_w(v) as f64).collect();
        for m in [1, 2, 5, 6, 7, 11, 12, 13, 25, 48, 49, 97, 100] {
            if k == 1536 && m > 25 {
                continue; // the baseline's software fused multiply-add is slow
            }
            let x = values(m * k, 11 * m);
            let mut want = vec![0.0f64; m * n];
            for r in 0..m {
                for c in 0..n {
                    want[r * n + c] = (0..k).map(|t| stored_x(x[r * k + t]) as f64 * stored[c * k + t]).sum();
                }
            }
            let tolerance = |w: f64| 1e-5 * (k as f64).sqrt() * (1.0 + w.abs());
            for isa in Isa::available() {
                let mut got = vec![0.5f32; m * n];
                panels.matmul_isa(isa, &x, m, &mut got, Onto::Out);
                for (i, (g, w)) in got.iter().zip(&want).enumerate() {
                    let w = w + 0.5;
                    assert!(
                        (*g as f64 - w).abs() <= tolerance(w),
                        "{isa:?} n={n} k={k} m={m} at {i}: {g} vs {w}"
                    );
                }
                panels.matmul_isa(isa, &x, m, &mut got, Onto::Nothing);
                for (i, (g, w)) in got.iter().zip(&want).enumerate() {
                    assert!(
                        (*g as f64 - w).abs() <= tolerance(*w),
                        "{isa:?} n={n} k={k} m={m} at {i}: {g} vs {w}"
                    );
                }
            }
        }
    }
}

#[test]
fn f32_panels_match_the_schoolbook_product() {
    check_against_schoolbook::<f32>(|v| v, |v| v);
}

#[test]
fn bf16_panels_match_the_schoolbook_product_of_the_rounded_weights() {
    check_against_schoolbook::<Bf16>(|v| Bf16::narrow(v).widen(), |v| v);
}

/// Every output is the same chain of fused multiply-adds whatever the strip height or the
/// split between threads: each vector path equals the baseline to the bit, for few rows and
/// for many.
#[test]
fn every_path_equals_the_baseline_to_the_bit() {
    let (n, k) = (64, 100);
    let w = values(n * k, 5);
    let (f, b) = (F32Panels::pack(&w, n, k).unwrap(), Bf16Panels::pack(&w, n, k).unwrap());
    for m in [3, 29] {
        let x = values(m * k, 9);
        let (mut base_f, mut base_b) = (vec![0.0f32; m * n], vec![0.0f32; m * n]);
        f.matmul_isa(Isa::Scalar, &x, m, &mut base_f, Onto::Nothing);
        b.matmul_isa(Isa::Scalar, &x, m, &mut base_b, Onto::Nothing);
        assert_ne!(base_f, base_b, "the bf16 weights are rounded");
        for isa in Isa::available() {
            let mut got = vec![0.0f32; m * n];
            f.matmul_isa(isa, &x, m, &mut got, Onto::Nothing);
            assert_eq!(base_f, got, "f32 {isa:?} m={m}");
            b.matmul_isa(isa, &x, m, &mut got, Onto::Nothing);
            assert_eq!(base_b, got, "bf16 {isa:?} m={m}");
        }
    }
}

/// A bias and a residual added as each tile is stored give the same bits as writing them into
/// the output first and accumulating onto it, on every path, for the few-rows split and for
/// several blocks of rows.
#[test]
fn a_bias_and_residual_equal_writing_them_first() {
    let (n, k) = (64, 100);
    let (w, bias) = (values(n * k, 5), values(n, 17));
    let (f, b) = (F32Panels::pack(&w, n, k).unwrap(), Bf16Panels::pack(&w, n, k).unwrap());
    for m in [1, 5, 13, 100, 2000] {
        let (x, res) = (values(m * k, 9), values(m * n, 23));
        for isa in Isa::available() {
            for residual in [None, Some(&res[..])] {
                let base: Vec<f32> = (0..m * n).map(|i| bias[i % n] + residual.map_or(0.0, |r| r[i])).collect();
                let onto = Onto::Bias { bias: &bias, residual };
                let (mut want, mut got) = (base.clone(), vec![f32::NAN; m * n]);
                f.matmul_isa(isa, &x, m, &mut want, Onto::Out);
                f.matmul_isa(isa, &x, m, &mut got, onto);
                assert_eq!(got, want, "f32 {isa:?} m={m} residual={}", residual.is_some());
                let (mut want, mut got) = (base, vec![f32::NAN; m * n]);
                b.matmul_isa(isa, &x, m, &mut want, Onto::Out);
                b.matmul_isa(isa, &x, m, &mut got, onto);
                assert_eq!(got, want, "bf16 {isa:?} m={m} residual={}", residual.is_some());
            }
        }
    }
}

#[test]
#[should_panic(expected = "one bias per output column")]
fn a_bias_of_the_wrong_width_is_refused() {
    let panels = F32Panels::pack(&values(32 * 8, 1), 32, 8).unwrap();
    let mut out = vec![0.0; 32];
    panels.matmul(
        &values(8, 2),
        1,
        &mut out,
        Onto::Bias {
            bias: &[0.0; 16],
            residual: None,
        },
    );
}

/// The AVX-512 path's panel pairing (and its odd last panel), run in the baseline build so
/// that every machine checks it: the same outputs, bit for bit, as one panel at a time.
#[test]
fn pairs_of_panels_equal_single_panels() {
    for (n, m) in [(16, 7), (48, 13), (64, 1), (80, 30)] {
        let k = 21;
        let (w, x) = (values(n * k, 2), values(m * k, 4));
        let panels = Bf16Panels::pack(&w, n, k).unwrap();
        let mut packed = Vec::new();
        pack_strips::<Bf16>(&x, m, k, &mut packed);
        for plain in [Onto::Nothing, Onto::Out] {
            let mut single = vec![0.25f32; m * n];
            let mut pairs = single.clone();
            let (bias, res) = (values(n, 3), values(m * n, 8));
            let onto = Onto::Bias {
                bias: &bias,
                residual: Some(&res),
            };
            let (mut single_b, mut pairs_b) = (single.clone(), single.clone());
            block_body::<Bf16, STRIP>(&panels.data, k, n, &packed, m, &mut single_b, onto);
            block_body_pairs::<Bf16, STRIP>(&panels.data, k, n, &packed, m, &mut pairs_b, onto);
            assert_eq!(single_b, pairs_b, "n={n} m={m} with a bias and residual");
            block_body::<Bf16, STRIP>(&panels.data, k, n, &packed, m, &mut single, plain);
            block_body_pairs::<Bf16, STRIP>(&panels.data, k, n, &packed, m, &mut pairs, plain);
            assert_eq!(single, pairs, "n={n} m={m} onto {plain:?}");
            assert!(single.iter().all(|&v| v != 0.25), "every output written");
        }
    }
}

#[test]
fn bf16_rounding_is_to_nearest_even() {
    let round = |v: f32| Bf16::narrow(v).widen();
    assert_eq!(round(1.0), 1.0);
    assert_eq!(round(-2.5), -2.5);
    // 1 + 2^-8 lies halfway between 1 and 1 + 2^-7: ties go to the even mantissa (1.0).
    assert_eq!(round(1.0 + 1.0 / 256.0), 1.0);
    assert_eq!(round(1.0 + 3.0 / 256.0), 1.0 + 4.0 / 256.0);
    for i in 0..10_000 {
        let v = (i as f32 * 0.731).sin() * 10f32.powi(i % 7 - 3);
        assert!((round(v) - v).abs() <= v.abs() / 256.0, "{v}");
    }
    assert!(round(f32::NAN).is_nan());
}

#[test]
fn shapes_that_cannot_be_packed_are_refused() {
    let w = values(40 * 8, 1);
    assert!(F32Panels::pack(&w, 40, 8).is_none(), "n must be a multiple of 16");
    assert!(Bf16Panels::pack(&w, 40, 8).is_none(), "n must be a multiple of 16");
    assert!(F32Panels::pack(&w[..32 * 8], 32, 0).is_none());
    assert!(F32Panels::pack(&w[..10], 16, 8).is_none(), "length must be n * k");
    let panels = F32Panels::pack(&w[..32 * 8], 32, 8).unwrap();
    let mut out: Vec<f32> = vec![];
    panels.matmul(&[], 0, &mut out, Onto::Out);
}
