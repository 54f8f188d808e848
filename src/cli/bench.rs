use super::{prepare, CliError, ModelArgs};
use kiln_ir::{Graph, ParamStore, Tensor};
use serde_json::json;
use std::time::{Duration, Instant};

fn parse_ukernels(s: &str) -> Result<kiln_jit::Ukernels, String> {
    s.parse().map_err(|e: kiln_jit::JitError| e.to_string())
}

/// Options of the JIT backend, shared by `run` and `bench`.
#[derive(Clone, Debug, clap::Args)]
pub struct JitArgs {
    /// Worker threads (0: one per core). Outputs are bitwise identical for any count.
    #[arg(long, default_value_t = 0)]
    pub threads: usize,
    /// `auto`: the best `std::arch` microkernel for this CPU; `off`: the
    /// Cranelift-generated f32x4 tile everywhere; or one ISA's microkernel
    /// (`avx512`, `avx2`, `neon`, `scalar`), refused if this CPU lacks it.
    #[arg(long, default_value = "auto", value_parser = parse_ukernels)]
    pub ukernels: kiln_jit::Ukernels,
    /// Compile with bounds checks on every memory access (slow; traps with a
    /// message on an out-of-range access).
    #[arg(long)]
    pub checked: bool,
    /// Compute with subnormal floats as they are instead of flushing them to
    /// zero (slower where they occur; results differ only below 1.2e-38).
    #[arg(long)]
    pub keep_denormals: bool,
}

impl JitArgs {
    pub fn options(&self) -> kiln_jit::Options {
        kiln_jit::Options {
            threads: self.threads,
            ukernels: self.ukernels,
            checked: self.checked,
            flush_denormals: !self.keep_denormals,
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
    /// Also time every kernel launch and print the N nodes that take longest
    /// (median over the timed runs, with their GFLOP/s). Timing each launch adds
    /// a little overhead to the latency figures.
    #[arg(long, value_name = "N", num_args = 0..=1, default_missing_value = "20")]
    pub profile: Option<usize>,
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
    let mut launches: Vec<Vec<(String, Duration)>> = Vec::new();
    for _ in 0..args.iterations {
        let t = Instant::now();
        if args.profile.is_some() {
            let mut one = Vec::new();
            model.run_profiled(&inputs, Some(&mut one))?;
            launches.push(one);
        } else {
            model.run(&inputs)?;
        }
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
    let peak_core = kiln_jit::measure_peak_gflops(args.jit.ukernels);
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
            "ukernels": args.jit.ukernels.to_string(),
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
        let mut doc = doc;
        if let Some(top) = args.profile {
            let rows = profile_rows(&model, &launches);
            doc["profile"] = rows
                .iter()
                .take(top)
                .map(|r| json!({"node": r.node, "median_ms": ms(r.median), "share": r.share, "macs": r.macs, "gflops": r.gflops()}))
                .collect();
        }
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
    if let Some(top) = args.profile {
        let rows = profile_rows(&model, &launches);
        println!(
            "\nslowest nodes (median of {} runs; share of the summed launch times)",
            args.iterations
        );
        println!("{:>9} {:>6} {:>9}  node", "ms", "share", "GFLOP/s");
        for r in rows.iter().take(top) {
            let rate = if r.macs > 0 {
                format!("{:.1}", r.gflops())
            } else {
                "-".into()
            };
            println!(
                "{:>9.3} {:>5.1}% {:>9}  {}",
                ms(r.median),
                100.0 * r.share,
                rate,
                r.node
            );
        }
        if rows.len() > top {
            let rest: Duration = rows[top..].iter().map(|r| r.median).sum();
            println!(
                "{:>9.3} {:>5.1}% {:>9}  ({} other nodes)",
                ms(rest),
                100.0 * rows[top..].iter().map(|r| r.share).sum::<f64>(),
                "",
                rows.len() - top
            );
        }
    }
    Ok(())
}

/// One node's line of `--profile`.
struct ProfileRow {
    node: String,
    median: Duration,
    share: f64,
    macs: u64,
}

impl ProfileRow {
    fn gflops(&self) -> f64 {
        2.0 * self.macs as f64 / self.median.as_secs_f64().max(1e-12) / 1e9
    }
}

/// Per node (launches of one node summed within a run), the median over runs,
/// slowest first.
fn profile_rows(
    model: &kiln_jit::CompiledModel,
    runs: &[Vec<(String, Duration)>],
) -> Vec<ProfileRow> {
    let macs: std::collections::HashMap<&str, u64> = model
        .node_macs()
        .iter()
        .map(|(n, m)| (n.as_str(), *m))
        .collect();
    let mut per_node: std::collections::HashMap<&str, Vec<Duration>> = Default::default();
    for run in runs {
        let mut sums: std::collections::HashMap<&str, Duration> = Default::default();
        for (node, d) in run {
            *sums.entry(node.as_str()).or_default() += *d;
        }
        for (node, d) in sums {
            per_node.entry(node).or_default().push(d);
        }
    }
    let mut rows: Vec<ProfileRow> = per_node
        .into_iter()
        .map(|(node, mut v)| {
            v.sort();
            let median = v[v.len() / 2];
            let macs = macs.get(node).copied().unwrap_or(0);
            let node = node.to_string();
            ProfileRow {
                node,
                median,
                share: 0.0,
                macs,
            }
        })
        .collect();
    let total: f64 = rows.iter().map(|r| r.median.as_secs_f64()).sum();
    for r in &mut rows {
        r.share = r.median.as_secs_f64() / total.max(1e-12);
    }
    rows.sort_by(|a, b| b.median.cmp(&a.median));
    rows
}
