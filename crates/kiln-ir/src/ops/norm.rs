//! Normalisations: BatchNorm and local response normalisation.

use super::{at_least, finite, vector};
use crate::op::{Arity, OpDef, OperandRole};
use crate::types::TensorType;
use serde::{Deserialize, Serialize};

/// Operands: `x: [N, C, ...]`, `weight`, `bias`, `running_mean`, `running_var`
/// (each `[C]`). With `training = false` it normalises with the running
/// statistics; with `training = true`, with the batch's (biased) statistics.
/// `momentum` is PyTorch's: `running = (1 - momentum) * running + momentum * batch`.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct BatchNorm {
    pub eps: f32,
    pub momentum: f32,
    pub training: bool,
}

impl BatchNorm {
    pub fn inference(eps: f32) -> BatchNorm {
        BatchNorm {
            eps,
            momentum: 0.1,
            training: false,
        }
    }
}

impl OpDef for BatchNorm {
    fn arity(&self) -> Arity {
        Arity::Exactly(5)
    }
    fn infer(&self, ops: &[&TensorType]) -> Result<Vec<TensorType>, String> {
        finite("eps", self.eps)?;
        if self.eps <= 0.0 {
            return Err(format!("eps must be positive, found {}", self.eps));
        }
        if !(0.0..=1.0).contains(&self.momentum) {
            return Err(format!(
                "momentum must be in [0, 1], found {}",
                self.momentum
            ));
        }
        let x = ops[0];
        if x.rank() < 2 {
            return Err(format!("input must have rank 2 or more, found {x}"));
        }
        let c = x.shape[1];
        for (slot, what) in ["weight", "bias", "running_mean", "running_var"]
            .iter()
            .enumerate()
        {
            vector(what, ops[slot + 1], c)?;
        }
        Ok(vec![x.clone()])
    }
    fn operand_role(&self, slot: usize) -> OperandRole {
        match slot {
            0 => OperandRole::Data,
            1 => OperandRole::Weight,
            2 => OperandRole::Bias,
            _ => OperandRole::RunningStat,
        }
    }
}

/// Local response normalisation across channels, as `torch.nn.LocalResponseNorm`
/// and Caffe's LRN: `y = x / (k + alpha / size * sum(x^2 over size channels)) ^ beta`,
/// the window running from `c - size/2` to `c + (size-1)/2`, zero outside.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Lrn {
    pub size: usize,
    pub alpha: f32,
    pub beta: f32,
    pub k: f32,
}

impl OpDef for Lrn {
    fn arity(&self) -> Arity {
        Arity::Exactly(1)
    }
    fn infer(&self, ops: &[&TensorType]) -> Result<Vec<TensorType>, String> {
        at_least("size", self.size, 1)?;
        finite("alpha", self.alpha)?;
        finite("beta", self.beta)?;
        finite("k", self.k)?;
        if self.k <= 0.0 {
            return Err(format!("k must be positive, found {}", self.k));
        }
        let x = ops[0];
        if x.rank() < 3 {
            return Err(format!("input must have rank 3 or more, found {x}"));
        }
        Ok(vec![x.clone()])
    }
}
