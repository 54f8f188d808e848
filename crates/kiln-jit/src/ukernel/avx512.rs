//! AVX-512F 14x32 tile: 28 zmm accumulators, two zmm of B and one broadcast
//! of A per step (31 of the 32 zmm registers). The notes measured this shape
//! at 97% of the 512-bit FMA peak on Zen 5.

use std::arch::x86_64::*;

const MR: usize = 14;
const NR: usize = 32;

/// # Safety
/// The CPU has AVX-512F; `a` holds `k * 14` floats, `b` `k * 32`, and `c` is
/// valid for `13 * ldc + 32` floats with `ldc >= 32`.
#[target_feature(enable = "avx512f")]
pub unsafe extern "C" fn avx512_14x32(
    k: usize,
    a: *const f32,
    b: *const f32,
    c: *mut f32,
    ldc: usize,
    accumulate: usize,
) {
    // SAFETY: a packed B panel is the strided case with rows NR apart.
    unsafe { avx512_14x32_ldb(k, a, b, NR, c, ldc, accumulate) }
}

/// The tile with B read in place: row `p` of B is the 32 floats at `b + p * ldb`
/// (an input channel's pixels, for a 1x1 or shifted conv), so B needs no packing.
///
/// # Safety
/// As [`avx512_14x32`], with `b` valid for `(k - 1) * ldb + 32` floats when `k > 0`.
#[target_feature(enable = "avx512f")]
pub unsafe extern "C" fn avx512_14x32_ldb(
    k: usize,
    a: *const f32,
    b: *const f32,
    ldb: usize,
    c: *mut f32,
    ldc: usize,
    accumulate: usize,
) {
    let mut acc = [_mm512_setzero_ps(); 2 * MR];
    for p in 0..k {
        // SAFETY: p < k, so b[p * ldb ..][..32] and a[p * 14 ..][..14] are
        // inside the operands the caller vouches for.
        unsafe {
            let b0 = _mm512_loadu_ps(b.add(p * ldb));
            let b1 = _mm512_loadu_ps(b.add(p * ldb + 16));
            let ap = a.add(p * MR);
            for r in 0..MR {
                let av = _mm512_set1_ps(*ap.add(r));
                acc[2 * r] = _mm512_fmadd_ps(av, b0, acc[2 * r]);
                acc[2 * r + 1] = _mm512_fmadd_ps(av, b1, acc[2 * r + 1]);
            }
        }
    }
    for r in 0..MR {
        // SAFETY: r < 14 and ldc >= 32: row r's 32 floats lie inside 13 * ldc + 32.
        unsafe {
            let row = c.add(r * ldc);
            let (mut v0, mut v1) = (acc[2 * r], acc[2 * r + 1]);
            if accumulate != 0 {
                v0 = _mm512_add_ps(v0, _mm512_loadu_ps(row));
                v1 = _mm512_add_ps(v1, _mm512_loadu_ps(row.add(16)));
            }
            _mm512_storeu_ps(row, v0);
            _mm512_storeu_ps(row.add(16), v1);
        }
    }
}
