//! The verifier refuses each kind of bad graph: one test per rule, and one per
//! attribute or operand rule of each op. Every test checks the message names
//! the node and what is wrong.

use kiln_ir::ops::*;
use kiln_ir::*;

fn f32t(shape: &[usize]) -> TensorType {
    TensorType::f32(shape.to_vec())
}

/// Builds `op(operands...)` declaring `declared` (or the inferred type when
/// `None`), makes it the output, verifies, and returns the error text.
fn refuse(op: impl Into<Op>, operand_types: &[&[usize]], declared: Option<&[usize]>) -> String {
    let mut g = Graph::new("t");
    let x = g.add_input("x", f32t(operand_types[0]));
    let mut operands = vec![x];
    for (i, shape) in operand_types.iter().enumerate().skip(1) {
        operands.push(g.add_param(format!("p{i}"), f32t(shape)));
    }
    let out_ty = declared.map(f32t).unwrap_or_else(|| f32t(operand_types[0]));
    let id = g.add_node_unchecked(op.into(), &operands, vec![out_ty]);
    g.set_outputs(vec![id.into()]);
    match verify(&g) {
        Ok(()) => panic!("the verifier accepted a bad graph"),
        Err(e) => e.to_string(),
    }
}

fn accept(op: impl Into<Op>, operand_types: &[&[usize]], declared: &[usize]) {
    let mut g = Graph::new("t");
    let x = g.add_input("x", f32t(operand_types[0]));
    let mut operands = vec![x];
    for (i, shape) in operand_types.iter().enumerate().skip(1) {
        operands.push(g.add_param(format!("p{i}"), f32t(shape)));
    }
    let id = g.add_node_unchecked(op.into(), &operands, vec![f32t(declared)]);
    g.set_outputs(vec![id.into()]);
    verify(&g).unwrap_or_else(|e| panic!("a good graph was refused: {e}"));
}

fn has(text: &str, parts: &[&str]) {
    for p in parts {
        assert!(text.contains(p), "expected {p:?} in: {text}");
    }
}

fn conv(kernel: usize, stride: usize, pad: usize) -> Conv2d {
    Conv2d::new(kernel, stride, pad)
}

// ---- graph-level rules -------------------------------------------------

#[test]
fn a_graph_without_outputs_is_refused() {
    let mut g = Graph::new("t");
    g.add_input("x", f32t(&[1]));
    has(&verify(&g).unwrap_err().to_string(), &["no output"]);
}

#[test]
fn an_output_naming_a_missing_node_is_refused() {
    let mut g = Graph::new("t");
    let x = g.add_input("x", f32t(&[1]));
    let r = g.add(Relu {}, &[x]).unwrap();
    g.set_outputs(vec![r]);
    g.remove_node(r.node);
    has(
        &verify(&g).unwrap_err().to_string(),
        &["output 0", "does not exist"],
    );
}

#[test]
fn an_output_naming_a_missing_port_is_refused() {
    let mut g = Graph::new("t");
    let x = g.add_input("x", f32t(&[1]));
    g.set_outputs(vec![Value {
        node: x.node,
        port: 1,
    }]);
    has(&verify(&g).unwrap_err().to_string(), &["port 1"]);
}

#[test]
fn an_edge_from_a_missing_port_is_refused() {
    let mut g = Graph::new("t");
    let x = g.add_input("x", f32t(&[2]));
    let r = g.add_node_unchecked(
        Op::Relu(Relu {}),
        &[Value {
            node: x.node,
            port: 3,
        }],
        vec![f32t(&[2])],
    );
    g.set_outputs(vec![r.into()]);
    has(&verify(&g).unwrap_err().to_string(), &["relu", "port 3"]);
}

#[test]
fn a_missing_operand_slot_is_refused() {
    let mut g = Graph::new("t");
    let x = g.add_input("x", f32t(&[2]));
    let a = g.add_node_unchecked(Op::Add(Add {}), &[], vec![f32t(&[2])]);
    g.connect(x, a, 1);
    g.connect(x, a, 2);
    g.set_outputs(vec![a.into()]);
    has(
        &verify(&g).unwrap_err().to_string(),
        &["add", "slot 0 is missing"],
    );
}

