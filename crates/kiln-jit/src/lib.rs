//! kiln-jit: the backend. A verified graph becomes a schedule (topological
//! order), a memory plan (one arena, storages packed by liveness, in-place
//! elementwise ops, concat without copies), and one or more Cranelift-generated
//! kernels per node, specialised to the exact shapes; the inner matmul tile of
//! convs and dense layers is a `std::arch` microkernel picked for the CPU, or
//! the generated f32x4 tile. See docs/backend.md.

pub mod codegen;
mod error;
mod legalize;
mod lower;
mod model;
mod plan;
pub mod ukernel;

pub use error::JitError;
pub use model::CompiledModel;

use kiln_ir::{Graph, NodeId, ParamStore, Value};
use std::time::Instant;

/// Which matmul tile the generated code calls.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub enum Ukernels {
    /// The best `std::arch` microkernel for this CPU.
    #[default]
    Auto,
    /// The Cranelift-generated f32x4 tile everywhere (the portable path).
    Off,
    /// One ISA's microkernel; compiling fails with `JitError::IsaUnavailable`
    /// if this CPU lacks it. For testing and benchmarking each path.
    Force(ukernel::Isa),
}

impl std::str::FromStr for Ukernels {
    type Err = JitError;
    /// `auto`, `off`, or an ISA name (`avx512`, `avx2`, `neon`, `scalar`, `cranelift`).
    fn from_str(s: &str) -> Result<Ukernels, JitError> {
        match s.to_ascii_lowercase().as_str() {
            "auto" => Ok(Ukernels::Auto),
            "off" => Ok(Ukernels::Off),
            other => other.parse().map(Ukernels::Force),
        }
    }
}

impl std::fmt::Display for Ukernels {
    /// The name `from_str` reads back.
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Ukernels::Auto => f.write_str("auto"),
            Ukernels::Off => f.write_str("off"),
            Ukernels::Force(isa) => write!(f, "{isa}"),
        }
    }
}

impl Ukernels {
    /// The tile this choice stands for on this CPU.
    pub fn kernel(self) -> Result<ukernel::Microkernel, JitError> {
        match self {
            Ukernels::Auto => Ok(ukernel::best()),
            Ukernels::Off => ukernel::kernel(ukernel::Isa::Cranelift),
            Ukernels::Force(isa) => ukernel::kernel(isa),
        }
    }
}

/// Compile options.
#[derive(Clone, Debug)]
pub struct Options {
    /// Worker threads; 0 = one per core.
    pub threads: usize,
    pub ukernels: Ukernels,
    /// Bounds-check every load and store of the generated code; a violation
    /// makes `run` return `JitError::OutOfBounds` instead of touching memory.
    pub checked: bool,
    /// Run with subnormal floats flushed to zero (x86-64 MXCSR FTZ and DAZ,
    /// set on the model's workers and, for the length of a run, on the calling
    /// thread). Subnormal operands slow FMAs by an order of magnitude on many
    /// CPUs; flushing changes results only below 1.2e-38 in magnitude.
    /// TensorFlow and OpenVINO flush by default; on by default here. Ignored
    /// on other architectures.
    pub flush_denormals: bool,
}

impl Default for Options {
    fn default() -> Self {
        Options {
            threads: 0,
            ukernels: Ukernels::Auto,
            checked: false,
            flush_denormals: true,
        }
    }
}

/// Compiles `g` with weights `params`.
pub fn compile(g: &Graph, params: &ParamStore, opts: &Options) -> Result<CompiledModel, JitError> {
    compile_inner(g, params, opts, None)
}

/// Test hook: like `compile`, but the kernels of `fault` store past the arena.
/// Only meaningful with `checked: true` (which must catch it).
#[doc(hidden)]
pub fn compile_with_fault(
    g: &Graph,
    params: &ParamStore,
    opts: &Options,
    fault: NodeId,
) -> Result<CompiledModel, JitError> {
    if !opts.checked {
        return Err(JitError::Unsupported(
            "fault injection needs checked mode".into(),
        ));
    }
    compile_inner(g, params, opts, Some(fault))
}

