//! `run` checks the graph, the weights and the inputs before evaluating.

use kiln_interp::{eval_op, run};
use kiln_ir::ops::{Add, Conv2d, Param, Relu, SoftmaxCrossEntropy};
use kiln_ir::{Graph, Op, ParamStore, Tensor, TensorType};

fn conv_graph() -> (Graph, ParamStore) {
    let mut g = Graph::new("t");
    let x = g.add_input("x", TensorType::f32([1, 2, 4, 4]));
    let w = g.add_param("conv.weight", TensorType::f32([3, 2, 3, 3]));
    let c = g.add(Conv2d::new(3, 1, 1), &[x, w]).unwrap();
    let r = g.add(Relu {}, &[c]).unwrap();
    g.set_outputs(vec![r, c]);
    let mut p = ParamStore::new();
    p.insert("conv.weight", Tensor::filled(&[3, 2, 3, 3], 0.5));
    (g, p)
}

#[test]
fn outputs_come_in_graph_order() {
    let (g, p) = conv_graph();
    let out = run(&g, &p, &[("x", Tensor::filled(&[1, 2, 4, 4], -1.0))]).unwrap();
    assert_eq!(out.len(), 2);
    assert!(out[0].data.iter().all(|&v| v == 0.0));
    assert_eq!(out[1].data[0], -4.0 * 2.0 * 0.5); // corner: 4 taps x 2 channels
}

#[test]
fn input_errors_name_the_input() {
    let (g, p) = conv_graph();
    let none: [(&str, Tensor); 0] = [];
    let e = run(&g, &p, &none).unwrap_err().to_string();
    assert!(e.contains("\"x\"") && e.contains("not given"), "{e}");
    let e = run(&g, &p, &[("x", Tensor::zeros(&[1, 2, 4, 5]))])
        .unwrap_err()
        .to_string();
    assert!(
        e.contains("\"x\"") && e.contains("[1, 2, 4, 5]") && e.contains("f32[1,2,4,4]"),
        "{e}"
    );
    let e = run(
        &g,
        &p,
        &[
            ("x", Tensor::zeros(&[1, 2, 4, 4])),
            ("y", Tensor::zeros(&[1])),
        ],
    )
    .unwrap_err()
    .to_string();
    assert!(e.contains("\"y\""), "{e}");
}

#[test]
fn weight_errors_name_the_parameter() {
    let (g, _) = conv_graph();
    let e = run(
        &g,
        &ParamStore::new(),
        &[("x", Tensor::zeros(&[1, 2, 4, 4]))],
    )
    .unwrap_err()
    .to_string();
    assert!(e.contains("@conv.weight") && e.contains("missing"), "{e}");
}

#[test]
fn an_invalid_graph_is_refused_before_running() {
    let (mut g, p) = conv_graph();
    g.set_outputs(vec![]);
    let e = run(&g, &p, &[("x", Tensor::zeros(&[1, 2, 4, 4]))])
        .unwrap_err()
        .to_string();
    assert!(e.contains("no output"), "{e}");
}

#[test]
fn a_duplicate_input_is_refused() {
    let (g, p) = conv_graph();
    let x = Tensor::zeros(&[1, 2, 4, 4]);
    let e = run(&g, &p, &[("x", &x), ("x", &x)])
        .unwrap_err()
        .to_string();
    assert!(e.contains("\"x\" was given twice"), "{e}");
}

#[test]
fn inputs_may_come_in_a_map() {
    let (g, p) = conv_graph();
    let x = Tensor::filled(&[1, 2, 4, 4], 1.0);
    let from_slice = run(&g, &p, &[("x", x.clone())]).unwrap();
    let hash: std::collections::HashMap<String, Tensor> = [("x".to_string(), x.clone())].into();
    let btree: std::collections::BTreeMap<&str, &Tensor> = [("x", &x)].into();
    assert_eq!(run(&g, &p, &hash).unwrap(), from_slice);
    assert_eq!(run(&g, &p, &btree).unwrap(), from_slice);
}

#[test]
fn run_all_returns_every_value() {
    let (g, p) = conv_graph();
    let x = Tensor::filled(&[1, 2, 4, 4], -1.0);
    let all = kiln_interp::run_all(&g, &p, &[("x", &x)]).unwrap();
    assert_eq!(all.len(), g.node_count());
    let input = g.find_input("x").unwrap();
    let weight = g.find_param("conv.weight").unwrap();
    assert_eq!(all[&input.into()], x);
    assert_eq!(&all[&weight.into()], p.get("conv.weight").unwrap());
    let out = run(&g, &p, &[("x", &x)]).unwrap();
    assert_eq!(all[&g.outputs()[0]], out[0]);
    assert_eq!(all[&g.outputs()[1]], out[1]);
}

