//! Each kernel against the interpreter on random shapes (odd sizes, strides,
//! paddings, dilations, groups, ceil mode, tails that do not fill a vector),
//! with both tile paths and in checked mode.

mod common;

use kiln_ir::ops::*;
use kiln_ir::{Graph, Op, ParamStore, Tensor, TensorType, Value};
use proptest::prelude::*;

struct B {
    g: Graph,
    p: ParamStore,
    n: usize,
}

impl B {
    fn new() -> B {
        B {
            g: Graph::new("t"),
            p: ParamStore::new(),
            n: 0,
        }
    }
    fn param(&mut self, shape: &[usize], positive: bool) -> Value {
        self.n += 1;
        let name = format!("p{}", self.n);
        let mut data = common::values(shape.iter().product(), 100 + self.n as u64);
        if positive {
            data.iter_mut().for_each(|x| *x = x.abs() + 0.5);
        }
        self.p.insert(
            name.clone(),
            Tensor {
                shape: shape.to_vec(),
                data,
            },
        );
        self.g.add_param(name, TensorType::f32(shape.to_vec()))
    }
    fn add(&mut self, op: impl Into<Op>, xs: &[Value]) -> Value {
        self.g.add(op, xs).expect("a valid node")
    }
    fn check(mut self, outs: Vec<Value>) {
        self.g.set_outputs(outs);
        common::check_graph(&self.g, &self.p, 1e-4, "graph");
        // and checked mode finds no out-of-range access
        let inputs = common::inputs_for(&self.g, 7);
        let m = kiln_jit::compile(
            &self.g,
            &self.p,
            &kiln_jit::Options {
                threads: 1,
                checked: true,
                ..Default::default()
            },
        )
        .unwrap();
        m.run(&inputs).expect("checked run");
    }
}

fn conv_case() -> impl Strategy<
    Value = (
        usize,
        usize,
        usize,
        usize,
        usize,
        [usize; 2],
        [usize; 2],
        [usize; 4],
        [usize; 2],
        bool,
        bool,
        bool,
    ),
> {
    (
        1usize..3,
        1usize..4,
        1usize..4,
        3usize..12,
        3usize..12,
        [1usize..4, 1usize..4],
        [1usize..3, 1usize..3],
        [0usize..3, 0usize..3, 0usize..3, 0usize..3],
        [1usize..3, 1usize..3],
        any::<bool>(),
        any::<bool>(),
        any::<bool>(),
    )
}

