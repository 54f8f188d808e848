//! Data movement: concat, flatten, reshape, pad, slice.

use super::{at_least, bounded, finite};
use crate::op::{Arity, OpDef};
use crate::types::TensorType;
use serde::{Deserialize, Serialize};

/// Concatenation along `axis`; all other dimensions must agree.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Concat {
    pub axis: usize,
}

/// `[d0, ..., dn] -> [d0 * ... * d(axis-1), d(axis) * ... * dn]`, as ONNX Flatten.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Flatten {
    pub axis: usize,
}

/// Reinterprets the row-major data with a new shape of the same element count.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Reshape {
    pub shape: Vec<usize>,
}

/// Constant padding: `pads` holds the begin padding of every axis, then the end
/// padding of every axis (ONNX order), `2 * rank` numbers.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Pad {
    pub pads: Vec<usize>,
    pub value: f32,
}

/// Elements `start, start + step, ...` below `end` along `axis`.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Slice {
    pub axis: usize,
    pub start: usize,
    pub end: usize,
    pub step: usize,
}

impl Slice {
    pub fn output_len(&self) -> usize {
        (self.end - self.start).div_ceil(self.step)
    }
}

fn axis_in_range(axis: usize, t: &TensorType) -> Result<(), String> {
    if axis >= t.rank() {
        return Err(format!("axis {axis} is out of range for {t}"));
    }
    Ok(())
}

impl OpDef for Concat {
    fn arity(&self) -> Arity {
        Arity::AtLeast(1)
    }
    fn infer(&self, ops: &[&TensorType]) -> Result<Vec<TensorType>, String> {
        let first = ops[0];
        axis_in_range(self.axis, first)?;
        let mut shape = first.shape.clone();
        shape[self.axis] = 0;
        for (slot, t) in ops.iter().enumerate() {
            let agrees = t.rank() == first.rank()
                && (0..t.rank()).all(|a| a == self.axis || t.shape[a] == first.shape[a]);
            if !agrees {
                return Err(format!(
                    "operand {slot} {t} does not match operand 0 {first} outside axis {}",
                    self.axis
                ));
            }
            shape[self.axis] += t.shape[self.axis];
        }
        Ok(vec![TensorType::f32(shape)])
    }
}

impl OpDef for Flatten {
    fn arity(&self) -> Arity {
        Arity::Exactly(1)
    }
    fn infer(&self, ops: &[&TensorType]) -> Result<Vec<TensorType>, String> {
        let x = ops[0];
        if self.axis > x.rank() {
            return Err(format!("axis {} is out of range for {x}", self.axis));
        }
        let outer: usize = x.shape[..self.axis].iter().product();
        let inner: usize = x.shape[self.axis..].iter().product();
        Ok(vec![TensorType::f32([outer, inner])])
    }
}

impl OpDef for Reshape {
    fn arity(&self) -> Arity {
        Arity::Exactly(1)
    }
    fn infer(&self, ops: &[&TensorType]) -> Result<Vec<TensorType>, String> {
        let out = TensorType::f32(self.shape.clone());
        out.validate().map_err(|e| format!("target shape: {e}"))?;
        if out.elements() != ops[0].elements() {
            return Err(format!(
                "cannot reshape {} to {out}: element counts differ",
                ops[0]
            ));
        }
        Ok(vec![out])
    }
}

impl OpDef for Pad {
    fn arity(&self) -> Arity {
        Arity::Exactly(1)
    }
    fn infer(&self, ops: &[&TensorType]) -> Result<Vec<TensorType>, String> {
        let x = ops[0];
        finite("value", self.value)?;
        if self.pads.len() != 2 * x.rank() {
            return Err(format!(
                "pads must hold {} numbers (begin and end of each axis of {x}), found {}",
                2 * x.rank(),
                self.pads.len()
            ));
        }
        let mut shape = x.shape.clone();
        for (axis, d) in shape.iter_mut().enumerate() {
            bounded(&format!("pads[{axis}]"), self.pads[axis])?;
            bounded(
                &format!("pads[{}]", axis + x.rank()),
                self.pads[axis + x.rank()],
            )?;
            *d += self.pads[axis] + self.pads[axis + x.rank()];
        }
        Ok(vec![TensorType::f32(shape)])
    }
}

impl OpDef for Slice {
    fn arity(&self) -> Arity {
        Arity::Exactly(1)
    }
    fn infer(&self, ops: &[&TensorType]) -> Result<Vec<TensorType>, String> {
        let x = ops[0];
        axis_in_range(self.axis, x)?;
        at_least("step", self.step, 1)?;
        let len = x.shape[self.axis];
        if self.end > len {
            return Err(format!("end {} is beyond the axis length {len}", self.end));
        }
        if self.start >= self.end {
            return Err(format!(
                "start {} must be below end {}",
                self.start, self.end
            ));
        }
        let mut shape = x.shape.clone();
        shape[self.axis] = self.output_len();
        Ok(vec![TensorType::f32(shape)])
    }
}
