//! Criterion benchmarks of the kernels: each ISA on common embedding sizes. Run with
//! `cargo bench -p quiver-kernels`.
use criterion::{black_box, criterion_group, criterion_main, Criterion};
use quiver_kernels::simd::{Isa, Kernels};

fn kernels(c: &mut Criterion) {
    for dim in [50usize, 384, 768, 1536] {
        let a: Vec<f32> = (0..dim).map(|i| (i as f32 * 0.37).sin()).collect();
        let b: Vec<f32> = (0..dim).map(|i| (i as f32 * 0.11).cos()).collect();
        for isa in Isa::available() {
            let k = Kernels::for_isa(isa).unwrap();
            c.bench_function(&format!("dot/{}/{dim}", isa.name()), |bench| {
                bench.iter(|| (k.dot)(black_box(&a), black_box(&b)))
            });
            c.bench_function(&format!("l2/{}/{dim}", isa.name()), |bench| {
                bench.iter(|| (k.l2_squared)(black_box(&a), black_box(&b)))
            });
        }
    }
}

criterion_group!(benches, kernels);
criterion_main!(benches);
