//! Single blocks against PyTorch: references made by `tests/data/make_references.py` with
//! torchvision's and pretrainedmodels' own module classes (weights, input and output of one
//! block, BatchNorms randomized), run here on the interpreter to 1e-4 of the output's largest
//! magnitude. They check the blocks' wiring (branch order, pads, pool kinds, ceil mode) where no
//! whole-model reference is committed.

use kiln_ir::npy::read_npy;
use kiln_ir::{ParamStore, Value};
use kiln_models::builder::Result;
use kiln_models::models::{bn_inception, inception_v3};
use kiln_models::GraphBuilder;
use std::collections::BTreeSet;
use std::path::PathBuf;

fn check_block(folder: &str, build: impl FnOnce(&mut GraphBuilder, Value) -> Result<Value>) {
    let dir = PathBuf::from(env!("CARGO_MANIFEST_DIR"))
        .join("tests/data/blocks")
        .join(folder);
    let load = |f: &str| read_npy(dir.join(f)).unwrap_or_else(|e| panic!("{e}"));
    let (x, expected) = (load("input.npy"), load("output.npy"));
    let weights =
        ParamStore::load(dir.join("weights.safetensors")).unwrap_or_else(|e| panic!("{e}"));
    let mut b = GraphBuilder::new(folder);
    let input = b.input("input", x.shape.clone()).unwrap();
    let y = build(&mut b, input).unwrap();
    let g = b.finish(vec![y]).unwrap();
    let graph_names: BTreeSet<&str> = g.params().into_iter().map(|(_, n, _)| n).collect();
    let file_names: BTreeSet<&str> = weights.names().map(String::as_str).collect();
    assert_eq!(graph_names, file_names, "{folder}: parameter names differ");
    let out = kiln_interp::run(&g, &weights, &[("input", &x)]).unwrap_or_else(|e| panic!("{e}"));
    let diff = out[0].max_abs_diff(&expected).unwrap_or_else(|| {
        panic!(
            "{folder}: output {:?}, PyTorch's {:?}",
            out[0].shape, expected.shape
        )
    });
    let scale = expected.max_abs();
    println!("{folder}: max |kiln - torch| = {diff:.3e}, max |torch| = {scale:.3e}");
    assert!(
        diff <= 1e-4 * scale,
        "{folder}: max difference {diff} with outputs up to {scale}"
    );
}

#[test]
fn inception_v3_mixed_6b_matches_torchvision() {
    // torchvision's InceptionC(32, channels_7x7=16), named as Mixed_6b.
    check_block("inception_v3_mixed_6b", |b, x| {
        inception_v3::inception_c(&mut b.scope("Mixed_6b"), x, 16)
    });
}

#[test]
fn bn_inception_3a_matches_pretrainedmodels() {
    let (prefix, module) = bn_inception::MODULES[0];
    assert_eq!(prefix, "inception_3a");
    check_block("bninception_3a", |b, x| {
        bn_inception::module(b, prefix, x, module)
    });
}
