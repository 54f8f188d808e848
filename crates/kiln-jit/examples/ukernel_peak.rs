//! One-core GFLOP/s of every tile this machine runs (K = 256, packed operands
//! in cache), a sweep of generated Cranelift tile shapes, and the blocked
//! SGEMM driver on square matrices. Figures go into UKERNEL_NOTES.md.
//!
//! `cargo run --release -p kiln-jit --example ukernel_peak [-- --sweep]`

use kiln_jit::codegen::isa::OptLevel;
use kiln_jit::codegen::tile::{compile_tile, TileShape};
use kiln_jit::ukernel::{self, Blocking, Gemm, Microkernel};
use std::time::{Duration, Instant};

fn main() {
    let budget = Duration::from_millis(300);
    // the machine's FMA throughput, measured now (Zen 5 in the notes: 266 GFLOP/s)
    let peak = ukernel::fma_peak_gflops(budget).unwrap_or(f64::NAN);
    println!("FMA throughput probe (one core, widest vectors): {peak:.1} GFLOP/s");
    println!("tile                                  GFLOP/s  share of the probe's peak");
    for uk in ukernel::available() {
        let gf = ukernel::measure_gflops(&uk, budget);
        println!(
            "{:<36} {:>8.1}  {:>5.1}%",
            format!("{} ({}x{})", uk.name(), uk.mr(), uk.nr()),
            gf,
            100.0 * gf / peak
        );
    }
    println!(
        "measure_peak_gflops() = {:.1}",
        ukernel::measure_peak_gflops()
    );

    if std::env::args().any(|a| a == "--sweep") {
        println!("\ngenerated tile sweep (mr x 4*nv, unroll, opt level)");
        for (mr, nv) in [(4, 2), (4, 3), (6, 2), (3, 3), (8, 1), (10, 1), (12, 1)] {
            for unroll in [1, 4] {
                for opt in [OptLevel::None, OptLevel::Speed] {
                    let s = TileShape { mr, nv, unroll };
                    match compile_tile(s, opt) {
                        Ok(uk) => println!(
                            "  {mr:>2}x{:<2} u{unroll} {opt:?}: {:.1}",
                            4 * nv,
                            ukernel::measure_gflops(&uk, budget)
                        ),
                        Err(e) => println!("  {mr}x{} u{unroll} {opt:?}: {e}", 4 * nv),
                    }
                }
            }
        }
    }

    if std::env::args().any(|a| a == "--blocking") {
        let uk = ukernel::best();
        println!(
            "\nblocking sweep, {} , n = 1024 (default {:?})",
            uk.name(),
            Blocking::for_kernel(&uk)
        );
        for kc in [128, 192, 256, 384, 512] {
            for mc in [56, 140, 280, 518, 1036] {
                let b = Blocking { mc, kc, nc: 4096 };
                println!(
                    "  mc {mc:>4} kc {kc:>3}: {:.1}",
                    sgemm_gflops(uk, b, 1024, 1, budget)
                );
            }
        }
    }

    println!("\nsgemm C = A x B (square), best of ~0.3 s");
    for uk in ukernel::available() {
        for n in [256usize, 1000, 1024] {
            let b = Blocking::for_kernel(&uk);
            println!(
                "  {:<32} n={n:<5} 1 thread {:>7.1}  2 parts {:>7.1} GFLOP/s",
                uk.name(),
                sgemm_gflops(uk, b, n, 1, budget),
                sgemm_gflops(uk, b, n, 2, budget)
            );
        }
    }
}

fn sgemm_gflops(
    uk: Microkernel,
    blocking: Blocking,
    n: usize,
    parts: usize,
    budget: Duration,
) -> f64 {
    let a = vec![0.5f32; n * n];
    let b = vec![0.25f32; n * n];
    let mut c = vec![0.0f32; n * n];
    let g = Gemm::new(uk).blocking(blocking).parts(parts);
    let mut best = f64::MAX;
    let until = Instant::now() + budget;
    while Instant::now() < until || best == f64::MAX {
        let t = Instant::now();
        g.run(n, n, n, &a, n, &b, n, &mut c, n, false).unwrap();
        best = best.min(t.elapsed().as_secs_f64());
    }
    2.0 * (n * n * n) as f64 / best / 1e9
}
