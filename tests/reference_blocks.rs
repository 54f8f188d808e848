//! The two hand-written blocks in tests/data run on the interpreter and match
//! PyTorch's computation of the same blocks with the same weights.

use kiln::ir::npy::read_npy;
use kiln::ir::{text, verify, ParamStore};
use std::path::PathBuf;

fn data(name: &str) -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR"))
        .join("tests/data")
        .join(name)
}

fn check_block(block: &str) {
    let source = std::fs::read_to_string(data(&format!("{block}.kir"))).expect("the .kir file");
    let graph = text::parse(&source).unwrap_or_else(|e| panic!("{block}.kir: {e}"));
    verify(&graph).unwrap();
    assert_eq!(
        text::print(&graph),
        source,
        "{block}.kir is in canonical form"
    );
    let weights = ParamStore::load(data(&format!("{block}.weights.safetensors"))).unwrap();
    assert!(
        weights
            .skipped
            .iter()
            .all(|n| n.ends_with("num_batches_tracked")),
        "{:?}",
        weights.skipped
    );
    let input = read_npy(data(&format!("{block}.input.npy"))).unwrap();
    let expected = read_npy(data(&format!("{block}.output.npy"))).unwrap();
    let outputs = kiln::interp::run(&graph, &weights, &[("x", input)]).unwrap();
    let diff = outputs[0].max_abs_diff(&expected).expect("same shape");
    let relative = diff / expected.max_abs();
    eprintln!("{block}: max abs diff {diff:.3e}, relative {relative:.3e}");
    assert!(relative < 1e-5, "{block}: relative error {relative:.3e}");
}

#[test]
fn inception_3a_matches_pytorch() {
    check_block("inception_3a");
}

#[test]
fn resnet_bottleneck_matches_pytorch() {
    check_block("resnet_bottleneck");
}
