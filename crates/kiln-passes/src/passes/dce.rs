//! Dead code elimination.

use crate::pass::{Context, Pass, PassError, Report};
use kiln_ir::{Graph, NodeId};
use std::collections::HashSet;

/// Removes every node that no graph output depends on. Inputs are kept (they
/// are the graph's interface); dead parameters leave the weights too.
pub struct Dce;

impl Pass for Dce {
    fn name(&self) -> &str {
        "dce"
    }

    fn run(&self, g: &mut Graph, cx: &mut Context) -> Result<Report, PassError> {
        let mut live: HashSet<NodeId> = HashSet::new();
        let mut stack: Vec<NodeId> = g.outputs().iter().map(|v| v.node).collect();
        while let Some(id) = stack.pop() {
            if live.insert(id) {
                stack.extend(g.operands(id).iter().map(|v| v.node));
            }
        }
        let dead: Vec<NodeId> = g
            .node_ids()
            .filter(|id| !live.contains(id) && g.op(*id).input_name().is_none())
            .collect();
        let mut report = Report::new();
        for id in dead {
            if let Some(name) = g.op(id).param_name() {
                let name = name.to_string();
                cx.params.remove(&name);
                report.count("removed", "parameter");
            } else {
                report.count("removed", "node");
            }
            g.remove_node(id);
            report.mark_changed();
        }
        Ok(report)
    }
}
