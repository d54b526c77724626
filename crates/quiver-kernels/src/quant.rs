//! Kernels over quantized codes, used by the approximate index:
//!
//! * [`dot_u8`]: `sum q_i * c_i` for a float query and a byte code (scalar int8 quantization:
//!   the caller folds the per-dimension scale into `q` and adds the offset term itself, so the
//!   score equals the dot product with the dequantized vector);
//! * [`hamming`]: the number of differing bits of two binary codes;
//! * [`prefetch`]: a hint to pull a row into cache before it is scored.
//!
//! As in [`crate::simd`], each kernel has a scalar twin that the tests use as the oracle, and the
//! SIMD path is chosen once per process.

use std::sync::OnceLock;

/// The scalar reference of [`dot_u8`].
pub fn dot_u8_scalar(q: &[f32], c: &[u8]) -> f32 {
    debug_assert_eq!(q.len(), c.len());
    let mut sum = 0.0f32;
    for i in 0..q.len() {
        sum += q[i] * c[i] as f32;
    }
    sum
}

/// The scalar reference of [`dot_bits`]: the sum of `q_i` over the set bits `i` of `bits`
/// (bit `i % 64` of word `i / 64`).
pub fn dot_bits_scalar(q: &[f32], bits: &[u64]) -> f32 {
    debug_assert!(bits.len() * 64 >= q.len());
    let mut sum = 0.0f32;
    for (i, x) in q.iter().enumerate() {
        if bits[i / 64] >> (i % 64) & 1 == 1 {
            sum += x;
        }
    }
    sum
}

/// The scalar reference of [`hamming`]: counts bits one by one, without `count_ones`.
pub fn hamming_scalar(a: &[u64], b: &[u64]) -> u32 {
    debug_assert_eq!(a.len(), b.len());
    let mut n = 0;
    for (x, y) in a.iter().zip(b) {
        let mut d = x ^ y;
        while d != 0 {
            n += (d & 1) as u32;
            d >>= 1;
        }
    }
    n
}

type DotU8 = fn(&[f32], &[u8]) -> f32;
type Hamming = fn(&[u64], &[u64]) -> u32;
type DotBits = fn(&[f32], &[u64]) -> f32;

/// The quantized kernels chosen for this CPU.
#[derive(Clone, Copy, Debug)]
pub struct QuantKernels {
    pub dot_u8: DotU8,
    pub hamming: Hamming,
    pub dot_bits: DotBits,
}

impl QuantKernels {
    /// The scalar references.
    pub fn scalar() -> QuantKernels {
        QuantKernels {
            dot_u8: dot_u8_scalar,
            hamming: hamming_word,
            dot_bits: dot_bits_scalar,
        }
    }

    /// Every variant this CPU can run, the scalar references first and the fastest last: the
    /// tests check each against the references.
    pub fn available() -> Vec<QuantKernels> {
        let mut out = vec![QuantKernels::scalar()];
        #[cfg(target_arch = "x86_64")]
        {
            let mut k = QuantKernels::scalar();
            if std::arch::is_x86_feature_detected!("popcnt") {
                k.hamming = x86::hamming_popcnt;
                out.push(k);
            }
            if std::arch::is_x86_feature_detected!("avx2") && std::arch::is_x86_feature_detected!("fma") {
                k.dot_u8 = x86::dot_u8_avx2;
                out.push(k);
            }
            if std::arch::is_x86_feature_detected!("avx512f") {
                k.dot_u8 = x86::dot_u8_avx512;
                k.dot_bits = x86::dot_bits_avx512;
                out.push(k);
            }
        }
        out
    }

    /// The fastest kernels this CPU runs, detected once.
    pub fn best() -> &'static QuantKernels {
        static BEST: OnceLock<QuantKernels> = OnceLock::new();
        BEST.get_or_init(|| *QuantKernels::available().last().expect("the scalar kernels are always available"))
    }
}

/// `count_ones` per word: what the compiler makes of it without the POPCNT feature.
fn hamming_word(a: &[u64], b: &[u64]) -> u32 {
    assert_eq!(a.len(), b.len(), "kernel inputs must have equal length");
    a.iter().zip(b).map(|(x, y)| (x ^ y).count_ones()).sum()
}

/// `sum q_i * c_i` with the best kernel.
#[inline]
pub fn dot_u8(q: &[f32], c: &[u8]) -> f32 {
    (QuantKernels::best().dot_u8)(q, c)
}

