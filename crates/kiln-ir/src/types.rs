//! Static tensor types: an element type and a shape.

use serde::{Deserialize, Serialize};
use std::fmt;

/// The largest number of elements a tensor may have. The JIT indexes with 32-bit
/// offsets in places, and a bigger tensor is surely a mistake in a CNN graph.
pub const MAX_ELEMENTS: u64 = (1 << 31) - 1;

/// The largest rank a tensor may have.
pub const MAX_RANK: usize = 8;

/// Element type. Only `f32` is computed today; the enum leaves room for more.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum DType {
    F32,
}

impl DType {
    pub fn name(self) -> &'static str {
        match self {
            DType::F32 => "f32",
        }
    }
    pub fn size_bytes(self) -> usize {
        match self {
            DType::F32 => 4,
        }
    }
    pub fn from_name(s: &str) -> Option<DType> {
        match s {
            "f32" => Some(DType::F32),
            _ => None,
        }
    }
}

/// The static type of one value: dtype and shape (logical layout NCHW for images).
#[derive(Clone, Debug, PartialEq, Eq, Hash, Serialize, Deserialize)]
pub struct TensorType {
    pub dtype: DType,
    pub shape: Vec<usize>,
}

impl TensorType {
    pub fn f32(shape: impl Into<Vec<usize>>) -> Self {
        TensorType {
            dtype: DType::F32,
            shape: shape.into(),
        }
    }

    pub fn rank(&self) -> usize {
        self.shape.len()
    }

    /// Number of elements, or `None` if it overflows `u64`.
    pub fn checked_elements(&self) -> Option<u64> {
        self.shape
            .iter()
            .try_fold(1u64, |acc, &d| acc.checked_mul(d as u64))
    }

    /// Number of elements. Only call on verified types (they are bounded by `MAX_ELEMENTS`).
    pub fn elements(&self) -> usize {
        self.shape.iter().product()
    }

    pub fn size_bytes(&self) -> usize {
        self.elements() * self.dtype.size_bytes()
    }

    /// Checks the type is one the compiler can hold: bounded rank, no zero
    /// dimension, at most `MAX_ELEMENTS` elements.
    pub fn validate(&self) -> Result<(), String> {
        if self.shape.len() > MAX_RANK {
            return Err(format!(
                "rank {} exceeds the maximum {MAX_RANK}",
                self.shape.len()
            ));
        }
        if let Some(axis) = self.shape.iter().position(|&d| d == 0) {
            return Err(format!("dimension {axis} is zero"));
        }
        match self.checked_elements() {
            Some(n) if n <= MAX_ELEMENTS => Ok(()),
            _ => Err(format!("{self} has more than {MAX_ELEMENTS} elements")),
        }
    }
}

impl fmt::Display for TensorType {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}[", self.dtype.name())?;
        for (i, d) in self.shape.iter().enumerate() {
            if i > 0 {
                write!(f, ",")?;
            }
            write!(f, "{d}")?;
        }
        write!(f, "]")
    }
}
