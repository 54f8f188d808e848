//! aarch64 tile: NEON 8x8 (16 q-register accumulators).

use std::arch::aarch64::*;

/// # Safety
/// `a` holds `k * 8`, `b` `k * 8` and `c` `64` floats.
#[target_feature(enable = "neon")]
pub unsafe extern "C" fn neon_8x8(k: usize, a: *const f32, b: *const f32, c: *mut f32) {
    let mut acc = [vdupq_n_f32(0.0); 16];
    for p in 0..k {
        let b0 = vld1q_f32(b.add(p * 8));
        let b1 = vld1q_f32(b.add(p * 8 + 4));
        let ap = a.add(p * 8);
        for r in 0..8 {
            let av = vdupq_n_f32(*ap.add(r));
            acc[2 * r] = vfmaq_f32(acc[2 * r], av, b0);
            acc[2 * r + 1] = vfmaq_f32(acc[2 * r + 1], av, b1);
        }
    }
    for r in 0..8 {
        vst1q_f32(c.add(r * 8), acc[2 * r]);
        vst1q_f32(c.add(r * 8 + 4), acc[2 * r + 1]);
    }
}
