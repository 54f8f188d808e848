//! kiln: a graph compiler for convolutional networks.
//!
//! This facade re-exports the crates, each with one job:
//! - [`ir`]: the graph IR, verifier, cost model, parameter store and formats;
//! - [`models`]: the model zoo and its builder;
//! - [`passes`]: the pass manager and the optimization passes;
//! - [`interp`]: the reference interpreter, the oracle of every test;
//! - [`jit`]: the Cranelift backend.
//!
//! and holds the command line ([`cli`]) and model loading ([`load`]).

pub mod cli;
pub mod load;

pub use kiln_interp as interp;
pub use kiln_ir as ir;
pub use kiln_jit as jit;
pub use kiln_models as models;
pub use kiln_passes as passes;