/// `conv` on an `n x c x h x w` input with `o` output channels (weight,
/// optional bias and residual as its flags say) against the interpreter;
/// shapes the conv rejects are skipped.
fn check_conv(n: usize, c: usize, o: usize, h: usize, w: usize, conv: Conv2d) {
    let (Some(oh), Some(ow)) = (conv.output_size(0, h), conv.output_size(1, w)) else {
        return;
    };
    let mut b = B::new();
    let x = b.g.add_input("x", TensorType::f32([n, c, h, w]));
    let wt = b.param(&[o, c / conv.groups, conv.kernel[0], conv.kernel[1]], false);
    let mut ops = vec![x, wt];
    if conv.bias {
        ops.push(b.param(&[o], false));
    }
    if conv.epilogue.residual {
        let r = b.g.add_input("r", TensorType::f32([n, o, oh, ow]));
        ops.push(r);
    }
    let y = b.add(conv, &ops);
    b.check(vec![y]);
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 24, ..ProptestConfig::default() })]

    #[test]
    fn conv2d((n, g, cpg, h, w, k, s, pad, d, bias, res, relu) in conv_case(), opg in 1usize..20) {
        let (c, o) = (g * cpg, g * opg);
        // the verifier wants each pad below the dilated kernel extent
        let ext = [d[0] * (k[0] - 1) + 1, d[1] * (k[1] - 1) + 1];
        let pad = [pad[0].min(ext[0] - 1), pad[1].min(ext[1] - 1), pad[2].min(ext[0] - 1), pad[3].min(ext[1] - 1)];
        let conv = Conv2d { kernel: k, stride: s, pad, dilation: d, groups: g, bias, epilogue: Epilogue { residual: res, relu } };
        check_conv(n, c, o, h, w, conv);
    }

    /// Strided convs wide enough (16+ channels a group) to be split into
    /// stride-1 phase convs by the backend: every phase shape, padding and tail.
    #[test]
    fn strided_conv_phases(n in 1usize..3, g in 1usize..3, cpg in 16usize..19, opg in 1usize..20,
                           h in 4usize..18, w in 4usize..18, k in [1usize..6, 1usize..6], s in [2usize..4, 2usize..4],
                           pad in [0usize..3, 0usize..3, 0usize..3, 0usize..3], bias in any::<bool>(), res in any::<bool>(), relu in any::<bool>()) {
        let (c, o) = (g * cpg, g * opg);
        let pad = [pad[0].min(k[0] - 1), pad[1].min(k[1] - 1), pad[2].min(k[0] - 1), pad[3].min(k[1] - 1)];
        let conv = Conv2d { kernel: k, stride: s, pad, dilation: [1, 1], groups: g, bias, epilogue: Epilogue { residual: res, relu } };
        check_conv(n, c, o, h, w, conv);
    }

    /// Narrow stems with large kernels (7x7 stride 2 and the like), computed
    /// by the backend as stride-1 convs on their space-to-depth input.
    #[test]
    fn stem_conv_space_to_depth(n in 1usize..3, c in 1usize..5, o in 1usize..20, h in 6usize..24, w in 6usize..24,
                                k in [5usize..8, 5usize..8], s in 2usize..4, pad in [0usize..4, 0usize..4, 0usize..4, 0usize..4],
                                bias in any::<bool>(), res in any::<bool>(), relu in any::<bool>()) {
        let conv = Conv2d { kernel: k, stride: [s, s], pad, dilation: [1, 1], groups: 1, bias, epilogue: Epilogue { residual: res, relu } };
        check_conv(n, c, o, h, w, conv);
    }

    #[test]
    fn pools(n in 1usize..3, c in 1usize..5, h in 2usize..13, w in 2usize..24, k in [1usize..4, 1usize..4], s in [1usize..3, 1usize..3],
             pad in [0usize..2, 0usize..2, 0usize..2, 0usize..2], ceil in any::<bool>(), cip in any::<bool>()) {
        let pad = [pad[0].min(k[0] / 2), pad[1].min(k[1] / 2), pad[2].min(k[0] / 2), pad[3].min(k[1] / 2)];
        if h + pad[0] + pad[2] < k[0] || w + pad[1] + pad[3] < k[1] { return Ok(()); }
        let mut b = B::new();
        let x = b.g.add_input("x", TensorType::f32([n, c, h, w]));
        let m = b.add(MaxPool { kernel: k, stride: s, pad, ceil_mode: ceil }, &[x]);
        let a = b.add(AvgPool { kernel: k, stride: s, pad, ceil_mode: ceil, count_include_pad: cip }, &[x]);
        let gp = b.add(GlobalAvgPool {}, &[x]);
        b.check(vec![m, a, gp]);
    }

    #[test]
    fn elementwise_norm_lrn(n in 1usize..3, c in 1usize..9, h in 1usize..8, w in 1usize..8, size in 1usize..6) {
        let mut b = B::new();
        let x = b.g.add_input("x", TensorType::f32([n, c, h, w]));
        let z = b.g.add_input("z", TensorType::f32([n, c, h, w]));
        let (wt, bi, mean) = (b.param(&[c], false), b.param(&[c], false), b.param(&[c], false));
        let var = b.param(&[c], true);
        let bn = b.add(BatchNorm::inference(1e-5), &[x, wt, bi, mean, var]);
        let r = b.add(Relu {}, &[bn]);
        let s = b.add(Add {}, &[r, z]);
        let l = b.add(Lrn { size, alpha: 1e-3, beta: 0.75, k: 2.0 }, &[x]);
        let d = b.add(Dropout { p: 0.5 }, &[s]);
        b.check(vec![d, l, s]);
    }

    #[test]
    fn shape_ops(n in 1usize..3, c1 in 1usize..5, c2 in 1usize..5, h in 1usize..6, w in 1usize..20,
                 pads in proptest::collection::vec(0usize..3, 8), start in 0usize..3, step in 1usize..3, axis in 0usize..4) {
        let mut b = B::new();
        let x = b.g.add_input("x", TensorType::f32([n, c1, h, w]));
        let y = b.g.add_input("y", TensorType::f32([n, c2, h, w]));
        let rx = b.add(Relu {}, &[x]); // a producer that writes into the concat's slice
        let cat = b.add(Concat { axis: 1 }, &[rx, y, rx]);
        let dims = [n, c1 + c2 + c1, h, w];
        let cat2 = b.add(Concat { axis }, &[x, x]);
        let padded = b.add(Pad { pads: pads.clone(), value: 0.5 }, &[cat]);
        let end = dims[axis];
        let st = start.min(end - 1);
        let sl = b.add(Slice { axis, start: st, end, step }, &[cat]);
        let fl = b.add(Flatten { axis: 1 }, &[cat]);
        let sl_elems = b.g.value_type(sl).unwrap().elements();
        let rs = b.add(Reshape { shape: vec![sl_elems] }, &[sl]);
        b.check(vec![cat, cat2, padded, sl, fl, rs]);
    }

    #[test]
    fn dense_softmax_loss(n in 1usize..6, k in 1usize..40, m in 1usize..30, bias in any::<bool>(), smooth in 0.0f32..0.5) {
        let mut b = B::new();
        let x = b.g.add_input("x", TensorType::f32([n, k]));
        let wt = b.param(&[m, k], false);
        let mut ops = vec![x, wt];
        if bias { ops.push(b.param(&[m], false)); }
        let y = b.add(Dense { bias }, &ops);
        let s1 = b.add(Softmax { axis: 1 }, &[y]);
        let s0 = b.add(Softmax { axis: 0 }, &[y]);
        let labels: Vec<f32> = (0..n).map(|i| ((i * 7) % m) as f32).collect();
        b.p.insert("labels", Tensor { shape: vec![n], data: labels });
        let lab = b.g.add_param("labels", TensorType::f32([n]));
        let loss = b.add(SoftmaxCrossEntropy { label_smoothing: smooth }, &[y, lab]);
        b.check(vec![y, s1, s0, loss]);
    }
}