/// `sum q_i` over the set bits of `bits` with the best kernel.
#[inline]
pub fn dot_bits(q: &[f32], bits: &[u64]) -> f32 {
    (QuantKernels::best().dot_bits)(q, bits)
}

/// Differing bits of `a` and `b` with the best kernel.
#[inline]
pub fn hamming(a: &[u64], b: &[u64]) -> u32 {
    (QuantKernels::best().hamming)(a, b)
}

/// Asks the CPU to bring `row` into cache, up to its first 2 KiB (32 cache lines: a 384-d f32
/// row is 1.5 KiB; stopping at 256 bytes cost the MiniLM-50k build about 5% and its searches
/// about 7%). Every cache line the row touches, its last byte's too: a row that does not start
/// on a line (a 50-d half-precision row is 100 bytes) spans one line more than its length in
/// lines, and that last line was the one a 50-d build waited on. A hint only: it never faults
/// and never changes a result.
#[inline(always)]
pub fn prefetch<T>(row: &[T]) {
    #[cfg(target_arch = "x86_64")]
    {
        use std::arch::x86_64::{_mm_prefetch, _MM_HINT_T0};
        let bytes = std::mem::size_of_val(row).min(2048);
        let p = row.as_ptr() as *const i8;
        for off in prefetch_offsets(p as usize, bytes) {
            // SAFETY: PREFETCHT0 is part of SSE (baseline on x86-64), never faults, and
            // `off < bytes`, so the address stays inside `row`.
            unsafe { _mm_prefetch::<_MM_HINT_T0>(p.add(off)) };
        }
    }
    #[cfg(not(target_arch = "x86_64"))]
    let _ = row;
}

/// Offsets into `bytes` bytes at address `start` that, prefetched, bring in every cache line
/// they touch, one each: steps of 64 from the first byte land on consecutive lines, so only the
/// last byte's line can be left, when it is not the last step's.
#[inline(always)]
#[cfg_attr(not(target_arch = "x86_64"), allow(dead_code))]
fn prefetch_offsets(start: usize, bytes: usize) -> impl Iterator<Item = usize> {
    let last = bytes
        .checked_sub(1)
        .filter(|&last| (start + last) / 64 != (start + last / 64 * 64) / 64);
    (0..bytes).step_by(64).chain(last)
}

/// Advises the kernel to back the not-yet-touched spare capacity of `v` with transparent huge
/// pages (Linux, `MADV_HUGEPAGE`), where whole 2 MiB pages fit. Call it after reserving and
/// before filling: pages already touched are not converted. Graph traversal touches vectors and
/// neighbour lists at random, and with 4 KiB pages almost every touch is also a TLB miss.
/// A hint only: it never changes the contents, and failures are ignored.
pub fn advise_huge_spare<T>(v: &Vec<T>) {
    #[cfg(target_os = "linux")]
    {
        const HUGE: usize = 2 << 20;
        let start = v.as_ptr() as usize + v.len() * std::mem::size_of::<T>();
        let end = v.as_ptr() as usize + v.capacity() * std::mem::size_of::<T>();
        let (lo, hi) = (start.div_ceil(HUGE) * HUGE, end / HUGE * HUGE);
        if hi > lo {
            // SAFETY: the range lies inside `v`'s own allocation (its spare capacity), and
            // MADV_HUGEPAGE only changes how the kernel backs those pages, not their contents
            // or their validity.
            unsafe {
                libc::madvise(lo as *mut libc::c_void, hi - lo, libc::MADV_HUGEPAGE);
            }
        }
    }
    #[cfg(not(target_os = "linux"))]
    let _ = v;
}

/// Lowers the calling thread's scheduling priority (nice 10) so that background work (index
/// builds, the recall monitor) yields the cores to searches and writes when they compete, and
/// still uses them when they are idle. A hint only: failures are ignored.
pub fn lower_thread_priority() {
    #[cfg(target_os = "linux")]
    // SAFETY: setpriority takes plain integers and touches no memory of ours; on Linux, `who`
    // 0 with PRIO_PROCESS names the calling thread.
    unsafe {
        libc::setpriority(libc::PRIO_PROCESS, 0, 10);
    }
}

#[cfg(target_arch = "x86_64")]
mod x86 {
    use std::arch::x86_64::*;

    pub fn hamming_popcnt(a: &[u64], b: &[u64]) -> u32 {
        assert_eq!(a.len(), b.len(), "kernel inputs must have equal length");
        debug_assert!(is_x86_feature_detected!("popcnt"));
        // SAFETY: only handed out by `QuantKernels::best` after POPCNT was detected.
        unsafe { hamming_popcnt_impl(a, b) }
    }

