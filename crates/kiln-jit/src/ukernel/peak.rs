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
