//! SIMD kernels and their dispatch. The CPU's features are detected once per process
//! ([`isa`]); [`dot`], [`l2_squared`] and [`l1`] then call the widest path available.
//!
//! Paths: AVX-512F and AVX2+FMA on x86-64, NEON on aarch64, the scalar reference elsewhere.
//! Every path is checked against [`crate::scalar`] by property tests over random lengths
//! (`tests/kernels.rs`), with a tolerance for the different summation order.

use std::sync::OnceLock;

/// An instruction set a kernel can run on.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum Isa {
    Scalar,
    Avx2Fma,
    Avx512,
    Neon,
}

impl Isa {
    /// Every ISA this CPU can run, the scalar reference first.
    pub fn available() -> Vec<Isa> {
        let mut out = vec![Isa::Scalar];
        #[cfg(target_arch = "x86_64")]
        {
            if std::arch::is_x86_feature_detected!("avx2") && std::arch::is_x86_feature_detected!("fma") {
                out.push(Isa::Avx2Fma);
            }
            if std::arch::is_x86_feature_detected!("avx512f") {
                out.push(Isa::Avx512);
            }
        }
        #[cfg(target_arch = "aarch64")]
        {
            if std::arch::is_aarch64_feature_detected!("neon") {
                out.push(Isa::Neon);
            }
        }
        out
    }

    /// A short lowercase name for logs and `quiver info`.
    pub fn name(self) -> &'static str {
        match self {
            Isa::Scalar => "scalar",
            Isa::Avx2Fma => "avx2+fma",
            Isa::Avx512 => "avx512f",
            Isa::Neon => "neon",
        }
    }
}

/// The kernel signature: two slices of equal length in, one number out.
pub type Kernel = fn(&[f32], &[f32]) -> f32;

/// A block kernel: `out[i] = <query, row i>` for `out.len()` consecutive rows of
/// `query.len()` floats (`rows.len() == out.len() * query.len()`). One call scores a block, so
/// the per-row cost is the arithmetic, not a call and a horizontal sum each.
pub type RowsKernel = fn(&[f32], &[f32], &mut [f32]);

/// The kernels of one ISA.
#[derive(Clone, Copy, Debug)]
pub struct Kernels {
    pub isa: Isa,
    pub dot: Kernel,
    pub l2_squared: Kernel,
    pub l1: Kernel,
    pub dot_rows: RowsKernel,
    /// `<a, b>` for one row with exactly the arithmetic `dot_rows` gives each row of a block
    /// (bit for bit). Exact scans score every row with one or the other, so a row's score does
    /// not depend on which rows beside it were allowed or how candidates reached it.
    pub dot_one: Kernel,
}

impl Kernels {
    /// The kernels of `isa`, or `None` when this CPU cannot run it.
    pub fn for_isa(isa: Isa) -> Option<Kernels> {
        if !Isa::available().contains(&isa) {
            return None;
        }
        Some(match isa {
            Isa::Scalar => Kernels {
                isa,
                dot: crate::scalar::dot,
                l2_squared: crate::scalar::l2_squared,
                l1: crate::scalar::l1,
                dot_rows: crate::scalar::dot_rows,
                dot_one: crate::scalar::dot,
            },
            #[cfg(target_arch = "x86_64")]
            Isa::Avx2Fma => Kernels {
                isa,
                dot: x86::dot_avx2,
                l2_squared: x86::l2_squared_avx2,
                l1: x86::l1_avx2,
                dot_rows: x86::dot_rows_avx2,
                dot_one: x86::dot_one_avx2,
            },
            #[cfg(target_arch = "x86_64")]
            Isa::Avx512 => Kernels {
                isa,
                dot: x86::dot_avx512,
                l2_squared: x86::l2_squared_avx512,
                l1: x86::l1_avx512,
                dot_rows: x86::dot_rows_avx512,
                dot_one: x86::dot_one_avx512,
            },
            #[cfg(target_arch = "aarch64")]
            Isa::Neon => Kernels {
                isa,
                dot: arm::dot_neon,
                l2_squared: arm::l2_squared_neon,
                l1: arm::l1_neon,
                dot_rows: arm::dot_rows_neon,
                dot_one: arm::dot_neon,
            },
            #[allow(unreachable_patterns)]
            _ => return None,
        })
    }

    /// The best kernels for this CPU, detected once.
    pub fn best() -> &'static Kernels {
        static BEST: OnceLock<Kernels> = OnceLock::new();
        BEST.get_or_init(|| {
            let isa = *Isa::available().last().expect("scalar is always available");
            Kernels::for_isa(isa).expect("an available ISA has kernels")
        })
    }
}

/// The ISA the dispatched kernels use on this CPU.
pub fn isa() -> Isa {
    Kernels::best().isa
}

/// `<a, b>` with the best kernel.
#[inline]
pub fn dot(a: &[f32], b: &[f32]) -> f32 {
    (Kernels::best().dot)(a, b)
}

/// `|a - b|^2` with the best kernel.
#[inline]
pub fn l2_squared(a: &[f32], b: &[f32]) -> f32 {
    (Kernels::best().l2_squared)(a, b)
}

/// `sum |a_i - b_i|` with the best kernel.
#[inline]
pub fn l1(a: &[f32], b: &[f32]) -> f32 {
    (Kernels::best().l1)(a, b)
}

#[cfg(target_arch = "x86_64")]
mod x86;

#[cfg(target_arch = "aarch64")]
mod arm;