    #[target_feature(enable = "popcnt")]
    fn hamming_popcnt_impl(a: &[u64], b: &[u64]) -> u32 {
        a.iter().zip(b).map(|(x, y)| (x ^ y).count_ones()).sum()
    }

    pub fn dot_u8_avx2(q: &[f32], c: &[u8]) -> f32 {
        assert_eq!(q.len(), c.len(), "kernel inputs must have equal length");
        debug_assert!(is_x86_feature_detected!("avx2") && is_x86_feature_detected!("fma"));
        // SAFETY: only handed out by `QuantKernels::best` after AVX2 and FMA were detected;
        // lengths are equal (asserted above).
        unsafe { dot_u8_avx2_impl(q, c) }
    }

    pub fn dot_u8_avx512(q: &[f32], c: &[u8]) -> f32 {
        assert_eq!(q.len(), c.len(), "kernel inputs must have equal length");
        debug_assert!(is_x86_feature_detected!("avx512f"));
        // SAFETY: only handed out by `QuantKernels::best` after AVX-512F was detected; lengths
        // are equal (asserted above).
        unsafe { dot_u8_avx512_impl(q, c) }
    }

    pub fn dot_bits_avx512(q: &[f32], bits: &[u64]) -> f32 {
        assert!(bits.len() * 64 >= q.len(), "one bit per value");
        debug_assert!(is_x86_feature_detected!("avx512f"));
        // SAFETY: only handed out by `QuantKernels::best` after AVX-512F was detected; `bits`
        // covers `q` (asserted above).
        unsafe { dot_bits_avx512_impl(q, bits) }
    }

    /// # Safety
    /// The CPU must support AVX-512F, and `bits.len() * 64 >= q.len()`.
    #[target_feature(enable = "avx512f")]
    unsafe fn dot_bits_avx512_impl(q: &[f32], bits: &[u64]) -> f32 {
        let n = q.len();
        let pq = q.as_ptr();
        let mut acc = _mm512_setzero_ps();
        let mut i = 0;
        while i < n {
            let word = bits[i / 64] >> (i % 64);
            let rest = (n - i).min(16);
            let valid = ((1u32 << rest) - 1) as __mmask16;
            // Sixteen bits select which of the sixteen floats are added; loads are masked to
            // the valid lanes, so nothing past the end of `q` is read.
            let m = (word as u16 as __mmask16) & valid;
            acc = _mm512_mask_add_ps(acc, m, acc, _mm512_maskz_loadu_ps(valid, pq.add(i)));
            i += 16;
        }
        _mm512_reduce_add_ps(acc)
    }

    /// # Safety
    /// The CPU must support AVX2 and FMA, and `q.len() == c.len()`.
    #[target_feature(enable = "avx2,fma")]
    unsafe fn dot_u8_avx2_impl(q: &[f32], c: &[u8]) -> f32 {
        let n = q.len();
        let (pq, pc) = (q.as_ptr(), c.as_ptr());
        let mut acc0 = _mm256_setzero_ps();
        let mut acc1 = _mm256_setzero_ps();
        let mut acc2 = _mm256_setzero_ps();
        let mut acc3 = _mm256_setzero_ps();
        let mut i = 0;
        // Four chains of FMAs: with two, a long row waits on the FMA latency (4 cycles on Zen
        // 3, two FMAs a cycle) rather than on the loads.
        while i + 32 <= n {
            let c0 = _mm256_cvtepi32_ps(_mm256_cvtepu8_epi32(_mm_loadl_epi64(pc.add(i) as *const __m128i)));
            let c1 = _mm256_cvtepi32_ps(_mm256_cvtepu8_epi32(_mm_loadl_epi64(pc.add(i + 8) as *const __m128i)));
            let c2 = _mm256_cvtepi32_ps(_mm256_cvtepu8_epi32(_mm_loadl_epi64(pc.add(i + 16) as *const __m128i)));
            let c3 = _mm256_cvtepi32_ps(_mm256_cvtepu8_epi32(_mm_loadl_epi64(pc.add(i + 24) as *const __m128i)));
            acc0 = _mm256_fmadd_ps(_mm256_loadu_ps(pq.add(i)), c0, acc0);
            acc1 = _mm256_fmadd_ps(_mm256_loadu_ps(pq.add(i + 8)), c1, acc1);
            acc2 = _mm256_fmadd_ps(_mm256_loadu_ps(pq.add(i + 16)), c2, acc2);
            acc3 = _mm256_fmadd_ps(_mm256_loadu_ps(pq.add(i + 24)), c3, acc3);
            i += 32;
        }
        while i + 8 <= n {
            let c0 = _mm256_cvtepi32_ps(_mm256_cvtepu8_epi32(_mm_loadl_epi64(pc.add(i) as *const __m128i)));
            acc0 = _mm256_fmadd_ps(_mm256_loadu_ps(pq.add(i)), c0, acc0);
            i += 8;
        }
        let v = _mm256_add_ps(_mm256_add_ps(acc0, acc1), _mm256_add_ps(acc2, acc3));
        let lo = _mm256_castps256_ps128(v);
        let hi = _mm256_extractf128_ps::<1>(v);
        let s = _mm_add_ps(lo, hi);
        let s = _mm_add_ps(s, _mm_movehl_ps(s, s));
        let s = _mm_add_ss(s, _mm_shuffle_ps::<0b01>(s, s));
        let mut sum = _mm_cvtss_f32(s);
        while i < n {
            sum += *pq.add(i) * *pc.add(i) as f32;
            i += 1;
        }
        sum
    }

