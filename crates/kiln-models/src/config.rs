//! The knobs of a zoo model: batch, input size, classes, input channels,
//! dropout, auxiliary heads.

use crate::error::ModelError;
use crate::zoo::{self, ModelInfo};
use kiln_ir::types::MAX_ELEMENTS;

#[derive(Clone, Debug, PartialEq)]
pub struct Config {
    pub batch: usize,
    pub height: usize,
    pub width: usize,
    pub num_classes: usize,
    pub in_channels: usize,
    /// Drop probability of the model's dropout layer(s); 0 leaves them out of
    /// the graph. A model without dropout refuses a nonzero value.
    pub dropout: f32,
    /// Adds the auxiliary classifiers (GoogLeNet, Inception-v3) as extra
    /// graph outputs, after the main logits, in the order torchvision returns them.
    pub aux_logits: bool,
}

impl Config {
    /// The model's defaults: batch 1, its usual input size (224, 299 for
    /// Inception-v3, 32 for the CIFAR models), its classes (1000 or 10), 3
    /// input channels, its reference dropout, no auxiliary heads.
    pub fn default_for(name: &str) -> Result<Config, ModelError> {
        Ok(zoo::find(name)?.default_config())
    }

    pub fn with_batch(mut self, batch: usize) -> Config {
        self.batch = batch;
        self
    }

    /// A square `size x size` input.
    pub fn with_input(mut self, size: usize) -> Config {
        self.height = size;
        self.width = size;
        self
    }

    pub fn with_classes(mut self, n: usize) -> Config {
        self.num_classes = n;
        self
    }

    pub fn with_in_channels(mut self, n: usize) -> Config {
        self.in_channels = n;
        self
    }

    pub fn with_dropout(mut self, p: f32) -> Config {
        self.dropout = p;
        self
    }

    pub fn with_aux_logits(mut self, aux: bool) -> Config {
        self.aux_logits = aux;
        self
    }

    /// Checks the configuration against `model` before anything is built.
    pub(crate) fn check(&self, model: &ModelInfo) -> Result<(), ModelError> {
        let fail = |message: String| {
            Err(ModelError::Config {
                model: model.name.to_string(),
                message,
            })
        };
        for (what, v) in [
            ("batch", self.batch),
            ("num_classes", self.num_classes),
            ("in_channels", self.in_channels),
            ("height", self.height),
            ("width", self.width),
        ] {
            if v == 0 {
                return fail(format!("{what} must be at least 1"));
            }
        }
        let elements = [self.batch, self.in_channels, self.height, self.width]
            .iter()
            .try_fold(1u64, |acc, &d| acc.checked_mul(d as u64));
        if elements.is_none_or(|n| n > MAX_ELEMENTS) {
            return fail(format!(
                "an input of {}x{}x{}x{} exceeds the limit of {MAX_ELEMENTS} elements",
                self.batch, self.in_channels, self.height, self.width
            ));
        }
        if self.height < model.min_input || self.width < model.min_input {
            return Err(ModelError::InputTooSmall {
                model: model.name.to_string(),
                height: self.height,
                width: self.width,
                min: model.min_input,
            });
        }
        if !(0.0..1.0).contains(&self.dropout) {
            return fail(format!("dropout must be in [0, 1), found {}", self.dropout));
        }
        if model.dropout.is_none() && self.dropout != 0.0 {
            return fail(format!(
                "has no dropout layer; dropout must be 0, found {}",
                self.dropout
            ));
        }
        if self.aux_logits && !model.aux_logits {
            return fail("has no auxiliary classifier (aux_logits)".to_string());
        }
        Ok(())
    }
}
