//! Turning a MODEL argument into a graph: a zoo name, a `.kir` text file or a
//! JSON dump.

use kiln_ir::{Graph, IrError};
use kiln_models::{Config, ModelError};
use std::path::Path;
use thiserror::Error;

#[derive(Debug, Error)]
pub enum LoadError {
    #[error("cannot read {path}: {source}")]
    Io {
        path: String,
        source: std::io::Error,
    },
    #[error("{path}:{source}")]
    Text {
        path: String,
        source: kiln_ir::text::TextError,
    },
    #[error("{path}: {source}")]
    Json {
        path: String,
        source: kiln_ir::json::JsonError,
    },
    #[error("{path}: {source}")]
    Invalid { path: String, source: IrError },
    #[error(transparent)]
    Model(#[from] ModelError),
    #[error("{0}: model options (--batch, --input-size, --classes, --aux-logits) apply to zoo models only")]
    OptionsOnFile(String),
}

/// Options that shape a zoo model.
#[derive(Clone, Debug, Default, clap::Args)]
pub struct ModelOptions {
    /// Batch size of a zoo model.
    #[arg(long)]
    pub batch: Option<usize>,
    /// Input height and width of a zoo model.
    #[arg(long = "input-size")]
    pub input_size: Option<usize>,
    /// Number of classes of a zoo model.
    #[arg(long)]
    pub classes: Option<usize>,
    /// Build Inception-v3's auxiliary classifier (an extra output).
    #[arg(long = "aux-logits")]
    pub aux_logits: bool,
}

impl ModelOptions {
    fn is_default(&self) -> bool {
        self.batch.is_none()
            && self.input_size.is_none()
            && self.classes.is_none()
            && !self.aux_logits
    }
}

/// True when `model` names a file rather than a zoo entry.
pub fn is_file(model: &str) -> bool {
    model.ends_with(".kir")
        || model.ends_with(".json")
        || model.contains('/')
        || Path::new(model).is_file()
}

/// Loads and verifies a model: a file by its extension, anything else by zoo name.
pub fn load_model(model: &str, opts: &ModelOptions) -> Result<Graph, LoadError> {
    if !is_file(model) {
        let mut config = Config::default_for(model)?;
        if let Some(b) = opts.batch {
            config.batch = b;
        }
        if let Some(s) = opts.input_size {
            config = config.with_input(s);
        }
        if let Some(c) = opts.classes {
            config.num_classes = c;
        }
        config.aux_logits = opts.aux_logits;
        return Ok(kiln_models::build(model, &config)?);
    }
    if !opts.is_default() {
        return Err(LoadError::OptionsOnFile(model.to_string()));
    }
    let path = model.to_string();
    let text = std::fs::read_to_string(model).map_err(|source| LoadError::Io {
        path: path.clone(),
        source,
    })?;
    let graph = if model.ends_with(".json") {
        kiln_ir::json::from_json(&text).map_err(|source| LoadError::Json {
            path: path.clone(),
            source,
        })?
    } else {
        kiln_ir::text::parse(&text).map_err(|source| LoadError::Text {
            path: path.clone(),
            source,
        })?
    };
    kiln_ir::verify(&graph).map_err(|source| LoadError::Invalid { path, source })?;
    Ok(graph)
}