#[test]
fn a_slot_fed_twice_is_refused() {
    let mut g = Graph::new("t");
    let x = g.add_input("x", f32t(&[2]));
    let a = g.add_node_unchecked(Op::Add(Add {}), &[x], vec![f32t(&[2])]);
    g.connect(x, a, 0);
    g.set_outputs(vec![a.into()]);
    has(
        &verify(&g).unwrap_err().to_string(),
        &["add", "slot 0 is fed twice"],
    );
}

#[test]
fn a_cycle_is_refused() {
    let mut g = Graph::new("t");
    let x = g.add_input("x", f32t(&[2]));
    let a = g.add(Add {}, &[x, x]).unwrap();
    let b = g.add(Relu {}, &[a]).unwrap();
    g.set_operand(a.node, 1, b);
    g.set_outputs(vec![b]);
    has(&verify(&g).unwrap_err().to_string(), &["cycle"]);
}

#[test]
fn a_wrong_operand_count_is_refused() {
    let mut g = Graph::new("t");
    let x = g.add_input("x", f32t(&[2]));
    let a = g.add_node_unchecked(Op::Add(Add {}), &[x], vec![f32t(&[2])]);
    g.set_outputs(vec![a.into()]);
    has(
        &verify(&g).unwrap_err().to_string(),
        &["add", "exactly 2", "has 1"],
    );
}

#[test]
fn a_zero_dimension_is_refused() {
    let mut g = Graph::new("t");
    let x = g.add_input("x", f32t(&[1, 0, 3]));
    g.set_outputs(vec![x]);
    has(
        &verify(&g).unwrap_err().to_string(),
        &["input \"x\"", "dimension 1 is zero"],
    );
}

#[test]
fn a_tensor_of_2_pow_40_elements_is_refused() {
    let mut g = Graph::new("t");
    let x = g.add_input("x", f32t(&[1 << 20, 1 << 20]));
    g.set_outputs(vec![x]);
    has(
        &verify(&g).unwrap_err().to_string(),
        &["more than 2147483647 elements"],
    );
}

#[test]
fn an_overflowing_shape_is_refused() {
    let mut g = Graph::new("t");
    let x = g.add_input("x", f32t(&[usize::MAX, usize::MAX]));
    g.set_outputs(vec![x]);
    has(&verify(&g).unwrap_err().to_string(), &["more than"]);
}

#[test]
fn a_rank_above_eight_is_refused() {
    let mut g = Graph::new("t");
    let x = g.add_input("x", f32t(&[1; 9]));
    g.set_outputs(vec![x]);
    has(&verify(&g).unwrap_err().to_string(), &["rank 9"]);
}

#[test]
fn duplicate_input_names_are_refused() {
    let mut g = Graph::new("t");
    let x = g.add_input("x", f32t(&[2]));
    let y = g.add_input("x", f32t(&[2]));
    let a = g.add(Add {}, &[x, y]).unwrap();
    g.set_outputs(vec![a]);
    has(
        &verify(&g).unwrap_err().to_string(),
        &["input \"x\"", "same name"],
    );
}

#[test]
fn duplicate_param_nodes_are_refused() {
    let mut g = Graph::new("t");
    let x = g.add_input("x", f32t(&[2]));
    let p = g.add_param("w", f32t(&[2]));
    let q = g.add_node_unchecked(Op::Param(Param { name: "w".into() }), &[], vec![f32t(&[2])]);
    let a = g.add(Add {}, &[x, p]).unwrap();
    let b = g.add(Add {}, &[a, q.into()]).unwrap();
    g.set_outputs(vec![b]);
    has(
        &verify(&g).unwrap_err().to_string(),
        &["param @w", "same name"],
    );
}

#[test]
fn a_source_with_two_outputs_is_refused() {
    let mut g = Graph::new("t");
    let x = g.add_node_unchecked(
        Op::Input(Input { name: "x".into() }),
        &[],
        vec![f32t(&[2]), f32t(&[2])],
    );
    g.set_outputs(vec![x.into()]);
    has(
        &verify(&g).unwrap_err().to_string(),
        &["declares 2 outputs"],
    );
}

#[test]
fn a_declared_type_that_disagrees_with_inference_is_refused() {
    let e = refuse(Relu {}, &[&[1, 4]], Some(&[1, 5]));
    has(
        &e,
        &["relu", "declares output type f32[1,5]", "give f32[1,4]"],
    );
}