    /// # Safety
    /// The CPU must support AVX-512F, and `q.len() == c.len()`.
    #[target_feature(enable = "avx512f")]
    unsafe fn dot_u8_avx512_impl(q: &[f32], c: &[u8]) -> f32 {
        let n = q.len();
        let (pq, pc) = (q.as_ptr(), c.as_ptr());
        let mut acc0 = _mm512_setzero_ps();
        let mut acc1 = _mm512_setzero_ps();
        let mut i = 0;
        while i + 32 <= n {
            let c0 = _mm512_cvtepi32_ps(_mm512_cvtepu8_epi32(_mm_loadu_si128(pc.add(i) as *const __m128i)));
            let c1 = _mm512_cvtepi32_ps(_mm512_cvtepu8_epi32(_mm_loadu_si128(pc.add(i + 16) as *const __m128i)));
            acc0 = _mm512_fmadd_ps(_mm512_loadu_ps(pq.add(i)), c0, acc0);
            acc1 = _mm512_fmadd_ps(_mm512_loadu_ps(pq.add(i + 16)), c1, acc1);
            i += 32;
        }
        while i + 16 <= n {
            let c0 = _mm512_cvtepi32_ps(_mm512_cvtepu8_epi32(_mm_loadu_si128(pc.add(i) as *const __m128i)));
            acc0 = _mm512_fmadd_ps(_mm512_loadu_ps(pq.add(i)), c0, acc0);
            i += 16;
        }
        if i < n {
            // The tail: bytes are copied to a zeroed buffer (no read past the end of `c`), floats
            // are loaded under a mask.
            let rest = n - i;
            let mut tail = [0u8; 16];
            std::ptr::copy_nonoverlapping(pc.add(i), tail.as_mut_ptr(), rest);
            let m = ((1u32 << rest) - 1) as __mmask16;
            let c0 = _mm512_cvtepi32_ps(_mm512_cvtepu8_epi32(_mm_loadu_si128(tail.as_ptr() as *const __m128i)));
            acc1 = _mm512_fmadd_ps(_mm512_maskz_loadu_ps(m, pq.add(i)), c0, acc1);
        }
        _mm512_reduce_add_ps(_mm512_add_ps(acc0, acc1))
    }
}

#[cfg(test)]
mod tests {
    use super::prefetch_offsets;
    use std::collections::BTreeSet;

    /// The prefetched lines are exactly the lines the row touches, each once, at every
    /// alignment of the row's start: a row of 100 bytes starting 40 bytes into a line touches
    /// three lines, not two.
    #[test]
    fn prefetch_covers_every_line_a_row_touches() {
        for start in 4096..4096 + 128 {
            for bytes in [0, 1, 2, 50, 63, 64, 65, 100, 127, 128, 129, 200, 768, 1536, 2048] {
                let offsets: Vec<usize> = prefetch_offsets(start, bytes).collect();
                assert!(offsets.iter().all(|&o| o < bytes), "start {start} bytes {bytes}");
                let got: BTreeSet<usize> = offsets.iter().map(|o| (start + o) / 64).collect();
                let want: BTreeSet<usize> = (0..bytes).map(|b| (start + b) / 64).collect();
                assert_eq!(got, want, "start {start} bytes {bytes}");
                assert_eq!(got.len(), offsets.len(), "one prefetch per line: start {start} bytes {bytes}");
            }
        }
    }
}
