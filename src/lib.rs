//! kiln: a graph compiler for convolutional networks. This facade re-exports
//! the crates; the `kiln` binary is the command line.
pub use kiln_ir as ir;
