//! Where a model's time goes: `cargo run --release -p kiln-jit --example profile -- resnet50 [batch]`
//! prints the median time of each op kind over 10 runs.

use kiln_ir::Tensor;
use kiln_models::{build, init_params, Config};
use std::collections::BTreeMap;

fn main() {
    let args: Vec<String> = std::env::args().collect();
    let model = args.get(1).map_or("resnet50", |s| s.as_str());
    let batch = args.get(2).and_then(|b| b.parse().ok()).unwrap_or(1);
    let g = build(
        model,
        &Config::default_for(model)
            .expect("a zoo model")
            .with_batch(batch),
    )
    .expect("builds");
    let p = init_params(&g, 1);
    let m = kiln_jit::compile(&g, &p, &kiln_jit::Options::default()).expect("compiles");
    let x: Vec<Tensor> = g
        .inputs()
        .iter()
        .map(|(_, _, t)| Tensor::filled(&t.shape, 0.5))
        .collect();
    let mut per_kind: BTreeMap<String, Vec<f64>> = BTreeMap::new();
    let mut totals = Vec::new();
    let mut last = Vec::new();
    for _ in 0..10 {
        let mut t = Vec::new();
        m.run_profiled(&x, Some(&mut t)).expect("runs");
        let mut kinds: BTreeMap<String, f64> = BTreeMap::new();
        for (node, d) in &t {
            let kind = node.split(' ').next().unwrap_or("?").to_string();
            *kinds.entry(kind).or_default() += d.as_secs_f64() * 1e3;
        }
        totals.push(kinds.values().sum::<f64>());
        last = t.clone();
        for (k, v) in kinds {
            per_kind.entry(k).or_default().push(v);
        }
    }
    let median = |v: &mut Vec<f64>| {
        v.sort_by(f64::total_cmp);
        v[v.len() / 2]
    };
    println!(
        "{model} batch {batch}, {} threads, arena {:.1} MB, compile {:.2} s: total {:.2} ms",
        m.threads(),
        m.arena_bytes() as f64 / 1e6,
        m.compile_time().as_secs_f64(),
        median(&mut totals)
    );
    last.sort_by(|a, b| b.1.cmp(&a.1));
    for (node, d) in last.iter().take(8) {
        println!("  slowest: {:7.2} ms  {node}", d.as_secs_f64() * 1e3);
    }
    for (k, mut v) in per_kind {
        println!("  {k:<24} {:8.2} ms", median(&mut v));
    }
}
