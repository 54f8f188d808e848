//! aarch64 NEON 8x8 tile: 16 q-register accumulators, two of B per step and
//! one broadcast of A per row (19 of the 32 v registers). Only intrinsics
//! stable since Rust 1.59 are used (`vdupq_n_f32` + `vfmaq_f32`; LLVM turns
//! the pair into an `fmla` by element or an `ld1r`).

use std::arch::aarch64::*;

const MR: usize = 8;
const NR: usize = 8;

/// # Safety
/// `a` holds `k * 8` floats, `b` `k * 8`, and `c` is valid for `7 * ldc + 8`
/// floats with `ldc >= 8` (NEON is baseline on aarch64).
#[target_feature(enable = "neon")]
pub unsafe extern "C" fn neon_8x8(
    k: usize,
    a: *const f32,
    b: *const f32,
    c: *mut f32,
    ldc: usize,
    accumulate: usize,
) {
    let mut acc = [vdupq_n_f32(0.0); 2 * MR];
    for p in 0..k {
        // SAFETY: p < k, so a[p * 8 ..][..8] and b[p * 8 ..][..8] are inside the panels.
        unsafe {
            let b0 = vld1q_f32(b.add(p * NR));
            let b1 = vld1q_f32(b.add(p * NR + 4));
            let ap = a.add(p * MR);
            for r in 0..MR {
                let av = vdupq_n_f32(*ap.add(r));
                acc[2 * r] = vfmaq_f32(acc[2 * r], av, b0);
                acc[2 * r + 1] = vfmaq_f32(acc[2 * r + 1], av, b1);
            }
        }
    }
    for r in 0..MR {
        // SAFETY: r < 8 and ldc >= 8: row r's 8 floats lie inside 7 * ldc + 8.
        unsafe {
            let row = c.add(r * ldc);
            let (mut v0, mut v1) = (acc[2 * r], acc[2 * r + 1]);
            if accumulate != 0 {
                v0 = vaddq_f32(v0, vld1q_f32(row));
                v1 = vaddq_f32(v1, vld1q_f32(row.add(4)));
            }
            vst1q_f32(row, v0);
            vst1q_f32(row.add(4), v1);
        }
    }
}
