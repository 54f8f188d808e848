//! Residual fusion: `relu(add(conv(x), shortcut))` becomes one conv whose
//! epilogue adds the shortcut and applies the ReLU while the output tile is
//! in cache; `relu(conv(x))` becomes a conv with a ReLU epilogue.

use super::single_use;
use crate::pass::{Context, Pass, PassError, Report};
use kiln_ir::ops::{Conv2d, Epilogue};
use kiln_ir::{Graph, NodeId, Op, Value};

/// Fuses, in this order:
/// 1. every `add` with a conv2d operand that has no epilogue and that only
///    this add reads: the other operand becomes the shortcut (the conv's
///    last operand), and a `relu` that is the add's only user joins the
///    epilogue. When both operands qualify (a projection shortcut), the
///    first is fused and the second stays the shortcut.
/// 2. every `relu` whose operand is a conv2d without a ReLU in its epilogue
///    that only this relu reads (a conv that already adds a residual keeps
///    it: the epilogue adds, then applies the ReLU).
///
/// The fused conv computes what the ops did, in the same order (sum, bias,
/// shortcut, ReLU), and f32 addition commutes, so the result is bitwise the
/// same. An add it cannot fuse is reported with the reason.
#[derive(Clone, Copy, Debug, Default)]
pub struct FuseResidual;

/// Why the conv producing `v` cannot take an epilogue, or `None` if it can.
fn refuse_conv(g: &Graph, v: Value) -> Option<&'static str> {
    let Op::Conv2d(c) = g.op(v.node) else {
        return Some("is not a conv");
    };
    if !c.epilogue.is_empty() {
        return Some("is a conv that already has an epilogue");
    }
    if !single_use(g, v) {
        return Some("is a conv whose output has other users");
    }
    None
}

/// The only user of `v`, if it is a relu and `v` is not a graph output.
fn sole_relu_user(g: &Graph, v: Value) -> Option<NodeId> {
    if !single_use(g, v) {
        return None;
    }
    let user = g.value_uses(v).first()?.user;
    matches!(g.op(user), Op::Relu(_)).then_some(user)
}

/// Replaces the conv producing `conv` by one with `epilogue` (and `residual`
/// appended to its operands); the last node of `absorbed` (the add or relu
/// it takes in) hands its uses to the new conv, and all of them go.
fn fuse(
    g: &mut Graph,
    conv: Value,
    epilogue: Epilogue,
    residual: Option<Value>,
    absorbed: &[NodeId],
) {
    let Op::Conv2d(c) = g.op(conv.node).clone() else {
        unreachable!("callers check for a conv")
    };
    let mut operands = g.operands(conv.node);
    operands.extend(residual);
    let outputs = g.node(conv.node).expect("live node").outputs.clone();
    let fused = g.add_node_unchecked(Op::Conv2d(Conv2d { epilogue, ..c }), &operands, outputs);
    let last = *absorbed.last().expect("at least one op absorbed");
    g.replace_all_uses(last.into(), fused.into());
    for &id in absorbed.iter().rev() {
        g.remove_node(id);
    }
    g.remove_node(conv.node);
}

/// Fuses one add, or says why not.
fn fuse_add(g: &mut Graph, add: NodeId) -> Result<&'static str, String> {
    let operands = g.operands(add);
    let reasons: Vec<&str> = operands
        .iter()
        .map(|&v| refuse_conv(g, v).unwrap_or(""))
        .collect();
    let Some(slot) = reasons.iter().position(|r| r.is_empty()) else {
        return Err(format!(
            "neither operand can take the add: the first {}, the second {}",
            reasons[0], reasons[1]
        ));
    };
    let (conv, shortcut) = (operands[slot], operands[1 - slot]);
    let relu = sole_relu_user(g, add.into());
    let mut absorbed = vec![add];
    absorbed.extend(relu);
    fuse(
        g,
        conv,
        Epilogue {
            residual: true,
            relu: relu.is_some(),
        },
        Some(shortcut),
        &absorbed,
    );
    Ok(if relu.is_some() {
        "conv + add + relu into one conv"
    } else {
        "conv + add into one conv"
    })
}

/// Fuses one relu into the conv before it; `false` when that is not a
/// conv that can take it (nothing to report: most relus follow other ops).
fn fuse_relu(g: &mut Graph, relu: NodeId) -> bool {
    let x = g.operands(relu)[0];
    let Op::Conv2d(c) = g.op(x.node) else {
        return false;
    };
    if c.epilogue.relu {
        return false;
    }
    if !single_use(g, x) {
        return false;
    }
    // A conv that already adds a residual keeps it (the ReLU comes after
    // the add in the epilogue, as in the graph).
    let epilogue = Epilogue {
        relu: true,
        ..c.epilogue
    };
    fuse(g, x, epilogue, None, &[relu]);
    true
}

impl Pass for FuseResidual {
    fn name(&self) -> &str {
        "fuse-residual"
    }

    fn run(&self, g: &mut Graph, _cx: &mut Context) -> Result<Report, PassError> {
        let mut report = Report::new();
        let adds: Vec<NodeId> = g
            .node_ids()
            .filter(|&id| matches!(g.op(id), Op::Add(_)))
            .collect();
        for add in adds {
            let described = g.describe(add);
            match fuse_add(g, add) {
                Ok(message) => {
                    report.changed(described, message);
                    report.count("fused", "residual add");
                }
                Err(reason) => {
                    report.left(described, reason);
                }
            }
        }
        let relus: Vec<NodeId> = g
            .node_ids()
            .filter(|&id| matches!(g.op(id), Op::Relu(_)))
            .collect();
        for relu in relus {
            let described = g.describe(relu);
            if fuse_relu(g, relu) {
                report.changed(described, "conv + relu into one conv");
                report.count("fused", "relu");
            }
        }
        Ok(report)
    }
}
