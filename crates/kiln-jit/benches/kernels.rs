//! kiln-jit benchmarks: every distinct conv shape of resnet50 and inception-v3
//! (GFLOP/s, both tile paths: criterion's "elem/s" are FLOP/s), end-to-end
//! latency of zoo models at batch 1 and 8, and compile time.
//!
//! `cargo bench -p kiln-jit -- conv/` (or `e2e/`, `compile/`).

use criterion::{criterion_group, criterion_main, BenchmarkId, Criterion, Throughput};
use kiln_ir::{Graph, Op, ParamStore, Tensor, TensorType};
use kiln_jit::{compile, Options, Ukernels};
use kiln_models::{build, init_params, Config};
use std::collections::BTreeSet;
use std::time::Duration;

fn input_for(g: &Graph) -> Vec<Tensor> {
    g.inputs()
        .iter()
        .map(|(_, _, ty)| Tensor {
            shape: ty.shape.clone(),
            data: (0..ty.elements())
                .map(|i| ((i % 17) as f32 - 8.0) / 8.0)
                .collect(),
        })
        .collect()
}

/// One-conv graphs for the distinct (input shape, conv attributes) of a model at batch 1.
fn conv_shapes(model: &str) -> Vec<(String, Graph, ParamStore, u64)> {
    let g = build(model, &Config::default_for(model).unwrap()).unwrap();
    let mut seen = BTreeSet::new();
    let mut out = Vec::new();
    for id in g.topo_order().unwrap() {
        let Op::Conv2d(c) = g.op(id) else { continue };
        let ops = g.operands(id);
        let x = g.value_type(ops[0]).unwrap().clone();
        let w = g.value_type(ops[1]).unwrap().clone();
        let key = format!(
            "{:?}{:?}k{:?}s{:?}p{:?}g{}",
            x.shape, w.shape[0], c.kernel, c.stride, c.pad, c.groups
        );
        if !seen.insert(key) {
            continue;
        }
        let mut cg = Graph::new("conv");
        let xi = cg.add_input("x", x.clone());
        let wp = cg.add_param("w", w.clone());
        let mut conv = c.clone();
        conv.bias = true;
        conv.epilogue.residual = false;
        let bp = cg.add_param("b", TensorType::f32([w.shape[0]]));
        let y = cg.add(conv, &[xi, wp, bp]).unwrap();
        cg.set_outputs(vec![y]);
        let p = init_params(&cg, 1);
        let macs = kiln_ir::cost::cost(&cg).macs;
        let name = format!(
            "{model}/{}x{}x{}-o{}-k{}x{}-s{}",
            x.shape[1], x.shape[2], x.shape[3], w.shape[0], c.kernel[0], c.kernel[1], c.stride[0]
        );
        out.push((name, cg, p, macs));
    }
    out
}

fn convs(c: &mut Criterion) {
    let mut group = c.benchmark_group("conv");
    group
        .warm_up_time(Duration::from_millis(100))
        .measurement_time(Duration::from_millis(300))
        .sample_size(10);
    for model in ["resnet50", "inception-v3"] {
        for (name, g, p, macs) in conv_shapes(model) {
            group.throughput(Throughput::Elements(2 * macs));
            for uk in [Ukernels::Auto, Ukernels::Off] {
                let m = compile(
                    &g,
                    &p,
                    &Options {
                        threads: 1,
                        ukernels: uk,
                        checked: false,
                        ..Default::default()
                    },
                )
                .unwrap();
                let x = input_for(&g);
                group.bench_with_input(BenchmarkId::new(uk.to_string(), &name), &x, |b, x| {
                    b.iter(|| m.run(x).unwrap())
                });
            }
        }
    }
    group.finish();
}

const MODELS: &[&str] = &[
    "resnet18",
    "resnet50",
    "resnet152",
    "wide-resnet50-2",
    "googlenet",
    "inception-v3",
    "bn-inception",
];

fn end_to_end(c: &mut Criterion) {
    let mut group = c.benchmark_group("e2e");
    group
        .warm_up_time(Duration::from_millis(300))
        .measurement_time(Duration::from_secs(2))
        .sample_size(10);
    for model in MODELS {
        for batch in [1, 8] {
            let g = build(
                model,
                &Config::default_for(model).unwrap().with_batch(batch),
            )
            .unwrap();
            let p = init_params(&g, 1);
            let m = compile(
                &g,
                &p,
                &Options {
                    threads: 2,
                    ..Default::default()
                },
            )
            .unwrap();
            let x = input_for(&g);
            group.throughput(Throughput::Elements(batch as u64));
            group.bench_with_input(BenchmarkId::new(*model, format!("b{batch}")), &x, |b, x| {
                b.iter(|| m.run(x).unwrap())
            });
        }
    }
    group.finish();
}

fn compile_time(c: &mut Criterion) {
    let mut group = c.benchmark_group("compile");
    group
        .warm_up_time(Duration::from_millis(100))
        .measurement_time(Duration::from_secs(3))
        .sample_size(10);
    for model in ["resnet50", "inception-v3"] {
        let g = build(model, &Config::default_for(model).unwrap()).unwrap();
        let p = init_params(&g, 1);
        group.bench_function(model, |b| {
            b.iter(|| {
                compile(
                    &g,
                    &p,
                    &Options {
                        threads: 2,
                        ..Default::default()
                    },
                )
                .unwrap()
            })
        });
    }
    group.finish();
}

fn peak(c: &mut Criterion) {
    let mut group = c.benchmark_group("peak");
    group
        .sample_size(10)
        .measurement_time(Duration::from_secs(2));
    for uk in [Ukernels::Auto, Ukernels::Off] {
        let gf = kiln_jit::measure_peak_gflops(uk);
        println!("tile peak {uk:?}: {gf:.1} GFLOP/s on one core");
    }
    group.finish();
}

criterion_group!(benches, peak, convs, end_to_end, compile_time);
criterion_main!(benches);
