//! Shape-preserving ops: ReLU, Add, Dropout, Softmax.

use super::{finite, same_shape};
use crate::op::{Arity, OpDef};
use crate::types::TensorType;
use serde::{Deserialize, Serialize};

/// `max(x, 0)`.
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Relu {}

/// Elementwise sum of two tensors of the same shape (no broadcasting).
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Add {}

/// Dropout with drop probability `p`: the identity at inference.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Dropout {
    pub p: f32,
}

/// Softmax along `axis`.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Softmax {
    pub axis: usize,
}

impl OpDef for Relu {
    fn arity(&self) -> Arity {
        Arity::Exactly(1)
    }
    fn infer(&self, ops: &[&TensorType]) -> Result<Vec<TensorType>, String> {
        Ok(vec![ops[0].clone()])
    }
}

impl OpDef for Add {
    fn arity(&self) -> Arity {
        Arity::Exactly(2)
    }
    fn infer(&self, ops: &[&TensorType]) -> Result<Vec<TensorType>, String> {
        same_shape("second operand", ops[0], ops[1])?;
        Ok(vec![ops[0].clone()])
    }
}

impl OpDef for Dropout {
    fn arity(&self) -> Arity {
        Arity::Exactly(1)
    }
    fn infer(&self, ops: &[&TensorType]) -> Result<Vec<TensorType>, String> {
        finite("p", self.p)?;
        if !(0.0..1.0).contains(&self.p) {
            return Err(format!("p must be in [0, 1), found {}", self.p));
        }
        Ok(vec![ops[0].clone()])
    }
}

impl OpDef for Softmax {
    fn arity(&self) -> Arity {
        Arity::Exactly(1)
    }
    fn infer(&self, ops: &[&TensorType]) -> Result<Vec<TensorType>, String> {
        if self.axis >= ops[0].rank() {
            return Err(format!("axis {} is out of range for {}", self.axis, ops[0]));
        }
        Ok(vec![ops[0].clone()])
    }
}
