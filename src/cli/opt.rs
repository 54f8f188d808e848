use super::dump::{render, Format};
use super::{write_output, CliError, ModelArgs, Prepared};
use kiln_ir::cost::{cost, grouped};
use kiln_passes::{Context, PassManager, Registry, RunReport};

#[derive(Debug, clap::Args)]
pub struct OptArgs {
    #[command(flatten)]
    pub model: ModelArgs,
    /// Print the IR after every pass (to standard error).
    #[arg(long = "print-after-all")]
    pub print_after_all: bool,
    /// Print the IR after each pass of this name (repeatable).
    #[arg(long = "print-after")]
    pub print_after: Vec<String>,
    /// Print each pass's report, time and the params/MACs before and after.
    #[arg(long)]
    pub stats: bool,
    /// Format of the optimized graph.
    #[arg(long, value_enum, default_value = "text")]
    pub emit: Format,
    /// Output file for the optimized graph (standard output without it).
    #[arg(short, long)]
    pub output: Option<String>,
    /// Save the optimized graph's weights (passes create and drop parameters).
    #[arg(long = "save-weights")]
    pub save_weights: Option<String>,
}

/// Which IR snapshots to print (to standard error) while the pipeline runs.
pub(crate) enum Printing {
    None,
    All,
    After(Vec<String>),
}

/// Runs `pipeline` over the prepared model; the graph is verified after every pass.
pub(crate) fn run_pipeline(
    p: &mut Prepared,
    pipeline: &str,
    printing: &Printing,
) -> Result<RunReport, CliError> {
    let registry = Registry::builtin();
    let mut manager = PassManager::parse(pipeline, &registry)
        .map_err(|e| CliError::Usage(format!("--passes {pipeline}: {e}")))?;
    manager = match printing {
        Printing::None => manager,
        Printing::All => manager.print_after_all(),
        Printing::After(names) => manager.print_after(names.clone()),
    };
    manager = manager.on_print(|name, g| {
        eprintln!("// ----- IR after {name} -----");
        eprint!("{}", kiln_ir::text::print(g));
    });
    let mut cx = Context::new(std::mem::take(&mut p.params)).with_seed(p.seed);
    let result = manager.run(&mut p.graph, &mut cx);
    p.params = cx.params;
    Ok(result?)
}

pub fn opt(args: OptArgs) -> Result<(), CliError> {
    let Some(pipeline) = args.model.passes.clone() else {
        return Err(CliError::Usage(
            "kiln opt needs --passes PIPELINE (see `kiln passes`)".into(),
        ));
    };
    let mut model = args.model.clone();
    model.passes = None;
    let mut p = super::prepare(&model)?;
    let before = cost(&p.graph);
    let printing = if args.print_after_all {
        Printing::All
    } else if !args.print_after.is_empty() {
        Printing::After(args.print_after.clone())
    } else {
        Printing::None
    };
    let runs = run_pipeline(&mut p, &pipeline, &printing)?;
    if args.stats {
        let after = cost(&p.graph);
        eprint!("{runs}");
        for run in &runs.passes {
            for d in &run.report.details {
                let outcome = match d.outcome {
                    kiln_passes::Outcome::Changed => "changed",
                    kiln_passes::Outcome::Left => "left",
                };
                let metrics: String = d
                    .metrics
                    .iter()
                    .map(|(k, v)| format!(" {k}={v:.4e}"))
                    .collect();
                eprintln!(
                    "  {}: {outcome} {}: {}{metrics}",
                    run.name, d.node, d.message
                );
            }
        }
        let pct = |a: u64, b: u64| {
            if a == 0 {
                0.0
            } else {
                100.0 * (b as f64 - a as f64) / a as f64
            }
        };
        eprintln!(
            "params {} -> {} ({:+.2}%), MACs {} -> {} ({:+.2}%), nodes {} -> {}",
            grouped(before.params),
            grouped(after.params),
            pct(before.params, after.params),
            grouped(before.macs),
            grouped(after.macs),
            pct(before.macs, after.macs),
            before.nodes.len(),
            after.nodes.len()
        );
    }
    if let Some(path) = &args.save_weights {
        p.params.save(path)?;
    }
    write_output(args.output.as_deref(), &render(&p.graph, args.emit)?)
}

/// `kiln passes`: every registered pass with its options.
pub fn list_passes() -> Result<(), CliError> {
    let registry = Registry::builtin();
    let mut out = String::new();
    for name in registry.names() {
        say!(out, "{:<16} {}", name, registry.summary(name).unwrap_or(""));
    }
    write_output(None, &out)
}
