//! Residual fusion: `relu(add(conv(x), shortcut))` becomes one conv whose
//! epilogue adds the shortcut and applies the ReLU while the output tile is
//! in cache; `relu(conv(x))` becomes a conv with a ReLU epilogue.

use super::single_use;
use crate::pass::{Context, Pass, PassError, Report};
use kiln_ir::ops::Epilogue;
use kiln_ir::{Graph, NodeId, Op, Value};

/// Fuses, in this order: every `add` one of whose operands is a conv2d
/// without an epilogue that nothing else reads (the other operand becomes
/// the shortcut, the conv's last operand), together with a following `relu`
/// that is the add's only user; then every `relu` of such a conv. The fused
/// conv computes exactly what the unfused ops did, in the same order.
pub struct FuseResidual;

/// A conv operand of `v`'s producer that can take an epilogue.
fn fusable_conv(g: &Graph, v: Value) -> bool {
    matches!(g.op(v.node), Op::Conv2d(c) if c.epilogue.is_empty()) && single_use(g, v)
}

/// The only use of `v`, if it is a relu and `v` is not an output.
fn sole_relu_user(g: &Graph, v: Value) -> Option<NodeId> {
    if !single_use(g, v) {
        return None;
    }
    let user = g.value_uses(v).first()?.user;
    matches!(g.op(user), Op::Relu(_)).then_some(user)
}

/// Replaces the conv producing `conv` by one with `epilogue` (and `residual`
/// appended to its operands), and makes `last` (the add or relu it absorbs)
/// read from it.
fn fuse(g: &mut Graph, conv: Value, epilogue: Epilogue, residual: Option<Value>, absorbed: &[NodeId]) {
    let Op::Conv2d(mut c) = g.op(conv.node).clone() else { unreachable!("checked by the caller") };
    c.epilogue = epilogue;
    let mut operands = g.operands(conv.node);
    operands.extend(residual);
    let outputs = g.node(conv.node).expect("live").outputs.clone();
    let fused = g.add_node_unchecked(Op::Conv2d(c), &operands, outputs);
    let last = *absorbed.last().expect("at least one op absorbed");
    g.replace_all_uses(Value { node: last, port: 0 }, fused.into());
    for &id in absorbed.iter().rev() {
        g.remove_node(id);
    }
    g.remove_node(conv.node);
}

impl Pass for FuseResidual {
    fn name(&self) -> &str {
        "fuse-residual"
    }

    fn run(&self, g: &mut Graph, _cx: &mut Context) -> Result<Report, PassError> {
        let mut report = Report::new();
        let adds: Vec<NodeId> = g.node_ids().filter(|&id| matches!(g.op(id), Op::Add(_))).collect();
        for add in adds {
            let described = g.describe(add);
            let operands = g.operands(add);
            // Prefer the second operand: in ResNets the main branch is written first,
            // but either order computes the same sum.
            let Some(slot) = [0, 1].into_iter().find(|&s| fusable_conv(g, operands[s])) else {
                report.left(described, "neither operand is a conv without epilogue that only this add reads");
                continue;
            };
            let (conv, shortcut) = (operands[slot], operands[1 - slot]);
            let relu = sole_relu_user(g, Value { node: add, port: 0 });
            let epilogue = Epilogue { residual: true, relu: relu.is_some() };
            let mut absorbed = vec![add];
            absorbed.extend(relu);
            fuse(g, conv, epilogue, Some(shortcut), &absorbed);
            report.changed(described, if relu.is_some() { "conv + add + relu" } else { "conv + add" });
            report.count("fused", "residual add");
        }
        let relus: Vec<NodeId> = g.node_ids().filter(|&id| matches!(g.op(id), Op::Relu(_))).collect();
        for relu in relus {
            let x = g.operands(relu)[0];
            if !fusable_conv(g, x) {
                continue;
            }
            let described = g.describe(relu);
            fuse(g, x, Epilogue { residual: false, relu: true }, None, &[relu]);
            report.changed(described, "conv + relu");
            report.count("fused", "relu");
        }
        Ok(report)
    }
}
