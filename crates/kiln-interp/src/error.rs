//! Errors of the interpreter. Each names what is wrong and where: the input,
//! the parameter, or the node (as `Graph::describe` spells it).

use kiln_ir::{IrError, TensorType};
use thiserror::Error;

#[derive(Debug, Error)]
pub enum InterpError {
    /// `kiln_ir::verify` refused the graph (its message names the node).
    #[error("{0}")]
    InvalidGraph(#[source] IrError),

    /// `kiln_ir::verify_params` refused the weights: a parameter is missing or
    /// mis-shaped (the message names the first one and the op that reads it).
    #[error("the weights do not fit the graph: {0}")]
    Weights(#[source] IrError),

    /// A graph input was not given.
    #[error("input \"{name}\" ({expected}) was not given")]
    MissingInput { name: String, expected: TensorType },

    /// A tensor was given under a name the graph has no input for.
    #[error(
        "input \"{name}\" was given, but the graph has no input of that name (its inputs: {known})"
    )]
    UnknownInput { name: String, known: String },

    /// The same input name was given twice.
    #[error("input \"{name}\" was given twice")]
    DuplicateInput { name: String },

    /// A given input's shape differs from the declared one.
    #[error("input \"{name}\" has shape {found:?}, the graph declares {expected}")]
    InputShape {
        name: String,
        expected: TensorType,
        found: Vec<usize>,
    },

    /// A tensor (input, parameter or operand) whose data length disagrees with its shape.
    #[error("{what} has shape {shape:?} but holds {len} values")]
    MalformedTensor {
        what: String,
        shape: Vec<usize>,
        len: usize,
    },

    /// A SoftmaxCrossEntropy label that is not an integer class index in `[0, classes)`.
    #[error("{node}: label {value} of row {row} is not a class index in [0, {classes})")]
    BadLabel {
        node: String,
        row: usize,
        value: f32,
        classes: usize,
    },

    /// `eval_op` was given operands its op does not accept (or a source op).
    #[error("{node}: {message}")]
    Operands { node: String, message: String },

    /// A kernel produced a tensor of another shape than the node declares:
    /// a bug in the interpreter or in the IR's shape inference, never the user's.
    #[error("{node}: output {port} has shape {found:?}, the graph declares {expected} (an interpreter bug)")]
    KernelShape {
        node: String,
        port: usize,
        expected: TensorType,
        found: Vec<usize>,
    },
}
