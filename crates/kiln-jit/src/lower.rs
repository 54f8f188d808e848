//! Lowering: one or more kernels per node, in schedule order, with weights
//! packed into the constant pool at compile time.

use crate::codegen::gemm::{Gather, GemmBlocking, GemmSpec};
use crate::codegen::kernels::*;
use crate::codegen::{Jit, Region};
use crate::error::JitError;
use crate::legalize::Weights;
use crate::plan::{item, Home, Plan, Realise};
use kiln_ir::{Graph, NodeId, Op, Tensor, TensorType, Value};
use std::collections::HashMap;

/// One kernel launch: `tiles` independent calls of kernel `kernel`.
pub struct Step {
    pub kernel: usize,
    pub tiles: usize,
    pub node: String,
}

pub struct Lowered {
    pub steps: Vec<Step>,
    pub consts: Vec<f32>,
    pub scratch: usize,
}

struct Cx<'a> {
    g: &'a Graph,
    params: &'a Weights<'a>,
    plan: &'a Plan,
    consts: Vec<f32>,
    param_off: HashMap<NodeId, usize>,
}

impl<'a> Cx<'a> {
    fn shape(&self, v: Value) -> Vec<usize> {
        self.g
            .value_type(v)
            .map(|t| t.shape.clone())
            .unwrap_or_default()
    }
    fn push(&mut self, data: &[f32]) -> i64 {
        // keep every block 64-byte aligned relative to the pool start
        while self.consts.len() % 16 != 0 {
            self.consts.push(0.0);
        }
        let off = self.consts.len();
        self.consts.extend_from_slice(data);
        off as i64
    }
    /// The parameter tensor `v` (borrowed for `'a`, the weights' lifetime, not
    /// from `self`, so that it can be pushed into the pool without a copy).
    fn param(&self, v: Value, what: &str, node: &str) -> Result<&'a Tensor, JitError> {
        let name = self.g.op(v.node).param_name().ok_or_else(|| {
            JitError::Unsupported(format!(
                "{node}: the {what} must be a parameter, not a computed value"
            ))
        })?;
        self.params
            .get(name)
            .ok_or_else(|| JitError::InvalidGraph(format!("{node}: parameter @{name} is missing")))
    }
    /// Pushes parameter `v` into the constant pool as it is; its offset.
    fn push_param(&mut self, v: Value, what: &str, node: &str) -> Result<i64, JitError> {
        let t = self.param(v, what, node)?;
        Ok(self.push(&t.data))
    }
    fn loc(&mut self, v: Value) -> Loc {
        let view = self.plan.views[&v];
        let shape = self.shape(v);
        let n = shape.first().copied().unwrap_or(1).max(1) as i64;
        let it = item(&shape) as i64;
        let (region, base) = match view.home {
            Home::Storage(s) => (Region::Arena, self.plan.storages[s].offset),
            Home::Param(id) => {
                let off = match self.param_off.get(&id) {
                    Some(o) => *o,
                    None => {
                        let name = self.g.op(id).param_name().unwrap_or_default();
                        let data = self.params.get(name).map_or(&[][..], |t| &t.data[..]);
                        let o = self.push(data) as usize;
                        self.param_off.insert(id, o);
                        o
                    }
                };
                (Region::Const, off)
            }
        };
        let off = (base + view.off) as i64;
        let bstride = view.bstride as i64;
        Loc {
            region,
            off,
            bstride,
            lo: off,
            hi: off + (n - 1) * bstride + it,
        }
    }
}

/// Dense layers with at most this many batch rows are matrix-vector products.
const GEMV_MAX_BATCH: usize = 4;

fn dims(s: &[usize]) -> (i64, i64, i64) {
    // [n, rows, len] for pointwise kernels
    match s.len() {
        0 => (1, 1, 1),
        1 => (s[0] as i64, 1, 1),
        _ => (
            s[0] as i64,
            s[1] as i64,
            s[2..].iter().product::<usize>() as i64,
        ),
    }
}

fn strides_of(shape: &[usize], bstride: i64) -> Vec<i64> {
    let mut st = vec![0i64; shape.len()];
    let mut acc = 1i64;
    for d in (0..shape.len()).rev() {
        st[d] = acc;
        acc *= shape[d] as i64;
    }
    if !st.is_empty() {
        st[0] = bstride;
    }
    st
}

