//! kiln's optimizing half: one [`Pass`] trait, a [`Registry`] of passes by
//! name, and a [`PassManager`] that runs a pipeline written as text
//! (`fold-bn,fuse-residual,dce`), verifies the graph after every pass, times
//! each and can print the IR after any of them.
//!
//! ```
//! use kiln_passes::{Context, PassManager, Registry};
//! let graph0 = kiln_models::build("resnet18", &kiln_models::Config::default_for("resnet18").unwrap().with_input(32)).unwrap();
//! let weights = kiln_models::init_params(&graph0, 0);
//! let mut graph = graph0.clone();
//! let mut pm = PassManager::parse("fold-bn,fuse-residual,dce", &Registry::builtin()).unwrap();
//! let mut cx = Context::new(weights);
//! let run = pm.run(&mut graph, &mut cx).unwrap();
//! assert_eq!(run.get("fold-bn").unwrap().report.counter("folded", "batch norm"), 20);
//! ```

mod manager;
mod pass;
pub mod passes;
mod pipeline;
mod registry;

pub use manager::{PassManager, PassRun, RunError, RunReport};
pub use pass::{Context, Counter, Detail, Figure, Outcome, Pass, PassError, Report};
pub use pipeline::{choice, parse_pipeline, OptionValue, Options, PassSpec, PipelineError};
pub use registry::{Factory, OptionDoc, Registry, RegistryError};
