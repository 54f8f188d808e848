//! Errors of the frontend.

use kiln_ir::IrError;
use thiserror::Error;

#[derive(Debug, Error)]
pub enum ModelError {
    /// The name is not in the zoo; `suggestions` holds the closest zoo names
    /// (by edit distance), best first, possibly none.
    #[error("unknown model '{name}'{}", suggestion_text(.suggestions))]
    Unknown {
        name: String,
        suggestions: Vec<String>,
    },

    /// The configuration does not fit the model (a zero dimension, a dropout
    /// probability outside [0, 1), an option the model does not have).
    #[error("{model}: {message}")]
    Config { model: String, message: String },

    /// The input is smaller than the smallest the model accepts.
    #[error("{model}: input {height}x{width} is too small; the smallest input it accepts is {min}x{min}")]
    InputTooSmall {
        model: String,
        height: usize,
        width: usize,
        min: usize,
    },

    /// A layer did not type-check; `at` is its scoped name (`layer3.1.conv2`)
    /// or, for an op without parameters, the scope and the op (`layer3.1/add`).
    #[error("{at}: {source}")]
    Build {
        at: String,
        #[source]
        source: IrError,
    },

    /// Two layers asked for the same parameter name.
    #[error("parameter '{name}' is defined twice")]
    DuplicateParam { name: String },

    /// A value handed to the builder is not one of its graph's values.
    #[error("{at}: the value %{node} does not exist in this graph")]
    NoSuchValue { at: String, node: usize },

    /// The finished graph failed the verifier (for instance, a tensor beyond
    /// the element limit).
    #[error("graph '{model}' fails verification: {source}")]
    Verify {
        model: String,
        #[source]
        source: IrError,
    },
}

fn suggestion_text(suggestions: &[String]) -> String {
    match suggestions {
        [] => "; `kiln models` lists the zoo".to_string(),
        [one] => format!("; did you mean '{one}'?"),
        many => {
            let quoted: Vec<String> = many.iter().map(|s| format!("'{s}'")).collect();
            format!("; did you mean one of {}?", quoted.join(", "))
        }
    }
}
