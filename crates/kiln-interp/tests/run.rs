//! `run` checks the graph, the weights and the inputs before evaluating.

use kiln_interp::run;
use kiln_ir::ops::{Conv2d, Relu};
use kiln_ir::{Graph, ParamStore, Tensor, TensorType};

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
    let e = run(&g, &p, &[("x", Tensor::zeros(&[1, 2, 4, 5]))]).unwrap_err().to_string();
    assert!(e.contains("\"x\"") && e.contains("[1, 2, 4, 5]") && e.contains("f32[1,2,4,4]"), "{e}");
    let e = run(&g, &p, &[("x", Tensor::zeros(&[1, 2, 4, 4])), ("y", Tensor::zeros(&[1]))]).unwrap_err().to_string();
    assert!(e.contains("\"y\""), "{e}");
}

#[test]
fn weight_errors_name_the_parameter() {
    let (g, _) = conv_graph();
    let e = run(&g, &ParamStore::new(), &[("x", Tensor::zeros(&[1, 2, 4, 4]))]).unwrap_err().to_string();
    assert!(e.contains("@conv.weight") && e.contains("missing"), "{e}");
}

#[test]
fn an_invalid_graph_is_refused_before_running() {
    let (mut g, p) = conv_graph();
    g.set_outputs(vec![]);
    let e = run(&g, &p, &[("x", Tensor::zeros(&[1, 2, 4, 4]))]).unwrap_err().to_string();
    assert!(e.contains("no output"), "{e}");
}
