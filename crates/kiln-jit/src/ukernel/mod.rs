//! Hand-written matmul tiles in Rust `std::arch`, called from the generated code.
//!
//! Every tile has the same contract (the one the Cranelift-generated f32x4 tile
//! follows too): `tile(k, a, b, c)` computes `C[MR][NR] = sum_k A[k][MR] x B[k][NR]`
//! where `a` is an `MR`-row panel packed `k`-major (`a[k * MR + r]`), `b` an
//! `NR`-column panel packed `k`-major (`b[k * NR + j]`) and `c` is an `MR x NR`
//! row-major scratch tile that is overwritten. The generated code owns packing,
//! the loop nest and the epilogue (bias, residual, ReLU) applied when it stores
//! the tile; a tile never reads `c`.

#[cfg(target_arch = "x86_64")]
mod x86;
#[cfg(target_arch = "aarch64")]
mod neon;

/// A tile function: `(k, a, b, c)`.
pub type TileFn = unsafe extern "C" fn(usize, *const f32, *const f32, *mut f32);

/// One microkernel: its symbol name, tile shape and entry point.
#[derive(Clone, Copy, Debug)]
pub struct Microkernel {
    pub name: &'static str,
    pub mr: usize,
    pub nr: usize,
    pub func: TileFn,
}

/// The best microkernel this CPU runs: AVX-512F 14x32, AVX2+FMA 6x16, NEON 8x8, or scalar 4x8.
pub fn best() -> Microkernel {
    #[cfg(target_arch = "x86_64")]
    {
        if std::arch::is_x86_feature_detected!("avx512f") {
            return Microkernel { name: "kiln_avx512_mmm_f32_14x32", mr: 14, nr: 32, func: x86::avx512_14x32 };
        }
        if std::arch::is_x86_feature_detected!("avx2") && std::arch::is_x86_feature_detected!("fma") {
            return Microkernel { name: "kiln_avx2_mmm_f32_6x16", mr: 6, nr: 16, func: x86::avx2_6x16 };
        }
    }
    #[cfg(target_arch = "aarch64")]
    {
        if std::arch::is_aarch64_feature_detected!("neon") {
            return Microkernel { name: "kiln_neon_mmm_f32_8x8", mr: 8, nr: 8, func: neon::neon_8x8 };
        }
    }
    scalar()
}

/// The portable scalar tile (4x8), the fallback of every other.
pub fn scalar() -> Microkernel {
    Microkernel { name: "kiln_scalar_mmm_f32_4x8", mr: 4, nr: 8, func: scalar_4x8 }
}

/// # Safety
/// `a` holds `k * 4`, `b` `k * 8` and `c` `32` floats.
pub unsafe extern "C" fn scalar_4x8(k: usize, a: *const f32, b: *const f32, c: *mut f32) {
    let mut acc = [[0.0f32; 8]; 4];
    for p in 0..k {
        let av = std::slice::from_raw_parts(a.add(p * 4), 4);
        let bv = std::slice::from_raw_parts(b.add(p * 8), 8);
        for r in 0..4 {
            for j in 0..8 {
                acc[r][j] = av[r].mul_add(bv[j], acc[r][j]);
            }
        }
    }
    for r in 0..4 {
        std::ptr::copy_nonoverlapping(acc[r].as_ptr(), c.add(r * 8), 8);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn reference(k: usize, mr: usize, nr: usize, a: &[f32], b: &[f32]) -> Vec<f32> {
        let mut c = vec![0.0f64; mr * nr];
        for p in 0..k {
            for r in 0..mr {
                for j in 0..nr {
                    c[r * nr + j] += a[p * mr + r] as f64 * b[p * nr + j] as f64;
                }
            }
        }
        c.into_iter().map(|x| x as f32).collect()
    }

    #[test]
    fn every_available_tile_matches_the_reference() {
        let mut kernels = vec![scalar(), best()];
        #[cfg(target_arch = "x86_64")]
        if std::arch::is_x86_feature_detected!("avx2") && std::arch::is_x86_feature_detected!("fma") {
            kernels.push(Microkernel { name: "avx2", mr: 6, nr: 16, func: x86::avx2_6x16 });
        }
        for uk in kernels {
            for k in [1usize, 3, 17, 64] {
                let a: Vec<f32> = (0..k * uk.mr).map(|i| ((i * 37 % 101) as f32 - 50.0) / 25.0).collect();
                let b: Vec<f32> = (0..k * uk.nr).map(|i| ((i * 53 % 97) as f32 - 48.0) / 24.0).collect();
                let mut c = vec![f32::NAN; uk.mr * uk.nr];
                unsafe { (uk.func)(k, a.as_ptr(), b.as_ptr(), c.as_mut_ptr()) };
                let want = reference(k, uk.mr, uk.nr, &a, &b);
                for (i, (x, y)) in c.iter().zip(&want).enumerate() {
                    assert!((x - y).abs() <= 1e-4 * (1.0 + y.abs()), "{} k={k} [{i}]: {x} vs {y}", uk.name);
                }
            }
        }
    }
}
