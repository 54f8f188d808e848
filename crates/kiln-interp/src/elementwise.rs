//! Shape-preserving ops: ReLU, Add, Dropout, Softmax.

use crate::layout::split_axis;
use kiln_ir::ops::Softmax;
use kiln_ir::Tensor;

/// `max(x, 0)`, with NaN passing through as PyTorch's `relu` does.
pub(crate) fn relu_scalar(x: f32) -> f32 {
    if x > 0.0 || x.is_nan() {
        x
    } else {
        0.0
    }
}

/// The f32 sum that `add` and the conv epilogue's residual both use.
pub(crate) fn add_scalar(a: f32, b: f32) -> f32 {
    a + b
}

pub(crate) fn relu(x: &Tensor) -> Tensor {
    Tensor {
        shape: x.shape.clone(),
        data: x.data.iter().map(|&v| relu_scalar(v)).collect(),
    }
}

pub(crate) fn add(a: &Tensor, b: &Tensor) -> Tensor {
    let data = a
        .data
        .iter()
        .zip(&b.data)
        .map(|(&a, &b)| add_scalar(a, b))
        .collect();
    Tensor {
        shape: a.shape.clone(),
        data,
    }
}

/// Dropout is the identity at inference, which is all the op means today.
pub(crate) fn dropout(x: &Tensor) -> Tensor {
    x.clone()
}

/// `exp(x - max) / sum(exp(x - max))` along the axis; the max is subtracted
/// for stability, the exponentials and their sum are f64, each result is
/// rounded once.
pub(crate) fn softmax(op: &Softmax, x: &Tensor) -> Tensor {
    let (outer, len, inner) = split_axis(&x.shape, op.axis);
    let mut out = vec![0f32; x.data.len()];
    for o in 0..outer {
        for i in 0..inner {
            let at = |k: usize| (o * len + k) * inner + i;
            let max = (0..len)
                .map(|k| x.data[at(k)])
                .fold(f32::NEG_INFINITY, f32::max) as f64;
            let exps: Vec<f64> = (0..len)
                .map(|k| (x.data[at(k)] as f64 - max).exp())
                .collect();
            let sum: f64 = exps.iter().sum();
            for (k, e) in exps.iter().enumerate() {
                out[at(k)] = (e / sum) as f32;
            }
        }
    }
    Tensor {
        shape: x.shape.clone(),
        data: out,
    }
}
