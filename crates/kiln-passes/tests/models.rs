//! Whole zoo models through the passes, checked by the interpreter.

use kiln_ir::{Graph, Op, ParamStore, Tensor};
use kiln_models::{build, init_params, randomize_bn_stats, Config};
use kiln_passes::{Context, PassManager, Registry};
use std::collections::BTreeMap;

fn model(name: &str, size: usize) -> (Graph, ParamStore) {
    let g = build(name, &Config::default_for(name).unwrap().with_input(size)).unwrap();
    let mut p = init_params(&g, 7);
    randomize_bn_stats(&g, &mut p, 11);
    (g, p)
}

fn input(g: &Graph) -> Vec<(String, Tensor)> {
    g.inputs()
        .iter()
        .map(|(_, name, ty)| {
            let n = ty.elements();
            let data = (0..n)
                .map(|i| ((i * 7919) % 1999) as f32 / 1999.0 - 0.5)
                .collect();
            (
                name.to_string(),
                Tensor {
                    shape: ty.shape.clone(),
                    data,
                },
            )
        })
        .collect()
}

fn ops(g: &Graph) -> BTreeMap<&'static str, usize> {
    let mut m = BTreeMap::new();
    for id in g.node_ids() {
        *m.entry(g.op(id).kind()).or_default() += 1;
    }
    m
}

/// Runs `pipeline` and returns the relative difference of the outputs.
fn optimize(name: &str, size: usize, pipeline: &str) -> (Graph, f32) {
    let (g, p) = model(name, size);
    let x = input(&g);
    let before = kiln_interp::run(&g, &p, &x).unwrap();
    let mut opt = g.clone();
    let mut cx = Context::new(p);
    PassManager::parse(pipeline, &Registry::builtin())
        .unwrap()
        .run(&mut opt, &mut cx)
        .unwrap();
    let after = kiln_interp::run(&opt, &cx.params, &x).unwrap();
    let diff = before[0].max_abs_diff(&after[0]).unwrap() / before[0].max_abs();
    (opt, diff)
}

#[test]
fn resnet50_folds_and_fuses_everything() {
    let (g, rel) = optimize("resnet50", 64, "fold-bn,fuse-residual,dce");
    let counts = ops(&g);
    assert!(
        !counts.contains_key("batch_norm")
            && !counts.contains_key("add")
            && !counts.contains_key("relu"),
        "{counts:?}"
    );
    assert_eq!(counts["conv2d"], 53);
    assert!(rel < 1e-4, "relative error {rel:e}");
    let fused = g
        .node_ids()
        .filter(|&id| matches!(g.op(id), Op::Conv2d(c) if c.epilogue.residual))
        .count();
    assert_eq!(fused, 16, "one residual add per bottleneck");
}

#[test]
fn inception_and_googlenet_lose_every_batch_norm() {
    for (name, size) in [
        ("googlenet", 64),
        ("inception-v3", 75),
        ("bn-inception", 224),
    ] {
        let (g, rel) = optimize(name, size, "fold-bn,fuse-residual,dce");
        assert!(!ops(&g).contains_key("batch_norm"), "{name}: {:?}", ops(&g));
        assert!(rel < 1e-4, "{name}: relative error {rel:e}");
    }
}
