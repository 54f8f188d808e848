//! A dense f32 tensor in row-major (C) order: the unit of data that the
//! interpreter, the parameter store and the `.npy` reader exchange.

use crate::types::TensorType;

#[derive(Clone, Debug, PartialEq)]
pub struct Tensor {
    pub shape: Vec<usize>,
    pub data: Vec<f32>,
}

impl Tensor {
    /// A tensor from its shape and data; `None` if the lengths disagree.
    pub fn new(shape: Vec<usize>, data: Vec<f32>) -> Option<Tensor> {
        let n = shape.iter().try_fold(1usize, |a, &d| a.checked_mul(d))?;
        (n == data.len()).then_some(Tensor { shape, data })
    }

    pub fn zeros(shape: &[usize]) -> Tensor {
        Tensor {
            shape: shape.to_vec(),
            data: vec![0.0; shape.iter().product()],
        }
    }

    pub fn filled(shape: &[usize], value: f32) -> Tensor {
        Tensor {
            shape: shape.to_vec(),
            data: vec![value; shape.iter().product()],
        }
    }

    pub fn scalar(value: f32) -> Tensor {
        Tensor {
            shape: vec![],
            data: vec![value],
        }
    }

    pub fn ty(&self) -> TensorType {
        TensorType::f32(self.shape.clone())
    }

    pub fn len(&self) -> usize {
        self.data.len()
    }

    pub fn is_empty(&self) -> bool {
        self.data.is_empty()
    }

    /// Largest absolute value (0 for an empty tensor).
    pub fn max_abs(&self) -> f32 {
        self.data.iter().fold(0.0f32, |m, v| m.max(v.abs()))
    }

    /// Largest absolute difference to `other`, which must have the same shape.
    pub fn max_abs_diff(&self, other: &Tensor) -> Option<f32> {
        if self.shape != other.shape {
            return None;
        }
        Some(self.data.iter().zip(&other.data).fold(0.0f32, |m, (a, b)| {
            let d = (a - b).abs();
            if d.is_nan() {
                f32::INFINITY
            } else {
                m.max(d)
            }
        }))
    }
}
