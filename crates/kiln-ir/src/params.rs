//! The parameter store: named f32 tensors, loaded from and saved to safetensors.

use crate::tensor::Tensor;
use std::collections::BTreeMap;
use std::path::Path;
use thiserror::Error;

#[derive(Debug, Error)]
pub enum ParamError {
    #[error("cannot read {path}: {source}")]
    Io {
        path: String,
        source: std::io::Error,
    },
    #[error("{path} is not a valid safetensors file: {message}")]
    Format { path: String, message: String },
    #[error("tensor '{name}' in {path}: {message}")]
    Tensor {
        path: String,
        name: String,
        message: String,
    },
}

/// Named f32 tensors, in name order.
#[derive(Clone, Debug, Default, PartialEq)]
pub struct ParamStore {
    tensors: BTreeMap<String, Tensor>,
    /// Tensors the file held in a dtype other than f32 (e.g. torchvision's int64
    /// `num_batches_tracked`): skipped on load, listed here.
    pub skipped: Vec<String>,
}

impl ParamStore {
    pub fn new() -> ParamStore {
        ParamStore::default()
    }

    pub fn get(&self, name: &str) -> Option<&Tensor> {
        self.tensors.get(name)
    }

    pub fn insert(&mut self, name: impl Into<String>, t: Tensor) -> Option<Tensor> {
        self.tensors.insert(name.into(), t)
    }

    pub fn remove(&mut self, name: &str) -> Option<Tensor> {
        self.tensors.remove(name)
    }

    pub fn contains(&self, name: &str) -> bool {
        self.tensors.contains_key(name)
    }

    pub fn len(&self) -> usize {
        self.tensors.len()
    }

    pub fn is_empty(&self) -> bool {
        self.tensors.is_empty()
    }

    pub fn iter(&self) -> impl Iterator<Item = (&String, &Tensor)> {
        self.tensors.iter()
    }

    pub fn names(&self) -> impl Iterator<Item = &String> {
        self.tensors.keys()
    }

    /// Loads every f32 tensor of a safetensors file.
    pub fn load(path: impl AsRef<Path>) -> Result<ParamStore, ParamError> {
        let path = path.as_ref();
        let bytes = std::fs::read(path).map_err(|source| ParamError::Io {
            path: path.display().to_string(),
            source,
        })?;
        ParamStore::from_bytes(&bytes, &path.display().to_string())
    }

    /// Parses safetensors bytes; `origin` names the source in errors.
    pub fn from_bytes(bytes: &[u8], origin: &str) -> Result<ParamStore, ParamError> {
        use safetensors::{Dtype, SafeTensors};
        let st = SafeTensors::deserialize(bytes).map_err(|e| ParamError::Format {
            path: origin.to_string(),
            message: e.to_string(),
        })?;
        let mut store = ParamStore::new();
        let mut names: Vec<String> = st.names().into_iter().map(|s| s.to_string()).collect();
        names.sort();
        for name in names {
            let view = st.tensor(&name).map_err(|e| ParamError::Tensor {
                path: origin.to_string(),
                name: name.clone(),
                message: e.to_string(),
            })?;
            if view.dtype() != Dtype::F32 {
                store.skipped.push(name);
                continue;
            }
            let data: Vec<f32> = view
                .data()
                .chunks_exact(4)
                .map(|b| f32::from_le_bytes([b[0], b[1], b[2], b[3]]))
                .collect();
            let t = Tensor::new(view.shape().to_vec(), data).ok_or_else(|| ParamError::Tensor {
                path: origin.to_string(),
                name: name.clone(),
                message: format!("shape {:?} does not match its data", view.shape()),
            })?;
            store.tensors.insert(name, t);
        }
        Ok(store)
    }

    /// Serializes every tensor as f32 safetensors.
    pub fn to_bytes(&self) -> Result<Vec<u8>, ParamError> {
        use safetensors::tensor::TensorView;
        let raw: Vec<(String, Vec<u8>, Vec<usize>)> = self
            .tensors
            .iter()
            .map(|(n, t)| {
                (
                    n.clone(),
                    t.data.iter().flat_map(|v| v.to_le_bytes()).collect(),
                    t.shape.clone(),
                )
            })
            .collect();
        let views: Vec<(String, TensorView<'_>)> = raw
            .iter()
            .map(|(n, bytes, shape)| {
                TensorView::new(safetensors::Dtype::F32, shape.clone(), bytes)
                    .map(|v| (n.clone(), v))
                    .map_err(|e| ParamError::Tensor {
                        path: "<memory>".into(),
                        name: n.clone(),
                        message: e.to_string(),
                    })
            })
            .collect::<Result<_, _>>()?;
        safetensors::serialize(views, None).map_err(|e| ParamError::Format {
            path: "<memory>".into(),
            message: e.to_string(),
        })
    }

    pub fn save(&self, path: impl AsRef<Path>) -> Result<(), ParamError> {
        let path = path.as_ref();
        let bytes = self.to_bytes()?;
        std::fs::write(path, bytes).map_err(|source| ParamError::Io {
            path: path.display().to_string(),
            source,
        })
    }
}
