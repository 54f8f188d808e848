//! Helpers shared by the interpreter's tests: one-op graphs, tensors, comparisons.
#![allow(dead_code)]

use kiln_ir::{Graph, Op, ParamStore, Tensor, TensorType};

/// A tensor from its shape and data (panics on a length mismatch: test data only).
pub fn t(shape: &[usize], data: &[f32]) -> Tensor {
    Tensor::new(shape.to_vec(), data.to_vec()).expect("test tensor: data length matches shape")
}

/// `1, 2, 3, ...` in the given shape (1-based, so that no element is zero).
pub fn iota(shape: &[usize]) -> Tensor {
    let n = shape.iter().product::<usize>();
    t(shape, &(1..=n).map(|v| v as f32).collect::<Vec<_>>())
}

/// Evaluates one op with `eval_op` (no graph), expecting success.
pub fn eval(op: impl Into<Op>, operands: &[&Tensor]) -> Tensor {
    kiln_interp::eval_op(&op.into(), operands)
        .unwrap_or_else(|e| panic!("eval_op: {e}"))
        .remove(0)
}

/// Deterministic pseudo-random values in [-1, 1) (a 64-bit LCG; no dependency needed).
pub fn random(shape: &[usize], seed: u64) -> Tensor {
    let mut s = seed
        .wrapping_mul(6364136223846793005)
        .wrapping_add(1442695040888963407);
    let n = shape.iter().product::<usize>();
    let data = (0..n)
        .map(|_| {
            s = s
                .wrapping_mul(6364136223846793005)
                .wrapping_add(1442695040888963407);
            ((s >> 40) as f32 / (1u64 << 24) as f32) * 2.0 - 1.0
        })
        .collect::<Vec<_>>();
    t(shape, &data)
}

/// Runs `op` on `operands` through a one-node graph whose operands are inputs
/// `a0`, `a1`, ...; the output type comes from the op's inference.
pub fn run_op(op: impl Into<Op>, operands: &[&Tensor]) -> Tensor {
    let mut g = Graph::new("t");
    let vals: Vec<_> = operands
        .iter()
        .enumerate()
        .map(|(i, x)| g.add_input(format!("a{i}"), TensorType::f32(x.shape.clone())))
        .collect();
    let y = g
        .add(op, &vals)
        .unwrap_or_else(|e| panic!("building the test graph: {e}"));
    g.set_outputs(vec![y]);
    let names: Vec<String> = (0..operands.len()).map(|i| format!("a{i}")).collect();
    let inputs: Vec<(&str, &Tensor)> = names
        .iter()
        .map(|s| s.as_str())
        .zip(operands.iter().copied())
        .collect();
    let mut out =
        kiln_interp::run(&g, &ParamStore::new(), &inputs).unwrap_or_else(|e| panic!("run: {e}"));
    out.remove(0)
}

/// Asserts `found` has `shape` and every value is within 1e-5 relative (at
/// least 1e-5 absolute) of the hand-computed `expected`.
pub fn close(found: &Tensor, shape: &[usize], expected: &[f32]) {
    assert_eq!(found.shape, shape, "shape");
    assert_eq!(found.data.len(), expected.len(), "length");
    for (i, (f, e)) in found.data.iter().zip(expected).enumerate() {
        assert!(
            (f - e).abs() <= 1e-5 * e.abs().max(1.0),
            "element {i}: {f} != {e}\n{:?}",
            found.data
        );
    }
}

/// Asserts two tensors are bitwise identical (NaN equal to NaN of the same bits).
pub fn assert_bits_eq(a: &Tensor, b: &Tensor) {
    assert_eq!(a.shape, b.shape, "shape");
    for (i, (x, y)) in a.data.iter().zip(&b.data).enumerate() {
        assert_eq!(x.to_bits(), y.to_bits(), "element {i}: {x} vs {y}");
    }
}

/// Largest `|a - b| / max(|b|, floor)` over the elements.
pub fn max_rel_diff(a: &Tensor, b: &Tensor, floor: f32) -> f32 {
    assert_eq!(a.shape, b.shape, "shape");
    a.data
        .iter()
        .zip(&b.data)
        .map(|(x, y)| (x - y).abs() / y.abs().max(floor))
        .fold(0.0, f32::max)
}
