//! Errors of the IR crate.

use thiserror::Error;

#[derive(Debug, Error)]
pub enum IrError {
    /// A node the builder API was asked to add does not type-check.
    #[error("cannot build {op}: {message}")]
    Build { op: &'static str, message: String },

    /// The verifier refused the graph; `node` describes where.
    #[error("invalid graph: {node}: {message}")]
    Verify { node: String, message: String },

    /// A parameter is missing from, or has the wrong shape in, the store.
    #[error("{0}")]
    Params(String),
}
