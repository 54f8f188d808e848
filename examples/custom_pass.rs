//! A complete pass written outside `kiln-passes`, registered by name next to
//! the built-in ones and run by the pass manager (docs/writing-a-pass.md walks
//! through it).
//!
//! `relu-after-pool` rewrites `max_pool(relu(x))` into `relu(max_pool(x))`.
//! ReLU is monotone, so it commutes with taking a maximum, and every pooling
//! window holds at least one element of `x` (the verifier keeps each padding
//! below the kernel size), so the two are equal, bit for bit. With a strided
//! pool the ReLU then runs on a quarter as many elements. Option:
//! `min_stride` (default 2): only pools whose strides multiply to at least
//! this are rewritten.
//!
//! Run with `cargo run --example custom_pass`.

use kiln_ir::ops::Relu;
use kiln_ir::{Graph, NodeId, Op, Tensor};
use kiln_passes::{
    Context, OptionDoc, Options, Pass, PassError, PassManager, PipelineError, Registry, Report,
};

/// The pass: its options, and nothing else (a pass keeps no state between runs).
struct ReluAfterPool {
    min_stride: usize,
}

impl ReluAfterPool {
    /// The factory the registry calls with the options of a pipeline entry.
    fn from_options(o: &mut Options) -> Result<Box<dyn Pass>, PipelineError> {
        let min_stride: usize = o.get_or("min_stride", 2)?;
        if min_stride == 0 {
            return Err(o.error_at("min_stride", "min_stride must be at least 1"));
        }
        Ok(Box::new(ReluAfterPool { min_stride }))
    }

    /// Rewrites one max pool, or says why not. Guards first, one condition a
    /// line; the graph is only touched once they all pass.
    fn rewrite(&self, g: &mut Graph, pool: NodeId) -> Result<String, PassError> {
        let Op::MaxPool(attrs) = g.op(pool).clone() else {
            unreachable!("the caller picks max pools")
        };
        let relu = g.operands(pool)[0];
        let input = g.operands(relu.node)[0];
        // A new pool reads the ReLU's input, and a new ReLU reads the pool. A
        // node that does not type-check would be a bug in this pass: say where.
        let at = g.describe(pool);
        let bug = |source| PassError::Rewrite {
            node: at.clone(),
            source,
        };
        let pooled = g.add(attrs, &[input]).map_err(bug)?;
        let new_relu = g.add(Relu {}, &[pooled]).map_err(bug)?;
        let before = g.value_type(relu).expect("live value").elements();
        let after = g.value_type(pooled).expect("live value").elements();
        g.replace_all_uses(pool.into(), new_relu);
        g.remove_node(pool);
        g.remove_node(relu.node);
        Ok(format!(
            "relu moved after the pool: {before} -> {after} elements"
        ))
    }

    /// Why the pool cannot be rewritten, or `None` if it can.
    fn refusal(&self, g: &Graph, pool: NodeId) -> Option<&'static str> {
        let Op::MaxPool(attrs) = g.op(pool) else {
            return Some("not a max pool");
        };
        let x = g.operands(pool)[0];
        if !matches!(g.op(x.node), Op::Relu(_)) {
            return Some("its input is not a relu");
        }
        if attrs.stride[0] * attrs.stride[1] < self.min_stride {
            return Some(
                "its stride is below min_stride: the relu would not run on fewer elements",
            );
        }
        if g.use_count(x) != 1 {
            return Some("the relu has other users, which need it where it is");
        }
        None
    }
}

impl Pass for ReluAfterPool {
    fn name(&self) -> &str {
        "relu-after-pool"
    }

    /// Printed back in pipelines (`PassManager::pipeline`, `kiln opt --stats`).
    fn options(&self) -> String {
        format!("min_stride={}", self.min_stride)
    }

    fn run(&self, g: &mut Graph, _cx: &mut Context) -> Result<Report, PassError> {
        let mut report = Report::new();
        let pools: Vec<NodeId> = g
            .node_ids()
            .filter(|&id| matches!(g.op(id), Op::MaxPool(_)))
            .collect();
        for pool in pools {
            let described = g.describe(pool);
            match self.refusal(g, pool) {
                // Pools that do not follow a relu are not this pass's business: no noise.
                Some("its input is not a relu") => {}
                Some(reason) => {
                    report.left(described, reason);
                }
                None => {
                    let message = self.rewrite(g, pool)?;
                    report.changed(described, message);
                    report.count("moved", "relu");
                }
            }
        }
        Ok(report)
    }
}

fn main() -> Result<(), Box<dyn std::error::Error>> {
    // Register the pass beside the built-in ones.
    let mut registry = Registry::builtin();
    registry.register_with_options(
        "relu-after-pool",
        "moves a relu after the max pool that reads it (exact), so it runs on fewer elements",
        vec![OptionDoc::new(
            "min_stride",
            "2",
            "only pools whose strides multiply to at least this",
        )],
        ReluAfterPool::from_options,
    )?;
    for line in registry
        .help()
        .lines()
        .filter(|l| l.contains("relu-after-pool") || l.contains("min_stride"))
    {
        println!("{line}");
    }

    // A bad option is refused when the pipeline is parsed, naming the column.
    if let Err(e) = PassManager::parse("dce,relu-after-pool{min_stride=0}", &registry) {
        println!("refused: {e}");
    }

    // GoogLeNet's stem has conv -> BN -> ReLU -> max pool twice.
    let name = "googlenet";
    let config = kiln_models::Config::default_for(name)?.with_input(64);
    let graph = kiln_models::build(name, &config)?;
    let mut weights = kiln_models::init_params(&graph, 1);
    kiln_models::randomize_bn_stats(&graph, &mut weights, 2);

    let mut optimized = graph.clone();
    let mut cx = Context::new(weights.clone());
    let mut pm = PassManager::parse("fold-bn,relu-after-pool,dce", &registry)?;
    let run = pm.run(&mut optimized, &mut cx)?; // verified after every pass
    println!("{}", pm.pipeline());
    print!("{run}");
    for detail in &run
        .get("relu-after-pool")
        .expect("in the pipeline")
        .report
        .details
    {
        println!("  {:?} {}: {}", detail.outcome, detail.node, detail.message);
    }

    // The interpreter proves the rewrite kept the meaning.
    let (_, input_name, ty) = graph.inputs()[0];
    let data = (0..ty.elements())
        .map(|i| ((i * 7919) % 1999) as f32 / 1999.0 - 0.5)
        .collect();
    let x = [(
        input_name,
        Tensor {
            shape: ty.shape.clone(),
            data,
        },
    )];
    let before = kiln_interp::run(&graph, &weights, &x)?;
    let after = kiln_interp::run(&optimized, &cx.params, &x)?;
    let diff = before[0].max_abs_diff(&after[0]).expect("same shape") / before[0].max_abs();
    println!("output relative difference after the pipeline: {diff:e}");
    assert!(diff < 1e-5, "the pipeline changed the output by {diff:e}");
    Ok(())
}
