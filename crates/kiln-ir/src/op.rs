//! The op type. Every op is a plain struct that implements [`OpDef`] (shape
//! inference and validation in one place, cost, operand roles); [`Op`] is the
//! closed sum of them, generated from the one-line-per-op list in
//! `define_ops!`. Adding an op means writing its struct and adding one line:
//! the printer, parser, JSON, verifier and cost model need no edit, because
//! they go through `OpDef` and serde.

use crate::ops::*;
use crate::types::TensorType;
use serde::{Deserialize, Serialize};

/// How many operands an op takes.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Arity {
    Exactly(usize),
    AtLeast(usize),
}

impl Arity {
    pub fn accepts(self, n: usize) -> bool {
        match self {
            Arity::Exactly(k) => n == k,
            Arity::AtLeast(k) => n >= k,
        }
    }
}

impl std::fmt::Display for Arity {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Arity::Exactly(k) => write!(f, "exactly {k}"),
            Arity::AtLeast(k) => write!(f, "at least {k}"),
        }
    }
}

/// What an operand is for. Parameters in `RunningStat` slots are state, not
/// trainable weights: the cost model does not count them as parameters.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum OperandRole {
    Data,
    Weight,
    Bias,
    RunningStat,
}

/// The contract every op implements.
pub trait OpDef {
    /// Operand count.
    fn arity(&self) -> Arity;

    /// Validates the attributes against the operand types and returns the
    /// output types: shape inference with PyTorch's and ONNX's formulas. An
    /// error is one sentence naming the attribute or operand at fault.
    /// Source ops (input, param) are never asked: their declared type is the truth.
    fn infer(&self, operands: &[&TensorType]) -> Result<Vec<TensorType>, String>;

    /// Multiply-accumulates of one evaluation (convs and dense layers; 0 elsewhere).
    fn macs(&self, _operands: &[&TensorType], _outputs: &[TensorType]) -> u64 {
        0
    }

    /// The role of operand `slot`.
    fn operand_role(&self, _slot: usize) -> OperandRole {
        OperandRole::Data
    }

    /// True for ops with no operands whose type is declared (input, param).
    fn is_source(&self) -> bool {
        false
    }
}

macro_rules! define_ops {
    ($($variant:ident($ty:ident) = $kw:literal,)*) => {
        /// One node's operation and its attributes. Serialized (JSON and the
        /// attribute braces of the text format) as `{"op": "<kind>", ...attributes}`.
        #[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
        #[serde(tag = "op")]
        pub enum Op {
            $(#[serde(rename = $kw)] $variant($ty),)*
        }

        impl Op {
            /// Every op kind, as spelled in the text format.
            pub const KINDS: &'static [&'static str] = &[$($kw),*];

            /// The op's keyword in the text format (`conv2d`, `batch_norm`, ...).
            pub fn kind(&self) -> &'static str {
                match self { $(Op::$variant(_) => $kw,)* }
            }

            /// Builds the op `kind` from its attributes (a JSON object without the
            /// `op` tag); the error carries the path of the attribute at fault.
            /// `None` if there is no op of that kind.
            pub fn from_attributes(
                kind: &str,
                attributes: serde_json::Value,
            ) -> Option<Result<Op, serde_path_to_error::Error<serde_json::Error>>> {
                match kind {
                    $($kw => Some(serde_path_to_error::deserialize::<_, $ty>(attributes).map(Op::$variant)),)*
                    _ => None,
                }
            }

            /// The op's definition: inference, cost, operand roles.
            pub fn def(&self) -> &dyn OpDef {
                match self { $(Op::$variant(o) => o,)* }
            }
        }

        $(impl From<$ty> for Op {
            fn from(o: $ty) -> Op { Op::$variant(o) }
        })*
    };
}

define_ops! {
    Input(Input) = "input",
    Param(Param) = "param",
    Conv2d(Conv2d) = "conv2d",
    BatchNorm(BatchNorm) = "batch_norm",
    Relu(Relu) = "relu",
    MaxPool(MaxPool) = "max_pool",
    AvgPool(AvgPool) = "avg_pool",
    GlobalAvgPool(GlobalAvgPool) = "global_avg_pool",
    Lrn(Lrn) = "lrn",
    Concat(Concat) = "concat",
    Add(Add) = "add",
    Dense(Dense) = "dense",
    Flatten(Flatten) = "flatten",
    Reshape(Reshape) = "reshape",
    Pad(Pad) = "pad",
    Slice(Slice) = "slice",
    Dropout(Dropout) = "dropout",
    Softmax(Softmax) = "softmax",
    SoftmaxCrossEntropy(SoftmaxCrossEntropy) = "softmax_cross_entropy",
}

impl Op {
    /// The parameter name of a `param` node.
    pub fn param_name(&self) -> Option<&str> {
        match self {
            Op::Param(p) => Some(&p.name),
            _ => None,
        }
    }

    /// The input name of an `input` node.
    pub fn input_name(&self) -> Option<&str> {
        match self {
            Op::Input(i) => Some(&i.name),
            _ => None,
        }
    }
}
