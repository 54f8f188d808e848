//! BatchNorm folding: `bn(conv(x, W, b))` with running statistics is
//! `conv(x, W * s, (b - mean) * s + beta)` with `s = gamma / sqrt(var + eps)`,
//! per output channel; the same for dense layers.

use super::{fresh_name, param, param_name, single_use};
use crate::pass::{Context, Pass, PassError, Report};
use kiln_ir::ops::BatchNorm;
use kiln_ir::{Graph, NodeId, Op, Tensor, Value};

/// Folds every inference BatchNorm into a neighbouring linear layer, where
/// that is exact:
/// - after a conv2d (without an epilogue) or a dense layer that nothing else
///   reads: `W' = W * s` per output channel, `b' = (b - mean) * s + beta`;
/// - else before a conv2d or dense layer that is its only user (at the data
///   slot): `W' = W * s` per input channel, `b' = b + sum W * t`, with
///   `s = gamma / sqrt(var + eps)` and `t = beta - mean * s`. A padded conv
///   takes it only when every shift `t` is zero, since its zero padding
///   would otherwise meet `t` where the BN output had it.
/// The folded weights get new names (`<weight>.folded`, `<bias>.folded` or
/// `<weight>.folded_bias`), so a weight another node reads is never changed.
/// BatchNorms it cannot fold are reported with the reasons on both sides
/// (training mode; pre-activation blocks, where a ReLU stands between the BN
/// and the conv; a padded conv; a layer with other users).
pub struct FoldBn;

impl Pass for FoldBn {
    fn name(&self) -> &str {
        "fold-bn"
    }

