//! A/B of the embedder's weight product: `F32Panels` (weights packed once) against the `gemm`
//! crate (which packs them on every call), alternating in each round, on every core.
//!
//! `cargo run --release -p quiver-kernels --example panels_vs_gemm -- M K N REPS`, for example
//! `405 384 1152 20` (a batch of 32 short sentences through MiniLM's Q/K/V layer). Prints each
//! round's GFLOP/s and the ratio, and the largest difference between the two outputs.
use quiver_kernels::matmul::{gemm, MatMut, MatRef, Onto, Threads};
use quiver_kernels::panels::F32Panels;
use std::time::Instant;
fn main() {
    let args: Vec<usize> = std::env::args().skip(1).filter_map(|a| a.parse().ok()).collect();
    let [m, k, n, reps] = args[..] else {
        eprintln!("usage: panels_vs_gemm M K N REPS (N a multiple of 16)");
        std::process::exit(2);
    };
    let w: Vec<f32> = (0..n * k).map(|i| ((i * 7919) % 2003) as f32 / 1001.0 - 1.0).collect();
    let x: Vec<f32> = (0..m * k).map(|i| ((i * 104729) % 997) as f32 / 500.0 - 1.0).collect();
    let Some(p) = F32Panels::pack(&w, n, k) else {
        eprintln!("N must be a positive multiple of 16");
        std::process::exit(2);
    };
    let mut o1 = vec![0.0f32; m * n];
    let mut o2 = vec![0.0f32; m * n];
    for round in 0..3 {
        let t = Instant::now();
        for _ in 0..reps {
            gemm(
                Threads::All,
                MatMut::row_major(&mut o1, m, n),
                false,
                MatRef::row_major(&x, m, k),
                MatRef::row_major(&w, n, k).t(),
            );
        }
        let g = t.elapsed().as_secs_f64();
        let t = Instant::now();
        for _ in 0..reps {
            p.matmul(&x, m, &mut o2, Onto::Nothing);
        }
        let q = t.elapsed().as_secs_f64();
        let fl = 2.0 * (m * n * k * reps) as f64;
        println!(
            "round {round}: gemm {:.1} GFLOPS, panels {:.1} GFLOPS, panels / gemm {:.3}",
            fl / g / 1e9,
            fl / q / 1e9,
            g / q
        );
    }
    let b = quiver_kernels::panels::Bf16Panels::pack(&w, n, k).unwrap();
    for round in 0..3 {
        let t = Instant::now();
        for _ in 0..reps {
            p.matmul(&x, m, &mut o2, Onto::Nothing);
        }
        let q = t.elapsed().as_secs_f64();
        let t = Instant::now();
        for _ in 0..reps {
            b.matmul(&x, m, &mut o1, Onto::Nothing);
        }
        let h = t.elapsed().as_secs_f64();
        println!("round {round}: bf16 / f32 panels {:.3}", q / h);
    }
    let d = o1.iter().zip(&o2).map(|(a, b)| (a - b).abs()).fold(0.0f32, f32::max);
    println!("max diff {d}");
}