fn compile_inner(
    g: &Graph,
    params: &ParamStore,
    opts: &Options,
    fault: Option<NodeId>,
) -> Result<CompiledModel, JitError> {
    let started = Instant::now();
    kiln_ir::verify(g).map_err(|e| JitError::InvalidGraph(e.to_string()))?;
    kiln_ir::verify_params(g, params).map_err(|e| JitError::InvalidGraph(e.to_string()))?;
    for id in g.node_ids() {
        if g.node(id).is_some_and(|n| n.outputs.len() != 1) {
            return Err(JitError::Unsupported(format!(
                "{}: ops with several outputs",
                g.describe(id)
            )));
        }
    }
    let (legal, legal_params) = legalize::legalize(g, params)?;
    let (g, params) = (&legal, &legal_params);
    let order = g
        .topo_order()
        .map_err(|n| JitError::InvalidGraph(format!("cycle through {}", g.describe(n))))?;
    let plan = plan::plan(g, order);
    let uk = opts.ukernels.kernel()?;
    let mut jit = codegen::Jit::new(uk, opts.checked)?;
    let tile_name = jit.tile.name;
    let mut low = lower::lower(g, params, &plan, &mut jit, fault)?;
    let inputs = g
        .inputs()
        .iter()
        .map(|(id, name, _)| {
            let (ty, loc) = lower::io_loc(
                g,
                params,
                &plan,
                &mut low.consts,
                Value { node: *id, port: 0 },
            );
            (name.to_string(), ty, loc)
        })
        .collect();
    let outputs = g
        .outputs()
        .iter()
        .map(|v| lower::io_loc(g, params, &plan, &mut low.consts, *v))
        .collect();
    let (module, fns) = jit.finish()?;
    let threads = if opts.threads == 0 {
        std::thread::available_parallelism().map_or(1, |n| n.get())
    } else {
        opts.threads
    };
    let ftz = opts.flush_denormals;
    let pool = rayon::ThreadPoolBuilder::new()
        .num_threads(threads)
        .thread_name(|i| format!("kiln-jit-{i}"))
        .start_handler(move |_| {
            if ftz {
                model::flush_denormals_on_this_thread();
            }
        })
        .build()
        .map_err(|e| JitError::ThreadPool(e.to_string()))?;
    // multiply-adds of every node of the compiled (legalized) graph, by label
    let node_macs: Vec<(String, u64)> = kiln_ir::cost::cost(g)
        .nodes
        .iter()
        .map(|(id, c)| (g.describe(*id), c.macs))
        .collect();
    let launches = low
        .steps
        .iter()
        .map(|s| model::Launch {
            f: fns[s.kernel],
            tiles: s.tiles,
            node: s.node.clone(),
        })
        .collect();
    Ok(CompiledModel {
        launches,
        node_macs,
        consts: {
            let mut c = low.consts;
            c.resize(c.len() + plan::READ_SLACK, 0.0);
            c
        },
        arena_len: plan.arena_len,
        scratch_len: low.scratch,
        inputs,
        outputs,
        pool,
        threads,
        compile_time: started.elapsed(),
        tile_name,
        buffers: std::sync::Mutex::new(Vec::new()),
        flush_denormals: ftz,
        _code: model::Code(Some(module)),
    })
}

/// GFLOP/s of one core running the chosen tile (`Auto`: the best microkernel;
/// `Off`: the generated f32x4 tile) on cache-resident packed operands, K = 256,
/// best of repeated batches over ~0.2 s; 0 if that tile is not available here.
pub fn measure_peak_gflops(u: Ukernels) -> f64 {
    match u.kernel() {
        Ok(uk) => ukernel::measure_gflops(&uk, std::time::Duration::from_millis(200)),
        Err(_) => 0.0,
    }
}
