//! The textual format: one line an op, every value typed, parameters by name.
//!
//! ```text
//! graph "block"
//! %0 = input "x" : f32[1,3,8,8]
//! @conv.weight = param : f32[4,3,3,3]
//! %1 = conv2d(%0, @conv.weight) {kernel=[3,3], stride=[1,1], pad=[1,1,1,1], dilation=[1,1], groups=1, bias=false, epilogue={residual=false, relu=false}} : f32[1,4,8,8]
//! %2 = relu(%1) : f32[1,4,8,8]
//! output %2
//! ```
//!
//! Attributes are generic: the printer writes the op's serde fields and the
//! parser deserializes them back, so a new op needs no change here. The
//! grammar and the canonical form are specified in docs/ir.md.
//!
//! Contracts:
//! - [`print`] writes the canonical form; `print(&parse(t)?) == t` for every
//!   canonical `t`, and `parse(&print(g))` rebuilds `g` up to node numbering
//!   for every graph the verifier accepts, and for any other graph that is
//!   acyclic, has no dangling value, one output per source node, unique
//!   source names and finite float attributes.
//! - [`parse`] never panics; every error says `line:column: ...`. It checks
//!   syntax and references, not semantics: run [`crate::verify`] on the result.

mod lexer;
mod parse;
mod print;

pub use parse::{parse, parse_bytes};
pub use print::print;
pub(crate) use print::{inline_attributes, quote};

use thiserror::Error;

/// Attributes nested deeper than this are refused: no op has more than two
/// levels, and unbounded recursion would overflow the stack.
pub const MAX_DEPTH: usize = 32;

/// A parse error at `line:column` (both from 1; columns count characters).
#[derive(Debug, Error, Clone, PartialEq, Eq)]
#[error("{line}:{column}: {message}")]
pub struct TextError {
    pub line: usize,
    pub column: usize,
    pub message: String,
}

/// True for the characters of a bare (unquoted) parameter name.
fn is_name_char(c: char) -> bool {
    c.is_ascii_alphanumeric() || matches!(c, '_' | '.' | ':' | '/' | '-')
}