    fn run(&self, g: &mut Graph, cx: &mut Context) -> Result<Report, PassError> {
        let mut report = Report::new();
        let bns: Vec<NodeId> = g
            .node_ids()
            .filter(|&id| matches!(g.op(id), Op::BatchNorm(_)))
            .collect();
        for bn in bns {
            let described = g.describe(bn);
            match fold_either_side(g, cx, bn)? {
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

/// Folds one BatchNorm into the layer before it, else into the one after it:
/// `Ok(Ok(message))` if folded, `Ok(Err(reason))` if left.
fn fold_either_side(
    g: &mut Graph,
    cx: &mut Context,
    bn: NodeId,
) -> Result<Result<String, String>, PassError> {
    let Op::BatchNorm(BatchNorm { training, .. }) = g.op(bn) else {
        unreachable!("filtered above")
    };
    if *training {
        return Ok(Err(
            "training mode: it normalises with batch statistics".into()
        ));
    }
    let before = match fold_one(g, cx, bn)? {
        Ok(message) => return Ok(Ok(message)),
        Err(reason) => reason,
    };
    let after = match fold_into_user(g, cx, bn)? {
        Ok(message) => return Ok(Ok(message)),
        Err(reason) => reason,
    };
    Ok(Err(format!(
        "not into the layer before it ({before}) nor the one after it ({after})"
    )))
}

/// Folds one inference BatchNorm into the layer that produces its input.
fn fold_one(
    g: &mut Graph,
    cx: &mut Context,
    bn: NodeId,
) -> Result<Result<String, String>, PassError> {
    let Op::BatchNorm(BatchNorm { eps, .. }) = g.op(bn).clone() else {
        unreachable!("filtered above")
    };
    let operands = g.operands(bn);
    let x = operands[0];
    let producer = g.op(x.node).clone();
    let kind = match &producer {
        Op::Conv2d(c) if c.epilogue.is_empty() => Producer::Conv,
        Op::Conv2d(_) => {
            return Ok(Err(
                "the conv before it has a fused epilogue (run fold-bn before fuse-residual)".into(),
            ))
        }
        Op::Dense(_) => Producer::Dense,
        other => {
            return Ok(Err(format!(
                "its input comes from {}, not from a conv or dense layer",
                other.kind()
            )))
        }
    };
    if !single_use(g, x) {
        return Ok(Err(
            "the layer before it has other users, which need its unnormalised output".into(),
        ));
    }
    let stats: Vec<Option<&str>> = operands[1..].iter().map(|v| param_name(g, *v)).collect();
    let [Some(gamma), Some(beta), Some(mean), Some(var)] = stats[..] else {
        return Ok(Err(
            "its scale, shift or statistics are computed, not parameters".into(),
        ));
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
    let (gamma, beta, mean, var) = (
        param(cx, g, gamma, bn)?,
        param(cx, g, beta, bn)?,
        param(cx, g, mean, bn)?,
        param(cx, g, var, bn)?,
    );
    let w = param(cx, g, w_name, x.node)?;
    let channels = gamma.len();
    let scale: Vec<f64> = (0..channels)
        .map(|c| gamma.data[c] as f64 / (var.data[c] as f64 + eps as f64).sqrt())
        .collect();
    let per_channel = w.len() / channels;
    let weight = Tensor {
        shape: w.shape.clone(),
        data: w
            .data
            .iter()
            .enumerate()
            .map(|(i, &v)| (v as f64 * scale[i / per_channel]) as f32)
            .collect(),
    };
    let old_bias: Vec<f64> = match &b_name {
        Some(n) => param(cx, g, n, x.node)?
            .data
            .iter()
            .map(|&v| v as f64)
            .collect(),
        None => vec![0.0; channels],
    };
    let bias = Tensor {
        shape: vec![channels],
        data: (0..channels)
            .map(|c| ((old_bias[c] - mean.data[c] as f64) * scale[c] + beta.data[c] as f64) as f32)
            .collect(),
    };
    let w_name = w_name.to_string();
    let (wv, bv, w_new, b_new) = store_folded(g, cx, &w_name, b_name.as_deref(), weight, bias);
    let outputs = g.node(x.node).expect("live").outputs.clone();
    let folded = g.add_node_unchecked(with_bias(producer), &[layer_ops[0], wv, bv], outputs);
    g.replace_all_uses(Value { node: bn, port: 0 }, folded.into());
    g.remove_node(bn);
    g.remove_node(x.node);
    let what = match kind {
        Producer::Conv => "conv",
        Producer::Dense => "dense layer",
    };
    Ok(Ok(format!(
        "into the {what} before it, as @{w_new} and @{b_new}"
    )))
}

/// `s = gamma / sqrt(var + eps)` and `t = beta - mean * s` of an inference
/// BatchNorm, or the reason they are not constants.
fn affine(
    g: &Graph,
    cx: &Context,
    bn: NodeId,
) -> Result<Result<(Vec<f64>, Vec<f64>), String>, PassError> {
    let Op::BatchNorm(BatchNorm { eps, .. }) = g.op(bn) else {
        unreachable!("callers pass a batch norm")
    };
    let eps = *eps as f64;
    let operands = g.operands(bn);
    let names: Vec<Option<&str>> = operands[1..].iter().map(|v| param_name(g, *v)).collect();
    let [Some(gamma), Some(beta), Some(mean), Some(var)] = names[..] else {
        return Ok(Err(
            "its scale, shift or statistics are computed, not parameters".into(),
        ));
    };
    let (gamma, beta, mean, var) = (
        param(cx, g, gamma, bn)?,
        param(cx, g, beta, bn)?,
        param(cx, g, mean, bn)?,
        param(cx, g, var, bn)?,
    );
    let s: Vec<f64> = gamma
        .data
        .iter()
        .zip(&var.data)
        .map(|(&ga, &v)| ga as f64 / (v as f64 + eps).sqrt())
        .collect();
    let t = beta
        .data
        .iter()
        .zip(&mean.data)
        .zip(&s)
        .map(|((&b, &m), &s)| b as f64 - m as f64 * s)
        .collect();
    Ok(Ok((s, t)))
}

/// Folds one inference BatchNorm into the conv or dense layer that is its
/// only user: `layer(s * x + t) = layer'(x)` with the input channels of the
/// weight scaled by `s` and `t` pushed through the weight into the bias.
fn fold_into_user(
    g: &mut Graph,
    cx: &mut Context,
    bn: NodeId,
) -> Result<Result<String, String>, PassError> {
    let out = Value { node: bn, port: 0 };
    if !single_use(g, out) {
        return Ok(Err(
            "after it, its output has other users or is a graph output".into(),
        ));
    }
    let user = g.value_uses(out)[0];
    let layer = g.op(user.user).clone();
    match &layer {
        Op::Relu(_) => {
            return Ok(Err(
                "a relu follows it, as in pre-activation blocks (BN -> ReLU -> conv): \
                           folding through the ReLU would not be exact"
                    .into(),
            ))
        }
        Op::Conv2d(_) | Op::Dense(_) => {}
        other => {
            return Ok(Err(format!(
                "its user is {}, not a conv or dense layer",
                other.kind()
            )))
        }
    }
    if user.slot != 0 {
        return Ok(Err(format!(
            "it feeds operand {} of the {}, not its input",
            user.slot,
            layer.kind()
        )));
    }
    let operands = g.operands(user.user);
    let Some(w_name) = param_name(g, operands[1]).map(str::to_string) else {
        return Ok(Err("the layer after it has a computed weight".into()));
    };
    let bias_slot = match &layer {
        Op::Conv2d(c) => c.bias_slot(),
        Op::Dense(d) => d.bias.then_some(2),
        _ => None,
    };
    let b_name = match bias_slot.map(|slot| param_name(g, operands[slot])) {
        None => None,
        Some(Some(n)) => Some(n.to_string()),
        Some(None) => return Ok(Err("the layer after it has a computed bias".into())),
    };
    let (s, t) = match affine(g, cx, bn)? {
        Ok(st) => st,
        Err(reason) => return Ok(Err(reason)),
    };
    if let Op::Conv2d(c) = &layer {
        if c.pad.iter().any(|&p| p > 0) && t.iter().any(|&t| t != 0.0) {
            return Ok(Err(format!(
                "the conv after it pads by {:?} and its shift is nonzero: the padded border would differ",
                c.pad
            )));
        }
    }
    let w = param(cx, g, &w_name, user.user)?;
    let cout = w.shape[0];
    // Input channels per group and output channels per group (1 group for dense).
    let groups = match &layer {
        Op::Conv2d(c) => c.groups,
        _ => 1,
    };
    let (cin_g, cout_g) = (w.shape[1], cout / groups);
    let taps: usize = w.shape[2..].iter().product();
    let mut weight = w.clone();
    let mut bias: Vec<f64> = match &b_name {
        Some(n) => param(cx, g, n, user.user)?
            .data
            .iter()
            .map(|&v| v as f64)
            .collect(),
        None => vec![0.0; cout],
    };
    for o in 0..cout {
        let first_channel = o / cout_g * cin_g;
        for ci in 0..cin_g {
            let channel = first_channel + ci;
            for k in 0..taps {
                let i = (o * cin_g + ci) * taps + k;
                bias[o] += w.data[i] as f64 * t[channel];
                weight.data[i] = (w.data[i] as f64 * s[channel]) as f32;
            }
        }
    }
    let bias = Tensor {
        shape: vec![cout],
        data: bias.iter().map(|&b| b as f32).collect(),
    };
    let (wv, bv, w_new, b_new) = store_folded(g, cx, &w_name, b_name.as_deref(), weight, bias);
    let mut new_operands = vec![g.operands(bn)[0], wv, bv];
    // The residual, if any, stays the last operand.
    if let Op::Conv2d(c) = &layer {
        new_operands.extend(c.residual_slot().map(|slot| operands[slot]));
    }
    let new_op = with_bias(layer);
    let what = new_op.kind();
    let outputs = g.node(user.user).expect("live").outputs.clone();
    let folded = g.add_node_unchecked(new_op, &new_operands, outputs);
    g.replace_all_uses(
        Value {
            node: user.user,
            port: 0,
        },
        folded.into(),
    );
    g.remove_node(user.user);
    g.remove_node(bn);
    Ok(Ok(format!(
        "into the {what} after it, as @{w_new} and @{b_new}"
    )))
}

/// The conv or dense op with its bias slot on.
fn with_bias(op: Op) -> Op {
    match op {
        Op::Conv2d(c) => Op::Conv2d(kiln_ir::ops::Conv2d { bias: true, ..c }),
        Op::Dense(_) => Op::Dense(kiln_ir::ops::Dense { bias: true }),
        other => other,
    }
}

/// Stores a folded weight and bias under new names made from the layer's own
/// (`<weight>.folded`, and `<bias>.folded` or `<weight>.folded_bias`) and adds
/// their parameter nodes: `(weight, bias, weight name, bias name)`.
fn store_folded(
    g: &mut Graph,
    cx: &mut Context,
    w_name: &str,
    b_name: Option<&str>,
    weight: Tensor,
    bias: Tensor,
) -> (Value, Value, String, String) {
    let w_new = fresh_name(g, cx, &format!("{w_name}.folded"));
    let b_new = match b_name {
        Some(n) => fresh_name(g, cx, &format!("{n}.folded")),
        None => fresh_name(g, cx, &format!("{w_name}.folded_bias")),
    };
    let (w_type, b_type) = (weight.ty(), bias.ty());
    cx.params.insert(w_new.clone(), weight);
    cx.params.insert(b_new.clone(), bias);
    let wv = g.add_param(w_new.clone(), w_type);
    let bv = g.add_param(b_new.clone(), b_type);
    (wv, bv, w_new, b_new)
}
