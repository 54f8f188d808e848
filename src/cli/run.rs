use super::{prepare, CliError, ModelArgs};
use kiln_ir::npy::{read_npy, write_npy};
use kiln_ir::{Graph, Tensor};

#[derive(Clone, Copy, Debug, PartialEq, Eq, clap::ValueEnum)]
pub enum Backend {
    /// The reference interpreter: naive, obviously correct, slow.
    Interp,
    /// The Cranelift JIT.
    Jit,
}

#[derive(Debug, clap::Args)]
pub struct RunArgs {
    #[command(flatten)]
    pub model: ModelArgs,
    /// Input `.npy` file; `NAME=FILE` for a graph with several inputs.
    #[arg(long, required = true)]
    pub input: Vec<String>,
    /// Output `.npy` file; repeat for a graph with several outputs.
    #[arg(long)]
    pub output: Vec<String>,
    /// `interp` (the default) or `jit` (the default with `--check`).
    #[arg(long, value_enum)]
    pub backend: Option<Backend>,
    /// Run the JIT, and the interpreter too, and print the largest absolute and
    /// relative difference of the JIT's outputs to the interpreter's.
    #[arg(long)]
    pub check: bool,
    #[command(flatten)]
    pub jit: super::bench::JitArgs,
}

/// Pairs the `--input` arguments with the graph's inputs, by name or, for a
/// single unnamed file, with the only input.
pub(crate) fn read_inputs(g: &Graph, specs: &[String]) -> Result<Vec<(String, Tensor)>, CliError> {
    let names: Vec<String> = g.inputs().iter().map(|(_, n, _)| n.to_string()).collect();
    let mut out = Vec::new();
    for spec in specs {
        let (name, path) = match spec.split_once('=') {
            Some((n, p)) if !n.contains('/') => (n.to_string(), p),
            _ if specs.len() == 1 && names.len() == 1 => (names[0].clone(), spec.as_str()),
            _ => {
                return Err(CliError::Usage(format!(
                    "--input {spec}: the graph has inputs {names:?}; write --input NAME=FILE.npy for each"
                )))
            }
        };
        if !names.contains(&name) {
            return Err(CliError::Usage(format!(
                "--input {spec}: the graph has no input \"{name}\" (it has {names:?})"
            )));
        }
        out.push((name, read_npy(path)?));
    }
    Ok(out)
}

/// Largest absolute difference, and that over the reference's largest magnitude.
pub(crate) fn compare(found: &[Tensor], reference: &[Tensor]) -> (f32, f32) {
    let mut abs = 0.0f32;
    let mut scale = 0.0f32;
    for (f, r) in found.iter().zip(reference) {
        abs = abs.max(f.max_abs_diff(r).unwrap_or(f32::INFINITY));
        scale = scale.max(r.max_abs());
    }
    (abs, if scale > 0.0 { abs / scale } else { abs })
}

pub fn run(args: RunArgs) -> Result<(), CliError> {
    let p = prepare(&args.model)?;
    let inputs = read_inputs(&p.graph, &args.input)?;
    let backend = match (args.backend, args.check) {
        (Some(Backend::Interp), true) => {
            return Err(CliError::Usage(
                "--check compares the JIT with the interpreter: use it with --backend jit (or without --backend)".into(),
            ))
        }
        (Some(b), _) => b,
        (None, true) => Backend::Jit,
        (None, false) => Backend::Interp,
    };
    let outputs = match backend {
        Backend::Interp => kiln_interp::run(&p.graph, &p.params, &inputs)?,
        Backend::Jit => {
            let model = args.jit.compile(&p.graph, &p.params)?;
            model.run_named(&inputs)?
        }
    };
    if args.check {
        let reference = kiln_interp::run(&p.graph, &p.params, &inputs)?;
        let (abs, rel) = compare(&outputs, &reference);
        println!("max abs error {abs:.3e}, relative to the largest output {rel:.3e}");
    }
    if !args.output.is_empty() && args.output.len() != outputs.len() {
        return Err(CliError::Usage(format!(
            "the graph has {} outputs; give --output once for each",
            outputs.len()
        )));
    }
    for (path, t) in args.output.iter().zip(&outputs) {
        write_npy(path, t)?;
    }
    if args.output.is_empty() {
        for (i, t) in outputs.iter().enumerate() {
            println!(
                "output {i}: shape {:?}, max |x| {:.6}",
                t.shape,
                t.max_abs()
            );
        }
    }
    Ok(())
}
