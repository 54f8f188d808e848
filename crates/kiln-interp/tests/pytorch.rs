//! Single ops against PyTorch: the cases of tests/data/make_reference.py
//! (grouped, dilated, strided, asymmetrically padded convs; ceil-mode pools
//! with dropped and overhanging windows, count_include_pad both ways; LRN of
//! odd and even sizes; BatchNorm in both modes; softmax on inner axes;
//! cross-entropy with label smoothing), each run through a one-node graph,
//! must agree with PyTorch's output to 1e-6 relative. The references are
//! computed by PyTorch in float64 from the float32 operands, so they are
//! (nearly) exact: observed errors are 0 or one f32 ulp. (Against PyTorch's
//! own float32 conv, the interpreter differs by up to 2.4e-5 relative on
//! elements that nearly cancel; that is PyTorch's rounding, not ours.)

mod common;

use common::run_op;
use kiln_ir::{Op, ParamStore};
use std::path::PathBuf;

#[derive(serde::Deserialize)]
struct Case {
    name: String,
    op: Op,
    inputs: usize,
}

/// Relative error of `found` against `expected`, per element, against the
/// larger of `|expected|` and a floor of 1e-3 of the tensor's largest value
/// (an element that cancels to nearly zero has no meaningful relative error).
fn rel_error(found: &[f32], expected: &[f32]) -> f32 {
    let scale = expected.iter().fold(0f32, |m, v| m.max(v.abs()));
    found
        .iter()
        .zip(expected)
        .map(|(f, e)| (f - e).abs() / e.abs().max(1e-3 * scale).max(f32::MIN_POSITIVE))
        .fold(0.0, f32::max)
}

#[test]
fn every_reference_case_matches_pytorch() {
    let dir = PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("tests/data");
    let cases: Vec<Case> =
        serde_json::from_str(&std::fs::read_to_string(dir.join("reference.json")).unwrap())
            .expect("reference.json lists kiln ops");
    let store = ParamStore::load(dir.join("reference.safetensors")).unwrap();
    let tensor = |name: String| {
        store
            .get(&name)
            .unwrap_or_else(|| panic!("reference.safetensors lacks {name}"))
    };
    assert!(
        cases.len() >= 30,
        "the reference set has {} cases",
        cases.len()
    );
    let mut kinds = std::collections::BTreeSet::new();
    let mut failures = Vec::new();
    for case in &cases {
        let inputs: Vec<_> = (0..case.inputs)
            .map(|i| tensor(format!("{}.in{i}", case.name)))
            .collect();
        let expected = tensor(format!("{}.out", case.name));
        let found = run_op(case.op.clone(), &inputs);
        assert_eq!(found.shape, expected.shape, "{}: shape", case.name);
        let err = rel_error(&found.data, &expected.data);
        eprintln!(
            "{:<28} {:<22} max rel error {err:.2e}",
            case.name,
            case.op.kind()
        );
        if err > 1e-6 {
            failures.push(format!("{}: {err:e}", case.name));
        }
        kinds.insert(case.op.kind());
    }
    assert!(
        failures.is_empty(),
        "cases beyond 1e-6 relative: {failures:?}"
    );
    // Every op with arithmetic; the pure data-movement ops are checked by hand in ops.rs.
    assert_eq!(kinds.len(), 9, "op kinds covered: {kinds:?}");
}
