//! Every zoo model at batch 1 and 2, at a reduced input size, against the
//! interpreter, with both tile paths.

mod common;

use kiln_models::{build, init_params, randomize_bn_stats, Config};

fn check(name: &str, size: usize, batch: usize) {
    let cfg = Config::default_for(name).unwrap().with_input(size).with_batch(batch);
    let g = build(name, &cfg).unwrap();
    let mut p = init_params(&g, 1);
    randomize_bn_stats(&g, &mut p, 2);
    common::check_graph(&g, &p, 1e-4, &format!("{name} {size}x{size} batch {batch}"));
}

#[test]
fn resnet18() {
    check("resnet18", 32, 1);
    check("resnet18", 32, 2);
}

#[test]
fn googlenet() {
    check("googlenet", 32, 1);
    check("googlenet", 32, 2);
}
