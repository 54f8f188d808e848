//! The `kiln` subcommands, one file each.

/// Appends a line to a `String` buffer (printed at the end with
/// `write_output`, which tolerates a closed pipe).
macro_rules! say {
    ($out:expr, $($arg:tt)*) => {{
        use std::fmt::Write as _;
        let _ = writeln!($out, $($arg)*);
    }};
}

mod bench;
mod dump;
mod error;
mod models;
mod opt;
mod run;
mod summary;

pub use error::CliError;

use crate::load::ModelOptions;
use clap::{Parser, Subcommand};

#[derive(Debug, Parser)]
#[command(
    name = "kiln",
    version,
    about = "A graph compiler for convolutional networks"
)]
pub struct Cli {
    #[command(subcommand)]
    pub command: Command,
}

/// The model and pipeline arguments most commands share.
#[derive(Clone, Debug, clap::Args)]
pub struct ModelArgs {
    /// A zoo name (see `kiln models`), a `.kir` text file or a `.json` dump.
    pub model: String,
    #[command(flatten)]
    pub options: ModelOptions,
    /// Passes to run first, e.g. `fold-bn,fuse-residual,dce` (see `kiln passes`).
    #[arg(long)]
    pub passes: Option<String>,
    /// Weights (safetensors). Without it, zoo models get seeded random weights.
    #[arg(long)]
    pub weights: Option<String>,
    /// Seed of the random weights used when no --weights is given.
    #[arg(long, default_value_t = 0)]
    pub seed: u64,
}

#[derive(Debug, Subcommand)]
pub enum Command {
    /// List the model zoo: one line a model, with its paper, parameters and MACs.
    Models,
    /// List the registered passes.
    Passes,
    /// A table of every node (op, output shape, params, MACs) and the totals.
    Summary(summary::SummaryArgs),
    /// Write the graph as text, JSON, Graphviz DOT or SVG.
    Dump(dump::DumpArgs),
    /// Run a model on `.npy` inputs with the interpreter or the JIT.
    Run(run::RunArgs),
    /// Optimize a model with a pass pipeline and emit the result.
    Opt(opt::OptArgs),
    /// Benchmark a compiled model: latency, throughput, GFLOP/s and share of peak.
    Bench(bench::BenchArgs),
}

pub fn run(cli: Cli) -> Result<(), CliError> {
    match cli.command {
        Command::Models => models::list_models(),
        Command::Passes => opt::list_passes(),
        Command::Summary(a) => summary::summary(a),
        Command::Dump(a) => dump::dump(a),
        Command::Run(a) => run::run(a),
        Command::Opt(a) => opt::opt(a),
        Command::Bench(a) => bench::bench(a),
    }
}

/// Writes `text` to `path`, or to standard output without one.
pub(crate) fn write_output(path: Option<&str>, text: &str) -> Result<(), CliError> {
    match path {
        Some(p) => std::fs::write(p, text).map_err(|source| CliError::Write {
            path: p.to_string(),
            source,
        }),
        None => {
            use std::io::Write;
            let mut out = std::io::stdout().lock();
            // A closed pipe (`kiln dump ... | head`) is not an error worth a message.
            let _ = out.write_all(text.as_bytes());
            let _ = out.flush();
            Ok(())
        }
    }
}

/// A loaded model with its weights, after the requested passes.
pub(crate) struct Prepared {
    pub graph: kiln_ir::Graph,
    pub params: kiln_ir::ParamStore,
    /// Seeds the random choices of passes (fresh weights of structural factorization).
    pub seed: u64,
}

/// Loads the model, its weights (the file, or seeded random weights) and runs
/// the pipeline, printing nothing.
pub(crate) fn prepare(args: &ModelArgs) -> Result<Prepared, CliError> {
    let graph = crate::load::load_model(&args.model, &args.options)?;
    let params = match &args.weights {
        Some(path) => {
            let store = kiln_ir::ParamStore::load(path)?;
            kiln_ir::verify_params(&graph, &store)?;
            store
        }
        None => kiln_models::init_params(&graph, args.seed),
    };
    let mut prepared = Prepared {
        graph,
        params,
        seed: args.seed,
    };
    if let Some(pipeline) = &args.passes {
        opt::run_pipeline(&mut prepared, pipeline, &opt::Printing::None)?;
    }
    Ok(prepared)
}
