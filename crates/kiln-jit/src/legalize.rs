//! Backend-only rewrites of the graph before planning: forms the kernels
//! handle faster, with the same results (up to float summation order).
//!
//! Both rewrites exist for the GEMM kernel's cheap gathers (codegen/gemm.rs):
//! an unpadded stride-1 conv gathers each im2col row with one contiguous
//! copy, where a padded or strided one checks and indexes every element.

use crate::error::JitError;
use kiln_ir::ops::{Conv2d, Pad, Slice};
use kiln_ir::{Graph, NodeId, Op, ParamStore, Tensor, Value};

/// Input channels per group below which a strided conv keeps its strided
/// gather: splitting a 3-channel stem into phases makes many tiny GEMMs.
const MIN_PHASE_CHANNELS: usize = 16;

/// The graph (and weights, with the phase sub-kernels added) the backend compiles.
pub fn legalize(g: &Graph, params: &ParamStore) -> Result<(Graph, ParamStore), JitError> {
    let mut out = g.clone();
    let mut params = params.clone();
    let convs: Vec<NodeId> = g
        .node_ids()
        .filter(|&id| matches!(g.op(id), Op::Conv2d(_)))
        .collect();
    for id in convs {
        let Op::Conv2d(conv) = out.op(id).clone() else {
            continue;
        };
        let bad = |e: kiln_ir::IrError| JitError::InvalidGraph(format!("{}: {e}", g.describe(id)));
        let cg = out
            .value_type(out.operands(id)[0])
            .map_or(0, |t| t.shape[1] / conv.groups.max(1));
        let strided = conv.stride != [1, 1];
        if strided && conv.dilation == [1, 1] && cg >= MIN_PHASE_CHANNELS {
            split_into_phases(&mut out, &mut params, id, &conv).map_err(bad)?;
        } else if !strided && conv.pad != [0; 4] && conv.kernel[0] * conv.kernel[1] > 1 {
            let x = out.operands(id)[0];
            let padded = pad(&mut out, x, conv.pad).map_err(bad)?;
            out.set_operand(id, 0, padded);
            if let Some(node) = out.node_mut(id) {
                node.op = Op::Conv2d(Conv2d {
                    pad: [0; 4],
                    ..conv
                });
            }
        }
    }
    kiln_ir::verify(&out)
        .map_err(|e| JitError::InvalidGraph(format!("after backend legalization: {e}")))?;
    Ok((out, params))
}

/// `x` with explicit zero padding `[top, left, bottom, right]` of its spatial axes.
fn pad(g: &mut Graph, x: Value, p: [usize; 4]) -> Result<Value, kiln_ir::IrError> {
    if p == [0; 4] {
        return Ok(x);
    }
    g.add(
        Pad {
            pads: vec![0, 0, p[0], p[1], 0, 0, p[2], p[3]],
            value: 0.0,
        },
        &[x],
    )
}

/// `x[.., start + step * i, ..]` for `len` values of `i` along `axis`; `x` itself if that is all of it.
fn strided(
    g: &mut Graph,
    x: Value,
    axis: usize,
    start: usize,
    step: usize,
    len: usize,
) -> Result<Value, kiln_ir::IrError> {
    let dim = g.value_type(x).map_or(0, |t| t.shape[axis]);
    if start == 0 && step == 1 && len == dim {
        return Ok(x);
    }
    g.add(
        Slice {
            axis,
            start,
            end: start + step * (len - 1) + 1,
            step,
        },
        &[x],
    )
}

/// A stride-(sh, sw) conv as a sum of stride-1 convs, one per phase `(a, b)`:
/// taps `i = a + sh * u`, `j = b + sw * v` read the padded input at rows
/// `sh * (oh + u) + a`, that is row `oh + u` of the phase image
/// `xpad[.., a::sh, b::sw]`. Each phase conv adds into the previous one's
/// output through the residual epilogue; the first has the bias (and the
/// original residual), the last the ReLU. No multiply-add is added or lost.
fn split_into_phases(
    g: &mut Graph,
    params: &mut ParamStore,
    id: NodeId,
    conv: &Conv2d,
) -> Result<(), kiln_ir::IrError> {
    let ops = g.operands(id);
    let out_ty = g.node(id).map(|n| n.outputs[0].clone()).expect("a live conv");
    let (oh, ow) = (out_ty.shape[2], out_ty.shape[3]);
    let Some(wname) = g.op(ops[1].node).param_name().map(str::to_string) else {
        return Ok(()); // computed weights: keep the strided gather
    };
    let Some(w) = params.get(&wname).cloned() else {
        return Ok(()); // reported by verify_params
    };
    let bias = conv.bias_slot().map(|s| ops[s]);
    let residual = conv.residual_slot().map(|s| ops[s]);
    let (kh, kw) = (conv.kernel[0], conv.kernel[1]);
    let (sh, sw) = (conv.stride[0], conv.stride[1]);
    let (o, cg) = (w.shape[0], w.shape[1]);
    let xpad = pad(g, ops[0], conv.pad)?;
    let mut acc: Option<Value> = residual;
    let mut first = true;
    let phases: Vec<(usize, usize)> = (0..sh.min(kh))
        .flat_map(|a| (0..sw.min(kw)).map(move |b| (a, b)))
        .collect();
    for (n, &(a, b)) in phases.iter().enumerate() {
        let (ka, kb) = ((kh - a).div_ceil(sh), (kw - b).div_ceil(sw));
        let rows = strided(g, xpad, 2, a, sh, oh + ka - 1)?;
        let x = strided(g, rows, 3, b, sw, ow + kb - 1)?;
        let mut sub = Vec::with_capacity(o * cg * ka * kb);
        for oc in 0..o {
            for c in 0..cg {
                for u in 0..ka {
                    for v in 0..kb {
                        let (i, j) = (a + sh * u, b + sw * v);
                        sub.push(w.data[((oc * cg + c) * kh + i) * kw + j]);
                    }
                }
            }
        }
        let name = format!("{wname}.phase{a}{b}");
        let wp = g.add_param(name.clone(), kiln_ir::TensorType::f32([o, cg, ka, kb]));
        params.insert(
            name,
            Tensor {
                shape: vec![o, cg, ka, kb],
                data: sub,
            },
        );
        let mut operands = vec![x, wp];
        let with_bias = first && bias.is_some();
        if let (true, Some(bv)) = (with_bias, bias) {
            operands.push(bv);
        }
        if let Some(r) = acc {
            operands.push(r);
        }
        let mut phase = Conv2d::new(1, 1, 0);
        phase.kernel = [ka, kb];
        phase.groups = conv.groups;
        phase.bias = with_bias;
        phase.epilogue.residual = acc.is_some();
        phase.epilogue.relu = conv.epilogue.relu && n + 1 == phases.len();
        acc = Some(g.add(phase, &operands)?);
        first = false;
    }
    let result = acc.expect("a conv has at least one phase");
    g.replace_all_uses(Value { node: id, port: 0 }, result);
    g.remove_node(id);
    Ok(())
}