#[test]
fn a_missing_parameter_is_named_with_its_user() {
    let mut g = Graph::new("t");
    let x = g.add_input("x", f32t(&[1, 3, 8, 8]));
    let w = g.add_param("conv1.weight", f32t(&[4, 3, 3, 3]));
    let c = g.add(conv(3, 1, 1), &[x, w]).unwrap();
    g.set_outputs(vec![c]);
    verify(&g).unwrap();
    let e = verify_params(&g, &ParamStore::new())
        .unwrap_err()
        .to_string();
    has(&e, &["@conv1.weight", "conv2d", "missing"]);
    let mut store = ParamStore::new();
    store.insert("conv1.weight", Tensor::zeros(&[4, 3, 1, 1]));
    let e = verify_params(&g, &store).unwrap_err().to_string();
    has(&e, &["@conv1.weight", "[4, 3, 1, 1]", "f32[4,3,3,3]"]);
    store.insert("conv1.weight", Tensor::zeros(&[4, 3, 3, 3]));
    verify_params(&g, &store).unwrap();
}

// ---- conv2d -------------------------------------------------------------

const X: &[usize] = &[1, 4, 8, 8];
const W: &[usize] = &[6, 4, 3, 3];

#[test]
fn conv_accepts_a_good_conv() {
    accept(conv(3, 1, 1), &[X, W], &[1, 6, 8, 8]);
    accept(conv(3, 2, 0), &[X, W], &[1, 6, 3, 3]);
}

#[test]
fn conv_kernel_zero() {
    let mut c = conv(3, 1, 0);
    c.kernel = [0, 3];
    has(
        &refuse(c, &[X, &[6, 4, 1, 3]], None),
        &["conv2d", "kernel[0] must be at least 1"],
    );
}

#[test]
fn conv_stride_zero() {
    let mut c = conv(3, 1, 0);
    c.stride = [1, 0];
    has(&refuse(c, &[X, W], None), &["stride[1] must be at least 1"]);
}

#[test]
fn conv_dilation_zero() {
    let mut c = conv(3, 1, 0);
    c.dilation = [0, 1];
    has(
        &refuse(c, &[X, W], None),
        &["dilation[0] must be at least 1"],
    );
}

#[test]
fn conv_padding_not_below_kernel() {
    let mut c = conv(3, 1, 0);
    c.pad = [0, 3, 0, 0];
    has(
        &refuse(c, &[X, W], None),
        &["pad[1] = 3 must be below the kernel extent 3"],
    );
}

#[test]
fn conv_groups_zero() {
    let mut c = conv(3, 1, 1);
    c.groups = 0;
    has(&refuse(c, &[X, W], None), &["groups must be at least 1"]);
}

#[test]
fn conv_groups_not_dividing_input_channels() {
    let mut c = conv(3, 1, 1);
    c.groups = 3;
    has(
        &refuse(c, &[X, &[6, 1, 3, 3]], None),
        &["groups = 3 does not divide the 4 input channels"],
    );
}

#[test]
fn conv_groups_not_dividing_output_channels() {
    let mut c = conv(3, 1, 1);
    c.groups = 4;
    has(
        &refuse(c, &[X, &[6, 1, 3, 3]], None),
        &["does not divide the 6 output channels"],
    );
}

#[test]
fn conv_input_rank() {
    has(
        &refuse(conv(3, 1, 1), &[&[4, 8, 8], W], None),
        &["input must have rank 4"],
    );
}

#[test]
fn conv_weight_rank() {
    has(
        &refuse(conv(3, 1, 1), &[X, &[6, 4, 3]], None),
        &["weight must have rank 4"],
    );
}

#[test]
fn conv_weight_shape() {
    has(
        &refuse(conv(3, 1, 1), &[X, &[6, 5, 3, 3]], None),
        &["weight must be f32[6,4,3,3]"],
    );
}

#[test]
fn conv_input_smaller_than_kernel() {
    has(
        &refuse(conv(3, 1, 0), &[&[1, 4, 2, 8], W], None),
        &["height 2", "smaller than the kernel"],
    );
}

