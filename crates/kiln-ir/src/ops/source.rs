//! Source ops: graph inputs and parameters. Their type is declared on the node.

use crate::op::{Arity, OpDef};
use crate::types::TensorType;
use serde::{Deserialize, Serialize};

/// A graph input, fed at run time under `name`.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Input {
    pub name: String,
}

/// A parameter (weight, bias, BatchNorm statistic), looked up by `name` in the
/// parameter store.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Param {
    pub name: String,
}

impl OpDef for Input {
    fn arity(&self) -> Arity {
        Arity::Exactly(0)
    }
    fn infer(&self, _: &[&TensorType]) -> Result<Vec<TensorType>, String> {
        Err("an input's type is declared, not inferred".into())
    }
    fn is_source(&self) -> bool {
        true
    }
}

impl OpDef for Param {
    fn arity(&self) -> Arity {
        Arity::Exactly(0)
    }
    fn infer(&self, _: &[&TensorType]) -> Result<Vec<TensorType>, String> {
        Err("a parameter's type is declared, not inferred".into())
    }
    fn is_source(&self) -> bool {
        true
    }
}
