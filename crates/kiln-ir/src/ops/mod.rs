//! The op structs, one file per family, and the checks they share.

mod conv;
mod dense;
mod elementwise;
mod loss;
mod norm;
mod pool;
mod shape;
mod source;

pub use conv::{Conv2d, Epilogue};
pub use dense::Dense;
pub use elementwise::{Add, Dropout, Relu, Softmax};
pub use loss::SoftmaxCrossEntropy;
pub use norm::{BatchNorm, Lrn};
pub use pool::{pool_output_size, AvgPool, GlobalAvgPool, MaxPool};
pub use shape::{Concat, Flatten, Pad, Reshape, Slice};
pub use source::{Input, Param};

use crate::types::{TensorType, MAX_ELEMENTS};

/// Attributes are bounded so that every index the JIT computes fits 32 bits.
pub(crate) const MAX_ATTR: usize = MAX_ELEMENTS as usize;

pub(crate) fn rank(what: &str, t: &TensorType, expected: usize) -> Result<(), String> {
    if t.rank() != expected {
        return Err(format!("{what} must have rank {expected}, found {t}"));
    }
    Ok(())
}

pub(crate) fn at_least(what: &str, value: usize, min: usize) -> Result<(), String> {
    if value < min {
        return Err(format!("{what} must be at least {min}, found {value}"));
    }
    bounded(what, value)
}

pub(crate) fn bounded(what: &str, value: usize) -> Result<(), String> {
    if value > MAX_ATTR {
        return Err(format!("{what} = {value} exceeds {MAX_ATTR}"));
    }
    Ok(())
}

pub(crate) fn finite(what: &str, value: f32) -> Result<(), String> {
    if !value.is_finite() {
        return Err(format!("{what} must be finite, found {value}"));
    }
    Ok(())
}

pub(crate) fn same_shape(what: &str, a: &TensorType, b: &TensorType) -> Result<(), String> {
    if a.shape != b.shape {
        return Err(format!("{what}: {b} does not match {a}"));
    }
    Ok(())
}

pub(crate) fn vector(what: &str, t: &TensorType, len: usize) -> Result<(), String> {
    if t.shape != [len] {
        return Err(format!("{what} must be f32[{len}], found {t}"));
    }
    Ok(())
}

/// Checks the common spatial attributes of convs and pools: kernel, stride,
/// dilation at least 1; each padding below the (dilated) kernel extent.
pub(crate) fn window_attrs(
    kernel: [usize; 2],
    stride: [usize; 2],
    dilation: [usize; 2],
    pad: [usize; 4],
) -> Result<(), String> {
    for axis in 0..2 {
        at_least(&format!("kernel[{axis}]"), kernel[axis], 1)?;
        at_least(&format!("stride[{axis}]"), stride[axis], 1)?;
        at_least(&format!("dilation[{axis}]"), dilation[axis], 1)?;
        let extent = dilation[axis]
            .checked_mul(kernel[axis] - 1)
            .filter(|&e| e < MAX_ATTR)
            .ok_or_else(|| format!("dilated kernel extent on axis {axis} is too large"))?
            + 1;
        for (side, p) in [(axis, pad[axis]), (axis + 2, pad[axis + 2])] {
            if p >= extent {
                return Err(format!(
                    "pad[{side}] = {p} must be below the kernel extent {extent}"
                ));
            }
        }
    }
    Ok(())
}
