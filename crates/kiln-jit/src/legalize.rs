//! Backend-only rewrites of the graph before planning: forms the kernels
//! handle faster, with the same results (up to float summation order).
//!
//! Every rewrite exists for the GEMM kernel (codegen/gemm.rs): an unpadded
//! stride-1 conv reads its input in place, where a padded or strided one
//! checks and indexes every element.

use crate::error::JitError;
use kiln_ir::ops::{Concat, Conv2d, Pad, Slice};
use kiln_ir::{Graph, NodeId, Op, ParamStore, Tensor, TensorType, Value};

/// The weights of a legalized graph: the user's, and the ones the rewrites
/// made (phase and space-to-depth kernels), kept apart so that the user's
/// store is not copied.
pub struct Weights<'a> {
    pub user: &'a ParamStore,
    pub backend: ParamStore,
}

impl Weights<'_> {
    pub fn get(&self, name: &str) -> Option<&Tensor> {
        self.backend.get(name).or_else(|| self.user.get(name))
    }

    /// `name`, or (when a weight shared by several convs, or the user's own
    /// parameters, already took it) `name` made unique with the conv's node number.
    fn fresh_name(&self, name: String, conv: NodeId) -> String {
        if self.get(&name).is_none() {
            return name;
        }
        let mut n = format!("{name}.n{}", conv.index());
        while self.get(&n).is_some() {
            n.push('_');
        }
        n
    }

    /// Adds a backend weight, named after `name`, to the store and as a param node of `g`.
    fn add(&mut self, g: &mut Graph, name: String, conv: NodeId, t: Tensor) -> Value {
        let name = self.fresh_name(name, conv);
        let v = g.add_param(name.clone(), TensorType::f32(t.shape.clone()));
        self.backend.insert(name, t);
        v
    }
}

/// What the conv rewrites read of the conv they replace.
struct ConvParts<'a> {
    operands: Vec<Value>,
    /// Output height and width.
    out: (usize, usize),
    weight_name: String,
    weight: &'a Tensor,
}

/// The conv's operands, output size and weight, or `None` when the weight is a
/// computed value (such a conv keeps its strided gather).
fn conv_parts<'a>(g: &Graph, user: &'a ParamStore, id: NodeId) -> Option<ConvParts<'a>> {
    let operands = g.operands(id);
    let shape = &g.node(id)?.outputs[0].shape;
    let out = (shape[2], shape[3]);
    let weight_name = g.op(operands[1].node).param_name()?.to_string();
    let weight = user.get(&weight_name)?; // a missing one was reported by verify_params
    Some(ConvParts {
        operands,
        out,
        weight_name,
        weight,
    })
}

/// Input channels per group below which a strided conv keeps its strided
/// gather: splitting a 3-channel stem into phases makes many tiny GEMMs.
const MIN_PHASE_CHANNELS: usize = 16;

/// The graph the backend compiles, and its weights.
pub fn legalize<'a>(g: &Graph, params: &'a ParamStore) -> Result<(Graph, Weights<'a>), JitError> {
    let mut out = g.clone();
    let mut weights = Weights {
        user: params,
        backend: ParamStore::new(),
    };
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
            if let Some(parts) = conv_parts(&out, params, id) {
                split_into_phases(&mut out, &mut weights, id, &conv, parts).map_err(bad)?;
            }
        } else if strided && space_to_depth_pays(&conv) {
            if let Some(parts) = conv_parts(&out, params, id) {
                space_to_depth(&mut out, &mut weights, id, &conv, parts).map_err(bad)?;
            }
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
    Ok((out, weights))
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
    weights: &mut Weights,
    id: NodeId,
    conv: &Conv2d,
    parts: ConvParts,
) -> Result<(), kiln_ir::IrError> {
    let ConvParts {
        operands: ops,
        out: (oh, ow),
        weight_name: wname,
        weight: w,
    } = parts;
    let bias = conv.bias_slot().map(|s| ops[s]);
    let (kh, kw) = (conv.kernel[0], conv.kernel[1]);
    let (sh, sw) = (conv.stride[0], conv.stride[1]);
    let (o, cg) = (w.shape[0], w.shape[1]);
    let xpad = pad(g, ops[0], conv.pad)?;
    // the running sum: the original residual, then each phase's output
    let mut acc: Option<Value> = conv.residual_slot().map(|s| ops[s]);
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
        let sub = Tensor {
            shape: vec![o, cg, ka, kb],
            data: sub,
        };
        let wp = weights.add(g, format!("{wname}.phase{a}{b}"), id, sub);
        let mut operands = vec![x, wp];
        let bias = bias.filter(|_| n == 0); // on the first phase only
        operands.extend(bias);
        if let Some(r) = acc {
            operands.push(r);
        }
        let mut phase = Conv2d::new(1, 1, 0);
        phase.kernel = [ka, kb];
        phase.groups = conv.groups;
        phase.bias = bias.is_some();
        phase.epilogue.residual = acc.is_some();
        phase.epilogue.relu = conv.epilogue.relu && n + 1 == phases.len();
        acc = Some(g.add(phase, &operands)?);
    }
    let result = acc.expect("a conv has at least one phase");
    g.replace_all_uses(Value { node: id, port: 0 }, result);
    g.remove_node(id);
    Ok(())
}