#[test]
fn a_value_read_by_several_nodes_survives_until_its_last_use() {
    // x feeds add(x, x), a relu, and a later add with the relu; x is also an output.
    let mut g = Graph::new("diamond");
    let x = g.add_input("x", TensorType::f32([3]));
    let twice = g.add(Add {}, &[x, x]).unwrap();
    let r = g.add(Relu {}, &[x]).unwrap();
    let y = g.add(Add {}, &[twice, r]).unwrap();
    g.set_outputs(vec![y, x, twice]);
    let input = Tensor::new(vec![3], vec![-1.0, 2.0, 0.5]).unwrap();
    let out = run(&g, &ParamStore::new(), &[("x", &input)]).unwrap();
    assert_eq!(out[0].data, vec![-2.0, 6.0, 1.5]);
    assert_eq!(out[1], input);
    assert_eq!(out[2].data, vec![-2.0, 4.0, 1.0]);
}

#[test]
fn malformed_tensors_are_refused_with_their_name() {
    let (g, mut p) = conv_graph();
    let short = Tensor {
        shape: vec![1, 2, 4, 4],
        data: vec![0.0; 31],
    };
    let e = run(&g, &p, &[("x", &short)]).unwrap_err().to_string();
    assert!(e.contains("input \"x\"") && e.contains("31 values"), "{e}");
    p.insert(
        "conv.weight",
        Tensor {
            shape: vec![3, 2, 3, 3],
            data: vec![0.0; 5],
        },
    );
    let e = run(&g, &p, &[("x", Tensor::zeros(&[1, 2, 4, 4]))])
        .unwrap_err()
        .to_string();
    assert!(
        e.contains("parameter @conv.weight") && e.contains("5 values"),
        "{e}"
    );
}

#[test]
fn a_mis_shaped_weight_is_refused_with_both_shapes() {
    let (g, mut p) = conv_graph();
    p.insert("conv.weight", Tensor::zeros(&[3, 2, 1, 1]));
    let e = run(&g, &p, &[("x", Tensor::zeros(&[1, 2, 4, 4]))])
        .unwrap_err()
        .to_string();
    assert!(
        e.contains("@conv.weight") && e.contains("[3, 2, 1, 1]") && e.contains("f32[3,2,3,3]"),
        "{e}"
    );
}

#[test]
fn a_bad_label_in_a_graph_names_the_node_and_the_row() {
    let mut g = Graph::new("loss");
    let logits = g.add_input("logits", TensorType::f32([2, 4]));
    let labels = g.add_input("labels", TensorType::f32([2]));
    let loss = g
        .add(
            SoftmaxCrossEntropy {
                label_smoothing: 0.1,
            },
            &[logits, labels],
        )
        .unwrap();
    g.set_outputs(vec![loss]);
    let inputs = [
        ("logits", Tensor::zeros(&[2, 4])),
        ("labels", Tensor::new(vec![2], vec![1.0, 4.0]).unwrap()),
    ];
    let e = run(&g, &ParamStore::new(), &inputs)
        .unwrap_err()
        .to_string();
    assert!(
        e.contains("softmax_cross_entropy #")
            && e.contains("label 4 of row 1")
            && e.contains("[0, 4)"),
        "{e}"
    );
}

#[test]
fn eval_op_refuses_what_inference_refuses() {
    let x = Tensor::zeros(&[1, 2, 4, 4]);
    let e = eval_op(&Relu {}.into(), &[&x, &x]).unwrap_err().to_string();
    assert!(e.contains("relu") && e.contains("exactly 1"), "{e}");
    let e = eval_op(
        &Conv2d::new(3, 1, 1).into(),
        &[&x, &Tensor::zeros(&[3, 1, 3, 3])],
    )
    .unwrap_err()
    .to_string();
    assert!(
        e.contains("conv2d") && e.contains("weight must be f32[3,2,3,3]"),
        "{e}"
    );
    let e = eval_op(&Op::Param(Param { name: "w".into() }), &[])
        .unwrap_err()
        .to_string();
    assert!(e.contains("source op"), "{e}");
    let bad = Tensor {
        shape: vec![2],
        data: vec![1.0],
    };
    let e = eval_op(&Relu {}.into(), &[&bad]).unwrap_err().to_string();
    assert!(
        e.contains("relu operand 0") && e.contains("1 values"),
        "{e}"
    );
}