#[test]
fn conv_bias_shape() {
    let mut c = conv(3, 1, 1);
    c.bias = true;
    has(&refuse(c, &[X, W, &[5]], None), &["bias must be f32[6]"]);
}

#[test]
fn conv_missing_bias_operand() {
    let mut c = conv(3, 1, 1);
    c.bias = true;
    has(&refuse(c, &[X, W], Some(&[1, 6, 8, 8])), &["exactly 3"]);
}

#[test]
fn conv_residual_shape() {
    let mut c = conv(3, 1, 1);
    c.epilogue.residual = true;
    has(
        &refuse(c, &[X, W, &[1, 6, 8, 7]], Some(&[1, 6, 8, 8])),
        &["residual", "does not match"],
    );
}

#[test]
fn conv_attributes_beyond_32_bits() {
    let mut c = conv(3, 1, 1);
    c.stride = [1 << 40, 1];
    has(&refuse(c, &[X, W], None), &["stride[0]", "exceeds"]);
}

// ---- batch_norm -----------------------------------------------------------

const C4: &[usize] = &[4];

#[test]
fn batch_norm_accepts_a_good_one() {
    accept(BatchNorm::inference(1e-5), &[X, C4, C4, C4, C4], X);
}

#[test]
fn batch_norm_eps_not_positive() {
    has(
        &refuse(BatchNorm::inference(0.0), &[X, C4, C4, C4, C4], None),
        &["batch_norm", "eps must be positive"],
    );
}

#[test]
fn batch_norm_eps_not_finite() {
    has(
        &refuse(BatchNorm::inference(f32::NAN), &[X, C4, C4, C4, C4], None),
        &["eps must be finite"],
    );
}

#[test]
fn batch_norm_momentum_out_of_range() {
    let bn = BatchNorm {
        eps: 1e-5,
        momentum: 1.5,
        training: true,
    };
    has(
        &refuse(bn, &[X, C4, C4, C4, C4], None),
        &["momentum must be in [0, 1]"],
    );
}

#[test]
fn batch_norm_statistic_shape() {
    has(
        &refuse(BatchNorm::inference(1e-5), &[X, C4, C4, &[3], C4], None),
        &["running_mean must be f32[4]"],
    );
}

#[test]
fn batch_norm_input_rank() {
    has(
        &refuse(BatchNorm::inference(1e-5), &[&[4], C4, C4, C4, C4], None),
        &["rank 2 or more"],
    );
}

// ---- pools ----------------------------------------------------------------

fn max_pool(k: usize, s: usize, p: usize, ceil: bool) -> MaxPool {
    MaxPool {
        kernel: [k; 2],
        stride: [s; 2],
        pad: [p; 4],
        ceil_mode: ceil,
    }
}

#[test]
fn pools_accept_and_infer_ceil_mode() {
    // 112 -> ceil((112 - 3) / 2) + 1 = 56 (torchvision GoogLeNet's first pool).
    accept(
        max_pool(3, 2, 0, true),
        &[&[1, 64, 112, 112]],
        &[1, 64, 56, 56],
    );
    accept(
        max_pool(3, 2, 0, false),
        &[&[1, 64, 112, 112]],
        &[1, 64, 55, 55],
    );
    // A last window that would start in the end padding is dropped: 5 + 1 + 1,
    // k 2, s 2, ceil: 4 windows would start at 0, 2, 4, 6; 6 >= 5 + 1 is dropped.
    accept(max_pool(2, 2, 1, true), &[&[1, 1, 5, 5]], &[1, 1, 3, 3]);
}

#[test]
fn pool_kernel_zero() {
    has(
        &refuse(max_pool(0, 1, 0, false), &[X], None),
        &["max_pool", "kernel[0] must be at least 1"],
    );
}

#[test]
fn pool_stride_zero() {
    has(
        &refuse(max_pool(2, 0, 0, false), &[X], None),
        &["stride[0] must be at least 1"],
    );
}

#[test]
fn pool_padding_not_below_kernel() {
    has(
        &refuse(max_pool(2, 1, 2, false), &[X], None),
        &["pad[0] = 2 must be below the kernel extent 2"],
    );
}

#[test]
fn pool_input_smaller_than_kernel() {
    has(
        &refuse(max_pool(9, 1, 0, false), &[X], None),
        &["smaller than the kernel"],
    );
}

