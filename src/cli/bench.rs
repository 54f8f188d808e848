use super::{prepare, CliError, ModelArgs};
use kiln_ir::{Graph, ParamStore, Tensor};
use serde_json::json;
use std::time::{Duration, Instant};

#[derive(Clone, Copy, Debug, PartialEq, Eq, clap::ValueEnum)]
pub enum UkernelChoice {
    Auto,
    Off,
}

impl From<UkernelChoice> for kiln_jit::Ukernels {
    fn from(c: UkernelChoice) -> Self {
        match c {
            UkernelChoice::Auto => kiln_jit::Ukernels::Auto,
            UkernelChoice::Off => kiln_jit::Ukernels::Off,
        }
    }
}

/// Options of the JIT backend, shared by `run` and `bench`.
#[derive(Clone, Debug, clap::Args)]
pub struct JitArgs {
    /// Worker threads (0: one per core). Outputs are bitwise identical for any count.
    #[arg(long, default_value_t = 0)]
    pub threads: usize,
    /// `auto`: the best `std::arch` microkernel for this CPU; `off`: the
    /// Cranelift-generated f32x4 tile everywhere.
    #[arg(long, value_enum, default_value = "auto")]
    pub ukernels: UkernelChoice,
    /// Compile with bounds checks on every memory access (slow; traps with a
    /// message on an out-of-range access).
    #[arg(long)]
    pub checked: bool,
}

impl JitArgs {
    pub fn options(&self) -> kiln_jit::Options {
        kiln_jit::Options {
            threads: self.threads,
            ukernels: self.ukernels.into(),
            checked: self.checked,
        }
    }

    pub fn compile(
        &self,
        g: &Graph,
        params: &ParamStore,
    ) -> Result<kiln_jit::CompiledModel, CliError> {
        Ok(kiln_jit::compile(g, params, &self.options())?)
    }
}

#[derive(Debug, clap::Args)]
pub struct BenchArgs {
    #[command(flatten)]
    pub model: ModelArgs,
    #[command(flatten)]
    pub jit: JitArgs,
    /// Timed runs (after warm-up).
    #[arg(long, default_value_t = 20)]
    pub iterations: usize,
    /// Untimed runs first.
    #[arg(long, default_value_t = 3)]
    pub warmup: usize,
    /// Print one JSON object instead of a report.
    #[arg(long)]
    pub json: bool,
}

fn ms(d: Duration) -> f64 {
    d.as_secs_f64() * 1e3
}

pub fn bench(args: BenchArgs) -> Result<(), CliError> {
    if args.iterations == 0 {
        return Err(CliError::Usage("--iterations must be at least 1".into()));
    }
    let started = Instant::now();
    let p = prepare(&args.model)?;
    let passes_s = started.elapsed().as_secs_f64();
    let model = args.jit.compile(&p.graph, &p.params)?;
    let compile_s = model.compile_time().as_secs_f64();
    let inputs: Vec<Tensor> = p
        .graph
        .inputs()
        .iter()
        .enumerate()
        .map(|(i, (_, _, ty))| {
            let n = ty.elements();
            let data = (0..n)
                .map(|j| (((j * 7919 + i * 104729) % 2001) as f32 - 1000.0) / 1000.0)
                .collect();
            Tensor {
                shape: ty.shape.clone(),
                data,
            }
        })
        .collect();
    let bar = (!args.json).then(|| {
        let bar = indicatif::ProgressBar::new((args.warmup + args.iterations) as u64);
        bar.set_style(
            indicatif::ProgressStyle::with_template("{msg:>8} [{bar:40}] {pos}/{len}")
                .expect("a valid template")
                .progress_chars("=> "),
        );
        bar.set_message("warm-up");
        bar
    });
    for _ in 0..args.warmup {
        model.run(&inputs)?;
        if let Some(b) = &bar {
            b.inc(1);
        }
    }
    if let Some(b) = &bar {
        b.set_message("timing");
    }
    let mut times = Vec::with_capacity(args.iterations);
    for _ in 0..args.iterations {
        let t = Instant::now();
        model.run(&inputs)?;
        times.push(t.elapsed());
        if let Some(b) = &bar {
            b.inc(1);
        }
    }
    if let Some(b) = bar {
        b.finish_and_clear();
    }
    times.sort();
    let median = times[times.len() / 2];
    let (min, max) = (times[0], times[times.len() - 1]);
    let macs = kiln_ir::cost::cost(&p.graph).macs;
    let gflops = 2.0 * macs as f64 / median.as_secs_f64() / 1e9;
    let threads = model.threads();
    let peak_core = kiln_jit::measure_peak_gflops(args.jit.ukernels.into());
    let peak = peak_core * threads as f64;
    let batch = p
        .graph
        .inputs()
        .first()
        .map(|(_, _, t)| t.shape.first().copied().unwrap_or(1))
        .unwrap_or(1);
    let throughput = batch as f64 / median.as_secs_f64();
    if args.json {
        let doc = json!({
            "model": args.model.model,
            "batch": batch,
            "threads": threads,
            "ukernels": format!("{:?}", args.jit.ukernels).to_lowercase(),
            "passes": args.model.passes,
            "passes_s": passes_s,
            "compile_s": compile_s,
            "arena_bytes": model.arena_bytes(),
            "median_ms": ms(median),
            "min_ms": ms(min),
            "max_ms": ms(max),
            "throughput": throughput,
            "gflops": gflops,
            "peak_gflops": peak,
            "peak_share": gflops / peak,
            "macs": macs,
        });
        println!(
            "{}",
            serde_json::to_string_pretty(&doc).expect("JSON of plain values")
        );
        return Ok(());
    }
    println!("model       {} (batch {batch})", args.model.model);
    println!(
        "compile     {:.3} s (passes and load {:.3} s), arena {:.1} MiB",
        compile_s,
        passes_s,
        model.arena_bytes() as f64 / (1 << 20) as f64
    );
    println!(
        "latency     median {:.2} ms, min {:.2} ms, max {:.2} ms over {} runs",
        ms(median),
        ms(min),
        ms(max),
        args.iterations
    );
    println!("throughput  {throughput:.1} images/s");
    println!("compute     {gflops:.1} GFLOP/s = {:.0}% of {peak:.0} GFLOP/s peak ({threads} threads x {peak_core:.0}, measured now)", 100.0 * gflops / peak);
    Ok(())
}
