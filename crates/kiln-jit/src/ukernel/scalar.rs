//! The portable 4x8 tile: plain Rust, the fallback on any CPU and the
//! reference the SIMD tiles are tested beside.

const MR: usize = 4;
const NR: usize = 8;

/// # Safety
/// `a` holds `k * 4` floats, `b` `k * 8`, and `c` is valid for `3 * ldc + 8`
/// floats with `ldc >= 8`.
pub unsafe extern "C" fn scalar_4x8(
    k: usize,
    a: *const f32,
    b: *const f32,
    c: *mut f32,
    ldc: usize,
    accumulate: usize,
) {
    // SAFETY: the caller guarantees the panel lengths.
    let (a, b) = unsafe {
        (
            std::slice::from_raw_parts(a, k * MR),
            std::slice::from_raw_parts(b, k * NR),
        )
    };
    let mut acc = [[0.0f32; NR]; MR];
    // Plain mul + add, not mul_add: without a compile-time FMA feature
    // mul_add is a libm call per element.
    for (ap, bp) in a.chunks_exact(MR).zip(b.chunks_exact(NR)) {
        for r in 0..MR {
            for j in 0..NR {
                acc[r][j] += ap[r] * bp[j];
            }
        }
    }
    for (r, row) in acc.iter().enumerate() {
        // SAFETY: r < 4 and ldc >= 8: row r's 8 floats lie in the 3 * ldc + 8 vouched for.
        let dst = unsafe { std::slice::from_raw_parts_mut(c.add(r * ldc), NR) };
        if accumulate != 0 {
            dst.iter_mut().zip(row).for_each(|(d, s)| *d += s);
        } else {
            dst.copy_from_slice(row);
        }
    }
}