#[test]
fn pool_input_rank() {
    let avg = AvgPool {
        kernel: [2, 2],
        stride: [1, 1],
        pad: [0; 4],
        ceil_mode: false,
        count_include_pad: true,
    };
    has(&refuse(avg, &[&[4, 8, 8]], None), &["avg_pool", "rank 4"]);
}

#[test]
fn global_avg_pool_rank_and_shape() {
    accept(GlobalAvgPool {}, &[X], &[1, 4, 1, 1]);
    has(
        &refuse(GlobalAvgPool {}, &[&[1, 4]], None),
        &["global_avg_pool", "rank 4"],
    );
}

// ---- lrn ----------------------------------------------------------------

fn lrn() -> Lrn {
    Lrn {
        size: 5,
        alpha: 1e-4,
        beta: 0.75,
        k: 1.0,
    }
}

#[test]
fn lrn_rules() {
    accept(lrn(), &[X], X);
    has(
        &refuse(Lrn { size: 0, ..lrn() }, &[X], None),
        &["lrn", "size must be at least 1"],
    );
    has(
        &refuse(Lrn { k: 0.0, ..lrn() }, &[X], None),
        &["k must be positive"],
    );
    has(
        &refuse(
            Lrn {
                beta: f32::INFINITY,
                ..lrn()
            },
            &[X],
            None,
        ),
        &["beta must be finite"],
    );
    has(&refuse(lrn(), &[&[1, 4]], None), &["rank 3 or more"]);
}

// ---- elementwise, dense, shape ops ----------------------------------------

#[test]
fn add_shapes_must_match() {
    has(
        &refuse(Add {}, &[&[1, 4], &[1, 5]], None),
        &["add", "does not match"],
    );
}

#[test]
fn dropout_p_range() {
    accept(Dropout { p: 0.5 }, &[X], X);
    has(
        &refuse(Dropout { p: 1.0 }, &[X], None),
        &["dropout", "p must be in [0, 1)"],
    );
}

#[test]
fn softmax_axis_range() {
    accept(Softmax { axis: 1 }, &[&[2, 3]], &[2, 3]);
    has(
        &refuse(Softmax { axis: 2 }, &[&[2, 3]], None),
        &["softmax", "axis 2 is out of range"],
    );
}

#[test]
fn dense_rules() {
    accept(Dense { bias: true }, &[&[2, 8], &[3, 8], &[3]], &[2, 3]);
    has(
        &refuse(Dense { bias: false }, &[&[2, 8], &[3, 7]], None),
        &["dense", "must have 8 columns"],
    );
    has(
        &refuse(Dense { bias: true }, &[&[2, 8], &[3, 8], &[4]], None),
        &["bias must be f32[3]"],
    );
    has(
        &refuse(Dense { bias: false }, &[&[2, 8, 1], &[3, 8]], None),
        &["input must have rank 2"],
    );
    has(
        &refuse(Dense { bias: false }, &[&[2, 8], &[3, 8, 1]], None),
        &["weight must have rank 2"],
    );
}

#[test]
fn concat_rules() {
    accept(Concat { axis: 1 }, &[&[1, 2, 4], &[1, 3, 4]], &[1, 5, 4]);
    has(
        &refuse(Concat { axis: 1 }, &[&[1, 2, 4], &[1, 3, 5]], None),
        &["concat", "operand 1", "outside axis 1"],
    );
    has(
        &refuse(Concat { axis: 3 }, &[&[1, 2, 4]], None),
        &["axis 3 is out of range"],
    );
    has(
        &refuse(Concat { axis: 0 }, &[&[1, 2], &[1, 2, 1]], None),
        &["operand 1"],
    );
}

#[test]
fn concat_needs_an_operand() {
    let mut g = Graph::new("t");
    let c = g.add_node_unchecked(Op::Concat(Concat { axis: 0 }), &[], vec![f32t(&[1])]);
    g.set_outputs(vec![c.into()]);
    has(
        &verify(&g).unwrap_err().to_string(),
        &["concat", "at least 1"],
    );
}

