//! The backend's errors: every refusal names what and where.

use kiln_ir::TensorType;

/// Why `compile` or `run` refused.
#[derive(Debug, thiserror::Error)]
pub enum JitError {
    /// `kiln_ir::verify` or `verify_params` refused the graph or its weights.
    #[error("invalid graph: {0}")]
    InvalidGraph(String),

    /// An op or attribute combination the backend does not lower.
    #[error("unsupported: {0}")]
    Unsupported(String),

    /// Cranelift refused a generated function (a bug in the lowering).
    #[error("code generation failed for {kernel}: {message}")]
    Codegen { kernel: String, message: String },

    /// `run` was given the wrong number of inputs.
    #[error("the graph has {expected} inputs, {found} were given")]
    InputCount { expected: usize, found: usize },

    /// An input's shape or data length differs from the declared type.
    #[error("input \"{name}\" has shape {found:?} ({len} values), the graph declares {expected}")]
    InputShape {
        name: String,
        expected: TensorType,
        found: Vec<usize>,
        len: usize,
    },

    /// `run_named` got a name the graph has no input for, or missed one.
    #[error("input \"{name}\": {problem}")]
    InputName { name: String, problem: String },

    /// A SoftmaxCrossEntropy label that is not an integer class index in `[0, classes)`.
    #[error("{node}: a label is not an integer class index in [0, {classes})")]
    BadLabel { node: String, classes: usize },

    /// Checked mode caught a load or store outside the tensor it belongs to.
    #[error("checked mode: out-of-range memory access in the kernel of {node}")]
    OutOfBounds { node: String },

    /// The thread pool could not be built.
    #[error("thread pool: {0}")]
    ThreadPool(String),

    /// A forced microkernel ISA this CPU (or this build's target) does not have.
    #[error("the {0} microkernel is not available on this CPU")]
    IsaUnavailable(&'static str),

    /// A bad argument to a library entry point (a GEMM shape, stride or buffer length).
    #[error("invalid argument: {0}")]
    InvalidArgument(String),
}
