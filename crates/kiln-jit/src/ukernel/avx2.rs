//! AVX2 + FMA 6x16 tile: 12 ymm accumulators, two ymm of B and one broadcast
//! of A per step (15 of the 16 ymm registers).

use std::arch::x86_64::*;

const MR: usize = 6;
const NR: usize = 16;

/// # Safety
/// The CPU has AVX2 and FMA; `a` holds `k * 6` floats, `b` `k * 16`, and `c`
/// is valid for `5 * ldc + 16` floats with `ldc >= 16`.
#[target_feature(enable = "avx2,fma")]
pub unsafe extern "C" fn avx2_6x16(
    k: usize,
    a: *const f32,
    b: *const f32,
    c: *mut f32,
    ldc: usize,
    accumulate: usize,
) {
    // SAFETY: a packed B panel is the strided case with rows NR apart.
    unsafe { avx2_6x16_ldb(k, a, b, NR, c, ldc, accumulate) }
}

/// The tile with B read in place, rows `ldb` floats apart (see `avx512_14x32_ldb`).
///
/// # Safety
/// As [`avx2_6x16`], with `b` valid for `(k - 1) * ldb + 16` floats when `k > 0`.
#[target_feature(enable = "avx2,fma")]
pub unsafe extern "C" fn avx2_6x16_ldb(
    k: usize,
    a: *const f32,
    b: *const f32,
    ldb: usize,
    c: *mut f32,
    ldc: usize,
    accumulate: usize,
) {
    let mut acc = [_mm256_setzero_ps(); 2 * MR];
    for p in 0..k {
        // SAFETY: p < k, so b[p * ldb ..][..16] and a[p * 6 ..][..6] are inside the operands.
        unsafe {
            let b0 = _mm256_loadu_ps(b.add(p * ldb));
            let b1 = _mm256_loadu_ps(b.add(p * ldb + 8));
            let ap = a.add(p * MR);
            for r in 0..MR {
                let av = _mm256_broadcast_ss(&*ap.add(r));
                acc[2 * r] = _mm256_fmadd_ps(av, b0, acc[2 * r]);
                acc[2 * r + 1] = _mm256_fmadd_ps(av, b1, acc[2 * r + 1]);
            }
        }
    }
    for r in 0..MR {
        // SAFETY: r < 6 and ldc >= 16: row r's 16 floats lie inside 5 * ldc + 16.
        unsafe {
            let row = c.add(r * ldc);
            let (mut v0, mut v1) = (acc[2 * r], acc[2 * r + 1]);
            if accumulate != 0 {
                v0 = _mm256_add_ps(v0, _mm256_loadu_ps(row));
                v1 = _mm256_add_ps(v1, _mm256_loadu_ps(row.add(8)));
            }
            _mm256_storeu_ps(row, v0);
            _mm256_storeu_ps(row.add(8), v1);
        }
    }
}