#[test]
fn bad_label_is_an_error() {
    let mut b = B::new();
    let x = b.g.add_input("x", TensorType::f32([2, 3]));
    let l = b.g.add_input("labels", TensorType::f32([2]));
    let loss = b.add(
        SoftmaxCrossEntropy {
            label_smoothing: 0.0,
        },
        &[x, l],
    );
    b.g.set_outputs(vec![loss]);
    let m = kiln_jit::compile(&b.g, &b.p, &Default::default()).unwrap();
    let x = Tensor {
        shape: vec![2, 3],
        data: vec![0.0; 6],
    };
    let err = m
        .run(&[
            x.clone(),
            Tensor {
                shape: vec![2],
                data: vec![1.0, 3.0],
            },
        ])
        .unwrap_err();
    assert!(matches!(err, kiln_jit::JitError::BadLabel { .. }), "{err}");
    assert!(m
        .run(&[
            x,
            Tensor {
                shape: vec![2],
                data: vec![1.0, 2.0]
            }
        ])
        .is_ok());
}

#[test]
fn training_batch_norm_is_refused_with_a_reason() {
    let mut b = B::new();
    let x = b.g.add_input("x", TensorType::f32([1, 2, 3, 3]));
    let ps: Vec<Value> = (0..4).map(|_| b.param(&[2], true)).collect();
    let y = b.add(
        BatchNorm {
            eps: 1e-5,
            momentum: 0.1,
            training: true,
        },
        &[x, ps[0], ps[1], ps[2], ps[3]],
    );
    b.g.set_outputs(vec![y]);
    let err = kiln_jit::compile(&b.g, &b.p, &Default::default())
        .err()
        .expect("refused");
    assert!(
        matches!(err, kiln_jit::JitError::Unsupported(ref m) if m.contains("training")),
        "{err}"
    );
}

/// Two strided convs reading one weight (as tied weights do), beside a user
/// parameter that already has the name the backend would give a phase weight:
/// the backend's weights get fresh names and every output agrees with the
/// interpreter.
#[test]
fn strided_convs_sharing_a_weight_and_a_taken_name() {
    for (c, k, taken) in [(16usize, 3usize, "p1.phase00"), (3, 7, "p1.space_to_depth")] {
        let mut b = B::new();
        let x = b.g.add_input("x", TensorType::f32([1, c, 15, 15]));
        let wt = b.param(&[8, c, k, k], false); // "p1"
        let conv = Conv2d::new(k, 2, k / 2);
        let y1 = b.add(conv.clone(), &[x, wt]);
        let y2 = b.add(conv, &[x, wt]);
        let s = b.add(Add {}, &[y1, y2]);
        // a user parameter named like the backend's phase weight, with other values
        let shape = b.g.value_type(s).unwrap().shape.clone();
        let data = common::values(shape.iter().product(), 999);
        b.p.insert(
            taken,
            Tensor {
                shape: shape.clone(),
                data,
            },
        );
        let other = b.g.add_param(taken, TensorType::f32(shape));
        let t = b.add(Add {}, &[s, other]);
        b.check(vec![t, y1]);
    }
}
