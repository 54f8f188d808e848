//! One conv (bias + ReLU, "same" padding) compiled alone and run repeatedly:
//! the best time of its conv kernels, without the run's copies and pads.
//! What docs/backend.md's single-conv figures come from, and a perf target.
//!
//! `cargo run --release -p kiln-jit --example one_conv -- C H O K THREADS REPS`
//! (input C x H x H, O output channels, a K x K kernel). With `FLUSH=1` in the
//! environment, 64 MB are written between runs so that weights and activations
//! start outside the caches.

use kiln_ir::ops::Conv2d;
use kiln_ir::{Graph, Tensor, TensorType};

fn main() {
    let a: Vec<usize> = std::env::args()
        .skip(1)
        .map(|x| x.parse().expect("C H O K THREADS REPS, all integers"))
        .collect();
    let [c, h, o, k, threads, reps] = a[..] else {
        eprintln!("usage: one_conv C H O K THREADS REPS");
        std::process::exit(2);
    };
    let mut g = Graph::new("one");
    let x = g.add_input("x", TensorType::f32([1, c, h, h]));
    let w = g.add_param("w", TensorType::f32([o, c, k, k]));
    let b = g.add_param("b", TensorType::f32([o]));
    let mut conv = Conv2d::new(k, 1, k / 2);
    conv.bias = true;
    conv.epilogue.relu = true;
    let y = g.add(conv, &[x, w, b]).expect("a valid conv");
    g.set_outputs(vec![y]);
    let p = kiln_models::init_params(&g, 1);
    let options = kiln_jit::Options {
        threads,
        ..Default::default()
    };
    let m = kiln_jit::compile(&g, &p, &options).expect("compiles");
    let xin = vec![Tensor::filled(&[1, c, h, h], 0.5)];
    let macs = kiln_ir::cost::cost(&g).macs as f64;
    let mut flush = std::env::var("FLUSH")
        .is_ok()
        .then(|| vec![1.0f32; 16 << 20]);
    let mut best = f64::MAX;
    for _ in 0..reps {
        if let Some(junk) = flush.as_mut() {
            junk.iter_mut().for_each(|v| *v += 1.0);
            std::hint::black_box(&junk);
        }
        let mut t = Vec::new();
        m.run_profiled(&xin, Some(&mut t)).expect("runs");
        let s: f64 = t
            .iter()
            .filter(|(n, _)| n.starts_with("conv"))
            .map(|(_, d)| d.as_secs_f64())
            .sum();
        best = best.min(s);
    }
    println!(
        "conv {c}->{o} {h}x{h} k{k}, {threads} threads: best {:.3} ms = {:.1} GFLOP/s",
        best * 1e3,
        2.0 * macs / best / 1e9
    );
}
