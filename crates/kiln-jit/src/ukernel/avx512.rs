//! AVX-512F 14x32 tile: 28 zmm accumulators, two zmm of B and one broadcast
//! of A per step (31 of the 32 zmm registers). The notes measured this shape
//! at 97% of the 512-bit FMA peak on Zen 5.

use super::TileOut;
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
    // SAFETY: forwarded from this function's contract.
    let acc = unsafe { accumulators(k, a, b, ldb) };
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

/// The 28 accumulators of `A x B` for a `k`-deep panel pair, B rows `ldb` apart.
///
/// # Safety
/// As [`avx512_14x32_ldb`] for `a` and `b`.
#[inline]
#[target_feature(enable = "avx512f")]
unsafe fn accumulators(k: usize, a: *const f32, b: *const f32, ldb: usize) -> [__m512; 2 * MR] {
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
    acc
}

/// The strided tile finishing its output itself (see [`TileOut`]): the last
/// K block of a conv goes straight from registers to `Y`, with the bias,
/// the residual and the ReLU, in the order the separate epilogue uses
/// (`((acc + C) + bias) + residual`), so results are the same bits.
///
/// # Safety
/// As [`avx512_14x32_ldb`] for `a` and `b`; `out` points to a `TileOut`
/// whose `c` (if not null) is valid for `13 * ldc + 32` floats, whose `bias`
/// (if not null) holds `rows` floats, and whose `y` and `residual` (if not
/// null) are valid for `(rows - 1) * ldy + n` floats, `n` the number of bits
/// set in `mask`; `rows <= 14` and `mask < 2^32`.
#[target_feature(enable = "avx512f")]
pub unsafe extern "C" fn avx512_14x32_out(
    k: usize,
    a: *const f32,
    b: *const f32,
    ldb: usize,
    out: *const TileOut,
) {
    // SAFETY: forwarded from this function's contract.
    let (acc, o) = unsafe { (accumulators(k, a, b, ldb), *out) };
    let (lo, hi) = (o.mask as __mmask16, (o.mask >> 16) as __mmask16);
    let (n0, n1) = (lo.count_ones(), hi.count_ones());
    // the first n0 (n1) lanes: where the compressed columns go
    let (s0, s1) = (
        ((1u32 << n0) - 1) as __mmask16,
        ((1u32 << n1) - 1) as __mmask16,
    );
    let zero = _mm512_setzero_ps();
    for r in 0..o.rows.min(MR) {
        let (mut v0, mut v1) = (acc[2 * r], acc[2 * r + 1]);
        // SAFETY: r < rows <= 14; every pointer below is inside what the
        // caller vouches for (the masked accesses touch only n0 + n1 floats).
        unsafe {
            if !o.c.is_null() {
                let row = o.c.add(r * o.ldc);
                v0 = _mm512_add_ps(v0, _mm512_loadu_ps(row));
                v1 = _mm512_add_ps(v1, _mm512_loadu_ps(row.add(16)));
            }
            let bias = if o.bias.is_null() {
                0.0
            } else {
                *o.bias.add(r)
            };
            let bias = _mm512_set1_ps(bias);
            v0 = _mm512_maskz_compress_ps(lo, _mm512_add_ps(v0, bias));
            v1 = _mm512_maskz_compress_ps(hi, _mm512_add_ps(v1, bias));
            let at = r * o.ldy;
            if !o.residual.is_null() {
                let res = o.residual.add(at);
                v0 = _mm512_add_ps(v0, _mm512_maskz_loadu_ps(s0, res));
                v1 = _mm512_add_ps(v1, _mm512_maskz_loadu_ps(s1, res.add(n0 as usize)));
            }
            if o.relu != 0 {
                // v < 0 ? 0 : v, as the separate epilogue (NaN and -0 pass through)
                v0 = _mm512_mask_mov_ps(v0, _mm512_cmp_ps_mask::<_CMP_LT_OQ>(v0, zero), zero);
                v1 = _mm512_mask_mov_ps(v1, _mm512_cmp_ps_mask::<_CMP_LT_OQ>(v1, zero), zero);
            }
            let y = o.y.add(at);
            _mm512_mask_storeu_ps(y, s0, v0);
            _mm512_mask_storeu_ps(y.add(n0 as usize), s1, v1);
        }
    }
}
