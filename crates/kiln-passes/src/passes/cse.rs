//! Common subexpression elimination.

use crate::pass::{Context, Pass, PassError, Report};
use kiln_ir::{Graph, Value};
use std::collections::HashMap;

/// Merges nodes that apply the same op (same attributes) to the same
/// operands: the later one's uses move to the earlier one. Sources (inputs,
/// parameters) are never merged: they are distinct by name.
pub struct Cse;

impl Pass for Cse {
    fn name(&self) -> &str {
        "cse"
    }

    fn run(&self, g: &mut Graph, _cx: &mut Context) -> Result<Report, PassError> {
        let order = g.topo_order().map_err(|id| {
            PassError::Custom(format!("{}: the graph has a cycle", g.describe(id)))
        })?;
        let mut seen: HashMap<(String, Vec<Value>), kiln_ir::NodeId> = HashMap::new();
        let mut report = Report::new();
        for id in order {
            let node = g.node(id).expect("live node");
            if node.op.def().is_source() {
                continue;
            }
            let key = (
                serde_json::to_string(&node.op).expect("ops serialize"),
                g.operands(id),
            );
            match seen.get(&key) {
                Some(&first) if g.node(first).map(|n| &n.outputs) == Some(&node.outputs) => {
                    let described = g.describe(id);
                    for port in 0..node.outputs.len() as u32 {
                        g.replace_all_uses(Value { node: id, port }, Value { node: first, port });
                    }
                    g.remove_node(id);
                    report.changed(described, format!("same as {}", g.describe(first)));
                    report.count("merged", "node");
                }
                _ => {
                    seen.insert(key, id);
                }
            }
        }
        Ok(report)
    }
}
