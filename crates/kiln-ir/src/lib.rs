//! kiln's graph IR: the typed graph of ops that every other crate reads and
//! rewrites, with the verifier that guards it, shape inference, the cost
//! model, the parameter store and the text, JSON and DOT formats.

pub mod cost;
pub mod dot;
pub mod error;
pub mod graph;
pub mod json;
pub mod npy;
pub mod op;
pub mod ops;
pub mod params;
pub mod suggest;
pub mod svg;
pub mod tensor;
pub mod text;
pub mod types;
pub mod verify;

pub use error::IrError;
pub use graph::{Edge, Graph, Node, NodeId, Use, Value};
pub use op::{Arity, Op, OpDef, OperandRole};
pub use params::{ParamError, ParamStore};
pub use tensor::Tensor;
pub use types::{DType, TensorType};
pub use verify::{verify, verify_params};
