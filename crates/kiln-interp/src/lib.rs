//! kiln's reference interpreter: it runs a verified graph with naive,
//! obviously correct f32 kernels for every op, with PyTorch's semantics, and is
//! the oracle that every pass, the JIT and the trainer are tested against.
//!
//! Kernels work on NCHW row-major data, one file per op family (`conv.rs`,
//! `pool.rs`, `norm.rs`, ...). Long sums (convolution and dense dot products,
//! pooling windows, BatchNorm statistics, softmax denominators, LRN windows)
//! are accumulated in f64 and rounded to f32 once, so the interpreter's own
//! rounding error is far below that of any optimized kernel it judges. Speed
//! is not a goal, except that convolutions run their output planes in
//! parallel (rayon) so that whole ResNets and Inceptions can be run in tests;
//! results never depend on the thread count.
//!
//! ```no_run
//! # fn demo(g: &kiln_ir::Graph, weights: &kiln_ir::ParamStore, x: kiln_ir::Tensor) -> Result<(), kiln_interp::InterpError> {
//! let outputs = kiln_interp::run(g, weights, &[("input", x)])?;
//! # Ok(()) }
//! ```

mod conv;
mod dense;
mod elementwise;
mod error;
mod kernel;
mod layout;
mod loss;
mod norm;
mod pool;
mod run;
mod shape;

pub use error::InterpError;
pub use kernel::eval_op;
pub use run::{run, run_all, Inputs};
