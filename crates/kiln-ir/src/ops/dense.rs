//! Fully connected layer, PyTorch's `nn.Linear`.

use super::{rank, vector};
use crate::op::{Arity, OpDef, OperandRole};
use crate::types::TensorType;
use serde::{Deserialize, Serialize};

/// Operands: `x: [N, K]`, `weight: [M, K]`, then `bias: [M]` if `bias`.
/// Output `[N, M] = x · weightᵀ + bias`.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Dense {
    pub bias: bool,
}

impl OpDef for Dense {
    fn arity(&self) -> Arity {
        Arity::Exactly(2 + self.bias as usize)
    }
    fn infer(&self, ops: &[&TensorType]) -> Result<Vec<TensorType>, String> {
        let (x, w) = (ops[0], ops[1]);
        rank("input", x, 2)?;
        rank("weight", w, 2)?;
        if w.shape[1] != x.shape[1] {
            return Err(format!(
                "weight {w} must have {} columns to match the input {x}",
                x.shape[1]
            ));
        }
        if self.bias {
            vector("bias", ops[2], w.shape[0])?;
        }
        Ok(vec![TensorType::f32([x.shape[0], w.shape[0]])])
    }
    fn macs(&self, ops: &[&TensorType], outs: &[TensorType]) -> u64 {
        outs[0].elements() as u64 * ops[1].shape[1] as u64
    }
    fn operand_role(&self, slot: usize) -> OperandRole {
        match slot {
            0 => OperandRole::Data,
            1 => OperandRole::Weight,
            _ => OperandRole::Bias,
        }
    }
}
