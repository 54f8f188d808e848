//! kiln's optimizing half: one [`Pass`] trait, a [`Registry`] of passes by
//! name, and a [`PassManager`] that runs a pipeline written as text
//! (`fold-bn,fuse-residual,dce`, options as `factorize{mode=fit,width=0.5}`),
//! verifies the graph after every pass, times each and can print the IR
//! after any of them. The passes are in [`passes`]; docs/passes.md says what
//! each does and refuses, docs/writing-a-pass.md how to write one.
//!
//! What a driver such as `kiln opt` does:
//!
//! ```
//! use kiln_passes::{Context, Outcome, PassManager, Registry, RunError};
//! # fn main() -> Result<(), Box<dyn std::error::Error>> {
//! # let config = kiln_models::Config::default_for("resnet18")?.with_input(32);
//! # let mut graph = kiln_models::build("resnet18", &config)?;
//! # let weights = kiln_models::init_params(&graph, 0);
//! let registry = Registry::builtin(); // outside code may `register` more
//!
//! // `kiln passes`: name, one line, options.
//! print!("{}", registry.help());
//! for option in registry.options("factorize") {
//!     assert!(!option.doc.is_empty(), "{}", option.name);
//! }
//!
//! // `--passes PIPELINE --print-after NAME`: a callback per finished pass
//! // that printing was asked for (or `print_after_all()`; without a callback
//! // the text lands in `PassRun::ir`).
//! let mut pm = PassManager::parse("fold-bn,fuse-residual,dce", &registry)?
//!     .print_after(["fuse-residual"])
//!     .on_print(|pass, g| eprint!("// IR after {pass}\n{}", kiln_ir::text::print(g)));
//!
//! // Passes read and write the weights (new names, never overwriting) and
//! // draw random choices from the seed.
//! let mut cx = Context::new(weights).with_seed(0);
//! let run = pm.run(&mut graph, &mut cx)?; // verified before and after every pass
//!
//! // `--stats`: per pass, its time, a summary line, counters, details.
//! print!("{run}");
//! for p in &run.passes {
//!     println!("{} took {:?}: {}", p.entry, p.elapsed, p.report);
//!     for d in p.report.details_of(Outcome::Left) {
//!         println!("  left {}: {}", d.node, d.message);
//!     }
//! }
//! assert_eq!(run.get("fold-bn").unwrap().report.counter("folded", "batch norm"), 20);
//! assert_eq!(run.get("fuse-residual").unwrap().report.counter("fused", "residual add"), 8);
//! let weights = cx.params; // save these with the optimized graph
//! # assert!(weights.names().any(|n| n.ends_with(".folded")));
//!
//! // Errors: a pipeline that does not parse names the column; a pass that
//! // fails, or leaves a graph the verifier refuses, is named.
//! let e = PassManager::parse("fold-bn,factorize{mode=fast}", &registry).err().unwrap();
//! assert_eq!(e.column, 24);
//! # let mut fresh = kiln_models::build("resnet18", &config)?;
//! let no_weights = &mut Context::default();
//! let e = PassManager::parse("dce,fold-bn", &registry)?.run(&mut fresh, no_weights).unwrap_err();
//! assert_eq!(e.pass(), Some("fold-bn"));
//! assert!(matches!(e, RunError::Pass { index: 1, .. }));
//! assert!(e.to_string().starts_with("pass `fold-bn` (#2 in the pipeline) failed: "), "{e}");
//! # Ok(()) }
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
