//! x86-64 tiles: AVX-512F 14x32 (28 zmm accumulators) and AVX2+FMA 6x16 (12 ymm).

use std::arch::x86_64::*;

/// # Safety
/// The CPU has AVX-512F; `a` holds `k * 14`, `b` `k * 32` and `c` `448` floats.
#[target_feature(enable = "avx512f")]
pub unsafe extern "C" fn avx512_14x32(k: usize, a: *const f32, b: *const f32, c: *mut f32) {
    let mut acc = [_mm512_setzero_ps(); 28];
    for p in 0..k {
        let b0 = _mm512_loadu_ps(b.add(p * 32));
        let b1 = _mm512_loadu_ps(b.add(p * 32 + 16));
        let ap = a.add(p * 14);
        for r in 0..14 {
            let av = _mm512_set1_ps(*ap.add(r));
            acc[2 * r] = _mm512_fmadd_ps(av, b0, acc[2 * r]);
            acc[2 * r + 1] = _mm512_fmadd_ps(av, b1, acc[2 * r + 1]);
        }
    }
    for r in 0..14 {
        _mm512_storeu_ps(c.add(r * 32), acc[2 * r]);
        _mm512_storeu_ps(c.add(r * 32 + 16), acc[2 * r + 1]);
    }
}

/// # Safety
/// The CPU has AVX2 and FMA; `a` holds `k * 6`, `b` `k * 16` and `c` `96` floats.
#[target_feature(enable = "avx2,fma")]
pub unsafe extern "C" fn avx2_6x16(k: usize, a: *const f32, b: *const f32, c: *mut f32) {
    let mut acc = [_mm256_setzero_ps(); 12];
    for p in 0..k {
        let b0 = _mm256_loadu_ps(b.add(p * 16));
        let b1 = _mm256_loadu_ps(b.add(p * 16 + 8));
        let ap = a.add(p * 6);
        for r in 0..6 {
            let av = _mm256_set1_ps(*ap.add(r));
            acc[2 * r] = _mm256_fmadd_ps(av, b0, acc[2 * r]);
            acc[2 * r + 1] = _mm256_fmadd_ps(av, b1, acc[2 * r + 1]);
        }
    }
    for r in 0..6 {
        _mm256_storeu_ps(c.add(r * 16), acc[2 * r]);
        _mm256_storeu_ps(c.add(r * 16 + 8), acc[2 * r + 1]);
    }
}