fn pack_panels(w: &[f32], rows: usize, k: usize, mr: usize, out: &mut Vec<f32>) {
    let nmp = rows.div_ceil(mr);
    for mp in 0..nmp {
        for kk in 0..k {
            for r in 0..mr {
                let m = mp * mr + r;
                out.push(if m < rows { w[m * k + kk] } else { 0.0 });
            }
        }
    }
}

/// Emits every kernel of the graph into `jit`. `fault`: a node whose kernels
/// store past the arena (the checked-mode test hook).
pub fn lower<'a>(
    g: &'a Graph,
    params: &'a Weights<'a>,
    plan: &'a Plan,
    jit: &mut Jit,
    fault: Option<NodeId>,
) -> Result<Lowered, JitError> {
    let mut cx = Cx {
        g,
        params,
        plan,
        consts: Vec::new(),
        param_off: HashMap::new(),
    };
    let mut steps = Vec::new();
    let mut scratch = 16usize;
    let (mr, nr) = (jit.tile.mr as i64, jit.tile.nr as i64);
    for &id in &plan.order {
        let node = g.describe(id);
        let realise = plan.realise[&id];
        if matches!(realise, Realise::Alias | Realise::Nothing) {
            continue;
        }
        let out = Value { node: id, port: 0 };
        let ops = g.operands(id);
        let oshape = cx.shape(out);
        let shift = if fault == Some(id) {
            plan.arena_len as i64 + 4096
        } else {
            0
        };
        let mut emit = |jit: &mut Jit,
                        kind: &str,
                        tiles: usize,
                        f: &mut dyn FnMut(&mut crate::codegen::Em, u32)|
         -> Result<(), JitError> {
            let tag = steps.len() as u32 + 1;
            let k = jit.kernel(kind, tag, shift, |em| {
                f(em, tag);
                Ok(())
            })?;
            steps.push(Step {
                kernel: k,
                tiles,
                node: node.clone(),
            });
            Ok(())
        };
        let y = cx.loc(out);
        match g.op(id).clone() {
            Op::Input(_) | Op::Param(_) => {}
            Op::Conv2d(c) => {
                let xs = cx.shape(ops[0]);
                let x = cx.loc(ops[0]);
                let (n, cin, h, w) = (xs[0], xs[1], xs[2], xs[3]);
                let (o, oh, ow) = (oshape[1], oshape[2], oshape[3]);
                let groups = c.groups;
                let (og, cg) = (o / groups, cin / groups);
                let k = cg * c.kernel[0] * c.kernel[1];
                let wt = &cx.param(ops[1], "weight", &node)?.data;
                let taps = c.kernel[0] * c.kernel[1];
                let i = |v: usize| v as i64;
                let (kh, kw) = (i(c.kernel[0]), i(c.kernel[1]));
                let shifted = c.stride == [1, 1] && c.pad == [0; 4] && taps > 1;
                let (gather, columns) = if shifted {
                    let gather = Gather::Shifted {
                        h: i(h),
                        w: i(w),
                        cg: i(cg),
                        kh,
                        kw,
                        dh: i(c.dilation[0]),
                        dw: i(c.dilation[1]),
                        ow: i(ow),
                    };
                    // the input's grid up to the last output pixel
                    (gather, i((oh - 1) * w + ow))
                } else {
                    let gather = Gather::Conv {
                        h: i(h),
                        w: i(w),
                        cg: i(cg),
                        kh,
                        kw,
                        sh: i(c.stride[0]),
                        sw: i(c.stride[1]),
                        pt: i(c.pad[0]),
                        pl: i(c.pad[1]),
                        dh: i(c.dilation[0]),
                        dw: i(c.dilation[1]),
                        ow: i(ow),
                    };
                    (gather, i(oh * ow))
                };
                // 1x1 and shifted convs reduce tap by tap (codegen/gemm.rs): A's
                // columns in (tap, channel) order instead of (channel, tap)
                let tap_major = gather.is_tap_major();
                let tap_major_wt;
                let wt = if tap_major && taps > 1 {
                    let mut t = vec![0.0; wt.len()];
                    for oc in 0..o {
                        for ci in 0..cg {
                            for tp in 0..taps {
                                t[(oc * taps + tp) * cg + ci] = wt[(oc * cg + ci) * taps + tp];
                            }
                        }
                    }
                    tap_major_wt = t;
                    &tap_major_wt
                } else {
                    wt
                };
                let mut packed = Vec::new();
                for gi in 0..groups {
                    pack_panels(
                        &wt[gi * og * k..(gi + 1) * og * k],
                        og,
                        k,
                        mr as usize,
                        &mut packed,
                    );
                }
                let a_off = cx.push(&packed);
                let bias = match c.bias_slot() {
                    Some(s) => Some(cx.push_param(ops[s], "bias", &node)?),
                    None => None,
                };
                let res = c.residual_slot().map(|s| cx.loc(ops[s]));
                let spec = GemmSpec {
                    n: i(n),
                    groups: i(groups),
                    mg: i(og),
                    k: i(k),
                    p: columns,
                    mr,
                    nr,
                    blocking: GemmBlocking::choose(
                        mr,
                        nr,
                        i(og),
                        columns,
                        if tap_major { 1 } else { kh * kw },
                        i(cg),
                        i(n * groups),
                    ),
                    a_off,
                    a_len: packed.len() as i64,
                    bias,
                    relu: c.epilogue.relu,
                    x,
                    y,
                    res,
                    cm: i(oh * ow),
                    cp: 1,
                    gather,
                };
                scratch = scratch.max(spec.scratch());
                emit(jit, "conv2d", spec.tiles(), &mut |em, _| spec.emit(em))?;
            }
            Op::Dense(d) => {
                let xs = cx.shape(ops[0]);
                let x = cx.loc(ops[0]);
                let (nb, k) = (xs[0], xs[1]);
                let m = oshape[1];
                let wt = &cx.param(ops[1], "weight", &node)?.data;
                let bias = if d.bias {
                    Some(cx.push_param(ops[2], "bias", &node)?)
                } else {
                    None
                };
                if nb <= GEMV_MAX_BATCH {
                    // a matrix-vector product: the GEMM tile would waste nr - nb of its columns
                    let w_off = cx.push(wt);
                    let spec = GemvSpec {
                        batch: nb as i64,
                        m: m as i64,
                        k: k as i64,
                        rows: 32,
                        w_off,
                        bias,
                        x,
                        y,
                    };
                    emit(jit, "dense", spec.tiles(), &mut |em, _| spec.emit(em))?;
                    continue;
                }
                let mut packed = Vec::new();
                pack_panels(wt, m, k, mr as usize, &mut packed);
                let a_off = cx.push(&packed);
                let spec = GemmSpec {
                    n: 1,
                    groups: 1,
                    mg: m as i64,
                    k: k as i64,
                    p: nb as i64,
                    mr,
                    nr,
                    blocking: GemmBlocking::choose(mr, nr, m as i64, nb as i64, 1, k as i64, 1),
                    a_off,
                    a_len: packed.len() as i64,
                    bias,
                    relu: false,
                    x,
                    y,
                    res: None,
                    cm: 1,
                    cp: y.bstride,
                    gather: Gather::Dense,
                };
                scratch = scratch.max(spec.scratch());
                emit(jit, "dense", spec.tiles(), &mut |em, _| spec.emit(em))?;
            }
            Op::BatchNorm(b) => {
                if b.training {
                    return Err(JitError::Unsupported(format!(
                        "{node}: batch_norm in training mode (batch statistics) is not lowered by the forward backend; \
                         compile the inference graph (training = false) or fold it with fold-bn"
                    )));
                }
                let get = |cx: &Cx<'a>, s: usize, what: &str| {
                    cx.param(ops[s], what, &node).map(|t| &t.data)
                };
                let (wt, bi, mean, var) = (
                    get(&cx, 1, "weight")?,
                    get(&cx, 2, "bias")?,
                    get(&cx, 3, "running_mean")?,
                    get(&cx, 4, "running_var")?,
                );
                let scale: Vec<f32> = (0..wt.len())
                    .map(|c| (wt[c] as f64 / (var[c] as f64 + b.eps as f64).sqrt()) as f32)
                    .collect();
                let shift: Vec<f32> = (0..wt.len())
                    .map(|c| (bi[c] as f64 - mean[c] as f64 * scale[c] as f64) as f32)
                    .collect();
                let so = cx.push(&scale);
                let ho = cx.push(&shift);
                let x = cx.loc(ops[0]);
                let (n, rows, len) = dims(&oshape);
                let spec = PwSpec {
                    n,
                    rows,
                    len,
                    rpt: (8192 / len).max(1),
                    x,
                    y,
                    op: Pw::Affine {
                        scale: so,
                        shift: ho,
                    },
                };
                emit(jit, "batch_norm", spec.tiles(), &mut |em, _| spec.emit(em))?;
            }
            Op::Relu(_) | Op::Add(_) => {
                let x = cx.loc(ops[0]);
                let op = if ops.len() == 2 {
                    Pw::Add(cx.loc(ops[1]))
                } else {
                    Pw::Relu
                };
                let (n, rows, len) = dims(&oshape);
                let spec = PwSpec {
                    n,
                    rows,
                    len,
                    rpt: (8192 / len).max(1),
                    x,
                    y,
                    op,
                };
                emit(jit, g.op(id).kind(), spec.tiles(), &mut |em, _| {
                    spec.emit(em)
                })?;
            }
            Op::MaxPool(_) | Op::AvgPool(_) => {
                let xs = cx.shape(ops[0]);
                let x = cx.loc(ops[0]);
                let (kernel, stride, pad, max, cip) = match g.op(id) {
                    Op::MaxPool(m) => (m.kernel, m.stride, m.pad, true, false),
                    Op::AvgPool(a) => (a.kernel, a.stride, a.pad, false, a.count_include_pad),
                    _ => unreachable!(),
                };
                let i = |v: usize| v as i64;
                let spec = PoolSpec {
                    n: i(xs[0]),
                    c: i(xs[1]),
                    h: i(xs[2]),
                    w: i(xs[3]),
                    oh: i(oshape[2]),
                    ow: i(oshape[3]),
                    kernel: [i(kernel[0]), i(kernel[1])],
                    stride: [i(stride[0]), i(stride[1])],
                    pad: [i(pad[0]), i(pad[1]), i(pad[2]), i(pad[3])],
                    max,
                    count_include_pad: cip,
                    x,
                    y,
                };
                emit(jit, g.op(id).kind(), spec.tiles(), &mut |em, _| {
                    spec.emit(em)
                })?;
            }
            Op::GlobalAvgPool(_) => {
                let xs = cx.shape(ops[0]);
                let x = cx.loc(ops[0]);
                let hw = (xs[2] * xs[3]) as i64;
                let spec = GapSpec {
                    n: xs[0] as i64,
                    c: xs[1] as i64,
                    hw,
                    cpt: (4096 / hw).max(1),
                    x,
                    y,
                };
                emit(jit, "global_avg_pool", spec.tiles(), &mut |em, _| {
                    spec.emit(em)
                })?;
            }
            Op::Lrn(l) => {
                let x = cx.loc(ops[0]);
                let (n, c, plane) = dims(&oshape);
                let spec = LrnSpec {
                    n,
                    c,
                    plane,
                    size: l.size as i64,
                    alpha: l.alpha,
                    beta: l.beta,
                    k: l.k,
                    x,
                    y,
                };
                emit(jit, "lrn", spec.tiles(), &mut |em, _| spec.emit(em))?;
            }
            Op::Softmax(s) => {
                let x = cx.loc(ops[0]);
                let a = s.axis;
                let outer: usize = oshape[..a].iter().product();
                let spec = SoftmaxSpec {
                    outer: outer as i64,
                    outer_per_item: if a == 0 {
                        0
                    } else {
                        (outer / oshape[0]) as i64
                    },
                    len: oshape[a] as i64,
                    inner: oshape[a + 1..].iter().product::<usize>() as i64,
                    x,
                    y,
                };
                emit(jit, "softmax", spec.tiles(), &mut |em, _| spec.emit(em))?;
            }
            Op::SoftmaxCrossEntropy(s) => {
                let xs = cx.shape(ops[0]);
                let spec = SceSpec {
                    n: xs[0] as i64,
                    c: xs[1] as i64,
                    smoothing: s.label_smoothing,
                    logits: cx.loc(ops[0]),
                    labels: cx.loc(ops[1]),
                    y,
                };
                emit(jit, "softmax_cross_entropy", 1, &mut |em, tag| {
                    spec.emit(em, tag)
                })?;
            }
            Op::Concat(c) => {
                let ostr = strides_of(&oshape, y.bstride);
                let mut start = 0usize;
                for (slot, v) in ops.iter().enumerate() {
                    let s = cx.shape(*v);
                    if !plan.in_place_concat.contains(&(id, slot)) {
                        let x = cx.loc(*v);
                        let istr = strides_of(&s, x.bstride);
                        let axes = (0..s.len())
                            .map(|d| Axis {
                                out_dim: s[d] as i64,
                                a: 1,
                                b: 0,
                                in_dim: s[d] as i64,
                                in_stride: istr[d],
                                out_stride: ostr[d],
                            })
                            .collect();
                        let yo = y.off + start as i64 * ostr[c.axis];
                        let spec = CopySpec {
                            axes,
                            pad: 0.0,
                            x,
                            y: Loc { off: yo, ..y },
                        };
                        emit(jit, "concat_copy", spec.tiles(), &mut |em, _| spec.emit(em))?;
                    }
                    start += s[c.axis];
                }
            }
            Op::Dropout(_) | Op::Reshape(_) | Op::Flatten(_) => {
                // CopyThenView: make the operand contiguous; the output reinterprets it.
                let s = cx.shape(ops[0]);
                let x = cx.loc(ops[0]);
                let istr = strides_of(&s, x.bstride);
                let ostr = strides_of(&s, item(&s) as i64);
                let axes = (0..s.len())
                    .map(|d| Axis {
                        out_dim: s[d] as i64,
                        a: 1,
                        b: 0,
                        in_dim: s[d] as i64,
                        in_stride: istr[d],
                        out_stride: ostr[d],
                    })
                    .collect();
                let spec = CopySpec {
                    axes,
                    pad: 0.0,
                    x,
                    y,
                };
                emit(jit, "contiguous_copy", spec.tiles(), &mut |em, _| {
                    spec.emit(em)
                })?;
            }
            Op::Pad(pd) => {
                let s = cx.shape(ops[0]);
                let x = cx.loc(ops[0]);
                let istr = strides_of(&s, x.bstride);
                let ostr = strides_of(&oshape, y.bstride);
                let r = s.len();
                let axes = (0..r)
                    .map(|d| Axis {
                        out_dim: oshape[d] as i64,
                        a: 1,
                        b: -(pd.pads[d] as i64),
                        in_dim: s[d] as i64,
                        in_stride: istr[d],
                        out_stride: ostr[d],
                    })
                    .collect();
                let spec = CopySpec {
                    axes,
                    pad: pd.value,
                    x,
                    y,
                };
                emit(jit, "pad", spec.tiles(), &mut |em, _| spec.emit(em))?;
            }
            Op::Slice(sl) => {
                let s = cx.shape(ops[0]);
                let x = cx.loc(ops[0]);
                let istr = strides_of(&s, x.bstride);
                let ostr = strides_of(&oshape, y.bstride);
                let axes = (0..s.len())
                    .map(|d| {
                        let (a, b) = if d == sl.axis {
                            (sl.step as i64, sl.start as i64)
                        } else {
                            (1, 0)
                        };
                        Axis {
                            out_dim: oshape[d] as i64,
                            a,
                            b,
                            in_dim: s[d] as i64,
                            in_stride: istr[d],
                            out_stride: ostr[d],
                        }
                    })
                    .collect();
                let spec = CopySpec {
                    axes,
                    pad: 0.0,
                    x,
                    y,
                };
                emit(jit, "slice", spec.tiles(), &mut |em, _| spec.emit(em))?;
            }
        }
    }
    Ok(Lowered {
        steps,
        consts: cx.consts,
        scratch,
    })
}

/// The location of a graph input or output, for the executor's copies.
pub fn io_loc(
    g: &Graph,
    params: &Weights,
    plan: &Plan,
    consts: &mut Vec<f32>,
    v: Value,
) -> (TensorType, Loc) {
    let mut cx = Cx {
        g,
        params,
        plan,
        consts: std::mem::take(consts),
        param_off: HashMap::new(),
    };
    let l = cx.loc(v);
    *consts = cx.consts;
    (
        g.value_type(v)
            .cloned()
            .unwrap_or_else(|| TensorType::f32(Vec::<usize>::new())),
        l,
    )
}
