//! Pooling: max, average, global average.

use super::{rank, window_attrs};
use crate::op::{Arity, OpDef};
use crate::types::TensorType;
use serde::{Deserialize, Serialize};

/// PyTorch's pooling output size: `floor` (or `ceil`) of
/// `(size + pad_begin + pad_end - kernel) / stride + 1`, where in ceil mode a
/// last window that would start inside the end padding is dropped. `None`
/// when no window fits.
pub fn pool_output_size(
    size: usize,
    kernel: usize,
    stride: usize,
    pad_begin: usize,
    pad_end: usize,
    ceil_mode: bool,
) -> Option<usize> {
    let padded = size + pad_begin + pad_end;
    let span = if ceil_mode {
        padded + stride - 1
    } else {
        padded
    };
    if span < kernel {
        return None;
    }
    let mut out = (span - kernel) / stride + 1;
    if ceil_mode && (out - 1) * stride >= size + pad_begin {
        out -= 1;
    }
    (out >= 1).then_some(out)
}

fn pooled(
    x: &TensorType,
    kernel: [usize; 2],
    stride: [usize; 2],
    pad: [usize; 4],
    ceil_mode: bool,
) -> Result<Vec<TensorType>, String> {
    window_attrs(kernel, stride, [1, 1], pad)?;
    rank("input", x, 4)?;
    let mut shape = x.shape.clone();
    for axis in 0..2 {
        let size = x.shape[2 + axis];
        shape[2 + axis] = pool_output_size(
            size,
            kernel[axis],
            stride[axis],
            pad[axis],
            pad[axis + 2],
            ceil_mode,
        )
        .ok_or_else(|| {
            format!(
                "input size {size} on axis {} is smaller than the kernel",
                2 + axis
            )
        })?;
    }
    Ok(vec![TensorType::f32(shape)])
}

/// Max pooling over `kernel` windows; padding never wins (it is -inf).
/// `pad` is `[top, left, bottom, right]`.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct MaxPool {
    pub kernel: [usize; 2],
    pub stride: [usize; 2],
    pub pad: [usize; 4],
    pub ceil_mode: bool,
}

/// Average pooling. With `count_include_pad` the divisor counts padded
/// positions (but, as PyTorch, not the part of a ceil-mode window beyond the
/// end padding); without it, only positions inside the input.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct AvgPool {
    pub kernel: [usize; 2],
    pub stride: [usize; 2],
    pub pad: [usize; 4],
    pub ceil_mode: bool,
    pub count_include_pad: bool,
}

/// Mean over H and W: `[N, C, H, W] -> [N, C, 1, 1]`.
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct GlobalAvgPool {}

impl OpDef for MaxPool {
    fn arity(&self) -> Arity {
        Arity::Exactly(1)
    }
    fn infer(&self, ops: &[&TensorType]) -> Result<Vec<TensorType>, String> {
        pooled(ops[0], self.kernel, self.stride, self.pad, self.ceil_mode)
    }
}

impl OpDef for AvgPool {
    fn arity(&self) -> Arity {
        Arity::Exactly(1)
    }
    fn infer(&self, ops: &[&TensorType]) -> Result<Vec<TensorType>, String> {
        pooled(ops[0], self.kernel, self.stride, self.pad, self.ceil_mode)
    }
}

impl OpDef for GlobalAvgPool {
    fn arity(&self) -> Arity {
        Arity::Exactly(1)
    }
    fn infer(&self, ops: &[&TensorType]) -> Result<Vec<TensorType>, String> {
        rank("input", ops[0], 4)?;
        let s = &ops[0].shape;
        Ok(vec![TensorType::f32([s[0], s[1], 1, 1])])
    }
}
