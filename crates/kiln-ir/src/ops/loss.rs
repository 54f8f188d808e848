//! Losses.

use super::{finite, rank};
use crate::op::{Arity, OpDef};
use crate::types::TensorType;
use serde::{Deserialize, Serialize};

/// Mean softmax cross-entropy, as `torch.nn.CrossEntropyLoss(label_smoothing=…)`.
/// Operands: `logits: [N, C]` and `labels: [N]`, the class indices stored as
/// f32 (exact up to 2^24 classes). Output: the scalar loss `f32[]`.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct SoftmaxCrossEntropy {
    pub label_smoothing: f32,
}

impl OpDef for SoftmaxCrossEntropy {
    fn arity(&self) -> Arity {
        Arity::Exactly(2)
    }
    fn infer(&self, ops: &[&TensorType]) -> Result<Vec<TensorType>, String> {
        finite("label_smoothing", self.label_smoothing)?;
        if !(0.0..=1.0).contains(&self.label_smoothing) {
            return Err(format!(
                "label_smoothing must be in [0, 1], found {}",
                self.label_smoothing
            ));
        }
        rank("logits", ops[0], 2)?;
        if ops[1].shape != [ops[0].shape[0]] {
            return Err(format!(
                "labels must be f32[{}] (one class index per row), found {}",
                ops[0].shape[0], ops[1]
            ));
        }
        Ok(vec![TensorType::f32(Vec::<usize>::new())])
    }
}
