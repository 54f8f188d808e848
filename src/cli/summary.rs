use super::{prepare, write_output, CliError, ModelArgs};
use kiln_ir::cost::{cost, grouped, si};
use serde_json::json;
use std::collections::BTreeMap;

#[derive(Debug, clap::Args)]
pub struct SummaryArgs {
    #[command(flatten)]
    pub model: ModelArgs,
    /// Print one JSON object: totals at the top level (`params`, `macs`,
    /// `nodes`, `activation_bytes`), op counts under `ops`, and every node.
    #[arg(long)]
    pub json: bool,
}

pub fn summary(args: SummaryArgs) -> Result<(), CliError> {
    let p = prepare(&args.model)?;
    let mut out = String::new();
    let g = &p.graph;
    let c = cost(g);
    let mut ops: BTreeMap<&str, usize> = BTreeMap::new();
    for id in g.node_ids() {
        *ops.entry(g.op(id).kind()).or_default() += 1;
    }
    let describe = |id| g.describe(id);
    let shape = |id| {
        g.node(id)
            .map(|n| {
                n.outputs
                    .iter()
                    .map(|t| t.to_string())
                    .collect::<Vec<_>>()
                    .join(", ")
            })
            .unwrap_or_default()
    };
    if args.json {
        let nodes: Vec<_> = c
            .nodes
            .iter()
            .map(|(id, nc)| {
                json!({
                    "node": describe(*id),
                    "op": g.op(*id).kind(),
                    "output": shape(*id),
                    "params": nc.params,
                    "macs": nc.macs,
                })
            })
            .collect();
        let doc = json!({
            "model": args.model.model,
            "params": c.params,
            "macs": c.macs,
            "nodes": g.node_count(),
            "activation_bytes": c.activation_bytes,
            "ops": ops,
            "layers": nodes,
        });
        say!(
            out,
            "{}",
            serde_json::to_string_pretty(&doc).expect("JSON of plain values")
        );
        return write_output(None, &out);
    }
    let width = c
        .nodes
        .iter()
        .map(|(id, _)| describe(*id).len())
        .max()
        .unwrap_or(4)
        .max(4);
    say!(
        out,
        "{:<width$}  {:<22}  {:>12}  {:>14}",
        "node",
        "output",
        "params",
        "MACs"
    );
    for (id, nc) in &c.nodes {
        say!(
            out,
            "{:<width$}  {:<22}  {:>12}  {:>14}",
            describe(*id),
            shape(*id),
            if nc.params > 0 {
                grouped(nc.params)
            } else {
                String::new()
            },
            if nc.macs > 0 {
                grouped(nc.macs)
            } else {
                String::new()
            },
        );
    }
    say!(out, "");
    say!(out, "nodes   {}", g.node_count());
    say!(out, "params  {} ({})", grouped(c.params), si(c.params));
    say!(out, "MACs    {} ({})", grouped(c.macs), si(c.macs));
    say!(out, "activations {} bytes", grouped(c.activation_bytes));
    let counts: Vec<String> = ops.iter().map(|(k, n)| format!("{k} {n}")).collect();
    say!(out, "ops     {}", counts.join(", "));
    write_output(None, &out)
}