/// Whether a narrow strided conv (a network's stem) is worth computing as a
/// stride-1 conv on its space-to-depth input: the zero taps that adds must
/// stay under half the work (7x7 stride 2: 64 taps for 49; 3x3 stride 2 would
/// be 16 for 9 and keeps its strided gather).
fn space_to_depth_pays(conv: &Conv2d) -> bool {
    let s = conv.stride[0];
    let square = s == conv.stride[1] && s >= 2;
    let kq = [conv.kernel[0].div_ceil(s), conv.kernel[1].div_ceil(s)];
    let taps = conv.kernel[0] * conv.kernel[1];
    square && conv.groups == 1 && conv.dilation == [1, 1] && 2 * kq[0] * kq[1] * s * s <= 3 * taps
}

/// A stride-s conv with kernel `kh x kw` as a stride-1 conv with kernel
/// `ceil(kh/s) x ceil(kw/s)` on the space-to-depth image: the `s * s` phase
/// images `xpad[.., a::s, b::s]` concatenated along channels (phase-major).
/// Channel `(a * s + b) * C + c`, tap `(u, v)` of the new weight is tap
/// `(a + s*u, b + s*v)` of the old one, zero past the kernel. The stride-1
/// conv then reads its input in place (codegen/gemm.rs) instead of gathering
/// every element with strided, border-checked loads.
fn space_to_depth(
    g: &mut Graph,
    weights: &mut Weights,
    id: NodeId,
    conv: &Conv2d,
    parts: ConvParts,
) -> Result<(), kiln_ir::IrError> {
    let ConvParts {
        operands: ops,
        out: (oh, ow),
        weight_name: wname,
        weight: w,
    } = parts;
    let s = conv.stride[0];
    let (kh, kw) = (conv.kernel[0], conv.kernel[1]);
    let (kqh, kqw) = (kh.div_ceil(s), kw.div_ceil(s));
    let (hq, wq) = (oh + kqh - 1, ow + kqw - 1);
    let xs = g
        .value_type(ops[0])
        .map(|t| t.shape.clone())
        .unwrap_or_default();
    let (c, h, wd) = (xs[1], xs[2], xs[3]);
    // every phase needs hq x wq values: pad the bottom and right further with zeros
    let [top, left, bottom, right] = conv.pad;
    let bottom = bottom.max((s * hq).saturating_sub(h + top));
    let right = right.max((s * wq).saturating_sub(wd + left));
    let xpad = pad(g, ops[0], [top, left, bottom, right])?;
    let mut phases = Vec::with_capacity(s * s);
    for a in 0..s {
        let rows = strided(g, xpad, 2, a, s, hq)?;
        for b in 0..s {
            phases.push(strided(g, rows, 3, b, s, wq)?);
        }
    }
    let s2d = g.add(Concat { axis: 1 }, &phases)?;
    let o = w.shape[0];
    let cs = s * s * c;
    let mut data = vec![0.0f32; o * cs * kqh * kqw];
    for oc in 0..o {
        for ci in 0..c {
            for i in 0..kh {
                for j in 0..kw {
                    let (a, u, b, v) = (i % s, i / s, j % s, j / s);
                    let ch = (a * s + b) * c + ci;
                    data[((oc * cs + ch) * kqh + u) * kqw + v] =
                        w.data[((oc * c + ci) * kh + i) * kw + j];
                }
            }
        }
    }
    let kernel = Tensor {
        shape: vec![o, cs, kqh, kqw],
        data,
    };
    let wp = weights.add(g, format!("{wname}.space_to_depth"), id, kernel);
    let mut operands = vec![s2d, wp];
    operands.extend_from_slice(&ops[2..]);
    let mut sc = conv.clone();
    sc.kernel = [kqh, kqw];
    sc.stride = [1, 1];
    sc.pad = [0; 4];
    let y = g.add(sc, &operands)?;
    g.replace_all_uses(Value { node: id, port: 0 }, y);
    g.remove_node(id);
    Ok(())
}
