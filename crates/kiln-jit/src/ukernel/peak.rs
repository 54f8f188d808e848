//! The peak a tile reaches on one core: the denominator of `kiln bench`'s
//! "share of peak". Operands are packed and cache-resident (K = 256), so this
//! measures the tile and nothing else.

use super::{best, Microkernel};
use std::time::{Duration, Instant};

const K: usize = 256;

/// GFLOP/s of `uk` on one core: the best of repeated timed batches over about `budget`.
pub fn measure_gflops(uk: &Microkernel, budget: Duration) -> f64 {
    let a: Vec<f32> = (0..K * uk.mr).map(|i| (i % 7) as f32 * 0.01).collect();
    let b: Vec<f32> = (0..K * uk.nr).map(|i| (i % 5) as f32 * 0.01).collect();
    let mut c = vec![0.0f32; uk.mr * uk.nr];
    let flops = 2.0 * (K * uk.mr * uk.nr) as f64;
    // One batch is ~0.1-1 ms at any tile speed: long enough to time, short
    // enough that the best batch dodges other processes' bursts.
    let reps = 500;
    let mut best_rate = 0.0f64;
    let until = Instant::now() + budget;
    loop {
        let t = Instant::now();
        for _ in 0..reps {
            // SAFETY: a, b and c have the sizes of the tile contract (ldc = nr);
            // `uk` came from `kernel`/`available`, which checked its ISA.
            unsafe { uk.run(K, a.as_ptr(), b.as_ptr(), c.as_mut_ptr(), uk.nr, false) };
        }
        std::hint::black_box(&mut c);
        best_rate = best_rate.max(flops * reps as f64 / t.elapsed().as_secs_f64() / 1e9);
        if Instant::now() >= until {
            return best_rate;
        }
    }
}

/// GFLOP/s of the best microkernel of this CPU on one core, over ~0.2 s.
pub fn measure_peak_gflops() -> f64 {
    measure_gflops(&best(), Duration::from_millis(200))
}

/// The machine's own fp32 FMA throughput on one core, in GFLOP/s: twelve
/// independent chains of register-only FMAs at the widest vector width the CPU
/// runs (512 bits with AVX-512F, else 256 with AVX2+FMA), best batch over about
/// `budget`. What a tile's share of peak is measured against; `None` where no
/// probe exists (non-x86-64).
pub fn fma_peak_gflops(budget: Duration) -> Option<f64> {
    #[cfg(target_arch = "x86_64")]
    {
        let wide = std::arch::is_x86_feature_detected!("avx512f");
        if !wide && !std::arch::is_x86_feature_detected!("fma") {
            return None;
        }
        let trips: u64 = 1 << 20;
        let flops = (trips * 12 * if wide { 32 } else { 16 }) as f64;
        let mut best_rate = 0.0f64;
        let until = Instant::now() + budget;
        loop {
            let t = Instant::now();
            // SAFETY: register-only arithmetic on the ISA just detected; every
            // register written is declared clobbered.
            unsafe {
                if wide {
                    fma_chains_512(trips)
                } else {
                    fma_chains_256(trips)
                }
            };
            best_rate = best_rate.max(flops / t.elapsed().as_secs_f64() / 1e9);
            if Instant::now() >= until {
                return Some(best_rate);
            }
        }
    }
    #[cfg(not(target_arch = "x86_64"))]
    {
        let _ = budget;
        None
    }
}

macro_rules! fma_chains {
    ($name:ident, $feature:literal, $r:literal) => {
        #[cfg(target_arch = "x86_64")]
        #[target_feature(enable = $feature)]
        unsafe fn $name(trips: u64) {
            // SAFETY: the caller checked the feature; only clobbered registers are touched.
            unsafe {
                std::arch::asm!(
                    "2:",
                    concat!("vfmadd231ps ", $r, "0, ", $r, "12, ", $r, "13"),
                    concat!("vfmadd231ps ", $r, "1, ", $r, "12, ", $r, "13"),
                    concat!("vfmadd231ps ", $r, "2, ", $r, "12, ", $r, "13"),
                    concat!("vfmadd231ps ", $r, "3, ", $r, "12, ", $r, "13"),
                    concat!("vfmadd231ps ", $r, "4, ", $r, "12, ", $r, "13"),
                    concat!("vfmadd231ps ", $r, "5, ", $r, "12, ", $r, "13"),
                    concat!("vfmadd231ps ", $r, "6, ", $r, "12, ", $r, "13"),
                    concat!("vfmadd231ps ", $r, "7, ", $r, "12, ", $r, "13"),
                    concat!("vfmadd231ps ", $r, "8, ", $r, "12, ", $r, "13"),
                    concat!("vfmadd231ps ", $r, "9, ", $r, "12, ", $r, "13"),
                    concat!("vfmadd231ps ", $r, "10, ", $r, "12, ", $r, "13"),
                    concat!("vfmadd231ps ", $r, "11, ", $r, "12, ", $r, "13"),
                    "dec {n}",
                    "jnz 2b",
                    n = inout(reg) trips => _,
                    out("xmm0") _, out("xmm1") _, out("xmm2") _, out("xmm3") _,
                    out("xmm4") _, out("xmm5") _, out("xmm6") _, out("xmm7") _,
                    out("xmm8") _, out("xmm9") _, out("xmm10") _, out("xmm11") _,
                    out("xmm12") _, out("xmm13") _,
                    options(nostack, nomem),
                );
            }
        }
    };
}
fma_chains!(fma_chains_512, "avx512f", "zmm");
fma_chains!(fma_chains_256, "avx2,fma", "ymm");
