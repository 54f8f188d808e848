//! BatchNorm folding: `bn(conv(x, W, b))` with running statistics is
//! `conv(x, W * s, (b - mean) * s + beta)` with `s = gamma / sqrt(var + eps)`,
//! per output channel; the same for dense layers.

use super::{fresh_name, param, param_name, single_use};
use crate::pass::{Context, Pass, PassError, Report};
use kiln_ir::ops::BatchNorm;
use kiln_ir::{Graph, NodeId, Op, Tensor, TensorType, Value};

/// Folds every inference BatchNorm whose input is a conv2d (without an
/// epilogue) or a dense layer that nothing else reads. The folded weights get
/// new names (`<weight>.folded`, `<bias>.folded` or `<weight>.folded_bias`),
/// so a weight another node reads is never changed. BatchNorms it cannot fold
/// are reported with the reason (training mode, no conv or dense before it as
/// in pre-activation blocks, the producer has other users).
pub struct FoldBn;

impl Pass for FoldBn {
    fn name(&self) -> &str {
        "fold-bn"
    }

    fn run(&self, g: &mut Graph, cx: &mut Context) -> Result<Report, PassError> {
        let mut report = Report::new();
        let bns: Vec<NodeId> = g.node_ids().filter(|&id| matches!(g.op(id), Op::BatchNorm(_))).collect();
        for bn in bns {
            let described = g.describe(bn);
            match fold_one(g, cx, bn)? {
                Ok(message) => {
                    report.changed(described, message);
                    report.count("folded", "batch norm");
                }
                Err(reason) => {
                    report.left(described, reason);
                }
            }
        }
        Ok(report)
    }
}

/// The producer a BatchNorm can fold into.
enum Producer {
    Conv,
    Dense,
}

/// Folds one BatchNorm: `Ok(Ok(message))` if folded, `Ok(Err(reason))` if left.
fn fold_one(g: &mut Graph, cx: &mut Context, bn: NodeId) -> Result<Result<String, String>, PassError> {
    let Op::BatchNorm(BatchNorm { eps, training, .. }) = g.op(bn).clone() else { unreachable!("filtered above") };
    if training {
        return Ok(Err("training mode: it normalises with batch statistics".into()));
    }
    let operands = g.operands(bn);
    let x = operands[0];
    let producer = g.op(x.node).clone();
    let kind = match &producer {
        Op::Conv2d(c) if c.epilogue.is_empty() => Producer::Conv,
        Op::Conv2d(_) => return Ok(Err("the conv before it has a fused epilogue (run fold-bn before fuse-residual)".into())),
        Op::Dense(_) => Producer::Dense,
        other => return Ok(Err(format!("its input comes from {}, not from a conv or dense layer", other.kind()))),
    };
    if !single_use(g, x) {
        return Ok(Err("the layer before it has other users, which need its unnormalised output".into()));
    }
    let stats: Vec<Option<&str>> = operands[1..].iter().map(|v| param_name(g, *v)).collect();
    let [Some(gamma), Some(beta), Some(mean), Some(var)] = stats[..] else {
        return Ok(Err("its scale, shift or statistics are computed, not parameters".into()));
    };
    let layer_ops = g.operands(x.node);
    let Some(w_name) = param_name(g, layer_ops[1]) else {
        return Ok(Err("the layer's weight is computed, not a parameter".into()));
    };
    let has_bias = match &producer {
        Op::Conv2d(c) => c.bias,
        Op::Dense(d) => d.bias,
        _ => false,
    };
    let b_name = if has_bias {
        match param_name(g, layer_ops[2]) {
            Some(n) => Some(n.to_string()),
            None => return Ok(Err("the layer's bias is computed, not a parameter".into())),
        }
    } else {
        None
    };
    let (gamma, beta, mean, var) =
        (param(cx, g, gamma, bn)?, param(cx, g, beta, bn)?, param(cx, g, mean, bn)?, param(cx, g, var, bn)?);
    let w = param(cx, g, w_name, x.node)?;
    let channels = gamma.len();
    let scale: Vec<f64> =
        (0..channels).map(|c| gamma.data[c] as f64 / (var.data[c] as f64 + eps as f64).sqrt()).collect();
    let per_channel = w.len() / channels;
    let weight = Tensor {
        shape: w.shape.clone(),
        data: w.data.iter().enumerate().map(|(i, &v)| (v as f64 * scale[i / per_channel]) as f32).collect(),
    };
    let old_bias: Vec<f64> = match &b_name {
        Some(n) => param(cx, g, n, x.node)?.data.iter().map(|&v| v as f64).collect(),
        None => vec![0.0; channels],
    };
    let bias = Tensor {
        shape: vec![channels],
        data: (0..channels)
            .map(|c| ((old_bias[c] - mean.data[c] as f64) * scale[c] + beta.data[c] as f64) as f32)
            .collect(),
    };
    let w_new = fresh_name(g, cx, &format!("{w_name}.folded"));
    let b_new = match &b_name {
        Some(n) => fresh_name(g, cx, &format!("{n}.folded")),
        None => fresh_name(g, cx, &format!("{w_name}.folded_bias")),
    };
    let w_shape = weight.shape.clone();
    cx.params.insert(w_new.clone(), weight);
    cx.params.insert(b_new.clone(), bias);
    let wv = g.add_param(w_new.clone(), TensorType::f32(w_shape));
    let bv = g.add_param(b_new.clone(), TensorType::f32([channels]));
    let new_op = match producer {
        Op::Conv2d(mut c) => {
            c.bias = true;
            Op::Conv2d(c)
        }
        Op::Dense(mut d) => {
            d.bias = true;
            Op::Dense(d)
        }
        _ => unreachable!("checked above"),
    };
    let outputs = g.node(x.node).expect("live").outputs.clone();
    let folded = g.add_node_unchecked(new_op, &[layer_ops[0], wv, bv], outputs);
    g.replace_all_uses(Value { node: bn, port: 0 }, folded.into());
    g.remove_node(bn);
    g.remove_node(x.node);
    let what = match kind {
        Producer::Conv => "conv",
        Producer::Dense => "dense layer",
    };
    Ok(Ok(format!("into the {what} before it, as @{w_new} and @{b_new}")))
}