#[test]
fn flatten_rules() {
    accept(Flatten { axis: 1 }, &[X], &[1, 256]);
    accept(Flatten { axis: 0 }, &[X], &[1, 256]);
    has(
        &refuse(Flatten { axis: 5 }, &[X], None),
        &["flatten", "axis 5 is out of range"],
    );
}

#[test]
fn reshape_rules() {
    accept(
        Reshape {
            shape: vec![16, 16],
        },
        &[X],
        &[16, 16],
    );
    has(
        &refuse(
            Reshape {
                shape: vec![16, 15],
            },
            &[X],
            None,
        ),
        &["reshape", "element counts differ"],
    );
    has(
        &refuse(
            Reshape {
                shape: vec![256, 0],
            },
            &[X],
            None,
        ),
        &["target shape", "zero"],
    );
}

#[test]
fn pad_rules() {
    accept(
        Pad {
            pads: vec![0, 1, 0, 0, 0, 2, 0, 0],
            value: 0.0,
        },
        &[X],
        &[1, 7, 8, 8],
    );
    has(
        &refuse(
            Pad {
                pads: vec![0, 1],
                value: 0.0,
            },
            &[X],
            None,
        ),
        &["pad", "must hold 8 numbers"],
    );
    has(
        &refuse(
            Pad {
                pads: vec![0; 8],
                value: f32::NAN,
            },
            &[X],
            None,
        ),
        &["value must be finite"],
    );
    let mut huge = vec![0; 8];
    huge[2] = 1 << 40;
    has(
        &refuse(
            Pad {
                pads: huge,
                value: 0.0,
            },
            &[X],
            None,
        ),
        &["pads[2]", "exceeds"],
    );
}

#[test]
fn slice_rules() {
    accept(
        Slice {
            axis: 2,
            start: 0,
            end: 8,
            step: 2,
        },
        &[X],
        &[1, 4, 4, 8],
    );
    accept(
        Slice {
            axis: 1,
            start: 1,
            end: 4,
            step: 2,
        },
        &[X],
        &[1, 2, 8, 8],
    );
    has(
        &refuse(
            Slice {
                axis: 4,
                start: 0,
                end: 1,
                step: 1,
            },
            &[X],
            None,
        ),
        &["slice", "axis 4"],
    );
    has(
        &refuse(
            Slice {
                axis: 1,
                start: 0,
                end: 5,
                step: 1,
            },
            &[X],
            None,
        ),
        &["end 5 is beyond"],
    );
    has(
        &refuse(
            Slice {
                axis: 1,
                start: 2,
                end: 2,
                step: 1,
            },
            &[X],
            None,
        ),
        &["start 2 must be below end 2"],
    );
    has(
        &refuse(
            Slice {
                axis: 1,
                start: 0,
                end: 2,
                step: 0,
            },
            &[X],
            None,
        ),
        &["step must be at least 1"],
    );
}

#[test]
fn softmax_cross_entropy_rules() {
    accept(
        SoftmaxCrossEntropy {
            label_smoothing: 0.1,
        },
        &[&[4, 10], &[4]],
        &[],
    );
    has(
        &refuse(
            SoftmaxCrossEntropy {
                label_smoothing: 0.1,
            },
            &[&[4, 10], &[5]],
            Some(&[]),
        ),
        &["labels must be f32[4]"],
    );
    has(
        &refuse(
            SoftmaxCrossEntropy {
                label_smoothing: 1.5,
            },
            &[&[4, 10], &[4]],
            Some(&[]),
        ),
        &["label_smoothing must be in [0, 1]"],
    );
    has(
        &refuse(
            SoftmaxCrossEntropy {
                label_smoothing: 0.0,
            },
            &[&[4], &[4]],
            Some(&[]),
        ),
        &["logits must have rank 2"],
    );
}

#[test]
fn the_builder_refuses_what_the_verifier_refuses() {
    let mut g = Graph::new("t");
    let x = g.add_input("x", f32t(X));
    let w = g.add_param("w", f32t(&[6, 5, 3, 3]));
    let e = g.add(conv(3, 1, 1), &[x, w]).unwrap_err().to_string();
    has(&e, &["cannot build conv2d", "weight must be"]);
    let e = g.add(Relu {}, &[x, x]).unwrap_err().to_string();
    has(&e, &["relu", "exactly 1"]);
}
