//! Canonicalization: identities removed so other passes see plain patterns.

use crate::pass::{Context, Pass, PassError, Report};
use kiln_ir::{Graph, Op, Value};

/// Removes ops that compute their input unchanged: inference dropout, a
/// reshape or flatten to the same shape, an all-zero pad, a slice that keeps
/// a whole axis, a concat of one operand. Their uses read the input instead.
pub struct Canonicalize;

fn is_identity(g: &Graph, id: kiln_ir::NodeId) -> Option<&'static str> {
    let node = g.node(id)?;
    let operands = g.operands(id);
    let input = g.value_type(*operands.first()?)?;
    let same_shape = node.outputs.len() == 1 && node.outputs[0] == *input;
    match &node.op {
        Op::Dropout(_) => Some("dropout is the identity at inference"),
        Op::Reshape(_) | Op::Flatten(_) if same_shape => Some("reshape to the same shape"),
        Op::Pad(p) if p.pads.iter().all(|&x| x == 0) => Some("pad by zero"),
        Op::Slice(s) if s.start == 0 && s.step == 1 && s.end == input.shape[s.axis] => {
            Some("slice of a whole axis")
        }
        Op::Concat(_) if operands.len() == 1 => Some("concat of one operand"),
        _ => None,
    }
}

impl Pass for Canonicalize {
    fn name(&self) -> &str {
        "canonicalize"
    }

    fn run(&self, g: &mut Graph, _cx: &mut Context) -> Result<Report, PassError> {
        let mut report = Report::new();
        let ids: Vec<_> = g.node_ids().collect();
        for id in ids {
            let Some(why) = is_identity(g, id) else {
                continue;
            };
            let input = g.operands(id)[0];
            let described = g.describe(id);
            g.replace_all_uses(Value { node: id, port: 0 }, input);
            g.remove_node(id);
            report.changed(described, why);
            report.count("removed", "identity");
        }
        Ok(report)
    }
}
